import { type ChainKey, canonicalJson, type Keyring } from "@gov/core";
import { type ChainIntegrityDetails, ChainIntegrityError } from "./errors";
import { AGENT_CHAIN_PREFIX } from "./models";
import { type PayloadFields, RECORD_FORMAT_VERSION } from "./record";

/** A row of the chain as stored: the signed payload and its projections. */
export interface StoredRow {
  eventId: string;
  chain: string;
  seq: number;
  prevHash: string | null;
  hmac: string;
  keyId: string;
  /** ISO 8601. */
  createdAt: string;
  agentId: string;
  kind: string;
  sessionId: string | null;
  parentEventId: string | null;
  payload: string;
}

/** A signed checkpoint of a chain's head. */
export interface StoredCheckpoint {
  checkpointId: string;
  chain: string;
  seq: number;
  hash: string;
  createdAt: string;
  keyId: string;
  hmac: string;
  payload: string;
}

/** What a detailed verification found. */
export interface VerificationReport {
  /** Rows whose signature and links check out. */
  verified: number;
  /** Rows that are not part of an intact chain (or rows found missing). */
  failed: number;
  /** Rows signed by a key that is not in the keyring: neither proven nor disproven. */
  unverified: number;
  /** Chains looked at. */
  chains: number;
  /** The first failures (at most 100), in the order found. */
  failures: ChainIntegrityDetails[];
}

/** The signed form of a checkpoint (FORMAT.md). */
export function checkpointPayload(checkpoint: Omit<StoredCheckpoint, "hmac" | "payload">): string {
  return canonicalJson({
    v: RECORD_FORMAT_VERSION,
    type: "checkpoint",
    checkpointId: checkpoint.checkpointId,
    chain: checkpoint.chain,
    seq: checkpoint.seq,
    hash: checkpoint.hash,
    createdAt: checkpoint.createdAt,
    keyId: checkpoint.keyId,
  });
}

const MAX_REPORTED_FAILURES = 100;
const COMPARED_FIELDS = [
  "eventId",
  "chain",
  "seq",
  "prevHash",
  "keyId",
  "agentId",
  "kind",
  "sessionId",
  "parentEventId",
] as const;

/**
 * Walks rows in chain order and checks each one: its HMAC under the key it names, that its
 * columns say what its signed payload says, and its links — a gapless `seq` from 1, each
 * `prevHash` the HMAC of the row before, one root, no two rows at one place — and, against
 * signed checkpoints, that no rows are missing at the end.
 *
 * In strict mode the first problem throws {@link ChainIntegrityError}; a row signed by an
 * unknown key is a problem too (it proves nothing). Otherwise it counts.
 */
