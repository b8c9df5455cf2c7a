import { ManualClock } from "@gov/core";
import { recordingHaltGuard } from "@gov/core/testing";
import { describe, expect, it, vi } from "vitest";
import { decisionsBlueprint, makeSteward } from "./__fixtures__";
import { BudgetExceeded, PolicyError } from "./errors";
import type { CognitiveTrace } from "./models";
import { InMemoryStateStorage } from "./state";
import { GovernanceSteward } from "./steward";

const DAY_MS = 86_400_000;

function kinds(...values: string[]): CognitiveTrace {
  return {
    agentId: `agent-${values.join("-") || "none"}`,
    action: "act",
    parameters: { kinds: values },
  };
}

describe("precedence", () => {
  const { steward } = makeSteward({ blueprints: [decisionsBlueprint()] });

  it.each([
    [[], "OK"],
    [["NUDGE"], "NUDGE"],
    [["FLAG"], "FLAG"],
    [["ESCALATE"], "ESCALATE"],
    [["BLOCK"], "BLOCK"],
    [["HALT"], "HALT"],
    [["NUDGE", "ESCALATE"], "ESCALATE"],
    [["ESCALATE", "BLOCK"], "BLOCK"],
    [["NUDGE", "BLOCK", "ESCALATE"], "BLOCK"],
    [["BLOCK", "HALT"], "HALT"],
    [["FLAG", "NUDGE"], "NUDGE"],
  ])("%j fired → %s", async (fired, expected) => {
    const result = await steward.evaluate(kinds(...fired));
    expect(result.intervention).toBe(expected);
  });

  it("keeps FLAG beside a stricter decision", async () => {
    const result = await steward.evaluate(kinds("FLAG", "BLOCK"));
    expect(result.intervention).toBe("BLOCK");
    expect(result.governanceStatus.flagged).toBe(true);
    expect(result.governanceStatus.firedTripwires).toEqual(["on-flag", "on-block"]);
  });

  it("stops at a HALT: later tripwires are not evaluated", async () => {
    const { steward: halting } = makeSteward({
      blueprints: [
        {
          id: "halt@1",
          version: "1",
          tripwires: [
            { id: "halt", condition: "true", onFail: { decision: "HALT" } },
            { id: "after", condition: "true", onFail: { decision: "FLAG" } },
          ],
          checks: [{ id: "never", metric: "confidence" }],
        },
      ],
    });
    const result = await halting.evaluate({ action: "x", confidence: 0 });
    expect(result.intervention).toBe("HALT");
    expect(result.governanceStatus.firedTripwires).toEqual(["halt"]);
    expect(result.governanceStatus.riskLevel).toBe("critical_risk");
    expect(result.metadata.checkScores).toBeUndefined();
  });

  it("fails closed: a condition that errors or is not a bool fires", async () => {
    const { steward: strict } = makeSteward({
      blueprints: [
        {
          id: "strict@1",
          version: "1",
          tripwires: [
            { id: "missing-arg", condition: "args.amount > 500", onFail: { decision: "BLOCK" } },
          ],
        },
      ],
    });
    const result = await strict.evaluate({ action: "pay", parameters: {} });
    expect(result.intervention).toBe("BLOCK");
    expect(result.metadata.tripwires).toEqual([
      expect.objectContaining({ id: "missing-arg", error: expect.stringContaining("No such key") }),
    ]);
    expect(strict.getMetrics().tripwireErrors).toBe(1);
    expect(
      (await strict.evaluate({ action: "pay", parameters: { amount: 20 } })).intervention,
    ).toBe("OK");
  });

  it("evaluates a tripwire only at its hook and for its tools", async () => {
    const { steward: filtered } = makeSteward({
      blueprints: [
        {
          id: "filtered@1",
          version: "1",
          tripwires: [
            {
              id: "wire-only",
              when: { hook: "pre_action", tool: ["wire"] },
              condition: "true",
              onFail: { decision: "BLOCK" },
            },
            {
              id: "post",
              when: { hook: "post_action" },
              condition: "true",
              onFail: { decision: "ESCALATE" },
            },
          ],
        },
      ],
    });
    expect((await filtered.evaluate({ action: "read" })).intervention).toBe("OK");
    expect((await filtered.evaluate({ action: "wire" })).intervention).toBe("BLOCK");
    expect(
      (await filtered.evaluate({ action: "read" }, {}, { hook: "post_action" })).intervention,
    ).toBe("ESCALATE");
  });

  it("lets the host, not the trace, choose the hook; refuses unknown hooks", async () => {
    const { steward } = makeSteward({
      blueprints: [
        {
          id: "h@1",
          version: "1",
          tripwires: [{ id: "big", condition: "args.amount > 500", onFail: { decision: "BLOCK" } }],
        },
      ],
    });
    const trace = { action: "pay", parameters: { amount: 900 } };
    expect((await steward.evaluate({ ...trace, hook: "pre_action" })).intervention).toBe("BLOCK");
    for (const hook of ["post_action", "on_reasoning", "PRE_ACTION", "whatever"]) {
      await expect(
        steward.evaluate({ ...trace, hook } as unknown as CognitiveTrace),
      ).rejects.toThrow(/trace\.hook/);
    }
    await expect(
      steward.evaluate(trace, {}, { hook: "PRE_ACTION" as unknown as "pre_action" }),
    ).rejects.toThrow(/options\.hook/);
  });
});

