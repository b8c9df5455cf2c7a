/**
 * The coverage registry: which agents make governed model calls, through which clients.
 * Persisted (schema `gov_coverage`) so that the console and the compliance reports of other
 * processes read the same answer.
 * @module
 */
import {
  type Clock,
  type CoverageRecorder,
  checkId,
  InvalidArgumentError,
  type Logger,
  parseOptions,
  type Store,
  sql,
  systemClock,
} from "@gov/core";
import { z } from "zod";

/** One wrapped client of one agent, as the registry holds it. */
export interface CoverageEntry {
  readonly agentId: string;
  /** The client: `openai`, `anthropic`, `ai-sdk`, … */
  readonly client: string;
  /** When the client was first seen governed for this agent (wrapped or called). */
  readonly firstSeenAt: Date;
  /** When it was last seen. */
  readonly lastSeenAt: Date;
  /** Governed calls made through it (wrapping alone counts none). */
  readonly calls: number;
}

/** {@link CoverageRegistry.coveragePct}'s answer for a set of agents. */
export interface CoverageReport {
  /** The agents asked about (each once). */
  readonly agents: number;
  /** Those with at least one governed client, sorted. */
  readonly covered: readonly string[];
  /** Those with none: their model calls, if any, went through no wrapper, sorted. */
  readonly uncovered: readonly string[];
  /** `covered / agents`, from 0 to 1; null when no agent was given (see `reason`). */
  readonly coveragePct: number | null;
  /** Why `coveragePct` is null. */
  readonly reason?: string;
}

/** The registry's options. */
export interface CoverageOptions {
  /**
   * How often what was recorded is written (batched, one statement per 500 pairs); `null`
   * writes only on `flush()`, reads and `close()`. @default 5000
   */
  flushIntervalMs?: number | null;
  /**
   * At start, warn when no client was ever recorded in this database: model calls through a
   * client that is not wrapped are not governed (the reference's `warn_on_no_wrappers`).
   * @default true
   */
  warnOnNoWrappers?: boolean;
}

/** What {@link CoverageRegistry} needs: the store, and where it logs. */
export interface CoverageContext {
  store: Store;
  logger: Logger;
  clock?: Clock;
}

/** Limits of the registry. */
export const COVERAGE_LIMITS = {
  /** Distinct (agent, client) pairs held unwritten; beyond it, new pairs are dropped (logged). */
  maxPendingPairs: 10_000,
  /** Agents one {@link CoverageRegistry.coveragePct} or `coverage` call may name. */
  maxAgents: 10_000,
  /** Characters of a client name. */
  clientLength: 64,
  /** Pairs per INSERT statement. */
  batch: 500,
} as const;

const optionsSchema = z.strictObject({
  flushIntervalMs: z.number().int().positive().max(3_600_000).nullable().optional(),
  warnOnNoWrappers: z.boolean().optional(),
});

const OPTION_FIXES = {
  "": "Pass { flushIntervalMs?, warnOnNoWrappers? }, or nothing.",
  flushIntervalMs:
    "Use a whole number of milliseconds from 1 to 3600000, or null to write only on flush().",
  warnOnNoWrappers: "Use true (the default) or false.",
};

interface Pending {
  agentId: string;
  client: string;
  calls: number;
  /** Milliseconds since the epoch (formatted when written). */
  firstSeenMs: number;
  lastSeenMs: number;
}

/** The message of the start-up warning when no client was ever governed here. */
export const NO_WRAPPERS_WARNING =
  "No model client has been governed in this database yet (the coverage registry is empty): calls made through a client that is not wrapped (wrapOpenAI, wrapAnthropic, governanceMiddleware) are not halted, scoped, budgeted or audited. Wrap the agent's clients; set warnOnNoWrappers: false (GOVERNANCE_WARN_ON_NO_WRAPPERS=false) to silence this.";

