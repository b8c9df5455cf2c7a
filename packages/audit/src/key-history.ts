import { describeError, GovernanceError, type Keyring } from "@gov/core";
import { AUDIT_ERROR_CODES, displayKeyIds, RetiredKeyError, unknownKeyAdvice } from "./errors";
import { rotationProblem, type StoredRotation } from "./rotation-record";
import {
  isRetiredKeyRefusal,
  RECENT_HEAD_KEYS_QUERY,
  RECENT_ROWS,
  ROTATIONS_QUERY,
  type RotationRow,
  toStoredRotation,
} from "./sql";
import type { AuditState } from "./state";

/** A genuine retirement of the keyring's current key, and the newest key after it. */
export interface Retirement {
  keyId: string;
  rotationId: string;
  rotatedAt: string;
  newKeyId: string;
  newestKeyId: string;
}

/**
 * What the module knows of the key rotation history (`gov_audit.key_rotations`): which keys
 * are retired, and which rotation records forge a retirement of this process's key. It
 * refuses a retired key at start and explains the database's refusals of one.
 */
export class KeyHistory {
  readonly #state: AuditState;
  /**
   * Keys the rotation history says were retired (each by a record its own key signed): the
   * spool replays no file of an earlier process signed with one of them. Learned at start, or
   * before the first replay when the database was away at start.
   */
  #retiredKeys: ReadonlySet<string> = new Set();
  /** Whether {@link #retiredKeys} was read from the rotation history yet. */
  #known = false;
  /** Forged rotation records that name the current key as retired (the database obeys them). */
  #forgedRetirement: string[] = [];
  /** Whether the error log about writing with a retired key was written. */
  #retiredKeyReported = false;

  constructor(state: AuditState) {
    this.#state = state;
  }

  /** Whether the history was read (see {@link KeyHistory.read}). */
  get known(): boolean {
    return this.#known;
  }

  /** Whether the history retired `keyId` (for the spool: a retired key's file is not replayed). */
  isRetired(keyId: string): boolean {
    return this.#retiredKeys.has(keyId);
  }

  /** The key rotation history as stored (FORMAT.md, "Key rotation"), oldest first. */
  async rotations(): Promise<StoredRotation[]> {
    const rows = await this.#state.store.query<RotationRow>(ROTATIONS_QUERY);
    return rows.map(toStoredRotation);
  }

  /**
   * Learn which keys are retired from the rotation history, if the database can say.
   * @returns null, or the error that kept it from reading the history.
   */
  async read(): Promise<unknown> {
    try {
      this.#learn(await this.rotations());
      return null;
    } catch (error) {
      return error ?? new Error("the key rotation history could not be read");
    }
  }

