import {
  GovernanceError,
  InvalidArgumentError,
  noopAuditSink,
  noopHaltGuard,
  silentLogger,
  sql,
} from "@gov/core";
import {
  assertErrorClasses,
  type TestEngine,
  testEngines,
  thrown,
  unreachableStore,
} from "@gov/core/testing";
import { afterEach, describe, expect, it } from "vitest";
import { type CostHarness, costHarness } from "./__fixtures__";
import { BudgetPolicy } from "./budget-policy";
import { costModule } from "./definition";
import { BudgetExceeded, InvalidBudgetPolicyError, UnknownModelError } from "./errors";
import * as costExports from "./index";
import { CostModule } from "./module";
import { parseCostOptions } from "./options";
import { costSdkContribution } from "./sdk-options";

const context = {
  store: unreachableStore(),
  logger: silentLogger,
  audit: noopAuditSink,
  halt: noopHaltGuard,
};

describe("error identities", () => {
  it("each class declares its own identity, and isInstance tells them apart", () => {
    const checked = assertErrorClasses(costExports, { packageName: "@gov/cost" });
    expect(checked.map((found) => found.identity)).toContain("@gov/cost.BudgetExceeded");
    const policyError = thrown(() => new BudgetPolicy({ agentId: "" } as never));
    expect(InvalidBudgetPolicyError.isInstance(policyError)).toBe(true);
    expect(GovernanceError.isInstance(policyError)).toBe(true);
    // Regression: each class used to recognize any GovernanceError carrying its code.
    expect(BudgetExceeded.isInstance(policyError)).toBe(false);
    expect(UnknownModelError.isInstance({ code: "UNKNOWN_MODEL" })).toBe(false);
  });
});

describe("the one lifecycle: construct, start, close", () => {
  it("start() and close() are public and idempotent; close() works without start()", async () => {
    const cost = new CostModule(context, { spoolDirectory: null, sweepIntervalMs: 60_000 });
    await cost.start();
    await cost.start();
    await cost.close();
    await cost.close();
    await cost.start(); // a closed module stays closed: no sweep timer is left behind
    const unstarted = new CostModule(context, { spoolDirectory: null });
    await unstarted.close();
  });

  it("[Symbol.asyncDispose] closes the module", async () => {
    const cost = new CostModule(context, { spoolDirectory: null, sweepIntervalMs: null });
    await cost[Symbol.asyncDispose]();
    // Closed: a second close (or dispose) returns at once.
    await cost.close();
  });

  it("getPolicy returns the registered policy", () => {
    const cost = new CostModule(context, { spoolDirectory: null, sweepIntervalMs: null });
    expect(cost.getPolicy("a")).toBeUndefined();
    const policy = cost.register({ agentId: "a", perSessionUsd: 1 });
    expect(cost.getPolicy("a")).toBe(policy);
  });
});

describe("options", () => {
  it("maxBatchSize and reservationTtlMs, with their deprecated forms still read", () => {
    expect(parseCostOptions({})).toMatchObject({ maxBatchSize: 256, reservationTtlMs: 900_000 });
    expect(parseCostOptions({ maxBatchSize: 8, reservationTtlMs: 1_500 })).toMatchObject({
      maxBatchSize: 8,
      reservationTtlMs: 1_500,
    });
    const deprecated = parseCostOptions({ maxBatch: 7, reservationTtlSeconds: 2 });
    expect(deprecated).toMatchObject({ maxBatchSize: 7, reservationTtlMs: 2_000 });
    expect(deprecated).not.toHaveProperty("maxBatch");
    expect(deprecated).not.toHaveProperty("reservationTtlSeconds");
  });

  it("refuses a renamed option given under both names", () => {
    for (const [options, field] of [
      [{ maxBatchSize: 8, maxBatch: 8 }, "options.maxBatch"],
      [{ reservationTtlMs: 2_000, reservationTtlSeconds: 2 }, "options.reservationTtlSeconds"],
    ] as const) {
      const error = thrown(() => new CostModule(context, options));
      expect(error).toBeInstanceOf(InvalidArgumentError);
      expect(error).toMatchObject({ code: "INVALID_ARGUMENT", field });
      expect((error as Error).message).toMatch(
        /cannot be given with (maxBatchSize|reservationTtlMs)/,
      );
    }
  });

  it("refuses reservationTtlMs out of range, naming the limit", () => {
    expect(thrown(() => new CostModule(context, { reservationTtlMs: 999 }))).toMatchObject({
      field: "options.reservationTtlMs",
      limit: 1_000,
    });
    expect(thrown(() => new CostModule(context, { reservationTtlMs: 86_400_001 }))).toMatchObject({
      field: "options.reservationTtlMs",
      limit: 86_400_000,
    });
  });

  it("suggests the option a misspelt one stands for", () => {
    const error = thrown(() => new CostModule(context, { maxBatchSzie: 5 } as never));
    expect((error as Error).message).toMatch(/did you mean `maxBatchSize`\?/);
    const policyError = thrown(
      () => new BudgetPolicy({ agentId: "a", perSessionUsdd: 1 } as never),
    );
    expect(policyError).toMatchObject({ code: "BUDGET_POLICY_INVALID", field: "perSessionUsdd" });
    expect((policyError as Error).message).toMatch(/did you mean `perSessionUsd`\?/);
  });
});

