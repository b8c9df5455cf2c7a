import { type BudgetGuard, type ProviderUsageLike, resolveGovernancePorts } from "@gov/core";
import { describe, expect, expectTypeOf, it } from "vitest";
import { CostModule } from "./module";
import type { ProviderUsage } from "./usage";

/** A method's agent and session ids (its first two parameters). */
type IdsOf<F extends (...args: never[]) => unknown> = [Parameters<F>[0], Parameters<F>[1]];
/** A method's options (its third parameter) without `usage`, which is compared on its own. */
type OptionsOf<F extends (...args: never[]) => unknown> = Omit<Parameters<F>[2], "usage">;

describe("CostModule is core's BudgetGuard", () => {
  it("fits the port's type: `pnpm typecheck` fails when either drifts", () => {
    // The assignment is the proof; the checks below make each method's variance strict (an
    // interface method is compared bivariantly): every call the port allows, the module takes.
    const port: BudgetGuard = CostModule.prototype;
    expectTypeOf<CostModule>().toExtend<BudgetGuard>();
    expectTypeOf<Parameters<BudgetGuard["checkOrRaise"]>>().toExtend<
      Parameters<CostModule["checkOrRaise"]>
    >();
    expectTypeOf<Parameters<BudgetGuard["release"]>>().toExtend<
      Parameters<CostModule["release"]>
    >();
    expectTypeOf<IdsOf<BudgetGuard["trackUsage"]>>().toExtend<IdsOf<CostModule["trackUsage"]>>();
    expectTypeOf<IdsOf<BudgetGuard["reconcile"]>>().toExtend<IdsOf<CostModule["reconcile"]>>();
    expectTypeOf<OptionsOf<BudgetGuard["trackUsage"]>>().toExtend<
      OptionsOf<CostModule["trackUsage"]>
    >();
    expectTypeOf<OptionsOf<BudgetGuard["reconcile"]>>().toExtend<
      OptionsOf<CostModule["reconcile"]>
    >();
    // The port takes any usage object (a provider's own type); the module reads each shape it
    // knows and refuses others at run time. Every shape it knows is one the port passes.
    expectTypeOf<ProviderUsage>().toExtend<ProviderUsageLike>();
    expectTypeOf<ReturnType<CostModule["checkOrRaise"]>>().toExtend<
      ReturnType<BudgetGuard["checkOrRaise"]>
    >();
    expectTypeOf<ReturnType<CostModule["release"]>>().toExtend<
      ReturnType<BudgetGuard["release"]>
    >();
    // And at run time: core's resolver finds every method the port needs on the module.
    expect(resolveGovernancePorts({ cost: port }).cost).toBe(CostModule.prototype);
  });
});
