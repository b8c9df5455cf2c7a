import { createHash, randomUUID } from "node:crypto";
import { basename, resolve } from "node:path";
import {
  type AuditEventInput,
  type AuditSink,
  advisoryLockKey,
  ChainKey,
  type Clock,
  canonicalJson,
  defineModule,
  GovernanceError,
  InvalidArgumentError,
  identityForms,
  Keyring,
  type Logger,
  type MigrationSource,
  type ModuleContext,
  readSpoolFile,
  type SigningKey,
  SpoolFileError,
  type SpoolIntegrityProblem,
  type SQL,
  type Store,
  StoreError,
  type StrandedSpoolFiles,
  sameIdentity,
  sanitizeName,
  spoolHostNames,
  sql,
  toStoreError,
  type VerifyingKey,
} from "@gov/core";
import { parseCheckpoint, verifyingKeys } from "./checkpoint-signing";
import {
  AUDIT_ERROR_CODES,
  ChainIntegrityError,
  InvalidAuditEventError,
  RetiredKeyError,
} from "./errors";
import {
  AGENT_CHAIN_PREFIX,
  AUDIT_LIMITS,
  chainOf,
  type NormalizedEvent,
  normalizeEvent,
} from "./models";
import {
  type AuditEventRecord,
  makeRecord,
  type PayloadFields,
  PLACEHOLDER_HMAC,
  recordFromPayload,
  signedPayload,
  signRecord,
} from "./record";
import { AuditSpool, importedEntry, type SpoolEntry } from "./spool";
import {
  ChainVerifier,
  checkpointPayload,
  KEY_ROTATED_KIND,
  rotationPayload,
  rotationProblem,
  type StoredCheckpoint,
  type StoredRotation,
  type StoredRow,
  type VerificationReport,
  WITNESS_CHAIN,
} from "./verify";
import {
  type CheckpointWitness,
  FileCheckpointWitness,
  toWitness,
  type WitnessedCheckpoint,
  witnessedCheckpoint,
} from "./witness";

/** The audit module's migrations: schema `gov_audit`. */
export const auditMigrations: MigrationSource = {
  name: "audit",
  migrationsFolder: new URL("../drizzle", import.meta.url),
};

/** Options of the audit module. */
export interface AuditOptions {
  /**
   * Verify the chains of the rows `getEvents()` returns before returning them (throws
   * `ChainIntegrityError` on tampering). @default false
   */
  verifyChainOnRead?: boolean;
  /**
   * Where events wait while the database is unreachable; `null` disables the spool (events
   * then become placeholders). @default `<embedded database home>/audit-spool`, or
   * `./.governance/audit-spool`
   */
  spoolDirectory?: string | null;
  /**
   * Host names whose spool files this process adopts and replays as if they were its own
   * host's: hosts that are gone, e.g. the old name of a container recreated on the same
   * volume (a process can tell whether a writer runs only on its own host). Files of other
   * hosts are otherwise left alone, with a warning and an `audit.spool_stranded` event at
   * start. Never name a host that still runs a process writing into the spool directory.
   * @default []
   * @example
   * ```ts
   * new AuditModule(context, { spoolAdoptHosts: ["3f2a9c1b7d4e"] });
   * ```
   */
  spoolAdoptHosts?: readonly string[];
  /** Most events one transaction carries. @default 1000 */
  maxBatchSize?: number;
  /**
   * Batches written at once (each on its own connection; never two with the same chain).
   * @default 2 on Postgres, 1 on the embedded database (one connection)
   */
  maxConcurrentBatches?: number;
  /** First wait before retrying the database after a failure; doubles up to 30 s. @default 1000 */
  retryIntervalMs?: number;
  /**
   * Sign every chain's head in a checkpoint this often (0: only when `checkpoint()` is
   * called). Heads reach the witness only through checkpoints: with a witness this is how
   * stale its view of the database's chains can be.
   * @default 60000 with a `witness`, else 0
   */
  checkpointIntervalMs?: number;
  /**
   * Where every checkpoint is also written, outside the database: a file path (JSON lines,
   * appended and fsynced, see `FileCheckpointWitness`) or any {@link CheckpointWitness}. A
   * failing witness never fails `checkpoint()`: it is warned about, recorded as
   * `audit.witness_failed`, and its checkpoints are retried at the next checkpoint.
   * @default none
   */
  witness?: CheckpointWitness | string | null;
  /**
   * The Ed25519 key that signs checkpoints besides the HMAC. `null` signs with the HMAC only.
   * @default the context's `signingKey` (`GOVERNANCE_AUDIT_SIGNING_KEY`, or the key kept beside
   *   the embedded database)
   */
  signingKey?: SigningKey | null;
  /**
   * Ed25519 public keys (PEM, base64 DER or `VerifyingKey`) whose checkpoint signatures are
   * believed besides the signing key's own: the public keys of earlier signing keys.
   * @default []
   */
  trustedSigningKeys?: readonly (string | VerifyingKey)[];
}

/** Filters of {@link AuditModule.getEvents}. */
export interface EventFilters {
  sessionId?: string;
  agentId?: string;
  kind?: string;
  /** Events at or after this time. */
  since?: Date;
  /** Events before this time. */
  until?: Date;
  /** Most events returned. @default 1000 (at most 10000) */
  limit?: number;
}

/** Options of {@link AuditModule.verifyChain}. */
export interface VerifyChainOptions {
  /** One session's chain; all chains when absent. */
  sessionId?: string;
  /** An agent's chain of events without a session. */
  agentId?: string;
  /** First seq of a window (needs `sessionId` or `agentId`). */
  fromSeq?: number;
  /** Last seq of a window (needs `sessionId` or `agentId`). */
  toSeq?: number;
  /**
   * Also compare the database with the checkpoints this witness kept (a path of a witness
   * file, or a {@link CheckpointWitness}): a chain the witness knows and the database has not,
   * a head behind the witnessed one, a row that differs from a witnessed checkpoint, and a
   * witnessed checkpoint missing from the database are failures; so is a witness entry
   * that is JSON but not a validly signed checkpoint (edited or forged). A line that is not
   * even JSON (torn by a crash or a full disk) is counted in `damagedWitnessLines` and
   * warned about, not failed: it hides nothing that deleting it would not. A witness file
   * that is missing, unreadable, a symbolic link or not a witness file rejects with
   * `AUDIT_WITNESS_UNAVAILABLE` (naming the path): never "nothing to compare".
   */
  witness?: CheckpointWitness | string;
  /**
   * Refuse checkpoints that carry no Ed25519 signature (HMAC only: whoever holds the HMAC
   * secret could have forged them), in the database and in the witness. @default false
   */
  requireSignedCheckpoints?: boolean;
}

/** Counters of what the module did; degradations show here and in warnings. */
export interface AuditMetrics {
  /** log() calls accepted. */
  logged: number;
  /** Events written to the chain (including replayed ones). */
  stored: number;
  /** Transactions that wrote them. */
  batches: number;
  /** Events that went to the spool because the database could not take them. */
  spooled: number;
  /** Spooled events since written into the chain. */
  replayed: number;
  /** Events neither the database nor the spool could keep: lost, and returned as placeholders. */
  placeholders: number;
  /** Subscriber calls that threw. */
  subscriberErrors: number;
  /** Events waiting in the spool now. */
  spoolDepth: number;
  /** True while the database is not taking events. */
  degraded: boolean;
  /** The last database failure, if any (code and message; never a connection string). */
  lastError: { code: string; message: string } | null;
  /** Checkpoints that did not reach the witness yet (retried at the next checkpoint). */
  witnessPending: number;
  /** Appends to the witness that failed. */
  witnessFailures: number;
  /**
   * Spool files refused at replay (edited, reordered, truncated, replaced, signed with a
   * retired key, unsigned…; kept aside, see the log and `audit.spool_rejected`).
   */
  spoolRejections: number;
  /**
   * Key rotation records that name this process's chain key as rotated out but are not
   * signed by it: forged (a table owner can insert one, not sign one). While one is in
   * `gov_audit.key_rotations`, the database refuses this process's rows (they wait in the
   * spool) and `lastError.code` is `AUDIT_KEY_ROTATION_FORGED`; the error log names them.
   */
  forgedKeyRotations: number;
}

/** Options of {@link AuditModule.track}. */
export interface TrackOptions {
  kind: string;
  agentId: string;
  sessionId?: string | null;
  parentEventId?: string | null;
  model?: string | null;
}

/** Options of {@link AuditModule.rotateChainKey}. */
export interface RotateChainKeyOptions {
  /** The new secret (≥ 32 bytes, ≥ 8 distinct byte values). */
  newKey: string;
  /** Who rotated it. */
  operatorId: string;
  /** Why. */
  reason: string;
}

/** Options of {@link AuditModule.importSpool}. */
export interface ImportSpoolOptions {
  /** Who vouches for the file (recorded in the chain). */
  operatorId: string;
  /** Why it is imported: where it comes from (recorded in the chain). */
  reason: string;
  /**
   * Accept a file signed with a retired chain key: one written by a process of yours that
   * still held the key after its rotation (it had not learned of it). Whoever holds the
   * retired key could have written such a file too: import it only if you know its writer.
   * @default false
   */
  acceptRetiredKey?: boolean;
  /**
   * Accept an unsigned file: a spool left by a version before spool files were signed. Its
   * events prove nothing by themselves: anyone who could write the file could have written
   * them. @default false
   */
  acceptUnsigned?: boolean;
}

/** What {@link AuditModule.importSpool} queued. */
export interface SpoolImportResult {
  /** The file's name. */
  file: string;
  /** SHA-256 (hex) of the file as it was read (also in the `audit.spool_imported` event). */
  sha256: string;
  /** Events queued for the chain (those already in it are skipped when they are written). */
  entries: number;
  /** The key that signed the file; null for an unsigned file. */
  keyId: string | null;
  /** Whether that key is retired. */
  retiredKey: boolean;
  /** Whether the file is signed. */
  signed: boolean;
  /** The id of the `audit.spool_imported` event that records the import. */
  importEventId: string;
}

type Subscriber = (record: AuditEventRecord) => void | Promise<void>;

/** An event on its way into the chain, not yet signed. */
interface Unsigned {
  event: NormalizedEvent;
  eventId: string;
  chain: string;
  createdAt: Date;
}

interface Pending extends Unsigned {
  resolve(record: AuditEventRecord): void;
}

/** A chain's last row: the next row's seq is one more, its prevHash this hmac. */
interface Head {
  seq: number;
  hmac: string | null;
}