/**
 * Which agents make governed model calls, and through which clients: every wrapper records
 * its client when it wraps one (`wrapped`) and each call it governs (`call`). An observation
 * surface: {@link record} is synchronous, never throws and never waits for the database —
 * what it records is counted in memory and written in batches (every `flushIntervalMs`, and on
 * `flush()`, reads and `close()`); a write that fails is kept and retried, never lost while
 * the process lives (beyond {@link COVERAGE_LIMITS.maxPendingPairs} new pairs, dropped and
 * logged).
 *
 * The table is an index, not evidence: a role that can write it can change what it says. The
 * evidence is in the audit chain, where each wrapping (`wrapper.registered`) and each call
 * (`llm.call`, with its provider) is recorded.
 *
 * @example
 * ```ts
 * const registry = new CoverageRegistry({ store, logger });
 * await registry.start();
 * const openai = wrapOpenAI(new OpenAI(), { governance: { cost, scope, coverage: registry }, agentId: "billing-agent" });
 * const report = await registry.coveragePct(["billing-agent", "support-agent"]);
 * // { agents: 2, covered: ["billing-agent"], uncovered: ["support-agent"], coveragePct: 0.5 }
 * ```
 */
export class CoverageRegistry implements CoverageRecorder {
  readonly #store: Store;
  readonly #logger: Logger;
  readonly #clock: Clock;
  readonly #flushIntervalMs: number | null;
  readonly #warnOnNoWrappers: boolean;
  #pending = new Map<string, Pending>();
  #timer: ReturnType<typeof setInterval> | null = null;
  #flushing: Promise<number> = Promise.resolve(0);
  #dropped = 0;
  #failing = false;
  #closed = false;

  /** @throws {InvalidArgumentError} for an unknown option or a bad value (with its fix). */
  constructor(context: CoverageContext, options: CoverageOptions = {}) {
    if (typeof context !== "object" || context === null || typeof context.store !== "object")
      throw new InvalidArgumentError(
        "context.store",
        "must be a Store.",
        "Pass { store, logger } (createStore from @gov/core), or use the SDK (enableCoverage).",
      );
    const parsed = parseOptions(optionsSchema, options, { fixes: OPTION_FIXES });
    this.#store = context.store;
    this.#logger = context.logger;
    this.#clock = context.clock ?? systemClock;
    this.#flushIntervalMs = parsed.flushIntervalMs === undefined ? 5_000 : parsed.flushIntervalMs;
    this.#warnOnNoWrappers = parsed.warnOnNoWrappers ?? true;
  }

  /**
   * Start the periodic write, and warn (once) when this database never saw a governed client
   * and `warnOnNoWrappers` is on. Idempotent. A database that cannot be read is logged, not
   * thrown: coverage is observation.
   */
  async start(): Promise<void> {
    if (this.#closed || this.#timer !== null) return;
    if (this.#flushIntervalMs !== null) {
      this.#timer = setInterval(() => void this.flush(), this.#flushIntervalMs);
      this.#timer.unref?.();
    }
    if (!this.#warnOnNoWrappers) return;
    try {
      const rows = await this.#store.query<{ any: boolean }>(
        sql`select exists (select 1 from gov_coverage.clients) as "any"`,
      );
      if (rows[0]?.any !== true && this.#pending.size === 0) this.#logger.warn(NO_WRAPPERS_WARNING);
    } catch (error) {
      this.#logger.warn("@gov/wrappers: could not read the coverage registry at start.", {
        error: errorName(error),
      });
    }
  }

