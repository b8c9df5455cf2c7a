import { resolve } from "node:path";
import {
  DurableSpool,
  InvalidArgumentError,
  type ModuleContext,
  requirePort,
  spoolHostNames,
  systemClock,
  typeOf,
} from "@gov/core";
import { AlertDispatcher } from "./alert-dispatch";
import { UsageBacklog } from "./backlog";
import { Batcher } from "./batcher";
import { BudgetPolicy, type BudgetPolicyInput } from "./budget-policy";
import { spoolProblemEvidence, spoolStrandedEvidence, writeEvidence } from "./evidence";
import { LeaseBook } from "./leases";
import type {
  BudgetReservation,
  BudgetSnapshot,
  CheckOptions,
  CostMetrics,
  ReconcileOptions,
  TrackSpendOptions,
  TrackUsageOptions,
  UsageReceipt,
} from "./models";
import { type CostOptions, parseCostOptions } from "./options";
import { PriceTable } from "./price-table";
import { modelBreakdown, readSnapshot } from "./reads";
import { reserveBudget, runReserve } from "./reserve";
import type { CostRuntime } from "./runtime";
import {
  dropUsage,
  reconcileUsage,
  releaseExpiredReservations,
  releaseReservations,
  replaySettled,
  runSettle,
  trackSpend,
  trackUsage,
} from "./settle";
import { SettlementsInFlight } from "./settling";
import type { SpoolLine } from "./sql";