  /**
   * Remember the keys the history retired. Only read at start (or before the first replay):
   * a key retired later is this process's own current key (rotations go from the newest key),
   * and then the database refuses everything it would write anyway; files this process
   * adopted while their key was current stay trusted after its own rotation.
   */
  #learn(rotations: readonly StoredRotation[]): void {
    this.#retiredKeys = retiredKeyIds(this.#state.keyring, rotations);
    this.#known = true;
  }

  /**
   * Refuse to start with a current key that the rotation history says was retired. Only a
   * rotation record whose `hmac_old` verifies under the current key counts (a table owner
   * cannot forge one to keep the module from starting); a current key that the history does
   * not know is logged, not refused.
   */
  async refuseRetiredKey(): Promise<void> {
    const { keyring, logger } = this.#state;
    let rotations: StoredRotation[];
    try {
      rotations = await this.rotations();
    } catch (error) {
      logger.warn(
        "Could not read the audit key rotation history at start; the database still refuses rows of a retired key.",
        { error: describeError(error) },
      );
      return;
    }
    const retirement = retirementOf(keyring, rotations);
    if (retirement) throw new RetiredKeyError({ ...retirement, action: "start the audit module" });
    this.#learn(rotations);
    const current = keyring.current.id;
    const known = rotations.some(
      (rotation) => rotation.oldKeyId === current || rotation.newKeyId === current,
    );
    const forged = rotations.filter((rotation) => rotationProblem(rotation, keyring));
    // Those that retire this key stop its writes (the database cannot check their MACs).
    const retiringThisKey = forged.filter((rotation) => rotation.oldKeyId === current);
    if (retiringThisKey.length > 0)
      this.#reportForgedRetirement(retiringThisKey.map((rotation) => rotation.rotationId));
    if (forged.length > retiringThisKey.length) {
      logger.error(
        `${forged.length - retiringThisKey.length} audit key rotation record(s) do not verify (edited or forged); verifyChain reports them.`,
        {
          rotations: forged
            .filter((rotation) => rotation.oldKeyId !== current)
            .map((rotation) => rotation.rotationId),
        },
      );
    }
    if (!known && rotations.length > 0) {
      logger.error(
        `The audit chain key ${current} is not in the key rotation history (its newest key is ${rotations.at(-1)?.newKeyId}): rows it signs will fail verification. Start with the newest key, or rotate to this one with rotateChainKey from a process that holds it.`,
      );
    }
  }

  /**
   * Warn (once, at start) when chains written lately end in rows signed by keys that are not
   * in the keyring: most likely the audit secret changed and the old one was not kept, which
   * verification would otherwise first show as a broken chain. Cheap: one bounded query over
   * the newest rows. A database that cannot answer is left to the writer to report.
   */
  async warnUnknownHeadKeys(): Promise<void> {
    const { store, keyring, logger } = this.#state;
    let rows: { key_id: string; chains: number | string }[];
    try {
      rows = await store.query<{ key_id: string; chains: number | string }>(RECENT_HEAD_KEYS_QUERY);
    } catch {
      return;
    }
    const unknown = rows.filter((row) => keyring.find(row.key_id)?.id !== row.key_id);
    if (unknown.length === 0) return;
    const keyIds = unknown.map((row) => row.key_id);
    const chains = unknown.reduce((sum, row) => sum + Number(row.chains), 0);
    logger.warn(
      `${chains} audit chain${chains === 1 ? "" : "s"} written lately end in rows signed by key${keyIds.length === 1 ? "" : "s"} ${displayKeyIds(keyIds)}, which ${keyIds.length === 1 ? "is" : "are"} not in this process's keyring (it signs with key ${keyring.current.id}): the audit secret was probably changed or rotated without keeping the old one, and verification cannot check those rows (it reports them as unverified, or as broken chains). ${unknownKeyAdvice(keyIds)} If no secret with ${keyIds.length === 1 ? "that key id" : "those key ids"} was ever yours, someone else wrote those rows: investigate.`,
      {
        keyIds: displayKeyIds(keyIds),
        chains,
        currentKeyId: keyring.current.id,
        rowsLookedAt: RECENT_ROWS,
      },
    );
  }

  /** The code of a write refused because a rotation record names the current key as retired. */
  retiredCode(): string {
    return this.#forgedRetirement.length > 0
      ? AUDIT_ERROR_CODES.AUDIT_KEY_ROTATION_FORGED
      : AUDIT_ERROR_CODES.AUDIT_KEY_RETIRED;
  }

  /**
   * The database refused a write because a rotation record names this process's key as
   * retired (0004_retired_keys.sql): explain it once — whether the record is genuine decides
   * what to tell.
   */
  onRetiredRefusal(message: string): void {
    if (this.#retiredKeyReported) return;
    this.#retiredKeyReported = true;
    if (this.#forgedRetirement.length === 0) void this.#explainRetiredKey(message);
  }

  /**
   * If one such record is signed by the key, another process rotated it out: restart with
   * the newest key. If none is, the records are forged, and restarting would not help.
   */
  async #explainRetiredKey(error: string): Promise<void> {
    const { keyring, spool, logger } = this.#state;
    const current = keyring.current.id;
    const records = await this.#retiringRecords();
    if (records && records.forged.length > 0 && !records.retirement) {
      this.#reportForgedRetirement(records.forged);
      return;
    }
    logger.error(
      `This process signs the audit chain with key ${current}, which ${records ? "another process rotated out" : "a key rotation record names as rotated out (if that record is not signed by this key, it is forged: verifyChain reports it)"}: the database refuses its rows. Restart it with the newest chain key as GOVERNANCE_AUDIT_SECRET and ${current} as GOVERNANCE_CHAIN_KEY_${current.toUpperCase()}; its events ${spool ? `wait in the spool, signed with ${current}: once it is retired, the restarted process sets that spool aside, and importSpool(path, { acceptRetiredKey: true, operatorId, reason }) replays it` : "are lost meanwhile (no spool is configured)"}.`,
      { error },
    );
  }

  /**
   * The rotation records that name the current key as retired: the genuine retirement (one
   * signed by the key), and the ids of those that are not signed by it (forged). Null when
   * the history cannot be read.
   */
  async #retiringRecords(): Promise<{ retirement: Retirement | null; forged: string[] } | null> {
    let rotations: StoredRotation[];
    try {
      rotations = await this.rotations();
    } catch {
      return null;
    }
    const { keyring } = this.#state;
    const current = keyring.current.id;
    return {
      retirement: retirementOf(keyring, rotations),
      forged: rotations
        .filter(
          (rotation) =>
            rotation.oldKeyId === current && rotationProblem(rotation, keyring) !== null,
        )
        .map((rotation) => rotation.rotationId),
    };
  }

  /**
   * What `checkpoint()` rejects with when the database refused its checkpoints: for a key a
   * rotation record names as retired, whether that record is genuine ({@link RetiredKeyError})
   * or forged (`AUDIT_KEY_ROTATION_FORGED`); any other error as it is.
   */
  async checkpointRefusal(error: unknown, classified: unknown): Promise<unknown> {
    if (!isRetiredKeyRefusal(classified)) return error;
    const records = await this.#retiringRecords();
    if (records?.retirement)
      return new RetiredKeyError({ ...records.retirement, action: "checkpoint the audit chains" });
    if (!records || records.forged.length === 0) return error;
    if (this.#forgedRetirement.length === 0) this.#reportForgedRetirement(records.forged);
    return new GovernanceError({
      code: AUDIT_ERROR_CODES.AUDIT_KEY_ROTATION_FORGED,
      message: `Cannot checkpoint the audit chains: the database refuses what key ${this.#state.keyring.current.id} signs because of forged key rotation record${records.forged.length === 1 ? "" : "s"} ${records.forged.join(", ")} (not signed by that key). The key was not rotated out.`,
      recoveryHint:
        "Remove the forged record from gov_audit.key_rotations as its owner (disable its trigger key_rotations_append_only for that delete), then checkpoint again; do not restart with another key.",
      cause: error,
    });
  }

  /**
   * Rotation records name this process's key as retired without being signed by it: a table
   * owner's forgery, which the database obeys (it cannot check a MAC). Say so loudly, count
   * it, and never advise restarting with another key.
   */
  #reportForgedRetirement(rotationIds: readonly string[]): void {
    const { keyring, spool, logger, metrics } = this.#state;
    this.#forgedRetirement = [...rotationIds];
    metrics.forgedKeyRotations = rotationIds.length;
    if (metrics.lastError?.code === AUDIT_ERROR_CODES.AUDIT_KEY_RETIRED)
      metrics.lastError = { ...metrics.lastError, code: this.retiredCode() };
    const current = keyring.current.id;
    const records = rotationIds.length === 1 ? "record" : "records";
    logger.error(
      `Forged audit key rotation ${records} ${rotationIds.join(", ")}: ${rotationIds.length === 1 ? "it names" : "they name"} this process's chain key ${current} as rotated out, but ${rotationIds.length === 1 ? "is" : "are"} not signed by it (whoever can insert rows into gov_audit.key_rotations can forge one, not sign one). The key was not rotated out: do not restart with another key. While the ${records} ${rotationIds.length === 1 ? "is" : "are"} there, the database refuses every audit row this key signs; events ${spool ? "wait in the local spool and are written once the database takes them again" : "are lost meanwhile (no spool is configured)"}. Remove the forged ${records} as the owner of gov_audit.key_rotations (the table is append-only: its trigger key_rotations_append_only must be disabled for that delete), and find out who could write it; verifyChain reports ${rotationIds.length === 1 ? "it" : "them"} under gov_audit.key_rotations.`,
      { rotations: rotationIds, keyId: current },
    );
  }
}

