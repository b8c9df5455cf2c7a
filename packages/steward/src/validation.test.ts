import { ChainKey, Keyring, ManualClock, silentLogger } from "@gov/core";
import {
  createTestStore,
  recordingAuditSink,
  recordingHaltGuard,
  rejectionOf,
  type TestEngine,
  type TestStore,
  testEngines,
  unreachableStore,
} from "@gov/core/testing";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { makeSteward } from "./__fixtures__";
import { readBlueprintFile } from "./blueprint";
import { StewardModule, stewardMigrations } from "./module";
import {
  DirectoryBlueprintRegistry,
  fetchWithParents,
  PostgresBlueprintRegistry,
  PostgresStateStorage,
  PostgresTrustDebtStorage,
} from "./persistence";
import { GovernanceSteward } from "./steward";

const BLUEPRINT = {
  id: "v@1",
  version: "1",
  tripwires: [{ id: "t", condition: "false", onFail: { decision: "BLOCK" } }],
};
const DECAY = { rate: 0.1, periodMs: 86_400_000 };

/**
 * Call `run` and expect a promise that rejects with `code`: bad input to a promise-returning
 * function must never throw synchronously (`rejectionOf` fails the test if it does).
 */
async function rejectsWith(run: () => unknown, code: string, field?: RegExp): Promise<void> {
  const error = await rejectionOf(run);
  expect(error).toMatchObject({ code });
  if (field) expect((error as Error).message).toMatch(field);
}

// Rule 6: a function that returns a promise reports bad input by rejecting, with a clear
// error naming the field — never by throwing synchronously, never by a database error.
describe("every public async function rejects bad input", () => {
  const { steward } = makeSteward({ blueprints: [BLUEPRINT] });

  it.each([
    ["commit(42)", () => steward.commit(42 as never), /result/],
    ["commit(null)", () => steward.commit(null as never), /result/],
    ["getTrustDebt(42)", () => steward.getTrustDebt(42 as never), /agentId/],
    ["getTrustDebt('')", () => steward.getTrustDebt(""), /agentId/],
    ["getTrustDebt(long)", () => steward.getTrustDebt("a".repeat(300)), /agentId/],
    ["getTrustDebt(a, 5)", () => steward.getTrustDebt("a", 5 as never), /agentTier/],
    ["getTrustDebt(a, t, {})", () => steward.getTrustDebt("a", "t", {} as never), /action/],
    ["evaluate(null)", () => steward.evaluate(null as never), /trace/],
    ["evaluate(trace, 'x')", () => steward.evaluate({ action: "a" }, "x" as never), /context/],
  ])("GovernanceSteward.%s", async (_, run, field) => {
    await rejectsWith(run, "INVALID_ARGUMENT", field);
  });

  it.each([
    ["fromFiles('x')", () => GovernanceSteward.fromFiles("x" as never), /paths/],
    ["fromFiles([1])", () => GovernanceSteward.fromFiles([1] as never), /paths\[0\]/],
    [
      "fromRegistry(null, [])",
      () => GovernanceSteward.fromRegistry(null as never, ["a@1"]),
      /registry/,
    ],
    [
      "fromRegistry(registry, 'a@1')",
      () => GovernanceSteward.fromRegistry(new DirectoryBlueprintRegistry("."), "a@1" as never),
      /ids/,
    ],
    ["fetchWithParents({}, [])", () => fetchWithParents({} as never, ["a@1"]), /registry/],
    [
      "fetchWithParents(registry, [1])",
      () => fetchWithParents(new DirectoryBlueprintRegistry("."), [1] as never),
      /ids\[0\]/,
    ],
    ["readBlueprintFile(1)", () => readBlueprintFile(1 as never), /path/],
    [
      "DirectoryBlueprintRegistry.get(1)",
      () => new DirectoryBlueprintRegistry(".").get(1 as never),
      /id/,
    ],
  ])("%s", async (_, run, field) => {
    let pending: unknown;
    expect(() => {
      pending = run();
    }).not.toThrow();
    await expect(pending).rejects.toSatisfy(
      (error: { code?: string }) =>
        error.code === "INVALID_ARGUMENT" || error.code === "POLICY_INVALID",
    );
    await expect(pending).rejects.toThrow(field);
  });

  it.each([
    ["null options", () => StewardModule.create(context(), null as never), /options/],
    [
      "blueprintIds not a list",
      () => StewardModule.create(context(), { blueprintIds: "a@1" as never }),
      /blueprintIds/,
    ],
    [
      "a bad keyring",
      () => StewardModule.create({ ...context(), keyring: {} as never }, {}),
      /keyring/,
    ],
  ])("StewardModule.create with %s", async (_, run, field) => {
    await rejectsWith(run, "INVALID_ARGUMENT", field);
  });

  function context() {
    return {
      store: unreachableStore(),
      keyring: new Keyring(new ChainKey("validation-test-key-0123456789abcdefghij")),
      clock: new ManualClock(),
      logger: silentLogger,
      audit: recordingAuditSink(),
      halt: recordingHaltGuard(),
    };
  }
});

