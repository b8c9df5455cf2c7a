import { AgentHaltedError, type AuditSink, type HaltGuard, type Store, sql } from "@gov/core";
import { type TestEngine, testEngines } from "@gov/core/testing";
import { PgDialect } from "drizzle-orm/pg-core";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  flakyStore,
  type GatesHarness,
  gatesHarness,
  keyringOf,
  SECRET_B,
  thrown,
  wrapQuery,
} from "./__fixtures__";
import {
  ApprovalDenied,
  ApprovalIntegrityError,
  ApprovalPending,
  ApprovalStoreError,
  ApprovalTimeout,
  ApprovalTokenError,
} from "./errors";
import type { ApprovalRequest } from "./request";

/**
 * A store whose `query` calls `before(text)` once each read has its rows and before they are
 * returned; records every statement.
 */
function spyStore(
  store: Store,
  before: (text: string) => Promise<void> | void = () => undefined,
): { store: Store; statements: string[] } {
  const statements: string[] = [];
  const wrapped = wrapQuery(store, async (query, next) => {
    const text = dialect.sqlToQuery(query).sql;
    statements.push(text);
    const rows = await next(query);
    await before(text);
    return rows;
  });
  return { store: wrapped, statements };
}

const dialect = new PgDialect();
const isRead = (text: string) => /^\s*select\b/i.test(text);