/** The longest wait of `flush` (a day). */
const MAX_FLUSH_MS = 86_400_000;

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
  readonly #runtime: CostRuntime;
  readonly #spool: DurableSpool<SpoolLine> | null;
  #sweepTimer: NodeJS.Timeout | null = null;
  #started = false;
  #closed = false;

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
    const prices = data.prices ?? new PriceTable();
    const adoptHosts = spoolHostNames(data.spoolAdoptHosts ?? [], "spoolAdoptHosts");
    const spoolDirectory =
      data.spoolDirectory === undefined
        ? resolve(context.store.directory ?? ".governance", "cost-spool")
        : data.spoolDirectory;
    const spool =
      spoolDirectory === null
        ? null
        : new DurableSpool<SpoolLine>(
            spoolDirectory,
            context.logger,
            { prefix: "cost-spool-", name: "cost", noun: "usage records" },
            {
              ...(context.keyring ? { keyring: context.keyring } : {}),
              adoptHosts,
              onIntegrityProblem: (problem) => spoolProblemEvidence(this.#runtime, problem),
              onStranded: (stranded) => spoolStrandedEvidence(this.#runtime, stranded),
            },
          );
    this.#spool = spool;
    const store = context.store;
    const logger = context.logger;
    const audit = context.audit;
    const clock = context.clock ?? systemClock;
    const policies = new Map<string, BudgetPolicy>();
    const metrics: CostMetrics = {
      checks: 0,
      passed: 0,
      exceeded: 0,
      rechecks: 0,
      leasesOpened: 0,
      leaseAdmissions: 0,
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
    this.#runtime = {
      store,
      logger,
      audit,
      halt: context.halt,
      clock,
      options: data,
      prices,
      policies,
      warnedUnbudgeted: new Set<string>(),
      warnedUnprojected: new Set<string>(),
      metrics,
      reserve: new Batcher((items) => runReserve(store, items), {
        maxBatch: data.maxBatchSize,
        maxInFlight: 2,
      }),
      settle: new Batcher((items) => runSettle(store, items), {
        maxBatch: data.maxBatchSize,
        maxInFlight: 2,
      }),
      settling: new SettlementsInFlight(),
      leases: null,
      backlog: new UsageBacklog({
        logger,
        spool,
        maxBatchSize: data.maxBatchSize,
        maxBacklog: data.maxBacklog,
        settle: (items) => runSettle(store, items),
        settled: (item, result, policy) => replaySettled(this.#runtime, item, result, policy),
        dropped: (item, error, message) => dropUsage(this.#runtime, item, error, message),
        policyOf: (agentId) => policies.get(agentId),
      }),
      alerts: new AlertDispatcher({
        logger,
        clock,
        evidence: (event) => writeEvidence({ audit, logger }, event),
        metrics,
        timeoutMs: data.alertTimeoutMs,
        attempts: data.alertAttempts,
      }),
    };
    if (data.lease !== null) this.#runtime.leases = new LeaseBook(this.#runtime, data.lease);
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
    await this.#runtime.backlog.adoptOrphans();
    // Closed while the spool was read: start no sweep that nothing would stop.
    if (this.#closed || this.#runtime.options.sweepIntervalMs === null) return;
    this.#sweepTimer = setInterval(() => {
      void this.releaseExpired();
    }, this.#runtime.options.sweepIntervalMs);
    this.#sweepTimer.unref();
  }

  /** The price table `trackUsage` and `checkOrRaise` price with; add or override prices on it. */
  get prices(): PriceTable {
    return this.#runtime.prices;
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
    this.#runtime.policies.set(built.agentId, built);
    this.#runtime.leases?.retire(built.agentId);

    this.#runtime.warnedUnbudgeted.delete(built.agentId);
    return built;
  }

  /** Remove an agent's policy; returns whether there was one. Spend already recorded stays. */
  unregister(agentId: string): boolean {
    this.#runtime.leases?.retire(agentId);
    return this.#runtime.policies.delete(agentId);
  }

  /** The agent's registered policy, if any. */
  getPolicy(agentId: string): BudgetPolicy | undefined {
    return this.#runtime.policies.get(agentId);
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
   * A check refused while this process is still writing usage of the same agent (or releases,
   * which name no agent) waits for them and checks again — a call's worst case, still reserved,
   * may be what is in the way — at most three times and one second in all, the halt checked
   * again each time; only a refusal that stands after them is thrown and audited.
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
    return reserveBudget(this.#runtime, agentId, sessionId, options);
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
    return this.#runtime.settling.track(
      agentId,
      trackSpend(this.#runtime, agentId, sessionId, options),
    );
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
    return this.#runtime.settling.track(
      agentId,
      trackUsage(this.#runtime, agentId, sessionId, options),
    );
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
    return this.#runtime.settling.track(
      agentId,
      reconcileUsage(this.#runtime, agentId, sessionId, options),
    );
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
    return this.#runtime.settling.track(null, releaseReservations(this.#runtime, reservationIds));
  }

  /**
   * Release reservations whose time ran out (`reservationTtlMs`, database clock): calls
   * that never reported their usage. Each is audit-logged (`budget.reservation_expired`).
   * Runs every `sweepIntervalMs`; never throws (a failure is logged).
   *
   * @returns How many were released.
   */
  async releaseExpired(): Promise<number> {
    return releaseExpiredReservations(this.#runtime);
  }

  /**
   * Usage and remaining budget of the agent and session: spent, reserved, session time, and
   * what is left under each cap of the registered policy. Never throws for a store failure:
   * it logs and returns zeros with `degraded: true`.
   *
   * @throws {InvalidArgumentError} bad ids.
   */
  async snapshot(agentId: string, sessionId: string): Promise<BudgetSnapshot> {
    return readSnapshot(this.#runtime, agentId, sessionId);
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
    return modelBreakdown(this.#runtime, agentId, options);
  }

  /** Counters of what the module did since it started. */
  metrics(): CostMetrics {
    return { ...this.#runtime.metrics, backlog: this.#runtime.backlog.waiting };
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
    while (this.#runtime.backlog.waiting > 0 && performance.now() < deadline) {
      if (!(await this.#runtime.backlog.retry())) {
        await new Promise((resolve) =>
          setTimeout(resolve, Math.min(200, Math.max(0, deadline - performance.now()))),
        );
      }
    }
    await this.#runtime.alerts.settled(deadline - performance.now());
    return this.#runtime.backlog.waiting;
  }

  /**
   * Stop the sweep, try once more to write queued usage, and wait for alert deliveries.
   * Idempotent: later calls do nothing. Works without `start()`.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#sweepTimer) clearInterval(this.#sweepTimer);
    this.#runtime.backlog.stop();
    // Calls already made finish first: what they fail to write joins what flush() writes.
    // Elapsed time of real waits (timers), not wall time: an injected clock may stand still.
    const drainUntil = performance.now() + 5_000;
    while (
      this.#runtime.reserve.pending + this.#runtime.settle.pending > 0 &&
      performance.now() < drainUntil
    ) {
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    await this.#runtime.leases?.close();
    const left = await this.flush(5_000);
    this.#runtime.alerts.abort();
    await this.#runtime.alerts.settled();
    const inMemory = this.#runtime.backlog.inMemory;
    if (inMemory > 0) {
      this.#runtime.logger.error(
        "The cost module closed with usage it could not write; it is lost.",
        {
          records: inMemory,
        },
      );
    }
    if (left > inMemory) {
      this.#runtime.logger.warn(
        "The cost module closed with usage in its spool; the next process to start replays it.",
        { records: left - inMemory, directory: this.#runtime.backlog.directory },
      );
    }
    await this.#spool?.close();
  }

  /** `await using cost = …` closes the module: the same as {@link CostModule.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
