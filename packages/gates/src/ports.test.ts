import {
  type ApprovalDecisionLike,
  type ApprovalGate,
  type ApprovalRecordLike,
  type ApprovalRecordStatus,
  type ApprovalRequestLike,
  resolveGovernancePorts,
} from "@gov/core";
import { rejectionOf, type TestEngine, testEngines } from "@gov/core/testing";
import { afterEach, beforeEach, describe, expect, expectTypeOf, it } from "vitest";
import { type GatesHarness, gatesHarness } from "./__fixtures__";
import { ApprovalDenied, ApprovalKeyInUseError, ApprovalTokenError } from "./errors";
import { GatesModule } from "./module";
import type { ApprovalRequest } from "./request";
import type { ApprovalDecision, ApprovalRecord, ApprovalStatus } from "./types";

describe("GatesModule is core's ApprovalGate", () => {
  it("fits the port's type: `pnpm typecheck` fails when either drifts", () => {
    // The assignment is the proof; the checks below make each method's variance strict (an
    // interface method is compared bivariantly): every call the port allows, the module takes,
    // and what the module returns is what the port promises.
    const port: ApprovalGate = GatesModule.prototype;
    expectTypeOf<GatesModule>().toExtend<ApprovalGate>();
    expectTypeOf<Parameters<ApprovalGate["request"]>>().toExtend<
      Parameters<GatesModule["request"]>
    >();
    expectTypeOf<Parameters<ApprovalGate["waitFor"]>>().toExtend<
      Parameters<GatesModule["waitFor"]>
    >();
    expectTypeOf<Parameters<ApprovalGate["verifyAction"]>>().toExtend<
      Parameters<GatesModule["verifyAction"]>
    >();
    expectTypeOf<Parameters<ApprovalGate["getRequest"]>>().toExtend<
      Parameters<GatesModule["getRequest"]>
    >();
    expectTypeOf<Parameters<NonNullable<ApprovalGate["findRequest"]>>>().toExtend<
      Parameters<GatesModule["findRequest"]>
    >();
    expectTypeOf<ApprovalRequest>().toExtend<ApprovalRequestLike>();
    expectTypeOf<ApprovalDecision>().toExtend<ApprovalDecisionLike>();
    expectTypeOf<ApprovalRecord>().toExtend<ApprovalRecordLike>();
    expectTypeOf<ReturnType<GatesModule["request"]>>().toExtend<
      ReturnType<ApprovalGate["request"]>
    >();
    expectTypeOf<ReturnType<GatesModule["waitFor"]>>().toExtend<
      ReturnType<ApprovalGate["waitFor"]>
    >();
    expectTypeOf<ReturnType<GatesModule["verifyAction"]>>().toExtend<
      ReturnType<ApprovalGate["verifyAction"]>
    >();
    expectTypeOf<ReturnType<GatesModule["getRequest"]>>().toExtend<
      ReturnType<ApprovalGate["getRequest"]>
    >();
    expectTypeOf<ReturnType<GatesModule["findRequest"]>>().toExtend<
      ReturnType<NonNullable<ApprovalGate["findRequest"]>>
    >();
    // A status the module adds must be one a composer knows how to read: the two are equal.
    expectTypeOf<ApprovalStatus>().toEqualTypeOf<ApprovalRecordStatus>();
    // And at run time: core's resolver finds every method the port needs on the module.
    expect(resolveGovernancePorts({ gates: port }).gates).toBe(GatesModule.prototype);
  });
});

