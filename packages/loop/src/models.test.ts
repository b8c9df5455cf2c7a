import { GovernanceError } from "@gov/core";
import { describe, expect, it } from "vitest";
import { thrown } from "./__fixtures__";
import { InvalidLoopPolicyError, LoopDetected } from "./errors";
import { LOOP_DEFAULTS, LoopPolicy, type LoopPolicyInput } from "./models";

describe("LoopPolicy", () => {
  it("has the reference's defaults, and the extra rules off", () => {
    const policy = new LoopPolicy({ agentId: "my-agent" });
    expect(policy.toJSON()).toEqual({
      agentId: "my-agent",
      windowSeconds: 60,
      maxCalls: 5,
      action: "raise",
      identicalCalls: null,
      oscillation: null,
    });
    expect(LOOP_DEFAULTS).toMatchObject({ windowSeconds: 60, maxCalls: 5, action: "raise" });
  });

  it("takes the reference's example as it is", () => {
    const policy = new LoopPolicy({
      agentId: "my-agent",
      windowSeconds: 60,
      maxCalls: 5,
      action: "log",
    });
    expect(policy).toMatchObject({ windowSeconds: 60, maxCalls: 5, action: "log" });
  });

  it("accepts the bounds of every range", () => {
    for (const input of [
      { windowSeconds: 1, maxCalls: 2 },
      { windowSeconds: 3600, maxCalls: 1000 },
      { identicalCalls: { maxCalls: 1, windowSeconds: 1 } },
      { identicalCalls: { maxCalls: 1000, windowSeconds: 3600 } },
      { oscillation: { minRepetitions: 2, maxPeriod: 2 } },
      { oscillation: { minRepetitions: 10, maxPeriod: 5 } },
    ]) {
      expect(() => new LoopPolicy({ agentId: "a", ...input })).not.toThrow();
    }
  });

  it("turns the extra rules on with true, using their defaults", () => {
    const policy = new LoopPolicy({
      agentId: "a",
      windowSeconds: 30,
      identicalCalls: true,
      oscillation: true,
    });
    expect(policy.identicalCalls).toEqual({ maxCalls: 2, windowSeconds: 30 });
    expect(policy.oscillation).toEqual({ minRepetitions: 3, maxPeriod: 2 });
    const off = new LoopPolicy({ agentId: "a", identicalCalls: false, oscillation: null });
    expect([off.identicalCalls, off.oscillation]).toEqual([null, null]);
  });

  it("is immutable once built, nested rules included", () => {
    const input: LoopPolicyInput = { agentId: "a", maxCalls: 3, identicalCalls: { maxCalls: 2 } };
    const policy = new LoopPolicy(input);
    expect(Object.isFrozen(policy)).toBe(true);
    expect(() => {
      (policy as { maxCalls: number }).maxCalls = 100;
    }).toThrow(TypeError);
    expect(() => {
      (policy.identicalCalls as { maxCalls: number }).maxCalls = 100;
    }).toThrow(TypeError);
    // Changing the input afterwards changes nothing.
    (input.identicalCalls as { maxCalls: number }).maxCalls = 50;
    input.maxCalls = 50;
    expect([policy.maxCalls, policy.identicalCalls?.maxCalls]).toEqual([3, 2]);
  });

  const cases: [string, Record<string, unknown>, string, number | undefined, RegExp][] = [
    ["no agentId", {}, "agentId", undefined, /agentId is required/],
    ["an empty agentId", { agentId: "" }, "agentId", 1, /must not be empty/],
    ["a blank agentId", { agentId: "  " }, "agentId", undefined, /must not be blank/],
    ["a long agentId", { agentId: "x".repeat(257) }, "agentId", 256, /257 characters long/],
    ["a numeric agentId", { agentId: 7 }, "agentId", undefined, /must be a string, got 7/],
    ["windowSeconds 0", { windowSeconds: 0 }, "windowSeconds", 1, /is 0; the minimum is 1/],
    ["windowSeconds 3601", { windowSeconds: 3601 }, "windowSeconds", 3600, /maximum is 3600/],
    ["windowSeconds 1.5", { windowSeconds: 1.5 }, "windowSeconds", undefined, /whole number/],
    ["windowSeconds as text", { windowSeconds: "60" }, "windowSeconds", undefined, /"60"/],
    ["windowSeconds NaN", { windowSeconds: Number.NaN }, "windowSeconds", undefined, /NaN/],
    ["maxCalls 1", { maxCalls: 1 }, "maxCalls", 2, /is 1; the minimum is 2/],
    ["maxCalls 1001", { maxCalls: 1001 }, "maxCalls", 1000, /maximum is 1000/],
    ["an unknown action", { action: "block" }, "action", undefined, /"raise", "log"/],
    ["an unknown field", { max_calls: 5 }, "loop policy", undefined, /unknown field "max_calls"/],
    [
      "identicalCalls.maxCalls 0",
      { identicalCalls: { maxCalls: 0 } },
      "identicalCalls.maxCalls",
      1,
      /minimum is 1/,
    ],
    [
      "identicalCalls.windowSeconds 4000",
      { identicalCalls: { windowSeconds: 4000 } },
      "identicalCalls.windowSeconds",
      3600,
      /maximum is 3600/,
    ],
    [
      "an unknown identicalCalls field",
      { identicalCalls: { threshold: 2 } },
      "identicalCalls",
      undefined,
      /unknown field "threshold"/,
    ],
    ["identicalCalls as a number", { identicalCalls: 3 }, "identicalCalls", undefined, /object/],
    [
      "oscillation.minRepetitions 1",
      { oscillation: { minRepetitions: 1 } },
      "oscillation.minRepetitions",
      2,
      /minimum is 2/,
    ],
    [
      "oscillation.minRepetitions 11",
      { oscillation: { minRepetitions: 11 } },
      "oscillation.minRepetitions",
      10,
      /maximum is 10/,
    ],
    [
      "oscillation.maxPeriod 6",
      { oscillation: { maxPeriod: 6 } },
      "oscillation.maxPeriod",
      5,
      /maximum is 5/,
    ],
  ];

  for (const [name, change, field, limit, message] of cases) {
    it(`refuses ${name}, naming the field, the limit and the fix`, () => {
      const input =
        "agentId" in change || name === "no agentId" ? change : { agentId: "a", ...change };
      const error = thrown(() => new LoopPolicy(input as never));
      expect(error).toBeInstanceOf(InvalidLoopPolicyError);
      expect(GovernanceError.isInstance(error)).toBe(true);
      const policyError = error as InvalidLoopPolicyError;
      expect(policyError.code).toBe("LOOP_POLICY_INVALID");
      expect(policyError.field).toBe(field);
      expect(policyError.limit).toBe(limit);
      expect(policyError.message).toMatch(message);
      expect(policyError.message).toContain(field);
      expect(policyError.recoveryHint.length).toBeGreaterThan(10);
    });
  }

  it("refuses what is not an object", () => {
    for (const value of [null, undefined, "my-agent", 42, ["my-agent"]]) {
      expect(thrown(() => new LoopPolicy(value as never))).toMatchObject({
        code: "LOOP_POLICY_INVALID",
        field: "loop policy",
      });
    }
  });
});

