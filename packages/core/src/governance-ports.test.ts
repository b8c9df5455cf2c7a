import { describe, expect, expectTypeOf, it } from "vitest";
import { InvalidArgumentError } from "./errors";
import {
  type ApprovalGate,
  type BudgetGuard,
  type GovernancePorts,
  type InterventionResultLike,
  type LoopGuard,
  noopCoverageRecorder,
  type ResolvedGovernancePorts,
  resolveGovernancePorts,
  type ScopeGuard,
  type StewardGuard,
} from "./governance-ports";
import * as core from "./index";
import { silentLogger } from "./logger";
import { type AuditSink, type HaltGuard, noopAuditSink, noopHaltGuard } from "./ports";
import { thrown } from "./testing";

const scope: ScopeGuard = {
  async check() {},
  filterTools: (_agentId, tools) => [...tools],
};
const loop: LoopGuard = { recordCall: () => null };
const cost: BudgetGuard = {
  async checkOrRaise() {
    return { reservationId: null };
  },
  async trackUsage() {},
  async reconcile() {},
  async release() {
    return 0;
  },
};
const gates: ApprovalGate = {
  async request(kind, agentId) {
    return {
      requestId: "r1",
      kind,
      agentId,
      expiresAt: new Date(0),
      stored: true,
      token: "t",
    };
  },
  async waitFor() {
    return true;
  },
  async verifyAction(requestId) {
    return {
      requestId,
      decision: "granted",
      reviewerId: "alice",
      reason: null,
      resolvedAt: new Date(0),
    };
  },
  async getRequest() {
    return null;
  },
};
const verdict: InterventionResultLike = {
  intervention: "OK",
  message: "",
  traceId: "t1",
  governanceStatus: { firedTripwires: [], flagged: false, blueprintId: null },
  metadata: {},
};
const steward: StewardGuard = {
  async evaluate() {
    return verdict;
  },
  async commit() {
    return false;
  },
};
const halt: HaltGuard = { async assertAlive() {} };
const audit: AuditSink = {
  async log() {
    return { eventId: "e1", isPlaceholder: false };
  },
};

/** The InvalidArgumentError `resolveGovernancePorts(value)` throws. */
function refusal(value: unknown): InvalidArgumentError {
  const error = thrown(() => resolveGovernancePorts(value as GovernancePorts));
  expect(InvalidArgumentError.isInstance(error)).toBe(true);
  const refused = error as InvalidArgumentError;
  expect(refused.recoveryHint).toContain("sdk.ports");
  return refused;
}

