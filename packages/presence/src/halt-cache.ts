import {
  describeError,
  type Keyring,
  type Logger,
  type Store,
  type Subscription,
  sql,
} from "@gov/core";
import {
  HALT_ROW_COLUMNS,
  type HaltChange,
  type HaltRow,
  type HaltState,
  HOLDS_HALT_STATE,
  unverifiableHalt,
  verifyHaltRow,
} from "./halt-state";

export type { HaltChange, HaltState } from "./halt-state";

/** The channel on which halts and resumes are announced to every process. */
export const HALT_CHANNEL = "gov_presence_halts";

/** Characters of an agent id (as the module validates them). */
const MAX_AGENT_ID = 256;

/**
 * The NOTIFY payload of a change: a wake-up that names the agent (and the version, so that a
 * process that already holds it skips the read). It carries no state: listeners re-read the
 * agent's row and verify its signature.
 */
export function encodeWakeUp(agentId: string, version: number): string {
  return JSON.stringify({ a: agentId, v: version });
}

/** The agent a wake-up names (and its version hint), or null when listeners should reload. */
function decodeWakeUp(payload: string): { agentId: string; version: number | null } | null {
  let wire: unknown;
  try {
    wire = JSON.parse(payload);
  } catch {
    return null;
  }
  if (typeof wire !== "object" || wire === null || Array.isArray(wire)) return null;
  const { a, v } = wire as Record<string, unknown>;
  if (typeof a !== "string" || a.length === 0 || a.length > MAX_AGENT_ID) return null;
  return {
    agentId: a,
    version: typeof v === "number" && Number.isSafeInteger(v) && v > 0 ? v : null,
  };
}

/** How often, at most, a persisting failure to reload is repeated in the log. */
const WARN_EVERY_MS = 60_000;

/** The wait before retrying after a first failed reload; it doubles with each failure. */
export const RELOAD_BACKOFF_BASE_MS = 250;
/** The longest wait between retries of a failing reload; a TTL shorter than this caps it lower. */
export const RELOAD_BACKOFF_MAX_MS = 30_000;
/**
 * The shortest time between two full reloads asked for by notifications that name no agent
 * (nothing this package sends: a flood of them from a role that can connect costs one reload
 * per this period, not one per notification).
 */
export const NOTIFIED_RELOAD_INTERVAL_MS = 250;
/** Agents waiting to be re-read after notifications; more than this and a full reload replaces them. */
export const MAX_PENDING_AGENTS = 500;

/**
 * The wait after `failures` consecutive failed reloads: 250 ms, doubling, up to the TTL
 * (at least 250 ms) and never more than 30 s.
 */
export function reloadBackoffMs(failures: number, ttlMs: number): number {
  if (failures <= 0) return 0;
  const cap = Math.min(Math.max(ttlMs, RELOAD_BACKOFF_BASE_MS), RELOAD_BACKOFF_MAX_MS);
  return Math.min(RELOAD_BACKOFF_BASE_MS * 2 ** Math.min(failures - 1, 30), cap);
}

/** Stored halt state the cache would not believe, as reported to {@link HaltCacheOptions.onRefused}. */
export interface RefusedHaltState {
  agentId: string;
  /** The version the row claims (or the one this process holds, for a row that went back or vanished). */
  version: number | null;
  /** Why it was not believed. */
  problem: string;
  /** True when the agent is now enforced as halted because of it (the row failed verification). */
  enforcedAsHalt: boolean;
}

/** What a {@link HaltCache} needs. */
export interface HaltCacheOptions {
  store: Pick<Store, "query" | "listen">;
  logger: Logger;
  /** The keys halt states are verified with. */
  keyring: Keyring;
  /** The full reload period, the fallback for a lost notification. */
  ttlMs: number;
  /** The time a refused state was first found (the `haltedAt` of the halt enforced for it). @default () => new Date() */
  now?: () => Date;
  /** Told of each row that was refused, went back to an older version, or lost its halt. */
  onRefused?: (refused: RefusedHaltState) => void;
}

/** A verified change, and when this process learnt it (see {@link HaltCache}'s epochs). */
interface Entry {
  change: HaltChange;
  epoch: number;
}

/**
 * The in-process cache of halted agents that every halt check reads. It holds only state
 * read from the database whose signature verifies (or this process's own writes).
 *
 * - A NOTIFY on {@link HALT_CHANNEL} is a wake-up, never state: the agent it names is re-read
 *   (the names of many notifications are read together, one query at a time), and a payload
 *   that names no agent causes a full reload (at most one per
 *   {@link NOTIFIED_RELOAD_INTERVAL_MS}).
 * - A full reload every `ttlMs` is the fallback for a lost notification or a row written
 *   by hand; after the listening connection reconnects, it reloads at once.
 * - A row whose signature fails is refused and reported, and its agent is treated as halted
 *   until a row that verifies replaces it.
 * - Each change carries a version, and an entry is only replaced by a newer one: a reload
 *   racing with notifications never brings back an older state, and neither does an older
 *   signed row written back into the table. A halt whose row went back to an older version or
 *   vanished is kept, and reported.
 * - When the database is unreachable the cache keeps its last known state and warns, and
 *   the background reloads (from halt checks and the timer) back off: 250 ms after the
 *   first failure, doubling up to the TTL or 30 s, back to normal after a success. An
 *   explicit {@link reload} and a reconnect of the listener do not wait.
 */
