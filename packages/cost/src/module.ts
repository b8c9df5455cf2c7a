import { randomUUID } from "node:crypto";
import { resolve } from "node:path";
import {
  type AuditEventInput,
  type AuditSink,
  type Clock,
  checkId,
  DurableSpool,
  defineModule,
  describeError,
  type HaltCheckContext,
  type HaltGuard,
  InvalidArgumentError,
  type Logger,
  type MigrationSource,
  type ModuleContext,
  requirePort,
  type SpoolIntegrityProblem,
  type Store,
  type StrandedSpoolFiles,
  spoolHostNames,
  sql,
  systemClock,
  typeOf,
} from "@gov/core";
import { AlertDispatcher } from "./alert-dispatch";
import { UsageBacklog } from "./backlog";
import { Batcher, ItemFailure } from "./batcher";
import {
  BUDGET_LIMITS,
  type BudgetCap,
  BudgetPolicy,
  type BudgetPolicyInput,
  CAP_UNITS,
} from "./budget-policy";
import { BudgetCheckFailedError, BudgetExceeded } from "./errors";
import {
  type BudgetReservation,
  type BudgetSnapshot,
  type CheckOptions,
  COST_LIMITS,
  type CostMetrics,
  type ReconcileOptions,
  type TrackSpendOptions,
  type TrackUsageOptions,
  type UsageReceipt,
} from "./models";
import { femtoToUsd, rateToUsdPerMillion, trimDecimal } from "./money";
import { type CostOptions, type ParsedCostOptions, parseCostOptions } from "./options";
import { type PriceBreakdown, PriceTable } from "./price-table";
import { budgetSnapshot, readCounters, readModelBreakdown } from "./reads";
import { costSdkContribution } from "./sdk-options";
import {
  alertOf,
  callBudgetFunction,
  capLimitsOf,
  isTransient,
  type ReserveRequest,
  type ReserveResult,
  type SettleItem,
  type SettleResult,
  type SpoolLine,
  type UsageKind,
} from "./sql";
import type { ProviderUsage } from "./usage";
import {
  checkCounts,
  checkIds,
  checkModel,
  checkOptions,
  checkReservationId,
  checkTokens,
  checkUsd,
  countsOf,
  exactFemto,
  hasCounts,
} from "./validate";

/** The cost module's migrations: schema `gov_cost`. */
export const costMigrations: MigrationSource = {
  name: "cost",
  migrationsFolder: new URL("../drizzle", import.meta.url),
};

/** Audit event kinds written by the cost module. */
export const COST_AUDIT_KINDS = {
  /** A check was refused: a cap would be exceeded. */
  exceeded: "budget.exceeded",
  /** A check could not read the store; denied, or let through with `failOpen`. */
  checkFailed: "budget.check_failed",
  /** Spend crossed an alert threshold (the webhook is being sent). */
  thresholdCrossed: "budget.threshold_crossed",
  /** An alert webhook could not be delivered after every attempt. */
  alertFailed: "budget.alert_failed",
  /** A reservation ran out of time before its usage was reported, and was released. */
  reservationExpired: "budget.reservation_expired",
  /** Usage could not be recorded after every retry and was dropped (the backlog was full). */
  usageDropped: "budget.usage_dropped",
  /**
   * A spool file failed its signature check (edited, reordered, truncated, replaced by another
   * spool file, signed by an unknown key): it was kept aside, and only its proven records are
   * replayed (none of a file that replaced one this process held).
   */
  spoolRejected: "budget.spool_rejected",
  /** A spool file ended in a torn line (a crash mid-append); the records before it are replayed. */
  spoolTorn: "budget.spool_torn",
  /** A spool file of an earlier process had no end marker (it did not close cleanly). */
  spoolUnclosed: "budget.spool_unclosed",
  /**
   * Spool files of other hosts were found at start and left alone (their writers may run):
   * their usage waits until those hosts adopt it, or `spoolAdoptHosts` names them as gone.
   */
  spoolStranded: "budget.spool_stranded",
} as const;

/** The agent id of the cost module's own events (about its spool, not about one agent). */
const SYSTEM_AGENT = "gov.cost";

const CHECK_CONTEXT: HaltCheckContext = Object.freeze({ path: "cost.checkOrRaise" });

/** Characters of a model id in an audit event (the audit chain's limit). */
const AUDIT_MODEL_LIMIT = 128;

const TRACK_OPTIONS = new Set(["tokens", "usd", "model", "reservationId"]);
const TRACK_USAGE_OPTIONS = new Set([
  "model",
  "usage",
  "reservationId",
  "inputTokens",
  "outputTokens",
  "cachedInputTokens",
  "cacheWriteTokens",
  "reasoningTokens",
]);
const RECONCILE_OPTIONS = new Set([...TRACK_USAGE_OPTIONS, "chunks", "reason"]);

const BREAKDOWN_OPTIONS = new Set(["since"]);
/** Reservations one `release` call may name. */
const MAX_RELEASE = 10_000;
/** The longest wait of `flush` (a day). */
const MAX_FLUSH_MS = 86_400_000;

const CHECK_OPTIONS = new Set([
  "model",
  "inputTokens",
  "maxTokens",
  "projectedTokens",
  "projectedUsd",
]);