describe("resolveGovernancePorts", () => {
  it("reads the ports an SDK-like object carries, ignoring its other members", () => {
    const sdk = { store: {}, close: async () => {}, ports: { halt, scope, cost, gates, audit } };
    const ports = resolveGovernancePorts(sdk);
    expect(ports.halt).toBe(halt);
    expect(ports.scope).toBe(scope);
    expect(ports.cost).toBe(cost);
    expect(ports.gates).toBe(gates);
    expect(ports.audit).toBe(audit);
    expect(ports.loop).toBeNull();
    expect(ports.steward).toBeNull();
    expect(Object.isFrozen(ports)).toBe(true);
  });

  it("reads a bare ports object, each port as given", () => {
    const logger = { ...silentLogger };
    const coverage = { record() {} };
    const ports = resolveGovernancePorts({
      halt,
      scope,
      loop,
      cost,
      gates,
      steward,
      audit,
      coverage,
      logger,
    });
    expect(ports).toEqual({ halt, scope, loop, cost, gates, steward, audit, coverage, logger });
    expect(ports.loop).toBe(loop);
    expect(ports.gates).toBe(gates);
    expect(ports.steward).toBe(steward);
    expect(ports.coverage).toBe(coverage);
    expect(ports.logger).toBe(logger);
  });

  it("fills missing ports with no-ops (observation, halt) and null (scope, loop, cost, gates, steward)", () => {
    const expected: ResolvedGovernancePorts = {
      halt: noopHaltGuard,
      scope: null,
      loop: null,
      cost: null,
      gates: null,
      steward: null,
      audit: noopAuditSink,
      coverage: noopCoverageRecorder,
      logger: silentLogger,
    };
    expect(resolveGovernancePorts({})).toEqual(expected);
    expect(resolveGovernancePorts({ ports: {} })).toEqual(expected);
    expect(
      resolveGovernancePorts({
        scope: undefined,
        cost: undefined,
        gates: undefined,
        steward: undefined,
      }),
    ).toEqual(expected);
    const resolved = resolveGovernancePorts({});
    expect(resolved.halt).toBe(noopHaltGuard);
    expect(resolved.audit).toBe(noopAuditSink);
    expect(resolved.coverage).toBe(noopCoverageRecorder);
    expect(resolved.logger).toBe(silentLogger);
  });

  it("refuses a key that is not a port, naming it and the ports", () => {
    const error = refusal({ scope, budget: cost });
    expect(error.field).toBe("governance.budget");
    expect(error.message).toContain(
      "is not a port; the ports are halt, scope, loop, cost, gates, steward, audit, coverage, logger.",
    );
    expect(refusal({ ports: { scopes: scope } }).field).toBe("governance.ports.scopes");
    // A caller's key is cut in the message, so that it cannot flood a log.
    expect(refusal({ ["k".repeat(100)]: scope }).field).toBe(`governance.${"k".repeat(64)}…`);
  });

  it("refuses a port without one of its methods, naming governance.cost and the method", () => {
    const { reconcile: _reconcile, ...withoutReconcile } = cost;
    const error = refusal({ cost: withoutReconcile });
    expect(error.field).toBe("governance.cost");
    expect(error.message).toContain(
      "must be a BudgetGuard (@gov/cost), but it has no reconcile method.",
    );
    const both = refusal({ ports: { cost: { checkOrRaise: cost.checkOrRaise } } });
    expect(both.field).toBe("governance.ports.cost");
    expect(both.message).toContain("it has no trackUsage, reconcile, release methods.");
    // A method that is not a function is missing too.
    expect(refusal({ scope: { check: scope.check, filterTools: [] } }).message).toContain(
      "no filterTools method",
    );
    expect(refusal({ halt: "presence" }).message).toContain(
      "must be a HaltGuard (@gov/presence), got string.",
    );
    expect(refusal({ audit: null }).field).toBe("governance.audit");
  });

  it("refuses an approval gate or a steward without one of its methods, naming it", () => {
    for (const method of ["request", "waitFor", "verifyAction", "getRequest"] as const) {
      const { [method]: _removed, ...partial } = gates;
      const error = refusal({ gates: partial });
      expect(error.field).toBe("governance.gates");
      expect(error.message).toContain(
        `must be an ApprovalGate (@gov/gates), but it has no ${method} method.`,
      );
    }
    // A gates module that only opens requests cannot be waited on: refused, not half used.
    expect(refusal({ ports: { gates: { request: gates.request } } }).message).toContain(
      "it has no waitFor, verifyAction, getRequest methods.",
    );
    for (const method of ["evaluate", "commit"] as const) {
      const { [method]: _removed, ...partial } = steward;
      const error = refusal({ steward: partial });
      expect(error.field).toBe("governance.steward");
      expect(error.message).toContain(
        `must be a StewardGuard (@gov/steward), but it has no ${method} method.`,
      );
    }
    expect(refusal({ steward: "steward" }).message).toContain(
      "must be a StewardGuard (@gov/steward), got string.",
    );
    expect(refusal({ ports: { gates: null } }).field).toBe("governance.ports.gates");
  });

  it.each([
    [null, "governance", "got null"],
    [undefined, "governance", "got undefined"],
    [42, "governance", "got number"],
    ["sdk", "governance", "got string"],
    [[scope], "governance", "got an array"],
    // Not read as a ports object holding a key `ports`.
    [{ ports: null }, "governance.ports", "got null"],
    [{ ports: [] }, "governance.ports", "got an array"],
    [{ ports: "scope" }, "governance.ports", "got string"],
  ])("refuses %j, naming %s", (value, field, problem) => {
    const error = refusal(value);
    expect(error.field).toBe(field);
    expect(error.message).toContain(problem);
  });
});

describe("@gov/core's index", () => {
  it("exports the resolver and the no-op coverage recorder, and the port types", () => {
    expect(core.resolveGovernancePorts).toBe(resolveGovernancePorts);
    expect(core.noopCoverageRecorder).toBe(noopCoverageRecorder);
    expectTypeOf<core.GovernancePorts>().toEqualTypeOf<GovernancePorts>();
    expectTypeOf<core.ScopeGuard>().toEqualTypeOf<ScopeGuard>();
    expectTypeOf<core.BudgetGuard>().toEqualTypeOf<BudgetGuard>();
    expectTypeOf<core.LoopGuard>().toEqualTypeOf<LoopGuard>();
    expectTypeOf<core.ApprovalGate>().toEqualTypeOf<ApprovalGate>();
    expectTypeOf<core.StewardGuard>().toEqualTypeOf<StewardGuard>();
    expectTypeOf<core.InterventionResultLike>().toEqualTypeOf<InterventionResultLike>();
  });
});
