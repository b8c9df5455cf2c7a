import { GovernanceError, InvalidArgumentError } from "@gov/core";
import { assertErrorClasses } from "@gov/core/testing";
import { describe, expect, it } from "vitest";
import {
  ApprovalDenied,
  ApprovalTokenError,
  InvalidGatesInputError,
  TokenVersionTooOldError,
} from "./errors";
import * as gates from "./index";

describe("the error classes of @gov/gates", () => {
  it("each declares its own identity, and isInstance tells them apart", () => {
    const checked = assertErrorClasses(gates, { packageName: "@gov/gates" });
    expect(checked.map((entry) => entry.name)).toContain("InvalidGatesInputError");
  });

  // Guards against: isInstance inherited from the base answering for a sibling class.
  it("isInstance is true for the class and its subclasses only", () => {
    const tooOld = new TokenVersionTooOldError(null, null);
    expect(ApprovalTokenError.isInstance(tooOld)).toBe(true);
    expect(TokenVersionTooOldError.isInstance(new ApprovalTokenError({ reason: "expired" }))).toBe(
      false,
    );
    expect(ApprovalDenied.isInstance(tooOld)).toBe(false);
    expect(GovernanceError.isInstance(tooOld)).toBe(true);
  });

  it("bad input is a core InvalidArgumentError with the code of @gov/gates", () => {
    const error = new InvalidGatesInputError("options.limit", "is 0.", "Pass 1 to 500.", 1);
    expect(InvalidArgumentError.isInstance(error)).toBe(true);
    expect(
      InvalidGatesInputError.isInstance(new InvalidArgumentError("x", "is bad.", "Fix.")),
    ).toBe(false);
    expect(error.code).toBe("GATES_INPUT_INVALID");
    expect(error.limit).toBe(1);
    expect(error.issues).toEqual([
      { field: "options.limit", problem: "is 0.", fix: "Pass 1 to 500.", limit: 1 },
    ]);
  });
});