describe.each(testEngines())("waiting for a decision on $name", (engine: TestEngine) => {
  let h: GatesHarness;

  beforeEach(async () => {
    if (engine.available) h = await gatesHarness(engine);
  });

  afterEach(async () => {
    await h?.close();
  });

  const open = (payload: unknown = { pr: 142 }) =>
    h.gates.request("deploy.production", "deploy-agent", { payload });

  it.skipIf(!engine.available)(
    "waitFor wakes on the NOTIFY of a grant made after its first read (polling is an hour away)",
    async () => {
      const request = await open();
      let granted: Promise<unknown> | null = null;
      const spy = spyStore(h.store, () => {
        // After the waiter's first read: the grant happens while it sleeps.
        granted ??= new Promise<void>((resolve) => setImmediate(resolve)).then(() =>
          h.gates.grant(request.token, { reviewerId: "bob" }),
        );
      });
      const waiter = h.another({ store: spy.store, gates: { pollIntervalMs: 60_000 } });
      expect(await waiter.waitFor(request.requestId, { timeoutMs: 30_000 })).toBe(true);
      await granted;
      // The waiter only read.
      expect(spy.statements.length).toBeGreaterThanOrEqual(2);
      expect(spy.statements.every(isRead)).toBe(true);
    },
  );

  // Regression: a decision that lands between the waiter's read and its sleep must wake it.
  it.skipIf(!engine.available)(
    "a notification that arrives while the first read is in flight is not missed",
    async () => {
      const request = await open();
      let reads = 0;
      const spy = spyStore(h.store, async () => {
        reads++;
        // The first read saw `pending`; before it returns, the grant commits and notifies.
        if (reads === 1) {
          await h.gates.grant(request.token, { reviewerId: "bob" });
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      });
      const waiter = h.another({ store: spy.store, gates: { pollIntervalMs: 60_000 } });
      expect(await waiter.waitFor(request.requestId, { timeoutMs: 30_000 })).toBe(true);
      expect(reads).toBe(2);
    },
  );

  it.skipIf(!engine.available)(
    "a denial throws ApprovalDenied with the reviewer and the reason",
    async () => {
      const request = await open();
      const outcome = thrown(() =>
        h.another({ gates: { pollIntervalMs: 60_000 } }).waitFor(request.requestId, {
          timeoutMs: 30_000,
        }),
      );
      await h.gates.deny(request.token, { reviewerId: "bob", reason: "change freeze" });
      const error = await outcome;
      expect(ApprovalDenied.isInstance(error)).toBe(true);
      expect(error).toMatchObject({
        code: "APPROVAL_DENIED",
        requestId: request.requestId,
        reviewerId: "bob",
        reason: "change freeze",
      });
    },
  );

  it.skipIf(!engine.available)(
    "a timeout throws ApprovalTimeout and leaves the request untouched; timeout 0 reads once",
    async () => {
      const request = await open();
      const spy = spyStore(h.store);
      const waiter = h.another({ store: spy.store, gates: { pollIntervalMs: 50 } });
      for (const timeout of [0, 120]) {
        const error = await thrown(() => waiter.waitFor(request.requestId, { timeout }));
        expect(ApprovalTimeout.isInstance(error)).toBe(true);
        expect(error).toMatchObject({
          code: "APPROVAL_TIMEOUT",
          requestId: request.requestId,
          timeoutMs: timeout,
          expired: false,
        });
      }
      expect(spy.statements.every(isRead)).toBe(true);
      expect((await h.gates.getRequest(request.requestId))?.status).toBe("pending");
      expect(h.audit.events.map((event) => event.kind)).toEqual(["approval.requested"]);
      // Still grantable.
      await h.gates.grant(request.token, { reviewerId: "bob" });
    },
  );

  it.skipIf(!engine.available)(
    "an expired request throws ApprovalTimeout (expired) at once, whatever the timeout",
    async () => {
      const request = await h.gates.request("deploy.production", "deploy-agent", {
        expiresInMs: 1_000,
      });
      h.clock.advance(1_000);
      const error = await thrown(() =>
        h.gates.waitFor(request.requestId, { timeoutMs: 3_600_000 }),
      );
      expect(ApprovalTimeout.isInstance(error)).toBe(true);
      expect((error as ApprovalTimeout).expired).toBe(true);
      await h.gates.expirePending();
      const again = await thrown(() => h.gates.waitFor(request.requestId));
      expect((again as ApprovalTimeout).expired).toBe(true);
    },
  );

  it.skipIf(!engine.available)("clean-up wakes a waiter whose request it expires", async () => {
    const request = await h.gates.request("deploy.production", "deploy-agent", {
      expiresInMs: 60_000,
    });
    const outcome = thrown(() =>
      h.another({ gates: { pollIntervalMs: 60_000 } }).waitFor(request.requestId, {
        timeoutMs: 30_000,
      }),
    );
    await new Promise((resolve) => setTimeout(resolve, 20));
    h.clock.advance(60_000);
    expect(await h.gates.expirePending()).toEqual([request.requestId]);
    const error = await outcome;
    expect((error as ApprovalTimeout).expired).toBe(true);
  });

  it.skipIf(!engine.available)("an unknown request is refused at once", async () => {
    const error = await thrown(() =>
      h.gates.waitFor("0b6f5a8e-3c1d-4f2a-9e7b-5d4c3b2a1f00", { timeoutMs: 30_000 }),
    );
    expect(ApprovalTokenError.isInstance(error)).toBe(true);
    expect((error as ApprovalTokenError).reason).toBe("unknown_request");
  });

  it.skipIf(!engine.available)("with listen: false, polling alone finds the decision", async () => {
    const request = await open();
    const waiter = h.another({ gates: { listen: false, pollIntervalMs: 50 } });
    const waiting = waiter.waitFor(request.requestId, { timeoutMs: 30_000 });
    await h.gates.grant(request.token, { reviewerId: "bob" });
    expect(await waiting).toBe(true);
  });

  it.skipIf(!engine.available)(
    "a database outage does not let a waiter through: it keeps trying and times out naming the failure",
    async () => {
      const request = await open();
      const flaky = flakyStore(h.store);
      const waiter = h.another({ store: flaky.store, gates: { pollIntervalMs: 50 } });
      flaky.setDown(true);
      const error = await thrown(() => waiter.waitFor(request.requestId, { timeoutMs: 200 }));
      expect(ApprovalTimeout.isInstance(error)).toBe(true);
      expect((error as Error).message).toContain("could not be read");
      flaky.setDown(false);
      const waiting = waiter.waitFor(request.requestId, { timeoutMs: 30_000 });
      await h.gates.grant(request.token, { reviewerId: "bob" });
      expect(await waiting).toBe(true);
    },
  );

  it.skipIf(!engine.available)("an aborted wait rejects with the signal's reason", async () => {
    const request = await open();
    const controller = new AbortController();
    const outcome = thrown(() =>
      h.gates.waitFor(request.requestId, { timeoutMs: 30_000, signal: controller.signal }),
    );
    await new Promise((resolve) => setTimeout(resolve, 20));
    controller.abort(new Error("the user cancelled"));
    expect(((await outcome) as Error).message).toBe("the user cancelled");
    // An aborted signal is refused before anything is read.
    const early = await thrown(() =>
      h.gates.waitFor(request.requestId, { signal: controller.signal }),
    );
    expect((early as Error).message).toBe("the user cancelled");
  });

  it.skipIf(!engine.available)("close() makes waiters in progress fail closed", async () => {
    const request = await open();
    const waiter = h.another({ gates: { pollIntervalMs: 60_000 } });
    const outcome = thrown(() => waiter.waitFor(request.requestId, { timeoutMs: 30_000 }));
    await new Promise((resolve) => setTimeout(resolve, 20));
    await waiter.close();
    expect(ApprovalStoreError.isInstance(await outcome)).toBe(true);
  });

  it.skipIf(!engine.available)(
    "a claim whose audit event is not yet durable is invisible to waiters",
    async () => {
      let release: () => void = () => undefined;
      const held = new Promise<void>((resolve) => {
        release = resolve;
      });
      let writing: () => void = () => undefined;
      const auditWriteStarted = new Promise<void>((resolve) => {
        writing = resolve;
      });
      const audit: AuditSink = {
        async log(event) {
          if (event.kind === "approval.granted") {
            writing();
            await held;
          }
          return { eventId: "e", isPlaceholder: false };
        },
      };
      const reviewer = h.another({ audit });
      const request = await open();
      const granting = reviewer.grant(request.token, { reviewerId: "bob" });
      // The claim is written before the audit event; wait for that write, not for a fixed time.
      await auditWriteStarted;
      expect((await h.gates.getRequest(request.requestId))?.status).toBe("resolving");
      expect(
        ApprovalTimeout.isInstance(
          await thrown(() => h.gates.waitFor(request.requestId, { timeoutMs: 0 })),
        ),
      ).toBe(true);
      // A concurrent deny is told the request is being decided (retryable), not that it is.
      const loser = await thrown(() =>
        h.gates.deny(request.token, { reviewerId: "carol", reason: "no" }),
      );
      expect((loser as ApprovalTokenError).reason).toBe("in_progress");
      release();
      await granting;
      const late = await thrown(() =>
        h.gates.deny(request.token, { reviewerId: "carol", reason: "no" }),
      );
      expect((late as ApprovalTokenError).reason).toBe("already_used");
      expect(await h.gates.waitFor(request.requestId, { timeoutMs: 0 })).toBe(true);
    },
  );

  it.skipIf(!engine.available)(
    "a decision forged or altered in the database is refused (ApprovalIntegrityError)",
    async () => {
      const forged = await open();
      // By a table owner, who drops the guard trigger first (it refuses these edits).
      await h.store.query(sql`drop trigger requests_guard on gov_gates.requests`);
      // Flipped to granted by hand, with a made-up MAC.
      await h.store.query(sql`
        update gov_gates.requests set status = 'granted', reviewer_id = 'mallory',
          resolved_at = now(), decision_key_id = ${h.keyring.current.id}, decision_mac = ${"0".repeat(64)}
        where request_id = ${forged.requestId}::uuid`);
      for (const run of [
        () => h.gates.waitFor(forged.requestId, { timeoutMs: 0 }),
        () => h.gates.verifyAction(forged.requestId, { pr: 142 }),
      ]) {
        const error = await thrown(run);
        expect(ApprovalIntegrityError.isInstance(error)).toBe(true);
        expect((error as ApprovalIntegrityError).code).toBe("APPROVAL_INTEGRITY");
      }
      // A genuine grant whose reviewer was rewritten afterwards.
      const altered = await open();
      await h.gates.grant(altered.token, { reviewerId: "bob" });
      await h.store.query(
        sql`update gov_gates.requests set reviewer_id = 'mallory' where request_id = ${altered.requestId}::uuid`,
      );
      expect(
        ApprovalIntegrityError.isInstance(await thrown(() => h.gates.waitFor(altered.requestId))),
      ).toBe(true);
      // A denial turned into a grant.
      const flipped = await open();
      await h.gates.deny(flipped.token, { reviewerId: "bob", reason: "no" });
      await h.store.query(
        sql`update gov_gates.requests set status = 'granted' where request_id = ${flipped.requestId}::uuid`,
      );
      expect(
        ApprovalIntegrityError.isInstance(await thrown(() => h.gates.waitFor(flipped.requestId))),
      ).toBe(true);
      // Signed by a key this process does not hold.
      const genuine = await open();
      await h.gates.grant(genuine.token, { reviewerId: "bob" });
      const stranger = h.another({ keyring: keyringOf(SECRET_B) });
      const error = await thrown(() => stranger.waitFor(genuine.requestId));
      expect(ApprovalIntegrityError.isInstance(error)).toBe(true);
      expect((error as Error).message).toContain("not in the keyring");
    },
  );

  it.skipIf(!engine.available)(
    "verifyAction re-checks the approved action at execution time",
    async () => {
      const request = await open({ customer: "cus_42", amountUsd: 120 });
      expect(
        ApprovalPending.isInstance(await thrown(() => h.gates.verifyAction(request.requestId, {}))),
      ).toBe(true);
      await h.gates.grant(request.token, { reviewerId: "bob" });
      expect(
        await h.gates.verifyAction(request.requestId, { amountUsd: 120, customer: "cus_42" }),
      ).toMatchObject({
        requestId: request.requestId,
        decision: "granted",
        reviewerId: "bob",
        actionHash: request.actionHash,
      });
      const error = await thrown(() =>
        h.gates.verifyAction(request.requestId, { customer: "cus_42", amountUsd: 12_000 }),
      );
      expect((error as ApprovalTokenError).reason).toBe("action_hash_mismatch");
      expect(h.audit.events.at(-1)).toMatchObject({
        kind: "approval.refused",
        metadata: {
          requestId: request.requestId,
          attempt: "execute",
          reason: "action_hash_mismatch",
        },
      });
      const denied = await open();
      await h.gates.deny(denied.token, { reviewerId: "bob", reason: "no" });
      expect(
        ApprovalDenied.isInstance(
          await thrown(() => h.gates.verifyAction(denied.requestId, { pr: 142 })),
        ),
      ).toBe(true);
      const unknown = await thrown(() =>
        h.gates.verifyAction("0b6f5a8e-3c1d-4f2a-9e7b-5d4c3b2a1f00", {}),
      );
      expect((unknown as ApprovalTokenError).reason).toBe("unknown_request");
      const late = await h.gates.request("x", "deploy-agent", { expiresInMs: 1_000 });
      h.clock.advance(1_000);
      expect(
        ((await thrown(() => h.gates.verifyAction(late.requestId, {}))) as ApprovalTimeout).expired,
      ).toBe(true);
    },
  );
});

describe.each(testEngines())("requireApproval on $name", (engine: TestEngine) => {
  let h: GatesHarness;

  beforeEach(async () => {
    if (engine.available) h = await gatesHarness(engine);
  });

  afterEach(async () => {
    await h?.close();
  });

  function refundSpy() {
    const calls: [string, number][] = [];
    return {
      calls,
      fn: async (customerId: string, amountUsd: number) => {
        calls.push([customerId, amountUsd]);
        return `refunded ${amountUsd} to ${customerId}`;
      },
    };
  }

  it.skipIf(!engine.available)(
    "blocking: waits for a grant from another module, then runs once with the approved arguments",
    async () => {
      const reviewer = h.another();
      const refund = refundSpy();
      const delivered: ApprovalRequest[] = [];
      const guarded = h.gates.requireApproval(
        {
          kind: "refund.issue",
          agentId: "billing-agent",
          timeoutMs: 30_000,
          onRequest: (request) => {
            delivered.push(request);
            // The reviewer decides a little later, elsewhere.
            setTimeout(() => void reviewer.grant(request.token, { reviewerId: "bob" }), 20);
          },
        },
        refund.fn,
      );
      expect(await guarded("cus_42", 120)).toBe("refunded 120 to cus_42");
      expect(refund.calls).toEqual([["cus_42", 120]]);
      const [request] = delivered;
      expect(await h.gates.getRequest(request?.requestId as string)).toMatchObject({
        status: "granted",
        payload: { args: ["cus_42", 120] },
        executedAt: new Date("2026-01-01T00:00:00.000Z"),
      });
      // The approval is spent: resuming it runs nothing.
      const again = await thrown(() => guarded.resume(request?.requestId as string, "cus_42", 120));
      expect((again as ApprovalTokenError).reason).toBe("already_executed");
      expect(refund.calls).toHaveLength(1);
    },
  );

  it.skipIf(!engine.available)(
    "blocking: a denial or a timeout never runs the function",
    async () => {
      const refund = refundSpy();
      const denying = h.gates.requireApproval(
        {
          kind: "refund.issue",
          agentId: "billing-agent",
          timeoutMs: 30_000,
          onRequest: (request) => {
            setTimeout(
              () => void h.gates.deny(request.token, { reviewerId: "bob", reason: "fraud" }),
              20,
            );
          },
        },
        refund.fn,
      );
      const denied = await thrown(() => denying("cus_42", 120));
      expect(ApprovalDenied.isInstance(denied)).toBe(true);
      expect((denied as ApprovalDenied).reason).toBe("fraud");
      const silent = h.gates.requireApproval(
        { kind: "refund.issue", agentId: "billing-agent", timeoutMs: 50 },
        refund.fn,
      );
      expect(ApprovalTimeout.isInstance(await thrown(() => silent("cus_42", 120)))).toBe(true);
      expect(refund.calls).toEqual([]);
    },
  );

  it.skipIf(!engine.available)(
    "non-blocking: throws ApprovalPending(requestId); resume runs it once granted, once, with the same arguments",
    async () => {
      const refund = refundSpy();
      const tokens = new Map<string, string>();
      const guarded = h.gates.requireApproval(
        {
          kind: "refund.issue",
          agentId: "billing-agent",
          blocking: false,
          payload: (customerId, amountUsd) => ({ customerId, amountUsd }),
          onRequest: (request) => {
            tokens.set(request.requestId, request.token);
          },
        },
        refund.fn,
      );
      const pending = await thrown(() => guarded("cus_42", 120));
      expect(ApprovalPending.isInstance(pending)).toBe(true);
      const requestId = (pending as ApprovalPending).requestId;
      expect((pending as ApprovalPending).code).toBe("APPROVAL_PENDING");
      expect(tokens.has(requestId)).toBe(true);
      expect(await h.gates.getRequest(requestId)).toMatchObject({
        status: "pending",
        payload: { customerId: "cus_42", amountUsd: 120 },
      });
      expect(
        ApprovalPending.isInstance(await thrown(() => guarded.resume(requestId, "cus_42", 120))),
      ).toBe(true);
      await h.gates.grant(tokens.get(requestId) as string, { reviewerId: "bob" });
      const swapped = await thrown(() => guarded.resume(requestId, "cus_42", 12_000));
      expect((swapped as ApprovalTokenError).reason).toBe("action_hash_mismatch");
      expect(await guarded.resume(requestId, "cus_42", 120)).toBe("refunded 120 to cus_42");
      const replay = await thrown(() => guarded.resume(requestId, "cus_42", 120));
      expect((replay as ApprovalTokenError).reason).toBe("already_executed");
      expect(refund.calls).toEqual([["cus_42", 120]]);
    },
  );

  it.skipIf(!engine.available)(
    "a halted agent, or a request that could not be stored, never runs the function",
    async () => {
      const refund = refundSpy();
      const halt: HaltGuard = {
        async assertAlive(agentId, context) {
          throw new AgentHaltedError({
            agentId,
            haltedBy: "alice",
            reason: "loop",
            path: context.path,
          });
        },
      };
      const halted = h
        .another({ halt })
        .requireApproval({ kind: "refund.issue", agentId: "billing-agent" }, refund.fn);
      expect(AgentHaltedError.isInstance(await thrown(() => halted("cus_42", 1)))).toBe(true);
      const flaky = flakyStore(h.store);
      flaky.setDown(true);
      let delivered = 0;
      const unstored = h
        .another({ store: flaky.store })
        .requireApproval(
          { kind: "refund.issue", agentId: "billing-agent", onRequest: () => delivered++ },
          refund.fn,
        );
      const error = await thrown(() => unstored("cus_42", 1));
      expect(ApprovalStoreError.isInstance(error)).toBe(true);
      expect((error as ApprovalStoreError).operation).toBe("request");
      expect(delivered).toBe(0);
      expect(refund.calls).toEqual([]);
    },
  );
});
