import {
  type AuditEventInput,
  type AuditSink,
  defineModule,
  describeError,
  InvalidArgumentError,
  type Keyring,
  type MigrationSource,
  type ModuleContext,
  type SigningKey,
  type SpoolIntegrityProblem,
  type StrandedSpoolFiles,
  type VerifyingKey,
} from "@gov/core";
import { Checkpointer } from "./checkpoints";
import { ChainIntegrityError, InvalidAuditEventError } from "./errors";
import { KeyHistory } from "./key-history";
import { type NormalizedEvent, normalizeEvent } from "./models";
import {
  type AuditMetrics,
  type AuditOptions,
  chainWindow,
  checkpointChains,
  type EventFilters,
  type ImportSpoolOptions,
  type RotateChainKeyOptions,
  resolveAuditOptions,
  type SpoolImportResult,
  type TrackOptions,
  type VerifyChainOptions,
} from "./options";
import { chainFilter, readEvents, storedRecord, traceEvent } from "./reads";
import { type AuditEventRecord, signedPayload } from "./record";
import { rotateKey, rotationRequest } from "./rotation";
import { auditSdkContribution } from "./sdk-options";
import { AuditSpool } from "./spool";
import { importSpoolFile } from "./spool-import";
import type { AuditState } from "./state";
import { refuseReservedAgent, systemEvent } from "./system-events";
import { trackCalls } from "./track";
import type { VerificationReport } from "./verification-report";
import { verifyStoredChains } from "./verify-chains";
import type { CheckpointWitness } from "./witness";
import { ChainWriter, type Subscriber } from "./writer";

export type {
  AuditMetrics,
  AuditOptions,
  EventFilters,
  ImportSpoolOptions,
  RotateChainKeyOptions,
  SpoolImportResult,
  TrackOptions,
  VerifyChainOptions,
} from "./options";
export { contentHash } from "./track";

/** The audit module's migrations: schema `gov_audit`. */
export const auditMigrations: MigrationSource = {
  name: "audit",
  migrationsFolder: new URL("../drizzle", import.meta.url),
};

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
export class AuditModule implements AuditSink, AsyncDisposable {
  readonly #state: AuditState;
  readonly #history: KeyHistory;
  readonly #writer: ChainWriter;
  readonly #checkpointer: Checkpointer;
  readonly #verifyOnRead: boolean;
  readonly #checkpointIntervalMs: number;
  /** Signs checkpoints besides the HMAC; null: HMAC only. */
  readonly #signingKey: SigningKey | null;
  /** Ed25519 public keys whose checkpoint signatures are believed. */
  readonly #verifyingKeys: readonly VerifyingKey[];
  readonly #witness: CheckpointWitness | null;
  /** Rotations of this process, one after the other. */
  #rotationQueue: Promise<unknown> = Promise.resolve();
  #checkpointTimer: NodeJS.Timeout | null = null;
  #started: Promise<void> | null = null;
  #closing: Promise<void> | null = null;