/**
 * The keys of the keyring that the history retired: each rotated out by a record that its
 * own key signed (a table owner cannot retire a key it does not hold). A key the keyring does
 * not hold proves no spool file anyway.
 */
function retiredKeyIds(keyring: Keyring, rotations: readonly StoredRotation[]): Set<string> {
  const retired = new Set<string>();
  for (const rotation of rotations) {
    const key = keyring.find(rotation.oldKeyId);
    if (key && key.id === rotation.oldKeyId && rotationProblem(rotation, keyring) === null)
      retired.add(key.id);
  }
  return retired;
}

/**
 * The rotation that retired the keyring's current key — one whose signed record verifies
 * under that key, so that it cannot be forged without it — and the newest key after it.
 */
export function retirementOf(
  keyring: Keyring,
  rotations: readonly StoredRotation[],
): Retirement | null {
  const current = keyring.current.id;
  const retiring = rotations.find(
    (rotation) => rotation.oldKeyId === current && rotationProblem(rotation, keyring) === null,
  );
  if (!retiring) return null;
  const seen = new Set([current, retiring.newKeyId]);
  let newest = retiring.newKeyId;
  for (;;) {
    const next = rotations.find(
      (rotation) => rotation.oldKeyId === newest && !seen.has(rotation.newKeyId),
    );
    if (!next) break;
    newest = next.newKeyId;
    seen.add(newest);
  }
  return {
    keyId: current,
    rotationId: retiring.rotationId,
    rotatedAt: retiring.rotatedAt,
    newKeyId: retiring.newKeyId,
    newestKeyId: newest,
  };
}
