import { AgentHaltedError } from "@gov/core";
import { describe, expect, it, vi } from "vitest";
import { makeSteward } from "./__fixtures__";
import { PolicyError, TripwireViolation } from "./errors";
import { guard } from "./guard";
import { containsPii, detectPii, luhnValid } from "./pii";
import { GUARD_LIMITS } from "./snapshot";
import { GovernanceSteward } from "./steward";

/** A steward whose only tripwire never fires (its evaluation is still awaited). */
function neverFiringSteward(): GovernanceSteward {
  return new GovernanceSteward({
    blueprints: [
      {
        id: "never@1",
        version: "1",
        tripwires: [{ id: "never", condition: "false", onFail: { decision: "BLOCK" } }],
      },
    ],
  });
}

describe("guard shorthand", () => {
  it("states the allowed condition over named arguments; $ is ignored", async () => {
    const body = vi.fn(async ({ spend }: { spend: number; reason: string }) => `spent ${spend}`);
    const refund = guard({ tripwires: ["spend < $50"] }, body);
    await expect(refund({ spend: 20, reason: "damaged" })).resolves.toBe("spent 20");
    const denied = refund({ spend: 80, reason: "damaged" });
    await expect(denied).rejects.toBeInstanceOf(TripwireViolation);
    await expect(denied).rejects.toMatchObject({
      code: "TRIPWIRE_VIOLATION",
      intervention: "BLOCK",
      tripwires: ["spend < $50"],
    });
    expect(body).toHaveBeenCalledTimes(1);
  });

  it("names positional arguments with params", async () => {
    const refund = guard(
      { tripwires: ["amount <= 100"], params: ["amount", "reason"], actionName: "refund" },
      async (amount: number, reason: string) => `${amount}:${reason}`,
    );
    await expect(refund(100, "ok")).resolves.toBe("100:ok");
    await expect(refund(101, "ok")).rejects.toThrow(/Action "refund" was denied \(BLOCK\)/);
  });

  it("denies when an argument of the condition is missing (fail closed)", async () => {
    const call = guard({ tripwires: ["spend < 50"] }, async (_: { other: number }) => "ran");
    await expect(call({ other: 1 })).rejects.toBeInstanceOf(TripwireViolation);
  });

  it("applies maxSpend and blockedKeywords to the reasoning", async () => {
    const call = guard(
      { maxSpend: 50, blockedKeywords: ["Password"] },
      async (_: { amount: number; reasoning: string }) => "ran",
    );
    await expect(call({ amount: 50, reasoning: "normal" })).resolves.toBe("ran");
    await expect(call({ amount: 51, reasoning: "normal" })).rejects.toMatchObject({
      tripwires: ["max_spend"],
    });
    await expect(call({ amount: 5, reasoning: "send the PASSWORD" })).rejects.toMatchObject({
      tripwires: ["blocked_keywords"],
    });
  });

  it("runs what it checked: arguments changed during the check, or other ones at proceed, are refused", async () => {
    const steward = neverFiringSteward();
    const ran: number[] = [];
    const call = guard(
      { tripwires: ["spend < 50"], steward },
      async (request: { spend: number }) => {
        ran.push(request.spend);
        return "ran";
      },
    );
    const request = { spend: 10 };
    const pending = call(request);
    request.spend = 1_000_000; // changed while the steward is being awaited
    await expect(pending).rejects.toMatchObject({ tripwires: ["arguments-changed"] });
    expect(ran).toEqual([]);

    const review = guard(
      {
        rules: [{ condition: "spend > 500", decision: "ESCALATE", id: "big" }],
        onReview: ({ proceed }) => proceed({ spend: 1 }),
      },
      async (request: { spend: number }) => {
        ran.push(request.spend);
        return "ran";
      },
    );
    await expect(review({ spend: 5000 })).rejects.toMatchObject({
      tripwires: ["arguments-changed"],
    });
    const same = guard(
      {
        rules: [{ condition: "spend > 500", decision: "ESCALATE", id: "big" }],
        onReview: ({ proceed }) => proceed(),
      },
      async (request: { spend: number }) => {
        ran.push(request.spend);
        return "ran";
      },
    );
    await expect(same({ spend: 5000 })).resolves.toBe("ran");
    expect(ran).toEqual([5000]);
  });

  it("finds blocked keywords in reasoning of any type, keeps $ inside strings, reads full-width digits", async () => {
    const call = guard(
      { blockedKeywords: ["password"], tripwires: ['note != "$"', "no_pii"] },
      async (_: { reasoning?: unknown; reason?: unknown; note: string }) => "ran",
    );
    await expect(call({ reasoning: ["send the password"], note: "a" })).rejects.toMatchObject({
      tripwires: ["blocked_keywords"],
    });
    await expect(call({ reasoning: 1, reason: "password dump", note: "a" })).rejects.toMatchObject({
      tripwires: ["blocked_keywords"],
    });
    await expect(call({ note: "$" })).rejects.toMatchObject({ tripwires: ['note != "$"'] });
    await expect(call({ note: "fine" })).resolves.toBe("ran");
    expect(detectPii("card ４１１１ １１１１ １１１１ １１１１")).toContain("card");
  });

  it("calls onDeny instead of throwing, and onReview for ESCALATE", async () => {
    const onDeny = vi.fn(async () => "denied");
    const onReview = vi.fn(
      async ({ proceed }: { proceed: (args: { amount: number }) => Promise<string> }) =>
        proceed({ amount: 600 }),
    );
    const call = guard(
      {
        rules: [{ condition: "amount > 500", decision: "ESCALATE", id: "big" }],
        tripwires: ["amount < 1000"],
        onDeny,
        onReview,
      },
      async ({ amount }: { amount: number }) => `paid ${amount}`,
    );
    await expect(call({ amount: 600 })).resolves.toBe("paid 600");
    expect(onReview).toHaveBeenCalledWith(
      expect.objectContaining({ intervention: "ESCALATE", fired: ["big"] }),
    );
    await expect(call({ amount: 5000 })).resolves.toBe("denied");
    expect(onDeny).toHaveBeenCalledWith(expect.objectContaining({ intervention: "BLOCK" }));
  });

  it("calls the function on NUDGE and FLAG rules", async () => {
    const call = guard(
      {
        rules: [
          { condition: "amount > 10", decision: "NUDGE" },
          { condition: "amount > 20", decision: "FLAG" },
        ],
      },
      async ({ amount }: { amount: number }) => amount,
    );
    await expect(call({ amount: 30 })).resolves.toBe(30);
  });

  it("treats ESCALATE without onReview as a denial", async () => {
    const call = guard(
      { rules: [{ condition: "amount > 500", decision: "ESCALATE" }] },
      async (_: { amount: number }) => "ran",
    );
    await expect(call({ amount: 600 })).rejects.toMatchObject({ intervention: "ESCALATE" });
    await expect(call({ amount: 6 })).resolves.toBe("ran");
  });

  it("refuses bad shorthand when wrapping", () => {
    expect(() => guard({ tripwires: ["spend <"] }, async () => 1)).toThrow(PolicyError);
    expect(() => guard({ tripwires: [""] }, async () => 1)).toThrow(/tripwires\[0\]/);
    expect(() =>
      guard({ rules: [{ condition: "true", decision: "HALT" as "BLOCK" }] }, async () => 1),
    ).toThrow(
      expect.objectContaining({
        message: 'Invalid guard options at rules[0].decision: is "HALT".',
        recoveryHint: expect.stringContaining("only a blueprint tripwire may HALT"),
      }),
    );
  });

  it("also evaluates with a steward; a HALT throws AgentHaltedError", async () => {
    const { steward } = makeSteward({
      blueprints: [
        {
          id: "g@1",
          version: "1",
          tripwires: [
            { id: "exfil", condition: 'args.to == "outside"', onFail: { decision: "HALT" } },
          ],
        },
      ],
    });
    const send = guard(
      { steward, agentId: "mailer", actionName: "send" },
      async (_: { to: string }) => "sent",
    );
    await expect(send({ to: "inside" })).resolves.toBe("sent");
    const halted = send({ to: "outside" });
    await expect(halted).rejects.toSatisfy((error) => AgentHaltedError.isInstance(error));
    await expect(halted).rejects.toMatchObject({ agentId: "mailer", path: "steward.guard" });
    expect(steward.getMetrics().interventions.HALT).toBe(1);
  });
});

