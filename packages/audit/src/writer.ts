import { randomUUID } from "node:crypto";
import { describeError, StoreError, toStoreError } from "@gov/core";
import type { KeyHistory } from "./key-history";
import { chainOf, type NormalizedEvent, normalizeEvent } from "./models";
import { type AuditEventRecord, makeRecord, PLACEHOLDER_HMAC, signRecord } from "./record";
import type { SpoolEntry } from "./spool";
import {
  appendStatement,
  type ChainLock,
  isRetiredKeyRefusal,
  isUniqueViolation,
  lockHeadsStatement,
  presentEventsQuery,
  probeQuery,
  rebuildHeadsStatement,
  sortedLocks,
} from "./sql";
import { type AuditState, truncate } from "./state";

/** Called with each record once it is in the chain. */
export type Subscriber = (record: AuditEventRecord) => void | Promise<void>;

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

/** How the writer batches and retries (from the module's options). */
export interface WriterOptions {
  /** Most events one transaction carries. */
  maxBatchSize: number;
  /** Batches written at once. */
  maxConcurrentBatches: number;
  /** First wait before retrying the database after a failure. */
  retryIntervalMs: number;
}

const MAX_RETRY_MS = 30_000;
/** After a conflict with another process, a chain takes the locked path for this long. */
const CONTENDED_MS = 2_000;
/** Chain heads remembered for the fast path (the cache starts over beyond this). */
const MAX_CACHED_HEADS = 100_000;

/**
 * Monotonic milliseconds for backoff and contention windows: elapsed time measured against
 * timers, not wall time, so not the injected clock (a manual clock would never let a retry
 * come due).
 */
function elapsedMs(): number {
  return performance.now();
}

/**
 * The group-commit writer: one drain loop per process, so that appends of a chain keep their
 * order. All events waiting when a transaction starts go into it (many sessions at once),
 * each session's appends serialized across processes by an advisory lock. When the database
 * cannot take them, events go to the durable local spool and are replayed, in order, when it
 * is back; when the spool fails too, they resolve as placeholders.
 */
export class ChainWriter {
  readonly #state: AuditState;
  readonly #history: KeyHistory;
  readonly #maxBatch: number;
  readonly #lanes: number;
  readonly #retryBaseMs: number;
  readonly #subscribers = new Set<Subscriber>();
  #queue: Pending[] = [];
  #inFlight = 0;
  /** Chains with a batch in flight: their next events wait, so that each keeps its order. */
  readonly #busyChains = new Set<string>();
  #recovering = false;
  #pumpScheduled = false;
  readonly #waiters: (() => void)[] = [];
  #paused = false;
  #retryAt = 0;
  #retryDelayMs: number;
  #retryTimer: NodeJS.Timeout | null = null;
  /** Chains given a `chain.degraded_start` marker in this episode of degradation. */
  readonly #markedChains = new Set<string>();
  /** Each chain's head as this process last wrote or read it: the fast path's guess. */
  readonly #heads = new Map<string, Head>();
  /** Chains another process wrote to lately, until when ({@link elapsedMs}). */
  readonly #contended = new Map<string, number>();

  constructor(state: AuditState, history: KeyHistory, options: WriterOptions) {
    this.#state = state;
    this.#history = history;
    this.#maxBatch = options.maxBatchSize;
    this.#lanes = options.maxConcurrentBatches;
    this.#retryBaseMs = options.retryIntervalMs;
    this.#retryDelayMs = this.#retryBaseMs;
  }

