/**
 * Edits in the table (issue 12, break 4). Every field that a decision or a check relies on is
 * covered by a MAC — the token's, the request's (written when the request is made) or the
 * decision's — so that a row changed by hand revives, re-targets or forges nothing, even
 * when the one who changed it dropped the guard trigger first; and the trigger (defence in
 * depth) refuses the same edits from a role that can write to the table but not drop it.
 */
import { createHash, randomUUID } from "node:crypto";
import { ChainKey, canonicalJson, type SQL, type Store, sql } from "@gov/core";
import { type TestEngine, testEngines } from "@gov/core/testing";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  type GatesHarness,
  gatesHarness,
  SECRET_A,
  SECRET_B,
  tableOwnerRole,
  thrown,
  thrownAs,
} from "./__fixtures__";
import {
  ApprovalDenied,
  ApprovalIntegrityError,
  ApprovalPending,
  ApprovalTimeout,
  ApprovalTokenError,
  SelfApprovalError,
} from "./errors";
import type { ApprovalRequest } from "./request";
import { mintToken, tokenDigest } from "./token";
import type { ApprovalDecision } from "./types";

const PAYLOAD = { pr: 142, environment: "production" };
const HOUR_MS = 3_600_000;
const sha256 = (text: string) => createHash("sha256").update(text, "utf8").digest("hex");

const integrityError = (run: () => unknown) => thrownAs(run, ApprovalIntegrityError);
const tokenRefusal = (run: () => unknown) => thrownAs(run, ApprovalTokenError);

/** The decision MAC of versions before issue 12 (it did not cover the expiry, nor the request's operator, token or creation time). */
function legacyDecisionMac(
  key: ChainKey,
  fields: Omit<ApprovalDecision, "resolvedAt"> & { resolvedAt: string },
): string {
  return key.hmacHex(canonicalJson({ type: "gov.gates.decision", v: 1, ...fields }));
}

/** Edits of what a request is: fixed when it is made. */
const REQUEST_EDITS: [field: string, set: SQL][] = [
  ["expires_at", sql`expires_at = expires_at + interval '30 days'`],
  ["kind", sql`kind = 'deploy.staging'`],
  ["agent_id", sql`agent_id = 'other-agent'`],
  [
    "action_hash and payload",
    sql`action_hash = ${sha256('{"pr":1}')}, payload = ${'{"pr":1}'}::jsonb`,
  ],
  ["token_digest", sql`token_digest = ${"0".repeat(64)}`],
  ["token_version", sql`token_version = 1`],
  ["created_at", sql`created_at = created_at - interval '1 day'`],
  ["operator_id", sql`operator_id = 'mallory@company.com'`],
  ["operator_lookup", sql`operator_lookup = 'failed'`],
  ["request_key", sql`request_key = 'call_other'`],
  [
    "key_id",
    sql`key_id = ${new ChainKey(SECRET_B).id}, decision_key_id = case when decision_key_id is null then null else ${new ChainKey(SECRET_B).id} end`,
  ],
];

/** Edits of a decision once made. */
const DECISION_EDITS: [field: string, set: SQL][] = [
  ["reviewer_id (decided_by)", sql`reviewer_id = 'alice@company.com'`],
  ["reason", sql`reason = 'approved by the board'`],
  ["resolved_at", sql`resolved_at = resolved_at + interval '1 minute'`],
];