// Registry attack: a storage built without a store rejected its first call with a raw
// TypeError ("Cannot read properties of null"), naming neither the argument nor the fix.
describe("storages refuse to be built without a store", () => {
  it.each([
    ["PostgresStateStorage", (store: unknown) => new PostgresStateStorage(store as never)],
    ["PostgresTrustDebtStorage", (store: unknown) => new PostgresTrustDebtStorage(store as never)],
  ])("%s", (name, build) => {
    for (const store of [null, undefined, {}, "postgres://", { query: 1 }]) {
      let caught: unknown;
      try {
        build(store);
      } catch (error) {
        caught = error;
      }
      expect(caught, String(store)).toMatchObject({
        code: "INVALID_ARGUMENT",
        field: "store",
        recoveryHint: expect.stringContaining(`new ${name}(store)`),
      });
    }
  });
});

// Attack: evaluate rejected with the raw error of a getter or a revoked Proxy in the trace,
// its context or its options, instead of an error naming the field.
describe("evaluate refuses a trace it cannot read, naming the field", () => {
  const { steward } = makeSteward({
    blueprints: [
      {
        id: "read@1",
        version: "1",
        tripwires: [{ id: "big", condition: "args.amount > 5", onFail: { decision: "BLOCK" } }],
      },
    ],
  });
  const trace = { agentId: "a", action: "pay", parameters: { amount: 1 }, reasoning: "ok" };
  const revoked = () => {
    const { proxy, revoke } = Proxy.revocable({}, {});
    revoke();
    return proxy;
  };
  const throwing = (field: string) =>
    Object.defineProperty({ ...trace }, field, {
      enumerable: true,
      get() {
        throw new Error("boom");
      },
    });

  it.each([
    ["a revoked Proxy as the trace", () => steward.evaluate(revoked() as never), /trace/],
    [
      "a throwing action getter",
      () => steward.evaluate(throwing("action") as never),
      /trace\.action/,
    ],
    [
      "a throwing parameters getter",
      () => steward.evaluate(throwing("parameters") as never),
      /trace\.parameters/,
    ],
    [
      "a throwing reasoning getter",
      () => steward.evaluate(throwing("reasoning") as never),
      /trace\.reasoning/,
    ],
    [
      "a revoked Proxy as parameters",
      () => steward.evaluate({ ...trace, parameters: revoked() } as never),
      /trace\.parameters/,
    ],
    [
      "a revoked Proxy inside parameters",
      () => steward.evaluate({ ...trace, parameters: { amount: 1, note: revoked() } } as never),
      /trace\.parameters/,
    ],
    [
      "a throwing getter inside parameters",
      () =>
        steward.evaluate({
          ...trace,
          parameters: Object.defineProperty({}, "amount", {
            enumerable: true,
            get() {
              throw new Error("boom");
            },
          }),
        } as never),
      /trace\.parameters/,
    ],
    [
      "a Proxy whose ownKeys throws inside parameters",
      () =>
        steward.evaluate({
          ...trace,
          parameters: {
            nested: new Proxy(
              {},
              {
                ownKeys() {
                  throw new Error("boom");
                },
              },
            ),
          },
        } as never),
      /trace\.parameters/,
    ],
    [
      "a revoked Proxy as the context",
      () => steward.evaluate(trace, revoked() as never),
      /context/,
    ],
    [
      "a revoked Proxy inside the context",
      () => steward.evaluate(trace, { deep: { value: revoked() } }),
      /context/,
    ],
    [
      "a revoked Proxy as the options",
      () => steward.evaluate(trace, {}, revoked() as never),
      /options/,
    ],
    ["a revoked Proxy to commit", () => steward.commit(revoked() as never), /result/],
  ])("%s", async (_, run, field) => {
    await rejectsWith(run, "INVALID_ARGUMENT", field);
  });

  it("evaluates the trace it checked, read once", async () => {
    let reads = 0;
    const shifty = {
      ...trace,
      get action() {
        reads++;
        return reads === 1 ? "pay" : { not: "a string" };
      },
    };
    const result = await steward.evaluate(shifty as never);
    expect(result.metadata.action).toBe("pay");
    expect(reads).toBe(1);
  });
});

