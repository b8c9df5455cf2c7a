import { advisoryLockKey, type SQL, StoreError, sql, toStoreError } from "@gov/core";
import type { StoredCheckpoint } from "./checkpoint-signing";
import type { StoredRotation } from "./rotation-record";
import type { StoredRow } from "./verify";

/**
 * The raw SQL of the audit module: the hot paths (appends, verification pages) and the key
 * rotation history, with the row types they read. `sql.test.ts` checks each column list
 * against the migrated database, on both engines.
 */

/** Rows read at once (verification pages, checkpoint inserts). */
export const PAGE = 5_000;

/** The prefix of a chain's advisory lock key. */
const CHAIN_LOCK = "gov_audit:chain:";

/** The SQLSTATE with which the database refuses rows or checkpoints of a retired key. */
export const RETIRED_KEY_STATE = "GA002";

/** Held while a key rotation reads the history and records itself, across processes. */
export const ROTATION_LOCK = advisoryLockKey("gov_audit:key_rotation").toString();

/** A row of `gov_audit.events` as {@link EVENT_COLUMNS} selects it. */
export interface RawRow extends Record<string, unknown> {
  event_id: string;
  chain: string;
  seq: number | string;
  prev_hash: string | null;
  hmac: string;
  key_id: string;
  created_at: string;
  agent_id: string;
  kind: string;
  session_id: string | null;
  parent_event_id: string | null;
  payload: string;
}

/** The columns of `gov_audit.events` that verification reads, as {@link RawRow}. */
export const EVENT_COLUMNS =
  sql.raw(`event_id::text as event_id, chain, seq, prev_hash, hmac, key_id,
  to_char(created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as created_at,
  agent_id, kind, session_id, parent_event_id::text as parent_event_id, payload`);

export function toStoredRow(raw: RawRow): StoredRow {
  return {
    eventId: raw.event_id,
    chain: raw.chain,
    seq: Number(raw.seq),
    prevHash: raw.prev_hash,
    hmac: raw.hmac,
    keyId: raw.key_id,
    createdAt: raw.created_at,
    agentId: raw.agent_id,
    kind: raw.kind,
    sessionId: raw.session_id,
    parentEventId: raw.parent_event_id,
    payload: raw.payload,
  };
}

/** How many of the newest rows the start-up check of head keys looks at. */
export const RECENT_ROWS = 1_000;

/**
 * The keys that signed the heads of the chains written most recently: of the newest
 * {@link RECENT_ROWS} rows (the `events_created` index), each chain's last, counted by key.
 */
export const RECENT_HEAD_KEYS_QUERY = sql`
  select key_id, count(*)::int as chains from (
    select distinct on (chain) chain, key_id from (
      select chain, seq, key_id from gov_audit.events order by created_at desc limit ${RECENT_ROWS}
    ) recent order by chain, seq desc
  ) heads group by key_id order by key_id`;

/** A row of `gov_audit.key_rotations` as {@link ROTATIONS_QUERY} selects it. */
export interface RotationRow extends Record<string, unknown> {
  rotation_id: string;
  old_key_id: string;
  new_key_id: string;
  rotated_at: string;
  payload: string;
  hmac_old: string;
  hmac_new: string;
}

/** The key rotation history, oldest first. */
export const ROTATIONS_QUERY = sql`
  select rotation_id::text as rotation_id, old_key_id, new_key_id,
    to_char(rotated_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as rotated_at,
    payload, hmac_old, hmac_new
  from gov_audit.key_rotations order by rotated_at, rotation_id`;

export function toStoredRotation(row: RotationRow): StoredRotation {
  return {
    rotationId: row.rotation_id,
    oldKeyId: row.old_key_id,
    newKeyId: row.new_key_id,
    rotatedAt: row.rotated_at,
    payload: row.payload,
    hmacOld: row.hmac_old,
    hmacNew: row.hmac_new,
  };
}

/** A row of `gov_audit.checkpoints` as {@link checkpointsQuery} selects it. */
export interface CheckpointRow extends Record<string, unknown> {
  checkpoint_id: string;
  chain: string;
  seq: number | string;
  hash: string;
  created_at: string;
  key_id: string;
  hmac: string;
  payload: string;
  signature: string | null;
  signing_key_id: string | null;
}

