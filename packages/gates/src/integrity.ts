import type { Keyring, Logger } from "@gov/core";
import { ApprovalIntegrityError } from "./errors";
import { type RequestRow, signedRequestOf } from "./rows";
import {
  decisionMacInput,
  format1DecisionMacInput,
  format2DecisionMacInput,
  requestMacInput,
  type SignedDecision,
} from "./signatures";

/** What checking a stored row needs: the keys, and where to log a failure. */
export interface IntegrityContext {
  readonly keyring: Keyring;
  readonly logger: Logger;
}

/**
 * Check a granted or denied row against its decision MAC, under the key its request was
 * issued under (and no other). The MAC covers the decision and every field of the request
 * ({@link decisionMacInput}) and is written only when a decision is published, so a claim —
 * released or not — copied into the row does not verify. A grant signed in the format of an
 * earlier version is refused: format 2 was written with the claim (a released claim put back
 * looks the same), format 1 did not cover the expiry. A denial in either format stands (it can
 * only stop an action).
 * @throws {ApprovalIntegrityError} (`subject: "decision"`).
 */
export function verifyDecision(context: IntegrityContext, row: RequestRow): void {
  const id = row.request_id;
  const fail = (problem: string) => integrityFailure(context.logger, id, problem, "decision");
  if (!row.decision_key_id || !row.decision_mac || !row.reviewer_id || !row.resolved_at)
    throw fail("it has no signed decision.");
  // A decision is signed under the key its request (its token) was issued under, and
  // accepted under that key only: another key of the keyring — a retired one, say — cannot
  // approve a request that it did not issue.
  if (row.decision_key_id !== row.key_id)
    throw fail(
      `it was signed by key ${row.decision_key_id}, not by the key the request was issued under (${row.key_id}).`,
    );
  const key = context.keyring.find(row.decision_key_id);
  if (!key || key.id !== row.decision_key_id)
    throw fail(`it was signed by key ${row.decision_key_id}, which is not in the keyring.`);
  const request = signedRequestOf(row);
  const decision: SignedDecision = {
    decision: row.status as "granted" | "denied",
    reviewerId: row.reviewer_id,
    reason: row.reason,
    resolvedAt: row.resolved_at,
  };
  if (key.verifyHex(decisionMacInput(request, decision), row.decision_mac)) return;
  if (key.verifyHex(format2DecisionMacInput(request, decision), row.decision_mac)) {
    if (row.status === "denied") return;
    throw fail(
      "it is a grant signed in the format of an earlier version of @gov/gates, which signed a decision when it was claimed — before it was recorded in the audit chain — so it cannot be told apart from a released claim put back in the table. Open a new request.",
    );
  }
  if (key.verifyHex(format1DecisionMacInput(request, decision), row.decision_mac)) {
    if (row.status === "denied") return;
    throw fail(
      "it is a grant signed in the format of an earlier version of @gov/gates, which does not cover the request's expiry, token or operator, so it cannot be told apart from one revived in the table. Open a new request.",
    );
  }
  throw fail(
    "its MAC does not match its fields (the row was changed, or a claim that never took effect was put back as a decision).",
  );
}

/**
 * Why a row does not match what was signed when its request was made, or null when it does:
 * no request MAC (made by an earlier version, or erased), its key not in the keyring, or a
 * field changed.
 */
export function requestProblem(keyring: Keyring, row: RequestRow): string | null {
  if (row.request_mac === null)
    return "it is not signed (it was made by an earlier version of @gov/gates, or its request MAC was erased), so its kind, agent, expiry and operator cannot be verified.";
  const key = keyring.find(row.key_id);
  if (!key || key.id !== row.key_id)
    return `it was issued under key ${row.key_id}, which is not in the keyring.`;
  if (!key.verifyHex(requestMacInput(signedRequestOf(row)), row.request_mac))
    return "its MAC does not match its fields (the row was changed).";
  return null;
}

/** An integrity failure, logged (the request id and the problem; never a MAC). */
export function integrityFailure(
  logger: Logger,
  requestId: string,
  problem: string,
  subject: "request" | "decision",
): ApprovalIntegrityError {
  logger.error(`A stored approval ${subject} does not verify; it is refused.`, {
    requestId,
    problem,
  });
  return new ApprovalIntegrityError(requestId, problem, subject);
}
