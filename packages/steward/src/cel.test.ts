import { RE2JS } from "re2js";
import { afterEach, describe, expect, it, vi } from "vitest";
import { makeSteward } from "./__fixtures__";
import { compileExpression } from "./blueprint";
import { estimateProgramSize } from "./cel";
import { EvaluationLimitExceeded, PolicyError } from "./errors";
import { guard } from "./guard";
import { type InterventionResult, STEWARD_LIMITS } from "./models";

/** The first fired tripwire's details in a result's metadata. */
function firstFired(result: InterventionResult): Record<string, unknown> | undefined {
  return (result.metadata.tripwires as Record<string, unknown>[] | undefined)?.[0];
}

/** A blueprint with one tripwire on `condition`. */
function wire(condition: string, extra: Record<string, unknown> = {}) {
  return {
    id: "wire@1",
    version: "1",
    tripwires: [
      {
        id: "wire",
        condition,
        onFail: { decision: "BLOCK", reason: "the condition holds" },
        ...extra,
      },
    ],
    trustDebt: { enabled: false },
  };
}

/** A patterns that backtrack catastrophically, and text that makes them do it. */
const REDOS: readonly [pattern: string, text: string, expected: boolean][] = [
  ["^(a+)+$", `${"a".repeat(50_000)}!`, false],
  ["(a|a)*$", `${"a".repeat(50_000)}!`, true],
  ["^(a|aa)+$", `${"a".repeat(50_000)}!`, false],
  // 20,000 characters: RE2 answers at once, but the charge grows with the program (102
  // instructions: one step per 4 characters per 8 instructions).
  ["(.*a){20}", "a".repeat(20_000), true],
  ["^(.*a){20}$", `${"a".repeat(5_000)}b`, false],
  ["^(\\w+\\s?)*$", `${"word ".repeat(10_000)}!`, false],
  ["^([a-z]+)+$", `${"abc".repeat(10_000)}1`, false],
  ["^(a*)*b$", "a".repeat(50_000), false],
  ["^((ab)*)+c$", `${"ab".repeat(20_000)}x`, false],
  ["^(x+x+)+y$", "x".repeat(50_000), false],
];

