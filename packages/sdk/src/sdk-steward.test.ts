import { testEngines } from "@gov/core/testing";
import { describe, expect, it } from "vitest";
import { startOn } from "./__fixtures__";

const REFUNDS_BLUEPRINT = `
id: refunds@1.0
version: "1.0"
scope:
  tools: [issue_refund]
tripwires:
  - id: large-refund
    when: { tool: issue_refund }
    condition: "args.amount > 500"
    onFail: { decision: BLOCK, reason: "Refunds above 500 need a human." }
`;

describe.each(testEngines())("GovernanceSDK with the steward on $name", (engine) => {
  it.skipIf(!engine.available)(
    "evaluates traces against its blueprints and writes interventions to the chain",
    async () => {
      const sdk = await startOn(engine, {
        enableSteward: true,
        stewardBlueprints: [REFUNDS_BLUEPRINT],
      });
      const ok = await sdk.steward.evaluate({
        agentId: "billing-agent",
        action: "issue_refund",
        parameters: { amount: 120 },
        reasoning: "The invoice INV-42 was paid twice; the customer asked for the duplicate back.",
        confidence: 0.9,
        evidence: ["INV-42"],
      });
      expect(ok.intervention).not.toBe("BLOCK");
      const blocked = await sdk.steward.evaluate({
        agentId: "billing-agent",
        action: "issue_refund",
        parameters: { amount: 5000 },
        reasoning: "The customer asked.",
      });
      expect(blocked.intervention).toBe("BLOCK");
      expect(blocked.governanceStatus.firedTripwires).toEqual(["large-refund"]);
      await sdk.steward.flush();
      const kinds = (await sdk.audit.getEvents({ agentId: "billing-agent", limit: 50 })).map(
        (event) => event.kind,
      );
      expect(kinds).toContain("steward.intervention");
    },
  );
});