describe("getTrustDebt", () => {
  it("decays with the blueprint of a tool-scoped agent", async () => {
    const { steward, clock } = makeSteward({
      blueprints: [
        {
          id: "tools@1",
          version: "1",
          scope: { tools: ["pay"] },
          tripwires: [{ id: "b", condition: "true", onFail: { decision: "BLOCK" } }],
          trustDebt: { decay: { rate: 0.5, periodHours: 1 } },
        },
      ],
    });
    await steward.evaluate({ agentId: "d", action: "pay" });
    expect(await steward.getTrustDebt("d")).toBe(2);
    clock.advance(3_600_000);
    expect(await steward.getTrustDebt("d")).toBeCloseTo(1, 9);
    expect(await steward.getTrustDebt("d", "", "pay")).toBeCloseTo(1, 9);
  });
});

describe("numbers", () => {
  it("compares an int literal with a trace double by ==, as BLUEPRINTS.md says", async () => {
    const { steward } = makeSteward({
      blueprints: [
        {
          id: "eq@1",
          version: "1",
          tripwires: [{ id: "c", condition: "args.count == 3", onFail: { decision: "BLOCK" } }],
        },
      ],
    });
    const run = async (count: number) =>
      (await steward.evaluate({ action: "a", parameters: { count } })).intervention;
    expect(await run(3)).toBe("BLOCK");
    expect(await run(3.5)).toBe("OK");
    expect(await run(4)).toBe("OK");
  });
});

describe("thresholds", () => {
  const blueprint = {
    id: "scored@1",
    version: "1",
    checks: [{ id: "confidence", metric: "confidence" }],
    trustDebt: { enabled: false },
  };
  const { steward } = makeSteward({ blueprints: [blueprint] });

  it.each([
    [1, "OK"],
    [0.75, "OK"], // risk 0.25 = ok: still OK
    [0.74, "NUDGE"],
    [0.6, "NUDGE"], // risk 0.40 = nudge: still NUDGE
    [0.59, "ESCALATE"],
    [0.45, "ESCALATE"], // risk 0.55 = escalate: still ESCALATE
    [0.44, "BLOCK"],
    [0, "BLOCK"],
  ])("confidence %d → %s", async (confidence, expected) => {
    const result = await steward.evaluate({ action: "a", confidence });
    expect(result.intervention).toBe(expected);
    expect(result.governanceStatus.qualityScore).toBe(confidence);
  });

  it("uses the blueprint's thresholds and weights", async () => {
    const { steward: weighted } = makeSteward({
      blueprints: [
        {
          id: "weighted@1",
          version: "1",
          checks: [
            { id: "long", metric: "reasoning_length", min: 10, weight: 3 },
            { id: "rule", passes: 'action != "delete"', weight: 1 },
          ],
          scoring: { ok: 0.1, nudge: 0.2, escalate: 0.3 },
        },
      ],
    });
    const long = "a reasoning that is long enough";
    expect((await weighted.evaluate({ action: "read", reasoning: long })).intervention).toBe("OK");
    // quality (3 × 1 + 1 × 0) / 4 = 0.75 → risk 0.25 → ESCALATE under these thresholds.
    const result = await weighted.evaluate({ action: "delete", reasoning: long });
    expect(result.governanceStatus.riskScore).toBe(0.25);
    expect(result.intervention).toBe("ESCALATE");
  });
});