describe("guard arithmetic", () => {
  it("mixes ints and doubles like blueprints", async () => {
    const spend = guard({ tripwires: ["spend * 2 < 100"] }, async (_: { spend: number }) => "ran");
    await expect(spend({ spend: 10 })).resolves.toBe("ran");
    await expect(spend({ spend: 60 })).rejects.toBeInstanceOf(TripwireViolation);
  });
});

describe("guard with a steward: approvals", () => {
  it("counts an approved ESCALATE toward the steward's daily limit", async () => {
    const { steward } = makeSteward({
      blueprints: [
        {
          id: "limit@1",
          version: "1",
          tripwires: [
            {
              id: "daily",
              condition: "state.daily_total + args.amount > 1000",
              requiresState: true,
              onFail: { decision: "ESCALATE" },
            },
          ],
          trustDebt: { enabled: false },
        },
      ],
    });
    const refunds: number[] = [];
    const refund = guard(
      {
        steward,
        agentId: "approver",
        params: ["amount"],
        onReview: (decision) => decision.proceed(...([decision.args.amount] as [number])),
      },
      async (amount: number) => {
        refunds.push(amount);
        return amount;
      },
    );
    await refund(900);
    await refund(900); // ESCALATE, approved
    const state = await steward.evaluate({
      agentId: "approver",
      action: "probe",
      parameters: { amount: 0 },
    });
    expect(state.intervention).toBe("ESCALATE"); // 1800 counted
    expect(refunds).toEqual([900, 900]);
  });
});