  /** Queue a validated event; resolves when it is durable (or as a placeholder). */
  enqueue(event: NormalizedEvent): Promise<AuditEventRecord> {
    const { clock, metrics } = this.#state;
    if (this.#state.closed) {
      return Promise.resolve(
        this.#placeholder(event, randomUUID(), clock.now(), "the audit module is closed"),
      );
    }
    metrics.logged++;
    return new Promise<AuditEventRecord>((resolvePromise) => {
      this.#queue.push({
        event,
        eventId: randomUUID(),
        chain: chainOf(event),
        createdAt: clock.now(),
        resolve: resolvePromise,
      });
      this.kick();
    });
  }

  /** Add a subscriber; returns a function that removes it. */
  subscribe(callback: Subscriber): () => void {
    this.#subscribers.add(callback);
    return () => this.#subscribers.delete(callback);
  }

  /** Resolves when every event queued so far is durable (in the chain or the spool). */
  async flush(): Promise<void> {
    while (this.#inFlight > 0 || this.#recovering || this.#queue.length > 0) {
      this.kick();
      await new Promise<void>((wake) => this.#waiters.push(wake));
    }
  }

  /**
   * Hold the writer (nothing is signed meanwhile) while `run` records a key rotation; then
   * let it go on, with whatever keyring `run` left.
   */
  async paused<T>(run: () => Promise<T>): Promise<T> {
    this.#paused = true;
    try {
      return await run();
    } finally {
      this.#paused = false;
      this.#notify();
      this.kick();
    }
  }

  /** Stop retrying (the module is closing). */
  stop(): void {
    if (this.#retryTimer) clearTimeout(this.#retryTimer);
    this.#retryTimer = null;
  }

  /** Start the writer soon, so that everything queued in this turn joins one batch. */
  kick(): void {
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
    if ((this.#state.spool?.depth ?? 0) > 0) {
      if (this.#inFlight > 0) return; // the last batch to land starts the recovery
      this.#recovering = true;
      this.#recover()
        .catch((error: unknown) =>
          this.#state.logger.error("The audit writer failed unexpectedly.", {
            error: describeError(error),
          }),
        )
        .finally(() => {
          this.#recovering = false;
          this.#notify();
          if (this.#queue.length > 0) this.kick();
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
      await this.#divert(batch, this.#lastErrorMessage());
    }
  }

  #lastErrorMessage(): string {
    return this.#state.metrics.lastError?.message ?? "the database is unavailable";
  }

  /**
   * Replay the spool in order; while the database is still away, what is queued goes to the
   * spool behind it (a retry timer comes back later).
   */
  async #recover(): Promise<void> {
    while ((this.#state.spool?.depth ?? 0) > 0) {
      if (await this.#tryReplay()) return;
      if (this.#queue.length === 0) return;
      const batch = this.#queue.splice(0, this.#maxBatch);
      await this.#divert(batch, this.#lastErrorMessage());
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
    const now = elapsedMs();
    const heads = new Map<string, Head>();
    for (const chain of chains) {
      const head = this.#heads.get(chain);
      if (!head || (this.#contended.get(chain) ?? 0) > now) break;
      heads.set(chain, head);
    }
    if (heads.size === chains.length) {
      const signed = this.#sign(batch, heads);
      try {
        await this.#state.store.query(appendStatement(locks, signed.rows));
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
      this.#state.logger.warn(
        "Audit chain heads were out of date; rebuilding them from the chain.",
        { chains: chains.length },
      );
      await this.#state.store.query(rebuildHeadsStatement(chains));
      return this.#writeLocked(batch, locks);
    }
  }

  /** The locked path: lock the chains, read their heads, sign and insert, in one transaction. */
  async #writeLocked(
    batch: readonly Unsigned[],
    locks: readonly ChainLock[],
  ): Promise<AuditEventRecord[]> {
    const signed = await this.#state.store.transaction(async (tx) => {
      const result = await tx.execute<{ chain: string; seq: number | string; hmac: string }>(
        lockHeadsStatement(locks),
      );
      const heads = new Map<string, Head>(
        result.rows.map((row) => [row.chain, { seq: Number(row.seq), hmac: row.hmac }]),
      );
      const signed = this.#sign(batch, heads);
      await tx.execute(appendStatement(locks, signed.rows));
      return signed;
    });
    return this.#stored(signed.records);
  }

  /** Sign a batch against the given heads (a chain without one starts at seq 1). */
  #sign(
    batch: readonly Unsigned[],
    heads: ReadonlyMap<string, Head>,
  ): { records: AuditEventRecord[]; rows: string } {
    const key = this.#state.keyring.current;
    const state = new Map(heads);
    const records: AuditEventRecord[] = [];
    // The shape gov_audit.append reads (drizzle/0002_append_function.sql): p payload, h hmac.
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

  /** Count a written batch and remember its chains' new heads for the fast path. */
  #stored(records: AuditEventRecord[]): AuditEventRecord[] {
    if (this.#heads.size > MAX_CACHED_HEADS) this.#heads.clear();
    for (const record of records) {
      this.#heads.set(record.chain, { seq: record.seq as number, hmac: record.hmac });
    }
    this.#state.metrics.batches++;
    this.#state.metrics.stored += records.length;
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
    this.#state.metrics.subscriberErrors++;
    this.#state.logger.warn("An audit subscriber failed; the chain and the host are unaffected.", {
      error: describeError(error),
    });
  }

  #enterDegraded(error: unknown): void {
    const { metrics, logger, spool } = this.#state;
    const classified = toStoreError(error);
    const retired = isRetiredKeyRefusal(classified);
    metrics.lastError = StoreError.isInstance(classified)
      ? {
          code: retired ? this.#history.retiredCode() : classified.code,
          message: classified.message,
        }
      : {
          code: "AUDIT_WRITE_FAILED",
          message: error instanceof Error ? error.message : String(error),
        };
    if (retired) this.#history.onRetiredRefusal(metrics.lastError.message);
    if (!metrics.degraded) {
      logger.warn(
        `The audit chain cannot be written (${metrics.lastError.code}); events go to the local spool and will be replayed in order.`,
        { directory: spool?.directory ?? null },
      );
    }
    metrics.degraded = true;
    this.#retryAt = elapsedMs() + this.#retryDelayMs;
    this.#scheduleRetry();
  }

  #scheduleRetry(): void {
    if (this.#retryTimer || this.#state.closed) return;
    this.#retryTimer = setTimeout(
      () => {
        this.#retryTimer = null;
        this.kick();
      },
      Math.max(0, this.#retryAt - elapsedMs()),
    );
    this.#retryTimer.unref();
  }

  /** Put a batch in the spool, each chain's first degraded event after a marker. */
  async #divert(batch: readonly Pending[], reason: string): Promise<void> {
    const { spool, metrics, logger } = this.#state;
    if (!spool) {
      this.#lose(batch, "the database is unavailable and no spool is configured");
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
      await spool.append(entries);
      metrics.spooled += batch.length;
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
      logger.error(
        "The audit spool cannot be written either; these events are lost and returned as placeholders.",
        { directory: spool.directory, events: batch.length, error: describeError(error) },
      );
      this.#lose(batch, "neither the database nor the spool could take it");
    }
  }

  /**
   * Write the spool into the chain, in order, if the database is back (and the backoff has
   * passed). Entries already in the chain (a replay interrupted by a crash) are skipped.
   * @returns true when the spool is empty afterwards.
   */
  async #tryReplay(): Promise<boolean> {
    if (elapsedMs() < this.#retryAt) {
      this.#scheduleRetry();
      return false;
    }
    const { spool, store, metrics, logger } = this.#state;
    // Which keys are retired decides which spool files may be replayed: know it first. That
    // read (or, once known, a one-row probe) also says whether the database is back before the
    // spool is read and its MACs checked: no work while it is away, and what is replayed is
    // the spool as it is once the database answers, not as it was during the outage.
    const historyKnown = this.#history.known;
    const historyError = historyKnown ? null : await this.#history.read();
    if (historyKnown) {
      try {
        await store.query(probeQuery());
      } catch (error) {
        this.#enterDegraded(error);
        this.#retryDelayMs = Math.min(this.#retryDelayMs * 2, MAX_RETRY_MS);
        return false;
      }
    }
    const entries = spool ? await spool.readAll().catch(() => null) : [];
    if (entries === null) return false;
    let done = 0;
    try {
      // Until then, a file a holder of a retired key planted cannot be told from one of a
      // process of ours: nothing is written (the database is away anyway).
      if (historyError !== null && entries.length > 0) throw historyError;
      while (done < entries.length) {
        const page = entries.slice(done, done + this.#maxBatch);
        const present = await store.query<{ event_id: string }>(
          presentEventsQuery(page.map((entry) => entry.eventId)),
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
          metrics.replayed += records.length;
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
    if (metrics.degraded && entries.length > 0) {
      logger.info(
        `The audit chain is writable again; ${entries.length} spooled events were replayed in order.`,
      );
    }
    this.#recovered();
    return true;
  }

  #recovered(): void {
    if (this.#state.metrics.degraded && (this.#state.spool?.depth ?? 0) === 0) {
      this.#state.metrics.degraded = false;
      this.#markedChains.clear();
      this.#retryDelayMs = this.#retryBaseMs;
    }
  }

  /** Resolve a batch nothing could keep with placeholders. */
  #lose(batch: readonly Pending[], why: string): void {
    for (const pending of batch)
      pending.resolve(this.#placeholder(pending.event, pending.eventId, pending.createdAt, why));
  }

  #placeholder(
    event: NormalizedEvent,
    eventId: string,
    createdAt: Date,
    why: string,
  ): AuditEventRecord {
    this.#state.metrics.placeholders++;
    this.#state.logger.warn(
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
}
