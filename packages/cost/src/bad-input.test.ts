import { GovernanceError, InvalidArgumentError, ManualClock, sql } from "@gov/core";
import {
  recordingAuditSink,
  recordingHaltGuard,
  recordingLogger,
  rejectionOf,
  type TestEngine,
  testEngines,
  unreachableStore,
} from "@gov/core/testing";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type CostHarness, costHarness } from "./__fixtures__";
import { BudgetPolicy } from "./budget-policy";
import { CostModule } from "./module";

const A = "billing-agent";
const S = "session-1";
const RESERVATION = "6f0c7a0e-1d2b-4c3d-8e9f-0a1b2c3d4e5f";

/** What `run()`'s promise rejected with: a GovernanceError, never a synchronous throw. */
async function rejected(run: () => unknown): Promise<GovernanceError & { field?: string }> {
  const error = await rejectionOf(run);
  if (!GovernanceError.isInstance(error)) throw error;
  return error as GovernanceError & { field?: string };
}

/** Objects that are not plain: their fields are not what `Object.keys` shows. */
class Options {
  tokens = 1;
  usd = 0;
}
const inherited = (fields: object) => Object.create(fields) as object;
const notPlain = () => [new Map(), new Options(), inherited({ tokens: 1, usd: 0 }), [], "x", 5];

/** Values of the class the attack found (`kind: null` was accepted): none is a count. */
const notACount = [null, Number.NaN, Number.POSITIVE_INFINITY, -1, 1.5, 1e11, "5", {}, true];
const notUsd = [null, Number.NaN, Number.POSITIVE_INFINITY, -1, "-1", 2e9, "abc", {}, [], true];