describe("no_pii", () => {
  const call = guard(
    { tripwires: ["no_pii"] },
    async (_: { note: string; reasoning?: string; nested?: unknown }) => "ran",
  );

  it.each([
    ["an e-mail", "write to jane.doe@example.com"],
    ["a card number with spaces", "card 4111 1111 1111 1111"],
    ["a card number with dashes", "5500-0000-0000-0004"],
    ["an international phone", "call +44 20 7946 0958"],
    ["a US phone", "call (415) 555-2671"],
    ["an SSN", "ssn 123-45-6789"],
    ["a UK NI number", "NI number QQ 12 34 56 C is fine? no: AB123456C"],
    ["a card followed by its CVV", "4111111111111111 123"],
    ["a card with dots", "4111.1111.1111.1111"],
    ["a card glued to its CVV", "4111111111111111123"],
    ["an SSN with spaces", "ssn 123 45 6789"],
    ["a bare SSN next to a keyword", "SSN: 123456789"],
    ["a UK phone", "call 020 7946 0958"],
    ["a UK mobile", "call 07700 900123"],
  ])("blocks %s", async (_, note) => {
    await expect(call({ note })).rejects.toMatchObject({ tripwires: ["no_pii"] });
  });

  it("finds PII in the reasoning and nested arguments", async () => {
    await expect(call({ note: "x", reasoning: "mail bob@corp.io" })).rejects.toBeInstanceOf(
      TripwireViolation,
    );
    await expect(
      call({ note: "x", nested: { list: ["4111111111111111"] } }),
    ).rejects.toBeInstanceOf(TripwireViolation);
  });

  it.each([
    ["an order number", "order 1234567"],
    ["a 16-digit number failing Luhn", "reference 4111 1111 1111 1112"],
    ["a date", "due 2026-01-15"],
    ["an amount", "refund 1,250.00 USD"],
    ["a version", "upgrade to 10.4.12"],
    ["an at-sign without a domain", "meet @ noon"],
    ["a short invoice id", "INV-2024-0042"],
  ])("lets %s through", async (_, note) => {
    await expect(call({ note })).resolves.toBe("ran");
  });

  it("denies when the scan limits are hit, and scans Map values", async () => {
    const padded = [...Array.from({ length: 10_000 }, () => "x"), "victim@example.com"];
    await expect(call({ note: "x", nested: padded })).rejects.toBeInstanceOf(TripwireViolation);
    let deep: unknown = "victim@example.com";
    for (let index = 0; index < 40; index++) deep = { deep };
    await expect(call({ note: "x", nested: deep })).rejects.toBeInstanceOf(TripwireViolation);
    await expect(
      call({ note: "x", nested: new Map([["k", "victim@example.com"]]) }),
    ).rejects.toBeInstanceOf(TripwireViolation);
  });

  it("scans positional arguments without params, and extras beyond params", async () => {
    const ran = vi.fn(async (..._args: unknown[]) => "ran");
    const positional = guard({ tripwires: ["no_pii"] }, (email: string, reasoning: string) =>
      ran(email, reasoning),
    );
    await expect(positional("victim@example.com", "asked")).rejects.toBeInstanceOf(
      TripwireViolation,
    );
    const extra = guard(
      { tripwires: ["no_pii"], params: ["amount"] },
      (amount: number, note: string) => ran(amount, note),
    );
    await expect(extra(5, "victim@example.com")).rejects.toBeInstanceOf(TripwireViolation);
    const keywords = guard({ blockedKeywords: ["password"] }, (note: string, reasoning: string) =>
      ran(note, reasoning),
    );
    await expect(keywords("x", "here is the password")).rejects.toBeInstanceOf(TripwireViolation);
    expect(ran).not.toHaveBeenCalled();
  });

  it("does not take millisecond timestamps for cards, but finds real test cards", () => {
    const start = 1_763_884_800_000;
    for (let index = 0; index < 1_000; index++) {
      expect(detectPii(String(start + index))).toEqual([]);
    }
    let seed = 42;
    const random = () => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    for (let index = 0; index < 1_000; index++) {
      // Numbers that are not integers are never PII; decimals written with up to 12 digits
      // after the point neither. (A decimal string whose fraction is, whole, a valid card
      // number is one: "9.4111111111111111".)
      const value = random();
      expect(containsPii(value)).toBe(false);
      expect(detectPii(value.toFixed(12))).toEqual([]);
      expect(detectPii((value * 1e6).toFixed(6))).toEqual([]);
    }
    for (const card of [
      "4111111111111111",
      "4012888888881881",
      "5555555555554444",
      "2223003122003222",
      "378282246310005",
      "6011111111111117",
      "3530111333300000",
      "30569309025904",
      "6200000000000005",
    ]) {
      expect(detectPii(card)).toEqual(["card"]);
    }
  });

  it("checks Luhn", () => {
    expect(luhnValid("4111111111111111")).toBe(true);
    expect(luhnValid("4111111111111112")).toBe(false);
    expect(detectPii("4012888888881881")).toEqual(["card"]);
  });
});

/** A deterministic pseudo-random generator for generated variants. */
function seeded(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state * 1_103_515_245 + 12_345) % 2 ** 31;
    return state / 2 ** 31;
  };
}

const TEST_CARDS = ["4111111111111111", "5555555555554444", "378282246310005", "6011111111111117"];
const SEPARATORS = [
  " ",
  "  ",
  "\t",
  " \t ",
  "-",
  "\u2013", // en dash
  "\u2014", // em dash
  "\u2010", // hyphen
  "\u2011", // non-breaking hyphen
  "\u2212", // minus sign
  "\ufe63", // small hyphen-minus
  "\uff0d", // full-width hyphen-minus
  ".",
  " - ",
  "\u00a0", // no-break space
  "\u2009", // thin space
  "\u202f", // narrow no-break space
  "\u3000", // ideographic space
  "\u2800", // braille pattern blank
];
const INVISIBLES = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\u180e", "\u034f"];

/** `card` in groups of 4 with `separator`, and `invisible` after `every`-th digit. */
function disguise(card: string, separator: string, invisible = "", every = 0): string {
  let out = "";
  for (const [index, digit] of [...card].entries()) {
    if (index > 0 && index % 4 === 0) out += separator;
    out += digit;
    if (invisible && every > 0 && index % every === every - 1) out += invisible;
  }
  return out;
}

