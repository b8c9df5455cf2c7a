/**
 * The halt writes: the transactions that sign and store a halt or a resume under the row's
 * lock, and the read-back that checks the stored row holds what was signed.
 */
import { describeError, type Keyring, type Store, sql } from "@gov/core";
import { encodeWakeUp, HALT_CHANNEL } from "./halt-cache";
import {
  HALT_ROW_COLUMNS,
  type HaltChange,
  type HaltRow,
  type HaltState,
  signHaltState,
  unverifiableHalt,
  verifyHaltRow,
} from "./halt-state";

/**
 * The next version of an agent's halt state, taken under the row's lock: the next value of
 * the sequence, and never less than one past the row's own version (so that a sequence
 * reset in the table cannot make a new halt look older than the one it replaces).
 */
const NEXT_VERSION = sql.raw(
  "greatest(nextval('gov_presence.halt_version'), coalesce(halt_version, 0) + 1)::text",
);

/**
 * Write a signed halt of `agentId` (or find the halt in force, verified, and write nothing).
 * The wake-up is sent by the same statement that signs the row (delivered on commit).
 *
 * @returns `changed: false` with the halt in force when the agent was already halted.
 */
export function writeHalt(
  store: Pick<Store, "transaction">,
  keyring: Keyring,
  id: string,
  { haltedBy, reason }: { haltedBy: string; reason: string },
  now: Date,
): Promise<{ changed: boolean; change: HaltChange }> {
  const at = now.toISOString();
  return store.transaction(async (tx) => {
    // The version must be taken while this transaction holds the row lock, never
    // before: a version taken before waiting for a resume's lock would be older than
    // the resume's, and every cache would drop this halt as stale. The upsert locks the
    // row (whether it inserts or updates it) and its RETURNING, evaluated under that
    // lock, takes the version. Every writer of halt_version (halt and resume) takes it
    // under the row lock, so per agent the versions increase in commit order.
    const claimed = await tx.execute<{ version: string }>(sql`
      insert into gov_presence.agents (agent_id, status, last_seen, first_seen, halted_at, halted_by, halt_reason)
      values (${id}, 'unresponsive', null, ${at}::timestamptz, ${at}::timestamptz, ${haltedBy}, ${reason})
      on conflict (agent_id) do update set
        halted_at = excluded.halted_at,
        halted_by = excluded.halted_by,
        halt_reason = excluded.halt_reason
      where gov_presence.agents.halted_at is null
      returning ${NEXT_VERSION} as version`);
    let version = claimed.rows[0]?.version;
    if (version === undefined) {
      // Already halted: the conflicting row is locked by the upsert, so this reads the
      // halt in force, not a resume racing with us.
      const existing = await tx.execute<HaltRow>(
        sql`select ${HALT_ROW_COLUMNS} from gov_presence.agents where agent_id = ${id}`,
      );
      const row = existing.rows[0];
      if (row) {
        const verdict = verifyHaltRow(row, keyring);
        if (verdict.kind === "verified" && verdict.change.halt) {
          return { changed: false, change: verdict.change };
        }
      }
      // The halt in force cannot be verified — or the upsert wrote nothing (a trigger or a
      // rule discarded it): this halt, signed, takes its place. Whether the row holds it
      // is checked once it is committed.
      const next = await tx.execute<{ version: string }>(
        row
          ? sql`select ${NEXT_VERSION} as version from gov_presence.agents where agent_id = ${id}`
          : sql`select nextval('gov_presence.halt_version')::text as version`,
      );
      version = next.rows[0]?.version;
    }
    if (version === undefined) throw new Error("no halt version was taken");
    const change: HaltChange = {
      agentId: id,
      version: Number(version),
      halt: { agentId: id, haltedBy, haltedAt: now, reason },
    };
    const { mac, keyId } = signHaltState(keyring.current, id, change.version, {
      halted: true,
      by: haltedBy,
      at: now,
      reason,
    });
    // The wake-up is sent by the same statement (delivered on commit).
    await tx.execute(sql`
      update gov_presence.agents set
        halted_at = ${at}::timestamptz, halted_by = ${haltedBy}, halt_reason = ${reason},
        halt_version = ${version}::bigint, halt_mac = ${mac}, halt_key_id = ${keyId}
      where agent_id = ${id}
      returning pg_notify(${HALT_CHANNEL}, ${encodeWakeUp(id, change.version)})`);
    return { changed: true, change };
  });
}

/**
 * Write a signed resume of `agentId` in place of the halt in force (or of a state that cannot
 * be verified, enforced as a halt); nothing when the agent is not halted.
 *
 * @returns the halt lifted and the change written, or both null when nothing was written.
 * @throws {StoredStateMismatch} when the update that would lock the row was discarded and
 *   the row keeps its halt.
 */