/** A check's projection as declared, validated. */
interface Declared {
  tokens: number;
  input: number;
  output: number;
  model: string | null;
  usd: bigint | null;
}

/**
 * Budgets that hold under concurrency. `checkOrRaise` checks every cap of the agent's policy
 * and **reserves** the call's projected cost in the same database statement, under row
 * locks, so that concurrent checks in any number of processes can never jointly pass a cap;
 * `track`, `trackUsage` and `reconcile` later settle the reservation with the actual usage
 * (priced part by part from the price table) and release the rest.
 *
 * `checkOrRaise` is an enforcement surface: it fails closed (unless `failOpen`) and writes
 * every breach and every failure to the audit chain. `track`, `trackUsage`, `reconcile`,
 * `snapshot` and `modelBreakdown` are observation surfaces: a store failure never reaches the
 * host (usage waits in memory and is retried).
 *
 * @example
 * ```ts
 * sdk.cost.register({ agentId: "billing-agent", perSessionUsd: 0.5, perSessionSeconds: 300 });
 * const reservation = await sdk.cost.checkOrRaise("billing-agent", sessionId, { model: "gpt-4o", maxTokens: 1024 });
 * const response = await openai.chat.completions.create({ model: "gpt-4o", max_tokens: 1024, messages });
 * await sdk.cost.trackUsage("billing-agent", sessionId, { model: "gpt-4o", usage: response.usage, reservationId: reservation.reservationId });
 * ```
 */