  /**
   * Record that `agentId`'s `client` is governed: `"wrapped"` when a wrapper wraps it,
   * `"call"` (the default) for each governed call. Synchronous and cheap; never throws (an id
   * that core's rule refuses is logged and dropped).
   */
  record(agentId: string, client: string, event: "wrapped" | "call" = "call"): void {
    if (this.#closed) return;
    // CONTRIBUTING's id rule: a module that stores or compares ids normalizes them (NFC)
    const agent = nfc(agentId);
    const name = nfc(client);
    const key = `${agent}\u0000${name}`;
    const now = this.#clock.nowMs();
    const seen = this.#pending.get(key);
    if (seen !== undefined) {
      if (event === "call") seen.calls++;
      if (now > seen.lastSeenMs) seen.lastSeenMs = now;
      return;
    }
    try {
      checkId(agent, "agentId");
      checkId(name, "client", { max: COVERAGE_LIMITS.clientLength });
    } catch (error) {
      this.#logger.warn("@gov/wrappers: a coverage record was refused and dropped.", {
        field: (error as { field?: unknown }).field,
      });
      return;
    }
    if (this.#pending.size >= COVERAGE_LIMITS.maxPendingPairs) {
      if (this.#dropped++ === 0)
        this.#logger.warn(
          `@gov/wrappers: ${COVERAGE_LIMITS.maxPendingPairs} coverage records wait to be written; new agents and clients are dropped until the database takes them.`,
        );
      return;
    }
    this.#pending.set(key, {
      agentId: agent,
      client: name,
      calls: event === "call" ? 1 : 0,
      firstSeenMs: now,
      lastSeenMs: now,
    });
  }

  /**
   * Write what was recorded. Resolves to the number of (agent, client) pairs written; a
   * failure is logged and the records kept for the next write — never thrown.
   */
  flush(): Promise<number> {
    const next = this.#flushing.then(() => this.#write());
    this.#flushing = next;
    return next;
  }

  async #write(): Promise<number> {
    if (this.#pending.size === 0) return 0;
    const batch = [...this.#pending.values()];
    this.#pending = new Map();
    let written = 0;
    try {
      for (let start = 0; start < batch.length; start += COVERAGE_LIMITS.batch) {
        const rows = batch.slice(start, start + COVERAGE_LIMITS.batch);
        await this.#store.query(sql`
          insert into gov_coverage.clients as c (agent_id, client, first_seen_at, last_seen_at, calls)
          values ${sql.join(
            rows.map(
              (row) =>
                sql`(${row.agentId}, ${row.client}, ${new Date(row.firstSeenMs).toISOString()}::timestamptz, ${new Date(row.lastSeenMs).toISOString()}::timestamptz, ${row.calls})`,
            ),
            sql`, `,
          )}
          on conflict (agent_id, client) do update set
            first_seen_at = least(c.first_seen_at, excluded.first_seen_at),
            last_seen_at = greatest(c.last_seen_at, excluded.last_seen_at),
            calls = c.calls + excluded.calls`);
        written += rows.length;
      }
      if (this.#failing) {
        this.#failing = false;
        this.#logger.info("@gov/wrappers: the coverage registry is written again.");
      }
      this.#dropped = 0;
      return written;
    } catch (error) {
      // Keep what was not written: merged with what was recorded meanwhile.
      for (const row of batch.slice(written)) this.#merge(row);
      if (!this.#failing) {
        this.#failing = true;
        this.#logger.warn(
          "@gov/wrappers: could not write the coverage registry; the records are kept and written later.",
          { error: errorName(error) },
        );
      }
      return written;
    }
  }

  #merge(row: Pending): void {
    const key = `${row.agentId}\u0000${row.client}`;
    const seen = this.#pending.get(key);
    if (seen === undefined) {
      this.#pending.set(key, row);
      return;
    }
    seen.calls += row.calls;
    if (row.firstSeenMs < seen.firstSeenMs) seen.firstSeenMs = row.firstSeenMs;
    if (row.lastSeenMs > seen.lastSeenMs) seen.lastSeenMs = row.lastSeenMs;
  }

  /**
   * The governed clients, of every agent or of `agentIds` (after writing what this process
   * recorded), ordered by agent and client.
   *
   * @throws {InvalidArgumentError} for a bad agent id list.
   * @throws {StoreError} when the database cannot be read.
   */
  async coverage(options: { agentIds?: readonly string[] } = {}): Promise<CoverageEntry[]> {
    const { agentIds } = parseOptions(
      z.strictObject({ agentIds: z.array(z.unknown()).optional() }),
      options,
      { fixes: { "": "Pass { agentIds? }, or nothing." } },
    );
    const ids = agentIds === undefined ? null : checkAgentIds(agentIds, "options.agentIds");
    await this.flush();
    const rows = await this.#store.query<{
      agent_id: string;
      client: string;
      first_seen_at: string | Date;
      last_seen_at: string | Date;
      calls: string | number;
    }>(sql`
      select agent_id, client, first_seen_at, last_seen_at, calls
      from gov_coverage.clients
      ${ids === null ? sql`` : sql`where agent_id = any(${sql.param(ids)}::text[])`}
      order by agent_id, client`);
    return rows.map((row) =>
      Object.freeze({
        agentId: row.agent_id,
        client: row.client,
        firstSeenAt: new Date(row.first_seen_at),
        lastSeenAt: new Date(row.last_seen_at),
        calls: Number(row.calls),
      }),
    );
  }

  /**
   * The share of `agentIds` that have at least one governed client (wrapped or called
   * through): the coverage of a set of agents, as a compliance report states it. An agent
   * whose calls go through a client that is not wrapped is not seen at all, so this is an
   * upper bound of what is governed, for agents named by the caller (e.g. every agent in the
   * audit chain over a period).
   *
   * @throws {InvalidArgumentError} for a bad agent id list (1–10,000 ids by core's id rule).
   * @throws {StoreError} when the database cannot be read.
   */
  async coveragePct(agentIds: readonly string[]): Promise<CoverageReport> {
    if (!Array.isArray(agentIds))
      throw new InvalidArgumentError(
        "agentIds",
        "must be an array of agent ids.",
        'Pass the agents to measure, e.g. coveragePct(["billing-agent"]).',
      );
    const ids = checkAgentIds(agentIds, "agentIds");
    if (ids.length === 0)
      return Object.freeze({
        agents: 0,
        covered: [],
        uncovered: [],
        coveragePct: null,
        reason: "no agents were given",
      });
    const entries = await this.coverage({ agentIds: ids });
    const governed = new Set(entries.map((entry) => entry.agentId));
    const covered = ids.filter((id) => governed.has(id));
    const uncovered = ids.filter((id) => !governed.has(id));
    return Object.freeze({
      agents: ids.length,
      covered: Object.freeze(covered),
      uncovered: Object.freeze(uncovered),
      coveragePct: covered.length / ids.length,
    });
  }

  /** Counters: pairs waiting to be written, and new pairs dropped since the last write. */
  metrics(): { pending: number; dropped: number } {
    return { pending: this.#pending.size, dropped: this.#dropped };
  }

  /** Stop the timer and write what is left (a failure is logged). Idempotent. */
  async close(): Promise<void> {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
    if (this.#closed) return;
    await this.flush();
    this.#closed = true;
    if (this.#pending.size > 0)
      this.#logger.warn(
        `@gov/wrappers: ${this.#pending.size} coverage records could not be written before close.`,
      );
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** Distinct, sorted, each by core's id rule. */
function checkAgentIds(values: readonly unknown[], field: string): string[] {
  if (values.length > COVERAGE_LIMITS.maxAgents)
    throw new InvalidArgumentError(
      field,
      `names ${values.length} agents; at most ${COVERAGE_LIMITS.maxAgents}.`,
      "Ask about fewer agents at a time.",
      { limit: COVERAGE_LIMITS.maxAgents },
    );
  const ids = values.map((value, index) => nfc(checkId(value, `${field}[${index}]`)));
  return [...new Set(ids)].sort();
}

/** An id in NFC, the form it is stored and compared in; a non-string is left to `checkId`. */
function nfc<T>(value: T): T {
  return (typeof value === "string" ? value.normalize("NFC") : value) as T;
}

function errorName(error: unknown): string {
  return (error as { code?: unknown })?.code !== undefined
    ? String((error as { code: unknown }).code)
    : ((error as Error)?.name ?? typeof error);
}
