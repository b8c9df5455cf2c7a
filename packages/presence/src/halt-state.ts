import { type ChainKey, canonicalJson, KEY_ID_LENGTH, type Keyring, sql } from "@gov/core";

/** An operator's halt of an agent, as recorded. */
export interface HaltState {
  agentId: string;
  /** The operator who halted it; {@link UNVERIFIABLE_HALTED_BY} for a halt state that failed verification. */
  haltedBy: string;
  /** When it was halted (or when its stored state was first found unverifiable). */
  haltedAt: Date;
  /** Why. */
  reason: string;
}

/** A halt or resume (`halt: null`) at its place in the order of the agent's changes. */
export interface HaltChange {
  agentId: string;
  version: number;
  halt: HaltState | null;
}

/**
 * The `haltedBy` of the halt enforced for an agent whose stored halt state failed
 * verification (edited in the table, signed by a key that is not in the keyring, or written
 * before halts were signed): such an agent is treated as halted, fail-closed.
 */
export const UNVERIFIABLE_HALTED_BY = "(unverifiable halt state)";

/** What a halt or resume signs, besides the agent and the version. */
export interface SignedHaltFields {
  /** True for a halt, false for a resume. */
  halted: boolean;
  /** The operator who halted or resumed the agent. */
  by: string;
  /** When. */
  at: Date;
  /** Why. */
  reason: string;
}

const PAYLOAD_TYPE = "gov.presence.halt-state";

/**
 * The bytes a halt or resume is signed over: the canonical JSON of everything a halt check
 * relies on — the agent, the version that orders its changes, whether it is halted, and who,
 * when and why. A MAC over it cannot be moved to another agent, another version or another
 * state.
 */
export function haltStatePayload(
  agentId: string,
  version: number,
  fields: SignedHaltFields,
): string {
  return canonicalJson({
    type: PAYLOAD_TYPE,
    v: 1,
    agentId,
    version: String(version),
    halted: fields.halted,
    by: fields.by,
    at: fields.at.toISOString(),
    reason: fields.reason,
  });
}

/** The MAC of a halt or resume under `key`, and the key's id, as stored in the row. */
export function signHaltState(
  key: ChainKey,
  agentId: string,
  version: number,
  fields: SignedHaltFields,
): { mac: string; keyId: string } {
  return { mac: key.hmacHex(haltStatePayload(agentId, version, fields)), keyId: key.id };
}

/** The halt columns of a `gov_presence.agents` row, as {@link HALT_ROW_COLUMNS} selects them. */
export interface HaltRow extends Record<string, unknown> {
  agent_id: string;
  halted_at: string | null;
  halted_by: string | null;
  halt_reason: string | null;
  halt_version: string | null;
  resumed_at: string | null;
  resumed_by: string | null;
  resume_reason: string | null;
  halt_mac: string | null;
  halt_key_id: string | null;
}

const UTC_MS = `'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'`;

/** The select list of a {@link HaltRow}. */
export const HALT_ROW_COLUMNS = sql.raw(
  `agent_id, halted_by, halt_reason, halt_version::text as halt_version, resumed_by, resume_reason, halt_mac, halt_key_id, to_char(halted_at at time zone 'UTC', ${UTC_MS}) as halted_at, to_char(resumed_at at time zone 'UTC', ${UTC_MS}) as resumed_at`,
);

/** Which rows hold halt state at all: signed, or claiming a halt, or versioned. */
export const HOLDS_HALT_STATE = sql.raw(
  "(halt_version is not null or halt_mac is not null or halted_at is not null or halted_by is not null or halt_reason is not null)",
);

/** What a stored row says about its agent's halt, once its signature is checked. */
export type HaltVerdict =
  /** No signed state and no halt: an agent never halted (or resumed before halts were signed). */
  | { kind: "none" }
  /** A halt or resume whose signature verifies under a key of the keyring. */
  | { kind: "verified"; change: HaltChange }
  /** State that cannot be trusted: enforced as a halt, and reported. */
  | { kind: "refused"; version: number | null; problem: string };

/**
 * Check a row's halt state against its MAC. A row that says "not halted" and carries no
 * signature is an agent never halted (`none`) — harmless, and how rows written before halts
 * were signed read. Everything else must verify: a halt without a signature, a signature
 * that does not match the fields, a key that is not in the keyring, or a half-written halt
 * is `refused`.
 */
export function verifyHaltRow(row: HaltRow, keyring: Keyring): HaltVerdict {
  const claimsHalt = row.halted_at !== null || row.halted_by !== null || row.halt_reason !== null;
  if (!claimsHalt && row.halt_mac === null && row.halt_key_id === null) return { kind: "none" };
  const version = row.halt_version === null ? null : Number(row.halt_version);
  const refused = (problem: string): HaltVerdict => ({ kind: "refused", version, problem });
  if (row.halt_mac === null || row.halt_key_id === null) {
    return refused(
      "it is not signed (written by hand into the table, or before halts were signed)",
    );
  }
  if (version === null || !Number.isSafeInteger(version) || version < 1) {
    return refused("it has no valid version");
  }
  const key = keyring.find(row.halt_key_id);
  if (!key || key.id !== row.halt_key_id) {
    const named = new RegExp(`^[0-9a-f]{${KEY_ID_LENGTH}}$`).test(row.halt_key_id)
      ? `key ${row.halt_key_id}`
      : "a malformed key id";
    return refused(
      `it was signed by ${named}, which is not in the keyring (add the key to historicalKeys)`,
    );
  }
  const fields = claimsHalt
    ? { by: row.halted_by, at: row.halted_at, reason: row.halt_reason }
    : { by: row.resumed_by, at: row.resumed_at, reason: row.resume_reason };
  if (fields.by === null || fields.at === null || fields.reason === null) {
    return refused("its halt or resume is incomplete");
  }
  const at = new Date(fields.at);
  if (Number.isNaN(at.getTime())) return refused("its time is not a valid time");
  const signed = { halted: claimsHalt, by: fields.by, at, reason: fields.reason };
  if (!key.verifyHex(haltStatePayload(row.agent_id, version, signed), row.halt_mac)) {
    return refused("its signature does not match its fields (the row was changed in the table)");
  }
  return {
    kind: "verified",
    change: {
      agentId: row.agent_id,
      version,
      halt: claimsHalt
        ? { agentId: row.agent_id, haltedBy: signed.by, haltedAt: at, reason: signed.reason }
        : null,
    },
  };
}

/** The halt enforced for an agent whose stored state was refused (`problem`), since `since`. */
export function unverifiableHalt(agentId: string, problem: string, since: Date): HaltState {
  return {
    agentId,
    haltedBy: UNVERIFIABLE_HALTED_BY,
    haltedAt: since,
    reason: `The stored halt state of this agent failed verification (${problem}), so the agent is treated as halted. An operator resumes it, or halts it again, to write a signed state.`,
  };
}