describe("trust debt", () => {
  it("adds each decision's amount and decays with a moved clock", async () => {
    const { steward, clock } = makeSteward({ blueprints: [decisionsBlueprint()] });
    const trace = { ...kinds("BLOCK"), agentId: "debtor" };
    const first = await steward.evaluate(trace);
    expect(first.governanceStatus.trustDebtBefore).toBe(0);
    expect(first.governanceStatus.trustDebtAfter).toBe(2);
    clock.advance(DAY_MS); // one period at the default 10 %
    expect(await steward.getTrustDebt("debtor")).toBeCloseTo(1.8, 10);
    const second = await steward.evaluate({ ...kinds("NUDGE", "FLAG"), agentId: "debtor" });
    expect(second.governanceStatus.trustDebtBefore).toBeCloseTo(1.8, 10);
    expect(second.governanceStatus.trustDebtAfter).toBeCloseTo(1.8 + 0.5 + 0.1, 10);
    clock.advance(3 * DAY_MS);
    expect(await steward.getTrustDebt("debtor")).toBeCloseTo(2.4 * 0.9 ** 3, 10);
  });

  it("escalates at restricted mode but never halts", async () => {
    const { steward, audit } = makeSteward({ blueprints: [decisionsBlueprint()] });
    const block = { ...kinds("BLOCK"), agentId: "repeat" };
    const results = [];
    for (let index = 0; index < 6; index++) results.push(await steward.evaluate(block));
    // 2, 4, 6 (elevated monitoring: flagged), 8, 10 (restricted mode), 12.
    expect(results.map((result) => result.intervention)).toEqual([
      "BLOCK",
      "BLOCK",
      "BLOCK",
      "BLOCK",
      "BLOCK",
      "BLOCK",
    ]);
    expect(results[2]?.governanceStatus.flagged).toBe(true);
    const ok = await steward.evaluate({ ...kinds(), agentId: "repeat" });
    expect(ok.intervention).toBe("ESCALATE");
    expect(ok.governanceStatus.trustDebtLevels).toEqual(["elevatedMonitoring", "restrictedMode"]);
    expect(steward.getMetrics().trustDebtThresholdCrossings).toBe(2);
    for (let index = 0; index < 10; index++) {
      const result = await steward.evaluate({ ...kinds("ESCALATE"), agentId: "repeat" });
      expect(result.intervention).not.toBe("HALT");
    }
    await steward.flush();
    expect(
      audit.events
        .filter((event) => event.kind === "steward.trust_debt_threshold_crossed")
        .map((event) => event.metadata?.threshold),
    ).toEqual(["elevatedMonitoring", "restrictedMode", "retieringReview"]);
  });

  it("applies each debt threshold from exactly its value", async () => {
    const { steward } = makeSteward({
      blueprints: [
        decisionsBlueprint({
          trustDebt: {
            accumulation: { nudge: 2.5, flag: 0 },
            decay: { rate: 0 },
            thresholds: { elevatedMonitoring: 5, restrictedMode: 7.5, retieringReview: 10 },
          },
        }),
      ],
    });
    const seen = [];
    for (let index = 0; index < 4; index++) {
      const result = await steward.evaluate({ ...kinds("NUDGE"), agentId: "edge" });
      seen.push([
        result.governanceStatus.trustDebtAfter,
        result.intervention,
        result.governanceStatus.flagged,
        result.governanceStatus.trustDebtLevels,
      ]);
    }
    expect(seen).toEqual([
      [2.5, "NUDGE", false, []],
      [5, "NUDGE", true, ["elevatedMonitoring"]],
      [7.5, "ESCALATE", true, ["elevatedMonitoring", "restrictedMode"]],
      [10, "ESCALATE", true, ["elevatedMonitoring", "restrictedMode", "retieringReview"]],
    ]);
    expect(steward.getMetrics().trustDebtThresholdCrossings).toBe(3);
  });

  it("escalates (fails closed) when the debt storage fails", async () => {
    const { steward } = makeSteward({
      blueprints: [decisionsBlueprint()],
      trustDebtStorage: {
        add: () => Promise.reject(new Error("down")),
        read: () => 0,
      },
    });
    const result = await steward.evaluate(kinds("NUDGE"));
    expect(result.intervention).toBe("ESCALATE");
    expect(result.metadata.trustDebtError).toContain("down");
  });
});