describe("LoopDetected", () => {
  const detection = {
    agentId: "a",
    sessionId: "s",
    tool: "search",
    pattern: "repeat" as const,
    count: 6,
    countCapped: false,
    windowSeconds: 60,
    maxCalls: 5,
    action: "raise" as const,
    argsHash: null,
    cycle: null,
    repetitions: null,
  };

  it("is a GovernanceError with a stable code, its fields and a recovery hint", () => {
    const error = new LoopDetected(detection);
    expect(GovernanceError.isInstance(error)).toBe(true);
    expect(LoopDetected.isInstance(error)).toBe(true);
    expect(LoopDetected.isInstance(new Error("LOOP_DETECTED"))).toBe(false);
    expect(error.name).toBe("LoopDetected");
    expect(error.recoveryHint).toMatch(/maxCalls/);
    expect(error.toJSON()).toMatchObject({ code: "LOOP_DETECTED", ...detection });
    expect(Object.isFrozen(error.detection)).toBe(true);
  });

  it("describes a cycle for oscillation", () => {
    const error = new LoopDetected({
      ...detection,
      pattern: "oscillation",
      cycle: ["search", "read"],
      repetitions: 3,
    });
    expect(error.message).toMatch(/"search" → "read" 3 times in a row within 60 s/);
    expect(error.recoveryHint).toMatch(/minRepetitions/);
  });
});