describe.each(testEngines())(
  "GatesModule through the ApprovalGate port on $name",
  (engine: TestEngine) => {
    let h: GatesHarness;
    let gate: ApprovalGate;
    const kind = "tool.transfer_funds";
    const agentId = "deploy-agent";
    const payload = { to: "acct-7", amount: 120 };

    beforeEach(async () => {
      if (!engine.available) return;
      h = await gatesHarness(engine);
      const gates = resolveGovernancePorts({ gates: h.gates }).gates;
      if (gates === null) throw new Error("the gates port was not resolved");
      gate = gates;
    });

    afterEach(async () => {
      await h?.close();
    });

    it.skipIf(!engine.available)(
      "a request is pending until a reviewer grants it, then waits, verifies and runs once",
      async () => {
        const request = await gate.request(kind, agentId, { payload, expiresInMs: 60_000 });
        expect(request).toMatchObject({ kind, agentId, stored: true });
        expect(request.expiresAt).toEqual(new Date(h.clock.nowMs() + 60_000));
        expect(request.token.length).toBeGreaterThan(0);

        // Not decided yet: a read answers without blocking.
        expect(await gate.getRequest(request.requestId)).toMatchObject({
          requestId: request.requestId,
          kind,
          agentId,
          status: "pending",
          reviewerId: null,
          resolvedAt: null,
          executedAt: null,
          requestIntact: true,
        });

        await h.gates.grant(request.token, { reviewerId: "bob@company.com", reason: "ok" });
        const granted = await gate.getRequest(request.requestId);
        expect(granted).toMatchObject({
          status: "granted",
          reviewerId: "bob@company.com",
          reason: "ok",
          executedAt: null,
        });
        expect(granted?.resolvedAt).toBeInstanceOf(Date);

        expect(await gate.waitFor(request.requestId, { timeoutMs: 10_000 })).toBe(true);
        const decision = await gate.verifyAction(request.requestId, payload, { kind, agentId });
        expect(decision).toMatchObject({
          requestId: request.requestId,
          decision: "granted",
          reviewerId: "bob@company.com",
          reason: "ok",
        });
        expect((await gate.getRequest(request.requestId))?.executedAt).toBeInstanceOf(Date);

        // Once: a second execution is refused.
        const again = await rejectionOf(() =>
          gate.verifyAction(request.requestId, payload, { kind, agentId }),
        );
        expect(ApprovalTokenError.isInstance(again)).toBe(true);
        expect((again as ApprovalTokenError).reason).toBe("already_executed");
      },
    );

    it.skipIf(!engine.available)(
      "verifyAction refuses another kind, another agent or another payload, and runs nothing",
      async () => {
        const request = await gate.request(kind, agentId, { payload });
        await h.gates.grant(request.token, { reviewerId: "bob@company.com" });
        const refusals = [
          () => gate.verifyAction(request.requestId, payload, { kind: "tool.other", agentId }),
          () => gate.verifyAction(request.requestId, payload, { kind, agentId: "other-agent" }),
          () =>
            gate.verifyAction(request.requestId, { ...payload, amount: 9_999 }, { kind, agentId }),
        ];
        const reasons: string[] = [];
        for (const refused of refusals) {
          const error = await rejectionOf(refused);
          expect(ApprovalTokenError.isInstance(error)).toBe(true);
          reasons.push((error as ApprovalTokenError).reason);
        }
        expect(reasons).toEqual(["request_mismatch", "request_mismatch", "action_hash_mismatch"]);
        expect((await gate.getRequest(request.requestId))?.executedAt).toBeNull();
      },
    );

    it.skipIf(!engine.available)(
      "a request made with a key is found by it (how another process finds it); the key is used once",
      async () => {
        const key = "call_8f2b1c";
        const request = await gate.request(kind, agentId, { payload, key });
        const lookup = { agentId, kind, key };
        expect(await gate.findRequest?.(lookup)).toMatchObject({
          requestId: request.requestId,
          status: "pending",
          payload,
          requestIntact: true,
        });
        const reused = await rejectionOf(() => gate.request(kind, agentId, { payload, key }));
        expect(ApprovalKeyInUseError.isInstance(reused)).toBe(true);
        await h.gates.grant(request.token, { reviewerId: "bob@company.com" });
        const found = await gate.findRequest?.(lookup);
        expect(found?.status).toBe("granted");
        await gate.verifyAction(found?.requestId as string, payload, { kind, agentId });
        expect(await gate.findRequest?.({ ...lookup, key: "call_other" })).toBeNull();
      },
    );

    it.skipIf(!engine.available)(
      "a denial reads as denied with its reason, and the waiter is refused",
      async () => {
        const request = await gate.request(kind, agentId, { payload });
        await h.gates.deny(request.token, { reviewerId: "bob@company.com", reason: "too much" });
        expect(await gate.getRequest(request.requestId)).toMatchObject({
          status: "denied",
          reviewerId: "bob@company.com",
          reason: "too much",
        });
        const refused = await rejectionOf(() => gate.waitFor(request.requestId, { timeoutMs: 0 }));
        expect(ApprovalDenied.isInstance(refused)).toBe(true);
        expect((refused as ApprovalDenied).reason).toBe("too much");
      },
    );

    it.skipIf(!engine.available)(
      "an undecided request past its expiry reads pending until the clean-up marks it expired; an unknown one reads null",
      async () => {
        const request = await gate.request(kind, agentId, { payload, expiresInMs: 1_000 });
        h.clock.advance(2_000);
        const stale = await gate.getRequest(request.requestId);
        // What the port's TSDoc warns about: compare expiresAt with the clock.
        expect(stale?.status).toBe("pending");
        expect(stale?.expiresAt.getTime()).toBeLessThan(h.clock.nowMs());
        expect(await h.gates.expirePending()).toEqual([request.requestId]);
        expect((await gate.getRequest(request.requestId))?.status).toBe("expired");
        expect(await gate.getRequest("00000000-0000-4000-8000-000000000000")).toBeNull();
      },
    );
  },
);
