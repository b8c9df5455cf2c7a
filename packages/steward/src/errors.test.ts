import { AgentHaltedError, GovernanceError, InvalidArgumentError } from "@gov/core";
import { assertErrorClasses } from "@gov/core/testing";
import { describe, expect, it } from "vitest";
import {
  BlueprintNotFound,
  BudgetExceeded,
  EvaluationLimitExceeded,
  PolicyError,
  StewardError,
  StewardNotStartedError,
  TripwireViolation,
} from "./errors";
import * as steward from "./index";

// Issue 13: `isInstance` was overridden class by class (by code); it is implemented once in
// core, by each class's own identity.
describe("error classes", () => {
  it("each declares its own identity in @gov/steward, and none overrides isInstance", () => {
    const checked = assertErrorClasses(steward, {
      packageName: "@gov/steward",
      reexports: [AgentHaltedError],
    });
    expect(checked.map((item) => item.identity)).toContain("@gov/steward.BudgetExceeded");
  });

  it("tells the classes apart, and a steward error from any other", () => {
    const policy = new PolicyError("x", "is wrong.", "Fix it.");
    const budget = new BudgetExceeded("judge", 50);
    expect(BudgetExceeded.isInstance(policy)).toBe(false);
    expect(PolicyError.isInstance(budget)).toBe(false);
    expect(BudgetExceeded.isInstance(budget)).toBe(true);
    for (const error of [
      policy,
      budget,
      new BlueprintNotFound("a@1", "here"),
      new EvaluationLimitExceeded(1, "steps"),
      new StewardNotStartedError("evaluate"),
      new TripwireViolation({
        intervention: "BLOCK",
        message: "no",
        tripwires: [],
        traceId: "t",
        action: "a",
      }),
    ]) {
      expect(StewardError.isInstance(error)).toBe(true);
      expect(GovernanceError.isInstance(error)).toBe(true);
    }
    expect(StewardError.isInstance(new InvalidArgumentError("a", "b", "c"))).toBe(false);
  });
});