// Break 5: CEL matches() on JavaScript's backtracking engine let agent text block the event
// loop (`^(a+)+$` with 31 characters took 35 s). Each of these would run for hours there.
describe("matches() runs on RE2 (linear time)", () => {
  it.each(REDOS)(
    "%s over long agent text answers, as a literal pattern",
    async (pattern, text, expected) => {
      const { steward } = makeSteward({
        blueprints: [wire(`args.text.matches(${JSON.stringify(pattern)})`)],
      });
      const result = await steward.evaluate({ action: "post", parameters: { text } });
      expect(result.intervention).toBe(expected ? "BLOCK" : "OK");
      expect(firstFired(result)?.error).toBeUndefined();
    },
    120_000,
  );

  // Break 5: a pattern that comes from a variable (the agent's own arguments) must not reach
  // the backtracking engine either.
  it("runs a pattern from a variable on RE2 too, and refuses one RE2 cannot compile", async () => {
    const { steward } = makeSteward({
      blueprints: [wire("args.text.matches(args.pattern)", { onFail: { decision: "ESCALATE" } })],
    });
    for (const [pattern, text, expected] of REDOS) {
      const result = await steward.evaluate({ action: "post", parameters: { text, pattern } });
      expect(result.intervention, pattern).toBe(expected ? "ESCALATE" : "OK");
    }
    // A backreference or lookaround from a variable cannot be compiled: the tripwire fires.
    for (const pattern of ["(a)\\1", "(?=a)a", "(?!b)a", "(?<=a)b", "(?<!a)b", "(?<n>a)\\k<n>"]) {
      const result = await steward.evaluate({
        action: "post",
        parameters: { text: "aa", pattern },
      });
      expect(result.intervention, pattern).toBe("ESCALATE");
      expect(firstFired(result)?.error, pattern).toMatch(/not RE2 syntax/);
    }
    // Past the size bound of a pattern from a variable: refused, not compiled.
    const long = await steward.evaluate({
      action: "post",
      parameters: { text: "a", pattern: "a".repeat(STEWARD_LIMITS.variablePatternLength + 1) },
    });
    expect(firstFired(long)?.error).toMatch(/limit for a pattern from a variable is 256/);
  }, 120_000);

  it("speaks RE2 syntax: inline flags, Unicode classes, POSIX classes", async () => {
    const { steward } = makeSteward({
      blueprints: [
        wire(
          'reasoning.matches("(?i)wire THE money") && reasoning.matches("\\\\p{Greek}") && reasoning.matches("[[:digit:]]{3}") && matches(reasoning, "(?i)ωMEGA")',
        ),
      ],
    });
    const result = await steward.evaluate({
      action: "pay",
      reasoning: "I will WIRE the MONEY to Ωmega, ref 123",
    });
    expect(firstFired(result)?.error).toBeUndefined();
    expect(result.intervention).toBe("BLOCK");
  });

  // Break 5: patterns RE2 does not support are refused when the blueprint loads, naming the
  // tripwire's path and what is wrong.
  it.each([
    ["backreference", 'args.text.matches("(a)\\\\1")'],
    ["named backreference", 'args.text.matches("(?P<n>a)\\\\k<n>")'],
    ["lookahead", 'args.text.matches("foo(?=bar)")'],
    ["negative lookahead", 'args.text.matches("foo(?!bar)")'],
    ["lookbehind", 'args.text.matches("(?<=foo)bar")'],
    ["negative lookbehind", 'args.text.matches("(?<!foo)bar")'],
    ["possessive quantifier", 'args.text.matches("a++")'],
    ["inside a macro", 'args.items.exists(x, x.matches("(?=a)"))'],
    ["too long", `args.text.matches("${"a".repeat(STEWARD_LIMITS.patternLength + 1)}")`],
  ])("refuses a %s at load", (_label, condition) => {
    let caught: unknown;
    try {
      makeSteward({
        blueprints: [
          {
            ...wire("true"),
            tripwires: [wire("true").tripwires[0], { ...wire(condition).tripwires[0], id: "bad" }],
          },
        ],
      });
    } catch (error) {
      caught = error;
    }
    expect(PolicyError.isInstance(caught)).toBe(true);
    const error = caught as PolicyError;
    expect(error.path).toBe("tripwires[1].condition");
    expect(error.blueprintId).toBe("wire@1");
    expect(error.problem).toMatch(/matches\(\) pattern/);
    expect(error.recoveryHint).toMatch(/RE2/);
  });

  it("refuses such a pattern in a check's rule and in a guard condition", () => {
    expect(() =>
      makeSteward({
        blueprints: [
          {
            id: "c@1",
            version: "1",
            checks: [{ id: "r", passes: 'reasoning.matches("(\\\\w)\\\\1")' }],
          },
        ],
      }),
    ).toThrow(/checks\[0\]\.passes.*matches\(\) pattern/);
    expect(() => guard({ tripwires: ['note.matches("(?=x)")'] }, async () => 1)).toThrow(
      /guard options at tripwires\[0\].*matches\(\) pattern/,
    );
  });
});

/**
 * A steward with one NUDGE tripwire on `args.a == 1` and a 5 ms budget, on a clock that says
 * each read is `msPerRead` after the previous one (restore with vi.restoreAllMocks).
 */
function stallingSteward(msPerRead: number) {
  const made = makeSteward({
    blueprints: [wire("args.a == 1", { latencyBudgetMs: 5, onFail: { decision: "NUDGE" } })],
  });
  let now = 0;
  vi.spyOn(performance, "now").mockImplementation(() => {
    now += msPerRead;
    return now;
  });
  return made;
}

