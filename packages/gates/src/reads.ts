import { canonicalJson, constantTimeEqualHex, type SQL, sql } from "@gov/core";
import { ApprovalStoreError } from "./errors";
import { requestProblem } from "./integrity";
import { publicStatus, type RequestRow, ROW_COLUMNS, sha256 } from "./rows";
import type { GatesRuntime } from "./runtime";
import { requests } from "./schema";
import type { ApprovalRecord, PendingApproval } from "./types";

/**
 * Requests waiting for a decision, oldest first, their payloads re-hashed and their request
 * MACs checked (what `GatesModule.listPending` does, its options validated).
 */
export async function listPendingRequests(
  runtime: GatesRuntime,
  filter: { agentId?: string | undefined; kind?: string | undefined; limit: number },
): Promise<PendingApproval[]> {
  const { agentId, kind, limit } = filter;
  const nowMs = runtime.clock.nowMs();
  const now = new Date(nowMs).toISOString();
  const staleBefore = new Date(nowMs - runtime.options.staleClaimMs).toISOString();
  let rows: (RequestRow & { payload: unknown })[];
  try {
    rows = await runtime.store.query(sql`
      select ${ROW_COLUMNS}, payload from ${requests}
      where (status = 'pending'
          or (status in ('granting', 'denying') and resolved_at <= ${staleBefore}::timestamptz))
        and expires_at > ${now}::timestamptz
        ${agentId === undefined ? sql`` : sql`and agent_id = ${agentId}`}
        ${kind === undefined ? sql`` : sql`and kind = ${kind}`}
      order by created_at, request_id
      limit ${limit}`);
  } catch (error) {
    throw new ApprovalStoreError("read", null, error);
  }
  return rows.map((row) => pendingOf(runtime, row));
}

/** One request and where it stands, or null (what `GatesModule.getRequest` does). */
export function readRequest(runtime: GatesRuntime, id: string): Promise<ApprovalRecord | null> {
  return readRecord(runtime, sql`request_id = ${id}::uuid`, id);
}

/**
 * The request an agent made with a key for a kind of action, and where it stands, or null
 * (what `GatesModule.findRequest` does). One at most: the key is unique per agent and kind.
 */
export function findRequestByKey(
  runtime: GatesRuntime,
  lookup: { agentId: string; kind: string; key: string },
): Promise<ApprovalRecord | null> {
  return readRecord(
    runtime,
    sql`agent_id = ${lookup.agentId} and kind = ${lookup.kind} and request_key = ${lookup.key}`,
    null,
  );
}

/** The request the condition `where` selects, as a record, or null. */
async function readRecord(
  runtime: GatesRuntime,
  where: SQL,
  requestId: string | null,
): Promise<ApprovalRecord | null> {
  let rows: (RequestRow & { payload: unknown })[];
  try {
    rows = await runtime.store.query(sql`
      select ${ROW_COLUMNS}, payload from ${requests} where ${where} limit 1`);
  } catch (error) {
    throw new ApprovalStoreError("read", requestId, error);
  }
  const row = rows[0];
  if (!row) return null;
  return {
    ...pendingOf(runtime, row),
    status: publicStatus(row.status),
    reviewerId: row.reviewer_id ?? null,
    reason: row.reason ?? null,
    resolvedAt: row.resolved_at ? new Date(row.resolved_at) : null,
    executedAt: row.executed_at ? new Date(row.executed_at) : null,
  };
}

/**
 * A request row as the console sees it, its payload re-hashed and its request MAC checked: a
 * payload that no longer hashes to the action hash (changed in the database) is withheld; a
 * request that does not match its request MAC is flagged. Both are logged.
 */
function pendingOf(runtime: GatesRuntime, row: RequestRow & { payload: unknown }): PendingApproval {
  const requestId = row.request_id;
  const actionHash = row.action_hash;
  const stored: unknown =
    typeof row.payload === "string" ? JSON.parse(row.payload) : (row.payload ?? null);
  let intact: boolean;
  try {
    intact = constantTimeEqualHex(actionHash, sha256(canonicalJson(stored, "payload")));
  } catch {
    intact = false;
  }
  if (!intact)
    runtime.logger.error(
      "The stored payload of an approval request does not match its action hash (it was changed in the database); it is withheld. Deny the request.",
      { requestId },
    );
  const tokenVersion = Number(row.token_version) === 1 ? 1 : 2;
  const problem = requestProblem(runtime.keyring, {
    ...row,
    token_version: Number(row.token_version),
  });
  if (problem !== null)
    runtime.logger[row.request_mac === null ? "warn" : "error"](
      "An approval request does not match what was signed when it was made; it cannot be granted. Deny it.",
      { requestId, problem },
    );
  return {
    requestId,
    kind: row.kind,
    agentId: row.agent_id,
    actionHash,
    key: row.request_key,
    payload: intact ? stored : null,
    payloadIntact: intact,
    requestIntact: problem === null,
    createdAt: new Date(row.created_at),
    expiresAt: new Date(row.expires_at),
    tokenVersion,
  };
}
