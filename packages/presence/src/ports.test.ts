import { type HaltGuard, resolveGovernancePorts } from "@gov/core";
import { describe, expect, expectTypeOf, it } from "vitest";
import { PresenceModule } from "./module";

describe("PresenceModule is core's HaltGuard", () => {
  it("fits the port's type: `pnpm typecheck` fails when either drifts", () => {
    // The assignment is the proof; the checks below make the method's variance strict (an
    // interface method is compared bivariantly): every call the port allows, the module takes.
    const port: HaltGuard = PresenceModule.prototype;
    expectTypeOf<PresenceModule>().toExtend<HaltGuard>();
    expectTypeOf<Parameters<HaltGuard["assertAlive"]>>().toExtend<
      Parameters<PresenceModule["assertAlive"]>
    >();
    expectTypeOf<ReturnType<PresenceModule["assertAlive"]>>().toExtend<
      ReturnType<HaltGuard["assertAlive"]>
    >();
    // And at run time: core's resolver finds every method the port needs on the module.
    expect(resolveGovernancePorts({ halt: port }).halt).toBe(PresenceModule.prototype);
  });
});