const SYSTEM_AGENT = "gov.audit";
/** The forms in which look-alikes of {@link SYSTEM_AGENT} are recognized (core's identityForms). */
const SYSTEM_AGENT_FORMS = identityForms(SYSTEM_AGENT);
const MAX_RETRY_MS = 30_000;
const PAGE = 5_000;
const CHAIN_LOCK = "gov_audit:chain:";
/** The SQLSTATE with which the database refuses rows or checkpoints of a retired key. */
const RETIRED_KEY_STATE = "GA002";
/** Held while a key rotation reads the history and records itself, across processes. */
const ROTATION_LOCK = advisoryLockKey("gov_audit:key_rotation").toString();
/** Checkpoints kept for a failing witness; beyond, the oldest are dropped (loudly). */
const MAX_WITNESS_BACKLOG = 100_000;
/** The checkpoint interval when a witness is configured and no interval is given. */
const WITNESS_CHECKPOINT_INTERVAL_MS = 60_000;
/** After a conflict with another process, a chain takes the locked path for this long. */
const CONTENDED_MS = 2_000;
/** Chain heads remembered for the fast path (the cache starts over beyond this). */
const MAX_CACHED_HEADS = 100_000;

/**
 * The tamper-evident audit chain.
 *
 * `log()` validates an event, then hands it to a writer that group-commits: all events
 * waiting when a transaction starts go into it (many sessions at once), each session's
 * appends serialized across processes by an advisory lock, and each `log()` resolves when
 * its event is durable. When the database cannot take them, events go to a durable local
 * spool and are replayed, in order, when it is back. `log()` never throws but for invalid
 * input.
 *
 * @example
 * ```ts
 * const record = await sdk.audit.log({ agentId: "billing-agent", kind: "llm.call", model: "gpt-4o-mini" });
 * await sdk.audit.verifyChain({ sessionId });
 * ```
 */
