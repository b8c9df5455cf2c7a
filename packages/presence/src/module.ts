import {
  AgentHaltedError,
  type AuditSink,
  type Clock,
  defineModule,
  describeError,
  type HaltCheckContext,
  type HaltGuard,
  InvalidArgumentError,
  type Keyring,
  type Logger,
  type MigrationSource,
  type ModuleContext,
  noopAuditSink,
  requireKeyring,
  requirePort,
  type Store,
  sql,
  typeOf,
} from "@gov/core";
import { PRESENCE_AUDIT_KINDS } from "./audit-kinds";
import { CloseHaltedAgentError, HaltNotPersistedError, HaltStateUnavailableError } from "./errors";
import { HaltCache, type RefusedHaltState } from "./halt-cache";
import {
  HALT_ROW_COLUMNS,
  type HaltChange,
  type HaltRow,
  type HaltState,
  UNVERIFIABLE_HALTED_BY,
  unverifiableHalt,
  verifyHaltRow,
} from "./halt-state";
import { readBackProblem, StoredStateMismatch, writeHalt, writeResume } from "./halt-writes";
import {
  type AgentPresence,
  type AgentStatus,
  checkOptionsSchema,
  type HaltOptions,
  type HaltResult,
  type HeartbeatOptions,
  haltOptionsSchema,
  heartbeatOptionsSchema,
  type PresenceMetadata,
  type PresenceOptions,
  presenceOptionsSchema,
  type ResolvedPresenceOptions,
  type ResumeOptions,
  type ResumeResult,
  resumeOptionsSchema,
  validateAgentId,
  validateOptions,
  validateStoredAgentId,
  validateTimeout,
} from "./models";
import { presenceSdkContribution } from "./sdk-options";

/** The presence module's migrations: schema `gov_presence`. */
export const presenceMigrations: MigrationSource = {
  name: "presence",
  migrationsFolder: new URL("../drizzle", import.meta.url),
};

const STATUS_OF: Record<string, AgentStatus> = {
  live: "Live",
  idle: "Idle",
  unresponsive: "Unresponsive",
};

/** The path recorded for `assertNotHalted(agentId)` called without options. */
const DIRECT_CHECK_PATH = "presence.assertNotHalted";

/** Agent ids and paths already validated: the halt checks skip re-validating them. */
const MAX_KNOWN = 10_000;

/**
 * Heartbeats, agent status and the operator's halt.
 *
 * Heartbeats (`heartbeat`, `markIdle`, `closeAgent`, `checkStale`) are observation
 * surfaces: a database failure is logged and reported in the return value, never thrown.
 * The halt is an enforcement surface: `halt()` throws when it cannot be persisted, and
 * `assertNotHalted()` (the `HaltGuard` that scope, cost, gates and the wrappers call)
 * refuses a halted agent with `AgentHaltedError`, and fails closed while the halt state has
 * never been read. Both halt checks read an in-process cache: a Postgres NOTIFY wakes every
 * process as soon as a halt commits, and each re-reads the agent's row, with a TTL reload as
 * the fallback. Every halt and resume is signed under the keyring's current key; a stored
 * state whose signature fails is refused, reported and enforced as a halt.
 *
 * @example
 * ```ts
 * await sdk.presence.heartbeat("billing-agent", { operatorId: "alice@company.com" });
 * await sdk.presence.halt("billing-agent", { haltedBy: "alice@company.com", reason: "refund loop" });
 * await sdk.presence.assertNotHalted("billing-agent", { path: "my.tool" }); // throws AgentHaltedError
 * ```
 */
export class PresenceModule implements HaltGuard {
  readonly #store: Store;
  readonly #keyring: Keyring;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #audit: AuditSink;
  readonly #options: ResolvedPresenceOptions;
  readonly #cache: HaltCache;
  readonly #knownIds = new Set<string>();
  readonly #knownPaths = new Set<string>();
  /** Refused halt states already reported (agent, version, problem). */
  readonly #reportedRefusals = new Set<string>();
  /** Reports of refused states on their way to the audit sink (waited for by reloads and close). */
  readonly #reporting = new Set<Promise<void>>();
  #started: Promise<void> | null = null;
  #closed = false;