export class HaltCache {
  readonly #store: Pick<Store, "query" | "listen">;
  readonly #logger: Logger;
  readonly #keyring: Keyring;
  readonly #ttlMs: number;
  readonly #now: () => Date;
  readonly #onRefused: (refused: RefusedHaltState) => void;
  /** Per agent, the newest verified change; `halt: null` entries remember resumes. */
  readonly #entries = new Map<string, Entry>();
  /** Agents whose stored state failed verification: enforced as halted. */
  readonly #refused = new Map<
    string,
    { version: number | null; problem: string; halt: HaltState }
  >();
  /**
   * Counts what this process learnt. A read that started at epoch `e` must see every entry of
   * epoch ≤ `e` (they were committed before it started); one that sees an older version, or
   * no row, for such an entry found a row that went back — not a race with a newer change.
   */
  #epoch = 0;
  /**
   * `performance.now()` of the last successful reload, or null before the first. Cache ages
   * are elapsed (monotonic) time, not wall time: the injected clock is for timestamps.
   */
  #loadedAt: number | null = null;
  #reloading: Promise<void> | null = null;
  /** A reload was asked for while one was in flight, whose snapshot may predate the ask. */
  #reloadAgain = false;
  /** `performance.now()` of the last reload that a notification asked for. */
  #notifiedReloadAt = Number.NEGATIVE_INFINITY;
  #notifiedReloadTimer: NodeJS.Timeout | null = null;
  /** Agents named by notifications, waiting to be re-read. */
  #pending = new Set<string>();
  #reading: Promise<void> | null = null;
  #subscription: Subscription | null = null;
  #subscribing: Promise<void> | null = null;
  #timer: NodeJS.Timeout | null = null;
  #failing = false;
  #lastWarnAt = 0;
  /** Consecutive failed reloads, and the `performance.now()` before which none is started in the background. */
  #failures = 0;
  #retryAt = 0;
  #closed = false;

  constructor(options: HaltCacheOptions) {
    this.#store = options.store;
    this.#logger = options.logger;
    this.#keyring = options.keyring;
    this.#ttlMs = options.ttlMs;
    this.#now = options.now ?? (() => new Date());
    this.#onRefused = options.onRefused ?? (() => undefined);
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
    return this.peek(agentId);
  }

  /** The agent's halt, or null, without starting a reload. */
  peek(agentId: string): HaltState | null {
    return this.#refused.get(agentId)?.halt ?? this.#entries.get(agentId)?.change.halt ?? null;
  }

