import { createRequire } from "node:module";
import { ManualClock, noopHaltGuard, runMigrations, silentLogger } from "@gov/core";
import { createTestDatabase, recordingAuditSink, testEngines } from "@gov/core/testing";
import { GovernanceSteward, StewardModule, stewardMigrations } from "@gov/steward";
import { describe, expect, it, onTestFinished } from "vitest";
import { openAtTheEdge } from "./edge";

const BLUEPRINT = `
id: refunds@1.0
version: "1.0"
tripwires:
  - id: large-refund
    condition: "args.amount > 500"
    onFail: { decision: BLOCK, reason: "Refunds above 500 need a human." }
`;

describe("installing @gov/steward with @gov/core", () => {
  it("resolves to its built package and evaluates with no database at all", async () => {
    const require = createRequire(import.meta.url);
    expect(require.resolve("@gov/steward")).toMatch(/steward[\\/]dist[\\/]index\.js$/);
    const steward = new GovernanceSteward({}, { blueprints: [BLUEPRINT] });
    const result = await steward.evaluate({ action: "refund", parameters: { amount: 900 } });
    expect(result.intervention).toBe("BLOCK");
  });
});

describe.each(testEngines())("composing the steward by hand on $name", (engine) => {
  it.skipIf(!engine.available)(
    "keeps trust debt in the database and writes interventions through the host's sink",
    async () => {
      const { databaseUrl, dispose } = await createTestDatabase(engine);
      onTestFinished(dispose);
      const { store, keyring } = await openAtTheEdge(databaseUrl);
      onTestFinished(() => store.close());
      await runMigrations(store, [stewardMigrations]);
      const audit = recordingAuditSink();
      const context = {
        store,
        keyring,
        clock: new ManualClock(new Date("2026-11-23T12:00:00Z")),
        logger: silentLogger,
        audit,
        halt: noopHaltGuard,
      };
      const module = await StewardModule.create(context, { blueprints: [BLUEPRINT] });
      onTestFinished(() => module.close());
      const result = await module.evaluate({
        agentId: "billing-agent",
        action: "refund",
        parameters: { amount: 900 },
      });
      expect(result.intervention).toBe("BLOCK");
      expect(result.governanceStatus.trustDebtAfter).toBeGreaterThan(0);
      await module.flush();
      expect(audit.events.map((event) => event.kind)).toContain("steward.intervention");
    },
  );
});