export function writeResume(
  store: Pick<Store, "transaction">,
  keyring: Keyring,
  id: string,
  { resumedBy, reason }: { resumedBy: string; reason: string },
  now: Date,
): Promise<{ lifted: HaltState | null; change: HaltChange | null }> {
  const at = now.toISOString();
  return store.transaction(async (tx) => {
    // Lock the row and take the version under the lock, in one statement: like halt(),
    // the version is then newer than any halt committed before and older than any halt
    // that commits after. An UPDATE (that changes nothing) rather than SELECT … FOR
    // UPDATE, because its RETURNING is evaluated once the lock is held.
    const before = await tx.execute<HaltRow & { next_version: string }>(sql`
      update gov_presence.agents set halt_version = halt_version where agent_id = ${id}
      returning ${HALT_ROW_COLUMNS}, ${NEXT_VERSION} as next_version`);
    const row = before.rows[0];
    if (!row) {
      // No row was locked: the agent has none — or the update was discarded (a trigger
      // returned NULL, a rule did something else instead), and the row keeps its halt.
      const plain = await tx.execute<HaltRow>(
        sql`select ${HALT_ROW_COLUMNS} from gov_presence.agents where agent_id = ${id}`,
      );
      const found = plain.rows[0];
      const verdict = found ? verifyHaltRow(found, keyring) : null;
      if (
        verdict?.kind === "refused" ||
        (verdict?.kind === "verified" && verdict.change.halt !== null)
      ) {
        throw new StoredStateMismatch(
          "the stored row does not hold the resume: the update that would lock it was discarded (a trigger or a rule on gov_presence.agents), so the row keeps its halt",
        );
      }
      return { lifted: null, change: null };
    }
    const verdict = verifyHaltRow(row, keyring);
    if (verdict.kind === "none") return { lifted: null, change: null };
    if (verdict.kind === "verified" && !verdict.change.halt) {
      return { lifted: null, change: null };
    }
    // A halt in force — or a state that cannot be verified, enforced as a halt: lifting it
    // writes a signed resume in its place.
    const lifted =
      verdict.kind === "verified"
        ? (verdict.change.halt as HaltState)
        : unverifiableHalt(id, verdict.problem, now);
    const version = row.next_version;
    const change: HaltChange = { agentId: id, version: Number(version), halt: null };
    const { mac, keyId } = signHaltState(keyring.current, id, change.version, {
      halted: false,
      by: resumedBy,
      at: now,
      reason,
    });
    await tx.execute(sql`
      update gov_presence.agents set
        halted_at = null, halted_by = null, halt_reason = null,
        halt_version = ${version}::bigint, halt_mac = ${mac}, halt_key_id = ${keyId},
        resumed_at = ${at}::timestamptz, resumed_by = ${resumedBy}, resume_reason = ${reason}
      where agent_id = ${id}
      returning pg_notify(${HALT_CHANNEL}, ${encodeWakeUp(id, change.version)})`);
    return { lifted, change };
  });
}

/**
 * Read back the row a halt or resume was just committed to and check that it holds the
 * signed change: the same version and state, verified — or a newer verified change that
 * superseded it (another operator's, committed since: the caller applies it). A trigger, a rule or
 * a concurrent writer on the table can make a statement succeed and the row hold something
 * else; the write's own success says nothing about that.
 *
 * @returns `problem: null` when the row holds it (with `newer`, the change that superseded
 *   it, to apply); otherwise what it holds instead (or why it could not be read), for the
 *   error and the report.
 */
export async function readBackProblem(
  store: Pick<Store, "query">,
  keyring: Keyring,
  change: HaltChange,
): Promise<{ problem: string | null; newer: HaltChange | null }> {
  const what = change.halt ? "halt" : "resume";
  let rows: HaltRow[];
  try {
    rows = await store.query<HaltRow>(
      sql`select ${HALT_ROW_COLUMNS} from gov_presence.agents where agent_id = ${change.agentId}`,
    );
  } catch (error) {
    return {
      problem: `the stored row could not be read back to check that it holds the signed ${what} (${describeError(error)})`,
      newer: null,
    };
  }
  const row = rows[0];
  const verdict = row ? verifyHaltRow(row, keyring) : null;
  if (verdict?.kind === "verified") {
    if (verdict.change.version > change.version) return { problem: null, newer: verdict.change };
    if (verdict.change.version === change.version && sameHalt(verdict.change.halt, change.halt))
      return { problem: null, newer: null };
  }
  const holds =
    verdict === null
      ? "no row for the agent"
      : verdict.kind === "none"
        ? "no halt state"
        : verdict.kind === "refused"
          ? `a state that fails verification (${verdict.problem})`
          : `a signed ${verdict.change.halt ? "halt" : "resume"} at version ${verdict.change.version}`;
  return {
    problem: `the stored row does not hold the signed ${what} (version ${change.version}): it holds ${holds}. A trigger, a rule or another writer on gov_presence.agents changed or discarded it`,
    newer: null,
  };
}

/**
 * A write's statements succeeded, but what they found shows that the row does not hold the
 * change (an update was discarded): thrown inside the transaction, reported as `not_stored`.
 */
export class StoredStateMismatch extends Error {}

/** The same halt (who, when, why), or both none. */
function sameHalt(a: HaltState | null, b: HaltState | null): boolean {
  if (a === null || b === null) return a === b;
  return (
    a.haltedBy === b.haltedBy &&
    a.reason === b.reason &&
    a.haltedAt.getTime() === b.haltedAt.getTime()
  );
}
