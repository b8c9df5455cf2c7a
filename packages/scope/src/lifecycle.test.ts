import { InvalidArgumentError } from "@gov/core";
import { assertErrorClasses, rejectionOf } from "@gov/core/testing";
import { describe, expect, it } from "vitest";
import { memoryScope } from "./__fixtures__";
import { InvalidScopePolicyError, PolicyNotRegistered, ScopeViolation } from "./errors";
import * as scopeExports from "./index";
import { scopeModule } from "./module";

describe("error identities", () => {
  it("each class declares its own identity, and isInstance tells them apart", () => {
    assertErrorClasses(scopeExports, { packageName: "@gov/scope" });
    const notRegistered = new PolicyNotRegistered("billing-agent");
    // Regression: isInstance used to be a code check beside an inherited marker check.
    expect(PolicyNotRegistered.isInstance(notRegistered)).toBe(true);
    expect(ScopeViolation.isInstance(notRegistered)).toBe(false);
    expect(InvalidScopePolicyError.isInstance(notRegistered)).toBe(false);
  });
});

describe("the one lifecycle", () => {
  it("start() and close() are public and idempotent; a closed module stays closed", async () => {
    const { scope } = memoryScope();
    await scope.start();
    await scope.start();
    await scope.close();
    await scope.close();
    await scope.start();
    await scope.reload();
  });

  it("the definition contributes the SDK's enableScope flag", () => {
    expect(scopeModule.sdk).toEqual({ flag: "enableScope", enabledByDefault: true });
  });
});

describe("the one id rule", () => {
  it("check() rejects an agent id with invisible or control characters, recording nothing", async () => {
    const { scope, audit } = memoryScope();
    scope.register({ agentId: "billing-agent", allowedTools: ["read_invoice"] });
    for (const agentId of ["billing-agent\u200b", "billing\u0000agent", " billing-agent"]) {
      const error = await rejectionOf(() => scope.check(agentId, { tool: "read_invoice" }));
      expect(error).toBeInstanceOf(InvalidArgumentError);
      expect(error).toMatchObject({ code: "INVALID_ARGUMENT", field: "agentId" });
    }
    expect(audit.events).toEqual([]);
  });
});