describe("stateful tripwires in memory", () => {
  const blueprint = {
    id: "stateful@1",
    version: "1",
    tripwires: [
      {
        id: "daily",
        condition: "state.daily_total + args.amount > 1000",
        requiresState: true,
        onFail: { decision: "BLOCK" },
      },
    ],
    trustDebt: { enabled: false },
  };

  it("sums allowed actions per day and resets the next day", async () => {
    const { steward, clock } = makeSteward({ blueprints: [blueprint] });
    const pay = (amount: number) =>
      steward.evaluate({ agentId: "payer", action: "pay", parameters: { amount } });
    expect((await pay(600)).intervention).toBe("OK");
    expect((await pay(500)).intervention).toBe("BLOCK"); // 1100 > 1000; not recorded
    expect((await pay(400)).intervention).toBe("OK"); // 1000
    expect((await pay(1)).intervention).toBe("BLOCK");
    clock.advance(DAY_MS);
    expect((await pay(900)).intervention).toBe("OK");
  });

  it("never lets a negative amount lower the daily total; counts bigint amounts", async () => {
    const { steward } = makeSteward({ blueprints: [blueprint] });
    const pay = (agentId: string, amount: number | bigint) =>
      steward.evaluate({ agentId, action: "pay", parameters: { amount } });
    expect((await pay("neg", 900)).intervention).toBe("OK");
    expect((await pay("neg", -5000)).intervention).toBe("OK"); // counts 0
    expect((await pay("neg", 200)).intervention).toBe("BLOCK");
    expect((await pay("big", 900n)).intervention).toBe("OK");
    expect((await pay("big", 200n)).intervention).toBe("BLOCK");
  });

  it("counts an approved ESCALATE once it is committed", async () => {
    const escalating = {
      ...blueprint,
      tripwires: [{ ...blueprint.tripwires[0], onFail: { decision: "ESCALATE" } }],
    };
    const { steward } = makeSteward({ blueprints: [escalating] });
    const pay = (amount: number) =>
      steward.evaluate({ agentId: "esc", action: "pay", parameters: { amount } });
    expect((await pay(900)).intervention).toBe("OK");
    const escalated = await pay(900);
    expect(escalated.intervention).toBe("ESCALATE");
    expect(escalated.metadata.commitOnApproval).toBe(true);
    // A trace id is the caller's: it names nothing the steward would commit.
    expect(await steward.commit(escalated.traceId)).toBe(false);
    expect(await steward.commit(escalated)).toBe(true);
    expect(await steward.commit(escalated)).toBe(false); // idempotent
    expect(await steward.commit("unknown")).toBe(false);
    // 1800 counted: even a small payment now needs approval.
    expect((await pay(50)).intervention).toBe("ESCALATE");
  });

  it("a pending approval cannot be replaced or committed through another trace with the same id", async () => {
    const escalating = {
      ...blueprint,
      tripwires: [{ ...blueprint.tripwires[0], onFail: { decision: "ESCALATE" } }],
    };
    const { steward } = makeSteward({ blueprints: [escalating] });
    const pay = (agentId: string, amount: number) =>
      steward.evaluate({ agentId, action: "pay", parameters: { amount }, traceId: "t1" });
    const first = await pay("a", 5000);
    const second = await pay("b", 1001);
    expect([first.intervention, second.intervention]).toEqual(["ESCALATE", "ESCALATE"]);
    expect(first.metadata.commitId).not.toBe(second.metadata.commitId);
    expect(await steward.commit(first)).toBe(true);
    // a's 5000 is counted (a 1-unit payment now escalates); b's unapproved 1001 is not.
    expect((await pay("a", 1)).intervention).toBe("ESCALATE");
    expect(
      (await steward.evaluate({ agentId: "b", action: "pay", parameters: { amount: 999 } }))
        .intervention,
    ).toBe("OK");
  });

  it("never moves a day bucket backwards when the clock does", async () => {
    const { steward, clock } = makeSteward({ blueprints: [blueprint] });
    const pay = (amount: number) =>
      steward.evaluate({ agentId: "late", action: "pay", parameters: { amount } });
    clock.set(new Date("2026-01-02T00:00:01Z"));
    expect((await pay(600)).intervention).toBe("OK");
    clock.set(new Date("2026-01-01T23:59:59Z"));
    expect((await pay(100)).intervention).toBe("OK");
    clock.set(new Date("2026-01-02T00:00:02Z"));
    expect((await pay(500)).intervention).toBe("BLOCK");
  });

  it("fails closed when the state cannot be read", async () => {
    const { steward } = makeSteward({
      blueprints: [blueprint],
      stateStorage: {
        reserve: () => Promise.reject(new Error("down")),
        release: () => {},
        read: () => Promise.reject(new Error("down")),
      },
    });
    const result = await steward.evaluate({ action: "pay", parameters: { amount: 1 } });
    expect(result.intervention).toBe("BLOCK");
  });
});