describe.each(testEngines())("a row changed in the table on $name", (engine: TestEngine) => {
  let h: GatesHarness;

  beforeEach(async () => {
    if (engine.available) h = await gatesHarness(engine);
  });

  afterEach(async () => {
    await h?.close();
  });

  const open = (options: { expiresInMs?: number; agentId?: string } = {}) =>
    h.gates.request("deploy.production", options.agentId ?? "deploy-agent", {
      payload: PAYLOAD,
      ...(options.expiresInMs === undefined ? {} : { expiresInMs: options.expiresInMs }),
    });
  const edit = (store: Store, requestId: string, set: SQL) =>
    store.query(sql`update gov_gates.requests set ${set} where request_id = ${requestId}::uuid`);
  /** What a table owner does first: drop the guard trigger. */
  const dropGuard = () => h.store.query(sql`drop trigger requests_guard on gov_gates.requests`);
  const statusOf = async (requestId: string) => (await h.gates.getRequest(requestId))?.status;
  /** Neither waitFor nor verifyAction (checking or consuming) believes the row. */
  const refusedEverywhere = async (request: ApprovalRequest, payload: unknown = PAYLOAD) => {
    await integrityError(() => h.gates.waitFor(request.requestId, { timeoutMs: 0 }));
    await integrityError(() =>
      h.gates.verifyAction(request.requestId, payload, { consume: false }),
    );
    await integrityError(() => h.gates.verifyAction(request.requestId, payload));
    expect((await h.gates.getRequest(request.requestId))?.executedAt ?? null).toBeNull();
  };

  // Guards against: editing expires_at reviving an expired approval (the break as reported).
  it.skipIf(!engine.available)(
    "moving expires_at forward on an expired granted request does not revive it",
    async () => {
      const request = await open({ expiresInMs: HOUR_MS });
      await h.gates.grant(request.token, { reviewerId: "bob@company.com" });
      h.clock.advance(2 * HOUR_MS);
      expect(
        (await tokenRefusal(() => h.gates.verifyAction(request.requestId, PAYLOAD))).reason,
      ).toBe("expired");
      await dropGuard();
      for (const interval of ["2 hours", "30 days", "100 years"]) {
        await edit(
          h.store,
          request.requestId,
          sql`expires_at = created_at + ${interval}::interval`,
        );
        await refusedEverywhere(request);
      }
    },
  );

  // Guards against: an expired request revived in the table before anyone decided it.
  it.skipIf(!engine.available)(
    "moving expires_at forward on an expired pending request: its token stays expired and waiters refuse the row",
    async () => {
      const request = await open({ expiresInMs: HOUR_MS });
      h.clock.advance(2 * HOUR_MS);
      await dropGuard();
      await edit(h.store, request.requestId, sql`expires_at = expires_at + interval '30 days'`);
      for (const run of [
        () => h.gates.grant(request.token, { reviewerId: "bob@company.com" }),
        () => h.gates.deny(request.token, { reviewerId: "bob@company.com", reason: "late" }),
      ])
        expect((await tokenRefusal(run)).reason).toBe("expired");
      await integrityError(() => h.gates.waitFor(request.requestId, { timeoutMs: 0 }));
      expect(await statusOf(request.requestId)).toBe("pending");
      expect(await h.gates.getRequest(request.requestId)).toMatchObject({ requestIntact: false });
    },
  );

  // Guards against: any field of a granted request edited so that it approves another action,
  // agent, time or reviewer than the one that was signed.
  it.skipIf(!engine.available)(
    "a granted request with any signed field changed is refused by waitFor and verifyAction",
    async () => {
      await dropGuard();
      for (const [field, set] of [...REQUEST_EDITS, ...DECISION_EDITS]) {
        const request = await open();
        await h.gates.grant(request.token, { reviewerId: "bob@company.com" });
        await edit(h.store, request.requestId, set);
        const payload = field.startsWith("action_hash") ? { pr: 1 } : PAYLOAD;
        await refusedEverywhere(request, payload).catch((error: unknown) => {
          throw new Error(`${field}: ${String(error)}`);
        });
      }
    },
  );

  // Guards against: a request re-targeted before it is decided — the reviewer approves what
  // the agent asked for (the message they got), and the row says something else.
  it.skipIf(!engine.available)(
    "a pending request with its kind, agent, expiry, creation time or token version changed cannot be granted",
    async () => {
      await dropGuard();
      const edits: [string, SQL][] = [
        ["kind", sql`kind = 'deploy.staging'`],
        ["agent_id", sql`agent_id = 'other-agent'`],
        ["expires_at", sql`expires_at = expires_at + interval '1 day'`],
        ["created_at", sql`created_at = created_at - interval '1 day'`],
        ["token_version", sql`token_version = 1`],
      ];
      for (const [field, set] of edits) {
        const request = await open();
        await edit(h.store, request.requestId, set);
        const error = await integrityError(() =>
          h.gates.grant(request.token, { reviewerId: "bob@company.com" }),
        ).catch((caught: unknown) => {
          throw new Error(`${field}: ${String(caught)}`);
        });
        expect(error.subject).toBe("request");
        expect(await statusOf(request.requestId)).toBe("pending");
        expect(h.audit.events.at(-1)).toMatchObject({
          kind: "approval.refused",
          metadata: { requestId: request.requestId, attempt: "grant", reason: "request_integrity" },
        });
        await integrityError(() => h.gates.waitFor(request.requestId, { timeoutMs: 0 }));
        const [listed] = (await h.gates.listPending()).filter(
          (entry) => entry.requestId === request.requestId,
        );
        expect(listed?.requestIntact).toBe(false);
        // A denial can only stop an action: it is still possible.
        await h.gates.deny(request.token, { reviewerId: "bob@company.com", reason: "edited" });
        expect(await statusOf(request.requestId)).toBe("denied");
      }
    },
  );

  // Guards against: the operator at request time approving after their binding was erased
  // from the row, or after a failed lookup was rewritten as a successful one.
  it.skipIf(!engine.available)(
    "the operator bound at request time cannot grant after the row's operator was changed",
    async () => {
      await dropGuard();
      const request = await open();
      // The agent is re-bound to another operator; the row forgets alice.
      const operators = { "deploy-agent": "carol@company.com" };
      const gates = h.another({
        operators: { operatorOf: async (id) => operators[id as "deploy-agent"] ?? null },
      });
      for (const set of [sql`operator_id = null`, sql`operator_id = 'carol@company.com'`]) {
        await edit(h.store, request.requestId, set);
        const error = await integrityError(() =>
          gates.grant(request.token, { reviewerId: "alice@company.com" }),
        );
        expect(error.subject).toBe("request");
      }
      expect(await statusOf(request.requestId)).toBe("pending");
      // The lookup failed at request time: the request cannot be granted, even when the row
      // is rewritten to say that it succeeded.
      h.operators.fail = true;
      const unverifiable = await open();
      h.operators.fail = false;
      await edit(h.store, unverifiable.requestId, sql`operator_lookup = 'ok'`);
      await integrityError(() =>
        h.gates.grant(unverifiable.token, { reviewerId: "bob@company.com" }),
      );
      expect(await statusOf(unverifiable.requestId)).toBe("pending");
    },
  );

  // Guards against: one request's signed decision pasted onto another request.
  it.skipIf(!engine.available)(
    "decision MACs swapped between two requests are refused",
    async () => {
      const a = await open();
      const b = await open();
      await h.gates.grant(a.token, { reviewerId: "bob@company.com" });
      await h.gates.grant(b.token, { reviewerId: "bob@company.com" });
      const c = await open();
      await dropGuard();
      const [rowA] = await h.store.query<{ decision_mac: string }>(
        sql`select decision_mac from gov_gates.requests where request_id = ${a.requestId}::uuid`,
      );
      const [rowB] = await h.store.query<{ decision_mac: string }>(
        sql`select decision_mac from gov_gates.requests where request_id = ${b.requestId}::uuid`,
      );
      await edit(h.store, a.requestId, sql`decision_mac = ${rowB?.decision_mac}`);
      await edit(h.store, b.requestId, sql`decision_mac = ${rowA?.decision_mac}`);
      // …and onto a request that was never decided, with the rest of the decision copied.
      await h.store.query(sql`
      update gov_gates.requests c set status = 'granted', reviewer_id = a.reviewer_id,
        resolved_at = a.resolved_at, decision_key_id = a.decision_key_id, decision_mac = ${rowA?.decision_mac}
      from gov_gates.requests a
      where c.request_id = ${c.requestId}::uuid and a.request_id = ${b.requestId}::uuid`);
      for (const request of [a, b, c]) await refusedEverywhere(request);
    },
  );

  // Guards against: a status moved back, or a denial flipped, by hand.
  it.skipIf(!engine.available)(
    "a denial flipped to a grant, or a decision put back to pending, grants nothing",
    async () => {
      const denied = await open();
      await h.gates.deny(denied.token, { reviewerId: "bob@company.com", reason: "no" });
      const granted = await open();
      await h.gates.grant(granted.token, { reviewerId: "bob@company.com" });
      await dropGuard();
      await edit(h.store, denied.requestId, sql`status = 'granted'`);
      await refusedEverywhere(denied);
      for (const request of [denied, granted]) {
        await edit(
          h.store,
          request.requestId,
          sql`status = 'pending', reviewer_id = null, reason = null, resolved_at = null, decision_key_id = null, decision_mac = null`,
        );
        const waited = await thrown(() => h.gates.waitFor(request.requestId, { timeoutMs: 0 }));
        expect(ApprovalTimeout.isInstance(waited)).toBe(true);
        expect(
          ApprovalPending.isInstance(
            await thrown(() => h.gates.verifyAction(request.requestId, PAYLOAD)),
          ),
        ).toBe(true);
      }
    },
  );

  // Guards against: the trigger letting a writer (who cannot drop it) change what was signed.
  it.skipIf(!engine.available)(
    "the trigger refuses changing what a request is, a decision once made, and moving a status back",
    async () => {
      const pending = await open();
      const granted = await open();
      await h.gates.grant(granted.token, { reviewerId: "bob@company.com" });
      const denied = await open();
      await h.gates.deny(denied.token, { reviewerId: "bob@company.com", reason: "no" });
      const expired = await open({ expiresInMs: 1_000 });
      h.clock.advance(1_000);
      expect(await h.gates.expirePending()).toEqual([expired.requestId]);
      const refused: [ApprovalRequest, SQL][] = [
        ...[pending, granted].flatMap((request) =>
          REQUEST_EDITS.map(([, set]) => [request, set] as [ApprovalRequest, SQL]),
        ),
        [pending, sql`payload = '{"pr":1}'::jsonb`],
        [pending, sql`request_id = ${randomUUID()}::uuid`],
        [pending, sql`reviewer_id = 'bob@company.com'`],
        [pending, sql`status = 'granted'`],
        [
          granted,
          sql`status = 'pending', reviewer_id = null, reason = null, resolved_at = null, decision_key_id = null, decision_mac = null`,
        ],
        [granted, sql`status = 'denied'`],
        [granted, sql`reviewer_id = 'alice@company.com'`],
        [granted, sql`reason = 'approved by the board'`],
        [granted, sql`resolved_at = resolved_at + interval '1 minute'`],
        [granted, sql`decision_mac = ${"0".repeat(64)}`],
        [denied, sql`status = 'granted'`],
        [
          denied,
          sql`status = 'pending', reviewer_id = null, reason = null, resolved_at = null, decision_key_id = null, decision_mac = null`,
        ],
        [denied, sql`reason = 'fine'`],
        [expired, sql`status = 'pending', resolved_at = null`],
        [expired, sql`expires_at = expires_at + interval '1 day'`],
      ];
      for (const [request, set] of refused) {
        const error = await thrown(() => edit(h.store, request.requestId, set));
        expect(String((error as Error).message)).toMatch(/gov_gates\.requests/);
      }
      // Nothing changed: every decision still verifies, and the pending one can be decided.
      expect(await h.gates.waitFor(granted.requestId, { timeoutMs: 0 })).toBe(true);
      expect(
        ApprovalDenied.isInstance(
          await thrown(() => h.gates.waitFor(denied.requestId, { timeoutMs: 0 })),
        ),
      ).toBe(true);
      expect(await statusOf(expired.requestId)).toBe("expired");
      await h.gates.grant(pending.token, { reviewerId: "bob@company.com" });
      expect(await h.gates.verifyAction(pending.requestId, PAYLOAD)).toMatchObject({
        decision: "granted",
      });
    },
  );

  // Guards against: a granted request deleted and put back pending to be decided and run again.
  it.skipIf(!engine.available)(
    "a request cannot be deleted before its expiry (by the database's clock)",
    async () => {
      h.clock.set(Date.now());
      const request = await open({ expiresInMs: HOUR_MS });
      await h.gates.grant(request.token, { reviewerId: "bob@company.com" });
      const error = await thrown(() =>
        h.store.query(
          sql`delete from gov_gates.requests where request_id = ${request.requestId}::uuid`,
        ),
      );
      expect(String((error as Error).message)).toContain("expire");
      expect(await statusOf(request.requestId)).toBe("granted");
      // Once it has expired, clean-up may delete it.
      h.clock.set(Date.now() - 2 * HOUR_MS);
      const past = await h.gates.request("deploy.production", "deploy-agent", {
        expiresInMs: 1_000,
      });
      await h.store.query(
        sql`delete from gov_gates.requests where request_id = ${past.requestId}::uuid`,
      );
      expect(await h.gates.getRequest(past.requestId)).toBeNull();
    },
  );

  // Guards against: a cleared executed marker running an approval again unnoticed. The
  // trigger refuses it; a table owner who drops the trigger can run it again, but only
  // before the request's signed expiry, and each execution is in the audit chain.
  it.skipIf(!engine.available)(
    "an executed approval whose marker is cleared by a table owner runs only before its signed expiry, and each run is recorded",
    async () => {
      const request = await open({ expiresInMs: HOUR_MS });
      await h.gates.grant(request.token, { reviewerId: "bob@company.com" });
      await h.gates.verifyAction(request.requestId, PAYLOAD);
      await dropGuard();
      await edit(h.store, request.requestId, sql`executed_at = null`);
      await h.gates.verifyAction(request.requestId, PAYLOAD);
      const executions = h.audit.events.filter(
        (event) =>
          event.kind === "approval.executed" && event.metadata?.requestId === request.requestId,
      );
      expect(executions).toHaveLength(2);
      h.clock.advance(HOUR_MS);
      await edit(
        h.store,
        request.requestId,
        sql`executed_at = null, expires_at = expires_at + interval '1 day'`,
      );
      await refusedEverywhere(request);
    },
  );

  // Guards against: a grant signed before the decision MAC covered the expiry being revived.
  it.skipIf(!engine.available)(
    "a grant signed in the earlier decision format is refused; a denial in that format stands",
    async () => {
      const key = new ChainKey(SECRET_A);
      const [granted, denied] = [await open(), await open()];
      await dropGuard();
      for (const [request, decision] of [
        [granted, "granted"],
        [denied, "denied"],
      ] as const) {
        const resolvedAt = "2026-01-01T00:00:00.000Z";
        const mac = legacyDecisionMac(key, {
          requestId: request.requestId,
          kind: "deploy.production",
          agentId: "deploy-agent",
          actionHash: request.actionHash,
          decision,
          reviewerId: "bob@company.com",
          reason: decision === "denied" ? "no" : null,
          resolvedAt,
        });
        await edit(
          h.store,
          request.requestId,
          sql`status = ${decision}, reviewer_id = 'bob@company.com', reason = ${decision === "denied" ? "no" : null},
            resolved_at = ${resolvedAt}::timestamptz, decision_key_id = key_id, decision_mac = ${mac}`,
        );
      }
      const error = await integrityError(() =>
        h.gates.waitFor(granted.requestId, { timeoutMs: 0 }),
      );
      expect(error.message).toContain("earlier version");
      await refusedEverywhere(granted);
      const denial = await thrown(() => h.gates.waitFor(denied.requestId, { timeoutMs: 0 }));
      expect(ApprovalDenied.isInstance(denial)).toBe(true);
      expect(denial).toMatchObject({ reviewerId: "bob@company.com", reason: "no" });
    },
  );

  // Guards against: a request row without a request MAC (made by an earlier version, or with
  // its MAC erased) being granted on fields nobody signed.
  it.skipIf(!engine.available)(
    "a request stored without a request MAC can be denied, not granted",
    async () => {
      const key = new ChainKey(SECRET_A);
      const insertUnsigned = async () => {
        const requestId = randomUUID();
        const actionHash = sha256(canonicalJson(PAYLOAD));
        const expiresAtMs = h.clock.nowMs() + HOUR_MS;
        const token = mintToken(key, 2, { requestId, actionHash, expiresAtMs });
        await h.store.query(sql`
          insert into gov_gates.requests (request_id, kind, agent_id, action_hash, payload, token_version,
            key_id, token_digest, status, created_at, expires_at, operator_id, operator_lookup)
          values (${requestId}::uuid, 'deploy.production', 'deploy-agent', ${actionHash}, ${canonicalJson(PAYLOAD)}::jsonb, 2,
            ${key.id}, ${tokenDigest(token)}, 'pending', ${h.clock.now().toISOString()}::timestamptz,
            ${new Date(expiresAtMs).toISOString()}::timestamptz, 'alice@company.com', 'ok')`);
        return { requestId, token };
      };
      const unsigned = await insertUnsigned();
      const error = await integrityError(() =>
        h.gates.grant(unsigned.token, { reviewerId: "bob@company.com" }),
      );
      expect(error.message).toContain("not signed");
      await integrityError(() => h.gates.waitFor(unsigned.requestId, { timeoutMs: 0 }));
      expect(await h.gates.getRequest(unsigned.requestId)).toMatchObject({
        status: "pending",
        requestIntact: false,
        payloadIntact: true,
      });
      await h.gates.deny(unsigned.token, { reviewerId: "bob@company.com", reason: "unsigned" });
      expect(
        ApprovalDenied.isInstance(
          await thrown(() => h.gates.waitFor(unsigned.requestId, { timeoutMs: 0 })),
        ),
      ).toBe(true);
      // Erasing the MAC of a signed request makes it unsigned, not grantable.
      const signed = await open();
      await dropGuard();
      await edit(h.store, signed.requestId, sql`request_mac = null`);
      await integrityError(() => h.gates.grant(signed.token, { reviewerId: "bob@company.com" }));
      expect(await statusOf(signed.requestId)).toBe("pending");
    },
  );

  it.skipIf(!engine.available)(
    "an honest request verifies everywhere, and its self-approval rule still holds",
    async () => {
      const request = await open();
      expect(await h.gates.getRequest(request.requestId)).toMatchObject({ requestIntact: true });
      expect((await h.gates.listPending())[0]).toMatchObject({ requestIntact: true });
      expect(
        SelfApprovalError.isInstance(
          await thrown(() => h.gates.grant(request.token, { reviewerId: "alice@company.com" })),
        ),
      ).toBe(true);
      await h.gates.grant(request.token, { reviewerId: "bob@company.com" });
      expect(await h.gates.waitFor(request.requestId, { timeoutMs: 0 })).toBe(true);
      expect(await h.gates.verifyAction(request.requestId, PAYLOAD)).toMatchObject({
        decision: "granted",
      });
    },
  );
});