// Break 7: no_pii was evaded by separators, invisible characters, look-alike dashes, a decimal
// point, digits of other scripts, and PII inside values that are not plain JSON.
describe("no_pii evasions", () => {
  const ran = vi.fn(async (..._args: unknown[]) => "ran");
  const call = guard({ tripwires: ["no_pii"] }, async (args: { note: unknown }) => ran(args));

  it.each([
    ["double spaces", "card 4111  1111  1111  1111"],
    ["tabs", "card 4111\t1111\t1111\t1111"],
    ["mixed blanks", "4111 \t 1111\u00a01111\u20031111"],
    ["zero-width characters", "4111\u200b1111\u200c1111\u200d1111"],
    ["a zero-width character in a group", "41\u200b11111111111111"],
    ["soft hyphens", "4111\u00ad1111\u00ad1111\u00ad1111"],
    ["a leading 9.", "9.4111111111111111"],
    ["a leading 0.", "amount 0.4111111111111111 EUR"],
    ["a trailing decimal", "4111111111111111.25"],
    ["mixed separators", "4111-1111-1111.1111"],
    ["more mixed separators", "4111.1111-1111 1111"],
    ["en dashes", "4111\u20131111\u20131111\u20131111"],
    ["a minus sign", "4111\u22121111\u22121111\u22121111"],
    ["spaced dashes", "4111 - 1111 - 1111 - 1111"],
    [
      "Arabic-Indic digits",
      "\u0664\u0661\u0661\u0661 \u0661\u0661\u0661\u0661 \u0661\u0661\u0661\u0661 \u0661\u0661\u0661\u0661",
    ],
    [
      "Devanagari digits",
      "\u096a\u0967\u0967\u0967\u0967\u0967\u0967\u0967\u0967\u0967\u0967\u0967\u0967\u0967\u0967\u0967",
    ],
    ["mathematical digits", "\u{1d7d2}\u{1d7cf}\u{1d7cf}\u{1d7cf}111111111111"],
    ["combining marks", "4\u03021111111111111111".replace("11111", "1\u03001111")],
    ["an SSN with en dashes", "ssn 123\u201345\u20136789"],
    ["an SSN with em dashes", "123\u201445\u20146789"],
    ["an SSN with minus signs", "123\u221245\u22126789"],
    ["an SSN with hyphens", "123\u201045\u20106789"],
    ["an SSN with full-width dashes", "123\uff0d45\uff0d6789"],
    ["an SSN with double spaces", "123  45  6789"],
    ["an SSN with a zero-width character", "123-4\u200b5-6789"],
    ["an e-mail with zero-width characters", "jane\u200b.doe@exa\u200cmple.com"],
    ["an e-mail with a soft hyphen", "jane\u00ad@example\u00ad.com"],
    [
      "a full-width e-mail",
      "\uff4a\uff41\uff4e\uff45\uff20\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45\uff0e\uff43\uff4f\uff4d",
    ],
    ["an e-mail with accents", "jos\u00e9@ex\u00e4mple.de"],
    ["an e-mail with a word joiner before the at", "jane\u2060@example.com"],
  ])("blocks a card, SSN or e-mail disguised with %s", async (_, note) => {
    await expect(call({ note })).rejects.toMatchObject({ tripwires: ["no_pii"] });
  });

  it("blocks generated variants: every separator, invisible character and position", async () => {
    const random = seeded(7);
    const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
    let count = 0;
    for (const card of TEST_CARDS) {
      for (const separator of SEPARATORS) {
        const variants = [
          disguise(card, separator),
          disguise(card, separator, pick(INVISIBLES), 1 + Math.floor(random() * 5)),
          `${pick(["9.", "0.", "ref "])}${disguise(card, pick(SEPARATORS), pick(INVISIBLES), 3)}`,
        ];
        for (const note of variants) {
          expect(detectPii(note), JSON.stringify(note)).toContain("card");
          count++;
        }
      }
    }
    for (const separator of SEPARATORS.filter((item) => !/[.\u2800]/.test(item))) {
      const ssn = `123${separator}45${separator}6789`;
      expect(detectPii(ssn), JSON.stringify(ssn)).toContain("national_id");
      const email = `jane${pick(INVISIBLES)}.doe@example${pick(INVISIBLES)}.com`;
      expect(detectPii(email), JSON.stringify(email)).toContain("email");
      count += 2;
    }
    expect(count).toBeGreaterThan(200);
  });

  class Customer {
    readonly #card: string;
    constructor(card: string) {
      this.#card = card;
    }
    get card(): string {
      return this.#card;
    }
  }

  it.each([
    ["a Map key", () => new Map([["jane@example.com", 1]])],
    ["a Map value", () => new Map([["k", "4111 1111 1111 1111"]])],
    ["a Set member", () => new Set(["x", "123-45-6789"])],
    [
      "a class instance's own property",
      () => Object.assign(new (class Order {})(), { to: "jane@example.com" }),
    ],
    [
      "a non-enumerable property",
      () => Object.defineProperty({}, "card", { value: "4111111111111111", enumerable: false }),
    ],
    ["a getter on a class", () => new Customer("4111111111111111")],
    ["a symbol-keyed property", () => ({ [Symbol("card")]: "4111111111111111" })],
    ["a Buffer", () => Buffer.from("write to jane@example.com")],
    ["a Uint8Array", () => new TextEncoder().encode("card 4111 1111 1111 1111")],
    ["an ArrayBuffer", () => new TextEncoder().encode("ssn 123-45-6789").buffer],
    ["a DataView", () => new DataView(new TextEncoder().encode("jane@example.com").buffer)],
    [
      "a Uint16Array of UTF-16 text",
      () => Uint16Array.from("jane@example.com", (c) => c.charCodeAt(0)),
    ],
    ["an object with toJSON", () => ({ toJSON: () => ({ to: "jane@example.com" }) })],
    ["an Error's message", () => new Error("card 4111111111111111 declined")],
    ["a boxed string", () => new String("jane@example.com")],
    ["URLSearchParams", () => new URLSearchParams({ email: "jane@example.com" })],
    ["a URL", () => new URL("https://shop.example/?email=jane%40example.com&to=jane@example.com")],
    ["a Map in a Set in a list", () => [new Set([new Map([["k", ["4111111111111111"]]])])]],
    [
      "a cyclic object",
      () => {
        const node: Record<string, unknown> = { name: "a" };
        node.self = node;
        node.mail = "jane@example.com";
        return node;
      },
    ],
  ])("finds PII in %s", async (_, make) => {
    await expect(call({ note: make() })).rejects.toMatchObject({ tripwires: ["no_pii"] });
  });

  it("scans a class instance passed as the object argument itself, getters included", async () => {
    const body = vi.fn(async (customer: Customer) => customer.card);
    const charge = guard({ tripwires: ["no_pii"] }, body);
    await expect(charge(new Customer("4111111111111111"))).rejects.toBeInstanceOf(
      TripwireViolation,
    );
    await expect(charge(new Customer("not a card"))).resolves.toBe("not a card");
  });

  it.each([
    [
      "millisecond timestamps",
      () => Array.from({ length: 200 }, (_, i) => String(1_763_884_800_000 + i * 7)),
    ],
    ["second timestamps", () => Array.from({ length: 200 }, (_, i) => String(1_763_884_800 + i))],
    ["ISO timestamps", () => ["2026-01-15T10:20:30.123Z", "2026-01-15 10:20:30.123456+00:00"]],
    ["order ids", () => ["ORD-2024-000123", "order #1234567", "PO 2026-0042-17", "INV-2024-0042"]],
    [
      "UUIDs",
      () => ["3f2b8a6e-4c1d-4e5f-9a7b-1c2d3e4f5a6b", "00000000-0000-0000-0000-000000000000"],
    ],
    [
      "version strings",
      () => ["1.2.3", "10.0.19041.1288", "v2.14.0-rc.1", "4.1.111.1111", "2024.01.15.1"],
    ],
    ["IP addresses", () => ["192.168.1.1", "10.0.0.254", "fe80::1ff:fe23:4567:890a"]],
    [
      "amounts and short decimals",
      () => ["1234.56", "refund 1,250.00 USD", "51.50735095", "-0.1278", "3.14159"],
    ],
    ["numbers that are not integers", () => Array.from({ length: 500 }, (_, i) => (i + 0.5) / 7)],
    ["git hashes", () => ["9fceb02d0ae598e95dc970b74767f19372d61af8", "1c2d3e4f"]],
    ["dates", () => ["2026-01-15", "15/01/2026", "Jan 15, 2026"]],
  ])("lets %s through", async (_, make) => {
    await expect(call({ note: make() })).resolves.toBe("ran");
  });
});

