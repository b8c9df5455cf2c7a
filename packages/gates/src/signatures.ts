/**
 * What the request MAC and the decision MAC sign. Whoever can edit `gov_gates.requests` (a
 * table owner can also drop its guard trigger) but does not hold the keys must not be able to
 * make a row approve anything it was not made and decided for. Every field that a decision or
 * a check relies on is therefore covered by a MAC (or needs none), and the trigger (migrations
 * 0004 and 0007) keeps the same fields immutable as defence in depth:
 *
 * | Column                          | Relied on by                              | Covered by                                                            |
 * | ------------------------------- | ----------------------------------------- | --------------------------------------------------------------------- |
 * | `request_id`                    | everything                                | the token's MAC, the request MAC, the decision MAC                    |
 * | `kind`, `agent_id`              | the reviewer, `verifyAction`, self-approval | the request MAC (checked by `grant`), the decision MAC              |
 * | `action_hash`                   | `grant`, `verifyAction`                   | the token's MAC, the request MAC, the decision MAC                    |
 * | `payload`                       | the reviewer (display only)               | the action hash: re-hashed on every read, withheld when it differs    |
 * | `token_version`, `token_digest` | `grant` (the token presented is this one) | the request MAC, the decision MAC                                     |
 * | `key_id`, `decision_key_id`     | which key verifies                        | the token names its key; both MACs verify only under `key_id`, and `decision_key_id` must equal it |
 * | `created_at`                    | the reviewer, the evidence                | the request MAC, the decision MAC                                     |
 * | `expires_at`                    | `grant`, `waitFor`, `verifyAction`        | the token's MAC, the request MAC, the decision MAC                    |
 * | `operator_id`, `operator_lookup`| self-approval (operator at request time)  | the request MAC (checked by `grant`), the decision MAC                |
 * | `request_key`                   | `findRequest` (a run resumed elsewhere finds its request by it) | the request MAC and the decision MAC, when set (a row moved to another key, or given one, does not verify); null: signed as before keys existed |
 * | `status`                        | everything                                | `granted` / `denied`: the decision MAC; `pending`, `expired` and the claims grant nothing (a waiter keeps waiting or refuses); the trigger makes transitions one-way |
 * | `reviewer_id`, `reason`, `resolved_at` | `ApprovalDenied`, the evidence     | the decision MAC                                                      |
 * | `decision_mac`                  | —                                         | it signs the request id: one request's decision does not verify on another; during a claim it holds the claim MAC, which never verifies as a decision |
 * | `executed_at`                   | single execution                          | the trigger only (a MAC cannot prove that something did not happen): a table owner who drops the trigger can clear it and run the approval again, before its signed expiry only, and each execution is recorded (`approval.executed`) |
 * | `request_mac`                   | —                                         | it is the request's signature; a row without one can be denied, not granted |
 *
 * Every MAC here is HMAC-SHA256 under the key the request's token was issued under (`key_id`),
 * over a domain tag, a NUL byte and the RFC 8785 (canonical JSON) form of the fields: a MAC
 * of one kind can never verify as another, as a token, or as an audit record (canonical
 * JSON never starts with the tag).
 *
 * **A decision MAC exists only once the decision is published.** A decision is made in three
 * steps — claim, audit write, publish — and the row is readable during the claim. The claim
 * carries a claim MAC ({@link claimMacInput}: its own domain, and a random nonce that is never
 * stored, so nothing can verify it and no two claims share one); the decision MAC is computed
 * after the audit event is durable and written by the statement that publishes the decision. A
 * claim that is released (its audit write failed, or it went stale) never gets one, so copying
 * it back into the row — with or without the trigger — approves nothing. Earlier versions wrote
 * the decision MAC with the claim (format 2): such a grant cannot be told apart from a released
 * claim put back, and is refused.
 */
import { canonicalJson } from "@gov/core";

/** Domain of the request MAC. */
export const REQUEST_MAC_DOMAIN = "gov.gates.request\0";

/**
 * Domain of the decision MAC (format 3, written when the decision is published; format 2 had
 * the same domain and was written with the claim; format 1 had no domain tag and fewer fields).
 */
export const DECISION_MAC_DOMAIN = "gov.gates.decision\0";

/** Domain of the claim MAC: what a row holds while its decision is being recorded. */
export const CLAIM_MAC_DOMAIN = "gov.gates.claim\0";