export class ChainVerifier {
  readonly #keyring: Keyring;
  readonly #strict: boolean;
  readonly #report: VerificationReport = {
    verified: 0,
    failed: 0,
    unverified: 0,
    chains: 0,
    failures: [],
  };
  readonly #keys = new Map<string, ChainKey | undefined>();
  #chain: string | null = null;
  #last: { seq: number; hmac: string } | null = null;
  #startSeq = 1;
  #predecessor: string | null = null;
  #checkpoints = new Map<number, string>();
  #maxCheckpoint: StoredCheckpoint | null = null;

  constructor(keyring: Keyring, options: { strict: boolean }) {
    this.#keyring = keyring;
    this.#strict = options.strict;
  }

  /**
   * Start a chain. For a window that does not start at seq 1, pass the row before it
   * (`predecessor`) so that the first link is checked too.
   */
  beginChain(
    chain: string,
    checkpoints: readonly StoredCheckpoint[],
    window?: { fromSeq: number; predecessor: { seq: number; hmac: string } | null },
  ): void {
    this.#chain = chain;
    this.#report.chains++;
    this.#startSeq = window?.fromSeq ?? 1;
    this.#last = null;
    this.#predecessor = null;
    if (window && window.fromSeq > 1) {
      if (!window.predecessor) {
        this.#fail({
          seq: window.fromSeq - 1,
          eventId: null,
          reason: `row ${window.fromSeq - 1} (before the window) is missing`,
        });
      } else {
        this.#predecessor = window.predecessor.hmac;
      }
    }
    this.#checkpoints = new Map();
    this.#maxCheckpoint = null;
    for (const checkpoint of checkpoints) {
      if (!this.#checkpointValid(checkpoint)) continue;
      this.#checkpoints.set(checkpoint.seq, checkpoint.hash);
      if (!this.#maxCheckpoint || checkpoint.seq > this.#maxCheckpoint.seq)
        this.#maxCheckpoint = checkpoint;
    }
  }

  /** Check one row; rows must come in (seq, eventId) order within their chain. */
  row(row: StoredRow): void {
    const before = this.#report.failed;
    const key = this.#key(row.keyId);
    let signatureChecked = false;
    if (!key) {
      if (this.#strict) {
        this.#fail({
          seq: row.seq,
          eventId: row.eventId,
          reason: `it is signed with key ${row.keyId}, which is not in the keyring`,
        });
      } else {
        this.#report.unverified++;
      }
    } else if (!key.verifyHex(row.payload, row.hmac)) {
      this.#fail({
        seq: row.seq,
        eventId: row.eventId,
        reason:
          "its HMAC does not match its signed record (the record or its signature was changed)",
      });
    } else {
      signatureChecked = true;
    }
    if (this.#report.failed === before) this.#checkFields(row);
    if (this.#report.failed === before) this.#checkLinks(row);
    if (this.#report.failed === before && signatureChecked) this.#report.verified++;
    // Carry on from this row, so that one bad row is not counted again for every row after it.
    this.#last = { seq: row.seq, hmac: row.hmac };
  }

  /**
   * Finish the chain. `complete` says the rows read reach the chain's end (no `toSeq`), so
   * that rows missing after the last one can be caught against the checkpoints.
   */
  endChain(complete: boolean): void {
    const checkpoint = this.#maxCheckpoint;
    if (complete && checkpoint) {
      const lastSeq = this.#last?.seq ?? this.#startSeq - 1;
      if (lastSeq < checkpoint.seq) {
        this.#fail({
          seq: lastSeq + 1,
          eventId: null,
          reason: `rows ${lastSeq + 1} to ${checkpoint.seq} are missing: a signed checkpoint of ${checkpoint.createdAt} recorded the chain's head at seq ${checkpoint.seq}`,
        });
      }
    }
  }

  /** The key of an id, looked up once per id. */
  #key(keyId: string): ChainKey | undefined {
    if (!this.#keys.has(keyId)) this.#keys.set(keyId, this.#keyring.find(keyId));
    return this.#keys.get(keyId);
  }

  report(): VerificationReport {
    return this.#report;
  }

  #checkFields(row: StoredRow): void {
    let payload: PayloadFields;
    try {
      payload = JSON.parse(row.payload) as PayloadFields;
    } catch {
      this.#fail({ seq: row.seq, eventId: row.eventId, reason: "its signed record is not JSON" });
      return;
    }
    if (payload.v !== RECORD_FORMAT_VERSION) {
      this.#fail({
        seq: row.seq,
        eventId: row.eventId,
        reason: `its signed record has format version ${String(payload.v)}`,
      });
      return;
    }
    for (const field of COMPARED_FIELDS) {
      if (payload[field] !== row[field]) {
        this.#fail({
          seq: row.seq,
          eventId: row.eventId,
          reason: `its ${field} column differs from its signed record`,
        });
        return;
      }
    }
    if (
      payload.createdAt !== row.createdAt &&
      Date.parse(payload.createdAt) !== Date.parse(row.createdAt)
    ) {
      this.#fail({
        seq: row.seq,
        eventId: row.eventId,
        reason: "its createdAt column differs from its signed record",
      });
    }
  }

  #checkLinks(row: StoredRow): void {
    const last = this.#last;
    if (row.chain !== this.#chain) {
      this.#fail({
        seq: row.seq,
        eventId: row.eventId,
        reason: `it belongs to chain ${row.chain}, not ${this.#chain}`,
      });
      return;
    }
    if (last && row.seq === last.seq) {
      this.#fail({
        seq: row.seq,
        eventId: row.eventId,
        reason: `two rows claim seq ${row.seq} (a fork)`,
      });
      return;
    }
    const expectedSeq = last ? last.seq + 1 : this.#startSeq;
    if (row.seq !== expectedSeq) {
      this.#fail({
        seq: expectedSeq,
        eventId: null,
        reason:
          row.seq > expectedSeq
            ? `row ${expectedSeq} is missing (the next row is seq ${row.seq}, event ${row.eventId})`
            : `rows are out of order (seq ${row.seq} after ${expectedSeq - 1})`,
      });
      return;
    }
    const expectedPrev = last ? last.hmac : this.#predecessor;
    if (row.prevHash !== expectedPrev) {
      this.#fail({
        seq: row.seq,
        eventId: row.eventId,
        reason:
          row.prevHash === null
            ? "it claims to be the first row of the chain, but is not (a second root)"
            : expectedPrev === null
              ? "the first row of the chain names a predecessor"
              : `its prevHash is not the HMAC of seq ${row.seq - 1} (a broken link or a fork)`,
      });
      return;
    }
    const checkpointHash = this.#checkpoints.get(row.seq);
    if (checkpointHash !== undefined && checkpointHash !== row.hmac) {
      this.#fail({
        seq: row.seq,
        eventId: row.eventId,
        reason: "it differs from the row a signed checkpoint recorded at this seq",
      });
    }
  }

  #checkpointValid(checkpoint: StoredCheckpoint): boolean {
    const key = this.#keyring.find(checkpoint.keyId);
    const expected = checkpointPayload(checkpoint);
    if (
      !key ||
      expected !== checkpoint.payload ||
      !key.verifyHex(checkpoint.payload, checkpoint.hmac)
    ) {
      this.#fail({
        seq: checkpoint.seq,
        eventId: null,
        reason: key
          ? `the checkpoint ${checkpoint.checkpointId} at this seq is not validly signed`
          : `the checkpoint ${checkpoint.checkpointId} is signed with key ${checkpoint.keyId}, which is not in the keyring`,
      });
      return false;
    }
    return true;
  }

  #fail(details: Omit<ChainIntegrityDetails, "chain" | "sessionId">): void {
    const chain = this.#chain ?? "";
    const full: ChainIntegrityDetails = {
      chain,
      sessionId: chain.startsWith(AGENT_CHAIN_PREFIX) ? null : chain,
      ...details,
    };
    if (this.#strict) throw new ChainIntegrityError(full);
    this.#report.failed++;
    if (this.#report.failures.length < MAX_REPORTED_FAILURES) this.#report.failures.push(full);
  }
}
