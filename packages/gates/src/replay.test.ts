/**
 * Released claims replayed in the table (issue 12, attack on the wire area). A claim is a
 * decision being recorded: it is in the table, readable, while its audit event is written. If
 * that write fails, times out or the claim goes stale, the claim is released — the decision was
 * not made. Nothing that was in the row during the claim may later verify as a decision: copied
 * back — by a table owner who drops the trigger, or by a writer through the trigger — it must
 * grant (or deny) nothing, so that no waiter ever acts on a decision that is not in the chain.
 */
import { inspect } from "node:util";
import {
  type AuditEventInput,
  type AuditSink,
  ChainKey,
  canonicalJson,
  type Store,
  sql,
} from "@gov/core";
import { type TestEngine, testEngines } from "@gov/core/testing";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  type GatesHarness,
  gatesHarness,
  roleStore,
  SECRET_A,
  tableOwnerRole,
  thrown,
  thrownAs,
} from "./__fixtures__";
import {
  ApprovalDenied,
  ApprovalIntegrityError,
  ApprovalNotRecordedError,
  ApprovalStoreError,
} from "./errors";
import type { GatesModule } from "./module";
import type { ApprovalRequest } from "./request";
import { decisionMacInput, type SignedRequest } from "./signatures";

const PAYLOAD = { pr: 142, environment: "production" };
const KIND = "deploy.production";
const AGENT = "deploy-agent";

/** What anyone who can read the table sees of a claim while it is held. */
interface SeenClaim extends Record<string, unknown> {
  status: string;
  reviewer_id: string;
  reason: string | null;
  resolved_at: string;
  decision_key_id: string;
  decision_mac: string;
}

/** Why a claim is released: every way the module gives one back. */
type Cause = "audit_failed" | "audit_placeholder" | "audit_timeout" | "stale_claim";
const CAUSES: Cause[] = ["audit_failed", "audit_placeholder", "audit_timeout", "stale_claim"];

const integrityError = (run: () => unknown) => thrownAs(run, ApprovalIntegrityError);

/**
 * A fresh request, decided (`granted` or `denied`) by a process whose audit write for the
 * decision fails for `cause`, so that its claim is released. Returns the claim as it was read
 * from the table while it was held. Every event that does get written goes to `h.audit`.
 */
async function releasedClaim(
  h: GatesHarness,
  cause: Cause,
  decision: "granted" | "denied" = "granted",
): Promise<{ request: ApprovalRequest; seen: SeenClaim }> {
  const decisionKind = decision === "granted" ? "approval.granted" : "approval.denied";
  let seen: SeenClaim | undefined;
  let unblock: () => void = () => undefined;
  const held = new Promise<void>((resolve) => {
    unblock = resolve;
  });
  const audit: AuditSink = {
    async log(event: AuditEventInput) {
      if (event.kind === decisionKind && seen === undefined) {
        [seen] = await h.store.query<SeenClaim>(sql`
          select status, reviewer_id, reason, resolved_at::text as resolved_at, decision_key_id, decision_mac
          from gov_gates.requests where request_id = ${event.metadata?.requestId as string}::uuid`);
        if (cause === "audit_failed") throw new Error("audit database unavailable");
        if (cause === "audit_placeholder") return { eventId: "placeholder", isPlaceholder: true };
        if (cause === "audit_timeout") return new Promise(() => undefined);
        await held; // stale_claim: the process stalls past staleClaimMs, then writes the event
      }
      return h.audit.log(event);
    },
  };
  const process = h.another({
    audit,
    ...(cause === "audit_timeout" ? { gates: { auditTimeoutMs: 50 } } : {}),
  });
  const request = await process.request(KIND, AGENT, { payload: PAYLOAD });
  const deciding =
    decision === "granted"
      ? thrown(() => process.grant(request.token, { reviewerId: "bob@company.com" }))
      : thrown(() =>
          process.deny(request.token, { reviewerId: "bob@company.com", reason: "not now" }),
        );
  if (cause === "stale_claim") {
    while (seen === undefined) await new Promise((resolve) => setTimeout(resolve, 5));
    h.clock.advance(60_000);
    // Another process meets the abandoned claim and gives it back; then the stalled one wakes.
    await h.another().expirePending();
    unblock();
    const error = await deciding;
    expect(ApprovalStoreError.isInstance(error)).toBe(true);
    expect((error as ApprovalStoreError).operation).toBe("publish");
  } else {
    expect(ApprovalNotRecordedError.isInstance(await deciding)).toBe(true);
  }
  expect((await h.gates.getRequest(request.requestId))?.status).toBe("pending");
  expect(seen?.status).toBe(decision === "granted" ? "granting" : "denying");
  return { request, seen: seen as SeenClaim };
}

