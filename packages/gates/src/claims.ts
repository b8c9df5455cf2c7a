import { describeError, sql } from "@gov/core";
import { ApprovalStoreError } from "./errors";
import { APPROVAL_EVENT_KINDS, GATES_RESOLVED_CHANNEL } from "./events";
import { record } from "./recorder";
import { CLAIM_STATUS, ISO, isClaim, type RequestRow, requestMetadata } from "./rows";
import type { GatesRuntime } from "./runtime";
import { requests } from "./schema";

/** Why a claim was given back (`approval.released`, `metadata.cause`). */
export type ReleaseCause = "audit_failed" | "audit_timeout" | "stale_claim";

/** A claim held by this process: the status it set, its MAC, who decided and when. */
export interface HeldClaim {
  claimStatus: string;
  mac: string;
  reviewerId: string;
  now: string;
}

/**
 * Give a claim back: its decision was not recorded, so it was not made. Only this claim
 * (its MAC) is released, never another's. Recorded as `approval.released`.
 */
export async function releaseClaim(
  runtime: GatesRuntime,
  row: RequestRow,
  claim: HeldClaim,
  cause: ReleaseCause,
): Promise<void> {
  try {
    await runtime.store.query(sql`
      update ${requests} set
        status = 'pending', reviewer_id = null, reason = null, resolved_at = null,
        decision_key_id = null, decision_mac = null
      where request_id = ${row.request_id}::uuid and status = ${claim.claimStatus}
        and decision_mac = ${claim.mac}`);
  } catch (error) {
    runtime.logger.error(
      "A claim whose audit event failed could not be released; it is released once older than staleClaimMs.",
      { requestId: row.request_id, error: describeError(error) },
    );
    return;
  }
  await record(runtime, row.agent_id, APPROVAL_EVENT_KINDS.released, {
    ...requestMetadata(row),
    decision: claim.claimStatus === CLAIM_STATUS.granted ? "granted" : "denied",
    reviewerId: claim.reviewerId,
    resolvedAt: claim.now,
    cause,
    releasedAt: runtime.clock.now().toISOString(),
  });
}

/** Whether a claim is older than `staleClaimMs` by the module's clock. */
export function isStale(runtime: GatesRuntime, row: RequestRow, nowMs: number): boolean {
  return (
    isClaim(row.status) &&
    row.resolved_at !== null &&
    Date.parse(row.resolved_at) <= nowMs - runtime.options.staleClaimMs
  );
}

/**
 * Release claims older than `staleClaimMs` (their process died, or stalled): back to
 * pending, or expired when past their expiry. Each claim is released once, whoever else
 * recovers at the same time; waiters are woken; each is recorded as `approval.released`
 * (cause `stale_claim`).
 *
 * @returns the requests it released, with their new status (`pending` or `expired`).
 */
export async function recoverStaleClaims(
  runtime: GatesRuntime,
  scope: { requestId?: string; limit: number },
): Promise<{ requestId: string; status: string }[]> {
  const now = runtime.clock.now();
  const nowIso = now.toISOString();
  const cutoff = new Date(now.getTime() - runtime.options.staleClaimMs).toISOString();
  let rows: {
    request_id: string;
    agent_id: string;
    kind: string;
    action_hash: string;
    status: string;
    claim_status: string;
    claim_reviewer: string | null;
    claimed_at: string;
  }[];
  try {
    rows = await runtime.store.query(sql`
      with stale as (
        select request_id, status as claim_status, reviewer_id as claim_reviewer,
          resolved_at as claimed_at
        from ${requests}
        where status in ('granting', 'denying') and resolved_at <= ${cutoff}::timestamptz
          ${scope.requestId === undefined ? sql`` : sql`and request_id = ${scope.requestId}::uuid`}
        order by resolved_at limit ${scope.limit}
        for update skip locked
      ), released as (
        update ${requests} r set
          status = case when r.expires_at <= ${nowIso}::timestamptz then 'expired' else 'pending' end,
          resolved_at = case when r.expires_at <= ${nowIso}::timestamptz then ${nowIso}::timestamptz end,
          reviewer_id = null, reason = null, decision_key_id = null, decision_mac = null
        from stale
        where r.request_id = stale.request_id and r.status = stale.claim_status
        returning r.request_id, r.agent_id, r.kind, r.action_hash, r.status,
          stale.claim_status, stale.claim_reviewer, stale.claimed_at
      )
      select request_id::text as request_id, agent_id, kind, action_hash, status, claim_status,
        claim_reviewer, ${sql.raw(ISO("claimed_at"))} as claimed_at,
        pg_notify(${GATES_RESOLVED_CHANNEL}, request_id::text) as notified
      from released`);
  } catch (error) {
    throw new ApprovalStoreError("claim", scope.requestId ?? null, error);
  }
  for (const row of rows) {
    runtime.logger.warn(
      `An abandoned claim (older than staleClaimMs) was released; the request is ${row.status} again.`,
      { requestId: row.request_id },
    );
    await record(runtime, row.agent_id, APPROVAL_EVENT_KINDS.released, {
      requestId: row.request_id,
      kind: row.kind,
      actionHash: row.action_hash,
      decision: row.claim_status === CLAIM_STATUS.granted ? "granted" : "denied",
      reviewerId: row.claim_reviewer,
      resolvedAt: row.claimed_at,
      cause: "stale_claim",
      releasedAt: nowIso,
      status: row.status,
    });
  }
  return rows.map((row) => ({ requestId: row.request_id, status: row.status }));
}

/**
 * Release abandoned claims, then mark requests past their expiry with no decision as expired,
 * wake their waiters and record each as `approval.expired` (what `expirePending` does).
 * @returns the ids of the requests it expired, sorted.
 */
export async function expireRequests(runtime: GatesRuntime, limit: number): Promise<string[]> {
  const recovered = (await recoverStaleClaims(runtime, { limit }))
    .filter((entry) => entry.status === "expired")
    .map((entry) => entry.requestId);
  const now = runtime.clock.now().toISOString();
  let rows: {
    request_id: string;
    agent_id: string;
    kind: string;
    action_hash: string;
    expires_at: string;
  }[];
  try {
    rows = await runtime.store.query(sql`
      with expired as (
        update ${requests} set status = 'expired', resolved_at = ${now}::timestamptz
        where request_id in (
          select request_id from ${requests}
          where status = 'pending' and expires_at <= ${now}::timestamptz
          order by expires_at limit ${limit}
          for update skip locked
        ) and status = 'pending'
        returning request_id, agent_id, kind, action_hash, expires_at
      )
      select request_id::text as request_id, agent_id, kind, action_hash,
        ${sql.raw(ISO("expires_at"))} as expires_at,
        pg_notify(${GATES_RESOLVED_CHANNEL}, request_id::text) as notified
      from expired`);
  } catch (error) {
    throw new ApprovalStoreError("claim", null, error);
  }
  for (const row of rows) {
    await record(runtime, row.agent_id, APPROVAL_EVENT_KINDS.expired, {
      requestId: row.request_id,
      kind: row.kind,
      actionHash: row.action_hash,
      expiresAt: row.expires_at,
      expiredAt: now,
    });
  }
  return [...recovered, ...rows.map((row) => row.request_id)].sort();
}