describe.each(testEngines())("storages reject bad input on $name", (engine: TestEngine) => {
  let store: TestStore;
  beforeEach(async () => {
    if (engine.available)
      store = await createTestStore(engine, { migrations: [stewardMigrations] });
  });
  afterEach(async () => {
    await store?.close();
  });

  it.skipIf(!engine.available)("PostgresStateStorage and PostgresTrustDebtStorage", async () => {
    const state = new PostgresStateStorage(store);
    const debt = new PostgresTrustDebtStorage(store);
    const keyring = new Keyring(new ChainKey("validation-test-key-0123456789abcdefghij"));
    const registry = new PostgresBlueprintRegistry(store, { keyring });
    const cases: [() => unknown, RegExp][] = [
      [() => state.reserve(1 as never, { amount: 1 }, 0), /agentId/],
      [() => state.reserve("a", { amount: Number.NaN }, 0), /amount/],
      [() => state.reserve("a", null as never, 0), /action/],
      [() => state.reserve("a", { amount: 1 }, Number.NaN), /nowMs/],
      [() => state.release("a", { amount: -1 }, 0), /amount/],
      [() => state.release("a", { amount: 1 }, "x" as never), /reservedAtMs/],
      [() => state.read("", 0), /agentId/],
      [() => debt.add("a", Number.POSITIVE_INFINITY, 0, DECAY), /amount/],
      [() => debt.add("a", 1, 0, { rate: 2, periodMs: 1 }), /decay/],
      [() => debt.add("a", 1, 0, { rate: 0.1, periodMs: 0 }), /decay/],
      [() => debt.read("a", Number.NaN, DECAY), /nowMs/],
      [() => debt.read({} as never, 0, DECAY), /agentId/],
      [() => registry.get(7 as never), /id/],
      [() => registry.publish(null), /must be a mapping/],
    ];
    for (const [run, field] of cases) {
      let pending: unknown;
      expect(() => {
        pending = run();
      }).not.toThrow();
      await expect(pending, String(field)).rejects.toThrow(field);
      await expect(pending).rejects.toSatisfy(
        (error: { code?: string }) =>
          error.code === "INVALID_ARGUMENT" || error.code === "POLICY_INVALID",
      );
    }
    // Nothing was written.
    expect(await state.read("a", 0)).toEqual({
      actions_last_hour: 0,
      actions_today: 0,
      daily_total: 0,
      actions_total: 0,
    });
    expect(await debt.read("a", 0, DECAY)).toBe(0);
  });
});
