/**
 * Verification of stored rows: the checks of each row (signature, fields, links, key against
 * the rotation history) and of checkpoints, in chain order. What it reports is in
 * `verification-report.ts`; the rotation record's format in `rotation-record.ts`.
 */
import type { ChainKey, Keyring } from "@gov/core";
import { type CheckpointTrust, checkCheckpoint, type StoredCheckpoint } from "./checkpoint-signing";
import { type ChainIntegrityDetails, ChainIntegrityError } from "./errors";
import { type PayloadFields, RECORD_FORMAT_VERSION } from "./record";
import {
  byRotatedAt,
  KEY_HISTORY_CHAIN,
  KEY_ROTATED_KIND,
  KEY_ROTATION_GRACE_MS,
  type KeyEpoch,
  rotationProblem,
  type StoredRotation,
} from "./rotation-record";
import {
  emptyReport,
  failureDetails,
  likelyCause,
  MAX_REPORTED_FAILURES,
  type VerificationReport,
  WITNESS_CHAIN,
} from "./verification-report";

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
 * Given the key rotation history ({@link ChainVerifier.keyHistory}), it also holds each
 * row's key to it: a key signs only between its rotation-in and its rotation-out (with
 * {@link KEY_ROTATION_GRACE_MS} for clocks), along a chain the key never goes back to an
 * older one, and no row under a retired key comes after a checkpoint signed once it was
 * retired. Checkpoints are held to their key's validity the same way.
 *
 * In strict mode the first problem throws {@link ChainIntegrityError}; a row signed by an
 * unknown key is a problem too (it proves nothing). Otherwise it counts.
 */
export class ChainVerifier {
  readonly #keyring: Keyring;
  readonly #strict: boolean;
  /** Whose checkpoint signatures are believed, and whether HMAC-only ones are refused. */
  readonly #trust: Omit<CheckpointTrust, "keyring">;
  readonly #report: VerificationReport = emptyReport();
  /** Keys that signed what was looked at and are not in the keyring. */
  readonly #unknownKeys = new Set<string>();
  readonly #keys = new Map<string, ChainKey | undefined>();
  /** Each key of the rotation history by id; empty when there is no history. */
  readonly #epochs = new Map<string, KeyEpoch>();
  /** The history's keys in order, for messages. */
  #historyKeys: string[] = [];
  /** Rows and checkpoints looked at: none means there was nothing to verify. */
  #seen = 0;
  #chain: string | null = null;
  #last: { seq: number; hmac: string } | null = null;
  /** The key of the last row of this chain that verified. */
  #lastKey: { keyId: string; index: number | null } | null = null;
  #startSeq = 1;
  #predecessor: string | null = null;
  #checkpoints = new Map<number, string>();
  #validCheckpoints: StoredCheckpoint[] = [];
  #maxCheckpoint: StoredCheckpoint | null = null;
  /** The chain's checkpoints a witness kept that the database no longer has. */
  #unstored: StoredCheckpoint[] = [];
  /** Per key of this chain: the lowest seq a checkpoint signed after the key retired pinned. */
  readonly #pinnedAfterRetirement = new Map<string, StoredCheckpoint | null>();

