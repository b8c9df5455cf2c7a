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
    expect(Object.keys(sdk.ports)).toEqual(["halt", "scope", "loop", "cost", "audit", "logger"]);
    expect(sdk.ports.halt).toBe(sdk.presence);
    expect(sdk.ports.scope).toBe(sdk.scope);
    expect(sdk.ports.loop).toBe(sdk.loop);
    expect(sdk.ports.cost).toBe(sdk.cost);
    expect(sdk.ports.audit).toBe(sdk.audit);
    expect(sdk.ports.logger).toBe(sdk.logger);
    expect(sdk.ports).toBe(sdk.ports);

    const ports = resolveGovernancePorts(sdk);
    expect(ports).toMatchObject({
      halt: sdk.presence,
      scope: sdk.scope,
      loop: sdk.loop,
      cost: sdk.cost,
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
    });
    expect(Object.keys(sdk.ports)).toEqual(["logger"]);
    for (const name of ["halt", "scope", "loop", "cost", "audit"] as const) {
      expect(Object.getOwnPropertyDescriptor(sdk.ports, name), name).toBeUndefined();
      expect(sdk.ports[name], name).toBeUndefined();
    }
    expect(resolveGovernancePorts(sdk)).toEqual({
      halt: noopHaltGuard,
      scope: null,
      loop: null,
      cost: null,
      audit: noopAuditSink,
      coverage: expect.objectContaining({ record: expect.any(Function) }),
      logger: sdk.logger,
    });
  });

  it("leaves out only the modules that are disabled", async () => {
    const sdk = await start({ enableCost: false, enablePresence: false });
    expect(Object.keys(sdk.ports)).toEqual(["scope", "loop", "audit", "logger"]);
    const ports = resolveGovernancePorts(sdk.ports);
    expect(ports.cost).toBeNull();
    expect(ports.halt).toBe(noopHaltGuard);
    expect(ports.scope).toBe(sdk.scope);
    expect(ports.audit).toBe(sdk.audit);
  });
});