describe("bounded tier-0 evaluation", () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  const big = Array.from({ length: 3_000 }, (_, index) => index);

  // Break 5: nested exists() over 3,000 items took a second; a tripwire past its budget fails
  // closed (it fires, at least BLOCK), audit-visible with its id and the reason.
  it.each([
    ["nested exists", "args.items.exists(x, args.items.exists(y, x == y + 1000000))"],
    ["nested all", "!args.items.all(x, args.items.all(y, x != y + 1000000))"],
    ["nested map", "args.items.map(x, args.items.map(y, x + y)).size() == 0"],
    ["nested filter", "args.items.filter(x, args.items.filter(y, y > x).size() > 0).size() < 0"],
    ["exists_one", "args.items.exists_one(x, args.items.exists(y, y == x + 1000000))"],
    ["long strings", 'args.items.exists(x, reasoning.lowerAscii().contains(string(x) + "zz"))'],
    ["split", 'reasoning.split("").exists(c, reasoning.split("").exists(d, c + d == "zz"))'],
    ["matches in a loop", 'args.items.exists(x, reasoning.matches("(a|aa)+z"))'],
    ["errors in a loop", "args.items.exists(x, args.items.exists(y, y.foo == 1))"],
  ])(
    "fails closed on %s over a large list",
    async (_label, condition) => {
      const { steward, audit } = makeSteward({
        blueprints: [wire(condition, { onFail: { decision: "FLAG", reason: "looked odd" } })],
      });
      const result = await steward.evaluate({
        agentId: "attacker",
        action: "post",
        parameters: { items: big },
        reasoning: "a".repeat(60_000),
      });
      // A FLAG tripwire that overran blocks: its answer is unknown, and the agent chose the input.
      expect(result.intervention).toBe("BLOCK");
      expect(result.governanceStatus.firedTripwires).toEqual(["wire"]);
      expect(result.metadata.tripwires).toEqual([
        expect.objectContaining({
          id: "wire",
          decision: "BLOCK",
          exceeded: "steps",
          error: expect.stringMatching(/more than 100000 steps/),
        }),
      ]);
      expect(result.message).toMatch(/could not be evaluated within its bounds/);
      expect(steward.getMetrics().evaluationLimitsExceeded).toBe(1);
      await steward.flush();
      const event = audit.events.find((item) => item.kind === "steward.intervention");
      expect(event?.metadata?.firedTripwires).toMatchObject({
        ids: ["wire"],
        details: [{ id: "wire", exceeded: "steps", error: expect.stringMatching(/steps/) }],
      });
    },
    120_000,
  );

  it("keeps a HALT a HALT, and leaves small inputs alone", async () => {
    const condition = "args.items.exists(x, args.items.exists(y, x == y + 1000000))";
    const { steward } = makeSteward({
      blueprints: [wire(condition, { onFail: { decision: "HALT" } })],
    });
    expect((await steward.evaluate({ action: "a", parameters: { items: big } })).intervention).toBe(
      "HALT",
    );
    // 100 × 100 pairs are within the default budget and answer normally.
    const small = big.slice(0, 100);
    const result = await steward.evaluate({ action: "a", parameters: { items: small } });
    expect(result.intervention).toBe("OK");
    expect(result.metadata.tripwires).toBeUndefined();
  });

  it("gives a tripwire with a larger latencyBudgetMs more steps", async () => {
    const condition = "args.items.exists(x, args.items.exists(y, x == y + 1000000))";
    const items = big.slice(0, 400); // 160,000 pairs: over the default 100,000 steps
    const run = async (extra: Record<string, unknown>) => {
      const { steward } = makeSteward({ blueprints: [wire(condition, extra)] });
      return steward.evaluate({ action: "a", parameters: { items } });
    };
    expect(firstFired(await run({}))).toMatchObject({ exceeded: "steps" });
    const generous = await run({ latencyBudgetMs: 60_000 });
    expect(generous.intervention).toBe("OK");
    expect(generous.metadata.tripwires).toBeUndefined();
  });

  it("fails closed when the input is larger or deeper than what reaches CEL may be", async () => {
    const { steward } = makeSteward({
      blueprints: [wire("args.a == 1", { onFail: { decision: "NUDGE" } })],
    });
    const many = Array.from({ length: STEWARD_LIMITS.evaluationInputValues + 1 }, () => 0);
    let deep: unknown = 1;
    for (let level = 0; level <= STEWARD_LIMITS.evaluationInputDepth; level++) deep = [deep];
    const inContext = await steward.evaluate({ action: "a", parameters: { a: 2 } }, { many });
    for (const result of [
      await steward.evaluate({ action: "a", parameters: { a: 2, many } }),
      await steward.evaluate({ action: "a", parameters: { a: 2, deep } }),
      inContext,
    ]) {
      expect(result.intervention).toBe("BLOCK");
      expect(firstFired(result)).toMatchObject({
        exceeded: "input",
        error: expect.stringMatching(/not evaluated: the input/),
      });
    }
    expect((await steward.evaluate({ action: "a", parameters: { a: 2 } })).intervention).toBe("OK");
  });

  // Guards against blocking legitimate actions at random under load: the step limit is the
  // bound (deterministic); a clock that says the evaluation was slow is a stalled process.
  it("keeps the answer of an evaluation that the clock says overran, and reports it", async () => {
    // The evaluation is fast; the clock says each step took 6 ms (as a stalled process would).
    const { steward, logger } = stallingSteward(6);
    expect((await steward.evaluate({ action: "a", parameters: { a: 2 } })).intervention).toBe("OK");
    expect((await steward.evaluate({ action: "a", parameters: { a: 1 } })).intervention).toBe(
      "NUDGE",
    );
    vi.restoreAllMocks();
    expect(steward.getMetrics()).toMatchObject({
      latencyBudgetOverruns: 2,
      evaluationLimitsExceeded: 0,
    });
    expect(
      logger.lines.filter((line) => /longer than its latency budget/.test(line.message)),
    ).toHaveLength(1);
  });

  // Guards against trusting the answer of an evaluation that stalled grossly (more than 10×
  // its budget): it fails closed, bound "time", reported like the other bounds.
  it("fails closed when the clock says an evaluation took more than 10 times its budget", async () => {
    // The clock says each read is 60 ms after the previous one: 12 times the 5 ms budget.
    const { steward, audit } = stallingSteward(60);
    const result = await steward.evaluate({ action: "a", parameters: { a: 2 } });
    vi.restoreAllMocks();
    expect(result.intervention).toBe("BLOCK");
    expect(firstFired(result)).toMatchObject({
      decision: "BLOCK",
      exceeded: "time",
      error: expect.stringMatching(/more than 10 times its latency budget of 5 ms/),
    });
    expect(steward.getMetrics()).toMatchObject({
      evaluationLimitsExceeded: 1,
      latencyBudgetOverruns: 1,
    });
    await steward.flush();
    expect(audit.events[0]?.metadata?.firedTripwires).toMatchObject({
      details: [{ id: "wire", exceeded: "time" }],
    });
    expect(STEWARD_LIMITS.grossOverrunFactor).toBe(10);
  });

  it("bounds a check's rule: past its bounds it scores 0 and blocks", async () => {
    const { steward, audit } = makeSteward({
      blueprints: [
        {
          id: "rule@1",
          version: "1",
          checks: [
            {
              id: "heavy",
              passes: "!args.items.exists(x, args.items.exists(y, x == y + 1000000))",
            },
          ],
          trustDebt: { enabled: false },
        },
      ],
    });
    const result = await steward.evaluate({ action: "a", parameters: { items: big } });
    expect(result.intervention).toBe("BLOCK");
    expect(result.metadata.checkScores).toEqual({ heavy: 0 });
    expect(result.metadata.checkLimitsExceeded).toEqual({
      heavy: expect.stringMatching(/steps/),
    });
    await steward.flush();
    expect(audit.events[0]?.metadata?.checkLimitsExceeded).toEqual({
      heavy: expect.stringMatching(/steps/),
    });
    const fine = await steward.evaluate({ action: "a", parameters: { items: [1, 2] } });
    expect(fine.intervention).toBe("OK");
  });

  it("bounds guard conditions and rules: past their bounds they deny", async () => {
    const calls: unknown[] = [];
    const fn = guard(
      {
        tripwires: ["!items.exists(x, items.exists(y, x == y + 1000000))"],
        rules: [{ condition: 'note.matches("(a|aa)+$")', decision: "FLAG" }],
      },
      async (args: { items: number[]; note: string }) => {
        calls.push(args);
        return "ran";
      },
    );
    await expect(fn({ items: [1, 2], note: "b" })).resolves.toBe("ran");
    await expect(fn({ items: big, note: "b" })).rejects.toThrow(/within its bounds/);
    // A FLAG rule whose (linear) match is fine keeps flagging only.
    await expect(fn({ items: [1], note: `${"a".repeat(50_000)}!` })).resolves.toBe("ran");
    expect(calls).toHaveLength(2);
  });

  it("throws EvaluationLimitExceeded from a compiled expression past its steps", () => {
    const condition = compileExpression("args.items.all(x, x >= 0)", "condition", {
      stateful: false,
    });
    const variables = { args: { items: big } };
    expect(condition(variables)).toBe(true);
    let caught: unknown;
    try {
      condition(variables, 100);
    } catch (error) {
      caught = error;
    }
    expect(EvaluationLimitExceeded.isInstance(caught)).toBe(true);
    expect((caught as EvaluationLimitExceeded).code).toBe("EVALUATION_LIMIT_EXCEEDED");
    expect((caught as EvaluationLimitExceeded).limit).toBe(100);
  });
});

