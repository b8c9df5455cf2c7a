import { type Logger, type Store, type Subscription, sql } from "@gov/core";
import { describe } from "./errors";

/** The channel on which halts and resumes are announced to every process. */
export const HALT_CHANNEL = "gov_presence_halts";

/** An operator's halt of an agent, as recorded. */
export interface HaltState {
  agentId: string;
  /** The operator who halted it. */
  haltedBy: string;
  /** When it was halted. */
  haltedAt: Date;
  /** Why. */
  reason: string;
}

/** A halt or resume (`halt: null`) at its place in the global order of such changes. */
export interface HaltChange {
  agentId: string;
  version: number;
  halt: HaltState | null;
}

interface WireChange {
  a: string;
  v: number;
  h: { by: string; at: string; reason: string } | null;
}

/** The NOTIFY payload of a change; `{"reload":true}` if it would not fit. */
export function encodeChange(change: HaltChange): string {
  const wire: WireChange = {
    a: change.agentId,
    v: change.version,
    h: change.halt
      ? {
          by: change.halt.haltedBy,
          at: change.halt.haltedAt.toISOString(),
          reason: change.halt.reason,
        }
      : null,
  };
  const text = JSON.stringify(wire);
  return Buffer.byteLength(text, "utf8") < 7_900 ? text : '{"reload":true}';
}

/** The change a payload carries, or null when listeners should reload. */
function decodeChange(payload: string): HaltChange | null {
  try {
    const wire = JSON.parse(payload) as Partial<WireChange>;
    if (typeof wire.a !== "string" || typeof wire.v !== "number") return null;
    if (wire.h === null) return { agentId: wire.a, version: wire.v, halt: null };
    const halt = wire.h;
    if (!halt || typeof halt.by !== "string" || typeof halt.reason !== "string") return null;
    const haltedAt = new Date(String(halt.at));
    if (Number.isNaN(haltedAt.getTime())) return null;
    return {
      agentId: wire.a,
      version: wire.v,
      halt: { agentId: wire.a, haltedBy: halt.by, haltedAt, reason: halt.reason },
    };
  } catch {
    return null;
  }
}

/** How often, at most, a persisting failure to reload is repeated in the log. */
const WARN_EVERY_MS = 60_000;

/** The wait before retrying after a first failed reload; it doubles with each failure. */
export const RELOAD_BACKOFF_BASE_MS = 250;
/** The longest wait between retries of a failing reload; a TTL shorter than this caps it lower. */
export const RELOAD_BACKOFF_MAX_MS = 30_000;

/**
 * The wait after `failures` consecutive failed reloads: 250 ms, doubling, up to the TTL
 * (at least 250 ms) and never more than 30 s.
 */
export function reloadBackoffMs(failures: number, ttlMs: number): number {
  if (failures <= 0) return 0;
  const cap = Math.min(Math.max(ttlMs, RELOAD_BACKOFF_BASE_MS), RELOAD_BACKOFF_MAX_MS);
  return Math.min(RELOAD_BACKOFF_BASE_MS * 2 ** Math.min(failures - 1, 30), cap);
}

/**
 * The in-process cache of halted agents that every halt check reads.
 *
 * - A NOTIFY on {@link HALT_CHANNEL} (sent in the transaction of each halt and resume)
 *   updates it in every process as soon as the change commits.
 * - A full reload every `ttlMs` is the fallback for a lost notification or a row written
 *   by hand; after the listening connection reconnects, it reloads at once.
 * - Each change carries a version from one sequence, and an entry is only replaced by a
 *   newer one, so a reload racing with notifications never brings back an older state.
 * - When the database is unreachable the cache keeps its last known state and warns, and
 *   the background reloads (from halt checks and the timer) back off: 250 ms after the
 *   first failure, doubling up to the TTL or 30 s, back to normal after a success. An
 *   explicit {@link reload}, a reconnect of the listener and a reload request by NOTIFY
 *   do not wait.
 */
export class HaltCache {
  readonly #store: Store;
  readonly #logger: Logger;
  readonly #ttlMs: number;
  /** Per agent, the newest change seen; `halt: null` entries remember resumes. */
  #entries = new Map<string, HaltChange>();
  /** `performance.now()` of the last successful reload, or null before the first. */
  #loadedAt: number | null = null;
  /** Changes seen while a reload is in flight, applied again on top of its snapshot. */
  #buffer: HaltChange[] | null = null;
  #reloading: Promise<void> | null = null;
  /** A reload was asked for while one was in flight, whose snapshot may predate the ask. */
  #reloadAgain = false;
  #subscription: Subscription | null = null;
  #subscribing: Promise<void> | null = null;
  #timer: NodeJS.Timeout | null = null;
  #failing = false;
  #lastWarnAt = 0;
  /** Consecutive failed reloads, and the `performance.now()` before which none is started in the background. */
  #failures = 0;
  #retryAt = 0;
  #closed = false;

  constructor(store: Store, logger: Logger, ttlMs: number) {
    this.#store = store;
    this.#logger = logger;
    this.#ttlMs = ttlMs;
  }

  /** True once the halt state was read from the database at least once. */
  get loaded(): boolean {
    return this.#loadedAt !== null;
  }

  /** Listen, load, and reload every TTL. Never throws: failures are warned and retried. */
  async start(): Promise<void> {
    if (this.#closed) return;
    if (!this.#timer) {
      this.#timer = setInterval(() => {
        this.#background();
      }, this.#ttlMs);
      this.#timer.unref();
    }
    await this.reload().catch(() => undefined);
  }

