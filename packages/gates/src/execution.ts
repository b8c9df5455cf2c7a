import { type AuditMetadata, constantTimeEqualHex, sql } from "@gov/core";
import type { z } from "zod";
import {
  ApprovalDenied,
  ApprovalPending,
  ApprovalStoreError,
  ApprovalTimeout,
  ApprovalTokenError,
  type ApprovalTokenReason,
} from "./errors";
import { APPROVAL_EVENT_KINDS } from "./events";
import { verifyDecision } from "./integrity";
import type { CanonicalPayload, requireApprovalOptionsSchema } from "./models";
import { record } from "./recorder";
import type { ApprovalRequest } from "./request";
import { readRow, requestMetadata, sha256 } from "./rows";
import type { GatesRuntime } from "./runtime";
import { requests } from "./schema";
import type {
  ApprovalDecision,
  ApprovalGatedFunction,
  RequestOptions,
  VerifyActionOptions,
  WaitForOptions,
} from "./types";

/** The options of `requireApproval()`, validated. */
export type CheckedRequireApprovalOptions = z.output<typeof requireApprovalOptionsSchema>;

/** The public steps a gated function takes: the module's own methods. */
export interface ApprovalSteps {
  request(kind: string, agentId: string, options?: RequestOptions): Promise<ApprovalRequest>;
  waitFor(requestId: string, options?: WaitForOptions): Promise<true>;
  verifyAction(
    requestId: string,
    payload: unknown,
    options?: VerifyActionOptions,
  ): Promise<ApprovalDecision>;
}

/**
 * Check that the action about to run is the one approved, and — with `consume` — mark it
 * executed, atomically (what `GatesModule.verifyAction` does, its input validated).
 */
export async function verifyExecution(
  runtime: GatesRuntime,
  id: string,
  checked: CanonicalPayload,
  expected: { kind?: string | undefined; agentId?: string | undefined; consume: boolean },
): Promise<ApprovalDecision> {
  const row = await readRow(runtime.store, id);
  if (!row) throw new ApprovalTokenError({ reason: "unknown_request", requestId: id });
  const refuse = async (reason: ApprovalTokenReason, extra: AuditMetadata, note: string) => {
    await record(runtime, row.agent_id, APPROVAL_EVENT_KINDS.refused, {
      ...requestMetadata(row),
      attempt: "execute",
      reason,
      ...extra,
    });
    return new ApprovalTokenError({ reason, requestId: id, note });
  };
  // A decision is checked before any of its row's fields is believed (kind, agent, expiry…).
  if (row.status === "granted" || row.status === "denied") {
    try {
      verifyDecision(runtime, row);
    } catch (error) {
      await record(runtime, row.agent_id, APPROVAL_EVENT_KINDS.refused, {
        ...requestMetadata(row),
        attempt: "execute",
        reason: "decision_integrity",
      });
      throw error;
    }
  }
  if (
    (expected.kind !== undefined && expected.kind !== row.kind) ||
    (expected.agentId !== undefined && expected.agentId !== row.agent_id)
  )
    throw await refuse(
      "request_mismatch",
      {
        ...(expected.kind === undefined ? {} : { expectedKind: expected.kind }),
        ...(expected.agentId === undefined ? {} : { expectedAgentId: expected.agentId }),
      },
      `It was requested as ${JSON.stringify(row.kind)} by agent ${JSON.stringify(row.agent_id)}; expected ${[
        expected.kind === undefined ? null : `kind ${JSON.stringify(expected.kind)}`,
        expected.agentId === undefined ? null : `agent ${JSON.stringify(expected.agentId)}`,
      ]
        .filter(Boolean)
        .join(" and ")}.`,
    );
  if (row.status === "denied") throw new ApprovalDenied(id, row.reviewer_id, row.reason);
  if (row.status === "expired")
    throw new ApprovalTimeout({ requestId: id, timeoutMs: 0, expired: true });
  if (row.status !== "granted") {
    if (row.status === "pending" && Date.parse(row.expires_at) <= runtime.clock.nowMs())
      throw new ApprovalTimeout({ requestId: id, timeoutMs: 0, expired: true });
    throw new ApprovalPending(id);
  }
  const presented = sha256(checked.canonical);
  if (!constantTimeEqualHex(row.action_hash, presented))
    throw await refuse(
      "action_hash_mismatch",
      { presentedActionHash: presented },
      "What is about to run is not what was approved.",
    );
  if (row.executed_at !== null)
    throw await refuse(
      "already_executed",
      { executedAt: row.executed_at },
      `It ran at ${row.executed_at}.`,
    );
  const now = runtime.clock.now();
  const expiredNote = `The request expired at ${row.expires_at}; an approval runs only before its request's expiry.`;
  if (Date.parse(row.expires_at) <= now.getTime()) throw await refuse("expired", {}, expiredNote);
  if (expected.consume) {
    let rows: { request_id: string }[];
    try {
      rows = await runtime.store.query<{ request_id: string }>(sql`
        update ${requests} set executed_at = ${now.toISOString()}::timestamptz
        where request_id = ${id}::uuid and status = 'granted' and executed_at is null
          and expires_at > ${now.toISOString()}::timestamptz
          and decision_mac = ${row.decision_mac} and action_hash = ${row.action_hash}
          and kind = ${row.kind} and agent_id = ${row.agent_id}
          and expires_at = ${row.expires_at}::timestamptz
        returning request_id::text as request_id`);
    } catch (error) {
      throw new ApprovalStoreError("consume", id, error);
    }
    if (rows.length === 0) {
      // Another execution won (or the row changed under us): read which.
      const current = await readRow(runtime.store, id);
      if (current?.executed_at)
        throw await refuse(
          "already_executed",
          { executedAt: current.executed_at },
          `It ran at ${current.executed_at}.`,
        );
      if (current && Date.parse(current.expires_at) <= now.getTime())
        throw await refuse("expired", {}, expiredNote);
      throw new ApprovalStoreError(
        "consume",
        id,
        new Error("the request changed while it was being marked executed"),
      );
    }
    // Evidence of each execution: the executed marker is protected by the trigger only, so
    // a run after the marker was cleared in the table shows here as a second one.
    await record(runtime, row.agent_id, APPROVAL_EVENT_KINDS.executed, {
      ...requestMetadata(row),
      reviewerId: row.reviewer_id,
      resolvedAt: row.resolved_at,
      executedAt: now.toISOString(),
    });
  }
  return {
    requestId: id,
    kind: row.kind,
    agentId: row.agent_id,
    actionHash: row.action_hash,
    decision: "granted",
    reviewerId: row.reviewer_id as string,
    reason: row.reason,
    resolvedAt: new Date(row.resolved_at as string),
  };
}

