import { randomUUID } from "node:crypto";
import {
  type AuditMetadata,
  type ChainKey,
  constantTimeEqualHex,
  describeError,
  identityForms,
  noopAuditSink,
  StoreError,
  sameIdentity,
  sql,
} from "@gov/core";
import { isStale, type ReleaseCause, recoverStaleClaims, releaseClaim } from "./claims";
import {
  ApprovalNotRecordedError,
  ApprovalStoreError,
  ApprovalTokenError,
  type ApprovalTokenReason,
  SelfApprovalError,
  SelfApprovalUnverifiableError,
  TokenVersionTooOldError,
} from "./errors";
import { APPROVAL_EVENT_KINDS, GATES_RESOLVED_CHANNEL } from "./events";
import { integrityFailure, requestProblem } from "./integrity";
import { AuditTimeoutError, auditLog, record } from "./recorder";
import {
  CLAIM_STATUS,
  isClaim,
  publicStatus,
  type RequestRow,
  readRow,
  requestMetadata,
  sha256,
  signedRequestOf,
} from "./rows";
import type { GatesRuntime } from "./runtime";
import { requests } from "./schema";
import { claimMacInput, decisionMacInput, type SignedDecision } from "./signatures";
import { type ParsedToken, parseToken, tokenDigest, verifyTokenMac } from "./token";
import type { ApprovalDecision } from "./types";

/** What a reviewer decides with: who, why, and the payload they saw (canonicalized). */
export interface DecisionInput {
  reviewerId: string;
  reason: string | null;
  payload: { canonical: string } | undefined;
}

/**
 * The decision protocol of `grant()` and `deny()`: verify the token, the request and the
 * reviewer; claim the request (one conditional update decides who wins); record the decision
 * in the audit chain; only then publish it, signed, waking every waiter. A decision whose
 * audit event cannot be written gives its claim back and is not made.
 */
