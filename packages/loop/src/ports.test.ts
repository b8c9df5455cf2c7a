import { type LoopGuard, resolveGovernancePorts } from "@gov/core";
import { describe, expect, expectTypeOf, it } from "vitest";
import { LoopModule } from "./module";

describe("LoopModule is core's LoopGuard", () => {
  it("fits the port's type: `pnpm typecheck` fails when either drifts", () => {
    // The assignment is the proof; the checks below make the method's variance strict (an
    // interface method is compared bivariantly): every call the port allows, the module takes.
    const port: LoopGuard = LoopModule.prototype;
    expectTypeOf<LoopModule>().toExtend<LoopGuard>();
    expectTypeOf<Parameters<LoopGuard["recordCall"]>>().toExtend<
      Parameters<LoopModule["recordCall"]>
    >();
    expectTypeOf<ReturnType<LoopModule["recordCall"]>>().toExtend<
      ReturnType<LoopGuard["recordCall"]>
    >();
    // And at run time: core's resolver finds every method the port needs on the module.
    expect(resolveGovernancePorts({ loop: port }).loop).toBe(LoopModule.prototype);
  });
});
