import { createHash } from "node:crypto";
import { type AuditMetadata, type SQL, type Store, sql } from "@gov/core";
import { getTableColumns } from "drizzle-orm";
import { ApprovalStoreError } from "./errors";
import { requests } from "./schema";
import type { SignedRequest } from "./signatures";
import type { ApprovalStatus } from "./types";

/**
 * A row of `gov_gates.requests` as the module reads it (every column but the payload, by its
 * SQL name): timestamps as ISO-8601 strings in UTC with milliseconds, the request id as text.
 * Its keys are checked against the drizzle table ({@link requests}) by the compiler, and
 * against the migrated database by `rows.test.ts`, on both engines.
 */
export type RequestRow = {
  request_id: string;
  kind: string;
  agent_id: string;
  action_hash: string;
  key_id: string;
  token_digest: string;
  token_version: number;
  status: string;
  expires_at: string;
  created_at: string;
  resolved_at: string | null;
  reviewer_id: string | null;
  reason: string | null;
  decision_key_id: string | null;
  decision_mac: string | null;
  executed_at: string | null;
  operator_id: string | null;
  operator_lookup: string | null;
  request_mac: string | null;
  request_key: string | null;
};

type RequestColumns = (typeof requests)["_"]["columns"];
/** The SQL names of the columns of `gov_gates.requests`, from the drizzle table. */
export type RequestColumnName = RequestColumns[keyof RequestColumns]["_"]["name"];
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
/** Fails to compile when {@link RequestRow} and the drizzle table name different columns. */
const rowMatchesTable: Same<
  keyof RequestRow & string,
  Exclude<RequestColumnName, "payload">
> = true;
void rowMatchesTable;

/** A timestamp column as the ISO-8601 string `Date` parses (UTC, milliseconds). */
export const ISO = (column: string) =>
  `to_char(${column} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;

/** The columns of a {@link RequestRow}, as a select list: the table's columns but the payload. */
export const ROW_COLUMN_NAMES: readonly string[] = Object.values(getTableColumns(requests))
  .map((column) => column.name)
  .filter((name) => name !== "payload");

/** The select list that reads a {@link RequestRow}. */
export const ROW_COLUMNS: SQL = sql.raw(
  Object.values(getTableColumns(requests))
    .filter((column) => column.name !== "payload")
    .map((column) => {
      if (column.columnType === "PgUUID") return `${column.name}::text as ${column.name}`;
      if (column.columnType === "PgTimestampString") return `${ISO(column.name)} as ${column.name}`;
      return column.name;
    })
    .join(", "),
);

/** The status a claim moves a request to, per decision. */
export const CLAIM_STATUS = { granted: "granting", denied: "denying" } as const;

/** Whether a status is a claim (`granting` / `denying`): a decision being recorded. */
export function isClaim(status: string): boolean {
  return status === CLAIM_STATUS.granted || status === CLAIM_STATUS.denied;
}

/** A stored status as the API reports it: a claim is `resolving`. */
export function publicStatus(status: string): ApprovalStatus {
  if (status === "granting" || status === "denying") return "resolving";
  return status as ApprovalStatus;
}

/** The fields of a row that its request MAC (and its decision MAC) sign. */
export function signedRequestOf(row: RequestRow): SignedRequest {
  return {
    requestId: row.request_id,
    kind: row.kind,
    agentId: row.agent_id,
    actionHash: row.action_hash,
    tokenVersion: row.token_version,
    keyId: row.key_id,
    tokenDigest: row.token_digest,
    createdAt: row.created_at,
    expiresAt: row.expires_at,
    operatorId: row.operator_id,
    operatorLookup: row.operator_lookup,
    key: row.request_key,
  };
}

/** What every approval event names about its request. */
export function requestMetadata(row: RequestRow): AuditMetadata {
  return { requestId: row.request_id, kind: row.kind, actionHash: row.action_hash };
}

/** SHA-256 (hex) of `text` as UTF-8: the action hash of a canonical payload. */
export function sha256(text: string): string {
  return createHash("sha256").update(text, "utf8").digest("hex");
}

/** One request's row, or null when it is not stored; the store's error is thrown as it is. */
export async function readRowRaw(store: Store, requestId: string): Promise<RequestRow | null> {
  const rows = await store.query<RequestRow>(
    sql`select ${ROW_COLUMNS} from ${requests} where request_id = ${requestId}::uuid`,
  );
  const row = rows[0];
  if (!row) return null;
  row.token_version = Number(row.token_version);
  return row;
}

/**
 * One request's row, or null when it is not stored.
 * @throws {ApprovalStoreError} (`read`) the database could not be read.
 */
export async function readRow(store: Store, requestId: string): Promise<RequestRow | null> {
  try {
    return await readRowRaw(store, requestId);
  } catch (error) {
    throw new ApprovalStoreError("read", requestId, error);
  }
}