  /** Every halted agent the cache knows of, those enforced as unverifiable included. */
  halted(): HaltState[] {
    const list: HaltState[] = [];
    for (const [agentId, entry] of this.#entries) {
      if (entry.change.halt && !this.#refused.has(agentId)) list.push(entry.change.halt);
    }
    for (const refused of this.#refused.values()) list.push(refused.halt);
    return list;
  }

  /**
   * Record a verified change: this process's own halt or resume (signed, committed), or a row
   * that verified. It replaces the agent's entry when newer, and clears a refusal.
   */
  apply(change: HaltChange): void {
    this.#refused.delete(change.agentId);
    const known = this.#entries.get(change.agentId);
    if (!known || change.version > known.change.version) {
      this.#entries.set(change.agentId, { change, epoch: ++this.#epoch });
    }
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
        this.#notifiedReload();
      }
    });
    return this.#reloading;
  }

  async #reload(): Promise<void> {
    await this.#listen();
    const since = this.#epoch;
    try {
      const rows = await this.#store.query<HaltRow>(
        sql`select ${HALT_ROW_COLUMNS} from gov_presence.agents where ${HOLDS_HALT_STATE}`,
      );
      const seen = new Set<string>();
      for (const row of rows) {
        seen.add(row.agent_id);
        this.#consider(row.agent_id, row, since);
      }
      for (const agentId of [...this.#entries.keys()]) {
        if (!seen.has(agentId)) this.#consider(agentId, undefined, since);
      }
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
      this.#failures += 1;
      this.#retryAt = performance.now() + reloadBackoffMs(this.#failures, this.#ttlMs);
      this.#warn(error);
      throw error;
    }
  }

  /**
   * What a read (started at epoch `since`) found for an agent: its row, or none. Only a row
   * that verifies changes what the cache believes; a refused one makes the agent halted.
   */
  #consider(agentId: string, row: HaltRow | undefined, since: number): void {
    const verdict = row ? verifyHaltRow(row, this.#keyring) : ({ kind: "none" } as const);
    const known = this.#entries.get(agentId);
    if (verdict.kind === "refused") {
      // A verified change learnt while this read was in flight (this process's own resume
      // of the refused row, say) is newer than what the read saw.
      if (known && known.epoch > since) return;
      const refused = this.#refused.get(agentId);
      if (!refused || refused.version !== verdict.version || refused.problem !== verdict.problem) {
        this.#refused.set(agentId, {
          version: verdict.version,
          problem: verdict.problem,
          halt: unverifiableHalt(agentId, verdict.problem, refused?.halt.haltedAt ?? this.#now()),
        });
      }
      this.#onRefused({
        agentId,
        version: verdict.version,
        problem: verdict.problem,
        enforcedAsHalt: true,
      });
      return;
    }
    const wentBack = known !== undefined && known.epoch <= since;
    if (verdict.kind === "verified") {
      const { change } = verdict;
      if (wentBack && change.version < known.change.version) {
        this.#onRefused({
          agentId,
          version: change.version,
          problem: `the row holds version ${change.version}, older than version ${known.change.version} that this process has seen (an older signed row was written back); the newer state is kept`,
          enforcedAsHalt: false,
        });
      }
      this.apply(change);
      return;
    }
    // No halt state in the table.
    if (!known) return;
    if (known.change.halt === null) {
      // A resumed agent whose row was closed (closeAgent) or never held a signed state: no
      // halt either way, and nothing to protect.
      if (wentBack) this.#entries.delete(agentId);
      return;
    }
    if (wentBack) {
      this.#onRefused({
        agentId,
        version: known.change.version,
        problem: `its halt (version ${known.change.version}) is gone from the table (the row was deleted or its halt columns cleared); this process keeps enforcing it`,
        enforcedAsHalt: false,
      });
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
    // Elapsed time between warnings (monotonic), not wall time: no clock is needed here.
    const now = performance.now();
    if (!this.#failing || now - this.#lastWarnAt >= WARN_EVERY_MS) {
      this.#lastWarnAt = now;
      this.#logger.warn(
        this.#loadedAt === null
          ? "The halt state cannot be read from the database and was never loaded: halt checks refuse every call until it can be read."
          : "The halt state cannot be read from the database; halt checks use the last known state until it can.",
        { error: describeError(error), haltedAgents: this.halted().length },
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
          { error: describeError(error) },
        );
      } finally {
        this.#subscribing = null;
      }
    })();
    await this.#subscribing;
  }

  /** A wake-up: anyone who can connect can send one, so it only ever causes a read. */
  #onNotification(payload: string): void {
    if (this.#closed) return;
    const wakeUp = decodeWakeUp(payload);
    if (!wakeUp) {
      this.#notifiedReload();
      return;
    }
    const known = this.#entries.get(wakeUp.agentId);
    if (
      known &&
      wakeUp.version !== null &&
      known.change.version >= wakeUp.version &&
      !this.#refused.has(wakeUp.agentId)
    ) {
      return; // Already known (this process's own change, or a repeat): nothing to read.
    }
    this.#pending.add(wakeUp.agentId);
    if (this.#pending.size > MAX_PENDING_AGENTS) {
      this.#pending.clear();
      this.#notifiedReload();
      return;
    }
    this.#reading ??= this.#readPending().finally(() => {
      this.#reading = null;
    });
  }

  /** Re-read the agents named by notifications, in batches, one query at a time. */
  async #readPending(): Promise<void> {
    while (this.#pending.size > 0 && !this.#closed) {
      const agentIds = [...this.#pending];
      this.#pending = new Set();
      const since = this.#epoch;
      let rows: HaltRow[];
      try {
        rows = await this.#store.query<HaltRow>(sql`
          select ${HALT_ROW_COLUMNS} from gov_presence.agents
          where agent_id in (select jsonb_array_elements_text(${JSON.stringify(agentIds)}::jsonb))`);
      } catch (error) {
        // What those agents hold now is unknown: a full reload (with its backoff) reads it.
        this.#warn(error);
        this.#background(true);
        return;
      }
      const byAgent = new Map(rows.map((row) => [row.agent_id, row]));
      for (const agentId of agentIds) this.#consider(agentId, byAgent.get(agentId), since);
    }
  }

  /** A full reload asked for by a notification: at most one per {@link NOTIFIED_RELOAD_INTERVAL_MS}. */
  #notifiedReload(): void {
    if (this.#reloading) {
      this.#reloadAgain = true;
      return;
    }
    if (this.#notifiedReloadTimer) return;
    const wait = this.#notifiedReloadAt + NOTIFIED_RELOAD_INTERVAL_MS - performance.now();
    const run = () => {
      this.#notifiedReloadTimer = null;
      this.#notifiedReloadAt = performance.now();
      this.#background(true);
    };
    if (wait <= 0) {
      run();
      return;
    }
    this.#notifiedReloadTimer = setTimeout(run, wait);
    this.#notifiedReloadTimer.unref();
  }

  /** Stop listening and reloading. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    if (this.#notifiedReloadTimer) clearTimeout(this.#notifiedReloadTimer);
    this.#notifiedReloadTimer = null;
    await this.#subscribing;
    const subscription = this.#subscription;
    this.#subscription = null;
    await subscription?.unsubscribe().catch(() => undefined);
    await this.#reading?.catch(() => undefined);
    await this.#reloading?.catch(() => undefined);
  }
}
