import { GovernanceError, InvalidArgumentError } from "@gov/core";
import { describe, expect, it } from "vitest";
import { InvalidScopePolicyError, SCOPE_ERROR_CODES } from "./errors";
import { SCOPE_LIMITS, ScopePolicy } from "./models";

function refusal(input: unknown): InvalidScopePolicyError {
  try {
    new ScopePolicy(input as never);
  } catch (error) {
    if (error instanceof InvalidScopePolicyError) return error;
    throw error;
  }
  throw new Error("expected an InvalidScopePolicyError");
}

describe("ScopePolicy", () => {
  it("takes arrays, Sets and other iterables, and defaults the sets to empty", () => {
    const policy = new ScopePolicy({
      agentId: "billing-agent",
      allowedTools: new Set(["read_invoice", "send_email"]),
      allowedApis: ["GET https://api.stripe.com/v1/*"],
      hiddenTools: (function* () {
        yield "delete_all";
      })(),
    });
    expect([...policy.allowedTools]).toEqual(["read_invoice", "send_email"]);
    expect([...policy.hiddenTools]).toEqual(["delete_all"]);
    expect(policy.allowedModels.size).toBe(0);
    expect(policy.toJSON()).toEqual({
      agentId: "billing-agent",
      allowedTools: ["read_invoice", "send_email"],
      allowedApis: ["GET https://api.stripe.com/v1/*"],
      hiddenTools: ["delete_all"],
      allowedModels: [],
    });
    expect(ScopePolicy.isInstance(policy)).toBe(true);
    expect(ScopePolicy.isInstance(policy.toJSON())).toBe(false);
  });

  it("is immutable once built", () => {
    const input = { agentId: "a", allowedTools: ["read"] };
    const policy = new ScopePolicy(input);
    input.allowedTools.push("delete_user");
    expect(policy.allowedTools.has("delete_user")).toBe(false);
    expect(() => (policy.allowedTools as Set<string>).add("delete_user")).toThrow(TypeError);
    expect(() => (policy.allowedTools as Set<string>).delete("read")).toThrow(TypeError);
    expect(() => (policy.allowedTools as Set<string>).clear()).toThrow(TypeError);
    expect(() => {
      (policy as { agentId: string }).agentId = "other";
    }).toThrow(TypeError);
    expect(Object.isFrozen(policy.apiRules)).toBe(true);
    expect([...policy.allowedTools]).toEqual(["read"]);
  });

  it("cannot be changed through Set.prototype methods or its JSON", () => {
    const policy = new ScopePolicy({
      agentId: "a",
      allowedTools: ["read"],
      hiddenTools: ["drop"],
      allowedApis: ["GET https://api.x.com/v1/*"],
    });
    for (const view of [
      policy.allowedTools,
      policy.hiddenTools,
      policy.allowedApis,
      policy.allowedModels,
    ]) {
      expect(() => Set.prototype.add.call(view, "evil")).toThrow(TypeError);
      expect(() => Set.prototype.delete.call(view, "read")).toThrow(TypeError);
      expect(() => Set.prototype.clear.call(view)).toThrow(TypeError);
      expect(view instanceof Set).toBe(false);
    }
    const json = policy.toJSON();
    expect(Object.isFrozen(json)).toBe(true);
    expect(Object.isFrozen(json.allowedTools)).toBe(true);
    expect(() => (json.allowedTools as string[]).push("evil")).toThrow(TypeError);
    expect(() => Array.prototype.push.call(json.allowedApis, "DELETE https://x.com/*")).toThrow(
      TypeError,
    );
    expect(policy.allowedTools.has("evil")).toBe(false);
    expect(policy.toJSON()).toEqual({
      agentId: "a",
      allowedTools: ["read"],
      allowedApis: ["GET https://api.x.com/v1/*"],
      hiddenTools: ["drop"],
      allowedModels: [],
    });
    // Still reads like a set.
    expect(policy.allowedTools.size).toBe(1);
    expect([...policy.allowedTools.entries()]).toEqual([["read", "read"]]);
    const seen: string[] = [];
    policy.hiddenTools.forEach((value) => {
      seen.push(value);
    });
    expect(seen).toEqual(["drop"]);
  });

  it.each([
    [null, "policy", "must be an object"],
    ["billing-agent", "policy", "must be an object"],
    [{}, "agentId", "must be a non-empty string"],
    [{ agentId: "" }, "agentId", "must not be empty"],
    [{ agentId: "a".repeat(257) }, "agentId", "the limit is 256"],
    [{ agentId: " a" }, "agentId", "whitespace"],
    [{ agentId: "a\u0000b" }, "agentId", "control"],
    [{ agentId: "a", allowedTools: "read" }, "allowedTools", "must be an array or a Set"],
    [{ agentId: "a", allowedTools: [""] }, "allowedTools[0]", "must not be empty"],
    [{ agentId: "a", allowedTools: ["ok", 3] }, "allowedTools[1]", "got number"],
    [{ agentId: "a", allowedTools: ["x".repeat(257)] }, "allowedTools[0]", "the limit is 256"],
    [
      { agentId: "a", allowedTools: Array.from({ length: 1_001 }, (_, i) => `t${i}`) },
      "allowedTools",
      "the limit is 1000",
    ],
    [{ agentId: "a", hiddenTools: ["  "] }, "hiddenTools[0]", "whitespace"],
    [
      { agentId: "a", allowedTools: ["read", "drop"], hiddenTools: ["drop"] },
      "hiddenTools[0]",
      "also in allowedTools",
    ],
    [{ agentId: "a", allowedApis: ["https://x.com/"] }, "allowedApis[0]", "METHOD URL"],
    [{ agentId: "a", allowedApis: ["GET https://x.com*"] }, "allowedApis[0]", "host"],
    [{ agentId: "a", allowedModels: ["m".repeat(129)] }, "allowedModels[0]", "the limit is 128"],
    [
      { agentId: "a", allowed_tools: ["read"] },
      "allowed_tools",
      "is not an option; did you mean `allowedTools`?",
    ],
  ])("refuses %j (%s)", (input, field, problem) => {
    const error = refusal(input);
    expect(error.code).toBe(SCOPE_ERROR_CODES.SCOPE_POLICY_INVALID);
    expect(GovernanceError.isInstance(error)).toBe(true);
    expect(InvalidScopePolicyError.isInstance(error)).toBe(true);
    expect(error.field).toBe(field);
    expect(error.message).toContain(problem);
    expect(error.recoveryHint.length).toBeGreaterThan(10);
  });

  // Guards against an agent id or a name that looks like another one: a policy registered for
  // "billing-agent\u2800" that an administrator reads as billing-agent's, or a hidden tool that
  // does not hide the tool it looks like (gates and presence refuse such ids too).
  it("refuses an agent id, tool name or model name holding an invisible or blank character", () => {
    const blanks: [string, string][] = [
      ["\u2800", "U+2800"], // BRAILLE PATTERN BLANK
      ["\u200b", "U+200B"], // ZERO WIDTH SPACE
      ["\u00a0", "U+00A0"], // NO-BREAK SPACE
      ["\u00ad", "U+00AD"], // SOFT HYPHEN
      ["\u3164", "U+3164"], // HANGUL FILLER
      ["\ufe0f", "U+FE0F"], // VARIATION SELECTOR-16
      ["\u3000", "U+3000"], // IDEOGRAPHIC SPACE
      ["\u2060", "U+2060"], // WORD JOINER
      ["\ufeff", "U+FEFF"], // ZERO WIDTH NO-BREAK SPACE
    ];
    for (const [blank, codePoint] of blanks) {
      const name = `billing${blank}agent`;
      const cases: [unknown, string][] = [
        [{ agentId: name }, "agentId"],
        [{ agentId: "a", allowedTools: ["read", name] }, "allowedTools[1]"],
        [{ agentId: "a", hiddenTools: [name] }, "hiddenTools[0]"],
        [{ agentId: "a", allowedModels: [name] }, "allowedModels[0]"],
      ];
      for (const [input, field] of cases) {
        const error = refusal(input);
        expect(error.field, codePoint).toBe(field);
        expect(error.message, codePoint).toContain(
          `invisible or blank character (${codePoint} at index 7)`,
        );
        expect(error.recoveryHint, codePoint).toMatch(/ASCII space/);
      }
    }
    // The ASCII space stays allowed inside a name.
    expect(
      new ScopePolicy({ agentId: "billing agent", allowedTools: ["read invoice"] }).agentId,
    ).toBe("billing agent");
  });

  it("refuses a misspelt field the one way (core's parseOptions): a suggestion, every problem listed", () => {
    const error = refusal({ agentId: "", hiddenTool: ["drop"], allowedTools: "read" });
    expect(InvalidArgumentError.isInstance(error)).toBe(true);
    expect(error.field).toBe("hiddenTool");
    expect(error.message).toContain("hiddenTool is not an option; did you mean `hiddenTools`?");
    expect(error.recoveryHint).toContain("hiddenTools");
    expect(error.issues.map((issue) => issue.field)).toEqual([
      "hiddenTool",
      "agentId",
      "allowedTools",
    ]);
    expect(error.message).toContain("also agentId must not be empty.");
    expect(InvalidArgumentError.isInstance(error.cause)).toBe(true);
  });

  it("names the limit it enforces", () => {
    expect(
      refusal({ agentId: "a", allowedApis: [`GET https://x.com/${"a".repeat(3000)}`] }).limit,
    ).toBe(SCOPE_LIMITS.apiEntry);
    expect(refusal({ agentId: "a".repeat(300) }).limit).toBe(SCOPE_LIMITS.agentId);
  });
});