export class AuditModule implements AuditSink {
  readonly #store: Store;
  readonly #clock: Clock;
  readonly #logger: Logger;
  #keyring: Keyring;
  readonly #verifyOnRead: boolean;
  readonly #maxBatch: number;
  readonly #retryBaseMs: number;
  readonly #spool: AuditSpool | null;
  readonly #subscribers = new Set<Subscriber>();
  #queue: Pending[] = [];
  readonly #lanes: number;
  #inFlight = 0;
  /** Chains with a batch in flight: their next events wait, so that each keeps its order. */
  readonly #busyChains = new Set<string>();
  #recovering = false;
  #pumpScheduled = false;
  readonly #waiters: (() => void)[] = [];
  #closed = false;
  /** Whether the error log about writing with a retired key was written. */
  #retiredKeyReported = false;
  /** Forged rotation records that name the current key as retired (the database obeys them). */
  #forgedRetirement: string[] = [];
  /**
   * Keys the rotation history says were retired (each by a record its own key signed): the
   * spool replays no file of an earlier process signed with one of them. Learned at start, or
   * before the first replay when the database was away at start.
   */
  #retiredKeys: ReadonlySet<string> = new Set();
  /** Whether {@link #retiredKeys} was read from the rotation history yet. */
  #keyHistoryKnown = false;
  /** True while a key rotation is being recorded: the writer signs nothing meanwhile. */
  #paused = false;
  /** Rotations of this process, one after the other. */
  #rotationQueue: Promise<unknown> = Promise.resolve();
  #retryAt = 0;
  #retryDelayMs: number;
  #retryTimer: NodeJS.Timeout | null = null;
  #checkpointTimer: NodeJS.Timeout | null = null;
  /** Signs checkpoints besides the HMAC; null: HMAC only. */
  readonly #signingKey: SigningKey | null;
  /** Ed25519 public keys whose checkpoint signatures are believed. */
  readonly #verifyingKeys: readonly VerifyingKey[];
  readonly #witness: CheckpointWitness | null;
  /** Checkpoints the witness has not taken yet, oldest first. */
  #witnessBacklog: WitnessedCheckpoint[] = [];
  /** Appends to the witness, one at a time. */
  #witnessQueue: Promise<void> = Promise.resolve();
  /** Chains given a `chain.degraded_start` marker in this episode of degradation. */
  readonly #markedChains = new Set<string>();
  /** Each chain's head as this process last wrote or read it: the fast path's guess. */
  readonly #heads = new Map<string, Head>();
  /** Chains another process wrote to lately, until when. */
  readonly #contended = new Map<string, number>();
  readonly #metrics: AuditMetrics = {
    logged: 0,
    stored: 0,
    batches: 0,
    spooled: 0,
    replayed: 0,
    placeholders: 0,
    subscriberErrors: 0,
    spoolDepth: 0,
    degraded: false,
    lastError: null,
    witnessPending: 0,
    witnessFailures: 0,
    spoolRejections: 0,
    forgedKeyRotations: 0,
  };

  constructor(
    context: Pick<ModuleContext, "store" | "keyring" | "clock" | "logger"> &
      Partial<Pick<ModuleContext, "signingKey">>,
    options: AuditOptions = {},
  ) {
    this.#store = context.store;
    this.#keyring = context.keyring;
    this.#clock = context.clock;
    this.#logger = context.logger;
    this.#verifyOnRead = options.verifyChainOnRead ?? false;
    this.#maxBatch = positiveInteger(options.maxBatchSize ?? 1_000, "maxBatchSize", 100_000);
    this.#retryBaseMs = positiveInteger(
      options.retryIntervalMs ?? 1_000,
      "retryIntervalMs",
      600_000,
    );
    this.#retryDelayMs = this.#retryBaseMs;
    this.#lanes = positiveInteger(
      options.maxConcurrentBatches ?? (context.store.engine === "pglite" ? 1 : 2),
      "maxConcurrentBatches",
      32,
    );
    const adoptHosts = spoolHostNames(options.spoolAdoptHosts ?? [], "spoolAdoptHosts");
    const spoolDirectory =
      options.spoolDirectory === undefined
        ? resolve(context.store.directory ?? ".governance", "audit-spool")
        : options.spoolDirectory;
    this.#spool =
      spoolDirectory === null
        ? null
        : new AuditSpool(spoolDirectory, context.logger, {
            keyring: () => this.#keyring,
            isRetiredKey: (keyId) => this.#retiredKeys.has(keyId),
            adoptHosts,
            onIntegrityProblem: (problem) => this.#spoolProblem(problem),
            onStranded: (stranded) => this.#spoolStranded(stranded),
          });
    this.#signingKey =
      options.signingKey !== undefined ? options.signingKey : (context.signingKey ?? null);
    this.#verifyingKeys = [
      ...(this.#signingKey ? [this.#signingKey.publicKey] : []),
      ...verifyingKeys(options.trustedSigningKeys ?? [], "trustedSigningKeys"),
    ];
    this.#witness =
      options.witness === undefined || options.witness === null
        ? null
        : toWitness(options.witness, "witness");
    const interval =
      options.checkpointIntervalMs ?? (this.#witness ? WITNESS_CHECKPOINT_INTERVAL_MS : 0);
    if (interval > 0) {
      this.#checkpointTimer = setInterval(
        () => {
          this.checkpoint().catch((error: unknown) =>
            this.#logger.warn("A periodic audit checkpoint failed.", { error: describe(error) }),
          );
        },
        positiveInteger(interval, "checkpointIntervalMs", 86_400_000),
      );
      this.#checkpointTimer.unref();
    }
  }

  /**
   * @internal Refuse a retired chain key, then adopt events an earlier process left in the
   * spool, and replay them.
   * @throws {RetiredKeyError} (a rejection) when the key rotation history, signed by the
   *   current key itself, says that key was rotated out: it may never sign again.
   */
  async start(): Promise<void> {
    await this.#refuseRetiredKey();
    if (!this.#spool) return;
    try {
      if ((await this.#spool.adoptOrphans()) > 0) {
        this.#metrics.degraded = true;
        this.#kick();
      }
    } catch (error) {
      this.#logger.warn("Could not read the audit spool of earlier processes.", {
        error: describe(error),
      });
    }
  }

  /** The keyring the module signs and verifies with (it changes on rotation). */
  get keyring(): Keyring {
    return this.#keyring;
  }

  /**
   * The Ed25519 public key that verifies this module's checkpoints (`.pem`, `.id`,
   * `.fingerprint`): hand it to auditors, who then need no secret to check checkpoints
   * (`verifyCheckpoints`). Null when checkpoints are signed with the HMAC only.
   */
  get signingPublicKey(): VerifyingKey | null {
    return this.#signingKey?.publicKey ?? null;
  }

  /** Where checkpoints are also written (the `witness` option), or null. */
  get witness(): CheckpointWitness | null {
    return this.#witness;
  }

  /**
   * Record an event. Resolves once it is durable — in the chain, or, while the database is
   * away, in the local spool — with its record. Never throws on an internal failure; when
   * nothing can keep the event, it resolves with a placeholder (`isPlaceholder`, an HMAC of
   * 64 zeros, `metadata["audit.unavailable"] = true`) and says so in a warning and a metric.
   *
   * Invalid input rejects (never throws synchronously) with {@link InvalidAuditEventError},
   * naming the field, the limit and the fix; nothing is written then. The agent id
   * `gov.audit` is reserved for the module's own events (key rotations).
   */
  log(input: AuditEventInput): Promise<AuditEventRecord> {
    let event: NormalizedEvent;
    try {
      event = normalizeEvent(input);
      refuseReservedAgent(event.agentId);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#enqueue(event);
  }

  /** Queue a validated event for the writer; resolves when it is durable. */
  #enqueue(event: NormalizedEvent): Promise<AuditEventRecord> {
    if (this.#closed) {
      return Promise.resolve(
        this.#placeholder(event, randomUUID(), this.#clock.now(), "the audit module is closed"),
      );
    }
    this.#metrics.logged++;
    return new Promise<AuditEventRecord>((resolvePromise) => {
      this.#queue.push({
        event,
        eventId: randomUUID(),
        chain: chainOf(event),
        createdAt: this.#clock.now(),
        resolve: resolvePromise,
      });
      this.#kick();
    });
  }

  /**
   * Call `callback` with each record once it is in the chain. A subscriber that throws (or
   * rejects) is logged and counted; it never breaks the chain or the host.
   * @returns a function that unsubscribes.
   */
  subscribe(callback: Subscriber): () => void {
    if (typeof callback !== "function") {
      throw new InvalidArgumentError("callback", "must be a function.", "Pass (record) => { … }.");
    }
    this.#subscribers.add(callback);
    return () => this.#subscribers.delete(callback);
  }

  /** What the module did so far. */
  metrics(): AuditMetrics {
    return {
      ...this.#metrics,
      spoolDepth: this.#spool?.depth ?? 0,
      lastError: this.#metrics.lastError ? { ...this.#metrics.lastError } : null,
      witnessPending: this.#witnessBacklog.length,
    };
  }

  /** Resolves when every event logged so far is durable (in the chain or the spool). */
  async flush(): Promise<void> {
    while (this.#inFlight > 0 || this.#recovering || this.#queue.length > 0) {
      this.#kick();
      await new Promise<void>((wake) => this.#waiters.push(wake));
    }
  }

  /**
   * Wrap an async function so that each call is recorded: `<kind>.start` with the hash of
   * its arguments, then `<kind>.end` with the hash of its result, or `<kind>.error` (and the
   * error is rethrown). Recording never changes what the function returns or throws.
   *
   * @example
   * ```ts
   * const charge = sdk.audit.track({ kind: "charge_card", agentId: "billing-agent" }, async (amount: number) => stripe.charge(amount));
   * ```
   */
  track<Args extends unknown[], Result>(
    options: TrackOptions,
    fn: (...args: Args) => Promise<Result>,
  ): (...args: Args) => Promise<Result> {
    // It returns a function: bad arguments throw now, not at the first call.
    if (typeof options !== "object" || options === null || Array.isArray(options)) {
      throw new InvalidArgumentError(
        "options",
        `must be an object { kind, agentId }, got ${options === null ? "null" : Array.isArray(options) ? "an array" : typeof options}.`,
        'Pass track({ kind: "charge_card", agentId: "billing-agent" }, async (...args) => …).',
      );
    }
    if (typeof fn !== "function") {
      throw new InvalidArgumentError(
        "fn",
        `must be the async function to record, got ${fn === null ? "null" : typeof fn}.`,
        'Pass track({ kind: "charge_card", agentId: "billing-agent" }, async (...args) => …).',
      );
    }
    if (typeof options.kind !== "string") {
      throw new InvalidAuditEventError(
        "kind",
        `must be a string, got ${options.kind === null ? "null" : typeof options.kind}.`,
        'Pass the kind of the call, e.g. "charge_card" (recorded as charge_card.start, .end or .error).',
      );
    }
    const checked = normalizeEvent({
      agentId: options.agentId,
      kind: `${options.kind}.start`,
      sessionId: options.sessionId ?? null,
      parentEventId: options.parentEventId ?? null,
      model: options.model ?? null,
    });
    refuseReservedAgent(checked.agentId);
    const base = {
      agentId: options.agentId,
      sessionId: options.sessionId ?? null,
      parentEventId: options.parentEventId ?? null,
      model: options.model ?? null,
    };
    return async (...args: Args) => {
      const start = await this.log({
        ...base,
        kind: `${options.kind}.start`,
        inputHash: contentHash(args),
      });
      const parent = start.isPlaceholder ? base.parentEventId : start.eventId;
      let result: Result;
      try {
        result = await fn(...args);
      } catch (error) {
        await this.log({
          ...base,
          parentEventId: parent,
          kind: `${options.kind}.error`,
          metadata: { error: describeError(error) },
        });
        throw error;
      }
      await this.log({
        ...base,
        parentEventId: parent,
        kind: `${options.kind}.end`,
        outputHash: contentHash(result),
      });
      return result;
    };
  }

  /**
   * Events matching `filters`, oldest first, read from their signed records. With
   * `verifyChainOnRead`, the chains they belong to are verified first.
   */
  async getEvents(filters: EventFilters = {}): Promise<AuditEventRecord[]> {
    if (typeof filters !== "object" || filters === null || Array.isArray(filters)) {
      throw new InvalidArgumentError(
        "filters",
        `must be an object such as { sessionId }, got ${filters === null ? "null" : typeof filters}.`,
        "Call getEvents() for every event, or getEvents({ sessionId, limit }).",
      );
    }
    const limit = filters.limit ?? 1_000;
    if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) {
      throw new InvalidArgumentError(
        "limit",
        `must be an integer from 1 to 10000, got ${String(limit)}.`,
        "Page through results with since/until.",
      );
    }
    const conditions = [sql`true`];
    if (filters.sessionId !== undefined)
      conditions.push(sql`chain = ${chainName(filters.sessionId, "sessionId")}`);
    if (filters.agentId !== undefined)
      conditions.push(sql`agent_id = ${chainName(filters.agentId, "agentId")}`);
    if (filters.kind !== undefined) conditions.push(sql`kind = ${chainName(filters.kind, "kind")}`);
    if (filters.since !== undefined)
      conditions.push(
        sql`created_at >= ${checkedDate(filters.since, "since").toISOString()}::timestamptz`,
      );
    if (filters.until !== undefined)
      conditions.push(
        sql`created_at < ${checkedDate(filters.until, "until").toISOString()}::timestamptz`,
      );
    const rows = await this.#store.query<{ payload: string; hmac: string; chain: string }>(
      sql`select payload, hmac, chain from gov_audit.events where ${sql.join(conditions, sql` and `)} order by created_at, chain, seq limit ${limit}`,
    );
    if (this.#verifyOnRead) {
      for (const chain of new Set(rows.map((row) => row.chain)))
        await this.verifyChain(chainFilter(chain));
    }
    return rows.map((row) => recordFromPayload(JSON.parse(row.payload) as PayloadFields, row.hmac));
  }

  /**
   * A session's whole chain in order, every row verified on the way: the compliance
   * officer's one-click check. An empty array when the session has no events (and no
   * checkpoint: a checkpointed session without rows is a `ChainIntegrityError`).
   * @throws {ChainIntegrityError} (a rejection) at the first tampered row;
   *   `INVALID_ARGUMENT` for a session id that is not a non-empty string.
   */
  async traceSessionChain(sessionId: string): Promise<AuditEventRecord[]> {
    const records: AuditEventRecord[] = [];
    await this.#verify({ sessionId }, true, (row) =>
      records.push(recordFromPayload(JSON.parse(row.payload) as PayloadFields, row.hmac)),
    );
    return records;
  }

  /**
   * An event and its provenance: the event, its parent, the parent's parent, … up to the
   * root (at most 256 steps).
   */
  async trace(eventId: string): Promise<AuditEventRecord[]> {
    if (
      typeof eventId !== "string" ||
      !/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(eventId)
    ) {
      throw new InvalidArgumentError(
        "eventId",
        "must be the UUID of an audit event.",
        "Pass the eventId of a record returned by log().",
      );
    }
    const chain: AuditEventRecord[] = [];
    const seen = new Set<string>();
    let next: string | null = eventId;
    while (next !== null && chain.length < 256) {
      if (seen.has(next)) break;
      seen.add(next);
      const rows: { payload: string; hmac: string }[] = await this.#store.query<{
        payload: string;
        hmac: string;
      }>(sql`select payload, hmac from gov_audit.events where event_id = ${next}::uuid`);
      const row = rows[0];
      if (!row) break;
      const record = recordFromPayload(JSON.parse(row.payload) as PayloadFields, row.hmac);
      chain.push(record);
      next = record.parentEventId;
    }
    return chain;
  }

  /**
   * Verify chains: every row's HMAC under the key it was signed with, that its columns
   * match its signed record, the links between rows, the signed checkpoints, and each row's
   * key against the key rotation history (a retired key signs nothing after its rotation).
   *
   * **`false` means "nothing was verified", not "intact"**: it resolves `true` only when at
   * least one row was verified and every check passed, and `false` when there was nothing
   * to verify — no rows and no checkpoint match the filter (a session that does not exist,
   * a mistyped id, a window past the chain's end, an empty database). Test for `=== true`.
   *
   * @example
   * ```ts
   * if ((await sdk.audit.verifyChain({ sessionId })) !== true) throw new Error("nothing to verify");
   * ```
   * @returns true when rows were verified and intact; false when there was nothing to verify.
   * @throws {ChainIntegrityError} (a rejection) naming the chain, seq and event id of the
   *   first bad row — a row signed by a key that is not in the keyring is bad here, as it
   *   proves nothing — or `gov_audit.key_rotations` for a bad key rotation record. A session
   *   that has a checkpoint but no rows fails (its rows were deleted). `INVALID_ARGUMENT`
   *   (a rejection) for a session or agent id that is not a non-empty string of at most 256
   *   characters, both at once, or a bad `fromSeq`/`toSeq`. `AUDIT_WITNESS_UNAVAILABLE` (a
   *   rejection, {@link WitnessUnavailableError}) for a `witness` file that cannot be read.
   */
  async verifyChain(options: VerifyChainOptions = {}): Promise<boolean> {
    chainWindow(options);
    await this.flush();
    const report = await this.#verify(options, true);
    return report.verified > 0;
  }

  /**
   * Like {@link verifyChain} but counts instead of throwing: rows verified, failed, and
   * unverified (signed by a key that is not in the keyring), with the first failures, and
   * `empty: true` when there was nothing to verify; with a `witness`, the entries it gave
   * (`witnessEntries`) and its damaged lines (`damagedWitnessLines`). Bad options and a
   * witness that cannot be read still reject.
   */
  async verifyChainDetailed(options: VerifyChainOptions = {}): Promise<VerificationReport> {
    chainWindow(options);
    await this.flush();
    return this.#verify(options, false);
  }

  /**
   * Sign the head (seq and HMAC) of every chain — or of the given sessions' chains — into
   * the checkpoints table, with the HMAC and, when a signing key is configured, an Ed25519
   * signature; then append the checkpoints to the witness, if there is one. Rows deleted from
   * the end of a chain after a checkpoint are then caught by verification, and, with a
   * witness, rows and checkpoints deleted together too.
   *
   * A failing witness does not fail this call: it is warned about and recorded
   * (`audit.witness_failed`, `metrics().witnessPending`), and its checkpoints are appended at
   * the next checkpoint (or at `close()`).
   *
   * @example
   * ```ts
   * await sdk.audit.checkpoint(); // every chain
   * await sdk.audit.checkpoint({ sessionIds: [sessionId] });
   * ```
   * @returns how many chains were checkpointed.
   * @throws {InvalidArgumentError} (as a rejection) when `sessionIds` is not an array of
   *   session ids; nothing is written.
   */
  async checkpoint(options: { sessionIds?: readonly string[] } = {}): Promise<number> {
    const chains = checkpointChains(options);
    await this.flush();
    const key = this.#keyring.current;
    const signingKey = this.#signingKey;
    const heads = await this.#store.query<{ chain: string; seq: number | string; hmac: string }>(
      chains
        ? sql`select distinct on (chain) chain, seq, hmac from gov_audit.events where chain = any(${sql.param([...chains])}::text[]) order by chain, seq desc`
        : sql`select distinct on (chain) chain, seq, hmac from gov_audit.events order by chain, seq desc`,
    );
    if (heads.length === 0) return 0;
    const createdAt = this.#clock.now().toISOString();
    const rows = heads.map((head) => {
      const checkpoint = {
        checkpointId: randomUUID(),
        chain: head.chain,
        seq: Number(head.seq),
        hash: head.hmac,
        createdAt,
        keyId: key.id,
        signingKeyId: signingKey?.id ?? null,
      };
      const payload = checkpointPayload(checkpoint);
      return {
        ...checkpoint,
        payload,
        hmac: key.hmacHex(payload),
        signature: signingKey?.sign(payload) ?? null,
      };
    });
    try {
      for (let index = 0; index < rows.length; index += PAGE) {
        const page = rows.slice(index, index + PAGE);
        await this.#store.query(sql`
          insert into gov_audit.checkpoints (checkpoint_id, chain, seq, hash, created_at, key_id, hmac, payload, signature, signing_key_id)
          select * from unnest(
            ${sql.param(page.map((row) => row.checkpointId))}::uuid[], ${sql.param(page.map((row) => row.chain))}::text[],
            ${sql.param(page.map((row) => row.seq))}::bigint[], ${sql.param(page.map((row) => row.hash))}::text[],
            ${sql.param(page.map((row) => row.createdAt))}::timestamptz[], ${sql.param(page.map((row) => row.keyId))}::text[],
            ${sql.param(page.map((row) => row.hmac))}::text[], ${sql.param(page.map((row) => row.payload))}::text[],
            ${sql.param(page.map((row) => row.signature))}::text[], ${sql.param(page.map((row) => row.signingKeyId))}::text[])`);
      }
    } catch (error) {
      throw await this.#checkpointRefusal(error);
    }
    // In the database first: a witness entry always has its row, so one missing is a deletion.
    await this.#witnessAppend(rows.map(witnessedCheckpoint));
    return rows.length;
  }

  /**
   * Rotate the chain key: new rows are signed with `newKey`; rows already written keep
   * verifying under the key they name while it stays in the keyring. The rotation is
   * recorded in `gov_audit.key_rotations`, signed by the old key and by the new one, logged
   * as `audit.key_rotated` (chain `agent:gov.audit`), and that chain is checkpointed.
   *
   * From then on the old key is retired everywhere: the database refuses rows and
   * checkpoints signed with it (a process still holding it spools its events until it is
   * restarted), a module refuses to start with it, verification fails rows it signs dated
   * after the rotation (FORMAT.md, "Key rotation"), and it never becomes current again.
   *
   * With several processes: rotate in one; restart the others with the new secret as
   * `GOVERNANCE_AUDIT_SECRET` and the old one as `GOVERNANCE_CHAIN_KEY_<old key id>` (their
   * events wait in their spools meanwhile, signed with the old key: after the restart those
   * spools are set aside, and {@link AuditModule.importSpool} with `acceptRetiredKey` replays
   * them, signed with the new key); then take a checkpoint (`checkpoint()`), which pins every chain's head under the new key.
   *
   * @example
   * ```ts
   * const { oldKeyId, newKeyId } = await sdk.audit.rotateChainKey({
   *   newKey: process.env.NEW_AUDIT_SECRET!,
   *   operatorId: "alice@example.com",
   *   reason: "scheduled rotation",
   * });
   * ```
   * Rejects, changing nothing, with `KEY_ROTATION_INVALID` when `newKey` is the current key
   * or a key the history already used, or when this process's key is not the history's
   * newest; with {@link RetiredKeyError} when another process already rotated this process's
   * key out; with `INVALID_ARGUMENT` or `SECRET_INVALID` for bad input.
   */
  async rotateChainKey(
    options: RotateChainKeyOptions,
  ): Promise<{ oldKeyId: string; newKeyId: string }> {
    if (typeof options !== "object" || options === null) {
      throw new InvalidArgumentError(
        "options",
        "must be { newKey, operatorId, reason }.",
        'Pass rotateChainKey({ newKey, operatorId: "alice@example.com", reason: "scheduled rotation" }).',
      );
    }
    const operatorId = boundedText(options.operatorId, "operatorId", 256, "who rotates the key");
    const reason = boundedText(options.reason, "reason", 1_024, "why the key is rotated");
    if (typeof options.newKey !== "string") {
      throw new InvalidArgumentError(
        "newKey",
        `must be a string (the new secret), got ${options.newKey === null ? "null" : typeof options.newKey}.`,
        "Pass a secret of at least 32 bytes, e.g. from `openssl rand -base64 48`.",
      );
    }
    const next = new ChainKey(options.newKey, "newKey");
    // One rotation at a time in this process; other processes are held off by a lock.
    const run = this.#rotationQueue.then(() => this.#rotate(next, operatorId, reason));
    this.#rotationQueue = run.catch(() => undefined);
    return run;
  }

  async #rotate(
    next: ChainKey,
    operatorId: string,
    reason: string,
  ): Promise<{ oldKeyId: string; newKeyId: string }> {
    const old = this.#keyring.current;
    if (next.fingerprint === old.fingerprint) {
      throw new GovernanceError({
        code: AUDIT_ERROR_CODES.KEY_ROTATION_INVALID,
        message: `The new key is the current key (${old.id}).`,
        recoveryHint: "Generate a new secret with `openssl rand -base64 48`.",
      });
    }
    await this.flush();
    // Hold the writer: nothing is signed with the old key once the rotation is recorded.
    this.#paused = true;
    const rotatedAt = this.#clock.now().toISOString();
    const rotationId = randomUUID();
    const payload = rotationPayload({
      rotationId,
      oldKeyId: old.id,
      newKeyId: next.id,
      operatorId,
      reason,
      rotatedAt,
    });
    try {
      await this.#store.transaction(async (tx) => {
        await tx.execute(sql`select pg_advisory_xact_lock(${ROTATION_LOCK}::bigint)`);
        const result = await tx.execute<RotationRow>(ROTATIONS_QUERY);
        const rotations = result.rows.map(toStoredRotation);
        const retirement = retirementOf(this.#keyring, rotations);
        if (retirement)
          throw new RetiredKeyError({ ...retirement, action: "rotate the audit chain key" });
        const used = rotations.find(
          (rotation) => rotation.oldKeyId === next.id || rotation.newKeyId === next.id,
        );
        if (used) {
          throw new GovernanceError({
            code: AUDIT_ERROR_CODES.KEY_ROTATION_INVALID,
            message: `Key ${next.id} was a chain key already (key rotation ${used.rotationId}, ${used.oldKeyId} → ${used.newKeyId} at ${used.rotatedAt}); a retired key never becomes current again.`,
            recoveryHint: "Generate a new secret with `openssl rand -base64 48`.",
          });
        }
        if (rotations.length > 0 && !rotations.some((rotation) => rotation.newKeyId === old.id)) {
          throw new GovernanceError({
            code: AUDIT_ERROR_CODES.KEY_ROTATION_INVALID,
            message: `This process's chain key ${old.id} is not in the key rotation history (its newest key is ${rotations.at(-1)?.newKeyId}): rotating from it would fork the history.`,
            recoveryHint: "Rotate from a process that runs with the newest key.",
          });
        }
        await tx.execute(sql`
          insert into gov_audit.key_rotations (rotation_id, old_key_id, new_key_id, rotated_at, payload, hmac_old, hmac_new)
          values (${rotationId}::uuid, ${old.id}, ${next.id}, ${rotatedAt}::timestamptz, ${payload}, ${old.hmacHex(payload)}, ${next.hmacHex(payload)})`);
      });
      this.#keyring = new Keyring(next, this.#keyring.keys);
    } finally {
      this.#paused = false;
      this.#notify();
      this.#kick();
    }
    await this.#enqueue(
      normalizeEvent({
        agentId: SYSTEM_AGENT,
        kind: KEY_ROTATED_KIND,
        metadata: { rotationId, oldKeyId: old.id, newKeyId: next.id, operatorId, reason },
      }),
    );
    // Pin the record of the rotation: deleting it from the end of its chain is then caught.
    try {
      await this.checkpoint({ sessionIds: [`${AGENT_CHAIN_PREFIX}${SYSTEM_AGENT}`] });
    } catch (error) {
      this.#logger.warn(
        "Could not checkpoint the chain that records the key rotation; call checkpoint() once the database is back.",
        { error: describe(error) },
      );
    }
    this.#logger.info(`Audit chain key rotated from ${old.id} to ${next.id}.`);
    return { oldKeyId: old.id, newKeyId: next.id };
  }

  /**
   * Import a spool file that replay refused or left alone, once an operator knows where it
   * comes from: one signed with a retired key (a process that ran on after a rotation, whose
   * rows the database refused), an unsigned spool of a version before spool files were
   * signed, a file of another host, a file that replaced one a process held. The spool set
   * such files aside (`rejected-…` in the spool directory, named by the `audit.spool_rejected`
   * event's `keptAs`) or left them (`audit.spool_stranded`).
   *
   * The file must prove whole under its MACs (a torn last line aside), and every line must be
   * an audit event as the spool writes it; a retired key or a missing signature is refused
   * unless the options accept it. First an `audit.spool_imported` event (chain
   * `agent:gov.audit`) records who vouched for which file (its SHA-256, key, entry count) and
   * why; then the events go to this process's spool and are written into their chains, in
   * order, signed with the current key and keeping their ids and times (events already in
   * the chain are skipped, so importing twice writes nothing twice). The file itself is left
   * as it is: delete it once `metrics().spoolDepth` is back to 0.
   *
   * Rejects, importing nothing, with `SPOOL_FILE_REFUSED` (the file, the line, the reason),
   * `INVALID_ARGUMENT`, `AUDIT_NOT_CONFIGURED` (no spool), a store error when the rotation
   * history cannot be read, or `SPOOL_IMPORT_FAILED` when the import cannot be recorded.
   *
   * @example
   * ```ts
   * const result = await sdk.audit.importSpool(join(spoolDirectory, keptAs), {
   *   operatorId: "alice@example.com",
   *   reason: "worker-7 ran on the old key until its restart",
   *   acceptRetiredKey: true,
   * });
   * result.entries; // queued for the chain; result.importEventId records the import
   * ```
   */
  async importSpool(path: string, options: ImportSpoolOptions): Promise<SpoolImportResult> {
    if (typeof path !== "string" || path.trim() === "") {
      throw new InvalidArgumentError(
        "path",
        "must be the path of a spool file.",
        "Pass the path of the file the spool set aside (the keptAs of its audit.spool_rejected event, in the spool directory).",
      );
    }
    if (typeof options !== "object" || options === null) {
      throw new InvalidArgumentError(
        "options",
        "must be { operatorId, reason, acceptRetiredKey?, acceptUnsigned? }.",
        'Pass importSpool(path, { operatorId: "alice@example.com", reason: "where the file comes from" }).',
      );
    }
    const operatorId = boundedText(options.operatorId, "operatorId", 256, "who vouches for it");
    const reason = boundedText(options.reason, "reason", 1_024, "where the file comes from");
    for (const field of ["acceptRetiredKey", "acceptUnsigned"] as const) {
      const value: unknown = options[field];
      if (value !== undefined && typeof value !== "boolean") {
        throw new InvalidArgumentError(
          field,
          `must be true or false, got ${value === null ? "null" : typeof value}.`,
          `Pass ${field}: true only for a file whose writer you know.`,
        );
      }
    }
    const spool = this.#spool;
    if (!spool) {
      throw new GovernanceError({
        code: AUDIT_ERROR_CODES.AUDIT_NOT_CONFIGURED,
        message: "importSpool needs the audit spool, and it is turned off (spoolDirectory: null).",
        recoveryHint:
          "Import the file from a process whose audit spool is on (auditSpoolDirectory).",
      });
    }
    if (!this.#keyHistoryKnown) {
      const error = await this.#readKeyHistory();
      if (error !== null) throw toStoreError(error);
    }
    const file = await readSpoolFile<unknown>(path, {
      name: "audit",
      keyring: this.#keyring,
      isRetiredKey: (keyId) => this.#retiredKeys.has(keyId),
      acceptRetiredKey: options.acceptRetiredKey === true,
      acceptUnsigned: options.acceptUnsigned === true,
    });
    const name = basename(path);
    const entries = file.entries.map((raw, index) => importedEntry(raw, index + 1, name));
    if (entries.length === 0) {
      throw new SpoolFileError({
        file: name,
        line: null,
        reason: "it holds no events",
        fix: "Nothing to import; the file can be deleted.",
      });
    }
    // The chain says who vouched for which file, and why, before the events it brings.
    const record = await this.#enqueue(
      normalizeEvent({
        agentId: SYSTEM_AGENT,
        kind: "audit.spool_imported",
        metadata: {
          file: name,
          sha256: file.sha256,
          keyId: file.keyId,
          retiredKey: file.retiredKey,
          signed: file.signed,
          closed: file.closed,
          torn: file.torn,
          entries: entries.length,
          firstEventId: entries[0]?.eventId ?? null,
          lastEventId: entries.at(-1)?.eventId ?? null,
          operatorId,
          reason,
        },
      }),
    );
    if (record.status === "placeholder") {
      throw new GovernanceError({
        code: AUDIT_ERROR_CODES.SPOOL_IMPORT_FAILED,
        message: `The import of ${name} could not be recorded (neither the database nor the spool took the audit.spool_imported event); nothing was imported.`,
        recoveryHint:
          "Check the spool directory and the database (metrics().lastError), then import again.",
      });
    }
    await spool.append(entries);
    this.#kick();
    this.#logger.warn(
      `Imported ${entries.length} audit events from the spool file ${name} (${file.signed ? `signed with key ${file.keyId}${file.retiredKey ? ", retired" : ""}` : "unsigned"}), vouched for by ${operatorId}; they are written into the chain as the spool is replayed.`,
      { file: name, sha256: file.sha256, importEventId: record.eventId },
    );
    return {
      file: name,
      sha256: file.sha256,
      entries: entries.length,
      keyId: file.keyId,
      retiredKey: file.retiredKey,
      signed: file.signed,
      importEventId: record.eventId,
    };
  }

  /** Write what is pending (into the chain, or the spool), then stop. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    await this.flush();
    this.#closed = true;
    if (this.#retryTimer) clearTimeout(this.#retryTimer);
    if (this.#checkpointTimer) clearInterval(this.#checkpointTimer);
    if (this.#witnessBacklog.length > 0) await this.#witnessAppend([]);
    if (this.#witnessBacklog.length > 0) {
      this.#logger.error(
        `${this.#witnessBacklog.length} audit checkpoints never reached the witness; they are in gov_audit.checkpoints only.`,
        { checkpoints: this.#witnessBacklog.length },
      );
    }
    await this.#spool?.close();
    if ((this.#spool?.depth ?? 0) > 0) {
      this.#logger.warn(
        `${this.#spool?.depth} audit events are still in the spool; the next start replays them.`,
        {
          directory: this.#spool?.directory,
        },
      );
    }
  }

  // ---------------------------------------------------------------------------------------
  // Evidence outside the database: the witness, and the spool's integrity.

  /**
   * Append checkpoints (after any that wait from an earlier failure) to the witness. Never
   * throws: a failure is warned about, counted, recorded as `audit.witness_failed`, and the
   * checkpoints wait for the next call (the oldest are dropped, loudly, beyond
   * {@link MAX_WITNESS_BACKLOG}).
   */
  #witnessAppend(checkpoints: readonly WitnessedCheckpoint[]): Promise<void> {
    const witness = this.#witness;
    if (!witness) return Promise.resolve();
    const run = async () => {
      this.#witnessBacklog.push(...checkpoints);
      const excess = this.#witnessBacklog.length - MAX_WITNESS_BACKLOG;
      if (excess > 0) {
        this.#witnessBacklog.splice(0, excess);
        this.#logger.error(
          `The checkpoint witness has failed for ${MAX_WITNESS_BACKLOG} checkpoints; the ${excess} oldest will not reach it (they stay in gov_audit.checkpoints).`,
          { dropped: excess },
        );
      }
      if (this.#witnessBacklog.length === 0) return;
      const batch = this.#witnessBacklog;
      this.#witnessBacklog = [];
      try {
        await witness.append(batch);
        if (batch.length > checkpoints.length) {
          this.#logger.info(
            `The checkpoint witness works again; ${batch.length - checkpoints.length} waiting checkpoints were appended.`,
          );
        }
      } catch (error) {
        this.#witnessBacklog = [...batch, ...this.#witnessBacklog];
        this.#metrics.witnessFailures++;
        const reason = truncate(describe(error), 1_000);
        this.#logger.warn(
          "The checkpoint witness could not be written; the checkpoints are in the database and will be appended to the witness at the next checkpoint.",
          { error: reason, pending: this.#witnessBacklog.length },
        );
        if (!this.#closed) {
          await this.#enqueue(
            normalizeEvent({
              agentId: SYSTEM_AGENT,
              kind: "audit.witness_failed",
              metadata: {
                error: reason,
                checkpoints: checkpoints.length,
                pending: this.#witnessBacklog.length,
              },
            }),
          );
        }
      }
    };
    const result = this.#witnessQueue.then(run, run);
    this.#witnessQueue = result.catch(() => undefined);
    return result;
  }

  /** A spool file was refused, torn or not closed cleanly: evidence of it goes in the chain. */
  #spoolProblem(problem: SpoolIntegrityProblem): void {
    if (problem.kind === "rejected") this.#metrics.spoolRejections++;
    if (this.#closed) return;
    void this.#enqueue(
      normalizeEvent({
        agentId: SYSTEM_AGENT,
        kind: `audit.spool_${problem.kind}`,
        metadata: {
          spool: problem.spool,
          file: problem.file,
          keptAs: problem.keptAs,
          line: problem.line,
          reason: problem.reason,
          keyId: problem.keyId,
          proven: problem.proven,
          lost: problem.lost,
        },
      }),
    );
  }

  /** Spool files of other hosts were left alone at start: evidence of it goes in the chain. */
  #spoolStranded(stranded: StrandedSpoolFiles): void {
    if (this.#closed) return;
    void this.#enqueue(
      normalizeEvent({
        agentId: SYSTEM_AGENT,
        kind: "audit.spool_stranded",
        metadata: {
          spool: stranded.spool,
          files: stranded.files,
          hosts: stranded.hosts.slice(0, 20),
          oldestAgeMs: stranded.oldestAgeMs,
        },
      }),
    );
  }

  // ---------------------------------------------------------------------------------------
  // The writer: one drain loop per process, so that appends of a chain keep their order.

  #kick(): void {
    if (this.#pumpScheduled) return;
    this.#pumpScheduled = true;
    // Let everything logged in this turn of the event loop join the same batch.
    setImmediate(() => {
      this.#pumpScheduled = false;
      this.#pump();
    });
  }

  /** Wake whoever waits for the writer to make progress (flush). */
  #notify(): void {
    const waiters = this.#waiters.splice(0);
    for (const wake of waiters) wake();
  }

  /**
   * Start what can start: while events wait in the spool, one recovery loop that replays
   * them in order (new events queue behind them); otherwise up to `#lanes` batches at once,
   * no chain in two of them, so that each chain keeps its order.
   */
  #pump(): void {
    if (this.#recovering || this.#paused) return;
    if ((this.#spool?.depth ?? 0) > 0) {
      if (this.#inFlight > 0) return; // the last batch to land starts the recovery
      this.#recovering = true;
      this.#recover()
        .catch((error: unknown) =>
          this.#logger.error("The audit writer failed unexpectedly.", { error: describe(error) }),
        )
        .finally(() => {
          this.#recovering = false;
          this.#notify();
          if (this.#queue.length > 0) this.#kick();
        });
      return;
    }
    while (this.#inFlight < this.#lanes && this.#queue.length > 0) {
      // Share what waits among the free lanes, so that they overlap instead of taking turns.
      const batch = this.#takeBatch(Math.ceil(this.#queue.length / (this.#lanes - this.#inFlight)));
      if (batch.length === 0) return; // every waiting chain has a batch in flight
      this.#inFlight++;
      this.#fly(batch).finally(() => {
        this.#inFlight--;
        for (const pending of batch) this.#busyChains.delete(pending.chain);
        this.#notify();
        this.#pump();
      });
    }
  }

  /**
   * The next batch, oldest first, of chains that have no batch in flight: whole chains (all
   * their waiting events) until it holds `share` events, then no new chain; never more than
   * `maxBatchSize`. Once an event of a chain is left waiting, so are the later ones of that
   * chain, so that each chain keeps its order.
   */
  #takeBatch(share: number): Pending[] {
    // Which chains: in order of their oldest waiting event, until they hold `share` events.
    const counts = new Map<string, number>();
    for (const pending of this.#queue) {
      if (!this.#busyChains.has(pending.chain))
        counts.set(pending.chain, (counts.get(pending.chain) ?? 0) + 1);
    }
    const chosen = new Set<string>();
    let size = 0;
    for (const [chain, count] of counts) {
      if (size >= share || (size > 0 && size + count > this.#maxBatch)) break;
      chosen.add(chain);
      size += count;
    }
    const batch: Pending[] = [];
    const waiting: Pending[] = [];
    const held = new Set<string>();
    for (const pending of this.#queue) {
      if (chosen.has(pending.chain) && !held.has(pending.chain) && batch.length < this.#maxBatch) {
        batch.push(pending);
      } else {
        held.add(pending.chain);
        waiting.push(pending);
      }
    }
    this.#queue = waiting;
    for (const chain of chosen) this.#busyChains.add(chain);
    return batch;
  }

  /** Write one batch; when the database cannot take it, it goes to the spool. */
  async #fly(batch: readonly Pending[]): Promise<void> {
    try {
      const records = await this.#write(batch);
      this.#recovered();
      for (const [index, pending] of batch.entries()) {
        pending.resolve(records[index] as AuditEventRecord);
      }
      this.#publish(records);
    } catch (error) {
      this.#enterDegraded(error);
      await this.#divert(batch, this.#metrics.lastError?.message ?? "the database is unavailable");
    }
  }

  /**
   * Replay the spool in order; while the database is still away, what is queued goes to the
   * spool behind it (a retry timer comes back later).
   */
  async #recover(): Promise<void> {
    while ((this.#spool?.depth ?? 0) > 0) {
      if (await this.#tryReplay()) return;
      if (this.#queue.length === 0) return;
      const batch = this.#queue.splice(0, this.#maxBatch);
      await this.#divert(batch, this.#metrics.lastError?.message ?? "the database is unavailable");
    }
  }

  /**
   * Write a batch into the chain and return its records, in order.
   *
   * The fast path is one autocommit statement: when this process knows the head of every
   * chain in the batch (it wrote or read it last), it signs against those heads and sends
   * the rows; the statement takes the chains' advisory locks, inserts, and moves the heads.
   * If another process appended meanwhile, the unique index on (chain, seq) refuses the
   * statement — nothing is written — and the batch takes the locked path: a transaction that
   * takes the locks, reads the heads, signs and inserts. A unique violation there means the
   * heads table disagrees with the chain (it is derived data and may have been lost or
   * restored from an older backup): the heads are rebuilt from the chain, and it tries once
   * more.
   */
  async #write(batch: readonly Unsigned[]): Promise<AuditEventRecord[]> {
    const chains = [...new Set(batch.map((pending) => pending.chain))];
    const locks = sortedLocks(chains);
    const now = Date.now();
    const heads = new Map<string, Head>();
    for (const chain of chains) {
      const head = this.#heads.get(chain);
      if (!head || (this.#contended.get(chain) ?? 0) > now) break;
      heads.set(chain, head);
    }
    if (heads.size === chains.length) {
      const signed = this.#sign(batch, heads);
      try {
        await this.#store.query(this.#appendStatement(locks, signed.rows));
        return this.#stored(signed.records);
      } catch (error) {
        if (!isUniqueViolation(error)) throw error;
        // Another process wrote to one of these chains: its appends win the lock for a while.
        if (this.#contended.size > MAX_CACHED_HEADS) {
          for (const [chain, until] of this.#contended)
            if (until <= now) this.#contended.delete(chain);
        }
        for (const chain of chains) {
          this.#heads.delete(chain);
          this.#contended.set(chain, now + CONTENDED_MS);
        }
      }
    }
    try {
      return await this.#writeLocked(batch, locks);
    } catch (error) {
      if (!isUniqueViolation(error)) throw error;
      this.#logger.warn("Audit chain heads were out of date; rebuilding them from the chain.", {
        chains: chains.length,
      });
      await this.#store.query(sql`
        insert into gov_audit.heads (chain, seq, hmac, event_id)
        select distinct on (chain) chain, seq, hmac, event_id from gov_audit.events
        where chain = any(${sql.param(chains)}::text[]) order by chain, seq desc
        on conflict (chain) do update set seq = excluded.seq, hmac = excluded.hmac, event_id = excluded.event_id`);
      return this.#writeLocked(batch, locks);
    }
  }

  /** The locked path: lock the chains, read their heads, sign and insert, in one transaction. */
  async #writeLocked(
    batch: readonly Unsigned[],
    locks: readonly ChainLock[],
  ): Promise<AuditEventRecord[]> {
    const signed = await this.#store.transaction(async (tx) => {
      const result = await tx.execute<{ chain: string; seq: number | string; hmac: string }>(
        sql`select chain, seq, hmac from gov_audit.lock_heads(${sql.param(locks.map((lock) => lock.chain))}::text[], ${sql.param(locks.map((lock) => lock.key))}::bigint[])`,
      );
      const heads = new Map<string, Head>(
        result.rows.map((row) => [row.chain, { seq: Number(row.seq), hmac: row.hmac }]),
      );
      const signed = this.#sign(batch, heads);
      await tx.execute(this.#appendStatement(locks, signed.rows));
      return signed;
    });
    return this.#stored(signed.records);
  }

  /** Sign a batch against the given heads (a chain without one starts at seq 1). */
  #sign(
    batch: readonly Unsigned[],
    heads: ReadonlyMap<string, Head>,
  ): { records: AuditEventRecord[]; rows: string } {
    const key = this.#keyring.current;
    const state = new Map(heads);
    const records: AuditEventRecord[] = [];
    const rows: { p: string; h: string }[] = [];
    for (const pending of batch) {
      const head = state.get(pending.chain);
      const seq = (head?.seq ?? 0) + 1;
      const prevHash = head?.hmac ?? null;
      const signed = signRecord(key, pending.event, {
        eventId: pending.eventId,
        chain: pending.chain,
        seq,
        prevHash,
        createdAt: pending.createdAt,
      });
      state.set(pending.chain, { seq, hmac: signed.hmac });
      rows.push({ p: signed.payload, h: signed.hmac });
      records.push(
        makeRecord(pending.event, {
          eventId: pending.eventId,
          chain: pending.chain,
          seq,
          prevHash,
          hmac: signed.hmac,
          keyId: key.id,
          createdAt: pending.createdAt,
          status: "stored",
        }),
      );
    }
    // One JSON parameter: serialized natively, where a dozen text arrays are escaped in JS.
    return { records, rows: JSON.stringify(rows) };
  }

  /** One call of `gov_audit.append` (drizzle/0002_append_function.sql): lock, insert, move the heads. */
  #appendStatement(locks: readonly ChainLock[], rows: string): SQL {
    const keys = locks.map((lock) => lock.key);
    return sql`select gov_audit.append(${sql.param(keys)}::bigint[], ${rows}::json)`;
  }

  /** Count a written batch and remember its chains' new heads for the fast path. */
  #stored(records: AuditEventRecord[]): AuditEventRecord[] {
    if (this.#heads.size > MAX_CACHED_HEADS) this.#heads.clear();
    for (const record of records) {
      this.#heads.set(record.chain, { seq: record.seq as number, hmac: record.hmac });
    }
    this.#metrics.batches++;
    this.#metrics.stored += records.length;
    return records;
  }

  #publish(records: readonly AuditEventRecord[]): void {
    if (this.#subscribers.size === 0) return;
    for (const record of records) {
      for (const subscriber of this.#subscribers) {
        try {
          const result = subscriber(record);
          if (result && typeof (result as Promise<void>).then === "function") {
            (result as Promise<void>).catch((error: unknown) => this.#subscriberFailed(error));
          }
        } catch (error) {
          this.#subscriberFailed(error);
        }
      }
    }
  }

  #subscriberFailed(error: unknown): void {
    this.#metrics.subscriberErrors++;
    this.#logger.warn("An audit subscriber failed; the chain and the host are unaffected.", {
      error: describe(error),
    });
  }

  #enterDegraded(error: unknown): void {
    const classified = toStoreError(error);
    const retired = StoreError.isInstance(classified) && classified.sqlState === RETIRED_KEY_STATE;
    this.#metrics.lastError = StoreError.isInstance(classified)
      ? {
          code: retired ? this.#retiredCode() : classified.code,
          message: classified.message,
        }
      : {
          code: "AUDIT_WRITE_FAILED",
          message: error instanceof Error ? error.message : String(error),
        };
    if (retired && !this.#retiredKeyReported) {
      // A rotation record names this key as retired: the database refuses its rows
      // (0004_retired_keys.sql). Whether the record is genuine decides what to tell.
      this.#retiredKeyReported = true;
      if (this.#forgedRetirement.length === 0) void this.#explainRetiredKey(classified.message);
    }
    if (!this.#metrics.degraded) {
      this.#logger.warn(
        `The audit chain cannot be written (${this.#metrics.lastError.code}); events go to the local spool and will be replayed in order.`,
        { directory: this.#spool?.directory ?? null },
      );
    }
    this.#metrics.degraded = true;
    this.#retryAt = Date.now() + this.#retryDelayMs;
    this.#scheduleRetry();
  }

  /** The code of a write refused because a rotation record names the current key as retired. */
  #retiredCode(): string {
    return this.#forgedRetirement.length > 0
      ? AUDIT_ERROR_CODES.AUDIT_KEY_ROTATION_FORGED
      : AUDIT_ERROR_CODES.AUDIT_KEY_RETIRED;
  }

  /**
   * The database refused a write because a rotation record names this process's key as
   * retired. If one such record is signed by the key, another process rotated it out: restart
   * with the newest key. If none is, the records are forged, and restarting would not help.
   */
  async #explainRetiredKey(error: string): Promise<void> {
    const current = this.#keyring.current.id;
    const records = await this.#retiringRecords();
    if (records && records.forged.length > 0 && !records.retirement) {
      this.#reportForgedRetirement(records.forged);
      return;
    }
    this.#logger.error(
      `This process signs the audit chain with key ${current}, which ${records ? "another process rotated out" : "a key rotation record names as rotated out (if that record is not signed by this key, it is forged: verifyChain reports it)"}: the database refuses its rows. Restart it with the newest chain key as GOVERNANCE_AUDIT_SECRET and ${current} as GOVERNANCE_CHAIN_KEY_${current.toUpperCase()}; its events ${this.#spool ? `wait in the spool, signed with ${current}: once it is retired, the restarted process sets that spool aside, and importSpool(path, { acceptRetiredKey: true, operatorId, reason }) replays it` : "are lost meanwhile (no spool is configured)"}.`,
      { error },
    );
  }

  /**
   * The rotation records that name the current key as retired: the genuine retirement (one
   * signed by the key), and the ids of those that are not signed by it (forged). Null when
   * the history cannot be read.
   */
  async #retiringRecords(): Promise<{
    retirement: ReturnType<typeof retirementOf>;
    forged: string[];
  } | null> {
    let rotations: StoredRotation[];
    try {
      rotations = await this.#rotations();
    } catch {
      return null;
    }
    const current = this.#keyring.current.id;
    return {
      retirement: retirementOf(this.#keyring, rotations),
      forged: rotations
        .filter(
          (rotation) =>
            rotation.oldKeyId === current && rotationProblem(rotation, this.#keyring) !== null,
        )
        .map((rotation) => rotation.rotationId),
    };
  }

  /**
   * What `checkpoint()` rejects with when the database refused its checkpoints: for a key a
   * rotation record names as retired, whether that record is genuine ({@link RetiredKeyError})
   * or forged (`AUDIT_KEY_ROTATION_FORGED`); any other error as it is.
   */
  async #checkpointRefusal(error: unknown): Promise<unknown> {
    const classified = toStoreError(error);
    if (!StoreError.isInstance(classified) || classified.sqlState !== RETIRED_KEY_STATE)
      return error;
    const records = await this.#retiringRecords();
    if (records?.retirement)
      return new RetiredKeyError({ ...records.retirement, action: "checkpoint the audit chains" });
    if (!records || records.forged.length === 0) return error;
    if (this.#forgedRetirement.length === 0) this.#reportForgedRetirement(records.forged);
    return new GovernanceError({
      code: AUDIT_ERROR_CODES.AUDIT_KEY_ROTATION_FORGED,
      message: `Cannot checkpoint the audit chains: the database refuses what key ${this.#keyring.current.id} signs because of forged key rotation record${records.forged.length === 1 ? "" : "s"} ${records.forged.join(", ")} (not signed by that key). The key was not rotated out.`,
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
    this.#forgedRetirement = [...rotationIds];
    this.#metrics.forgedKeyRotations = rotationIds.length;
    if (this.#metrics.lastError?.code === AUDIT_ERROR_CODES.AUDIT_KEY_RETIRED)
      this.#metrics.lastError = { ...this.#metrics.lastError, code: this.#retiredCode() };
    const current = this.#keyring.current.id;
    const records = rotationIds.length === 1 ? "record" : "records";
    this.#logger.error(
      `Forged audit key rotation ${records} ${rotationIds.join(", ")}: ${rotationIds.length === 1 ? "it names" : "they name"} this process's chain key ${current} as rotated out, but ${rotationIds.length === 1 ? "is" : "are"} not signed by it (whoever can insert rows into gov_audit.key_rotations can forge one, not sign one). The key was not rotated out: do not restart with another key. While the ${records} ${rotationIds.length === 1 ? "is" : "are"} there, the database refuses every audit row this key signs; events ${this.#spool ? "wait in the local spool and are written once the database takes them again" : "are lost meanwhile (no spool is configured)"}. Remove the forged ${records} as the owner of gov_audit.key_rotations (the table is append-only: its trigger key_rotations_append_only must be disabled for that delete), and find out who could write it; verifyChain reports ${rotationIds.length === 1 ? "it" : "them"} under gov_audit.key_rotations.`,
      { rotations: rotationIds, keyId: current },
    );
  }

  #scheduleRetry(): void {
    if (this.#retryTimer || this.#closed) return;
    this.#retryTimer = setTimeout(
      () => {
        this.#retryTimer = null;
        this.#kick();
      },
      Math.max(0, this.#retryAt - Date.now()),
    );
    this.#retryTimer.unref();
  }

  /** Put a batch in the spool, each chain's first degraded event after a marker. */
  async #divert(batch: readonly Pending[], reason: string): Promise<void> {
    if (!this.#spool) {
      for (const pending of batch)
        pending.resolve(
          this.#placeholder(
            pending.event,
            pending.eventId,
            pending.createdAt,
            "the database is unavailable and no spool is configured",
          ),
        );
      return;
    }
    const entries: SpoolEntry[] = [];
    for (const pending of batch) {
      if (!this.#markedChains.has(pending.chain)) {
        this.#markedChains.add(pending.chain);
        const marker = normalizeEvent({
          agentId: pending.event.agentId,
          kind: "chain.degraded_start",
          sessionId: pending.event.sessionId,
          metadata: { reason: truncate(reason, 1_000), since: pending.createdAt.toISOString() },
        });
        entries.push({
          v: 1,
          eventId: randomUUID(),
          chain: pending.chain,
          createdAt: pending.createdAt.toISOString(),
          event: marker,
        });
      }
      entries.push({
        v: 1,
        eventId: pending.eventId,
        chain: pending.chain,
        createdAt: pending.createdAt.toISOString(),
        event: pending.event,
      });
    }
    try {
      await this.#spool.append(entries);
      this.#metrics.spooled += batch.length;
      for (const pending of batch) {
        pending.resolve(
          makeRecord(pending.event, {
            eventId: pending.eventId,
            chain: pending.chain,
            seq: null,
            prevHash: null,
            hmac: "",
            keyId: null,
            createdAt: pending.createdAt,
            status: "spooled",
          }),
        );
      }
    } catch (error) {
      this.#logger.error(
        "The audit spool cannot be written either; these events are lost and returned as placeholders.",
        {
          directory: this.#spool.directory,
          events: batch.length,
          error: describe(error),
        },
      );
      for (const pending of batch)
        pending.resolve(
          this.#placeholder(
            pending.event,
            pending.eventId,
            pending.createdAt,
            "neither the database nor the spool could take it",
          ),
        );
    }
  }

  /**
   * Write the spool into the chain, in order, if the database is back (and the backoff has
   * passed). Entries already in the chain (a replay interrupted by a crash) are skipped.
   * @returns true when the spool is empty afterwards.
   */
  async #tryReplay(): Promise<boolean> {
    if (Date.now() < this.#retryAt) {
      this.#scheduleRetry();
      return false;
    }
    const spool = this.#spool;
    // Which keys are retired decides which spool files may be replayed: know it first.
    const historyError = this.#keyHistoryKnown ? null : await this.#readKeyHistory();
    const entries = spool ? await spool.readAll().catch(() => null) : [];
    if (entries === null) return false;
    let done = 0;
    try {
      // Until then, a file a holder of a retired key planted cannot be told from one of a
      // process of ours: nothing is written (the database is away anyway).
      if (historyError !== null && entries.length > 0) throw historyError;
      while (done < entries.length) {
        const page = entries.slice(done, done + this.#maxBatch);
        const present = await this.#store.query<{ event_id: string }>(
          sql`select event_id::text from gov_audit.events where event_id = any(${sql.param(page.map((entry) => entry.eventId))}::uuid[])`,
        );
        const skip = new Set(present.map((row) => row.event_id));
        const fresh = page.filter((entry) => !skip.has(entry.eventId));
        if (fresh.length > 0) {
          const records = await this.#write(
            fresh.map((entry) => ({
              event: entry.event,
              eventId: entry.eventId,
              chain: entry.chain,
              createdAt: new Date(entry.createdAt),
            })),
          );
          this.#metrics.replayed += records.length;
          this.#publish(records);
        }
        done += page.length;
      }
      if (spool && entries.length > 0) await spool.dropFirst(entries.length);
    } catch (error) {
      if (spool && done > 0) await spool.dropFirst(done).catch(() => undefined);
      this.#enterDegraded(error);
      this.#retryDelayMs = Math.min(this.#retryDelayMs * 2, MAX_RETRY_MS);
      return false;
    }
    if (this.#metrics.degraded && entries.length > 0) {
      this.#logger.info(
        `The audit chain is writable again; ${entries.length} spooled events were replayed in order.`,
      );
    }
    this.#recovered();
    return true;
  }

  #recovered(): void {
    if (this.#metrics.degraded && (this.#spool?.depth ?? 0) === 0) {
      this.#metrics.degraded = false;
      this.#markedChains.clear();
      this.#retryDelayMs = this.#retryBaseMs;
    }
  }

  #placeholder(
    event: NormalizedEvent,
    eventId: string,
    createdAt: Date,
    why: string,
  ): AuditEventRecord {
    this.#metrics.placeholders++;
    this.#logger.warn(
      `An audit event could not be kept (${why}); a placeholder record was returned.`,
      { kind: event.kind, agentId: event.agentId },
    );
    return {
      ...event,
      metadata: { ...event.metadata, "audit.unavailable": true },
      eventId,
      chain: chainOf(event),
      seq: null,
      prevHash: null,
      hmac: PLACEHOLDER_HMAC,
      keyId: null,
      createdAt,
      status: "placeholder",
      isPlaceholder: true,
    };
  }

  // ---------------------------------------------------------------------------------------
  // Verification

  async #verify(
    options: VerifyChainOptions,
    strict: boolean,
    onRow?: (row: StoredRow) => void,
  ): Promise<VerificationReport> {
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
    const verifier = new ChainVerifier(this.#keyring, {
      strict,
      verifyingKeys: this.#verifyingKeys,
      requireSignature,
    });
    // The key rotation history comes first: every row's key is held to it.
    verifier.keyHistory(await this.#rotations(), await this.#recordedRotations());
    const checkpoints = await this.#checkpoints(chain);
    if (witness) await this.#witnessed(witness, chain, checkpoints, verifier);
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
      return this.#store.query<RawRow>(sql`
        select event_id::text as event_id, chain, seq, prev_hash, hmac, key_id,
          to_char(created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as created_at,
          agent_id, kind, session_id, parent_event_id::text as parent_event_id, payload
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
            chain !== undefined && fromSeq > 1 ? await this.#rowAt(chain, fromSeq - 1) : null;
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
      const [last] = await this.#store.query<{ head: number | string | null }>(
        sql`select max(seq) as head from gov_audit.events where chain = ${chain}`,
      );
      verifier.emptyWindow(chain, checkpoints.get(chain) ?? [], {
        fromSeq,
        toSeq,
        head: Number(last?.head ?? 0),
        predecessor: fromSeq > 1 ? await this.#rowAt(chain, fromSeq - 1) : null,
        complete: options.toSeq === undefined,
      });
    }
    // Chains that only checkpoints remember (every row deleted).
    if (chain === undefined) {
      const seen = await this.#store.query<{ chain: string }>(
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

  /** The key rotation history as stored (FORMAT.md, "Key rotation"), oldest first. */
  async #rotations(): Promise<StoredRotation[]> {
    const rows = await this.#store.query<RotationRow>(ROTATIONS_QUERY);
    return rows.map(toStoredRotation);
  }

  /**
   * Learn which keys are retired from the rotation history, if the database can say.
   * @returns null, or the error that kept it from reading the history.
   */
  async #readKeyHistory(): Promise<unknown> {
    try {
      this.#learnRetiredKeys(await this.#rotations());
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
  #learnRetiredKeys(rotations: readonly StoredRotation[]): void {
    this.#retiredKeys = retiredKeyIds(this.#keyring, rotations);
    this.#keyHistoryKnown = true;
  }

  /** The `audit.key_rotated` events of the chain `agent:gov.audit`, as stored. */
  async #recordedRotations(): Promise<StoredRow[]> {
    const rows = await this.#store.query<RawRow>(sql`
      select event_id::text as event_id, chain, seq, prev_hash, hmac, key_id,
        to_char(created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as created_at,
        agent_id, kind, session_id, parent_event_id::text as parent_event_id, payload
      from gov_audit.events
      where chain = ${`${AGENT_CHAIN_PREFIX}${SYSTEM_AGENT}`} and kind = ${KEY_ROTATED_KIND}
      order by seq`);
    return rows.map(toStoredRow);
  }

  /**
   * Refuse to start with a current key that the rotation history says was retired. Only a
   * rotation record whose `hmac_old` verifies under the current key counts (a table owner
   * cannot forge one to keep the module from starting); a current key that the history does
   * not know is logged, not refused.
   */
  async #refuseRetiredKey(): Promise<void> {
    let rotations: StoredRotation[];
    try {
      rotations = await this.#rotations();
    } catch (error) {
      this.#logger.warn(
        "Could not read the audit key rotation history at start; the database still refuses rows of a retired key.",
        { error: describe(error) },
      );
      return;
    }
    const retirement = retirementOf(this.#keyring, rotations);
    if (retirement) throw new RetiredKeyError({ ...retirement, action: "start the audit module" });
    this.#learnRetiredKeys(rotations);
    const current = this.#keyring.current.id;
    const known = rotations.some(
      (rotation) => rotation.oldKeyId === current || rotation.newKeyId === current,
    );
    const forged = rotations.filter((rotation) => rotationProblem(rotation, this.#keyring));
    // Those that retire this key stop its writes (the database cannot check their MACs).
    const retiringThisKey = forged.filter((rotation) => rotation.oldKeyId === current);
    if (retiringThisKey.length > 0)
      this.#reportForgedRetirement(retiringThisKey.map((rotation) => rotation.rotationId));
    if (forged.length > retiringThisKey.length) {
      this.#logger.error(
        `${forged.length - retiringThisKey.length} audit key rotation record(s) do not verify (edited or forged); verifyChain reports them.`,
        {
          rotations: forged
            .filter((rotation) => rotation.oldKeyId !== current)
            .map((rotation) => rotation.rotationId),
        },
      );
    }
    if (!known && rotations.length > 0) {
      this.#logger.error(
        `The audit chain key ${current} is not in the key rotation history (its newest key is ${rotations.at(-1)?.newKeyId}): rows it signs will fail verification. Start with the newest key, or rotate to this one with rotateChainKey from a process that holds it.`,
      );
    }
  }

  async #rowAt(chain: string, seq: number): Promise<{ seq: number; hmac: string } | null> {
    const rows = await this.#store.query<{ hmac: string }>(
      sql`select hmac from gov_audit.events where chain = ${chain} and seq = ${seq} order by event_id limit 1`,
    );
    return rows[0] ? { seq, hmac: rows[0].hmac } : null;
  }

  async #checkpoints(chain: string | undefined): Promise<Map<string, StoredCheckpoint[]>> {
    const rows = await this.#store.query<{
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
    }>(sql`
      select checkpoint_id::text as checkpoint_id, chain, seq, hash,
        to_char(created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as created_at, key_id, hmac, payload,
        signature, signing_key_id
      from gov_audit.checkpoints ${chain !== undefined ? sql`where chain = ${chain}` : sql``}`);
    const byChain = new Map<string, StoredCheckpoint[]>();
    for (const row of rows) {
      const list = byChain.get(row.chain) ?? [];
      list.push({
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
      });
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
  async #witnessed(
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
      this.#logger.warn(
        `The checkpoint witness has ${damaged} damaged line${damaged === 1 ? "" : "s"} (not JSON: torn by a crash or a full disk in the middle of an append, or overwritten); ${damaged === 1 ? "it was" : "they were"} skipped. A checkpoint lost in a damaged line is still in the database; check the witness's copies if this was not a crash.`,
        {
          witness: witness instanceof FileCheckpointWitness ? witness.path : "custom",
          damagedLines: damaged,
          entries: entry,
        },
      );
    }
  }
}

