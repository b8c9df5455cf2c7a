import { createRequire } from "node:module";
import { noopHaltGuard, runMigrations, silentLogger, systemClock } from "@gov/core";
import { createTestDatabase, recordingAuditSink, testEngines } from "@gov/core/testing";
import { BudgetExceeded, CostModule, costMigrations, PriceTable } from "@gov/cost";
import { describe, expect, it, onTestFinished } from "vitest";
import { openAtTheEdge } from "./edge";

describe("installing @gov/cost with @gov/core", () => {
  it("resolves to its built package, with its migrations and price list shipped", () => {
    const require = createRequire(import.meta.url);
    expect(require.resolve("@gov/cost")).toMatch(/cost[\\/]dist[\\/]index\.js$/);
    expect(new PriceTable().lookup("gpt-4o")?.price.inputUsdPerMillion).toBe("2.5");
  });
});

describe.each(testEngines())("composing the cost module by hand on $name", (engine) => {
  it.skipIf(!engine.available)(
    "migrates, checks and reserves, settles usage, and writes breaches through the host's sink",
    async () => {
      const { databaseUrl, dispose } = await createTestDatabase(engine);
      onTestFinished(dispose);
      const { store } = await openAtTheEdge(databaseUrl);
      onTestFinished(() => store.close());
      await runMigrations(store, [costMigrations]);
      const audit = recordingAuditSink();
      const cost = new CostModule(
        { store, clock: systemClock, logger: silentLogger, audit, halt: noopHaltGuard },
        { defaultMaxTokens: 1000 },
      );
      onTestFinished(() => cost.close());
      cost.register({ agentId: "billing-agent", perSessionUsd: "0.015" });
      const reservation = await cost.checkOrRaise("billing-agent", "s-1", { model: "gpt-4o" });
      expect(reservation.exactUsd).toBe("0.01");
      await cost.trackUsage("billing-agent", "s-1", {
        model: "gpt-4o",
        usage: { prompt_tokens: 1000, completion_tokens: 600 },
        reservationId: reservation.reservationId,
      });
      const refused = await cost
        .checkOrRaise("billing-agent", "s-1", { model: "gpt-4o" })
        .catch((error: unknown) => error);
      expect(BudgetExceeded.isInstance(refused)).toBe(true);
      expect(audit.events.map((event) => event.kind)).toEqual(["budget.exceeded"]);
      expect((await cost.snapshot("billing-agent", "s-1")).sessionUsdUsed).toBe(0.0085);
    },
  );
});
