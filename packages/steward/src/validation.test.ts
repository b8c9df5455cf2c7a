import { ChainKey, Keyring, ManualClock, silentLogger } from "@gov/core";
import {
  createTestStore,
  recordingAuditSink,
  recordingHaltGuard,
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
 * function must never throw synchronously.
 */
async function rejectsWith(run: () => unknown, code: string, field?: RegExp): Promise<void> {
  let pending: unknown;
  expect(() => {
    pending = run();
  }).not.toThrow();
  expect(pending).toBeInstanceOf(Promise);
  await expect(pending).rejects.toMatchObject({ code });
  if (field) await expect(pending).rejects.toThrow(field);
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
