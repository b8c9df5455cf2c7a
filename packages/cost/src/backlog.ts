/**
 * Usage that waits for the store: a memory backlog and the durable spool, retried with
 * backoff and replayed in order, in batches, when the store is back.
 */
import { type DurableSpool, describeError, type Logger } from "@gov/core";
import type { ItemFailure } from "./batcher";
import type { BudgetPolicy } from "./budget-policy";
import {
  type SettleItem,
  type SettleResult,
  type SpoolLine,
  settleItemFromSpool,
  spoolLineOf,
} from "./sql";

/** A settle that failed on the store and waits for a retry. */
export interface Backlogged {
  item: SettleItem;
  policy: BudgetPolicy | undefined;
}

/** What the backlog needs of the module. */
export interface UsageBacklogOptions {
  logger: Logger;
  /** The durable spool, or null to keep waiting usage in memory only. */
  spool: DurableSpool<SpoolLine> | null;
  /** Most records sent in one round trip. */
  maxBatchSize: number;
  /** Most records kept in memory; beyond it, the oldest are dropped. */
  maxBacklog: number;
  /** Send records to the store; rejects when the store is away. */
  settle(items: SettleItem[]): Promise<(SettleResult | ItemFailure)[]>;
  /** A replayed record's outcome (written, a duplicate, or refused for its data). */
  settled(
    item: SettleItem,
    result: SettleResult | ItemFailure | undefined,
    policy: BudgetPolicy | undefined,
  ): Promise<void>;
  /** A record that will never be written. */
  dropped(item: SettleItem, error: unknown, message: string): Promise<void>;
  /** The policy a spooled record is settled under (spool lines do not carry it). */
  policyOf(agentId: string): BudgetPolicy | undefined;
}

/** The first wait before a retry, and the longest (the wait doubles after each failure). */
const FIRST_RETRY_MS = 500;
const LONGEST_RETRY_MS = 30_000;

/**
 * Usage records the store could not take: appended to the spool (fsynced, so that a crash
 * loses nothing), or kept in memory (up to `maxBacklog`) when there is no spool or it cannot
 * be written, and retried until the store is back. One replay runs at a time.
 */
export class UsageBacklog {
  readonly #options: UsageBacklogOptions;
  #entries: Backlogged[] = [];
  /** Entries a replay is writing: never dropped for room meanwhile. */
  readonly #sending = new Set<Backlogged>();
  #replaying: Promise<boolean> | null = null;
  #retryTimer: NodeJS.Timeout | null = null;
  #retryDelayMs = FIRST_RETRY_MS;
  #stopped = false;

  constructor(options: UsageBacklogOptions) {
    this.#options = options;
  }

  /** Records waiting for the store: in memory and in the spool. */
  get waiting(): number {
    return this.#entries.length + (this.#options.spool?.depth ?? 0);
  }

  /** Records waiting in memory only (lost if the process ends). */
  get inMemory(): number {
    return this.#entries.length;
  }

  /** The spool's directory, if there is a spool. */
  get directory(): string | undefined {
    return this.#options.spool?.directory;
  }