// Break 7: blockedKeywords was evaded by zero-width characters, full-width letters, Cyrillic
// look-alikes and soft hyphens.
describe("blockedKeywords evasions", () => {
  const call = guard(
    { blockedKeywords: ["password", "drop table"] },
    async (_: { reasoning?: unknown; note?: string }) => "ran",
  );

  it.each([
    ["a zero-width space", "send the pass\u200bword"],
    ["a soft hyphen", "send the pass\u00adword"],
    ["full-width letters", "send the \uff50\uff41\uff53\uff53\uff57\uff4f\uff52\uff44"],
    ["Cyrillic look-alikes", "send the \u0440\u0430ssw\u043erd"],
    ["a Greek omicron", "send the passw\u03bfrd"],
    ["upper case", "send the PASSWORD"],
    ["all of them", "\u0420\u0410\u200bS\u00adS\uff37\u039fRD"],
    ["a phrase with a look-alike space", "DROP\u00a0TABLE users"],
    ["a phrase with an invisible character", "drop \u200btable users"],
    // Look-alike capitals whose lower case is not a look-alike (Cyrillic В, Т; Greek Β).
    ["Cyrillic capitals", "DR\u041eP \u0422\u0410\u0412L\u0415 users"],
    ["a Greek capital beta", "DROP TA\u0392LE users"],
    ["a combining mark", "pa\u0301ssword"],
    ["a run of spaces", "drop   table users"],
  ])("blocks a keyword disguised with %s", async (_, reasoning) => {
    await expect(call({ reasoning })).rejects.toMatchObject({ tripwires: ["blocked_keywords"] });
  });

  it("blocks generated look-alike variants", async () => {
    const lookalikes: Record<string, readonly string[]> = {
      p: ["p", "\u0440", "\uff50"],
      a: ["a", "\u0430", "\uff41"],
      s: ["s", "\u0455", "\uff53"],
      o: ["o", "\u043e", "\u03bf", "\uff4f"],
      w: ["w", "\uff57"],
      r: ["r", "\uff52"],
      d: ["d", "\uff44"],
    };
    const random = seeded(11);
    for (let index = 0; index < 100; index++) {
      let word = "";
      for (const letter of "password") {
        const options = lookalikes[letter] ?? [letter];
        word += options[Math.floor(random() * options.length)];
        if (random() < 0.3) word += INVISIBLES[Math.floor(random() * INVISIBLES.length)];
      }
      if (random() < 0.5) word = word.toUpperCase();
      await expect(call({ reasoning: `here is the ${word}` }), word).rejects.toMatchObject({
        tripwires: ["blocked_keywords"],
      });
    }
  });

  it("finds keywords in reasoning held in non-JSON values", async () => {
    for (const reasoning of [
      new Set(["the password"]),
      new Map([["the password", 1]]),
      [new Map([["k", "the pass\u200bword"]])],
      Buffer.from("the password"),
      { toJSON: () => "the password" },
    ]) {
      await expect(call({ reasoning })).rejects.toMatchObject({ tripwires: ["blocked_keywords"] });
    }
  });

  it("lets look-alike-free text through", async () => {
    for (const reasoning of [
      "pass the word",
      "passport renewal",
      "drop the table leg",
      "pass-word",
    ]) {
      await expect(call({ reasoning }), reasoning).resolves.toBe("ran");
    }
  });
});

// Break 7: maxSpend read `spend` before `cost`, so { cost: 5000, spend: 0 } ran.
describe("maxSpend reads every spend-like field", () => {
  const body = vi.fn(async (..._args: unknown[]) => "ran");
  const call = guard({ maxSpend: 100 }, async (args: Record<string, unknown>) => body(args));

  it.each([
    [{ cost: 5000, spend: 0 }, /cost/],
    [{ spend: 0, amount: 0, cost: 101 }, /cost/],
    [{ amount: 10, price: 900 }, /price/],
    [{ total: 101 }, /total/],
    [{ spend: 50, cost: 100.5 }, /cost/],
    [{ amount: 101n }, /amount/],
  ])("denies %o: the largest wins", async (args, field) => {
    await expect(call(args)).rejects.toMatchObject({ tripwires: ["max_spend"] });
    await expect(call(args)).rejects.toThrow(field);
  });

  it.each([
    [{ amount: -5 }, /amount.*negative/],
    [{ cost: "5000" }, /cost.*not a number/],
    [{ spend: Number.NaN }, /spend.*not a number/],
    [{ price: Number.POSITIVE_INFINITY }, /price.*not a number/],
    [{ amount: 5, cost: null }, /cost.*not a number/],
    [{ note: "no amount at all" }, /none of/],
  ])("denies %o with a clear reason", async (args, reason) => {
    await expect(call(args)).rejects.toThrow(reason);
  });

  it("runs when every spend-like field is within the limit", async () => {
    body.mockClear();
    await expect(call({ spend: 100, amount: 20, cost: 99.5, price: 0, total: 100n })).resolves.toBe(
      "ran",
    );
    await expect(call({ amount: 100 })).resolves.toBe("ran");
    expect(body).toHaveBeenCalledTimes(2);
  });
});