  /**
   * @param context the store, the keyring (its current key signs every halt and resume; every
   *   key in it verifies them), clock and logger, and the audit sink halts are recorded in
   *   (no-op when absent). Every process that enforces halts must hold the keys that signed
   *   them.
   * @param options see {@link PresenceOptions}.
   * @throws {InvalidArgumentError} (core's) for a missing or malformed context field,
   *   naming it (`context.store`, `context.keyring`, `context.clock`, `context.logger`,
   *   `context.audit`).
   * @throws {InvalidPresenceInputError} for a bad option; nothing is started then.
   */
  constructor(
    context: Pick<ModuleContext, "store" | "keyring" | "clock" | "logger"> & {
      audit?: AuditSink;
    },
    options: PresenceOptions = {},
  ) {
    if (typeof context !== "object" || context === null) {
      throw new InvalidArgumentError(
        "context",
        `must be an object, got ${typeOf(context)}.`,
        "Pass a context { store, keyring, clock, logger, audit? } (a ModuleContext); @gov/sdk wires it for you.",
      );
    }
    requirePort(
      context.store,
      "store",
      ["query", "transaction", "listen", "notify"],
      "a @gov/core Store (createStore)",
    );
    requireKeyring(context.keyring, "context.keyring", "its current key signs halts");
    requirePort(context.clock, "clock", ["now", "nowMs"], "a Clock (e.g. systemClock)");
    requirePort(
      context.logger,
      "logger",
      ["warn", "info", "error", "debug"],
      "a Logger (e.g. silentLogger)",
    );
    if (context.audit !== undefined && context.audit !== null) {
      requirePort(
        context.audit,
        "audit",
        ["log"],
        "an AuditSink, or absent (noopAuditSink records nothing)",
      );
    }
    this.#options = validateOptions(presenceOptionsSchema, options ?? undefined);
    this.#store = context.store;
    this.#keyring = context.keyring;
    this.#clock = context.clock;
    this.#logger = context.logger;
    this.#audit = context.audit ?? noopAuditSink;
    this.#cache = new HaltCache({
      store: context.store,
      logger: context.logger,
      keyring: context.keyring,
      ttlMs: this.#options.haltCacheTtlMs,
      now: () => this.#clock.now(),
      onRefused: (refused) => this.#reportRefused(refused),
    });
  }

  /**
   * Listen for halt notifications, load the halt state, and reload it every
   * `haltCacheTtlMs`. Idempotent; a closed module stays closed. Never rejects: when the
   * database cannot be read it warns, and retries. Call it before use (`presenceModule`
   * does): until it has run, `isHalted` answers from an empty cache (false), and
   * `assertNotHalted` reads the halt state itself on its first call.
   *
   * @example
   * ```ts
   * const presence = new PresenceModule({ store, keyring, clock, logger });
   * await presence.start();
   * ```
   */
  start(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#started ??= this.#cache.start();
    return this.#started;
  }

  // ---------------------------------------------------------------------------------------
  // Heartbeats (observation)

  /**
   * Mark an agent Live: records the heartbeat's time (and metadata and operator, when
   * given). Call it periodically, e.g. every 30 s. Never touches a halt.
   *
   * @returns true when recorded; false when the database could not take it (logged).
   * @throws {InvalidPresenceInputError} for bad input; nothing is written then.
   * @example
   * ```ts
   * await presence.heartbeat("billing-agent", { operatorId: "alice@company.com", metadata: { version: "1.2.0" } });
   * ```
   */
  async heartbeat(agentId: string, options: HeartbeatOptions = {}): Promise<boolean> {
    const id = validateAgentId(agentId);
    const { metadata, operatorId } = validateOptions(heartbeatOptionsSchema, options ?? undefined);
    return this.#touch(id, "live", metadata ?? null, operatorId ?? null);
  }

  /**
   * Mark an agent Idle: running, waiting for work. Counts as a sign of life.
   * @returns true when recorded; false when the database could not take it (logged).
   * @throws {InvalidPresenceInputError} for a bad id.
   */
  async markIdle(agentId: string): Promise<boolean> {
    return this.#touch(validateAgentId(agentId), "idle", null, null);
  }

  async #touch(
    agentId: string,
    status: "live" | "idle",
    metadata: PresenceMetadata | null,
    operatorId: string | null,
  ): Promise<boolean> {
    const now = this.#clock.now().toISOString();
    const json = metadata === null ? null : JSON.stringify(metadata);
    try {
      // The halt columns are deliberately absent: an upsert can never clear a halt.
      await this.#store.query(sql`
        insert into gov_presence.agents (agent_id, status, last_seen, first_seen, operator_id, metadata)
        values (${agentId}, ${status}, ${now}::timestamptz, ${now}::timestamptz, ${operatorId}, ${json}::jsonb)
        on conflict (agent_id) do update set
          status = excluded.status,
          last_seen = excluded.last_seen,
          operator_id = coalesce(excluded.operator_id, gov_presence.agents.operator_id),
          metadata = coalesce(excluded.metadata, gov_presence.agents.metadata)`);
      return true;
    } catch (error) {
      this.#logger.warn(
        `A ${status === "live" ? "heartbeat" : "markIdle"} could not be recorded; the agent's presence is stale until the database is back.`,
        { agentId, error: describeError(error) },
      );
      return false;
    }
  }

  /**
   * Remove an agent from the presence table (graceful shutdown); it no longer appears in
   * {@link listAgents}. A halted agent is never removed: removing it would lift the halt.
   *
   * @returns true when a row was removed; false when there was none, or the database could
   *   not be reached (logged).
   * @throws {CloseHaltedAgentError} when the agent is halted.
   * @throws {InvalidPresenceInputError} for a bad id (an id with an invisible or blank
   *   character is accepted here, so that a row written before such ids were refused can go).
   */
  async closeAgent(agentId: string): Promise<boolean> {
    const id = validateStoredAgentId(agentId);
    let outcome: "removed" | "absent" | "halted";
    try {
      outcome = await this.#store.transaction(async (tx) => {
        const rows = await tx.execute<HaltRow>(
          sql`select ${HALT_ROW_COLUMNS} from gov_presence.agents where agent_id = ${id} for update`,
        );
        const row = rows.rows[0];
        if (!row) return "absent";
        // Halted is what the halt checks enforce: a verified halt, or a state that fails
        // verification (enforced as a halt). Removing either row would lift it.
        const verdict = verifyHaltRow(row, this.#keyring);
        if (verdict.kind === "refused" || (verdict.kind === "verified" && verdict.change.halt)) {
          return "halted";
        }
        await tx.execute(sql`delete from gov_presence.agents where agent_id = ${id}`);
        return "removed";
      });
    } catch (error) {
      this.#logger.warn("closeAgent could not reach the database; the agent was not removed.", {
        agentId: id,
        error: describeError(error),
      });
      return false;
    }
    if (outcome === "halted") throw new CloseHaltedAgentError(id);
    return outcome === "removed";
  }

  /**
   * The operator bound to the agent by its heartbeats (the latest `operatorId` given), or
   * `null` when none is known. This is the `operators` port: `@gov/gates` refuses a reviewer
   * who is the agent's own operator. The binding is not signed: it is the agent process's own
   * declaration, and a table owner could delete the row to the same effect (README, Security).
   *
   * @throws {StoreError} when the database cannot be read (a caller enforcing with it fails closed).
   * @throws {InvalidPresenceInputError} for a bad id.
   */
  async operatorOf(agentId: string): Promise<string | null> {
    const id = validateAgentId(agentId);
    const rows = await this.#store.query<{ operator_id: string | null }>(
      sql`select operator_id from gov_presence.agents where agent_id = ${id}`,
    );
    return rows[0]?.operator_id ?? null;
  }

  /**
   * Every agent with its status and halt state, ordered by id. Status: Unresponsive when
   * `checkStale` marked it, when it was never seen, or when its last heartbeat is older
   * than `unresponsiveAfterMs`; otherwise Idle when marked idle or its last heartbeat
   * is older than `liveWithinMs`; otherwise Live.
   *
   * A row whose halt state fails verification is listed as halted, by
   * `"(unverifiable halt state)"`, as the halt checks enforce it, and reported.
   *
   * @throws {StoreError} when the database cannot be read (an empty list would be a lie).
   */
  async listAgents(): Promise<AgentPresence[]> {
    const rows = await this.#store.query<
      HaltRow & {
        status: string;
        last_seen: string | null;
        first_seen: string;
        operator_id: string | null;
        metadata: unknown;
      }
    >(sql`
      select ${HALT_ROW_COLUMNS}, status, operator_id, metadata,
        to_char(last_seen at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as last_seen,
        to_char(first_seen at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as first_seen
      from gov_presence.agents order by agent_id`);
    const now = this.#clock.nowMs();
    const agents = rows.map((row) => {
      const lastSeen = row.last_seen === null ? null : new Date(row.last_seen);
      const halt = this.#haltOfRow(row);
      return {
        agentId: row.agent_id,
        status: this.#statusOf(row.status, lastSeen, now),
        lastSeen,
        firstSeen: new Date(row.first_seen),
        operatorId: row.operator_id,
        metadata: parseMetadata(row.metadata),
        halted: halt !== null,
        halt,
      };
    });
    await this.#reported();
    return agents;
  }

  /** The halt a row holds, as the halt checks enforce it (a refused row is reported). */
  #haltOfRow(row: HaltRow): HaltState | null {
    const verdict = verifyHaltRow(row, this.#keyring);
    if (verdict.kind === "verified") return verdict.change.halt;
    if (verdict.kind === "none") return null;
    this.#reportRefused({
      agentId: row.agent_id,
      version: verdict.version,
      problem: verdict.problem,
      enforcedAsHalt: true,
    });
    const cached = this.#cache.peek(row.agent_id);
    return cached?.haltedBy === UNVERIFIABLE_HALTED_BY
      ? cached
      : unverifiableHalt(row.agent_id, verdict.problem, this.#clock.now());
  }

  #statusOf(stored: string, lastSeen: Date | null, now: number): AgentStatus {
    if (stored === "unresponsive" || lastSeen === null) return "Unresponsive";
    const ageMs = now - lastSeen.getTime();
    if (ageMs > this.#options.unresponsiveAfterMs) return "Unresponsive";
    if (stored === "idle" || ageMs > this.#options.liveWithinMs) return "Idle";
    return STATUS_OF[stored] ?? "Unresponsive";
  }

  /**
   * Mark agents Unresponsive whose last heartbeat is older than `timeoutSeconds`. Call it
   * periodically from a health check or a cron job.
   *
   * @returns the ids newly marked, sorted; empty when the database could not be reached
   *   (logged).
   * @throws {InvalidPresenceInputError} for a timeout that is not 1 s to 30 days.
   */
  async checkStale(timeoutSeconds = 300): Promise<string[]> {
    const timeout = validateTimeout(timeoutSeconds);
    const cutoff = new Date(this.#clock.nowMs() - timeout * 1_000).toISOString();
    try {
      const rows = await this.#store.query<{ agent_id: string }>(sql`
        update gov_presence.agents set status = 'unresponsive'
        where status <> 'unresponsive' and (last_seen is null or last_seen < ${cutoff}::timestamptz)
        returning agent_id`);
      return rows.map((row) => row.agent_id).sort();
    } catch (error) {
      this.#logger.warn("checkStale could not reach the database; no agent was marked.", {
        error: describeError(error),
      });
      return [];
    }
  }

  // ---------------------------------------------------------------------------------------
  // Halt (enforcement)

  /**
   * Halt an agent: every enforcement check refuses it with `AgentHaltedError` from now on,
   * in every process (within milliseconds, by NOTIFY; within the cache TTL at worst), until
   * {@link resume}. Works for an agent never seen before. Idempotent: halting a halted
   * agent keeps the first halt and writes nothing. Recorded as `agent.halted`.
   *
   * Once committed, the row is read back and its signature checked: a trigger, a rule or
   * another writer on `gov_presence.agents` can make the write succeed while the row holds
   * something else, and then no other process would enforce the halt.
   *
   * @throws {HaltNotPersistedError} `failure: "write_failed"` when the halt could not be
   *   written: the agent is NOT halted. `failure: "not_stored"` when it was written but the
   *   row does not hold it (or could not be read back): this process enforces the halt, other
   *   processes may not — logged as an error and recorded as `presence.halt_not_persisted`.
   * @throws {InvalidPresenceInputError} for bad input; nothing is written then.
   * @example
   * ```ts
   * await presence.halt("billing-agent", { haltedBy: "alice@company.com", reason: "refund loop" });
   * ```
   */
  async halt(agentId: string, options: HaltOptions): Promise<HaltResult> {
    const id = validateAgentId(agentId);
    const { haltedBy, reason } = validateOptions(haltOptionsSchema, options, { required: true });
    const now = this.#clock.now();
    const at = now.toISOString();
    let result: { changed: boolean; change: HaltChange };
    try {
      result = await writeHalt(this.#store, this.#keyring, id, { haltedBy, reason }, now);
    } catch (error) {
      this.#logger.error("A halt could not be written; the agent is NOT halted.", {
        agentId: id,
        haltedBy,
        error: describeError(error),
      });
      throw new HaltNotPersistedError(id, "halt", error);
    }
    // Enforced here at once, and kept even when the row turns out not to hold it (fail closed).
    this.#cache.apply(result.change);
    const halt = result.change.halt as HaltState;
    if (!result.changed) return { changed: false, halt };
    const problem = await this.#storedProblem(result.change);
    if (problem !== null) {
      throw await this.#notStored(result.change, "halt", problem, {
        haltedBy,
        reason,
        haltedAt: at,
      });
    }
    await this.#record(id, PRESENCE_AUDIT_KINDS.halted, {
      haltedBy: halt.haltedBy,
      reason: halt.reason,
      haltedAt: halt.haltedAt.toISOString(),
    });
    return { changed: true, halt };
  }

  /**
   * Lift an agent's halt. Idempotent: resuming an agent that is not halted writes nothing.
   * Recorded as `agent.resumed`, with the halt that was lifted.
   *
   * Like {@link halt}, the row is read back once committed; the resume is applied in this
   * process only when the row holds it.
   *
   * @throws {HaltNotPersistedError} when the resume could not be written (`write_failed`), or
   *   was written but the row does not hold it (`not_stored`, logged as an error and recorded
   *   as `presence.halt_not_persisted`): the agent is still halted.
   * @throws {InvalidPresenceInputError} for bad input; nothing is written then. An agent id
   *   with an invisible or blank character is accepted here (not in `resumedBy`), so that a
   *   halt written before such ids were refused can be lifted.
   */
  async resume(agentId: string, options: ResumeOptions): Promise<ResumeResult> {
    const id = validateStoredAgentId(agentId);
    const { resumedBy, reason } = validateOptions(resumeOptionsSchema, options, { required: true });
    const now = this.#clock.now();
    const at = now.toISOString();
    let result: { lifted: HaltState | null; change: HaltChange | null };
    try {
      result = await writeResume(this.#store, this.#keyring, id, { resumedBy, reason }, now);
    } catch (error) {
      if (error instanceof StoredStateMismatch) {
        throw await this.#notStored({ agentId: id, version: null }, "resume", error.message, {
          resumedBy,
          reason,
          resumedAt: at,
        });
      }
      this.#logger.error("A resume could not be written; the agent is still halted.", {
        agentId: id,
        resumedBy,
        error: describeError(error),
      });
      throw new HaltNotPersistedError(id, "resume", error);
    }
    if (!result.change || !result.lifted) return { changed: false, liftedHalt: null };
    // Applied here only once the row is known to hold it: a resume that did not take must
    // not lift the halt in this process either.
    const problem = await this.#storedProblem(result.change);
    if (problem !== null) {
      throw await this.#notStored(result.change, "resume", problem, {
        resumedBy,
        reason,
        resumedAt: at,
      });
    }
    this.#cache.apply(result.change);
    await this.#record(id, PRESENCE_AUDIT_KINDS.resumed, {
      resumedBy,
      reason,
      resumedAt: at,
      haltedBy: result.lifted.haltedBy,
      haltReason: result.lifted.reason,
      haltedAt: result.lifted.haltedAt.toISOString(),
    });
    return { changed: true, liftedHalt: result.lifted };
  }

  /**
   * Whether an operator has halted the agent, from the in-process cache: one map lookup.
   * Observation only — it never throws for a database failure (the cache keeps the last
   * known state and a warning is logged); use {@link assertNotHalted} to enforce. Before the
   * halt state was ever loaded it answers false.
   *
   * @throws {InvalidPresenceInputError} only for a bad id (a caller's bug).
   * @example
   * ```ts
   * if (presence.isHalted("billing-agent")) await flushPartialResults();
   * ```
   */
  isHalted(agentId: string): boolean {
    return this.haltOf(agentId) !== null;
  }

  /**
   * The halt in force for the agent, from the cache (like {@link isHalted}), or null.
   * @throws {InvalidPresenceInputError} only for a bad id.
   */
  haltOf(agentId: string): HaltState | null {
    return this.#cache.get(this.#checkedId(agentId));
  }

  /**
   * Refuse a halted agent: the check every enforcement path makes first. Reads the cache
   * (no database round trip); before the halt state was ever loaded it loads it, and when
   * that fails it refuses the call (fails closed). Each refusal is recorded as
   * `agent.halt_enforced` with the path: `options.path`, or `presence.assertNotHalted` when
   * called without options (your own code gating itself on the halt).
   *
   * @throws {AgentHaltedError} with `haltedBy`, `haltedAt`, `reason` and `path`.
   * @throws {HaltStateUnavailableError} when the halt state was never loaded and cannot be read.
   * @throws {InvalidPresenceInputError} for bad input.
   * @example
   * ```ts
   * await presence.assertNotHalted("billing-agent", { path: "billing.refund" });
   * await presence.assertNotHalted("billing-agent"); // path "presence.assertNotHalted"
   * ```
   */
  async assertNotHalted(agentId: string, options?: HaltCheckContext): Promise<void> {
    const id = this.#checkedId(agentId);
    const path = options === undefined ? DIRECT_CHECK_PATH : this.#checkedPath(options);
    let halt = this.#cache.get(id);
    if (!halt && !this.#cache.loaded) {
      // Never loaded: read it now. A reload already in flight may have started before the
      // database came back, so a failed one is followed by one of our own.
      await this.#cache.reload().catch(() => undefined);
      if (!this.#cache.loaded) {
        try {
          await this.#cache.reload();
        } catch (error) {
          // A notification or this process's own halt may still have told us.
          if (!this.#cache.peek(id)) throw new HaltStateUnavailableError(id, path, error);
        }
      }
      halt = this.#cache.peek(id);
    }
    if (!halt) return;
    await this.#record(id, PRESENCE_AUDIT_KINDS.haltEnforced, {
      path,
      haltedBy: halt.haltedBy,
      reason: halt.reason,
      haltedAt: halt.haltedAt.toISOString(),
    });
    throw new AgentHaltedError({
      agentId: id,
      haltedBy: halt.haltedBy,
      haltedAt: halt.haltedAt,
      reason: halt.reason,
      path,
    });
  }

  /** Core's `HaltGuard`: the same as {@link assertNotHalted}. */
  assertAlive(agentId: string, context: HaltCheckContext): Promise<void> {
    return this.assertNotHalted(agentId, context);
  }

  /**
   * Reload the halted-agent cache from the database now, bypassing the TTL (tests, and
   * push paths of your own). Rarely needed: NOTIFY keeps the cache current.
   * @throws {StoreError} when the database cannot be read; the cache keeps its last state.
   */
  async forceRefreshHaltedCache(): Promise<void> {
    await this.#cache.reload();
    await this.#reported();
  }

  /** Every agent halted now, from the cache. */
  haltedAgents(): HaltState[] {
    return this.#cache.halted();
  }

  /** Stop listening and reloading. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#started;
    await this.#cache.close();
    await this.#reported();
  }

  /** Async disposal: `await using presence = new PresenceModule(…)`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #checkedId(agentId: unknown): string {
    if (typeof agentId === "string" && this.#knownIds.has(agentId)) return agentId;
    const id = validateAgentId(agentId);
    if (this.#knownIds.size >= MAX_KNOWN) this.#knownIds.clear();
    this.#knownIds.add(id);
    return id;
  }

  #checkedPath(options: unknown): string {
    // The fast path: a plain `{ path }` whose path was checked before. Anything else, and a
    // getter or proxy trap that throws here, is read by validateOptions, which reports it.
    try {
      if (typeof options === "object" && options !== null) {
        const prototype = Object.getPrototypeOf(options);
        const path = (options as { path?: unknown }).path;
        if (
          (prototype === Object.prototype || prototype === null) &&
          typeof path === "string" &&
          this.#knownPaths.has(path) &&
          Object.keys(options).length === 1
        )
          return path;
      }
    } catch {
      // Reported below ("could not be read"), as an InvalidPresenceInputError.
    }
    const checked = validateOptions(checkOptionsSchema, options, { required: true }).path;
    if (this.#knownPaths.size >= MAX_KNOWN) this.#knownPaths.clear();
    this.#knownPaths.add(checked);
    return checked;
  }

  /** See {@link readBackProblem}; a newer verified change found there is applied here. */
  async #storedProblem(change: HaltChange): Promise<string | null> {
    const { problem, newer } = await readBackProblem(this.#store, this.#keyring, change);
    if (newer !== null) this.#cache.apply(newer);
    return problem;
  }

  /**
   * A halt or resume was committed but the row does not hold it: log an error, record
   * `presence.halt_not_persisted`, and return the error to throw.
   */
  async #notStored(
    change: { agentId: string; version: number | null },
    operation: "halt" | "resume",
    problem: string,
    details: Record<string, string>,
  ): Promise<HaltNotPersistedError> {
    const { agentId, version } = change;
    const error = new HaltNotPersistedError(agentId, operation, new Error(problem), "not_stored");
    this.#logger.error(error.message, { agentId, operation, version, ...details });
    await this.#record(agentId, PRESENCE_AUDIT_KINDS.haltNotPersisted, {
      operation,
      version,
      problem,
      ...details,
      enforcedInThisProcess: operation === "halt",
    });
    return error;
  }

  /**
   * Report stored halt state that was not believed: a warning and a
   * `presence.halt_state_rejected` event, once per agent, version and problem.
   */
  #reportRefused(refused: RefusedHaltState): void {
    const key = `${refused.agentId}\u0000${refused.version}\u0000${refused.problem}`;
    if (this.#reportedRefusals.has(key)) return;
    if (this.#reportedRefusals.size >= MAX_KNOWN) this.#reportedRefusals.clear();
    this.#reportedRefusals.add(key);
    this.#logger.warn(
      `The stored halt state of agent ${JSON.stringify(refused.agentId)} was refused: ${refused.problem}.${refused.enforcedAsHalt ? " The agent is treated as halted until an operator resumes it or halts it again." : ""}`,
      {
        agentId: refused.agentId,
        version: refused.version,
        enforcedAsHalt: refused.enforcedAsHalt,
      },
    );
    const recording = this.#record(refused.agentId, PRESENCE_AUDIT_KINDS.haltStateRejected, {
      reason: refused.problem,
      version: refused.version,
      enforcedAsHalt: refused.enforcedAsHalt,
    });
    this.#reporting.add(recording);
    void recording.finally(() => this.#reporting.delete(recording));
  }

  /** Wait until the refusals reported so far are in the audit sink. */
  async #reported(): Promise<void> {
    while (this.#reporting.size > 0) await Promise.all([...this.#reporting]);
  }

  async #record(agentId: string, kind: string, metadata: Record<string, unknown>): Promise<void> {
    try {
      const receipt = await this.#audit.log({ agentId, kind, metadata });
      if (receipt.isPlaceholder && this.#audit !== noopAuditSink) {
        this.#logger.warn(`The ${kind} event could not be kept in the audit chain.`, { agentId });
      }
    } catch (error) {
      this.#logger.error(`The ${kind} event was refused by the audit sink.`, {
        agentId,
        error: describeError(error),
      });
    }
  }
}

function parseMetadata(value: unknown): PresenceMetadata | null {
  if (value === null || value === undefined) return null;
  if (typeof value === "string") {
    try {
      return JSON.parse(value) as PresenceMetadata;
    } catch {
      return null;
    }
  }
  return value as PresenceMetadata;
}

/**
 * The presence module's definition, for `@gov/sdk` and for composing it by hand. It
 * provides the `halt` port (every enforcement module composed after it refuses halted agents)
 * and the `operators` port (who answers for each agent, for the gates' self-approval rule).
 */
export const presenceModule = defineModule({
  name: "presence",
  migrations: presenceMigrations,
  create: async (context: ModuleContext, options: PresenceOptions | undefined) => {
    const presence = new PresenceModule(context, options ?? {});
    await presence.start();
    return presence;
  },
  provides: (presence: PresenceModule) => ({ halt: presence, operators: presence }),
  close: (presence: PresenceModule) => presence.close(),
  sdk: presenceSdkContribution,
});
