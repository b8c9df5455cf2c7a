import { InvalidArgumentError, type SQL, sql, type VerifyingKey } from "@gov/core";
import { parseCheckpoint, type StoredCheckpoint } from "./checkpoint-signing";
import type { KeyHistory } from "./key-history";
import { chainWindow, type VerifyChainOptions } from "./options";
import { KEY_ROTATED_KIND } from "./rotation-record";
import {
  type CheckpointRow,
  checkpointsQuery,
  EVENT_COLUMNS,
  PAGE,
  type RawRow,
  toStoredCheckpoint,
  toStoredRow,
} from "./sql";
import type { AuditState } from "./state";
import { SYSTEM_CHAIN } from "./system-events";
import { type VerificationReport, WITNESS_CHAIN } from "./verification-report";
import { ChainVerifier, type StoredRow } from "./verify";
import { type CheckpointWitness, FileCheckpointWitness, toWitness } from "./witness";

/**
 * Verify the chains in the database (all, one, or a window of one) with a
 * {@link ChainVerifier}: the key rotation history first, then the checkpoints (and the
 * witness's), then every row in keyset pages, then the chains only checkpoints remember.
 * In strict mode the first failure rejects with `ChainIntegrityError`; `onRow` sees every
 * row as it is checked.
 */
export async function verifyStoredChains(
  state: AuditState,
  history: KeyHistory,
  verifyingKeys: readonly VerifyingKey[],
  options: VerifyChainOptions,
  strict: boolean,
  onRow?: (row: StoredRow) => void,
): Promise<VerificationReport> {
  const { store } = state;
  const { chain, fromSeq, toSeq } = chainWindow(options);
  const requireSignature = options.requireSignedCheckpoints ?? false;
  if (typeof requireSignature !== "boolean") {
    throw new InvalidArgumentError(
      "requireSignedCheckpoints",
      "must be true or false.",
      "Pass requireSignedCheckpoints: true to refuse checkpoints signed with the HMAC only.",
    );
  }
  const witness = options.witness === undefined ? null : toWitness(options.witness, "witness");
  const verifier = new ChainVerifier(state.keyring, { strict, verifyingKeys, requireSignature });
  // The key rotation history comes first: every row's key is held to it.
  verifier.keyHistory(await history.rotations(), await recordedRotations(state));
  const checkpoints = await storedCheckpoints(state, chain);
  if (witness) await witnessed(state, witness, chain, checkpoints, verifier);
  let current: string | null = null;
  const scope =
    chain !== undefined
      ? sql`chain = ${chain} and seq >= ${fromSeq} and seq <= ${toSeq}`
      : sql`true`;
  // Keyset pages over the (chain, seq) index. Rows sharing one seq (only tampering makes
  // them) must be checked together, so a full page leaves its last (chain, seq) group to
  // the next one, unless the group fills the whole page.
  type Cursor = { chain: string; seq: number; inclusive: boolean };
  const page = (cursor: Cursor | null) => {
    const after: SQL = cursor
      ? cursor.inclusive
        ? sql`and (chain, seq) >= (${cursor.chain}, ${cursor.seq})`
        : sql`and (chain, seq) > (${cursor.chain}, ${cursor.seq})`
      : sql``;
    return store.query<RawRow>(sql`
        select ${EVENT_COLUMNS}
        from gov_audit.events where ${scope} ${after}
        order by chain, seq, event_id limit ${PAGE}`);
  };
  let next: Promise<RawRow[]> | null = page(null);
  while (next) {
    let rows: RawRow[] = await next;
    next = null;
    const last = rows.at(-1);
    if (last && rows.length === PAGE) {
      const boundary = { chain: last.chain, seq: Number(last.seq) };
      const group = rows.filter(
        (row) => row.chain === boundary.chain && Number(row.seq) === boundary.seq,
      ).length;
      const whole = group === rows.length;
      if (!whole) rows = rows.slice(0, rows.length - group);
      // Read the next page while this one is checked.
      next = page({ ...boundary, inclusive: !whole });
      next.catch(() => undefined); // awaited on the next turn; an error surfaces there
    }
    for (const raw of rows) {
      const row = toStoredRow(raw);
      if (row.chain !== current) {
        if (current !== null) verifier.endChain(true);
        current = row.chain;
        const predecessor =
          chain !== undefined && fromSeq > 1 ? await rowAt(state, chain, fromSeq - 1) : null;
        verifier.beginChain(
          row.chain,
          checkpoints.get(row.chain) ?? [],
          chain !== undefined && fromSeq > 1 ? { fromSeq, predecessor } : undefined,
        );
      }
      verifier.row(row);
      onRow?.(row);
    }
  }
  if (current !== null) {
    verifier.endChain(options.toSeq === undefined);
  } else if (chain !== undefined) {
    // No rows in the window: past the chain's end (nothing to verify), or rows deleted —
    // which the rows after the window, or a checkpoint, show.
    const [last] = await store.query<{ head: number | string | null }>(
      sql`select max(seq) as head from gov_audit.events where chain = ${chain}`,
    );
    verifier.emptyWindow(chain, checkpoints.get(chain) ?? [], {
      fromSeq,
      toSeq,
      head: Number(last?.head ?? 0),
      predecessor: fromSeq > 1 ? await rowAt(state, chain, fromSeq - 1) : null,
      complete: options.toSeq === undefined,
    });
  }
  // Chains that only checkpoints remember (every row deleted).
  if (chain === undefined) {
    const seen = await store.query<{ chain: string }>(
      sql`select distinct chain from gov_audit.events`,
    );
    const present = new Set(seen.map((row) => row.chain));
    for (const [name, list] of checkpoints) {
      if (present.has(name)) continue;
      verifier.beginChain(name, list);
      verifier.endChain(true);
    }
  }
  return verifier.report();
}