describe("the SDK contribution", () => {
  it("is the module's sdk: the enableCost flag, its options, env variables and fixes", () => {
    expect(costModule.sdk).toBe(costSdkContribution);
    expect(costSdkContribution.flag).toBe("enableCost");
    expect(costSdkContribution.enabledByDefault).toBe(true);
    expect(Object.keys(costSdkContribution.options ?? {}).sort()).toEqual([
      "costFailOpen",
      "costLease",
      "costSpoolDirectory",
      "costStrictUnknownModels",
      "costUnknownModelFallbackUsdPerMillion",
      "defaultMaxTokens",
    ]);
    expect(costSdkContribution.env?.map((binding) => binding.env).sort()).toEqual([
      "GOVERNANCE_COST_FAIL_OPEN",
      "GOVERNANCE_COST_SPOOL_DIR",
      "GOVERNANCE_COST_STRICT_UNKNOWN_MODELS",
      "GOVERNANCE_COST_UNKNOWN_MODEL_FALLBACK_USD_PER_MILLION",
      "GOVERNANCE_DEFAULT_MAX_TOKENS",
    ]);
    expect(Object.keys(costSdkContribution.fixes ?? {}).sort()).toEqual(
      Object.keys(costSdkContribution.options ?? {}).sort(),
    );
  });

  it("maps the SDK's options onto options the module accepts", () => {
    const environment = { cwd: "/srv/app", production: false };
    const config = {
      costFailOpen: true,
      defaultMaxTokens: 512,
      costStrictUnknownModels: false,
      costUnknownModelFallbackUsdPerMillion: 10,
      costSpoolDirectory: "spool" as string | false | undefined,
      costLease: { calls: 8 },
    };
    const options = costSdkContribution.moduleOptions?.(config, environment);
    expect(options).toEqual({
      spoolDirectory: "/srv/app/spool",
      failOpen: true,
      defaultMaxTokens: 512,
      strictUnknownModels: false,
      unknownModelFallbackUsdPerMillion: 10,
      lease: { calls: 8 },
    });
    expect(parseCostOptions(options).lease).toEqual({ calls: 8, idleMs: 1_000 });
    expect(
      costSdkContribution.moduleOptions?.({ ...config, costSpoolDirectory: false }, environment),
    ).toMatchObject({ spoolDirectory: null });
    expect(
      costSdkContribution.moduleOptions?.(
        { ...config, costSpoolDirectory: undefined },
        environment,
      ),
    ).not.toHaveProperty("spoolDirectory");
  });
});

describe.each(testEngines())("reservation time on $name", (engine: TestEngine) => {
  let h: CostHarness | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  for (const [label, options] of [
    ["reservationTtlMs", { reservationTtlMs: 2_000 }],
    ["the deprecated reservationTtlSeconds", { reservationTtlSeconds: 2 }],
  ] as const) {
    it.skipIf(!engine.available)(`${label} sets how long a reservation waits`, async () => {
      h = await costHarness(engine, options);
      h.cost.register({ agentId: "a", perSessionTokens: 1_000 });
      const reservation = await h.cost.checkOrRaise("a", "s", { projectedTokens: 10 });
      const [row] = await h.store.query<{ ms: string }>(sql`
        select (extract(epoch from expires_at - created_at) * 1000)::bigint::text as ms
        from gov_cost.reservations where id = ${reservation.reservationId}::uuid`);
      expect(Number(row?.ms)).toBe(2_000);
    });
  }
});