interface RawRow extends Record<string, unknown> {
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

function toStoredRow(raw: RawRow): StoredRow {
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

interface RotationRow extends Record<string, unknown> {
  rotation_id: string;
  old_key_id: string;
  new_key_id: string;
  rotated_at: string;
  payload: string;
  hmac_old: string;
  hmac_new: string;
}

const ROTATIONS_QUERY = sql`
  select rotation_id::text as rotation_id, old_key_id, new_key_id,
    to_char(rotated_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as rotated_at,
    payload, hmac_old, hmac_new
  from gov_audit.key_rotations order by rotated_at, rotation_id`;

function toStoredRotation(row: RotationRow): StoredRotation {
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
function retirementOf(
  keyring: Keyring,
  rotations: readonly StoredRotation[],
): {
  keyId: string;
  rotationId: string;
  rotatedAt: string;
  newKeyId: string;
  newestKeyId: string;
} | null {
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

/**
 * Refuse the agent id reserved for the module's own events, and any id that reads the same:
 * compared as identities (core's `sameIdentity`: case, white space, invisible and blank
 * characters, look-alike letters), not as bytes.
 */
function refuseReservedAgent(agentId: string): void {
  if (sameIdentity(agentId.trim(), SYSTEM_AGENT_FORMS)) {
    throw new InvalidAuditEventError(
      "agentId",
      `reads as "${SYSTEM_AGENT}", which is reserved for the audit module's own events (ids are compared as they read: case, spaces, invisible characters and look-alike letters do not make another id).`,
      "Log under your agent's own id.",
    );
  }
}

/** The chains `checkpoint()` was asked for: null for all; refuses what is not a list of ids. */
function checkpointChains(options: { sessionIds?: readonly string[] }): string[] | null {
  if (typeof options !== "object" || options === null) {
    throw new InvalidArgumentError(
      "options",
      "must be an object.",
      "Call checkpoint() or checkpoint({ sessionIds: [sessionId] }).",
    );
  }
  const ids: unknown = options.sessionIds;
  if (ids === undefined) return null;
  const fix = "Pass sessionIds as an array of session ids, e.g. { sessionIds: [sessionId] }.";
  if (!Array.isArray(ids) || ids.length > 10_000) {
    throw new InvalidArgumentError(
      "sessionIds",
      `must be an array of at most 10000 session ids, got ${Array.isArray(ids) ? `${ids.length} ids` : typeof ids}.`,
      fix,
    );
  }
  for (const [index, id] of ids.entries()) {
    if (typeof id !== "string" || id.length === 0 || id.length > 256) {
      throw new InvalidArgumentError(
        `sessionIds[${index}]`,
        "must be a session id (a string of 1 to 256 characters).",
        fix,
      );
    }
  }
  return ids as string[];
}

/** The chain and the window of seqs a verification asks for, validated. */
function chainWindow(options: VerifyChainOptions): {
  chain: string | undefined;
  fromSeq: number;
  toSeq: number;
} {
  if (typeof options !== "object" || options === null || Array.isArray(options)) {
    throw new InvalidArgumentError(
      "options",
      `must be an object such as { sessionId }, got ${options === null ? "null" : Array.isArray(options) ? "an array" : typeof options}.`,
      "Call verifyChain() for every chain, or verifyChain({ sessionId }) for one session's.",
    );
  }
  const sessionId =
    options.sessionId === undefined ? undefined : chainName(options.sessionId, "sessionId");
  const agentId = options.agentId === undefined ? undefined : chainName(options.agentId, "agentId");
  if (sessionId !== undefined && agentId !== undefined) {
    throw new InvalidArgumentError(
      "agentId",
      "cannot be given with sessionId: a session's events and an agent's events without a session are different chains.",
      "Pass sessionId or agentId, not both.",
    );
  }
  if (sessionId?.startsWith(AGENT_CHAIN_PREFIX)) {
    throw new InvalidArgumentError(
      "sessionId",
      `must not start with "${AGENT_CHAIN_PREFIX}", which names the chain of an agent's events without a session.`,
      `Pass { agentId: ${JSON.stringify(sessionId.slice(AGENT_CHAIN_PREFIX.length))} } instead.`,
    );
  }
  const chain =
    sessionId ?? (agentId !== undefined ? `${AGENT_CHAIN_PREFIX}${agentId}` : undefined);
  if ((options.fromSeq !== undefined || options.toSeq !== undefined) && chain === undefined) {
    throw new InvalidArgumentError(
      "fromSeq",
      "and toSeq need a sessionId (or agentId).",
      "Verify a window of one chain: { sessionId, fromSeq, toSeq }.",
    );
  }
  const fromSeq = options.fromSeq ?? 1;
  const toSeq = options.toSeq ?? Number.MAX_SAFE_INTEGER;
  for (const [name, value] of [
    ["fromSeq", fromSeq],
    ["toSeq", toSeq],
  ] as const) {
    if (!Number.isSafeInteger(value) || value < 1)
      throw new InvalidArgumentError(
        name,
        `must be a positive integer, got ${String(value)}.`,
        "Sequence numbers start at 1.",
      );
  }
  if (fromSeq > toSeq) {
    throw new InvalidArgumentError(
      "toSeq",
      `is ${toSeq}, before fromSeq (${fromSeq}).`,
      "Pass a window with fromSeq ≤ toSeq.",
    );
  }
  return { chain, fromSeq, toSeq };
}

/**
 * A session id, agent id or kind given to look events up, sanitized as log() sanitized it
 * when it stored them.
 */
function chainName(value: unknown, field: "sessionId" | "agentId" | "kind"): string {
  if (typeof value !== "string") {
    throw new InvalidArgumentError(
      field,
      `must be a string, got ${value === null ? "null" : Array.isArray(value) ? "an array" : typeof value}.`,
      `Pass the ${field} the events were logged with.`,
    );
  }
  const name = sanitizeName(value);
  if (name.trim().length === 0)
    throw new InvalidArgumentError(field, "must not be empty.", `Pass a non-empty ${field}.`);
  if (name.length > AUDIT_LIMITS[field]) {
    throw new InvalidArgumentError(
      field,
      `is ${name.length} characters long; the limit is ${AUDIT_LIMITS[field]}.`,
      `No event has a ${field} longer than ${AUDIT_LIMITS[field]} characters.`,
    );
  }
  return name;
}

function chainFilter(chain: string): VerifyChainOptions {
  return chain.startsWith(AGENT_CHAIN_PREFIX)
    ? { agentId: chain.slice(AGENT_CHAIN_PREFIX.length) }
    : { sessionId: chain };
}

/** Advisory lock keys of chains, in the order every writer takes them. */
interface ChainLock {
  chain: string;
  key: string;
}

function sortedLocks(chains: readonly string[]): ChainLock[] {
  return chains
    .map((chain) => ({ chain, key: advisoryLockKey(`${CHAIN_LOCK}${chain}`) }))
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
    .map(({ chain, key }) => ({ chain, key: key.toString() }));
}

function isUniqueViolation(error: unknown): boolean {
  const classified = toStoreError(error);
  return StoreError.isInstance(classified) && classified.kind === "unique";
}

/**
 * SHA-256 (hex) of a value's RFC 8785 canonical JSON: the `inputHash` / `outputHash` that
 * `track()` records, for callers that log inputs and outputs themselves. Values without a
 * JSON form (functions, symbols, cycles) are hashed by their type.
 *
 * @example
 * ```ts
 * await sdk.audit.log({ agentId, kind: "tool.call", inputHash: contentHash(args) });
 * ```
 */
export function contentHash(value: unknown): string {
  let text: string;
  try {
    text = canonicalJson(value === undefined ? null : value);
  } catch {
    text = `unhashable:${Object.prototype.toString.call(value)}`;
  }
  return createHash("sha256").update(text, "utf8").digest("hex");
}

function describeError(error: unknown): { name: string; message: string; code?: string } {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return {
      name: error.name,
      message: truncate(error.message, 2_000),
      ...(typeof code === "string" ? { code } : {}),
    };
  }
  return { name: typeof error, message: truncate(String(error), 2_000) };
}

function describe(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max)}…`;
}

function positiveInteger(value: number, field: string, max: number): number {
  if (!Number.isInteger(value) || value < 1 || value > max) {
    throw new InvalidArgumentError(
      field,
      `must be an integer from 1 to ${max}, got ${String(value)}.`,
      `Pass a positive integer ${field}.`,
    );
  }
  return value;
}

/** A required, trimmed, sanitized name of at most `max` characters. */
function boundedText(value: unknown, field: string, max: number, what: string): string {
  const text = typeof value === "string" ? sanitizeName(value).trim() : "";
  if (!text) {
    throw new InvalidArgumentError(
      field,
      `must say ${what}, got ${value === undefined ? "nothing" : typeof value === "string" ? "a blank string" : value === null ? "null" : typeof value}.`,
      `Pass ${field} as a non-empty string.`,
    );
  }
  if (text.length > max) {
    throw new InvalidArgumentError(
      field,
      `is ${text.length} characters long; the limit is ${max}.`,
      `Shorten ${field} to at most ${max} characters.`,
    );
  }
  return text;
}

function checkedDate(value: Date, field: string): Date {
  if (!(value instanceof Date) || Number.isNaN(value.getTime())) {
    throw new InvalidArgumentError(field, "must be a valid Date.", `Pass ${field} as a Date.`);
  }
  return value;
}

/** The audit module's definition, for `@gov/sdk` and for composing it by hand. */
export const auditModule = defineModule({
  name: "audit",
  migrations: auditMigrations,
  create: async (context: ModuleContext, options: AuditOptions | undefined) => {
    const audit = new AuditModule(context, options ?? {});
    try {
      await audit.start();
    } catch (error) {
      await audit.close();
      throw error;
    }
    return audit;
  },
  provides: (audit: AuditModule) => ({ audit }),
  close: (audit: AuditModule) => audit.close(),
});

export { ChainIntegrityError, InvalidAuditEventError, signedPayload };