export async function decide(
  runtime: GatesRuntime,
  decision: "granted" | "denied",
  token: string,
  input: DecisionInput,
): Promise<ApprovalDecision> {
  const attempt = decision === "granted" ? "grant" : "deny";
  const { parsed, key } = verifyToken(runtime, token, attempt);
  const digest = tokenDigest(token);
  const requestId = parsed.requestId;
  let row = await readRow(runtime.store, requestId);
  if (!row) {
    runtime.logger.warn("A genuine approval token names a request that is not stored; refused.", {
      requestId,
      attempt,
    });
    throw new ApprovalTokenError({ reason: "unknown_request", requestId });
  }
  const known = row;
  const refuse = async (reason: ApprovalTokenReason, extra: AuditMetadata = {}, note?: string) => {
    await record(runtime, known.agent_id, APPROVAL_EVENT_KINDS.refused, {
      ...requestMetadata(known),
      attempt,
      reviewerId: input.reviewerId,
      reason,
      ...extra,
    });
    return new ApprovalTokenError({ reason, requestId, ...(note ? { note } : {}) });
  };
  if (!constantTimeEqualHex(row.token_digest, digest)) throw await refuse("signature_mismatch");
  // The decision is signed under the key the token was issued under (the request's key),
  // and is only ever accepted under that key.
  if (row.key_id !== key.id) throw await refuse("signature_mismatch");
  if (!constantTimeEqualHex(row.action_hash, parsed.actionHash))
    throw await refuse("action_hash_mismatch", { presentedActionHash: parsed.actionHash });
  if (input.payload !== undefined) {
    const presented = sha256(input.payload.canonical);
    if (!constantTimeEqualHex(row.action_hash, presented))
      throw await refuse(
        "action_hash_mismatch",
        { presentedActionHash: presented },
        "The payload the reviewer saw is not the one the request was made for.",
      );
  }
  if (parsed.version === 1) {
    runtime.logger.warn(
      "A legacy v1 approval token was accepted; v1 tokens stop verifying at acceptV1Until. Switch to v2 tokens (enableV2Tokens: true).",
      { requestId },
    );
    await record(runtime, row.agent_id, APPROVAL_EVENT_KINDS.legacyTokenParsed, {
      requestId,
      kind: row.kind,
      attempt,
      acceptV1Until: runtime.options.acceptV1Until?.toISOString() ?? null,
    });
  }
  const nowMs = runtime.clock.nowMs();
  const expiredNote = `It expired at ${new Date(parsed.expiresAtMs).toISOString()}.`;
  if (parsed.expiresAtMs <= nowMs || row.status === "expired")
    throw await refuse("expired", {}, expiredNote);
  if (isClaim(row.status)) {
    // Another decision is being recorded — unless its claim was abandoned.
    if (!isStale(runtime, row, nowMs)) throw await refuse("in_progress");
    await recoverStaleClaims(runtime, { requestId, limit: 1 });
    row = await readRow(runtime.store, requestId);
    if (!row) throw new ApprovalTokenError({ reason: "unknown_request", requestId });
    if (row.status === "expired") throw await refuse("expired", {}, expiredNote);
    if (isClaim(row.status)) throw await refuse("in_progress");
  }
  if (row.status !== "pending")
    throw await refuse("already_used", { status: publicStatus(row.status) });
  if (Date.parse(row.expires_at) <= nowMs) throw await refuse("expired");
  if (decision === "granted") {
    // What the reviewer and the self-approval rule rely on — the request's kind, agent,
    // expiry, operator at request time — must be what was signed when it was made. (A
    // denial can only stop an action: it is allowed on a row that does not verify.)
    const problem = requestProblem(runtime.keyring, row);
    if (problem !== null) {
      await record(runtime, row.agent_id, APPROVAL_EVENT_KINDS.refused, {
        ...requestMetadata(row),
        attempt,
        reviewerId: input.reviewerId,
        reason: "request_integrity",
      });
      throw integrityFailure(runtime.logger, requestId, problem, "request");
    }
    await checkSelfApproval(runtime, row, input.reviewerId);
  }

  // The claim: one conditional update decides who wins. It is invisible to waiters, who
  // only act on `granted` / `denied`, until the audit event is durable. Its claim MAC
  // identifies it (publishing and releasing touch this claim only, never another process's)
  // and is no decision MAC: the row is readable while the claim is held, and a claim that is
  // then released must leave nothing behind that verifies as a decision.
  const now = new Date(nowMs).toISOString();
  const result: ApprovalDecision = {
    requestId,
    kind: row.kind,
    agentId: row.agent_id,
    actionHash: row.action_hash,
    decision,
    reviewerId: input.reviewerId,
    reason: input.reason,
    resolvedAt: new Date(nowMs),
  };
  const signedRequest = signedRequestOf(row);
  const signedDecision: SignedDecision = {
    decision,
    reviewerId: input.reviewerId,
    reason: input.reason,
    resolvedAt: now,
  };
  const mac = key.hmacHex(claimMacInput(signedRequest, signedDecision, randomUUID()));
  const claimStatus = CLAIM_STATUS[decision];
  let claimed: { request_id: string }[];
  try {
    claimed = await runtime.store.query<{ request_id: string }>(sql`
      update ${requests} set
        status = ${claimStatus}, reviewer_id = ${input.reviewerId}, reason = ${input.reason},
        resolved_at = ${now}::timestamptz, decision_key_id = ${key.id}, decision_mac = ${mac}
      where request_id = ${requestId}::uuid and status = 'pending'
        and expires_at > ${now}::timestamptz and token_digest = ${digest}
      returning request_id::text as request_id`);
  } catch (error) {
    throw new ApprovalStoreError("claim", requestId, error);
  }
  if (claimed.length === 0) {
    // Someone else won, or the request expired meanwhile: read which.
    const current = await readRow(runtime.store, requestId);
    if (!current) throw new ApprovalTokenError({ reason: "unknown_request", requestId });
    if (
      current.status === "expired" ||
      (current.status === "pending" && Date.parse(current.expires_at) <= nowMs)
    )
      throw await refuse("expired");
    // Pending again: a claim that beat this one was released meanwhile.
    if (current.status === "pending" || isClaim(current.status))
      throw await refuse("in_progress", { status: publicStatus(current.status) });
    throw await refuse("already_used", { status: publicStatus(current.status) });
  }

  // The evidence: the decision is made only once its audit event is durable.
  const eventKind =
    decision === "granted" ? APPROVAL_EVENT_KINDS.granted : APPROVAL_EVENT_KINDS.denied;
  let failure: unknown = null;
  try {
    const receipt = await auditLog(runtime, {
      agentId: row.agent_id,
      kind: eventKind,
      metadata: {
        ...requestMetadata(row),
        reviewerId: input.reviewerId,
        reason: input.reason,
        resolvedAt: now,
        tokenVersion: parsed.version,
        keyId: parsed.version === 2 ? parsed.keyId : null,
      },
    });
    if (receipt.isPlaceholder && runtime.audit !== noopAuditSink)
      failure = new Error("the audit sink returned a placeholder");
  } catch (error) {
    failure = error;
  }
  if (failure !== null) {
    const cause: ReleaseCause =
      failure instanceof AuditTimeoutError ? "audit_timeout" : "audit_failed";
    await releaseClaim(
      runtime,
      row,
      { claimStatus, mac, reviewerId: input.reviewerId, now },
      cause,
    );
    runtime.logger.error(
      `A ${attempt} could not be recorded in the audit chain; the request is still pending.`,
      {
        requestId,
        error: describeError(failure),
      },
    );
    throw new ApprovalNotRecordedError(requestId, decision, failure);
  }

  // Publish: waiters see the decision, and are woken, when this commits. Only now, with its
  // audit event durable, is the decision signed: the decision MAC (over every field of the
  // request, so that it holds for this request exactly as it was decided) replaces the claim
  // MAC in the same statement. A claim that is released never gets one.
  const decisionMac = key.hmacHex(decisionMacInput(signedRequest, signedDecision));
  let published: { request_id: string }[];
  try {
    published = await runtime.store.query<{ request_id: string }>(sql`
      with published as (
        update ${requests} set status = ${decision}, decision_mac = ${decisionMac}
        where request_id = ${requestId}::uuid and status = ${claimStatus} and decision_mac = ${mac}
        returning request_id
      )
      select request_id::text as request_id, pg_notify(${GATES_RESOLVED_CHANNEL}, request_id::text)
      from published`);
  } catch (error) {
    runtime.logger.error(
      `A ${attempt} was recorded in the audit chain but could not be published; it is released once older than staleClaimMs.`,
      { requestId, error: describeError(error) },
    );
    // The statement carried the decision MAC, which must not outlive a publish that did not
    // take effect: the driver's error (a cause of the store's) holds the statement's
    // parameters, so only what the database said is kept.
    throw new ApprovalStoreError("publish", requestId, withoutStatement(error));
  }
  if (published.length === 0) {
    // This process stalled past staleClaimMs and its claim was recovered by another
    // (recorded there as approval.released): the decision did not take effect.
    const lost = new Error(
      `the claim was released as stale (older than staleClaimMs, ${runtime.options.staleClaimMs} ms) before it could be published`,
    );
    runtime.logger.error(`A ${attempt} was recorded in the audit chain but did not take effect.`, {
      requestId,
      error: describeError(lost),
    });
    throw new ApprovalStoreError("publish", requestId, lost);
  }
  return result;
}