  constructor(
    keyring: Keyring,
    options: { strict: boolean } & Partial<Omit<CheckpointTrust, "keyring">>,
  ) {
    this.#keyring = keyring;
    this.#strict = options.strict;
    this.#trust = {
      verifyingKeys: options.verifyingKeys ?? [],
      requireSignature: options.requireSignature ?? false,
    };
  }

  /**
   * Load the key rotation history, before any chain: check each rotation record (its signed
   * form, its columns, and each MAC whose key is in the keyring), order them into one line
   * of keys through the keyring's current key, and report records that fail, fork the line,
   * return to a retired key or lie outside it. `recorded` are the `audit.key_rotated` events
   * of the chain `agent:gov.audit`: a validly signed one whose rotation record is missing
   * means the record was deleted.
   */
  keyHistory(rotations: readonly StoredRotation[], recorded: readonly StoredRow[] = []): void {
    const ordered = [...rotations].sort(byRotatedAt);
    const place = new Map(ordered.map((rotation, index) => [rotation, index + 1]));
    const valid: StoredRotation[] = [];
    for (const rotation of ordered) {
      const problem = rotationProblem(rotation, this.#keyring);
      if (problem) this.#failHistory(rotation, place, problem);
      else valid.push(rotation);
    }
    const path = this.#historyLine(valid, place);
    this.#epochs.clear();
    if (path.length > 0) {
      const first = path[0] as StoredRotation;
      const keys = [first.oldKeyId, ...path.map((rotation) => rotation.newKeyId)];
      this.#historyKeys = keys;
      keys.forEach((keyId, index) => {
        const rotatedIn = index > 0 ? path[index - 1] : undefined;
        const rotatedOut = path[index];
        this.#epochs.set(keyId, {
          keyId,
          index,
          from: rotatedIn ? Date.parse(rotatedIn.rotatedAt) : Number.NEGATIVE_INFINITY,
          until: rotatedOut ? Date.parse(rotatedOut.rotatedAt) : Number.POSITIVE_INFINITY,
          rotatedOutBy: rotatedOut?.rotationId ?? null,
        });
      });
    }
    const byId = new Map(rotations.map((rotation) => [rotation.rotationId, rotation]));
    for (const event of recorded) {
      const key = this.#key(event.keyId);
      if (!key?.verifyHex(event.payload, event.hmac)) continue; // its chain reports it
      let metadata: Record<string, unknown>;
      try {
        const payload = JSON.parse(event.payload) as PayloadFields;
        if (payload.kind !== KEY_ROTATED_KIND || typeof payload.metadata !== "object") continue;
        metadata = payload.metadata ?? {};
      } catch {
        continue;
      }
      const rotationId = String(metadata.rotationId);
      const stored = byId.get(rotationId);
      const handover = `${String(metadata.oldKeyId)} → ${String(metadata.newKeyId)}`;
      const fail = (reason: string) =>
        this.#fail({ seq: event.seq, eventId: event.eventId, reason }, event.chain);
      if (!stored) {
        fail(
          `it records key rotation ${rotationId} (${handover}), whose key_rotations record is missing (deleted)`,
        );
      } else if (stored.oldKeyId !== metadata.oldKeyId || stored.newKeyId !== metadata.newKeyId) {
        fail(
          `it records key rotation ${rotationId} as ${handover}, but its key_rotations record says ${stored.oldKeyId} → ${stored.newKeyId}`,
        );
      }
    }
  }

  /**
   * The line of rotations through the keyring's current key (or, when the current key is in
   * none, from the oldest key nothing rotated in): back to the first key, then forward to the
   * newest. Valid records off that line are failures: a fork, a return to a retired key, or a
   * record that belongs to another history.
   */
  #historyLine(
    valid: readonly StoredRotation[],
    place: ReadonlyMap<StoredRotation, number>,
  ): StoredRotation[] {
    if (valid.length === 0) return [];
    const byOld = new Map<string, StoredRotation[]>();
    const byNew = new Map<string, StoredRotation[]>();
    for (const rotation of valid) {
      byOld.set(rotation.oldKeyId, [...(byOld.get(rotation.oldKeyId) ?? []), rotation]);
      byNew.set(rotation.newKeyId, [...(byNew.get(rotation.newKeyId) ?? []), rotation]);
    }
    const current = this.#keyring.current.id;
    const anchor =
      byOld.has(current) || byNew.has(current)
        ? current
        : ((valid.find((rotation) => !byNew.has(rotation.oldKeyId)) ?? valid[0]) as StoredRotation)
            .oldKeyId;
    const onLine = new Set<StoredRotation>();
    const keys = new Set([anchor]);
    // From the anchor, follow the rotations that brought each key in (back) or took it out
    // (forward), the earliest first, until the line ends or would meet a key it holds.
    const walk = (back: boolean): StoredRotation[] => {
      const steps: StoredRotation[] = [];
      for (let key = anchor; ; ) {
        const rotation = (back ? byNew : byOld)
          .get(key)
          ?.find((candidate) => !onLine.has(candidate));
        const next = back ? rotation?.oldKeyId : rotation?.newKeyId;
        if (!rotation || next === undefined || keys.has(next)) return steps;
        steps.push(rotation);
        onLine.add(rotation);
        keys.add(next);
        key = next;
      }
    };
    const line = [...walk(true).reverse(), ...walk(false)];
    line.forEach((rotation, index) => {
      const before = line[index - 1];
      if (before && Date.parse(rotation.rotatedAt) < Date.parse(before.rotatedAt))
        this.#failHistory(
          rotation,
          place,
          `it is dated before rotation ${before.rotationId}, which precedes it in the key history`,
        );
    });
    for (const rotation of valid) {
      if (onLine.has(rotation)) continue;
      const sameOld = line.find((other) => other.oldKeyId === rotation.oldKeyId);
      const sameNew = line.find((other) => other.newKeyId === rotation.newKeyId);
      this.#failHistory(
        rotation,
        place,
        sameOld
          ? `it forks the key history: key ${rotation.oldKeyId} was rotated out to ${sameOld.newKeyId} by rotation ${sameOld.rotationId} at ${sameOld.rotatedAt}`
          : sameNew
            ? `it forks the key history: key ${rotation.newKeyId} was rotated in by rotation ${sameNew.rotationId} at ${sameNew.rotatedAt}`
            : keys.has(rotation.newKeyId) && keys.has(rotation.oldKeyId)
              ? `it makes key ${rotation.newKeyId}, which the history had already used, current again`
              : `it is not part of the key history that leads to the current key (${[...keys].join(", ")})`,
      );
    }
    return line;
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
    this.#lastKey = null;
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
    this.#validCheckpoints = [];
    this.#pinnedAfterRetirement.clear();
    this.#maxCheckpoint = null;
    this.#unstored = [];
    // A witness's checkpoints must all still be in the database (checkpoint() writes there
    // first): one that is missing was deleted.
    const stored = new Set(
      checkpoints.filter((one) => one.source !== "witness").map((one) => one.checkpointId),
    );
    for (const checkpoint of checkpoints) {
      this.#seen++;
      if (!this.#checkpointValid(checkpoint)) continue;
      const known = this.#checkpoints.get(checkpoint.seq);
      if (known !== undefined && known !== checkpoint.hash) {
        this.#fail({
          seq: checkpoint.seq,
          eventId: null,
          reason: `two validly signed checkpoints disagree about the row at this seq (checkpoint ${checkpoint.checkpointId} is one): the chain was rewritten`,
        });
        continue;
      }
      if (checkpoint.source === "witness" && !stored.has(checkpoint.checkpointId)) {
        this.#unstored.push(checkpoint);
      }
      this.#checkpoints.set(checkpoint.seq, checkpoint.hash);
      this.#validCheckpoints.push(checkpoint);
      if (!this.#maxCheckpoint || checkpoint.seq > this.#maxCheckpoint.seq)
        this.#maxCheckpoint = checkpoint;
    }
  }

  /**
   * A window of one chain that holds no rows. `head` is the seq of the chain's last row (0
   * when it has none). When neither the rows nor a validly signed checkpoint reach into the
   * window, and the row before it is there if a checkpoint recorded it, the window lies past
   * the chain's end: nothing to verify. Otherwise the window's rows are missing (deleted) if
   * the chain goes on after it, the row before it must be there, and rows a checkpoint
   * recorded must be.
   */
  emptyWindow(
    chain: string,
    checkpoints: readonly StoredCheckpoint[],
    window: {
      fromSeq: number;
      toSeq: number;
      head: number;
      predecessor: { seq: number; hmac: string } | null;
      complete: boolean;
    },
  ): void {
    const seen = this.#seen;
    this.beginChain(chain, checkpoints);
    const { fromSeq, toSeq, head } = window;
    const pinned = this.#maxCheckpoint?.seq ?? 0;
    const before = fromSeq - 1;
    if (fromSeq > 1 && head <= before && pinned <= before && (head === before || pinned < before)) {
      // Past the end: the chain's checkpoints (all before the window) were not what was asked.
      this.#seen = seen;
      this.endChain(false);
      return;
    }
    this.#startSeq = fromSeq;
    if (fromSeq > 1) {
      if (window.predecessor) this.#predecessor = window.predecessor.hmac;
      else
        this.#fail({
          seq: fromSeq - 1,
          eventId: null,
          reason: `row ${fromSeq - 1} (before the window) is missing`,
        });
    }
    if (head >= fromSeq) {
      const last = Math.min(toSeq, head);
      this.#fail({
        seq: fromSeq,
        eventId: null,
        reason: `${last > fromSeq ? `rows ${fromSeq} to ${last} are` : `row ${fromSeq} is`} missing (the chain goes on to seq ${head})`,
      });
    }
    this.endChain(window.complete);
  }

  /** Check one row; rows must come in (seq, eventId) order within their chain. */
  row(row: StoredRow): void {
    this.#seen++;
    const before = this.#report.failed;
    const key = this.#key(row.keyId);
    let signatureChecked = false;
    if (!key) {
      this.#unknownKeys.add(row.keyId);
      if (this.#strict) {
        this.#fail({
          seq: row.seq,
          eventId: row.eventId,
          reason: `it is signed with key ${row.keyId}, which is not in the keyring`,
          unknownKeyId: row.keyId,
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
    if (this.#report.failed === before && signatureChecked) this.#checkKey(row);
    if (this.#report.failed === before && signatureChecked) {
      this.#report.verified++;
      this.#lastKey = { keyId: row.keyId, index: this.#epochs.get(row.keyId)?.index ?? null };
    }
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
          reason: `rows ${lastSeq + 1} to ${checkpoint.seq} are missing: a signed checkpoint of ${checkpoint.createdAt}${checkpoint.source === "witness" ? " kept by the witness" : ""} recorded the chain's head at seq ${checkpoint.seq}`,
        });
      }
    }
    for (const missing of this.#unstored) {
      this.#fail({
        seq: missing.seq,
        eventId: null,
        reason: `the checkpoint ${missing.checkpointId} of ${missing.createdAt}, kept by the witness, is missing from the database (deleted)`,
      });
    }
    this.#unstored = [];
  }

  /** The key of an id, looked up once per id. */
  #key(keyId: string): ChainKey | undefined {
    if (!this.#keys.has(keyId)) this.#keys.set(keyId, this.#keyring.find(keyId));
    return this.#keys.get(keyId);
  }

  /**
   * Record a damaged witness entry (one that is not a checkpoint at all, so it belongs to no
   * chain it can prove): `chain` is the chain being verified, or {@link WITNESS_CHAIN}.
   */
  witnessDamaged(chain: string, entry: number, reason: string): void {
    this.#seen++;
    this.#fail({ seq: 0, eventId: null, reason: `witness entry ${entry} ${reason}` }, chain);
  }

  /** Count what a witness gave: its entries, and the lines that were not even JSON. */
  witnessRead(entries: number, damaged: number): void {
    this.#report.witnessEntries += entries;
    this.#report.damagedWitnessLines += damaged;
  }

  report(): VerificationReport {
    this.#report.empty = this.#seen === 0 && this.#report.failed === 0;
    this.#report.unknownKeyIds = [...this.#unknownKeys].sort();
    this.#report.likelyCause = likelyCause(this.#report.unknownKeyIds, this.#keyring.current.id);
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

  /** Hold a validly signed row's key to the rotation history (its createdAt is the signed one). */
  #checkKey(row: StoredRow): void {
    const fail = (reason: string) => this.#fail({ seq: row.seq, eventId: row.eventId, reason });
    const last = this.#lastKey;
    if (this.#epochs.size === 0) {
      if (last && last.keyId !== row.keyId)
        fail(
          `it is signed with key ${row.keyId}, the rows before it in its chain with key ${last.keyId}, and no recorded rotation hands over from one to the other (a key_rotations record was deleted, or the key was changed without rotateChainKey)`,
        );
      return;
    }
    const epoch = this.#epochs.get(row.keyId);
    if (!epoch) {
      fail(
        `it is signed with key ${row.keyId}, which no recorded key rotation brought in (the history runs ${this.#historyKeys.join(" → ")})`,
      );
      return;
    }
    if (last?.index != null && epoch.index < last.index) {
      fail(
        `it is signed with key ${row.keyId} after rows of its chain signed with key ${last.keyId}, which replaced it (a retired key signing again)`,
      );
      return;
    }
    const problem = this.#outsideValidity(epoch, row.createdAt);
    if (problem) {
      fail(`it is signed with key ${row.keyId} at ${row.createdAt}, ${problem}`);
      return;
    }
    const pinned = this.#pinnedAfter(epoch);
    if (pinned && row.seq > pinned.seq) {
      fail(
        `it is signed with key ${row.keyId}, which was rotated out at ${new Date(epoch.until).toISOString()}, and comes after a checkpoint of ${pinned.createdAt} that recorded the chain's head at seq ${pinned.seq}: it was appended after its key was retired`,
      );
    }
  }

  /** Why `createdAt` is outside the epoch's validity (with the grace), or null. */
  #outsideValidity(epoch: KeyEpoch, createdAt: string): string | null {
    const time = Date.parse(createdAt);
    if (time > epoch.until + KEY_ROTATION_GRACE_MS)
      return `after key ${epoch.keyId} was rotated out at ${new Date(epoch.until).toISOString()} (rotation ${epoch.rotatedOutBy}): a retired key signs nothing`;
    if (time < epoch.from - KEY_ROTATION_GRACE_MS)
      return `before key ${epoch.keyId} was rotated in at ${new Date(epoch.from).toISOString()}`;
    return null;
  }

  /** The lowest checkpoint of this chain signed after `epoch`'s key was retired (and the grace). */
  #pinnedAfter(epoch: KeyEpoch): StoredCheckpoint | null {
    if (epoch.until === Number.POSITIVE_INFINITY) return null;
    let pinned = this.#pinnedAfterRetirement.get(epoch.keyId);
    if (pinned === undefined) {
      pinned = null;
      for (const checkpoint of this.#validCheckpoints) {
        if (
          Date.parse(checkpoint.createdAt) > epoch.until + KEY_ROTATION_GRACE_MS &&
          (!pinned || checkpoint.seq < pinned.seq)
        )
          pinned = checkpoint;
      }
      this.#pinnedAfterRetirement.set(epoch.keyId, pinned);
    }
    return pinned;
  }

  #checkpointValid(checkpoint: StoredCheckpoint): boolean {
    const fail = (reason: string) => {
      this.#fail({ seq: checkpoint.seq, eventId: null, reason });
      return false;
    };
    // Its payload, Ed25519 signature and HMAC (checkpoint-signing.ts).
    const checked = checkCheckpoint(checkpoint, { keyring: this.#keyring, ...this.#trust });
    const which = `the ${checkpoint.source === "witness" ? "witness's " : ""}checkpoint ${checkpoint.checkpointId}`;
    if (!checked.ok) {
      if (this.#key(checkpoint.keyId))
        return fail(`${which} is not validly signed: ${checked.reason}`);
      // Signed by a key this process was not given: likelier a changed secret than a forgery.
      this.#unknownKeys.add(checkpoint.keyId);
      this.#fail({
        seq: checkpoint.seq,
        eventId: null,
        reason: `${which} is not validly signed: ${checked.reason}`,
        unknownKeyId: checkpoint.keyId,
      });
      return false;
    }
    if (!checked.signed) this.#report.hmacOnlyCheckpoints++;
    if (this.#epochs.size > 0) {
      const epoch = this.#epochs.get(checkpoint.keyId);
      if (!epoch)
        return fail(
          `the checkpoint ${checkpoint.checkpointId} is signed with key ${checkpoint.keyId}, which no recorded key rotation brought in`,
        );
      const problem = this.#outsideValidity(epoch, checkpoint.createdAt);
      if (problem)
        return fail(
          `the checkpoint ${checkpoint.checkpointId} is signed with key ${checkpoint.keyId} at ${checkpoint.createdAt}, ${problem}`,
        );
    }
    return true;
  }

  /** Report a rotation record that fails, at its place in the history. */
  #failHistory(
    rotation: StoredRotation,
    place: ReadonlyMap<StoredRotation, number>,
    problem: string,
  ): void {
    this.#fail(
      {
        seq: place.get(rotation) ?? 0,
        eventId: null,
        reason: `the key rotation ${rotation.rotationId} (${rotation.oldKeyId} → ${rotation.newKeyId}, at ${rotation.rotatedAt}) is refused: ${problem}`,
      },
      KEY_HISTORY_CHAIN,
    );
  }

  #fail(
    details: Omit<ChainIntegrityDetails, "chain" | "sessionId">,
    chain: string = this.#chain ?? "",
  ): void {
    const full = failureDetails(chain, details);
    if (this.#strict) throw new ChainIntegrityError(full);
    this.#report.failed++;
    if (this.#report.failures.length < MAX_REPORTED_FAILURES) this.#report.failures.push(full);
  }
}