/**
 * Wrap `fn` behind a human approval (what `GatesModule.requireApproval` does, its options
 * validated): each call opens a request, delivers it, and runs `fn` once it is granted.
 */
export function gateFunction<Args extends unknown[], Result>(
  gates: ApprovalSteps,
  checked: CheckedRequireApprovalOptions,
  fn: (...args: Args) => Result,
): ApprovalGatedFunction<Args, Result> {
  const payloadOf = (args: Args): unknown =>
    checked.payload ? (checked.payload as (...values: Args) => unknown)(...args) : { args };
  // Executing checks the request against this wrapper, not only the payload.
  const consume = (requestId: string, payload: unknown) =>
    gates.verifyAction(requestId, payload, { kind: checked.kind, agentId: checked.agentId });
  const gated = async function (this: unknown, ...args: Args): Promise<Awaited<Result>> {
    const payload = payloadOf(args);
    const request = await gates.request(checked.kind, checked.agentId, {
      payload,
      ...(checked.expiresInMs === undefined ? {} : { expiresInMs: checked.expiresInMs }),
    });
    if (!request.stored)
      throw new ApprovalStoreError(
        "request",
        request.requestId,
        new Error("the request was not stored"),
      );
    if (checked.onRequest)
      await (checked.onRequest as (request: ApprovalRequest) => unknown)(request);
    if (!checked.blocking) throw new ApprovalPending(request.requestId);
    await gates.waitFor(
      request.requestId,
      checked.timeoutMs === undefined ? {} : { timeoutMs: checked.timeoutMs },
    );
    await consume(request.requestId, payload);
    return await fn.apply(this, args);
  } as ApprovalGatedFunction<Args, Result>;
  gated.resume = async function (
    this: unknown,
    requestId: string,
    ...args: Args
  ): Promise<Awaited<Result>> {
    await consume(requestId, payloadOf(args));
    return await fn.apply(this, args);
  };
  return gated;
}