describe.each(testEngines())(
  "bad input is refused and changes nothing on $name",
  (engine: TestEngine) => {
    let h: CostHarness;

    beforeEach(async () => {
      if (!engine.available) return;
      h = await costHarness(engine);
      h.cost.register({ agentId: A, perSessionUsd: 1, perSessionTokens: 1_000_000 });
    });

    afterEach(async () => {
      await h?.close();
    });

    /** Every row the module writes: none may appear for a refused call. */
    async function written(): Promise<number> {
      const [row] = await h.store.query<{ n: string }>(sql`
      select ((select count(*) from gov_cost.usage) + (select count(*) from gov_cost.reservations)
        + (select count(*) from gov_cost.sessions) + (select count(*) from gov_cost.agent_days))::text as n`);
      return Number(row?.n);
    }

    /**
     * Each call must reject (never throw) with `code`, naming `field`: a value by its key
     * (`tokens`), an unknown option as core's parseOptions names it (`options.kind`).
     */
    async function expectRefused(
      calls: [string, () => unknown][],
      code: string,
      field: (label: string) => string,
    ): Promise<void> {
      for (const [label, call] of calls) {
        const error = await rejected(call).catch((failure: Error) => {
          throw new Error(`${label}: ${failure.message}`);
        });
        expect.soft(error.code, label).toBe(code);
        expect.soft(error.field, label).toBe(field(label));
        expect.soft(error.recoveryHint.length, label).toBeGreaterThan(0);
      }
    }

    it.skipIf(!engine.available)(
      "track refuses null, wrong types, NaN, ∞, negative, huge values and non-plain objects",
      async () => {
        const c = h.cost;
        const calls: [string, () => unknown][] = [
          ["options.kind", () => c.track(A, S, { tokens: 1, usd: 0, kind: null } as never)],
          ...notPlain().map((options, index): [string, () => unknown] => [
            `options#${index}`,
            () => c.track(A, S, options as never),
          ]),
          ["options", () => c.track(A, S, null as never)],
          ...notACount.map((tokens, index): [string, () => unknown] => [
            `tokens#${index}`,
            () => c.track(A, S, { tokens, usd: 0 } as never),
          ]),
          ...notUsd.map((usd, index): [string, () => unknown] => [
            `usd#${index}`,
            () => c.track(A, S, { tokens: 1, usd } as never),
          ]),
          ...["", 5, {}].map((model, index): [string, () => unknown] => [
            `model#${index}`,
            () => c.track(A, S, { tokens: 1, usd: 0, model } as never),
          ]),
          ...["x", 5, {}].map((reservationId, index): [string, () => unknown] => [
            `reservationId#${index}`,
            () => c.track(A, S, { tokens: 1, usd: 0, reservationId } as never),
          ]),
        ];
        await expectRefused(calls, "INVALID_ARGUMENT", (label) => label.split("#")[0] as string);
        expect(await written()).toBe(0);
      },
    );

    it.skipIf(!engine.available)(
      "trackUsage and reconcile refuse a token count that is null, NaN, ∞, negative, fractional or huge",
      async () => {
        const c = h.cost;
        const counts = [
          "inputTokens",
          "outputTokens",
          "cachedInputTokens",
          "cacheWriteTokens",
          "reasoningTokens",
        ];
        const calls: [string, () => unknown][] = [];
        for (const field of counts) {
          for (const [index, value] of notACount.entries()) {
            calls.push([
              `${field}#usage${index}`,
              () => c.trackUsage(A, S, { model: "gpt-4o", outputTokens: 1, [field]: value }),
            ]);
            calls.push([
              `${field}#reconcile${index}`,
              () =>
                c.reconcile(A, S, {
                  reservationId: RESERVATION,
                  model: "gpt-4o",
                  reason: "completed",
                  outputTokens: 1,
                  [field]: value,
                }),
            ]);
          }
        }
        for (const [index, value] of notACount.entries()) {
          calls.push([
            `inputTokens#chunks${index}`,
            () =>
              c.reconcile(A, S, {
                reservationId: RESERVATION,
                model: "gpt-4o",
                reason: "cancelled",
                chunks: 3,
                inputTokens: value as never,
              }),
          ]);
          calls.push([
            `chunks#${index}`,
            () =>
              c.reconcile(A, S, {
                reservationId: RESERVATION,
                model: "gpt-4o",
                reason: "cancelled",
                chunks: value as never,
              }),
          ]);
        }
        await expectRefused(calls, "INVALID_ARGUMENT", (label) => label.split("#")[0] as string);
        expect(await written()).toBe(0);
      },
    );

    it.skipIf(!engine.available)(
      "trackUsage and reconcile refuse bad options, models, reasons and reservation ids",
      async () => {
        const c = h.cost;
        const usage = { model: "gpt-4o", inputTokens: 1 };
        const stream = { reservationId: RESERVATION, model: "gpt-4o", reason: "done", chunks: 1 };
        const calls: [string, () => unknown][] = [
          ["options.kind", () => c.trackUsage(A, S, { ...usage, kind: null } as never)],
          ["options.kind", () => c.reconcile(A, S, { ...stream, kind: null } as never)],
          ...notPlain().flatMap((options, index): [string, () => unknown][] => [
            [`options#usage${index}`, () => c.trackUsage(A, S, options as never)],
            [`options#reconcile${index}`, () => c.reconcile(A, S, options as never)],
          ]),
          ...[null, "", 5, {}].flatMap((model, index): [string, () => unknown][] => [
            [`model#usage${index}`, () => c.trackUsage(A, S, { ...usage, model } as never)],
            [`model#reconcile${index}`, () => c.reconcile(A, S, { ...stream, model } as never)],
          ]),
          ...[null, "", 5, "x".repeat(65)].map((reason, index): [string, () => unknown] => [
            `reason#${index}`,
            () => c.reconcile(A, S, { ...stream, reason } as never),
          ]),
          ...[null, undefined, "x", 5].map((reservationId, index): [string, () => unknown] => [
            `reservationId#${index}`,
            () => c.reconcile(A, S, { ...stream, reservationId } as never),
          ]),
          ["reservationId", () => c.trackUsage(A, S, { ...usage, reservationId: "x" })],
          ...[null, 5, "", "x".repeat(300), "a\u0000b"].flatMap(
            (id, index): [string, () => unknown][] => [
              [`agentId#usage${index}`, () => c.trackUsage(id as never, S, usage)],
              [`sessionId#usage${index}`, () => c.trackUsage(A, id as never, usage)],
              [`agentId#reconcile${index}`, () => c.reconcile(id as never, S, stream)],
              [`sessionId#track${index}`, () => c.track(A, id as never, { tokens: 1, usd: 0 })],
            ],
          ),
        ];
        await expectRefused(calls, "INVALID_ARGUMENT", (label) => label.split("#")[0] as string);
        for (const shape of ["x", 5, [], new Map()]) {
          const error = await rejected(() =>
            c.trackUsage(A, S, { model: "gpt-4o", usage: shape as never }),
          );
          expect(error.code).toBe("USAGE_INVALID");
        }
        expect(await written()).toBe(0);
      },
    );

    it.skipIf(!engine.available)(
      "checkOrRaise refuses non-plain options (a Map once passed with nothing projected) and bad fields",
      async () => {
        const c = h.cost;
        const calls: [string, () => unknown][] = [
          ["options.kind", () => c.checkOrRaise(A, S, { kind: null } as never)],
          ...notPlain().map((options, index): [string, () => unknown] => [
            `options#${index}`,
            () => c.checkOrRaise(A, S, options as never),
          ]),
          ["options", () => c.checkOrRaise(A, S, inherited({ projectedUsd: 0 }) as never)],
          ...[null, "", 5, {}].map((model, index): [string, () => unknown] => [
            `model#${index}`,
            () => c.checkOrRaise(A, S, { model } as never),
          ]),
          ...["inputTokens", "maxTokens", "projectedTokens"].flatMap((field) =>
            notACount.map((value, index): [string, () => unknown] => [
              `${field}#${index}`,
              () => c.checkOrRaise(A, S, { [field]: value }),
            ]),
          ),
          ...notUsd.map((projectedUsd, index): [string, () => unknown] => [
            `projectedUsd#${index}`,
            () => c.checkOrRaise(A, S, { projectedUsd } as never),
          ]),
          ...[null, 5, "", "agent:x"].map((sessionId, index): [string, () => unknown] => [
            `sessionId#${index}`,
            () => c.checkOrRaise(A, sessionId as never, {}),
          ]),
        ];
        await expectRefused(calls, "INVALID_ARGUMENT", (label) => label.split("#")[0] as string);
        expect(await written()).toBe(0);
        expect(h.audit.events).toEqual([]);
      },
    );

    it.skipIf(!engine.available)(
      "release, snapshot, modelBreakdown and flush reject bad arguments",
      async () => {
        const c = h.cost;
        const calls: [string, () => unknown][] = [
          ...[null, 5, "x", {}, ["x"]].map((id, index): [string, () => unknown] => [
            `reservationId#${index}`,
            () => c.release(id as never),
          ]),
          ["reservationIds", () => c.release(...Array.from({ length: 10_001 }, () => RESERVATION))],
          ["agentId", () => c.snapshot(null as never, S)],
          ["sessionId", () => c.snapshot(A, 5 as never)],
          ["agentId", () => c.modelBreakdown(null as never)],
          ...[null, "x", new Map(), { kind: null }].map(
            (options, index): [string, () => unknown] => [
              index === 3 ? "options.kind" : `options#${index}`,
              () => c.modelBreakdown(A, options as never),
            ],
          ),
          ...["x", new Date(Number.NaN), 5].map((since, index): [string, () => unknown] => [
            `since#${index}`,
            () => c.modelBreakdown(A, { since } as never),
          ]),
          ...[Number.NaN, -1, Number.POSITIVE_INFINITY, "10", null, 1.5, 86_400_001].map(
            (timeout, index): [string, () => unknown] => [
              `timeoutMs#${index}`,
              () => c.flush(timeout as never),
            ],
          ),
        ];
        await expectRefused(calls, "INVALID_ARGUMENT", (label) => label.split("#")[0] as string);
        expect(await written()).toBe(0);
      },
    );
  },
);