  /**
   * Checks the options and builds the module; nothing is read or written before
   * {@link AuditModule.start}.
   * @throws {InvalidArgumentError} for a bad option, naming it, the limit and the fix.
   */
  constructor(
    context: Pick<ModuleContext, "store" | "keyring" | "clock" | "logger"> &
      Partial<Pick<ModuleContext, "signingKey">>,
    options: AuditOptions = {},
  ) {
    const resolved = resolveAuditOptions(context, options);
    this.#verifyOnRead = resolved.verifyChainOnRead;
    this.#checkpointIntervalMs = resolved.checkpointIntervalMs;
    this.#signingKey = resolved.signingKey;
    this.#verifyingKeys = resolved.verifyingKeys;
    this.#witness = resolved.witness;
    const spool =
      resolved.spoolDirectory === null
        ? null
        : new AuditSpool(resolved.spoolDirectory, context.logger, {
            keyring: () => this.#state.keyring,
            isRetiredKey: (keyId) => this.#history.isRetired(keyId),
            adoptHosts: resolved.spoolAdoptHosts,
            onIntegrityProblem: (problem) => this.#spoolProblem(problem),
            onStranded: (stranded) => this.#spoolStranded(stranded),
          });
    const state: AuditState = {
      store: context.store,
      clock: context.clock,
      logger: context.logger,
      keyring: context.keyring,
      spool,
      closed: false,
      metrics: {
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
      },
    };
    this.#state = state;
    this.#history = new KeyHistory(state);
    this.#writer = new ChainWriter(state, this.#history, resolved);
    this.#checkpointer = new Checkpointer(state, this.#writer, this.#history, {
      signingKey: this.#signingKey,
      witness: this.#witness,
    });
  }

  /**
   * @internal Refuse a retired chain key, then adopt events an earlier process left in the
   * spool, and replay them.
   * @throws {RetiredKeyError} (a rejection) when the key rotation history, signed by the
   *   current key itself, says that key was rotated out: it may never sign again.
   */
  start(): Promise<void> {
    this.#started ??= this.#start();
    return this.#started;
  }

  async #start(): Promise<void> {
    if (this.#state.closed) return;
    await this.#history.refuseRetiredKey();
    await this.#history.warnUnknownHeadKeys();
    const spool = this.#state.spool;
    if (spool) {
      try {
        if ((await spool.adoptOrphans()) > 0) {
          this.#state.metrics.degraded = true;
          this.#writer.kick();
        }
      } catch (error) {
        this.#state.logger.warn("Could not read the audit spool of earlier processes.", {
          error: describeError(error),
        });
      }
    }
    if (this.#checkpointIntervalMs > 0 && !this.#state.closed) {
      this.#checkpointTimer = setInterval(() => {
        this.checkpoint().catch((error: unknown) =>
          this.#state.logger.warn("A periodic audit checkpoint failed.", {
            error: describeError(error),
          }),
        );
      }, this.#checkpointIntervalMs);
      this.#checkpointTimer.unref();
    }
  }

  /** The keyring the module signs and verifies with (it changes on rotation). */
  get keyring(): Keyring {
    return this.#state.keyring;
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
    return this.#writer.enqueue(event);
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
    return this.#writer.subscribe(callback);
  }

  /** What the module did so far. */
  metrics(): AuditMetrics {
    const metrics = this.#state.metrics;
    return {
      ...metrics,
      spoolDepth: this.#state.spool?.depth ?? 0,
      lastError: metrics.lastError ? { ...metrics.lastError } : null,
      witnessPending: this.#checkpointer.witnessPending,
    };
  }

  /** Resolves when every event logged so far is durable (in the chain or the spool). */
  flush(): Promise<void> {
    return this.#writer.flush();
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
    return trackCalls((input) => this.log(input), options, fn);
  }

  /**
   * Events matching `filters`, oldest first, read from their signed records. With
   * `verifyChainOnRead`, the chains they belong to are verified first.
   */
  async getEvents(filters: EventFilters = {}): Promise<AuditEventRecord[]> {
    const rows = await readEvents(this.#state.store, filters);
    if (this.#verifyOnRead) {
      for (const chain of new Set(rows.map((row) => row.chain)))
        await this.verifyChain(chainFilter(chain));
    }
    return rows.map(storedRecord);
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
    await this.#verify({ sessionId }, true, (row) => records.push(storedRecord(row)));
    return records;
  }

  /**
   * An event and its provenance: the event, its parent, the parent's parent, … up to the
   * root (at most 256 steps).
   */
  async trace(eventId: string): Promise<AuditEventRecord[]> {
    return traceEvent(this.#state.store, eventId);
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

  #verify(
    options: VerifyChainOptions,
    strict: boolean,
    onRow?: Parameters<typeof verifyStoredChains>[5],
  ): Promise<VerificationReport> {
    return verifyStoredChains(
      this.#state,
      this.#history,
      this.#verifyingKeys,
      options,
      strict,
      onRow,
    );
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
    return this.#checkpointer.checkpoint(chains);
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
    const request = rotationRequest(options);
    // One rotation at a time in this process; other processes are held off by a lock.
    const run = this.#rotationQueue.then(() =>
      rotateKey(
        this.#state,
        this.#writer,
        (chains) => this.checkpoint({ sessionIds: chains }),
        request,
      ),
    );
    this.#rotationQueue = run.catch(() => undefined);
    return run;
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
    return importSpoolFile(this.#state, this.#writer, this.#history, path, options);
  }

  /** Write what is pending (into the chain, or the spool), then stop. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    await this.flush();
    this.#state.closed = true;
    this.#writer.stop();
    if (this.#checkpointTimer) clearInterval(this.#checkpointTimer);
    await this.#checkpointer.close();
    const spool = this.#state.spool;
    await spool?.close();
    if ((spool?.depth ?? 0) > 0) {
      this.#state.logger.warn(
        `${spool?.depth} audit events are still in the spool; the next start replays them.`,
        { directory: spool?.directory },
      );
    }
  }

  /** {@link AuditModule.close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** A spool file was refused, torn or not closed cleanly: evidence of it goes in the chain. */
  #spoolProblem(problem: SpoolIntegrityProblem): void {
    if (problem.kind === "rejected") this.#state.metrics.spoolRejections++;
    if (this.#state.closed) return;
    void this.#writer.enqueue(
      systemEvent(`audit.spool_${problem.kind}`, {
        spool: problem.spool,
        file: problem.file,
        keptAs: problem.keptAs,
        line: problem.line,
        reason: problem.reason,
        keyId: problem.keyId,
        proven: problem.proven,
        lost: problem.lost,
      }),
    );
  }

  /** Spool files of other hosts were left alone at start: evidence of it goes in the chain. */
  #spoolStranded(stranded: StrandedSpoolFiles): void {
    if (this.#state.closed) return;
    void this.#writer.enqueue(
      systemEvent("audit.spool_stranded", {
        spool: stranded.spool,
        files: stranded.files,
        hosts: stranded.hosts.slice(0, 20),
        oldestAgeMs: stranded.oldestAgeMs,
      }),
    );
  }
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
  sdk: auditSdkContribution,
});

export { ChainIntegrityError, InvalidAuditEventError, signedPayload };