/** The `audit.key_rotated` events of the chain `agent:gov.audit`, as stored. */
async function recordedRotations(state: AuditState): Promise<StoredRow[]> {
  const rows = await state.store.query<RawRow>(sql`
      select ${EVENT_COLUMNS}
      from gov_audit.events
      where chain = ${SYSTEM_CHAIN} and kind = ${KEY_ROTATED_KIND}
      order by seq`);
  return rows.map(toStoredRow);
}

async function rowAt(
  state: AuditState,
  chain: string,
  seq: number,
): Promise<{ seq: number; hmac: string } | null> {
  const rows = await state.store.query<{ hmac: string }>(
    sql`select hmac from gov_audit.events where chain = ${chain} and seq = ${seq} order by event_id limit 1`,
  );
  return rows[0] ? { seq, hmac: rows[0].hmac } : null;
}

async function storedCheckpoints(
  state: AuditState,
  chain: string | undefined,
): Promise<Map<string, StoredCheckpoint[]>> {
  const rows = await state.store.query<CheckpointRow>(checkpointsQuery(chain));
  const byChain = new Map<string, StoredCheckpoint[]>();
  for (const row of rows) {
    const list = byChain.get(row.chain) ?? [];
    list.push(toStoredCheckpoint(row));
    byChain.set(row.chain, list);
  }
  return byChain;
}

/**
 * Add what a witness kept to the checkpoints to verify against (of `chain`, or of every
 * chain): the verifier then believes each entry only if its signature verifies, and
 * compares it with the database. An entry that is JSON but not a checkpoint is a failure;
 * a line that is not even JSON (raw text: torn by a crash or a full disk, or overwritten)
 * is counted as damaged and warned about — it hides nothing that deleting it would not.
 */
async function witnessed(
  state: AuditState,
  witness: CheckpointWitness,
  chain: string | undefined,
  checkpoints: Map<string, StoredCheckpoint[]>,
  verifier: ChainVerifier,
): Promise<void> {
  let entry = 0;
  let damaged = 0;
  for await (const value of witness.read(chain === undefined ? {} : { chain })) {
    entry++;
    if (typeof value === "string") {
      damaged++;
      continue;
    }
    const checkpoint = parseCheckpoint(value);
    if (!checkpoint) {
      verifier.witnessDamaged(
        chain ?? WITNESS_CHAIN,
        entry,
        "is not a checkpoint (damaged or edited)",
      );
      continue;
    }
    if (chain !== undefined && checkpoint.chain !== chain) continue;
    const list = checkpoints.get(checkpoint.chain) ?? [];
    list.push({ ...checkpoint, source: "witness" });
    checkpoints.set(checkpoint.chain, list);
  }
  verifier.witnessRead(entry, damaged);
  if (damaged > 0) {
    state.logger.warn(
      `The checkpoint witness has ${damaged} damaged line${damaged === 1 ? "" : "s"} (not JSON: torn by a crash or a full disk in the middle of an append, or overwritten); ${damaged === 1 ? "it was" : "they were"} skipped. A checkpoint lost in a damaged line is still in the database; check the witness's copies if this was not a crash.`,
      {
        witness: witness instanceof FileCheckpointWitness ? witness.path : "custom",
        damagedLines: damaged,
        entries: entry,
      },
    );
  }
}