describe("scope selection", () => {
  const blueprints = [
    {
      id: "default@1",
      version: "1",
      tripwires: [{ id: "d", condition: "true", onFail: { decision: "NUDGE" } }],
    },
    {
      id: "tier@1",
      version: "1",
      scope: { agentTiers: ["tier-2"] },
      tripwires: [{ id: "t", condition: "true", onFail: { decision: "ESCALATE" } }],
    },
    {
      id: "agent@1",
      version: "1",
      scope: { agentIds: ["vip"] },
      tripwires: [{ id: "a", condition: "true", onFail: { decision: "BLOCK" } }],
    },
  ];
  const { steward } = makeSteward({ blueprints });

  it.each([
    [{ agentId: "x", agentTier: "tier-1" }, "default@1"],
    [{ agentId: "x", agentTier: "tier-2" }, "tier@1"],
    [{ agentId: "vip", agentTier: "tier-2" }, "agent@1"],
  ])("%j → %s", async ({ agentId, agentTier }, expected) => {
    const result = await steward.evaluate({ agentId, action: "a" }, {}, { agentTier });
    expect(result.governanceStatus.blueprintId).toBe(expected);
  });

  // Follow-up of wave 1: the agent id came from the trace, which an agent may build; the host
  // can now set it, and a trace that names another agent is refused.
  it("takes the agent id from the host when it gives one", async () => {
    const chosen = await steward.evaluate({ action: "a" }, {}, { agentId: "vip" });
    expect(chosen.governanceStatus.blueprintId).toBe("agent@1");
    expect(chosen.metadata.agentId).toBe("vip");
    const same = await steward.evaluate({ agentId: "vip", action: "a" }, {}, { agentId: "vip" });
    expect(same.governanceStatus.blueprintId).toBe("agent@1");
    for (const claimed of ["x", "VIP", "vip "]) {
      await expect(
        steward.evaluate({ agentId: claimed, action: "a" }, {}, { agentId: "vip" }),
      ).rejects.toMatchObject({ code: "INVALID_ARGUMENT", field: "trace.agentId" });
    }
    for (const bad of ["", 5, "a".repeat(300)]) {
      await expect(
        steward.evaluate({ action: "a" }, {}, { agentId: bad as never }),
      ).rejects.toMatchObject({ code: "INVALID_ARGUMENT", field: "options.agentId" });
    }
  });

  it("takes the tier from the host, never from the trace", async () => {
    // A tier the agent declares in its trace is ignored.
    const declared = await steward.evaluate({ agentId: "x", agentTier: "tier-2", action: "a" });
    expect(declared.governanceStatus.blueprintId).toBe("default@1");
    expect(declared.metadata.ignoredTraceAgentTier).toBe("tier-2");
    const { steward: mapped } = makeSteward({ blueprints, agentTiers: { x: "tier-2" } });
    expect(
      (await mapped.evaluate({ agentId: "x", action: "a" })).governanceStatus.blueprintId,
    ).toBe("tier@1");
    const { steward: resolved } = makeSteward({
      blueprints,
      agentTiers: (id) => (id === "y" ? "tier-2" : undefined),
    });
    expect(
      (await resolved.evaluate({ agentId: "y", agentTier: "tier-1", action: "a" })).governanceStatus
        .blueprintId,
    ).toBe("tier@1");
    expect(
      (await resolved.evaluate({ agentId: "y", action: "a" }, {}, { agentTier: "tier-1" }))
        .governanceStatus.blueprintId,
    ).toBe("default@1");
  });

  it("prefers the descendant on a tie, whatever the order given", async () => {
    const base = {
      id: "base@1",
      version: "1",
      tripwires: [{ id: "never", condition: "false", onFail: { decision: "BLOCK" } }],
    };
    const child = {
      id: "child@1",
      version: "1",
      inherits: "base@1",
      tripwires: [{ id: "big", condition: "args.amount > 500", onFail: { decision: "BLOCK" } }],
    };
    for (const order of [
      [base, child],
      [child, base],
    ]) {
      const { steward: tied } = makeSteward({ blueprints: order });
      const result = await tied.evaluate({ action: "pay", parameters: { amount: 9999 } });
      expect(result.governanceStatus.blueprintId).toBe("child@1");
      expect(result.intervention).toBe("BLOCK");
    }
  });

  it("refuses unrelated blueprints that are equally specific", () => {
    const a = { id: "a@1", version: "1", scope: { tools: ["pay", "x"] } };
    const b = { id: "b@1", version: "1", scope: { tools: ["pay"] } };
    expect(() => makeSteward({ blueprints: [a, b] })).toThrow(PolicyError);
    expect(() => makeSteward({ blueprints: [a, b] })).toThrow(/"a@1" and "b@1"/);
    // Disjoint or differently specific scopes are fine.
    expect(() =>
      makeSteward({ blueprints: [a, { ...b, scope: { tools: ["refund"] } }] }),
    ).not.toThrow();
    expect(() => makeSteward({ blueprints: [a, { id: "c@1", version: "1" }] })).not.toThrow();
  });

  it("blocks when no blueprint applies", async () => {
    const { steward: narrow } = makeSteward({
      blueprints: [blueprints[2] as Record<string, unknown>],
    });
    const result = await narrow.evaluate({ agentId: "other", action: "a" });
    expect(result.intervention).toBe("BLOCK");
    expect(result.metadata.reason).toBe("no_blueprint");
  });
});