/** A large object map: `{ k0: 0, k1: 1, … }`. */
function objectMap(size: number, offset = 0): Record<string, number> {
  return Object.fromEntries(
    Array.from({ length: size }, (_, index) => [`k${index}`, index + offset]),
  );
}

// Attack F1: operations whose work grows with their operands (map and deep list equality,
// membership of a container in a list, time-zone conversions) were charged one step each, so
// that a loop over them ran for seconds within the step limit.
describe("built-ins are charged by their operands", () => {
  const rows = Array.from({ length: 200 }, (_, index) => index);

  it.each([
    [
      "map == map",
      "args.rows.exists(r, args.a == args.b)",
      () => ({ rows, a: objectMap(20_000), b: { ...objectMap(19_999), k19999: -1 } }),
    ],
    [
      "map != map",
      "args.rows.all(r, args.a != args.b)",
      () => ({ rows, a: objectMap(20_000), b: objectMap(20_000, 1) }),
    ],
    [
      "a map in a list of maps",
      "args.rows.exists(r, args.a in args.list)",
      () => ({ rows, a: objectMap(30_000), list: [{ ...objectMap(29_999), k29999: -1 }] }),
    ],
    [
      "nested list equality",
      "args.rows.exists(r, args.a == args.b)",
      () => {
        const inner = Array.from({ length: 40_000 }, (_, index) => index);
        return { rows, a: [inner], b: [[...inner.slice(0, -1), -1]] };
      },
    ],
    [
      "time-zone conversions",
      "args.meetings.exists(m, timestamp(m.start).getHours(m.tz) < 0)",
      () => ({
        meetings: Array.from({ length: 1_000 }, () => ({
          start: "2024-05-01T12:30:45.000Z",
          tz: "Europe/Paris",
        })),
      }),
    ],
  ])(
    "fails closed on %s in a loop",
    async (_label, condition, parameters) => {
      const { steward } = makeSteward({
        blueprints: [wire(condition, { onFail: { decision: "NUDGE" } })],
      });
      const result = await steward.evaluate({ action: "a", parameters: parameters() });
      expect(result.intervention).toBe("BLOCK");
      expect(firstFired(result)).toMatchObject({ exceeded: "steps" });
    },
    120_000,
  );

  // Guards against a membership test in a large map costing the map's size: objects reach CEL
  // as Maps, whose lookups are constant, so a realistic allow-list answers within its steps.
  it("answers membership in a 40,000-key allow-list for 5,000 recipients", async () => {
    const { steward } = makeSteward({
      blueprints: [wire("args.recipients.exists(r, !(r in context.allowed))")],
    });
    const allowed = Object.fromEntries(
      Array.from({ length: 40_000 }, (_, index) => [`partner${index}.example`, true]),
    );
    const recipients = Array.from({ length: 5_000 }, (_, index) => `partner${index}.example`);
    const ok = await steward.evaluate({ action: "mail", parameters: { recipients } }, { allowed });
    expect(ok.intervention).toBe("OK");
    expect(ok.metadata.tripwires).toBeUndefined();
    const bad = await steward.evaluate(
      { action: "mail", parameters: { recipients: [...recipients, "evil.example"] } },
      { allowed },
    );
    expect(bad.intervention).toBe("BLOCK");
    expect(firstFired(bad)?.error).toBeUndefined();
  }, 120_000);

  // Guards against a change of meaning when objects reach CEL as Maps: every operation the
  // blueprints use reads the same (and a key named "constructor" no longer hides the map).
  it.each([
    ["field access", "args.order.customer.tier == 'gold'", true],
    ["has() on a present field", "has(args.order.customer.tier)", true],
    ["has() on a missing field", "has(args.order.customer.nickname)", false],
    ["in on a key", "'tier' in args.order.customer", true],
    ["in on a missing key", "'nickname' in args.order.customer", false],
    ["bracket access", "args.order['customer']['tier'] == 'gold'", true],
    ["size of a map", "size(args.order.customer) == 2 && args.order.customer.size() == 2", true],
    ["equality with a map literal", "args.order.customer == {'tier': 'gold', 'id': '7'}", true],
    ["inequality with a map literal", "args.order.customer != {'tier': 'gold'}", true],
    ["iteration in key order", "args.order.customer.map(k, k) == ['tier', 'id']", true],
    ["exists over keys", "args.order.customer.exists(k, k == 'id')", true],
    [
      "a list of maps",
      "args.order.lines.all(l, l.qty > 0) && args.order.lines[1].sku == 'b'",
      true,
    ],
    ["a map in a list of maps", "{'sku': dyn('a'), 'qty': dyn(1)} in args.order.lines", true],
    ["a key named constructor", "args.order.meta.constructor == 'x'", true],
    ["type()", "type(args.order.customer) == map", true],
    ["the context", "context.limits.max > args.order.lines.size()", true],
  ])("reads %s as before", async (_label, condition, expected) => {
    const { steward } = makeSteward({
      blueprints: [wire(condition, { onFail: { decision: "NUDGE" } })],
    });
    const result = await steward.evaluate(
      {
        action: "a",
        parameters: {
          order: {
            customer: { tier: "gold", id: "7" },
            meta: { constructor: "x" },
            lines: [
              { sku: "a", qty: 1 },
              { sku: "b", qty: 2 },
            ],
          },
        },
      },
      { limits: { max: 10 } },
    );
    expect(firstFired(result)?.error).toBeUndefined();
    expect(result.intervention).toBe(expected ? "NUDGE" : "OK");
  });

  // Attack F9: map() and filter() were charged the length of their accumulator on every push
  // (quadratic), so lists over ~1,300 items always blocked.
  it.each([
    ["map", "args.items.map(x, x * 2).size() < 0"],
    ["filter", "args.items.filter(x, x >= 0).size() < 0"],
  ])("charges %s one step per element", async (_label, condition) => {
    const { steward } = makeSteward({ blueprints: [wire(condition)] });
    const items = Array.from({ length: 5_000 }, (_, index) => index);
    const result = await steward.evaluate({ action: "a", parameters: { items } });
    expect(result.metadata.tripwires).toBeUndefined();
    expect(result.intervention).toBe("OK");
  });
});