// Attack F4: guard() checked a shallow copy and ran the live original: a class's getter, an
// inherited or non-enumerable field, a Proxy, a getter that changes after a few reads, or an
// argument changed while a steward was awaited ran unchecked.
describe("guard runs what it checked", () => {
  class Cart {
    constructor(
      public price: number,
      public quantity: number,
    ) {}
    get total(): number {
      return this.price * this.quantity;
    }
  }

  it("reads a class instance's getters for maxSpend and CEL", async () => {
    const checkout = guard({ maxSpend: 100 }, async (cart: Cart) => `charged ${cart.total}`);
    await expect(checkout(new Cart(20, 2))).resolves.toBe("charged 40");
    await expect(checkout(new Cart(20, 500))).rejects.toMatchObject({ tripwires: ["max_spend"] });
    const viaCel = guard({ tripwires: ["total < 100"] }, async (cart: Cart) => cart.total);
    await expect(viaCel(new Cart(20, 2))).resolves.toBe(40);
    await expect(viaCel(new Cart(20, 500))).rejects.toBeInstanceOf(TripwireViolation);
  });

  it.each([
    ["an inherited amount", () => Object.assign(Object.create({ amount: 5000 }), { spend: 1 })],
    [
      "a non-enumerable amount",
      () => Object.defineProperty({ spend: 1 }, "amount", { value: 5000, enumerable: false }),
    ],
    [
      "a getter on a class",
      () =>
        new (class {
          spend = 1;
          get amount() {
            return 5000;
          }
        })(),
    ],
  ])("denies maxSpend on %s", async (_label, make) => {
    const pay = guard({ maxSpend: 100 }, async (request: { amount: number }) => request.amount);
    await expect(pay(make())).rejects.toMatchObject({ tripwires: ["max_spend"] });
  });

  it("gives the function the values it checked: a getter is read once", async () => {
    let reads = 0;
    const request = {
      get amount() {
        reads++;
        return reads <= 3 ? 10 : 5000;
      },
    };
    const seen: number[] = [];
    const pay = guard(
      { maxSpend: 100, tripwires: ["amount < 50"] },
      async (r: { amount: number }) => {
        seen.push(r.amount, r.amount);
        return "paid";
      },
    );
    await expect(pay(request)).resolves.toBe("paid");
    expect(seen).toEqual([10, 10]);
    expect(reads).toBe(1);
  });

  it.each([
    ["a Proxy", () => new Proxy({ amount: 10 }, {})],
    ["a Proxy that lies about its keys", () => new Proxy({}, { ownKeys: () => [] })],
    ["a Promise", () => ({ amount: 10, later: Promise.resolve("jane@example.com") })],
    ["a WeakRef", () => ({ amount: 10, ref: new WeakRef({ to: "jane@example.com" }) })],
    ["a WeakMap", () => ({ amount: 10, map: new WeakMap() })],
    ["a Blob", () => ({ amount: 10, blob: new Blob(["jane@example.com"]) })],
    [
      "a generator",
      () => ({
        amount: 10,
        items: (function* () {
          yield "jane@example.com";
        })(),
      }),
    ],
  ])("denies an argument holding %s, which cannot be checked", async (_label, make) => {
    const body = vi.fn(async (_: unknown) => "ran");
    const call = guard({ maxSpend: 100 }, body);
    await expect(call(make() as never)).rejects.toMatchObject({
      tripwires: ["arguments-unreadable"],
      message: expect.stringMatching(/cannot be checked/),
    });
    expect(body).not.toHaveBeenCalled();
  });

  it("refuses arguments changed while the steward is awaited, toJSON or not", async () => {
    const steward = neverFiringSteward();
    const paid: number[] = [];
    const pay = guard({ maxSpend: 100, steward }, async (request: { amount: number }) => {
      paid.push(request.amount);
      return "paid";
    });
    const request = {
      amount: 10,
      toJSON() {
        return { amount: 10 };
      },
    };
    const pending = pay(request);
    request.amount = 5000; // while the steward evaluates
    await expect(pending).rejects.toMatchObject({ tripwires: ["arguments-changed"] });
    const instance = new Cart(1, 10);
    const second = guard({ maxSpend: 100, steward }, async (cart: Cart) => cart.total)(instance);
    instance.quantity = 10_000;
    await expect(second).rejects.toMatchObject({ tripwires: ["arguments-changed"] });
    expect(paid).toEqual([]);
  });

  it("freezes the plain data the function receives", async () => {
    const pay = guard({ maxSpend: 100 }, async (request: { amount: number; lines: number[] }) => {
      expect(Object.isFrozen(request)).toBe(true);
      expect(Object.isFrozen(request.lines)).toBe(true);
      return request.lines.length;
    });
    const request = { amount: 10, lines: [1, 2] };
    await expect(pay(request)).resolves.toBe(2);
    expect(Object.isFrozen(request)).toBe(false);
  });

  it("refuses class instances and functions with refuseClassInstances", async () => {
    const strict = guard({ maxSpend: 100, refuseClassInstances: true }, async (cart: Cart) =>
      String(cart.total),
    );
    await expect(strict(new Cart(1, 1))).rejects.toMatchObject({
      tripwires: ["arguments-unreadable"],
      message: expect.stringMatching(/refuseClassInstances/),
    });
    const plain = guard(
      { maxSpend: 100, refuseClassInstances: true },
      async (request: { amount: number; when: Date }) => request.when.getTime(),
    );
    await expect(plain({ amount: 1, when: new Date(5) })).resolves.toBe(5);
  });
});

