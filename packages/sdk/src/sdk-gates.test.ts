import { AgentHaltedError } from "@gov/core";
import { testEngines } from "@gov/core/testing";
import { describe, expect, it } from "vitest";
import { startOn } from "./__fixtures__";
import { GovernanceSDK } from "./sdk";

describe.each(testEngines())("GovernanceSDK with the gates module on $name", (engine) => {
  it.skipIf(!engine.available)(
    "a request waits for a human; the agent's own operator may not approve it; all in the chain",
    async () => {
      const sdk = await startOn(engine);
      const agentId = "billing-agent";
      await sdk.presence.heartbeat(agentId, { operatorId: "ops@example.com" });
      const request = await sdk.gates.request("refund.issue", agentId, {
        payload: { invoice: "INV-42", amount: 120 },
      });
      expect(request.stored).toBe(true);
      // The operator bound to the agent by its heartbeat is refused (the operators port).
      await expect(
        sdk.gates.grant(request.token, { reviewerId: "ops@example.com" }),
      ).rejects.toMatchObject({ code: "SELF_APPROVAL" });
      const waiting = sdk.gates.waitFor(request.requestId, { timeout: 10_000 });
      await sdk.gates.grant(request.token, { reviewerId: "alice@example.com" });
      await expect(waiting).resolves.toBe(true);
      await sdk.gates.verifyAction(request.requestId, { amount: 120, invoice: "INV-42" });
      const kinds = (await sdk.audit.getEvents({ agentId, limit: 100 })).map((event) => event.kind);
      expect(kinds).toEqual(expect.arrayContaining(["approval.requested", "approval.granted"]));
      expect(JSON.stringify(await sdk.audit.getEvents({ agentId, limit: 100 }))).not.toContain(
        request.token,
      );
      // The operator's halt reaches gates too.
      await sdk.presence.halt(agentId, { haltedBy: "ops@example.com", reason: "review" });
      const halted = await sdk.gates
        .request("refund.issue", agentId, { payload: {} })
        .catch((error: unknown) => error);
      expect(AgentHaltedError.isInstance(halted)).toBe(true);
    },
  );

  it.skipIf(!engine.available)("reads the gates options from GOVERNANCE_* variables", async () => {
    const sdk = await startOn(engine, {
      env: {
        GOVERNANCE_GATES_ACCEPT_V1_UNTIL: "2030-01-01T00:00:00Z",
        GOVERNANCE_GATES_ENABLE_V2_TOKENS: "false",
      },
    });
    expect(sdk.config).toMatchObject({
      enableV2Tokens: false,
      acceptV1Until: new Date("2030-01-01T00:00:00Z"),
    });
    const request = await sdk.gates.request("refund.issue", "a", { payload: {} });
    expect(request.tokenVersion).toBe(1);
    expect(request.token.startsWith("v2:")).toBe(false);
    await expect(
      GovernanceSDK.start({
        databaseUrl: "memory://",
        logLevel: "silent",
        env: { GOVERNANCE_GATES_ACCEPT_V1_UNTIL: "soon" },
      }),
    ).rejects.toThrow("GOVERNANCE_GATES_ACCEPT_V1_UNTIL");
  });
});