/** Write a claim that was seen back into a request's row, as the decision `status`. */
function writeBack(store: Store, requestId: string, seen: SeenClaim, status: string) {
  return store.query(sql`
    update gov_gates.requests set status = ${status}, reviewer_id = ${seen.reviewer_id},
      reason = ${seen.reason}, resolved_at = ${seen.resolved_at}::timestamptz,
      decision_key_id = ${seen.decision_key_id}, decision_mac = ${seen.decision_mac}
    where request_id = ${requestId}::uuid`);
}

/** Neither waitFor nor verifyAction believes the row; nothing was executed. */
async function grantsNothing(h: GatesHarness, gates: GatesModule, request: ApprovalRequest) {
  const waited = await integrityError(() => gates.waitFor(request.requestId, { timeoutMs: 0 }));
  expect(waited.subject).toBe("decision");
  await integrityError(() =>
    gates.verifyAction(request.requestId, PAYLOAD, { kind: KIND, agentId: AGENT, consume: false }),
  );
  await integrityError(() =>
    gates.verifyAction(request.requestId, PAYLOAD, { kind: KIND, agentId: AGENT }),
  );
  expect((await gates.getRequest(request.requestId))?.executedAt).toBeNull();
  expect(
    h.audit.events.filter(
      (event) =>
        event.kind === "approval.executed" && event.metadata?.requestId === request.requestId,
    ),
  ).toEqual([]);
}

/**
 * The decisions on a request that took effect by the audit chain (the README's reading rule):
 * its `approval.granted` / `approval.denied` events, less those that an `approval.released`
 * event with the same reviewer and `resolvedAt` names.
 */
function effectiveDecisions(h: GatesHarness, requestId: string): string[] {
  const ofRequest = h.audit.events.filter((event) => event.metadata?.requestId === requestId);
  const released = ofRequest
    .filter((event) => event.kind === "approval.released")
    .map((event) => `${event.metadata?.reviewerId}@${event.metadata?.resolvedAt}`);
  return ofRequest
    .filter((event) => event.kind === "approval.granted" || event.kind === "approval.denied")
    .filter(
      (event) => !released.includes(`${event.metadata?.reviewerId}@${event.metadata?.resolvedAt}`),
    )
    .map((event) => event.kind);
}

const ISO = (column: string) =>
  sql.raw(`to_char(${column} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`);

/** A request's row as its MACs sign it (times in ISO 8601), with its status. */
async function readRow(h: GatesHarness, requestId: string): Promise<Record<string, unknown>> {
  const [row] = await h.store.query<Record<string, unknown>>(sql`
    select request_id::text as request_id, kind, agent_id, action_hash, token_version, key_id,
      token_digest, ${ISO("created_at")} as created_at, ${ISO("expires_at")} as expires_at,
      ${ISO("resolved_at")} as resolved_at, operator_id, operator_lookup, request_key, status
    from gov_gates.requests where request_id = ${requestId}::uuid`);
  if (!row) throw new Error(`request ${requestId} is not stored`);
  return row;
}