export class CostModule {
  readonly #store: Store;
  readonly #logger: Logger;
  readonly #audit: AuditSink;
  readonly #halt: HaltGuard;
  readonly #clock: Clock;
  readonly #options: ParsedCostOptions;
  readonly #prices: PriceTable;
  readonly #policies = new Map<string, BudgetPolicy>();
  readonly #warnedUnbudgeted = new Set<string>();
  readonly #reserve: Batcher<ReserveRequest, ReserveResult>;
  readonly #settle: Batcher<SettleItem, SettleResult>;
  readonly #spool: DurableSpool<SpoolLine> | null;
  readonly #backlog: UsageBacklog;
  readonly #alerts: AlertDispatcher;
  /** Agents warned that a check projected nothing against a cap (once each). */
  readonly #warnedUnprojected = new Set<string>();
  #sweepTimer: NodeJS.Timeout | null = null;
  #started = false;
  #closed = false;
  readonly #metrics: CostMetrics = {
    checks: 0,
    passed: 0,
    exceeded: 0,
    checkFailures: 0,
    failOpenPasses: 0,
    usageRecorded: 0,
    usageDuplicates: 0,
    usageQueued: 0,
    usageDropped: 0,
    backlog: 0,
    reservationsExpired: 0,
    alertsSent: 0,
    alertsFailed: 0,
  };

  /**
   * @param context The store, logger, audit sink, halt guard, and optionally the clock and
   *   the keyring (from the composition, or `noopAuditSink` / `noopHaltGuard` when used alone).
   *   The keyring signs the usage spool, so that the next process can prove the records a
   *   crashed one left behind; without it, a key that lives as long as the process signs it,
   *   and the spool of a process that died is refused.
   * @throws {InvalidArgumentError} for a missing port or a bad option.
   * @throws {ConfigError} for `strictUnknownModels: false` without a fallback rate.
   */
  constructor(
    context: Pick<ModuleContext, "store" | "logger" | "audit" | "halt"> &
      Partial<Pick<ModuleContext, "clock" | "keyring">>,
    options: CostOptions = {},
  ) {
    if (typeof context !== "object" || context === null) {
      throw new InvalidArgumentError(
        "context",
        "must be an object.",
        "Pass { store, logger, audit, halt, clock? } (a ModuleContext).",
      );
    }
    requirePort(context.store, "store", ["query"], "a @gov/core Store");
    requirePort(
      context.logger,
      "logger",
      ["info", "warn", "error"],
      "a Logger (e.g. silentLogger)",
    );
    requirePort(context.audit, "audit", ["log"], "an AuditSink (noopAuditSink records nothing)");
    requirePort(
      context.halt,
      "halt",
      ["assertAlive"],
      "a HaltGuard (noopHaltGuard when there is no presence module)",
    );
    requirePort(context.clock, "clock", ["now", "nowMs"], "a Clock", { optional: true });
    requirePort(context.keyring, "keyring", ["find"], "a Keyring", { optional: true });
    const data = parseCostOptions(options);
    this.#store = context.store;
    this.#logger = context.logger;
    this.#audit = context.audit;
    this.#halt = context.halt;
    this.#clock = context.clock ?? systemClock;
    this.#options = data;
    this.#prices = data.prices ?? new PriceTable();
    const adoptHosts = spoolHostNames(data.spoolAdoptHosts ?? [], "spoolAdoptHosts");
    const spoolDirectory =
      data.spoolDirectory === undefined
        ? resolve(context.store.directory ?? ".governance", "cost-spool")
        : data.spoolDirectory;
    this.#spool =
      spoolDirectory === null
        ? null
        : new DurableSpool<SpoolLine>(
            spoolDirectory,
            context.logger,
            { prefix: "cost-spool-", name: "cost", noun: "usage records" },
            {
              ...(context.keyring ? { keyring: context.keyring } : {}),
              adoptHosts,
              onIntegrityProblem: (problem) => this.#spoolProblem(problem),
              onStranded: (stranded) => this.#spoolStranded(stranded),
            },
          );
    this.#reserve = new Batcher((items) => this.#runReserve(items), {
      maxBatch: data.maxBatchSize,
      maxInFlight: 2,
    });
    this.#settle = new Batcher((items) => this.#runSettle(items), {
      maxBatch: data.maxBatchSize,
      maxInFlight: 2,
    });
    this.#backlog = new UsageBacklog({
      logger: this.#logger,
      spool: this.#spool,
      maxBatchSize: data.maxBatchSize,
      maxBacklog: data.maxBacklog,
      settle: (items) => this.#runSettle(items),
      settled: (item, result, policy) => this.#settled(item, result, policy),
      dropped: (item, error, message) => this.#dropped(item, error, message),
      policyOf: (agentId) => this.#policies.get(agentId),
    });
    this.#alerts = new AlertDispatcher({
      logger: this.#logger,
      clock: this.#clock,
      evidence: (event) => this.#evidence(event),
      metrics: this.#metrics,
      timeoutMs: data.alertTimeoutMs,
      attempts: data.alertAttempts,
    });
  }

  /**
   * Adopt the usage that processes which are gone left in the spool (and replay it soon), and
   * start the sweep of expired reservations. Call it once before use (`costModule.create`
   * does); later calls, and calls after `close()`, do nothing. Never throws: a spool that
   * cannot be read is logged.
   */
  async start(): Promise<void> {
    if (this.#closed || this.#started) return;
    this.#started = true;
    await this.#backlog.adoptOrphans();
    // Closed while the spool was read: start no sweep that nothing would stop.
    if (this.#closed || this.#options.sweepIntervalMs === null) return;
    this.#sweepTimer = setInterval(() => {
      void this.releaseExpired();
    }, this.#options.sweepIntervalMs);
    this.#sweepTimer.unref();
  }

  /** The price table `trackUsage` and `checkOrRaise` price with; add or override prices on it. */
  get prices(): PriceTable {
    return this.#prices;
  }

  /**
   * Register (or replace) an agent's budget policy, in this process. Every process that
   * checks the agent registers the same policy; the spend they check it against is shared
   * in the database.
   *
   * @throws {InvalidBudgetPolicyError} for an invalid policy; nothing is registered then.
   */
  register(policy: BudgetPolicy | BudgetPolicyInput): BudgetPolicy {
    if (!(policy instanceof BudgetPolicy) && BudgetPolicy.isInstance(policy)) {
      throw new InvalidArgumentError(
        "policy",
        "is a BudgetPolicy from another copy of @gov/cost (its alert secret cannot be read here).",
        "Register the policy's input object instead, or deduplicate @gov/cost so that one copy is installed.",
      );
    }
    const built = policy instanceof BudgetPolicy ? policy : new BudgetPolicy(policy);
    this.#policies.set(built.agentId, built);
    this.#warnedUnbudgeted.delete(built.agentId);
    return built;
  }

  /** Remove an agent's policy; returns whether there was one. Spend already recorded stays. */
  unregister(agentId: string): boolean {
    return this.#policies.delete(agentId);
  }

  /** The agent's registered policy, if any. */
  getPolicy(agentId: string): BudgetPolicy | undefined {
    return this.#policies.get(agentId);
  }

  /**
   * Pre-call enforcement. In order: the operator's halt (`AgentHaltedError`); then every cap
   * of the agent's policy — session time (database clock), session USD and tokens, daily USD
   * and tokens (UTC day) — against spent + reserved + this call's projection, refusing when
   * any would exceed its limit (strict `>`); and, when all pass, the projection is reserved in
   * the same statement, so that concurrent checks can never jointly pass a cap.
   *
   * The projection: `projectedTokens`, or `inputTokens` + (`maxTokens` ?? `defaultMaxTokens`);
   * its USD is `projectedUsd`, or those tokens priced for `model` (input at the input rate,
   * output at the higher of the output and reasoning rates). Without a `model` (or
   * `projectedUsd`) no USD is projected, and USD caps refuse only spend already past them.
   *
   * An agent without a registered policy is not checked (a warning is logged once).
   *
   * @returns The reservation, to pass to `trackUsage` / `reconcile`.
   * @throws {AgentHaltedError} the agent is halted.
   * @throws {BudgetExceeded} a cap would be exceeded (audit-logged as `budget.exceeded`).
   * @throws {BudgetCheckFailedError} the store could not be read (audit-logged as
   *   `budget.check_failed`) — unless `failOpen`, which lets the call through instead.
   * @throws {UnknownModelError} the model has no price (strict mode); nothing was reserved.
   * @throws {InvalidArgumentError} bad arguments; nothing was checked or written.
   */
  async checkOrRaise(
    agentId: string,
    sessionId: string,
    options: CheckOptions = {},
  ): Promise<BudgetReservation> {
    checkIds(agentId, sessionId);
    const declared = this.#declared(options);
    await this.#halt.assertAlive(agentId, CHECK_CONTEXT);
    this.#metrics.checks++;
    const day = this.#day();
    const policy = this.#policies.get(agentId);
    const unchecked = (failOpen: boolean, unbudgeted: boolean): BudgetReservation =>
      Object.freeze({
        reservationId: null,
        agentId,
        sessionId,
        tokens: 0,
        usd: 0,
        exactUsd: "0",
        day,
        failOpen,
        unbudgeted,
      });
    const projection = this.#project(declared);
    if (!policy) {
      if (!this.#warnedUnbudgeted.has(agentId) && this.#warnedUnbudgeted.size < 10_000) {
        this.#warnedUnbudgeted.add(agentId);
        this.#logger.warn(
          "checkOrRaise: the agent has no budget policy, so nothing is checked; register one with cost.register().",
          { agentId },
        );
      }
      this.#metrics.passed++;
      return unchecked(false, true);
    }
    this.#warnUnprojected(policy, projection);
    const request: ReserveRequest = {
      reservationId: randomUUID(),
      agentId,
      sessionId,
      day,
      tokens: String(projection.tokens),
      usd: femtoToUsd(projection.femto),
      model: options.model ?? null,
      ttlMs: this.#options.reservationTtlMs,
      ...capLimitsOf(policy.exact),
    };
    let result: ReserveResult;
    try {
      result = await this.#reserve.submit(request);
    } catch (error) {
      this.#metrics.checkFailures++;
      const failOpen = this.#options.failOpen;
      this.#logger.error(
        failOpen
          ? "checkOrRaise could not read the budget; the call is let through unchecked (costFailOpen)."
          : "checkOrRaise could not read the budget; the call is denied (fail-closed).",
        { agentId, sessionId, error: describeError(error) },
      );
      await this.#evidence({
        agentId,
        sessionId,
        kind: "budget.check_failed",
        model: options.model ?? null,
        metadata: {
          failOpen,
          decision: failOpen ? "allowed" : "denied",
          error: describeError(error),
          projectedTokens: projection.tokens,
          projectedUsd: femtoToUsd(projection.femto),
        },
      });
      if (failOpen) {
        this.#metrics.failOpenPasses++;
        return unchecked(true, false);
      }
      throw new BudgetCheckFailedError(agentId, sessionId, error);
    }
    if (!result.ok) {
      this.#metrics.exceeded++;
      const cap = result.cap as BudgetCap;
      const details = {
        agentId,
        sessionId,
        cap,
        unit: CAP_UNITS[cap],
        used: Number(result.used),
        committed: Number(result.committed),
        projected: Number(result.projected),
        limit: Number(result.limit),
      };
      await this.#evidence({
        agentId,
        sessionId,
        kind: "budget.exceeded",
        model: options.model ?? null,
        metadata: {
          cap,
          unit: details.unit,
          used: trimDecimal(result.used),
          committed: trimDecimal(result.committed),
          projected: trimDecimal(result.projected),
          limit: trimDecimal(result.limit),
          day,
        },
      });
      throw new BudgetExceeded(details);
    }
    this.#metrics.passed++;
    return Object.freeze({
      reservationId: result.reserved ? request.reservationId : null,
      agentId,
      sessionId,
      tokens: projection.tokens,
      usd: Number(request.usd),
      exactUsd: request.usd,
      day,
      failOpen: false,
      unbudgeted: false,
    });
  }

  /**
   * Record usage with its USD given (no pricing). Settles `reservationId`, or the session's
   * oldest open reservation. Counters only grow: negative amounts are refused. An observation
   * surface: a store failure is logged and the record is retried from memory, never thrown.
   *
   * @throws {InvalidArgumentError} bad arguments (negative, fractional tokens, …); nothing was recorded.
   */
  async track(
    agentId: string,
    sessionId: string,
    options: TrackSpendOptions,
  ): Promise<UsageReceipt> {
    checkIds(agentId, sessionId);
    checkOptions(
      options,
      TRACK_OPTIONS,
      "track",
      "{ tokens, usd, model?, reservationId? }",
      "track(agentId, sessionId, { tokens: 150, usd: 0.003 })",
    );
    const tokens = checkTokens("tokens", options.tokens, true);
    const femto = checkUsd("usd", options.usd);
    const model = options.model == null ? null : checkModel("model", options.model);
    const reservationId = checkReservationId(options.reservationId, false);
    return this.#record(agentId, sessionId, {
      kind: "track",
      model,
      tokens,
      femto,
      reservationId,
      matchOldest: options.reservationId === undefined,
      breakdown: null,
      reason: null,
    });
  }

  /**
   * Record a call's usage, priced from the price table part by part: input, cached input,
   * cache writes, output and reasoning, each at its own rate. Pass the provider's `usage`
   * object as returned (OpenAI or Anthropic), or the token counts. Settles `reservationId`, or
   * the session's oldest open reservation.
   *
   * An unknown model throws `UnknownModelError` in strict mode (the default) and nothing is
   * recorded; in lax mode the fallback rate prices it. A store failure is logged and the
   * record retried from memory, never thrown.
   *
   * @throws {UnknownModelError} · {@link InvalidUsageError} · `InvalidArgumentError`; nothing was recorded.
   */
  async trackUsage(
    agentId: string,
    sessionId: string,
    options: TrackUsageOptions,
  ): Promise<UsageReceipt> {
    checkIds(agentId, sessionId);
    checkOptions(
      options,
      TRACK_USAGE_OPTIONS,
      "trackUsage",
      "{ model, usage | inputTokens/outputTokens, reservationId? }",
      'trackUsage(agentId, sessionId, { model: "gpt-4o", usage: response.usage })',
    );
    checkCounts(options);
    const reservationId = checkReservationId(options.reservationId, false);
    if ((options.usage === undefined || options.usage === null) && !hasCounts(options)) {
      throw new InvalidArgumentError(
        "usage",
        "is missing: trackUsage needs the provider's usage payload or at least one token count.",
        "Pass usage (e.g. response.usage), or inputTokens/outputTokens/cachedInputTokens/cacheWriteTokens/reasoningTokens.",
      );
    }
    const breakdown = this.#price(options.model, options.usage ?? countsOf(options));
    return this.#record(agentId, sessionId, {
      kind: "usage",
      model: options.model,
      tokens: breakdown.tokens.totalTokens,
      femto: exactFemto(breakdown),
      reservationId,
      matchOldest: options.reservationId === undefined,
      breakdown,
      reason: null,
    });
  }

  /**
   * End of a stream: settle its reservation with the actual usage (the final `usage` payload,
   * or token counts) or — when the stream was cancelled, failed or abandoned without usage —
   * with a conservative estimate of 8 output tokens per chunk received (plus `inputTokens`).
   * Idempotent: a reservation is reconciled once; later calls record nothing. Counters never
   * go backwards: the actual spend is added and the reservation released.
   *
   * @throws {UnknownModelError} (strict mode) · {@link InvalidUsageError} (e.g. a usage whose
   *   output count is missing: reconcile with `chunks` instead) · `InvalidArgumentError`;
   *   nothing was recorded.
   */
  async reconcile(
    agentId: string,
    sessionId: string,
    options: ReconcileOptions,
  ): Promise<UsageReceipt> {
    checkIds(agentId, sessionId);
    checkOptions(
      options,
      RECONCILE_OPTIONS,
      "reconcile",
      "{ reservationId, model, reason, usage | chunks }",
      'reconcile(agentId, sessionId, { reservationId, model: "gpt-4o", reason: "cancelled", chunks: 12 })',
    );
    checkCounts(options);
    const reservationId = checkReservationId(options.reservationId, true) as string;
    checkId(options.reason, "reason", { max: 64 });
    let usage: ProviderUsage;
    if (options.usage !== undefined && options.usage !== null) {
      usage = options.usage;
    } else if (options.chunks !== undefined) {
      const chunks = checkTokens("chunks", options.chunks, true);
      usage = countsOf({
        inputTokens: checkTokens("inputTokens", options.inputTokens ?? 0, true),
        outputTokens: Math.min(chunks * 8, COST_LIMITS.tokens),
      });
    } else if (hasCounts(options)) {
      usage = countsOf(options);
    } else {
      throw new InvalidArgumentError(
        "usage",
        "is missing: reconcile needs the final usage, the token counts, or the chunks received.",
        "Pass usage (the provider's usage payload), inputTokens/outputTokens, or chunks (estimated at 8 tokens each).",
      );
    }
    const breakdown = this.#price(options.model, usage);
    return this.#record(agentId, sessionId, {
      // The reservation's own id: a repeated reconcile is the same record, whatever it names.
      usageId: reservationId,
      kind: "reconcile",
      model: options.model,
      tokens: breakdown.tokens.totalTokens,
      femto: exactFemto(breakdown),
      reservationId,
      matchOldest: false,
      breakdown,
      reason: options.reason,
    });
  }

  /**
   * Release reservations whose calls were never made (the projection leaves the reserved
   * counters; nothing is spent). Unknown or already settled ids are ignored.
   *
   * @returns How many were released.
   * @throws {InvalidArgumentError} an id that is not a reservation id, or more than 10,000 ids.
   * @throws {StoreError} when the store cannot be reached (the reservation then expires by itself).
   */
  async release(...reservationIds: string[]): Promise<number> {
    if (reservationIds.length > MAX_RELEASE) {
      throw new InvalidArgumentError(
        "reservationIds",
        `are ${reservationIds.length}; the limit is ${MAX_RELEASE} per call.`,
        `Release at most ${MAX_RELEASE} reservations per call (expired ones are released by the sweep anyway).`,
      );
    }
    const ids = reservationIds.map((id) => checkReservationId(id, true) as string);
    if (ids.length === 0) return 0;
    const rows = await this.#store.query<{ released: unknown[] }>(
      sql`select gov_cost.release(${`{${ids.join(",")}}`}::uuid[]) as released`,
    );
    return rows[0]?.released.length ?? 0;
  }

  /**
   * Release reservations whose time ran out (`reservationTtlMs`, database clock): calls
   * that never reported their usage. Each is audit-logged (`budget.reservation_expired`).
   * Runs every `sweepIntervalMs`; never throws (a failure is logged).
   *
   * @returns How many were released.
   */
  async releaseExpired(): Promise<number> {
    let released: {
      id: string;
      agentId: string;
      sessionId: string;
      day: string;
      model: string | null;
      usd: string;
      tokens: string;
      createdAt: string;
    }[];
    try {
      const rows = await this.#store.query<{ released: typeof released }>(
        sql`select gov_cost.release_expired(${1_000}) as released`,
      );
      released = rows[0]?.released ?? [];
    } catch (error) {
      this.#logger.warn(
        "Expired budget reservations could not be released; the next sweep retries.",
        {
          error: describeError(error),
        },
      );
      return 0;
    }
    this.#metrics.reservationsExpired += released.length;
    await Promise.all(
      released.map((reservation) =>
        this.#evidence({
          agentId: reservation.agentId,
          sessionId: reservation.sessionId,
          kind: "budget.reservation_expired",
          model: reservation.model,
          metadata: {
            reservationId: reservation.id,
            usd: trimDecimal(reservation.usd),
            tokens: Number(reservation.tokens),
            day: reservation.day,
            reservedAt: reservation.createdAt,
          },
        }),
      ),
    );
    return released.length;
  }

  /**
   * Usage and remaining budget of the agent and session: spent, reserved, session time, and
   * what is left under each cap of the registered policy. Never throws for a store failure:
   * it logs and returns zeros with `degraded: true`.
   *
   * @throws {InvalidArgumentError} bad ids.
   */
  async snapshot(agentId: string, sessionId: string): Promise<BudgetSnapshot> {
    checkIds(agentId, sessionId);
    const day = this.#day();
    let counters: Awaited<ReturnType<typeof readCounters>> = {
      session: undefined,
      daily: undefined,
    };
    let degraded = false;
    try {
      counters = await readCounters(this.#store, agentId, sessionId, day);
    } catch (error) {
      degraded = true;
      this.#logger.error("snapshot could not read the budget; zeros are returned (degraded).", {
        agentId,
        sessionId,
        error: describeError(error),
      });
    }
    return budgetSnapshot({
      agentId,
      sessionId,
      day,
      ...counters,
      caps: this.#policies.get(agentId)?.exact,
      degraded,
    });
  }

  /**
   * The agent's spend per model (usage recorded with a model), all time or since `since`.
   * Never throws for a store failure: it logs and returns `{}`.
   *
   * @example
   * ```ts
   * await sdk.cost.modelBreakdown("billing-agent"); // { "gpt-4o": { usd: 0.0075, tokens: 1500 } }
   * ```
   */
  async modelBreakdown(
    agentId: string,
    options: { since?: Date } = {},
  ): Promise<Record<string, { usd: number; tokens: number }>> {
    checkId(agentId, "agentId", { max: BUDGET_LIMITS.agentId });
    checkOptions(
      options,
      BREAKDOWN_OPTIONS,
      "modelBreakdown",
      "{ since? }",
      "modelBreakdown(agentId, { since: new Date(Date.now() - 86_400_000) })",
    );
    const since = options.since;
    if (since !== undefined && !(since instanceof Date && Number.isFinite(since.getTime()))) {
      throw new InvalidArgumentError(
        "since",
        "must be a valid Date.",
        "Pass a Date, or leave it out.",
      );
    }
    try {
      return await readModelBreakdown(this.#store, agentId, since);
    } catch (error) {
      this.#logger.error("modelBreakdown could not read usage; {} is returned.", {
        agentId,
        error: describeError(error),
      });
      return {};
    }
  }

  /** Counters of what the module did since it started. */
  metrics(): CostMetrics {
    return { ...this.#metrics, backlog: this.#backlog.waiting };
  }

  /**
   * Wait until queued usage is written (or `timeoutMs` passes) and alert deliveries are done.
   * @returns The records still waiting (0 when everything is written).
   */
  async flush(timeoutMs = 10_000): Promise<number> {
    if (
      typeof timeoutMs !== "number" ||
      !Number.isInteger(timeoutMs) ||
      timeoutMs < 0 ||
      timeoutMs > MAX_FLUSH_MS
    ) {
      throw new InvalidArgumentError(
        "timeoutMs",
        `must be whole milliseconds from 0 to ${MAX_FLUSH_MS}, got ${typeof timeoutMs === "number" ? timeoutMs : typeOf(timeoutMs)}.`,
        "Pass flush(10_000), or leave the timeout out.",
      );
    }
    // Elapsed time of real waits (timers), not wall time: an injected clock may stand still.
    const deadline = performance.now() + timeoutMs;
    while (this.#backlog.waiting > 0 && performance.now() < deadline) {
      if (!(await this.#backlog.retry())) {
        await new Promise((resolve) =>
          setTimeout(resolve, Math.min(200, Math.max(0, deadline - performance.now()))),
        );
      }
    }
    await this.#alerts.settled(deadline - performance.now());
    return this.#backlog.waiting;
  }

  /**
   * Stop the sweep, try once more to write queued usage, and wait for alert deliveries.
   * Idempotent: later calls do nothing. Works without `start()`.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#sweepTimer) clearInterval(this.#sweepTimer);
    this.#backlog.stop();
    // Calls already made finish first: what they fail to write joins what flush() writes.
    // Elapsed time of real waits (timers), not wall time: an injected clock may stand still.
    const drainUntil = performance.now() + 5_000;
    while (this.#reserve.pending + this.#settle.pending > 0 && performance.now() < drainUntil) {
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    const left = await this.flush(5_000);
    this.#alerts.abort();
    await this.#alerts.settled();
    const inMemory = this.#backlog.inMemory;
    if (inMemory > 0) {
      this.#logger.error("The cost module closed with usage it could not write; it is lost.", {
        records: inMemory,
      });
    }
    if (left > inMemory) {
      this.#logger.warn(
        "The cost module closed with usage in its spool; the next process to start replays it.",
        { records: left - inMemory, directory: this.#backlog.directory },
      );
    }
    await this.#spool?.close();
  }

  /** `await using cost = …` closes the module: the same as {@link CostModule.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  // ── internals ───────────────────────────────────────────────────────────────────────

  /**
   * Write an event to the audit chain. The sink never throws for its own failures, but it
   * refuses invalid input; that must not turn a budget decision or a sweep into a crash.
   */
  async #evidence(event: AuditEventInput): Promise<void> {
    try {
      await this.#audit.log(
        event.model && event.model.length > AUDIT_MODEL_LIMIT
          ? { ...event, model: `${event.model.slice(0, AUDIT_MODEL_LIMIT - 1)}…` }
          : event,
      );
    } catch (error) {
      this.#logger.error("A cost decision could not be written to the audit chain.", {
        kind: event.kind,
        agentId: event.agentId,
        error: describeError(error),
      });
    }
  }

  /**
   * A capped agent checked with nothing projected against the cap: concurrent checks are then
   * held only against spend already recorded. Said once per agent.
   */
  #warnUnprojected(policy: BudgetPolicy, projection: { tokens: number; femto: bigint }): void {
    const caps = policy.exact;
    const usd = caps.perSessionUsd !== null || caps.perAgentUsdDaily !== null;
    const tokens = caps.perSessionTokens !== null || caps.perAgentTokensDaily !== null;
    const missing =
      usd && projection.femto === 0n ? "USD" : tokens && projection.tokens === 0 ? "tokens" : null;
    if (missing === null || this.#warnedUnprojected.has(policy.agentId)) return;
    if (this.#warnedUnprojected.size >= 10_000) return;
    this.#warnedUnprojected.add(policy.agentId);
    this.#logger.warn(
      `checkOrRaise projected no ${missing} for an agent with a ${missing} cap: calls in flight are not reserved against it, so concurrent calls can pass it together. Pass model and maxTokens (or set defaultMaxTokens), or projectedUsd.`,
      { agentId: policy.agentId },
    );
  }

  #day(): string {
    return this.#clock.now().toISOString().slice(0, 10);
  }

  #price(model: unknown, usage: ProviderUsage): PriceBreakdown {
    checkModel("model", model);
    return this.#prices.priceUsage(model as string, usage, {
      strict: this.#options.strictUnknownModels,
      fallbackUsdPerMillion:
        this.#options.unknownModelFallbackUsdPerMillion === null
          ? null
          : rateToUsdPerMillion(this.#options.unknownModelFallbackUsdPerMillion),
    });
  }

  /** The projection's inputs, validated (caller bugs are thrown before anything is checked). */
  #declared(options: CheckOptions): Declared {
    checkOptions(
      options,
      CHECK_OPTIONS,
      "checkOrRaise",
      "{ model?, inputTokens?, maxTokens?, projectedTokens?, projectedUsd? }",
      'checkOrRaise(agentId, sessionId, { model: "gpt-4o", maxTokens: 1024 })',
    );
    const input =
      options.inputTokens === undefined ? 0 : checkTokens("inputTokens", options.inputTokens, true);
    let output: number;
    if (options.projectedTokens !== undefined) {
      output = Math.max(0, checkTokens("projectedTokens", options.projectedTokens, true) - input);
    } else if (options.maxTokens !== undefined) {
      output = checkTokens("maxTokens", options.maxTokens, false);
    } else {
      output = this.#options.defaultMaxTokens ?? 0;
    }
    return {
      tokens: input + output,
      input,
      output,
      model: options.model === undefined ? null : checkModel("model", options.model),
      usd:
        options.projectedUsd === undefined ? null : checkUsd("projectedUsd", options.projectedUsd),
    };
  }

  /**
   * The projection's USD: as declared, or its tokens priced for the model — input at the
   * input rate, output at the higher of the output and reasoning rates (the call may reason).
   */
  #project(declared: Declared): { tokens: number; femto: bigint } {
    if (declared.usd !== null) return { tokens: declared.tokens, femto: declared.usd };
    if (declared.model === null) return { tokens: declared.tokens, femto: 0n };
    const asOutput = exactFemto(
      this.#price(
        declared.model,
        countsOf({ inputTokens: declared.input, outputTokens: declared.output }),
      ),
    );
    const asReasoning = exactFemto(
      this.#price(
        declared.model,
        countsOf({ inputTokens: declared.input, reasoningTokens: declared.output }),
      ),
    );
    // biome-ignore lint/complexity/useMathMinMax: bigints; Math.max takes numbers only
    return { tokens: declared.tokens, femto: asOutput > asReasoning ? asOutput : asReasoning };
  }

  async #record(
    agentId: string,
    sessionId: string,
    entry: {
      usageId?: string;
      kind: UsageKind;
      model: string | null;
      tokens: number;
      femto: bigint;
      /** The reservation the usage names; null: none. */
      reservationId: string | null;
      /** Without a named reservation, settle the session's oldest open one. */
      matchOldest: boolean;
      breakdown: PriceBreakdown | null;
      reason: string | null;
    },
  ): Promise<UsageReceipt> {
    const policy = this.#policies.get(agentId);
    const item: SettleItem = {
      usageId: entry.usageId ?? randomUUID(),
      agentId,
      sessionId,
      day: this.#day(),
      model: entry.model,
      kind: entry.kind,
      tokens: String(entry.tokens),
      usd: femtoToUsd(entry.femto),
      ...(entry.reservationId
        ? { reservationId: entry.reservationId }
        : entry.matchOldest
          ? { oldestReservation: true as const }
          : {}),
      ...(entry.reason ? { reason: entry.reason } : {}),
      ...(entry.breakdown
        ? {
            detail: {
              matched: entry.breakdown.matched,
              match: entry.breakdown.match,
              tokens: entry.breakdown.tokens,
              rates: entry.breakdown.rates,
              usd: entry.breakdown.exactUsd,
            },
          }
        : {}),
      ...alertOf(policy),
    };
    const receipt = (recorded: boolean, queued: boolean, reservationId: string | null) =>
      Object.freeze({
        usageId: item.usageId,
        recorded,
        queued,
        reservationId,
        tokens: entry.tokens,
        usd: Number(item.usd),
        exactUsd: item.usd,
        breakdown: entry.breakdown,
      });
    try {
      const result = await this.#settle.submit(item);
      this.#afterSettle(item, result, policy);
      return receipt(result.recorded, false, result.reservationId ?? null);
    } catch (error) {
      if (!isTransient(error)) {
        // Not the store being away: retrying would fail the same way and block the backlog.
        await this.#dropped(item, error, "Usage could not be recorded and was dropped.");
        return receipt(false, false, entry.reservationId);
      }
      this.#metrics.usageQueued++;
      await this.#backlog.enqueue({ item, policy }, error);
      return receipt(false, true, entry.reservationId);
    }
  }

  /** A replayed record's outcome: recorded (or a duplicate), or refused by the database for its data. */
  async #settled(
    item: SettleItem,
    result: SettleResult | ItemFailure | undefined,
    policy: BudgetPolicy | undefined,
  ): Promise<void> {
    if (result === undefined) return;
    if (result instanceof ItemFailure) {
      await this.#dropped(
        item,
        result.error,
        "The database refused a waiting usage record; it was dropped.",
      );
      return;
    }
    this.#afterSettle(item, result, policy);
  }

  /** A spool file that did not prove whole (the spool logged it): evidence in the audit chain. */
  #spoolProblem(problem: SpoolIntegrityProblem): void {
    // Every field of the problem but its kind (in the event's kind) and the spool's name.
    const { kind, spool: _spool, ...metadata } = problem;
    const recording = this.#evidence({
      agentId: SYSTEM_AGENT,
      kind: `budget.spool_${kind}`,
      metadata,
    });
    this.#alerts.track(recording);
  }

  /** Spool files of other hosts were left alone at start (the spool logged it): evidence. */
  #spoolStranded(stranded: StrandedSpoolFiles): void {
    const recording = this.#evidence({
      agentId: SYSTEM_AGENT,
      kind: COST_AUDIT_KINDS.spoolStranded,
      metadata: {
        files: stranded.files,
        hosts: stranded.hosts.slice(0, 20),
        oldestAgeMs: stranded.oldestAgeMs,
      },
    });
    this.#alerts.track(recording);
  }

  /** Usage that will never be written: logged and audit-logged as `budget.usage_dropped`. */
  async #dropped(item: SettleItem, error: unknown, message: string): Promise<void> {
    this.#metrics.usageDropped++;
    this.#logger.error(message, {
      agentId: item.agentId,
      sessionId: item.sessionId,
      usd: item.usd,
      tokens: item.tokens,
      error: describeError(error),
    });
    await this.#evidence({
      agentId: item.agentId,
      sessionId: item.sessionId,
      kind: "budget.usage_dropped",
      model: item.model,
      metadata: {
        usageId: item.usageId,
        usd: item.usd,
        tokens: Number(item.tokens),
        ...(error === null ? {} : { error: describeError(error) }),
      },
    });
  }

  #afterSettle(item: SettleItem, result: SettleResult, policy: BudgetPolicy | undefined): void {
    if (!result.recorded) {
      this.#metrics.usageDuplicates++;
      return;
    }
    this.#metrics.usageRecorded++;
    if (result.note) {
      this.#logger.warn(`Usage was recorded without settling its reservation: ${result.note}.`, {
        agentId: item.agentId,
        sessionId: item.sessionId,
        reservationId: item.reservationId,
      });
    }
    for (const alert of result.alerts ?? [])
      this.#alerts.dispatch(item, alert, result.day ?? item.day, policy);
  }

  #runReserve(items: ReserveRequest[]): Promise<(ReserveResult | ItemFailure)[]> {
    return callBudgetFunction<ReserveResult>(this.#store, "reserve", items);
  }

  #runSettle(items: SettleItem[]): Promise<(SettleResult | ItemFailure)[]> {
    return callBudgetFunction<SettleResult>(this.#store, "settle", items);
  }
}

/** The cost module's definition, for `@gov/sdk` and for composing it by hand. */
export const costModule = defineModule({
  name: "cost",
  migrations: costMigrations,
  create: async (context: ModuleContext, options: CostOptions | undefined) => {
    const cost = new CostModule(context, options ?? {});
    await cost.start();
    return cost;
  },
  close: (cost: CostModule) => cost.close(),
  sdk: costSdkContribution,
});