// Attack F5: no_pii skipped values the function receives: own properties of arrays, Maps,
// Sets and functions, inherited data properties, symbol descriptions.
describe("no_pii walks every value the function can read", () => {
  const call = guard({ tripwires: ["no_pii"] }, async (_: { note: unknown }) => "ran");

  it.each([
    ["a RegExp match's input", () => "order 123 for jane@example.com".match(/order (\d+)/)],
    ["an array's own property", () => Object.assign(["x"], { email: "jane@example.com" })],
    ["a Map's own property", () => Object.assign(new Map(), { email: "jane@example.com" })],
    ["a Set's own property", () => Object.assign(new Set(), { email: "jane@example.com" })],
    [
      "a Map subclass's field",
      () =>
        new (class extends Map {
          email = "jane@example.com";
        })(),
    ],
    ["an inherited data property", () => Object.create({ email: "jane@example.com" })],
    ["a symbol's description", () => Symbol("jane@example.com")],
    ["a function's property", () => Object.assign(() => 0, { email: "jane@example.com" })],
  ])("finds PII in %s", async (_label, make) => {
    await expect(call({ note: make() })).rejects.toMatchObject({ tripwires: ["no_pii"] });
  });

  it.each([
    ["a Promise", () => Promise.resolve("jane@example.com")],
    ["a WeakRef", () => new WeakRef({ to: "jane@example.com" })],
    ["a Blob", () => new Blob(["jane@example.com"])],
  ])("scanValues reports %s as not scannable", (_label, make) => {
    expect(containsPii({ note: make() })).toBe(true);
  });
});

// Attack F6: guard() text had no size bound: blockedKeywords took seconds and hundreds of
// megabytes per megabyte of reasoning (5 MB crashed the process), no_pii over a second.
describe("guard bounds the text it scans", () => {
  it("denies a call whose arguments hold more text than GUARD_LIMITS allows", async () => {
    const body = vi.fn(async (_: unknown) => "ran");
    const call = guard({ blockedKeywords: ["password"], tripwires: ["no_pii"] }, body);
    const reasoning = "lorem ipsum ".repeat(Math.ceil(GUARD_LIMITS.textCharacters / 12) + 1);
    await expect(call({ reasoning })).rejects.toMatchObject({
      tripwires: ["arguments-unreadable"],
      message: expect.stringMatching(/more than 262144 characters of text/),
    });
    // Bytes count as text too, and the limit is an option.
    await expect(
      guard({ maxTextCharacters: 1_000 }, body)({ data: new Uint8Array(2_000) }),
    ).rejects.toMatchObject({ tripwires: ["arguments-unreadable"] });
    await expect(call({ reasoning: "lorem ipsum ".repeat(1_000) })).resolves.toBe("ran");
    expect(body).toHaveBeenCalledTimes(1);
    expect(() => guard({ maxTextCharacters: -1 }, body)).toThrow(/maxTextCharacters/);
  });

  it("finds a card number at the end of a long run of digits", () => {
    expect(detectPii(`${"2".repeat(200_000)} 4111 1111 1111 1111`)).toContain("card");
    expect(detectPii(`${"2 ".repeat(100_000)}4111 1111 1111 1111`)).toContain("card");
    expect(detectPii(`${"1234 ".repeat(50_000)}4111 1111 1111 1111`)).toContain("card");
    // An unbroken run of more than 19 digits is another number, not a card (attack F7: its
    // windows were tried, and long numbers were often denied).
    expect(detectPii(`${"2".repeat(200_000)}4111111111111111`)).toEqual([]);
  });
});

// Attack F7: no_pii read ordinary numbers as card numbers: digits joined across any space, dot
// or dash, and every 13-to-19-digit window of the run tried (95 % of rows of 12 readings, 72 %
// of rows of 6 prices, 51 % of lists of 3 dates were denied).
describe("no_pii reads card numbers only as cards are written", () => {
  const rows: [string, (random: () => number) => string][] = [
    ["8 two-digit numbers", (random) => series(8, () => 10 + Math.floor(random() * 90))],
    ["12 readings from 0 to 999", (random) => series(12, () => Math.floor(random() * 1_000))],
    ["6 prices", (random) => series(6, () => (random() * 100).toFixed(2))],
    [
      "3 ISO dates",
      (random) =>
        series(3, () => `2024-0${1 + Math.floor(random() * 9)}-${10 + Math.floor(random() * 18)}`),
    ],
    [
      "20 readings with mixed separators",
      (random) =>
        Array.from({ length: 20 }, () => String(Math.floor(random() * 1_000))).join(
          [" ", ".", "-", " - ", "  "][Math.floor(random() * 5)],
        ),
    ],
    ["a table of 4-digit years", (random) => series(10, () => 1990 + Math.floor(random() * 40))],
  ];

  it.each(rows)("lets rows of %s through", (_, make) => {
    const random = seeded(42);
    for (let index = 0; index < 500; index++) {
      const row = make(random);
      expect(detectPii(row), row).toEqual([]);
    }
  });

  it.each([
    ["in groups of four", "4111 1111 1111 1111"],
    ["4-6-5 (American Express)", "3782 822463 10005"],
    ["4-6-4 (Diners Club)", "3056 930902 5904"],
    ["in groups of four, the last of three", "3782-8224-6310-005"],
    ["19 digits in groups of four", "4111 1111 1111 1111 110"],
    ["after another number", "order 12 4111 1111 1111 1111"],
    ["before its expiry date", "4111 1111 1111 1111 12 28"],
    ["unbroken, after a decimal point", "ref 7.6011000990139424116"],
  ])("still finds a card written %s", (_, text) => {
    expect(detectPii(text), text).toContain("card");
  });
});

