import { resolveGovernancePorts, type ScopeGuard } from "@gov/core";
import { describe, expect, expectTypeOf, it } from "vitest";
import { ScopeModule } from "./module";

describe("ScopeModule is core's ScopeGuard", () => {
  it("fits the port's type: `pnpm typecheck` fails when either drifts", () => {
    // The assignment is the proof; the checks below make each method's variance strict (an
    // interface method is compared bivariantly): every call the port allows, the module takes.
    const port: ScopeGuard = ScopeModule.prototype;
    expectTypeOf<ScopeModule>().toExtend<ScopeGuard>();
    expectTypeOf<Parameters<ScopeGuard["check"]>>().toExtend<Parameters<ScopeModule["check"]>>();
    expectTypeOf<Parameters<ScopeGuard["filterTools"]>>().toExtend<
      Parameters<ScopeModule["filterTools"]>
    >();
    expectTypeOf<ReturnType<ScopeModule["check"]>>().toExtend<ReturnType<ScopeGuard["check"]>>();
    // And at run time: core's resolver finds every method the port needs on the module.
    expect(resolveGovernancePorts({ scope: port }).scope).toBe(ScopeModule.prototype);
  });
});