const postgres = testEngines().find((engine) => engine.name === "postgres");

describe("a table owner who drops the trigger (real Postgres)", () => {
  let h: GatesHarness;
  let owner: Awaited<ReturnType<typeof tableOwnerRole>> | null = null;

  beforeEach(async () => {
    if (!postgres?.available) return;
    h = await gatesHarness(postgres);
    // Not a superuser: a role that owns the table (and so may drop its trigger).
    owner = await tableOwnerRole(h.store);
  });

  afterEach(async () => {
    await owner?.drop();
    owner = null;
    await h?.close();
  });

  it.skipIf(!postgres?.available)(
    "cannot revive an expired approval, re-target a pending one or forge a grant: the MACs refuse",
    async () => {
      const db = (owner as NonNullable<typeof owner>).store;
      const expired = await h.gates.request("deploy.production", "deploy-agent", {
        payload: PAYLOAD,
        expiresInMs: HOUR_MS,
      });
      await h.gates.grant(expired.token, { reviewerId: "bob@company.com" });
      h.clock.advance(2 * HOUR_MS);
      const pending = await h.gates.request("deploy.staging", "deploy-agent", { payload: PAYLOAD });
      const forged = await h.gates.request("deploy.production", "deploy-agent", {
        payload: PAYLOAD,
      });
      // The owner's first attempt meets the trigger; then they drop it.
      expect(
        String(
          (
            (await thrown(() =>
              db.query(
                sql`update gov_gates.requests set expires_at = expires_at + interval '30 days' where request_id = ${expired.requestId}::uuid`,
              ),
            )) as Error
          ).message,
        ),
      ).toContain("gov_gates.requests");
      await db.query(sql`drop trigger requests_guard on gov_gates.requests`);
      await db.query(
        sql`update gov_gates.requests set expires_at = expires_at + interval '30 days' where request_id = ${expired.requestId}::uuid`,
      );
      await integrityError(() => h.gates.waitFor(expired.requestId, { timeoutMs: 0 }));
      await integrityError(() => h.gates.verifyAction(expired.requestId, PAYLOAD));
      await db.query(
        sql`update gov_gates.requests set kind = 'deploy.production' where request_id = ${pending.requestId}::uuid`,
      );
      await integrityError(() => h.gates.grant(pending.token, { reviewerId: "bob@company.com" }));
      await db.query(sql`
        update gov_gates.requests set status = 'granted', reviewer_id = 'bob@company.com', resolved_at = now(),
          decision_key_id = key_id, decision_mac = ${"ab".repeat(32)}
        where request_id = ${forged.requestId}::uuid`);
      await integrityError(() => h.gates.verifyAction(forged.requestId, PAYLOAD));
      for (const request of [expired, forged])
        expect((await h.gates.getRequest(request.requestId))?.executedAt).toBeNull();
    },
  );
});
