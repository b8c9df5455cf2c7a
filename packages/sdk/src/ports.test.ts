import { rejectionOf } from "@gov/core/testing";
import { describe, expect, expectTypeOf, it, onTestFinished } from "vitest";
import {
  AgentHaltedError,
  type GovernancePorts,
  GovernanceSDK,
  type GovernanceSDKOptions,
  noopAuditSink,
  noopHaltGuard,
  resolveGovernancePorts,
  ScopeViolation,
  silentLogger,
} from "./index";

const TRANSFERS_BLUEPRINT = `
id: transfers@1.0
version: "1.0"
tripwires:
  - id: large-transfer
    when: { tool: transfer_funds }
    condition: "args.amount > 1000"
    onFail: { decision: ESCALATE, reason: "Transfers above 1,000 need a human." }
`;

/** An SDK on an in-memory embedded database, closed when the test ends. */
async function start(options: GovernanceSDKOptions = {}): Promise<GovernanceSDK> {
  const sdk = await GovernanceSDK.start({
    databaseUrl: "memory://",
    logger: silentLogger,
    env: {},
    ...options,
  });
  onTestFinished(() => sdk.close());
  return sdk;
}

describe("sdk.ports", () => {
  it("hands over the enabled modules themselves, frozen, and resolveGovernancePorts reads them", async () => {
    const sdk = await start();
    expectTypeOf(sdk.ports).toEqualTypeOf<GovernancePorts>();
    expect(Object.isFrozen(sdk.ports)).toBe(true);
    // The steward is off by default: its port is absent.
    expect(Object.keys(sdk.ports)).toEqual([
      "halt",
      "scope",
      "loop",
      "cost",
      "gates",
      "coverage",
      "audit",
      "logger",
    ]);
    expect(sdk.ports.halt).toBe(sdk.presence);
    expect(sdk.ports.scope).toBe(sdk.scope);
    expect(sdk.ports.loop).toBe(sdk.loop);
    expect(sdk.ports.cost).toBe(sdk.cost);
    expect(sdk.ports.gates).toBe(sdk.gates);
    expect(sdk.ports.steward).toBeUndefined();
    expect(sdk.ports.coverage).toBe(sdk.coverage);
    expect(sdk.ports.audit).toBe(sdk.audit);
    expect(sdk.ports.logger).toBe(sdk.logger);
    expect(sdk.ports).toBe(sdk.ports);

    const ports = resolveGovernancePorts(sdk);
    expect(ports).toMatchObject({
      halt: sdk.presence,
      scope: sdk.scope,
      loop: sdk.loop,
      cost: sdk.cost,
      gates: sdk.gates,
      steward: null,
      audit: sdk.audit,
      logger: sdk.logger,
    });

    // The ports are the live modules: what one is told, the others enforce.
    sdk.scope.register({ agentId: "billing-agent", allowedModels: ["gpt-4o-mini"] });
    await expect(ports.scope?.check("billing-agent", { model: "gpt-4o-mini" })).resolves.toBe(
      undefined,
    );
    const refused = await rejectionOf(() =>
      (ports.scope as NonNullable<typeof ports.scope>).check("billing-agent", { model: "gpt-4o" }),
    );
    expect(ScopeViolation.isInstance(refused)).toBe(true);
    const events = await sdk.audit.getEvents({ agentId: "billing-agent", kind: "scope.violation" });
    expect(events.map((event) => event.metadata)).toEqual([
      { model: "gpt-4o", reason: "not_allowed", path: "scope.check" },
    ]);
    await sdk.presence.halt("billing-agent", { haltedBy: "alice@example.com", reason: "test" });
    const halted = await rejectionOf(() =>
      ports.halt.assertAlive("billing-agent", { path: "wrappers.test" }),
    );
    expect(AgentHaltedError.isInstance(halted)).toBe(true);
  });

  it("leaves a disabled module's port out (no getter that throws), and the resolver fills in no-ops", async () => {
    const sdk = await start({
      enablePresence: false,
      enableScope: false,
      enableLoop: false,
      enableCost: false,
      enableGates: false,
      enableAudit: false,
      enableCoverage: false,
    });
    expect(Object.keys(sdk.ports)).toEqual(["logger"]);
    for (const name of ["halt", "scope", "loop", "cost", "gates", "steward", "audit"] as const) {
      expect(Object.getOwnPropertyDescriptor(sdk.ports, name), name).toBeUndefined();
      expect(sdk.ports[name], name).toBeUndefined();
    }
    expect(resolveGovernancePorts(sdk)).toEqual({
      halt: noopHaltGuard,
      scope: null,
      loop: null,
      cost: null,
      gates: null,
      steward: null,
      audit: noopAuditSink,
      coverage: expect.objectContaining({ record: expect.any(Function) }),
      logger: sdk.logger,
    });
  });

  it("leaves out only the modules that are disabled", async () => {
    const sdk = await start({ enableCost: false, enablePresence: false });
    expect(Object.keys(sdk.ports)).toEqual([
      "scope",
      "loop",
      "gates",
      "coverage",
      "audit",
      "logger",
    ]);
    const ports = resolveGovernancePorts(sdk.ports);
    expect(ports.cost).toBeNull();
    expect(ports.halt).toBe(noopHaltGuard);
    expect(ports.scope).toBe(sdk.scope);
    expect(ports.audit).toBe(sdk.audit);
  });

  it("hands over the steward when enabled, and the gates and steward ports work together on the chain", async () => {
    const sdk = await start({ enableSteward: true, stewardBlueprints: [TRANSFERS_BLUEPRINT] });
    expect(Object.keys(sdk.ports)).toEqual([
      "halt",
      "scope",
      "loop",
      "cost",
      "gates",
      "steward",
      "coverage",
      "audit",
      "logger",
    ]);
    expect(sdk.ports.steward).toBe(sdk.steward);
    const { gates, steward } = resolveGovernancePorts(sdk);
    if (gates === null || steward === null) throw new Error("gates and steward must be resolved");

    // What a tool wrapper does: the steward escalates, a reviewer approves through gates, the
    // approval is verified and committed, and only then would the tool run.
    const args = { to: "acct-7", amount: 5_000 };
    const verdict = await steward.evaluate(
      { action: "transfer_funds", parameters: args },
      {},
      { agentId: "billing-agent" },
    );
    expect([verdict.intervention, verdict.message]).toEqual([
      "ESCALATE",
      expect.stringContaining("Transfers above 1,000 need a human."),
    ]);
    const request = await gates.request("tool.transfer_funds", "billing-agent", { payload: args });
    expect(request.stored).toBe(true);
    expect((await gates.getRequest(request.requestId))?.status).toBe("pending");
    await sdk.gates.grant(request.token, { reviewerId: "alice@example.com" });
    expect((await gates.getRequest(request.requestId))?.status).toBe("granted");
    const decision = await gates.verifyAction(request.requestId, args, {
      kind: "tool.transfer_funds",
      agentId: "billing-agent",
    });
    expect(decision.reviewerId).toBe("alice@example.com");
    expect(await steward.commit(verdict)).toBe(false); // not a stateful ESCALATE: nothing to count

    // Both modules wrote to the one audit chain the SDK composed.
    await sdk.steward.flush();
    const kinds = (await sdk.audit.getEvents({ agentId: "billing-agent" })).map(
      (event) => event.kind,
    );
    expect(kinds).toEqual(
      expect.arrayContaining([
        "steward.intervention",
        "approval.requested",
        "approval.granted",
        "approval.executed",
      ]),
    );
  });
});
