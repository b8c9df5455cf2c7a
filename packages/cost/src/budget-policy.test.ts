import { inspect } from "node:util";
import { ConfigError, noopAuditSink, noopHaltGuard, silentLogger } from "@gov/core";
import { describe, expect, it } from "vitest";
import { unreachableStore } from "./__fixtures__";
import { BudgetPolicy, type BudgetPolicyInput } from "./budget-policy";
import { InvalidBudgetPolicyError } from "./errors";
import { CostModule } from "./module";

const SECRET = "whsec_0123456789abcdef";

function refusal(input: unknown): InvalidBudgetPolicyError {
  try {
    new BudgetPolicy(input as BudgetPolicyInput);
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidBudgetPolicyError);
    expect(InvalidBudgetPolicyError.isInstance(error)).toBe(true);
    return error as InvalidBudgetPolicyError;
  }
  throw new Error(`expected ${JSON.stringify(input)} to be refused`);
}

describe("BudgetPolicy", () => {
  it("holds every cap exactly, and numbers for display", () => {
    const policy = new BudgetPolicy({
      agentId: "billing-agent",
      perSessionUsd: "0.10",
      perSessionTokens: 50_000,
      perAgentUsdDaily: 10,
      perAgentTokensDaily: 1_000_000,
      perSessionSeconds: 300,
    });
    expect(policy.perSessionUsd).toBe(0.1);
    expect(policy.exact.perSessionUsd).toBe(100_000_000_000_000n);
    expect(policy.toJSON()).toEqual({
      agentId: "billing-agent",
      perSessionUsd: "0.1",
      perSessionTokens: 50_000,
      perAgentUsdDaily: "10",
      perAgentTokensDaily: 1_000_000,
      perSessionSeconds: 300,
      alert: null,
    });
    expect(Object.isFrozen(policy)).toBe(true);
    expect(BudgetPolicy.isInstance(policy)).toBe(true);
    expect(BudgetPolicy.isInstance({ agentId: "x" })).toBe(false);
  });

  it("keeps the alert secret out of toJSON, inspect, JSON and enumeration", () => {
    const policy = new BudgetPolicy({
      agentId: "a",
      perSessionUsd: 1,
      alert: { webhookUrl: "https://ops.example.com/hooks/budget", secret: SECRET },
    });
    // The path of a webhook is often its credential: only the origin is shown.
    expect(policy.alert).toEqual({ webhookUrl: "https://ops.example.com/…", thresholdPercent: 80 });
    for (const view of [
      JSON.stringify(policy),
      inspect(policy, { depth: 10, showHidden: true }),
      inspect(Object.entries(policy), { depth: 10 }),
    ]) {
      expect(view).not.toContain(SECRET);
      expect(view).not.toContain("hooks/budget");
    }
  });

  it("accepts the boundaries: 0 caps, 86,400 s, $1,000,000,000, 1 % and 100 %", () => {
    expect(new BudgetPolicy({ agentId: "a", perSessionUsd: 0 }).perSessionUsd).toBe(0);
    expect(new BudgetPolicy({ agentId: "a", perSessionSeconds: 86_400 }).perSessionSeconds).toBe(
      86_400,
    );
    expect(
      new BudgetPolicy({ agentId: "a", perAgentUsdDaily: 1_000_000_000 }).perAgentUsdDaily,
    ).toBe(1e9);
    for (const thresholdPercent of [1, 100]) {
      const alert = { webhookUrl: "http://localhost:9000/x", secret: SECRET, thresholdPercent };
      expect(
        new BudgetPolicy({ agentId: "a", perSessionTokens: 1, alert }).alert?.thresholdPercent,
      ).toBe(thresholdPercent);
    }
  });

  it("refuses bad input, naming the field, the limit and the fix", () => {
    const cases: [unknown, string, RegExp, number?][] = [
      [null, "policy", /must be an object/],
      ["billing-agent", "policy", /must be an object/],
      [{ perSessionUsd: 1 }, "agentId", /required/],
      [{ agentId: "", perSessionUsd: 1 }, "agentId", /empty/],
      [
        { agentId: "x".repeat(257), perSessionUsd: 1 },
        "agentId",
        /257 characters long; the limit is 256/,
        256,
      ],
      [{ agentId: "a\u202eb", perSessionUsd: 1 }, "agentId", /control/],
      [{ agentId: "a" }, "policy", /sets no cap/],
      [{ agentId: "a", perSessionUsd: null, perSessionSeconds: null }, "policy", /sets no cap/],
      [{ agentId: "a", perSessionUsd: -1 }, "perSessionUsd", /negative/],
      [{ agentId: "a", perSessionUsd: "1e-16" }, "perSessionUsd", /more than 15 decimal places/],
      [{ agentId: "a", perSessionUsd: Number.NaN }, "perSessionUsd", /NaN/],
      [{ agentId: "a", perSessionUsd: 1e9 + 1 }, "perSessionUsd", /the limit is 1000000000/, 1e9],
      [{ agentId: "a", perSessionUsd: true }, "perSessionUsd", /number or a decimal string/],
      [{ agentId: "a", perSessionTokens: 1.5 }, "perSessionTokens", /whole number/],
      [{ agentId: "a", perAgentTokensDaily: -5 }, "perAgentTokensDaily", /negative/],
      [
        { agentId: "a", perSessionSeconds: 86_401 },
        "perSessionSeconds",
        /the limit is 86400/,
        86_400,
      ],
      [{ agentId: "a", perSessionSeconds: "300" }, "perSessionSeconds", /whole number of seconds/],
      [{ agentId: "a", per_session_usd: 1 }, "per_session_usd", /not a budget policy field/],
      [{ agentId: "a", perSessionUsd: 1, alert: "https://x" }, "alert", /must be an object/],
      [
        { agentId: "a", perSessionUsd: 1, alert: { webhookUrl: "ftp://x/y", secret: SECRET } },
        "alert.webhookUrl",
        /http: or https:/,
      ],
      [
        { agentId: "a", perSessionUsd: 1, alert: { webhookUrl: "not a url", secret: SECRET } },
        "alert.webhookUrl",
        /http: or https:/,
      ],
      [
        {
          agentId: "a",
          perSessionUsd: 1,
          alert: { webhookUrl: "https://user:pw@x.io/h", secret: SECRET },
        },
        "alert.webhookUrl",
        /user name or password/,
      ],
      [{ agentId: "   ", perSessionUsd: 1 }, "agentId", /white space/],
      [{ agentId: "a\ud800", perSessionUsd: 1 }, "agentId", /half of a character/],
      [
        { agentId: "a", perSessionUsd: 1, alert: { webhookUrl: "https://x.io", secret: "short" } },
        "alert.secret",
        /at least 16/,
      ],
      [
        {
          agentId: "a",
          perSessionUsd: 1,
          alert: { webhookUrl: "https://x.io", secret: SECRET, thresholdPercent: 0 },
        },
        "alert.thresholdPercent",
        /at least 1/,
      ],
      [
        {
          agentId: "a",
          perSessionUsd: 1,
          alert: { webhookUrl: "https://x.io", secret: SECRET, thresholdPercent: 101 },
        },
        "alert.thresholdPercent",
        /at most 100/,
      ],
      [
        {
          agentId: "a",
          perSessionUsd: 1,
          alert: { webhookUrl: "https://x.io", secret: SECRET, extra: 1 },
        },
        "alert.extra",
        /not a budget policy field/,
      ],
    ];
    for (const [input, field, message, limit] of cases) {
      const error = refusal(input);
      expect(error.code, JSON.stringify(input)).toBe("BUDGET_POLICY_INVALID");
      expect(error.field, JSON.stringify(input)).toBe(field);
      expect(error.message, JSON.stringify(input)).toMatch(message);
      expect(error.recoveryHint.length).toBeGreaterThan(10);
      if (limit !== undefined) expect(error.limit).toBe(limit);
      expect(error.message).not.toContain(SECRET);
    }
  });
});