/** Parse and verify a token, without the database; returns the key that verified it. */
function verifyToken(
  runtime: GatesRuntime,
  token: string,
  attempt: "grant" | "deny",
): { parsed: ParsedToken; key: ChainKey } {
  let parsed: ParsedToken;
  let key: ChainKey;
  try {
    parsed = parseToken(token);
    if (parsed.version === 1) {
      const until = runtime.options.acceptV1Until;
      if (until === null || runtime.clock.nowMs() >= until.getTime())
        throw new TokenVersionTooOldError(parsed.requestId, until);
    }
    key = verifyTokenMac(parsed, runtime.keyring);
  } catch (error) {
    if (ApprovalTokenError.isInstance(error)) {
      // The token is never logged: only why it was refused, and the request it names.
      runtime.logger.warn(`An approval token was refused (${error.reason}).`, {
        attempt,
        reason: error.reason,
        requestId: error.requestId,
      });
    }
    throw error;
  }
  return { parsed, key };
}

/** The operator bound to `agentId` now; `failed` (with the error) when it cannot be looked up. */
export async function lookUpOperator(
  runtime: GatesRuntime,
  agentId: string,
): Promise<{ operatorId: string | null; lookup: "ok" | "failed"; error?: unknown }> {
  try {
    const operator = await runtime.operators.operatorOf(agentId);
    if (operator !== null && operator !== undefined && typeof operator !== "string")
      throw new Error(`the operators port returned ${typeof operator}, not a string or null`);
    return { operatorId: operator ?? null, lookup: "ok" };
  } catch (error) {
    return { operatorId: null, lookup: "failed", error };
  }
}

/**
 * Refuse a reviewer who is the agent, the operator bound to it when the request was made,
 * or the operator bound to it now (ids compared by core's `sameIdentity`: look-alikes are
 * the same principal).
 */
async function checkSelfApproval(
  runtime: GatesRuntime,
  row: RequestRow,
  reviewerId: string,
): Promise<void> {
  const reviewer = identityForms(reviewerId);
  const isReviewer = (id: string) => sameIdentity(identityForms(id), reviewer);
  const recordRefusal = async (relation: string) => {
    await record(runtime, row.agent_id, APPROVAL_EVENT_KINDS.refused, {
      ...requestMetadata(row),
      attempt: "grant",
      reviewerId,
      reason: relation,
    });
  };
  const refuseAs = async (relation: "agent" | "operator") => {
    await recordRefusal("self_approval");
    return new SelfApprovalError({
      requestId: row.request_id,
      agentId: row.agent_id,
      reviewerId,
      relation,
    });
  };
  if (isReviewer(row.agent_id)) throw await refuseAs("agent");
  if (row.operator_lookup === "failed") {
    await recordRefusal("operator_unknown");
    throw new SelfApprovalUnverifiableError(
      row.request_id,
      row.agent_id,
      new Error("the operator lookup failed when the request was made"),
      true,
    );
  }
  if (row.operator_id !== null && isReviewer(row.operator_id)) throw await refuseAs("operator");
  const current = await lookUpOperator(runtime, row.agent_id);
  if (current.lookup === "failed") {
    await recordRefusal("operator_unknown");
    throw new SelfApprovalUnverifiableError(row.request_id, row.agent_id, current.error);
  }
  if (current.operatorId !== null && isReviewer(current.operatorId))
    throw await refuseAs("operator");
}

/**
 * `error` without the errors it wraps: a database driver's error holds the statement and its
 * parameters. A `StoreError` keeps its kind, SQLSTATE and message (what the database said).
 */
function withoutStatement(error: unknown): Error {
  if (StoreError.isInstance(error))
    return new StoreError({
      kind: error.kind,
      message: error.message,
      sqlState: error.sqlState,
      constraint: error.constraint,
      table: error.table,
      schema: error.schema,
    });
  return new Error(describeError(error));
}