describe("register", () => {
  // A policy whose caps come from its prototype is not what Object.keys (or a reviewer) sees.
  it("refuses a policy that is not a plain object", () => {
    for (const input of [
      new Map([["agentId", "a"]]),
      inherited({ perSessionUsd: 1, agentId: "a" }),
    ]) {
      expect(() => new BudgetPolicy(input as never)).toThrow(
        expect.objectContaining({ code: "BUDGET_POLICY_INVALID", field: "policy" }),
      );
    }
    expect(
      () => new BudgetPolicy({ agentId: "a", perSessionUsd: 1, alert: new Map() as never }),
    ).toThrow(expect.objectContaining({ code: "BUDGET_POLICY_INVALID", field: "alert" }));
  });
});

// Issue 13 (attack): cost read its per-call options with its own copy of parseOptions
// (checkOptions), so core's guarantees (CONTRIBUTING, Input) did not hold here.
describe("per-call options are read with core's parseOptions", () => {
  let opened: CostModule[] = [];
  afterEach(async () => {
    for (const cost of opened) await cost.close();
    opened = [];
  });

  function cost(): CostModule {
    const module = new CostModule(
      {
        store: unreachableStore(),
        audit: recordingAuditSink(),
        logger: recordingLogger(),
        halt: recordingHaltGuard(),
        clock: new ManualClock(new Date("2026-01-01T00:00:00.000Z")),
      },
      { sweepIntervalMs: null, spoolDirectory: null },
    );
    opened.push(module);
    return module;
  }

  // Break: "caller keys in messages are escaped and cut at 64 characters" — the raw key went
  // into `field` and the message: a line break forged a log line, U+202E reordered the text,
  // and a 5,000-character key was repeated whole.
  it("escapes and cuts an unknown key before repeating it", async () => {
    const module = cost();
    const keys = ['maxTokens\nlevel=error msg="budget disabled"', "\u202emodel", "k".repeat(5_000)];
    for (const key of keys) {
      const error = await rejectionOf(() =>
        module.checkOrRaise("agent", "session", { [key]: 1 } as never),
      );
      expect(InvalidArgumentError.isInstance(error)).toBe(true);
      const { message, field } = error as InvalidArgumentError;
      expect(message).not.toMatch(/[\n\u202e]/);
      expect(field).not.toMatch(/[\n\u202e]/);
      expect(message.length).toBeLessThan(400);
    }
  });

  // Break: "a getter or proxy that throws becomes an InvalidArgumentError ('could not be read',
  // with cause)" — cost's observation and enforcement calls rejected with the raw error instead.
  it("reports options that cannot be read as an InvalidArgumentError", async () => {
    const module = cost();
    const getter = await rejectionOf(() =>
      module.trackUsage("agent", "session", {
        model: "gpt-4o",
        get inputTokens(): number {
          throw new Error("getter boom");
        },
      }),
    );
    expect(InvalidArgumentError.isInstance(getter)).toBe(true);
    const proxy = await rejectionOf(() =>
      module.checkOrRaise(
        "agent",
        "session",
        new Proxy(
          {},
          {
            ownKeys() {
              throw new Error("trap boom");
            },
          },
        ),
      ),
    );
    expect(InvalidArgumentError.isInstance(proxy)).toBe(true);
  });
});
