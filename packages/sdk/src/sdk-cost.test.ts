import { AgentHaltedError, ConfigError } from "@gov/core";
import { testEngines } from "@gov/core/testing";
import { describe, expect, it } from "vitest";
import { startOn } from "./__fixtures__";
import { GovernanceSDK, type GovernanceSDKOptions } from "./sdk";

describe.each(testEngines())("GovernanceSDK with the cost module on $name", (engine) => {
  it.skipIf(!engine.available)(
    "enforces budgets with the halt from presence and the breaches in the audit chain",
    async () => {
      const sdk = await startOn(engine, { defaultMaxTokens: 1000 });
      const agentId = "billing-agent";
      sdk.cost.register({ agentId, perSessionUsd: "0.02" });
      // gpt-4o: defaultMaxTokens 1,000 output tokens projected = $0.01.
      const reservation = await sdk.cost.checkOrRaise(agentId, "s-1", { model: "gpt-4o" });
      expect(reservation).toMatchObject({ tokens: 1000, usd: 0.01 });
      await sdk.cost.trackUsage(agentId, "s-1", {
        model: "gpt-4o",
        usage: { prompt_tokens: 400, completion_tokens: 950 },
        reservationId: reservation.reservationId,
      });
      await expect(
        sdk.cost.checkOrRaise(agentId, "s-1", { model: "gpt-4o" }),
      ).rejects.toMatchObject({ code: "BUDGET_EXCEEDED", cap: "perSessionUsd", used: 0.0105 });
      await sdk.presence.halt(agentId, { haltedBy: "ops@example.com", reason: "spend" });
      const halted = await sdk.cost
        .checkOrRaise(agentId, "s-2", { model: "gpt-4o" })
        .catch((error: unknown) => error);
      expect(AgentHaltedError.isInstance(halted)).toBe(true);
      expect(halted).toMatchObject({ path: "cost.checkOrRaise" });
      const events = await sdk.audit.getEvents({ agentId, limit: 100 });
      expect(events.map((event) => event.kind)).toEqual(
        expect.arrayContaining(["budget.exceeded", "agent.halted"]),
      );
      const breach = events.find((event) => event.kind === "budget.exceeded");
      expect(breach?.metadata).toMatchObject({
        cap: "perSessionUsd",
        limit: "0.02",
        used: "0.0105",
      });
      expect(await sdk.audit.verifyChain()).toBe(true);
    },
  );

  it.skipIf(!engine.available)(
    "reads the cost options from GOVERNANCE_* variables, explicit options winning",
    async () => {
      const sdk = await startOn(engine, {
        env: {
          GOVERNANCE_COST_FAIL_OPEN: "true",
          GOVERNANCE_DEFAULT_MAX_TOKENS: "256",
          GOVERNANCE_COST_STRICT_UNKNOWN_MODELS: "false",
          GOVERNANCE_COST_UNKNOWN_MODEL_FALLBACK_USD_PER_MILLION: "40",
          GOVERNANCE_COST_SPOOL_DIR: "relative/cost-spool",
        },
        defaultMaxTokens: 128,
      });
      expect(sdk.config).toMatchObject({
        costFailOpen: true,
        defaultMaxTokens: 128,
        costStrictUnknownModels: false,
        costUnknownModelFallbackUsdPerMillion: 40,
        costSpoolDirectory: "relative/cost-spool",
      });
      sdk.cost.register({ agentId: "a", perSessionTokens: 10_000 });
      // An unknown model at the fallback: 128 tokens × $40/M.
      const reservation = await sdk.cost.checkOrRaise("a", "s", { model: "house-model" });
      expect(reservation).toMatchObject({ tokens: 128, exactUsd: "0.00512" });
    },
  );
});

describe("GovernanceSDK cost options", () => {
  it("refuses bad cost options with their fix, and opens nothing", async () => {
    for (const [options, field] of [
      [{ defaultMaxTokens: 0 }, "defaultMaxTokens"],
      [{ costFailOpen: "yes" }, "costFailOpen"],
      [{ costUnknownModelFallbackUsdPerMillion: -1 }, "costUnknownModelFallbackUsdPerMillion"],
      [{ env: { GOVERNANCE_DEFAULT_MAX_TOKENS: "lots" } }, "GOVERNANCE_DEFAULT_MAX_TOKENS"],
    ] as const) {
      const error = await GovernanceSDK.start({
        databaseUrl: "memory://",
        logLevel: "silent",
        ...(options as GovernanceSDKOptions),
      }).catch((caught: unknown) => caught);
      expect(error, JSON.stringify(options)).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).message).toContain(field);
    }
  });

  it("refuses lax pricing without a fallback rate", async () => {
    const error = await GovernanceSDK.start({
      databaseUrl: "memory://",
      logLevel: "silent",
      costStrictUnknownModels: false,
    }).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).message).toContain("costUnknownModelFallbackUsdPerMillion");
  });
});
