import { AgentHaltedError } from "@gov/core";
import { describe, expect, it, vi } from "vitest";
import { makeSteward } from "./__fixtures__";
import { PolicyError, TripwireViolation } from "./errors";
import { guard } from "./guard";
import { detectPii, luhnValid } from "./pii";
import { GovernanceSteward } from "./steward";

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
    const steward = new GovernanceSteward({
      blueprints: [
        {
          id: "slow@1",
          version: "1",
          tripwires: [{ id: "never", condition: "false", onFail: { decision: "BLOCK" } }],
        },
      ],
    });
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
      expect(detectPii(String(random()))).toEqual([]); // decimals like 0.8734523452345
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