describe("tier-1 scorers", () => {
  const slow = () => new Promise<number>((resolve) => setTimeout(() => resolve(1), 200));
  const blueprint = (fallback: unknown) => ({
    id: "judged@1",
    version: "1",
    checks: [{ id: "judge", scorer: "judge", latencyBudgetMs: 20, fallback }],
  });

  it("uses the score within budget", async () => {
    const { steward } = makeSteward({
      blueprints: [blueprint("deny")],
      scorers: { judge: async () => 0.5 },
    });
    const result = await steward.evaluate({ action: "a" });
    expect(result.intervention).toBe("ESCALATE");
    expect(result.governanceStatus.qualityScore).toBe(0.5);
  });

  it("denies by default over budget, and counts the timeout", async () => {
    const { steward } = makeSteward({ blueprints: [blueprint("deny")], scorers: { judge: slow } });
    const result = await steward.evaluate({ action: "a" });
    expect(result.intervention).toBe("BLOCK");
    expect(result.metadata.scorerFailures).toEqual({ judge: "timeout" });
    expect(steward.getMetrics().timeouts).toBe(1);
  });

  it("allows, scores, or raises BudgetExceeded as configured", async () => {
    const allow = makeSteward({ blueprints: [blueprint("allow")], scorers: { judge: slow } });
    expect((await allow.steward.evaluate({ action: "a" })).intervention).toBe("OK");
    const score = makeSteward({ blueprints: [blueprint(0.5)], scorers: { judge: slow } });
    expect((await score.steward.evaluate({ action: "a" })).intervention).toBe("ESCALATE");
    const raise = makeSteward({ blueprints: [blueprint("raise")], scorers: { judge: slow } });
    await expect(raise.steward.evaluate({ action: "a" })).rejects.toSatisfy(
      (error) => BudgetExceeded.isInstance(error) && error.code === "LATENCY_BUDGET_EXCEEDED",
    );
  });

  it("releases the state reservation when the evaluation throws", async () => {
    const stateStorage = new InMemoryStateStorage();
    const { steward } = makeSteward({
      blueprints: [
        {
          ...blueprint("raise"),
          tripwires: [
            {
              id: "daily",
              condition: "state.daily_total + args.amount > 1000",
              requiresState: true,
              onFail: { decision: "BLOCK" },
            },
          ],
        },
      ],
      scorers: { judge: slow },
      stateStorage,
    });
    await expect(
      steward.evaluate({ agentId: "p", action: "a", parameters: { amount: 900 } }),
    ).rejects.toSatisfy((error) => BudgetExceeded.isInstance(error));
    const state = stateStorage.read("p", Date.parse("2026-01-01T00:00:00Z"));
    expect(state.daily_total).toBe(0);
    expect(state.actions_total).toBe(0);
  });

  it("treats a failing or out-of-range scorer as its fallback (not a timeout)", async () => {
    const { steward } = makeSteward({
      blueprints: [blueprint("deny")],
      scorers: { judge: async () => 7 },
    });
    expect((await steward.evaluate({ action: "a" })).intervention).toBe("BLOCK");
    expect(steward.getMetrics().timeouts).toBe(0);
  });

  it("refuses a check naming a scorer that was not given", () => {
    expect(() => makeSteward({ blueprints: [blueprint("deny")] })).toThrow(PolicyError);
  });
});