// Attacks F2, F3, F10: compiling a pattern from a variable was not charged (2,000 distinct
// agent patterns took 157 s), matching was charged far below re2js's worst case, and literal
// patterns were compiled again on every evaluation once more than 256 were loaded.
describe("matches() is charged by its real cost", () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it("charges each distinct pattern from a variable before compiling it", async () => {
    const { steward } = makeSteward({
      blueprints: [wire('args.patterns.exists(p, "/etc/shadow".matches(p))')],
    });
    // 20 distinct patterns of 200 characters: 50,000 steps each before they are compiled.
    const patterns = Array.from(
      { length: 20 },
      (_, index) => `(?i)[a-z]{2}${"x".repeat(190)}${index}`,
    );
    const compile = vi.spyOn(RE2JS, "compile");
    const result = await steward.evaluate({ action: "grep", parameters: { patterns } });
    expect(firstFired(result)).toMatchObject({ exceeded: "steps" });
    // It stopped before compiling most of them.
    expect(compile.mock.calls.length).toBeLessThan(5);
  });

  it("refuses more distinct patterns from variables than one evaluation may use", async () => {
    const { steward } = makeSteward({
      blueprints: [wire('args.patterns.exists(p, "x".matches(p))', { latencyBudgetMs: 10_000 })],
    });
    const patterns = Array.from(
      { length: STEWARD_LIMITS.variablePatternsPerEvaluation + 1 },
      (_, index) => `^${index}$`,
    );
    const result = await steward.evaluate({ action: "grep", parameters: { patterns } });
    expect(firstFired(result)).toMatchObject({
      exceeded: "steps",
      error: expect.stringMatching(/more than 32 distinct matches\(\) patterns/),
    });
    // The same pattern used many times is paid for once.
    const same = await steward.evaluate({
      action: "grep",
      parameters: { patterns: Array.from({ length: 1_000 }, () => "^y$") },
    });
    expect(same.intervention).toBe("OK");
  });

  it("refuses a pattern from a variable whose repetitions would compile to a huge program, without compiling it", async () => {
    const { steward } = makeSteward({ blueprints: [wire("args.text.matches(args.pattern)")] });
    const compile = vi.spyOn(RE2JS, "compile");
    const result = await steward.evaluate({
      action: "grep",
      parameters: { text: "a", pattern: "a{1000}".repeat(30) },
    });
    expect(firstFired(result)?.error).toMatch(
      /would compile to a program of about \d+ instructions/,
    );
    expect(compile).not.toHaveBeenCalled();
  });

  it("never under-estimates the program a pattern compiles to", () => {
    for (const pattern of [
      "a{1000}",
      "(?:\\pL\\pN?){100}!",
      "(?i)\\b(?:secret|password|token)\\b",
      "(a|b|c){3,7}x+y*z?",
      "[a-z]{2,}@[a-z]+\\.(?:com|org){1,2}",
      "(?P<name>\\d{3})-\\Q{5}\\E-(?:x{2}){10}",
      "^(?:(?:a{10}){10}b|c)$",
      "x{2,}y{0,5}[^\\]a]{4}",
    ]) {
      expect(estimateProgramSize(pattern), pattern).toBeGreaterThanOrEqual(
        RE2JS.compile(pattern).programSize(),
      );
    }
  });

  it("charges a large case-folded Unicode pattern by its worst case", async () => {
    const { steward } = makeSteward({
      blueprints: [wire('args.text.matches("(?i)(?:\\\\pL\\\\pN?){1000}!")')],
    });
    // re2js took 1–2.5 s on this within the old charge (it stayed under 100,000 steps).
    const result = await steward.evaluate({
      action: "post",
      parameters: { text: "a".repeat(7_656) },
    });
    expect(firstFired(result)).toMatchObject({ exceeded: "steps" });
    const short = await steward.evaluate({ action: "post", parameters: { text: "a".repeat(40) } });
    expect(short.intervention).toBe("OK");
  });

  it("charges matching an empty text too", () => {
    const condition = compileExpression('reasoning.matches("a")', "condition", {
      stateful: false,
    });
    // Two nodes (the call, its receiver; the literal pattern is read without a step) and at
    // least one step for the match.
    expect(() => condition({ reasoning: "" }, 2)).toThrow(/more than 2 steps/);
    expect(condition({ reasoning: "" }, 3)).toBe(false);
  });

  it("keeps literal patterns after load: evaluations do not compile them again", async () => {
    const tripwires = Array.from({ length: 300 }, (_, index) => ({
      id: `w${index}`,
      condition: `reasoning.matches("(?i)\\\\b(?:secret|token)[-_ ]?${index}\\\\b")`,
      onFail: { decision: "BLOCK" },
    }));
    const { steward } = makeSteward({
      blueprints: [{ id: "many@1", version: "1", tripwires, trustDebt: { enabled: false } }],
    });
    const compile = vi.spyOn(RE2JS, "compile");
    for (let round = 0; round < 3; round++) {
      expect((await steward.evaluate({ action: "a", reasoning: "hello" })).intervention).toBe("OK");
    }
    expect(
      (await steward.evaluate({ action: "a", reasoning: "the TOKEN_7 leaked" })).intervention,
    ).toBe("BLOCK");
    expect(compile).not.toHaveBeenCalled();
  });
});