/** A request's signed fields, from {@link readRow}. */
function signedRequestOfRow(row: Record<string, unknown>): SignedRequest {
  return {
    requestId: row.request_id as string,
    kind: row.kind as string,
    agentId: row.agent_id as string,
    actionHash: row.action_hash as string,
    tokenVersion: Number(row.token_version),
    keyId: row.key_id as string,
    tokenDigest: row.token_digest as string,
    createdAt: row.created_at as string,
    expiresAt: row.expires_at as string,
    operatorId: row.operator_id as string | null,
    operatorLookup: row.operator_lookup as string | null,
    key: row.request_key as string | null,
  };
}

/**
 * The decision MAC that the previous version wrote when it claimed a request (format 2),
 * spelled out here so that the format is pinned by the test, not by the code under test.
 */
function format2DecisionMac(
  key: ChainKey,
  row: Record<string, unknown>,
  decision: { decision: string; reviewerId: string; reason: string | null; resolvedAt: string },
): string {
  // That version signed no key (and these requests have none).
  const { key: _none, ...request } = signedRequestOfRow(row);
  return key.hmacHex(
    `gov.gates.decision\0${canonicalJson({
      type: "gov.gates.decision",
      v: 2,
      request,
      ...decision,
    })}`,
  );
}

describe.each(testEngines())(
  "a released claim replayed in the table on $name",
  (engine: TestEngine) => {
    let h: GatesHarness;

    beforeEach(async () => {
      if (engine.available) h = await gatesHarness(engine);
    });

    afterEach(async () => {
      await h?.close();
    });

    const dropGuard = () => h.store.query(sql`drop trigger requests_guard on gov_gates.requests`);

    // Guards against: a released grant claim, copied while it was held, turning a later denial
    // into an executable grant (the break as reported), whatever released the claim.
    it.skipIf(!engine.available)(
      "a released grant claim copied back over a later denial grants nothing",
      async () => {
        const replays: { request: ApprovalRequest; seen: SeenClaim }[] = [];
        for (const cause of CAUSES) {
          const replay = await releasedClaim(h, cause);
          await h.gates.deny(replay.request.token, {
            reviewerId: "carol@company.com",
            reason: "not today",
          });
          expect(
            ApprovalDenied.isInstance(
              await thrown(() => h.gates.waitFor(replay.request.requestId, { timeoutMs: 0 })),
            ),
          ).toBe(true);
          replays.push(replay);
        }
        await dropGuard();
        for (const { request, seen } of replays) {
          await writeBack(h.store, request.requestId, seen, "granted");
          await grantsNothing(h, h.gates, request);
          expect(effectiveDecisions(h, request.requestId)).toEqual(["approval.denied"]);
        }
      },
      30_000,
    );

    // Guards against: a released grant claim copied back onto its request while it is still
    // pending (no decision at all in the chain) being executed.
    it.skipIf(!engine.available)(
      "a released grant claim copied back onto its still-pending request grants nothing",
      async () => {
        const replays = [];
        for (const cause of CAUSES) replays.push(await releasedClaim(h, cause));
        await dropGuard();
        for (const { request, seen } of replays) {
          // As the claim was (granting, with its MAC), then as a decision.
          await writeBack(h.store, request.requestId, seen, "granting");
          await h.store.query(
            sql`update gov_gates.requests set status = 'granted' where request_id = ${request.requestId}::uuid`,
          );
          await grantsNothing(h, h.gates, request);
          expect(effectiveDecisions(h, request.requestId)).toEqual([]);
        }
      },
      30_000,
    );

    // Guards against: a released denial claim copied back making waiters throw ApprovalDenied
    // for a denial that is not in the chain.
    it.skipIf(!engine.available)(
      "a released denial claim copied back denies nothing: waiters refuse it",
      async () => {
        const replays = [];
        for (const cause of CAUSES) replays.push(await releasedClaim(h, cause, "denied"));
        await dropGuard();
        for (const { request, seen } of replays) {
          await writeBack(h.store, request.requestId, seen, "denied");
          const error = await integrityError(() =>
            h.gates.waitFor(request.requestId, { timeoutMs: 0 }),
          );
          expect(error.subject).toBe("decision");
          expect(effectiveDecisions(h, request.requestId)).toEqual([]);
        }
      },
      30_000,
    );

    // Guards against: a role that may update the table but not drop its trigger publishing a
    // claim it made up from a released one (the trigger lets pending → granting through).
    it.skipIf(!engine.available)(
      "with the trigger in place, a claim cannot be published without a new decision MAC, and a made-up one is refused",
      async () => {
        let writer: Awaited<ReturnType<typeof roleStore>> | null = null;
        let db: Store = h.store;
        if (engine.name === "postgres") {
          writer = await roleStore(h.store, "replay_writer");
          await h.store.query(
            sql.raw(
              `grant usage on schema gov_gates to ${writer.role}; grant select, update on gov_gates.requests to ${writer.role}`,
            ),
          );
          db = writer.store;
        }
        try {
          const { request, seen } = await releasedClaim(h, "audit_failed");
          // The claim itself is let through (the trigger cannot check a MAC)…
          await writeBack(db, request.requestId, seen, "granting");
          // …but publishing it without a decision MAC of its own is refused,
          for (const set of [
            sql`status = 'granted'`,
            sql`status = 'granted', decision_mac = ${seen.decision_mac}`,
            sql`status = 'granted', decision_mac = null`,
          ]) {
            const error = await thrown(() =>
              db.query(
                sql`update gov_gates.requests set ${set} where request_id = ${request.requestId}::uuid`,
              ),
            );
            expect(String((error as Error).message)).toMatch(/gov_gates\.requests/);
          }
          // …as is skipping the claim,
          const other = await releasedClaim(h, "audit_failed");
          const skipped = await thrown(() =>
            writeBack(
              db,
              other.request.requestId,
              { ...other.seen, decision_mac: "ab".repeat(32) },
              "granted",
            ),
          );
          expect(String((skipped as Error).message)).toMatch(/gov_gates\.requests/);
          // …and one published with a decision MAC it made up grants nothing.
          await db.query(
            sql`update gov_gates.requests set status = 'granted', decision_mac = ${"ab".repeat(32)} where request_id = ${request.requestId}::uuid`,
          );
          await grantsNothing(h, h.gates, request);
        } finally {
          await writer?.drop();
        }
      },
      30_000,
    );

    // Guards against: grants of the previous version, whose decision MAC was written when the
    // request was claimed (so a released claim's copy is indistinguishable from them), verifying.
    it.skipIf(!engine.available)(
      "a grant signed in the previous format (MAC written at claim time) is refused; a denial in it stands",
      async () => {
        const key = new ChainKey(SECRET_A);
        const [granted, denied] = [
          await h.gates.request(KIND, AGENT, { payload: PAYLOAD }),
          await h.gates.request(KIND, AGENT, { payload: PAYLOAD }),
        ];
        await dropGuard();
        const resolvedAt = "2026-01-01T00:00:00.000Z";
        for (const [request, decision, reason] of [
          [granted, "granted", null],
          [denied, "denied", "no"],
        ] as const) {
          const mac = format2DecisionMac(key, await readRow(h, request.requestId), {
            decision,
            reviewerId: "bob@company.com",
            reason,
            resolvedAt,
          });
          await h.store.query(sql`
          update gov_gates.requests set status = ${decision}, reviewer_id = 'bob@company.com', reason = ${reason},
            resolved_at = ${resolvedAt}::timestamptz, decision_key_id = key_id, decision_mac = ${mac}
          where request_id = ${request.requestId}::uuid`);
        }
        const error = await integrityError(() =>
          h.gates.waitFor(granted.requestId, { timeoutMs: 0 }),
        );
        expect(error.message).toContain("earlier version");
        await grantsNothing(h, h.gates, granted);
        const denial = await thrown(() => h.gates.waitFor(denied.requestId, { timeoutMs: 0 }));
        expect(ApprovalDenied.isInstance(denial)).toBe(true);
        expect(denial).toMatchObject({ reviewerId: "bob@company.com", reason: "no" });
      },
    );

    // Guards against: the decision MAC of a publish that failed (the claim is then released)
    // outliving it in the error's causes — the driver's error holds the statement's parameters —
    // where whoever reads the application's logs could copy it into the row.
    it.skipIf(!engine.available)(
      "a publish that fails leaves the decision MAC it carried in no error and no log line",
      async () => {
        const audit: AuditSink = {
          async log(event) {
            // The audit write succeeds, then the database refuses the publish.
            if (event.kind === "approval.granted")
              await h.store.query(sql`
              alter table gov_gates.requests add constraint test_refuse_publish
              check (status <> 'granted') not valid`);
            return h.audit.log(event);
          },
        };
        const process = h.another({ audit });
        const request = await process.request(KIND, AGENT, { payload: PAYLOAD });
        const error = await thrown(() =>
          process.grant(request.token, { reviewerId: "bob@company.com" }),
        );
        expect(ApprovalStoreError.isInstance(error)).toBe(true);
        expect((error as ApprovalStoreError).operation).toBe("publish");
        const row = await readRow(h, request.requestId);
        expect(row.status).toBe("granting");
        // The MAC the publish carried: what a log reader would need to put the grant back.
        const decisionMac = new ChainKey(SECRET_A).hmacHex(
          decisionMacInput(signedRequestOfRow(row), {
            decision: "granted",
            reviewerId: "bob@company.com",
            reason: null,
            resolvedAt: row.resolved_at as string,
          }),
        );
        expect(inspect(error, { depth: Number.POSITIVE_INFINITY })).not.toContain(decisionMac);
        expect(JSON.stringify(error)).not.toContain(decisionMac);
        expect(h.logger.text()).not.toContain(decisionMac);
        expect((error as Error).message).toContain("test_refuse_publish");
      },
    );

    // Guards against: the owner (who can read claims and drop the trigger, but holds no key and
    // is not a superuser) turning a denial into a grant with a claim it copied while it was held.
    it.skipIf(!engine.available || engine.name !== "postgres")(
      "a table owner that is not a superuser drops the trigger and writes copied claims over a denial and onto a pending request: nothing is granted",
      async () => {
        const owner = await tableOwnerRole(h.store, "replay_owner");
        try {
          const denied = await releasedClaim(h, "audit_failed");
          await h.gates.deny(denied.request.token, {
            reviewerId: "carol@company.com",
            reason: "not today",
          });
          const pending = await releasedClaim(h, "stale_claim");
          // The owner's first attempt meets the trigger; then they drop it.
          const refused = await thrown(() =>
            writeBack(owner.store, denied.request.requestId, denied.seen, "granted"),
          );
          expect(String((refused as Error).message)).toContain("gov_gates.requests");
          await owner.store.query(sql`drop trigger requests_guard on gov_gates.requests`);
          await writeBack(owner.store, denied.request.requestId, denied.seen, "granted");
          await writeBack(owner.store, pending.request.requestId, pending.seen, "granted");
          for (const { request } of [denied, pending]) await grantsNothing(h, h.gates, request);
          expect(effectiveDecisions(h, denied.request.requestId)).toEqual(["approval.denied"]);
          expect(effectiveDecisions(h, pending.request.requestId)).toEqual([]);
        } finally {
          await owner.drop();
        }
      },
      30_000,
    );

    // The honest path after a release: the reviewer tries again, and that grant holds.
    it.skipIf(!engine.available)(
      "a request whose claim was released is granted normally afterwards, and only then verifies",
      async () => {
        const { request } = await releasedClaim(h, "audit_failed");
        await h.gates.grant(request.token, { reviewerId: "bob@company.com" });
        expect(await h.gates.waitFor(request.requestId, { timeoutMs: 0 })).toBe(true);
        expect(
          await h.gates.verifyAction(request.requestId, PAYLOAD, { kind: KIND, agentId: AGENT }),
        ).toMatchObject({ decision: "granted", reviewerId: "bob@company.com" });
        expect(h.audit.events.map((event) => event.kind)).toEqual([
          "approval.requested",
          "approval.released",
          "approval.granted",
          "approval.executed",
        ]);
      },
    );
  },
);