describe("conformance levels", () => {
  it("minimal: only OK and BLOCK, no trust debt, a warning in production", async () => {
    const { steward, logger, audit } = makeSteward({
      blueprints: [decisionsBlueprint()],
      conformanceLevel: "minimal",
      production: true,
    });
    expect(logger.lines.filter((line) => line.level === "warn")).toHaveLength(1);
    const map = [];
    for (const kind of ["NUDGE", "FLAG", "ESCALATE", "BLOCK", "HALT"]) {
      map.push((await steward.evaluate(kinds(kind))).intervention);
    }
    expect(map).toEqual(["OK", "OK", "BLOCK", "BLOCK", "BLOCK"]);
    await steward.flush();
    expect(audit.events.map((event) => event.metadata?.intervention)).toEqual([
      "BLOCK",
      "BLOCK",
      "BLOCK",
    ]);
    expect(await steward.getTrustDebt("agent-BLOCK")).toBe(0);
    const quiet = makeSteward({
      blueprints: [decisionsBlueprint()],
      conformanceLevel: "minimal",
      production: true,
      enableWarnings: false,
    });
    expect(quiet.logger.lines).toHaveLength(0);
  });

  it("standard: audits non-OK interventions only, without awaiting them", async () => {
    const { steward, audit } = makeSteward({ blueprints: [decisionsBlueprint()] });
    await steward.evaluate(kinds());
    await steward.evaluate(kinds("ESCALATE"));
    await steward.flush();
    expect(audit.events.map((event) => [event.kind, event.metadata?.intervention])).toEqual([
      ["steward.intervention", "ESCALATE"],
    ]);
  });

  it("complete: audits every evaluation before returning, and enforces evidence", async () => {
    const { steward, audit } = makeSteward({
      blueprints: [decisionsBlueprint({ evidence: { minCitations: 1, requireReasoning: true } })],
      conformanceLevel: "complete",
    });
    const bare = await steward.evaluate(kinds());
    expect(bare.intervention).toBe("ESCALATE");
    expect(bare.metadata.missingEvidence).toEqual(["reasoning", "minCitations"]);
    expect(audit.events).toHaveLength(1);
    const cited = await steward.evaluate({
      ...kinds(),
      agentId: "cited",
      reasoning: "because",
      evidence: ["doc-1"],
    });
    expect(cited.intervention).toBe("OK");
    expect(audit.events).toHaveLength(2);
    expect(audit.events[1]?.metadata).toMatchObject({
      intervention: "OK",
      traceId: cited.traceId,
      blueprintId: "decisions@1.0",
      blueprintHash: cited.governanceStatus.blueprintHash,
    });
    expect(audit.events[1]?.inputHash).toMatch(/^[0-9a-f]{64}$/);
  });

  it("standard: reports missing evidence without enforcing it", async () => {
    const { steward } = makeSteward({
      blueprints: [decisionsBlueprint({ evidence: { minCitations: 1 } })],
    });
    const result = await steward.evaluate(kinds());
    expect(result.intervention).toBe("OK");
    expect(result.metadata.missingEvidence).toEqual(["minCitations"]);
  });
});

describe("observation never breaks the host", () => {
  it("returns the result when the audit sink fails, and counts the failure", async () => {
    const logger = { debug() {}, info() {}, warn() {}, error: vi.fn() };
    const steward = new GovernanceSteward(
      { blueprints: [decisionsBlueprint()], conformanceLevel: "complete" },
      { audit: { log: () => Promise.reject(new Error("chain down")) }, logger },
    );
    const result = await steward.evaluate(kinds("BLOCK"));
    expect(result.intervention).toBe("BLOCK");
    expect(steward.getMetrics().auditFailures).toBe(1);
    expect(logger.error).toHaveBeenCalledTimes(1);
  });
});

describe("a stuck audit sink at complete", () => {
  it("times out, goes on, and says so", async () => {
    const logger = { debug() {}, info() {}, warn() {}, error: vi.fn() };
    const steward = new GovernanceSteward(
      {
        blueprints: [
          decisionsBlueprint({
            trustDebt: {
              thresholds: { elevatedMonitoring: 1, restrictedMode: 0, retieringReview: 0 },
            },
          }),
        ],
        conformanceLevel: "complete",
        auditTimeoutMs: 30,
      },
      { audit: { log: () => new Promise<never>(() => {}) }, logger },
    );
    const result = await steward.evaluate(kinds("BLOCK")); // crosses a threshold too
    expect(result.intervention).toBe("BLOCK");
    expect(result.metadata.auditError).toBe("timeout");
    expect(steward.getMetrics().auditTimeouts).toBe(2);
    expect(logger.error).toHaveBeenCalledTimes(2);
  });

  it("refuses a bad audit timeout", () => {
    expect(
      () => new GovernanceSteward({ blueprints: [decisionsBlueprint()], auditTimeoutMs: 0 }),
    ).toThrow(PolicyError);
  });
});