/** What a request is, as its request MAC signs it: fixed when the request is made. */
export interface SignedRequest {
  /** The request's UUID (lower-case). */
  requestId: string;
  kind: string;
  agentId: string;
  /** SHA-256 (hex) of the canonical payload. */
  actionHash: string;
  /** 1 or 2. */
  tokenVersion: number;
  /** The id of the key that signed the token (and signs this MAC). */
  keyId: string;
  /** SHA-256 (hex) of the token's digest domain and the token. */
  tokenDigest: string;
  /** ISO 8601, in whole milliseconds (`Date#toISOString`). */
  createdAt: string;
  /** ISO 8601, in whole milliseconds: the token's own expiry. */
  expiresAt: string;
  /** The operator bound to the agent when the request was made (null: none). */
  operatorId: string | null;
  /** Whether that operator was looked up (`failed`: the request cannot be granted). */
  operatorLookup: string | null;
  /** The caller's key for the request (`request(…, { key })`), or null: none. */
  key: string | null;
}

/** A decision on a request, as the decision MAC signs it. */
export interface SignedDecision {
  decision: "granted" | "denied";
  reviewerId: string;
  reason: string | null;
  /** ISO 8601, in whole milliseconds. */
  resolvedAt: string;
}

/**
 * The request's fields, in a fixed shape (nothing else can slip into a signature). The key is
 * signed only when the request has one, so that a request made without a key — and every row
 * written before keys existed — signs exactly the fields it always did; a key written into such
 * a row, or a keyed row's key erased, changes what is signed and does not verify.
 */
function requestFields(request: SignedRequest) {
  return {
    requestId: request.requestId,
    kind: request.kind,
    agentId: request.agentId,
    actionHash: request.actionHash,
    tokenVersion: request.tokenVersion,
    keyId: request.keyId,
    tokenDigest: request.tokenDigest,
    createdAt: request.createdAt,
    expiresAt: request.expiresAt,
    operatorId: request.operatorId,
    operatorLookup: request.operatorLookup,
    ...(request.key === null ? {} : { key: request.key }),
  };
}

/** What the request MAC signs. */
export function requestMacInput(request: SignedRequest): string {
  return (
    REQUEST_MAC_DOMAIN +
    canonicalJson({ type: "gov.gates.request", v: 1, ...requestFields(request) })
  );
}

/** The decision's fields in the shape of formats 2 and 3: every field of the request, and the decision. */
function decisionFields(request: SignedRequest, decision: SignedDecision) {
  return {
    request: requestFields(request),
    decision: decision.decision,
    reviewerId: decision.reviewerId,
    reason: decision.reason,
    resolvedAt: decision.resolvedAt,
  };
}

/**
 * What the decision MAC signs (format 3): every field of the request, and the decision. A
 * decision therefore holds only for the request exactly as it was when it was decided. It is
 * computed once the decision's audit event is durable, and written only by the statement that
 * publishes the decision: a claim never carries it.
 */
export function decisionMacInput(request: SignedRequest, decision: SignedDecision): string {
  return (
    DECISION_MAC_DOMAIN +
    canonicalJson({ type: "gov.gates.decision", v: 3, ...decisionFields(request, decision) })
  );
}

/**
 * What the claim MAC signs: the request, the decision being recorded and `nonce` (random, never
 * stored). It identifies one claim — publishing and releasing touch only the claim that holds
 * it — and, under its own domain, can never verify as a decision: a released claim copied back
 * into the row approves nothing.
 */
export function claimMacInput(
  request: SignedRequest,
  decision: SignedDecision,
  nonce: string,
): string {
  return (
    CLAIM_MAC_DOMAIN +
    canonicalJson({ type: "gov.gates.claim", v: 1, ...decisionFields(request, decision), nonce })
  );
}

/**
 * What the decision MAC of the previous version signed (format 2): the same fields as format
 * 3, but it was written with the claim, before the decision's audit event — so a claim that was
 * released could be copied back and verify. Only recognized, never written: a grant in this
 * format is refused, a denial stands (it can only stop an action).
 */
export function format2DecisionMacInput(request: SignedRequest, decision: SignedDecision): string {
  return (
    DECISION_MAC_DOMAIN +
    canonicalJson({ type: "gov.gates.decision", v: 2, ...decisionFields(request, decision) })
  );
}

/**
 * What the decision MAC of earlier versions signed (format 1): the request's id, kind, agent
 * and action hash, and the decision — not its expiry, token, creation time or operator. Only
 * recognized, never written: a grant in this format is refused (its expiry could have been
 * moved), a denial stands (it can only stop an action).
 */
export function format1DecisionMacInput(request: SignedRequest, decision: SignedDecision): string {
  return canonicalJson({
    type: "gov.gates.decision",
    v: 1,
    requestId: request.requestId,
    kind: request.kind,
    agentId: request.agentId,
    actionHash: request.actionHash,
    decision: decision.decision,
    reviewerId: decision.reviewerId,
    reason: decision.reason,
    resolvedAt: decision.resolvedAt,
  });
}