  /** Adopt the spool files of processes that are gone, and replay them soon. Never throws. */
  async adoptOrphans(): Promise<void> {
    const spool = this.#options.spool;
    if (!spool) return;
    try {
      if ((await spool.adoptOrphans()) > 0) this.scheduleRetry();
    } catch (error) {
      this.#options.logger.warn("The cost spool of earlier processes could not be read.", {
        directory: spool.directory,
        error: describeError(error),
      });
    }
  }

  /** Keep a record the store refused for now (`error`), and schedule a retry. */
  async enqueue(entry: Backlogged, error: unknown): Promise<void> {
    const { logger, spool } = this.#options;
    const first = this.waiting === 0;
    if (spool) {
      try {
        await spool.append([spoolLineOf(entry.item)]);
        if (first) {
          logger.warn(
            "Usage could not be recorded; it is spooled to disk and replayed when the store is back.",
            {
              agentId: entry.item.agentId,
              sessionId: entry.item.sessionId,
              directory: spool.directory,
              error: describeError(error),
            },
          );
        }
        this.scheduleRetry();
        return;
      } catch (spoolError) {
        logger.error("The cost spool cannot be written; usage is kept in memory only.", {
          directory: spool.directory,
          error: describeError(spoolError),
        });
      }
    } else if (first) {
      logger.warn(
        "Usage could not be recorded; it is kept in memory and retried until the store is back.",
        {
          agentId: entry.item.agentId,
          sessionId: entry.item.sessionId,
          error: describeError(error),
        },
      );
    }
    this.#entries.push(entry);
    while (this.#entries.length > this.#options.maxBacklog) {
      const index = this.#entries.findIndex((waiting) => !this.#sending.has(waiting));
      if (index < 0) break;
      const [dropped] = this.#entries.splice(index, 1) as [Backlogged];
      void this.#options.dropped(
        dropped.item,
        null,
        "The usage backlog is full; the oldest waiting record was dropped.",
      );
    }
    if (this.#stopped && !this.#retryTimer) {
      // No retry will come: this record is lost unless the store takes it during close.
      logger.error("Usage was recorded after close and could not be written.", {
        agentId: entry.item.agentId,
        sessionId: entry.item.sessionId,
      });
    }
    this.scheduleRetry();
  }

  /** Retry after the current backoff, unless a retry is due already or nothing waits. */
  scheduleRetry(): void {
    if (this.#retryTimer || this.#stopped || this.waiting === 0) return;
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = null;
      void this.retry().then((ok) => {
        this.#retryDelayMs = ok
          ? FIRST_RETRY_MS
          : Math.min(this.#retryDelayMs * 2, LONGEST_RETRY_MS);
        this.scheduleRetry();
      });
    }, this.#retryDelayMs);
    this.#retryTimer.unref();
  }

  /**
   * Write what waits — the memory backlog, then the spool — in order, in batches; false when
   * the store is still away. One replay at a time: the spool's bookkeeping counts on it.
   */
  retry(): Promise<boolean> {
    this.#replaying ??= this.#replay().finally(() => {
      this.#replaying = null;
    });
    return this.#replaying;
  }

  /** No more scheduled retries (the module is closing); `retry()` still writes on demand. */
  stop(): void {
    this.#stopped = true;
    if (this.#retryTimer) clearTimeout(this.#retryTimer);
    this.#retryTimer = null;
  }

  async #replay(): Promise<boolean> {
    const { logger, spool, maxBatchSize } = this.#options;
    while (this.#entries.length > 0) {
      const batch = this.#entries.slice(0, maxBatchSize);
      for (const entry of batch) this.#sending.add(entry);
      let results: (SettleResult | ItemFailure)[];
      try {
        results = await this.#options.settle(batch.map((entry) => entry.item));
      } catch {
        return false;
      } finally {
        for (const entry of batch) this.#sending.delete(entry);
      }
      // By identity: entries may have been added (or dropped for room) meanwhile.
      const sent = new Set(batch);
      this.#entries = this.#entries.filter((entry) => !sent.has(entry));
      for (const [index, entry] of batch.entries()) {
        await this.#options.settled(entry.item, results[index], entry.policy);
      }
    }
    if (spool && spool.depth > 0) {
      let lines: SpoolLine[];
      try {
        lines = await spool.readAll();
      } catch (error) {
        logger.error("The cost spool could not be read; the next retry tries again.", {
          directory: spool.directory,
          error: describeError(error),
        });
        return false;
      }
      let done = 0;
      let ok = true;
      while (done < lines.length) {
        const batch = lines.slice(done, done + maxBatchSize).map(settleItemFromSpool);
        let results: (SettleResult | ItemFailure)[];
        try {
          results = await this.#options.settle(batch);
        } catch {
          ok = false;
          break;
        }
        for (const [index, item] of batch.entries()) {
          await this.#options.settled(item, results[index], this.#options.policyOf(item.agentId));
        }
        done += batch.length;
      }
      // Written rows are recognized by their usage id if a crash replays them again.
      if (done > 0) await spool.dropFirst(done).catch(() => undefined);
      if (!ok) return false;
    }
    logger.info("The usage backlog was written.", {});
    return true;
  }
}