describe("boundary", () => {
  it("refuses a malformed trace without counting it", async () => {
    const { steward } = makeSteward({ blueprints: [decisionsBlueprint()] });
    await expect(steward.evaluate({ action: "" })).rejects.toMatchObject({
      code: "INVALID_ARGUMENT",
      field: "trace.action",
    });
    await expect(steward.evaluate({ action: "a", confidence: 2 })).rejects.toMatchObject({
      field: "trace.confidence",
    });
    expect(steward.getMetrics().totalEvaluations).toBe(0);
  });

  it("refuses an evaluation of a halted agent", async () => {
    const steward = new GovernanceSteward(
      { blueprints: [decisionsBlueprint()] },
      { halt: recordingHaltGuard(["stopped"]), clock: new ManualClock() },
    );
    await expect(steward.evaluate({ agentId: "stopped", action: "a" })).rejects.toMatchObject({
      code: "AGENT_HALTED",
    });
  });

  it("counts metrics", async () => {
    const { steward } = makeSteward({ blueprints: [decisionsBlueprint()] });
    await steward.evaluate(kinds());
    await steward.evaluate(kinds("BLOCK", "FLAG"));
    const metrics = steward.getMetrics();
    expect(metrics).toMatchObject({
      totalEvaluations: 2,
      interventions: { OK: 1, BLOCK: 1, NUDGE: 0, FLAG: 0, ESCALATE: 0, HALT: 0 },
      flagged: 1,
      tripwireViolations: 2,
    });
    expect(metrics.p99LatencyMs).toBeGreaterThan(0);
  });
});

describe("example traces", () => {
  const yaml = `
id: payments@1.0
version: "1.0"
tripwires:
  - id: large-transfer
    when: { hook: pre_action, tool: transfer_funds }
    condition: "args.amount > 10000"
    severity: critical
    onFail: { decision: BLOCK, reason: "Transfers above 10,000 need a human." }
  - id: medium-transfer
    when: { tool: transfer_funds }
    condition: "args.amount > 1000"
    onFail: { decision: ESCALATE, reason: "Transfers above 1,000 are reviewed." }
  - id: exfiltration
    condition: 'action == "export_database" && args.destination.startsWith("http")'
    severity: severe
    onFail: { decision: HALT, reason: "Export to an external destination." }
  - id: unsure
    condition: "confidence != null && confidence < 0.3"
    onFail: { decision: NUDGE, reason: "Low confidence: reconsider." }
  - id: new-payee
    condition: "has(args.payee) && !(args.payee in context.known_payees)"
    onFail: { decision: FLAG, reason: "Payee not seen before." }
checks:
  - id: explained
    metric: reasoning_length
    min: 20
`;
  const long = "The customer requested this transfer in ticket 4411.";
  const context = { known_payees: ["acme"] };
  const cases: [string, string, CognitiveTrace][] = [
    [
      "a small known transfer",
      "OK",
      {
        action: "transfer_funds",
        parameters: { amount: 50, payee: "acme" },
        reasoning: long,
        confidence: 0.9,
      },
    ],
    [
      "a new payee",
      "FLAG",
      { action: "transfer_funds", parameters: { amount: 50, payee: "evil" }, reasoning: long },
    ],
    [
      "a medium transfer",
      "ESCALATE",
      { action: "transfer_funds", parameters: { amount: 5000, payee: "acme" }, reasoning: long },
    ],
    [
      "a large transfer",
      "BLOCK",
      { action: "transfer_funds", parameters: { amount: 50000, payee: "acme" }, reasoning: long },
    ],
    [
      "an external export",
      "HALT",
      { action: "export_database", parameters: { destination: "https://x" }, reasoning: long },
    ],
    [
      "an internal export",
      "OK",
      { action: "export_database", parameters: { destination: "s3-internal" }, reasoning: long },
    ],
    ["low confidence", "NUDGE", { action: "search", reasoning: long, confidence: 0.1 }],
    ["no reasoning", "BLOCK", { action: "search" }],
    ["short reasoning", "NUDGE", { action: "search", reasoning: "seems fine, go" }],
  ];
  it.each(cases)("%s → %s", async (_, expected, trace) => {
    const { steward } = makeSteward({ blueprints: [yaml] });
    const result = await steward.evaluate(trace, context);
    expect(result.intervention).toBe(expected);
  });
});