/** `count` values joined by spaces. */
function series(count: number, make: () => string | number): string {
  return Array.from({ length: count }, make).join(" ");
}

// Attack F8: normalizations the README claimed and the code did not do: control characters,
// horizontal-line symbols between digits, digits that are not decimal digits (dingbats,
// parenthesized), an ideographic full stop in an e-mail, letters Unicode's confusables do not
// list (small capitals, negative squared letters), reasoning given as a list of letters.
describe("no_pii and blockedKeywords read text as the README says", () => {
  const pii = guard({ tripwires: ["no_pii"] }, async (_: { note: unknown }) => "ran");

  it.each([
    ["box-drawing lines", "4111\u25001111\u25011111\u25501111"],
    ["a horizontal line extension", "4111\u23af1111\u23af1111\u23af1111"],
    ["katakana prolonged sound marks", "4111\u30fc1111\uff701111\u30fc1111"],
    ["the ideograph one", "4111\u4e001111\u4e001111 \u4e00 1111"],
    ["box-drawing lines in an SSN", "ssn 123\u250045\u25006789"],
    ["katakana prolonged sound marks in an SSN", "123\u30fc45\u30fc6789"],
    ["C0 controls", "4111\u00011111\u001f1111\u00011111"],
    ["C1 controls", "4111\u00901111\u00901111\u009f1111"],
    ["NUL and DEL", "4111\u00001111\u007f1111\u00001111"],
    [
      "dingbat digits",
      "\u278d\u278a\u278a\u278a \u278a\u278a\u278a\u278a \u278a\u278a\u278a\u278a \u278a\u278a\u278a\u278a",
    ],
    [
      "negative circled digits",
      "\u2779\u2776\u2776\u2776\u2776\u2776\u2776\u2776\u2776\u2776\u2776\u2776\u2776\u2776\u2776\u2776",
    ],
    [
      "double-circled digits",
      "\u24f8\u24f5\u24f5\u24f5 \u24f5\u24f5\u24f5\u24f5 \u24f5\u24f5\u24f5\u24f5 \u24f5\u24f5\u24f5\u24f5",
    ],
    [
      "parenthesized digits",
      "\u2477\u2474\u2474\u2474 \u2474\u2474\u2474\u2474 \u2474\u2474\u2474\u2474 \u2474\u2474\u2474\u2474",
    ],
    [
      "digits with a full stop",
      "\u248b\u2488\u2488\u2488\u2488\u2488\u2488\u2488\u2488\u2488\u2488\u2488\u2488\u2488\u2488\u2488",
    ],
    ["an ideographic full stop in an e-mail", "jane@example\u3002com"],
    ["a half-width ideographic full stop in an e-mail", "jane.doe@mail\uff61example\uff61org"],
    ["a control character in an e-mail", "jane\u0001@exam\u0090ple.com"],
    ["card groups given as a list", ["4111", "1111", "1111", "1111"]],
    ["an SSN given as a list", { parts: ["123", "45", "6789"] }],
  ])("no_pii sees through %s", async (_, note) => {
    await expect(pii({ note })).rejects.toMatchObject({ tripwires: ["no_pii"] });
  });

  const keywords = guard(
    { blockedKeywords: ["password", "drop table"] },
    async (_: { reasoning?: unknown }) => "ran",
  );

  it.each([
    ["a C0 control", "pass\u0001word"],
    ["DEL", "pass\u007fword"],
    ["a C1 control", "pass\u0090word"],
    ["NUL", "pass\u0000word"],
    ["small capitals", "send the \u1d18\u1d00\ua731\ua731\u1d21\u1d0f\u0280\u1d05"],
    ["small capitals in a phrase", "\u1d05\u0280\u1d0f\u1d18 \u1d1b\u1d00\u0299\u029f\u1d07 users"],
    [
      "negative squared letters",
      "\u{1f17f}\u{1f170}\u{1f182}\u{1f182}\u{1f186}\u{1f17e}\u{1f181}\u{1f173}",
    ],
    [
      "negative circled letters",
      "\u{1f15f}\u{1f150}\u{1f162}\u{1f162}\u{1f166}\u{1f15e}\u{1f161}\u{1f153}",
    ],
    ["parenthesized letters", "\u24ab\u249c\u24ae\u24ae\u24b2\u24aa\u24ad\u249f"],
    [
      "regional indicator letters",
      "\u{1f1f5}\u{1f1e6}\u{1f1f8}\u{1f1f8}\u{1f1fc}\u{1f1f4}\u{1f1f7}\u{1f1e9}",
    ],
    ["a list of letters", ["p", "a", "s", "s", "w", "o", "r", "d"]],
    ["a list of words", ["drop", "table", "users"]],
    ["a set of words in a list", [new Set(["drop", "table"]), "users"]],
    ["a list of letter look-alikes", ["\u0440", "\u1d00", "s", "s", "\uff57", "o", "r", "d"]],
  ])("blockedKeywords sees through %s", async (_, reasoning) => {
    await expect(keywords({ reasoning })).rejects.toMatchObject({
      tripwires: ["blocked_keywords"],
    });
  });

  it("lets lists and small capitals that spell no keyword through", async () => {
    for (const reasoning of [
      ["pass", "the", "word"],
      ["drop", "the", "table"],
      "\u1d18\u1d00\ua731\ua731\u1d18\u1d0f\u0280\u1d1b renewal",
      ["4111", "1111"],
    ]) {
      await expect(keywords({ reasoning }), JSON.stringify(reasoning)).resolves.toBe("ran");
    }
    await expect(pii({ note: ["4111", "1111", "1111", "1112"] })).resolves.toBe("ran");
  });
});