  /**
   * The agent's halt, or null; starts a background reload when the cache is older than the
   * TTL (while reloads keep failing, at most one per backoff period).
   */
  get(agentId: string): HaltState | null {
    if (this.#loadedAt === null || performance.now() - this.#loadedAt > this.#ttlMs) {
      this.#background();
    }
    return this.#entries.get(agentId)?.halt ?? null;
  }

  /** The agent's halt, or null, without starting a reload. */
  peek(agentId: string): HaltState | null {
    return this.#entries.get(agentId)?.halt ?? null;
  }

  /** Every halted agent the cache knows of. */
  halted(): HaltState[] {
    const list: HaltState[] = [];
    for (const entry of this.#entries.values()) if (entry.halt) list.push(entry.halt);
    return list;
  }

  /** Record a change (from this process's own halt or resume, or a notification). */
  apply(change: HaltChange): void {
    this.#buffer?.push(change);
    const known = this.#entries.get(change.agentId);
    if (!known || change.version > known.version) this.#entries.set(change.agentId, change);
  }

  /**
   * Read the whole halt state from the database now (one reload at a time; a caller that
   * comes while one is in flight waits for it).
   * @throws {StoreError} when the database cannot be read; the cache keeps its state.
   */
  reload(): Promise<void> {
    this.#reloading ??= this.#reload().finally(() => {
      this.#reloading = null;
      if (this.#reloadAgain) {
        this.#reloadAgain = false;
        this.#background(true);
      }
    });
    return this.#reloading;
  }

  async #reload(): Promise<void> {
    await this.#listen();
    const buffer: HaltChange[] = [];
    this.#buffer = buffer;
    try {
      const rows = await this.#store.query<{
        agent_id: string;
        halted_by: string | null;
        halt_reason: string | null;
        halted_at: string | null;
        halt_version: string | number;
      }>(sql`
        select agent_id, halted_by, halt_reason, halt_version,
          to_char(halted_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as halted_at
        from gov_presence.agents where halt_version is not null`);
      const entries = new Map<string, HaltChange>();
      for (const row of rows) {
        entries.set(row.agent_id, {
          agentId: row.agent_id,
          version: Number(row.halt_version),
          halt:
            row.halted_at !== null && row.halted_by !== null && row.halt_reason !== null
              ? {
                  agentId: row.agent_id,
                  haltedBy: row.halted_by,
                  haltedAt: new Date(row.halted_at),
                  reason: row.halt_reason,
                }
              : null,
        });
      }
      this.#buffer = null;
      this.#entries = entries;
      for (const change of buffer) this.apply(change);
      this.#loadedAt = performance.now();
      this.#failures = 0;
      this.#retryAt = 0;
      if (this.#failing) {
        this.#failing = false;
        this.#logger.info(
          "The halt state can be read from the database again; the cache is current.",
        );
      }
    } catch (error) {
      this.#buffer = null;
      this.#failures += 1;
      this.#retryAt = performance.now() + reloadBackoffMs(this.#failures, this.#ttlMs);
      this.#warn(error);
      throw error;
    }
  }

  /**
   * Start a reload unless one is in flight or, after failures, the backoff has not passed
   * yet (`force`: the database just told us it is back, so try at once).
   */
  #background(force = false): void {
    if (this.#closed) return;
    if (this.#reloading) return;
    if (!force && this.#failures > 0 && performance.now() < this.#retryAt) return;
    this.reload().catch(() => undefined);
  }

  #warn(error: unknown): void {
    const now = Date.now();
    if (!this.#failing || now - this.#lastWarnAt >= WARN_EVERY_MS) {
      this.#lastWarnAt = now;
      this.#logger.warn(
        this.#loadedAt === null
          ? "The halt state cannot be read from the database and was never loaded: halt checks refuse every call until it can be read."
          : "The halt state cannot be read from the database; halt checks use the last known state until it can.",
        { error: describe(error), haltedAgents: this.halted().length },
      );
    }
    this.#failing = true;
  }

  /** Subscribe to the channel if not subscribed yet; a failure is warned, and retried on the next reload. */
  async #listen(): Promise<void> {
    if (this.#subscription || this.#closed) return;
    this.#subscribing ??= (async () => {
      try {
        const subscription = await this.#store.listen(
          HALT_CHANNEL,
          (payload) => this.#onNotification(payload),
          { onReconnect: () => this.#background(true) },
        );
        if (this.#closed) await subscription.unsubscribe();
        else this.#subscription = subscription;
      } catch (error) {
        this.#logger.warn(
          "Could not listen for halt notifications; halts from other processes are seen within the cache TTL instead.",
          { error: describe(error) },
        );
      } finally {
        this.#subscribing = null;
      }
    })();
    await this.#subscribing;
  }

  #onNotification(payload: string): void {
    const change = decodeChange(payload);
    if (change) {
      this.apply(change);
    } else if (this.#reloading) {
      this.#reloadAgain = true;
    } else {
      this.#background(true);
    }
  }

  /** Stop listening and reloading. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    await this.#subscribing;
    const subscription = this.#subscription;
    this.#subscription = null;
    await subscription?.unsubscribe().catch(() => undefined);
    await this.#reloading?.catch(() => undefined);
  }
}