describe("CostModule constructor", () => {
  const context = {
    store: unreachableStore(),
    logger: silentLogger,
    audit: noopAuditSink,
    halt: noopHaltGuard,
  };

  it("refuses missing ports and bad options, naming the field", () => {
    expect(() => new CostModule(null as never)).toThrow(/context/);
    expect(() => new CostModule({ ...context, store: undefined } as never)).toThrow(
      /context\.store/,
    );
    expect(() => new CostModule({ ...context, audit: {} } as never)).toThrow(/context\.audit.*log/);
    expect(() => new CostModule({ ...context, halt: null } as never)).toThrow(/context\.halt/);
    expect(() => new CostModule({ ...context, clock: { now: 1 } } as never)).toThrow(
      /context\.clock/,
    );
    const options: [Record<string, unknown>, string][] = [
      [{ defaultMaxTokens: 0 }, "options.defaultMaxTokens"],
      [{ defaultMaxTokens: 1.5 }, "options.defaultMaxTokens"],
      [{ failOpen: "yes" }, "options.failOpen"],
      [{ reservationTtlSeconds: 0 }, "options.reservationTtlSeconds"],
      [{ sweepIntervalMs: 10 }, "options.sweepIntervalMs"],
      [{ unknownModelFallbackUsdPerMillion: -1 }, "options.unknownModelFallbackUsdPerMillion"],
      [{ prices: {} }, "options.prices"],
      [{ cost_fail_open: true }, "options.cost_fail_open"],
    ];
    for (const [value, field] of options) {
      let caught: unknown;
      try {
        new CostModule(context, value);
      } catch (error) {
        caught = error;
      }
      expect(caught, JSON.stringify(value)).toMatchObject({ code: "INVALID_ARGUMENT", field });
    }
  });

  it("refuses lax mode without a positive fallback rate (ConfigError)", () => {
    expect(() => new CostModule(context, { strictUnknownModels: false })).toThrow(ConfigError);
    expect(
      () =>
        new CostModule(context, {
          strictUnknownModels: false,
          unknownModelFallbackUsdPerMillion: 0,
        }),
    ).toThrow(/fallback/);
    expect(
      new CostModule(context, { strictUnknownModels: false, unknownModelFallbackUsdPerMillion: 5 }),
    ).toBeInstanceOf(CostModule);
  });
});