/** The checkpoints of one chain, or of every chain. */
export function checkpointsQuery(chain: string | undefined): SQL {
  return sql`
      select checkpoint_id::text as checkpoint_id, chain, seq, hash,
        to_char(created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as created_at, key_id, hmac, payload,
        signature, signing_key_id
      from gov_audit.checkpoints ${chain !== undefined ? sql`where chain = ${chain}` : sql``}`;
}

export function toStoredCheckpoint(row: CheckpointRow): StoredCheckpoint {
  return {
    checkpointId: row.checkpoint_id,
    chain: row.chain,
    seq: Number(row.seq),
    hash: row.hash,
    createdAt: row.created_at,
    keyId: row.key_id,
    hmac: row.hmac,
    payload: row.payload,
    signature: row.signature,
    signingKeyId: row.signing_key_id,
    source: "database",
  };
}

/** A checkpoint as it is inserted (see {@link insertCheckpoints}). */
export type CheckpointInsert = Required<Omit<StoredCheckpoint, "source">>;

/** One statement that inserts a page of checkpoints. */
export function insertCheckpoints(page: readonly CheckpointInsert[]): SQL {
  return sql`
          insert into gov_audit.checkpoints (checkpoint_id, chain, seq, hash, created_at, key_id, hmac, payload, signature, signing_key_id)
          select * from unnest(
            ${sql.param(page.map((row) => row.checkpointId))}::uuid[], ${sql.param(page.map((row) => row.chain))}::text[],
            ${sql.param(page.map((row) => row.seq))}::bigint[], ${sql.param(page.map((row) => row.hash))}::text[],
            ${sql.param(page.map((row) => row.createdAt))}::timestamptz[], ${sql.param(page.map((row) => row.keyId))}::text[],
            ${sql.param(page.map((row) => row.hmac))}::text[], ${sql.param(page.map((row) => row.payload))}::text[],
            ${sql.param(page.map((row) => row.signature))}::text[], ${sql.param(page.map((row) => row.signingKeyId))}::text[])`;
}

/** Advisory lock keys of chains, in the order every writer takes them. */
export interface ChainLock {
  chain: string;
  key: string;
}

export function sortedLocks(chains: readonly string[]): ChainLock[] {
  return chains
    .map((chain) => ({ chain, key: advisoryLockKey(`${CHAIN_LOCK}${chain}`) }))
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
    .map(({ chain, key }) => ({ chain, key: key.toString() }));
}

/** One call of `gov_audit.append` (drizzle/0002_append_function.sql): lock, insert, move the heads. */
export function appendStatement(locks: readonly ChainLock[], rows: string): SQL {
  const keys = locks.map((lock) => lock.key);
  return sql`select gov_audit.append(${sql.param(keys)}::bigint[], ${rows}::json)`;
}

/** The locked path's first statement: lock the chains and read their heads. */
export function lockHeadsStatement(locks: readonly ChainLock[]): SQL {
  return sql`select chain, seq, hmac from gov_audit.lock_heads(${sql.param(locks.map((lock) => lock.chain))}::text[], ${sql.param(locks.map((lock) => lock.key))}::bigint[])`;
}

/** Rebuild the derived heads of `chains` from the chain itself. */
export function rebuildHeadsStatement(chains: readonly string[]): SQL {
  return sql`
        insert into gov_audit.heads (chain, seq, hmac, event_id)
        select distinct on (chain) chain, seq, hmac, event_id from gov_audit.events
        where chain = any(${sql.param([...chains])}::text[]) order by chain, seq desc
        on conflict (chain) do update set seq = excluded.seq, hmac = excluded.hmac, event_id = excluded.event_id`;
}

/** Which of these events are in the chain already (a replay interrupted by a crash). */
/** One row from the database: whether it answers at all (the spool's replay asks first). */
export function probeQuery(): SQL {
  return sql`select 1 as up`;
}

export function presentEventsQuery(eventIds: readonly string[]): SQL {
  return sql`select event_id::text from gov_audit.events where event_id = any(${sql.param([...eventIds])}::uuid[])`;
}

export function isUniqueViolation(error: unknown): boolean {
  const classified = toStoreError(error);
  return StoreError.isInstance(classified) && classified.kind === "unique";
}

/** Whether the database refused a row or checkpoint because its key is retired (0004_retired_keys.sql). */
export function isRetiredKeyRefusal(error: unknown): boolean {
  return StoreError.isInstance(error) && error.sqlState === RETIRED_KEY_STATE;
}
