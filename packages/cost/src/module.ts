import { randomUUID } from "node:crypto";
import { resolve } from "node:path";
import {
  type AuditEventInput,
  type AuditSink,
  type Clock,
  ConfigError,
  DurableSpool,
  defineModule,
  type HaltCheckContext,
  type HaltGuard,
  InvalidArgumentError,
  type Logger,
  type MigrationSource,
  type ModuleContext,
  requirePort,
  type SpoolIntegrityProblem,
  type Store,
  StoreError,
  type StrandedSpoolFiles,
  spoolHostNames,
  sql,
  systemClock,
} from "@gov/core";
import { z } from "zod";
import { type BudgetAlertPayload, deliverAlert } from "./alerts";
import { Batcher, ItemFailure } from "./batcher";
import {
  alertTarget,
  BUDGET_LIMITS,
  type BudgetCap,
  BudgetPolicy,
  type BudgetPolicyInput,
  type ExactCaps,
} from "./budget-policy";
import { BudgetCheckFailedError, BudgetExceeded, type BudgetUnit } from "./errors";
import {
  COST_LIMITS,
  isPlainObject,
  isWellFormed,
  modelIdProblem,
  rateSchema,
  typeOf,
} from "./models";
import {
  decimalToUnits,
  FEMTO_DIGITS,
  femtoToUsd,
  isDecimalProblem,
  rateToUsdPerMillion,
} from "./money";
import { type PriceBreakdown, PriceTable } from "./price-table";
import type { NormalizedUsage } from "./usage";

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

const optionsSchema = z.strictObject({
  failOpen: z.boolean().default(false),
  defaultMaxTokens: z.int().min(1).max(COST_LIMITS.tokens).nullable().default(null),
  strictUnknownModels: z.boolean().default(true),
  unknownModelFallbackUsdPerMillion: rateSchema.nullable().default(null),
  prices: z.instanceof(PriceTable).optional(),
  reservationTtlSeconds: z.int().min(1).max(86_400).default(900),
  sweepIntervalMs: z.int().min(100).max(86_400_000).nullable().default(60_000),
  alertTimeoutMs: z.int().min(100).max(60_000).default(5_000),
  alertAttempts: z.int().min(1).max(10).default(3),
  maxBatch: z.int().min(1).max(10_000).default(256),
  maxBacklog: z.int().min(0).max(10_000_000).default(100_000),
  spoolDirectory: z.string().min(1).nullable().optional(),
  spoolAdoptHosts: z.array(z.unknown()).optional(),
});

const OPTION_FIXES: Record<string, string> = {
  failOpen: "Use true (availability over safety) or false (deny when the store is unreachable).",
  defaultMaxTokens: "Use a whole number of tokens ≥ 1, or null.",
  strictUnknownModels: "Use true or false.",
  unknownModelFallbackUsdPerMillion: "Use a positive rate in USD per million tokens, or null.",
  prices: "Pass a PriceTable (new PriceTable()), or leave it out for the bundled prices.",
  reservationTtlSeconds: "Use whole seconds from 1 to 86400.",
  sweepIntervalMs: "Use milliseconds from 100 to 86400000, or null to turn the sweep off.",
  alertTimeoutMs: "Use milliseconds from 100 to 60000.",
  alertAttempts: "Use a whole number from 1 to 10.",
  maxBatch: "Use a whole number from 1 to 10000.",
  maxBacklog: "Use a whole number from 0 to 10000000.",
  spoolDirectory: "Use a writable directory path, or null to keep unwritten usage in memory only.",
  spoolAdoptHosts: 'Use an array of host names that are gone, e.g. ["old-container-1"].',
};

/** Options of the cost module (the SDK maps its `cost*` options onto these). */
export interface CostOptions {
  /**
   * When the store cannot be read, let `checkOrRaise` pass (availability over safety)
   * instead of denying. Either way the failure is logged and audit-logged
   * (`budget.check_failed`). SDK: `costFailOpen`. @default false
   */
  failOpen?: boolean;
  /**
   * The output tokens a check projects when the caller declares no `maxTokens`. Without it
   * such a check projects only what it is told. SDK: `defaultMaxTokens`. @default null
   */
  defaultMaxTokens?: number | null;
  /**
   * Refuse to price (and to track) a model without a price (`UnknownModelError`). SDK:
   * `costStrictUnknownModels`. @default true
   */
  strictUnknownModels?: boolean;
  /** With `strictUnknownModels: false`, the rate of every token of an unknown model (required then). */
  unknownModelFallbackUsdPerMillion?: number | string | null;
  /** The price table. @default a new PriceTable with the bundled prices */
  prices?: PriceTable;
  /**
   * How long a check's reservation waits for its usage before it is released (a call that
   * never reported). 1 s to 1 day. @default 900
   */
  reservationTtlSeconds?: number;
  /** How often expired reservations are released; `null` turns the sweep off. @default 60000 */
  sweepIntervalMs?: number | null;
  /** Milliseconds each alert webhook attempt may take. @default 5000 */
  alertTimeoutMs?: number;
  /** Attempts per alert webhook (first plus retries, with backoff). @default 3 */
  alertAttempts?: number;
  /** Most checks (or usage records) sent in one round trip. @default 256 */
  maxBatch?: number;
  /**
   * Usage records kept in memory for retry while the store is unreachable; beyond this, the
   * oldest are dropped, logged and audit-logged (`budget.usage_dropped`). @default 100000
   */
  maxBacklog?: number;
  /**
   * Where usage waits, durably (fsynced JSON lines), while the store is unreachable, so that
   * a crash loses nothing: it is replayed when the store is back — by this process, or by the
   * next one to start. `null` keeps it in memory only (up to `maxBacklog`).
   * @default `<embedded database>/cost-spool`, or `./.governance/cost-spool`
   */
  spoolDirectory?: string | null;
  /**
   * Host names whose spool files this process adopts and replays as if they were its own
   * host's: hosts that are gone, e.g. the old name of a container recreated on the same
   * volume (a process can tell whether a writer runs only on its own host). Files of other
   * hosts are otherwise left alone, with a warning and a `budget.spool_stranded` event at
   * start. Never name a host that still runs a process writing into the spool directory.
   * @default []
   */
  spoolAdoptHosts?: readonly string[];
}

/** What `checkOrRaise` is told about the call it checks. */
export interface CheckOptions {
  /** The model that will be called: prices the projection (required to project USD). */
  model?: string;
  /** Input tokens the call will send, if known (priced at the input rate). @default 0 */
  inputTokens?: number;
  /** The call's `max_tokens`: output tokens projected (priced at the higher of the output and reasoning rates). @default defaultMaxTokens */
  maxTokens?: number;
  /** Total tokens to project instead (input + output); overrides `maxTokens`. */
  projectedTokens?: number;
  /** USD to project instead of pricing the tokens (a number or a decimal string). */
  projectedUsd?: number | string;
}

/**
 * What a passed check reserved. Pass `reservationId` to `trackUsage` / `reconcile` to settle
 * exactly this reservation (otherwise the session's oldest open reservation is settled).
 */
export interface BudgetReservation {
  /** The reservation, or null when nothing was reserved (nothing projected, no policy, fail-open). */
  readonly reservationId: string | null;
  readonly agentId: string;
  readonly sessionId: string;
  /** Tokens reserved. */
  readonly tokens: number;
  /** USD reserved. */
  readonly usd: number;
  /** USD reserved, exact. */
  readonly exactUsd: string;
  /** The UTC day the reservation counts against. */
  readonly day: string;
  /** True when the store could not be read and `failOpen` let the call through unchecked. */
  readonly failOpen: boolean;
  /** True when the agent has no registered policy (nothing was checked). */
  readonly unbudgeted: boolean;
}

/** What `track`, `trackUsage` and `reconcile` did. */
export interface UsageReceipt {
  /** The usage record's id (the same on every retry). */
  readonly usageId: string;
  /** True when it was recorded now; false when it was already recorded (idempotent) or is queued. */
  readonly recorded: boolean;
  /** True when the store was unreachable and the record waits in memory for a retry. */
  readonly queued: boolean;
  /** The reservation it settled, if any. */
  readonly reservationId: string | null;
  readonly tokens: number;
  readonly usd: number;
  readonly exactUsd: string;
  /** The priced parts (trackUsage, reconcile). */
  readonly breakdown: PriceBreakdown | null;
}

/** Options of {@link CostModule.track}. */
export interface TrackSpendOptions {
  /** Tokens used (whole, ≥ 0). */
  tokens: number;
  /** USD spent (≥ 0; a number or a decimal string). */
  usd: number | string;
  /** The model, for `modelBreakdown`. */
  model?: string | null;
  /**
   * The reservation this usage settles (from `checkOrRaise`). Leave it out to settle the
   * session's oldest open reservation; `null` settles none.
   */
  reservationId?: string | null;
}

/** Token counts as `trackUsage` takes them when no provider `usage` object is given. */
export interface TokenCounts {
  inputTokens?: number;
  outputTokens?: number;
  cachedInputTokens?: number;
  cacheWriteTokens?: number;
  reasoningTokens?: number;
}

/** Options of {@link CostModule.trackUsage}. */
export interface TrackUsageOptions extends TokenCounts {
  /** The model id, priced from the price table. */
  model: string;
  /**
   * The provider's usage object as returned (OpenAI Chat Completions or Responses, Anthropic
   * Messages): cached, cache-write and reasoning tokens are each priced at their own rate.
   * Without it, the token counts are used.
   */
  usage?: unknown;
  /**
   * The reservation this usage settles (from `checkOrRaise`). Leave it out to settle the
   * session's oldest open reservation; `null` (a check that reserved nothing) settles none.
   */
  reservationId?: string | null;
}

/** Options of {@link CostModule.reconcile}. */
export interface ReconcileOptions extends TokenCounts {
  /** The reservation of the stream (from `checkOrRaise`); reconcile is idempotent per reservation. */
  reservationId: string;
  /** The model of the stream. */
  model: string;
  /** The final usage payload, when the stream delivered one. */
  usage?: unknown;
  /**
   * Chunks received, when the stream ended without usage (cancelled, failed, abandoned):
   * output is estimated conservatively at 8 tokens per chunk.
   */
  chunks?: number;
  /** Why the stream ended: `completed`, `cancelled`, `error`, `abandoned`, … (≤ 64 characters). */
  reason: string;
}

/** Usage and remaining budget of one agent and session (amounts in USD and tokens). */
export interface BudgetSnapshot {
  readonly agentId: string;
  readonly sessionId: string;
  /** The UTC day of the daily figures. */
  readonly day: string;
  readonly sessionUsdUsed: number;
  readonly sessionTokensUsed: number;
  /** Reserved by checks whose calls have not reported yet. */
  readonly sessionUsdReserved: number;
  readonly sessionTokensReserved: number;
  readonly agentDailyUsdUsed: number;
  readonly agentDailyTokensUsed: number;
  readonly agentDailyUsdReserved: number;
  readonly agentDailyTokensReserved: number;
  /** Seconds since the session started (database clock); null before its first check or usage. */
  readonly sessionSeconds: number | null;
  /** Limit − used − reserved (never below 0) per cap; null where the policy sets no cap. */
  readonly sessionUsdRemaining: number | null;
  readonly sessionTokensRemaining: number | null;
  readonly agentDailyUsdRemaining: number | null;
  readonly agentDailyTokensRemaining: number | null;
  readonly sessionSecondsRemaining: number | null;
  /** True when the store could not be read: the figures are zeros, not the truth. */
  readonly degraded: boolean;
}

/** Counters of what the module did since it started. */
export interface CostMetrics {
  checks: number;
  passed: number;
  exceeded: number;
  checkFailures: number;
  failOpenPasses: number;
  usageRecorded: number;
  usageDuplicates: number;
  usageQueued: number;
  usageDropped: number;
  backlog: number;
  reservationsExpired: number;
  alertsSent: number;
  alertsFailed: number;
}

/** A check's projection as declared, validated. */
interface Declared {
  tokens: number;
  input: number;
  output: number;
  model: string | null;
  usd: bigint | null;
}

interface ReserveRequest {
  i: string;
  a: string;
  s: string;
  d: string;
  t: string;
  u: string;
  m: string | null;
  ttl: number;
  ss?: string;
  su?: string;
  st?: string;
  du?: string;
  dt?: string;
}

interface ReserveResult {
  ok: boolean;
  reserved?: boolean;
  cap?: BudgetCap;
  used?: string;
  committed?: string;
  projected?: string;
  limit?: string;
}

interface SettleItem {
  id: string;
  a: string;
  s: string;
  d: string;
  m: string | null;
  k: "track" | "usage" | "reconcile";
  t: string;
  u: string;
  r?: string;
  fifo?: boolean;
  why?: string;
  detail?: unknown;
  alert?: { p: number; su?: string; st?: string; du?: string; dt?: string };
}

interface SettleResult {
  recorded: boolean;
  released: boolean;
  reservationId?: string;
  note?: string;
  day?: string;
  alerts?: { cap: BudgetCap; used: string; limit: string }[];
}

/** A usage record waiting in the durable spool. */
interface SpoolLine {
  v: 1;
  item: SettleItem;
}

/** A settle that failed on the store and waits for a retry. */
interface Backlogged {
  item: SettleItem;
  policy: BudgetPolicy | undefined;
}

const UNIT: Record<BudgetCap, BudgetUnit> = {
  perSessionUsd: "usd",
  perAgentUsdDaily: "usd",
  perSessionTokens: "tokens",
  perAgentTokensDaily: "tokens",
  perSessionSeconds: "seconds",
};

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Whether a failed write is worth keeping for a retry: everything but the database refusing
 * this very record (a data exception or a constraint, SQLSTATE classes 22 and 23), which would
 * fail the same way every time and block what waits behind it.
 */
function isTransient(error: unknown): boolean {
  if (!StoreError.isInstance(error)) return true;
  const state = error.sqlState ?? "";
  return !(state.startsWith("22") || state.startsWith("23"));
}

/** Store errors worth retrying at once: another transaction got in the way. */
function isContention(error: unknown): boolean {
  return (
    StoreError.isInstance(error) && (error.kind === "deadlock" || error.kind === "serialization")
  );
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
  readonly #options: z.output<typeof optionsSchema>;
  readonly #prices: PriceTable;
  readonly #policies = new Map<string, BudgetPolicy>();
  readonly #warnedUnbudgeted = new Set<string>();
  readonly #reserve: Batcher<ReserveRequest, ReserveResult>;
  readonly #settle: Batcher<SettleItem, SettleResult>;
  #backlog: Backlogged[] = [];
  /** Backlog entries a replay is writing: never dropped for room meanwhile. */
  readonly #sending = new Set<Backlogged>();
  readonly #spool: DurableSpool<SpoolLine> | null;
  #replaying: Promise<boolean> | null = null;
  readonly #deliveries = new Set<Promise<void>>();
  /** Aborts the alert deliveries still running when the module closes. */
  readonly #abortAlerts = new AbortController();
  /** Agents warned that a check projected nothing against a cap (once each). */
  readonly #warnedUnprojected = new Set<string>();
  #retryTimer: NodeJS.Timeout | null = null;
  #retryDelayMs = 500;
  #sweepTimer: NodeJS.Timeout | null = null;
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
    const parsed = optionsSchema.safeParse(options ?? {});
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const field =
        issue?.code === "unrecognized_keys"
          ? (issue.keys[0] ?? "options")
          : String(issue?.path[0] ?? "options");
      throw new InvalidArgumentError(
        field,
        issue?.code === "unrecognized_keys"
          ? `is not a cost option (${issue.keys.join(", ")}).`
          : (issue?.message ?? "is invalid."),
        OPTION_FIXES[field] ??
          `Use the options listed in CostOptions: ${Object.keys(OPTION_FIXES).join(", ")}.`,
      );
    }
    const data = parsed.data;
    if (
      !data.strictUnknownModels &&
      (data.unknownModelFallbackUsdPerMillion === null ||
        data.unknownModelFallbackUsdPerMillion === 0n)
    ) {
      throw new ConfigError([
        {
          source: "option",
          name: "unknownModelFallbackUsdPerMillion",
          problem: "is required (and must be positive) when strictUnknownModels is false.",
          fix: "Set a positive fallback rate in USD per million tokens (SDK: costUnknownModelFallbackUsdPerMillion, or GOVERNANCE_COST_UNKNOWN_MODEL_FALLBACK_USD_PER_MILLION), or keep strict mode.",
        },
      ]);
    }
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
      maxBatch: data.maxBatch,
      maxInFlight: 2,
    });
    this.#settle = new Batcher((items) => this.#runSettle(items), {
      maxBatch: data.maxBatch,
      maxInFlight: 2,
    });
  }

  /**
   * @internal Adopt the usage that processes which are gone left in the spool (and replay it
   * soon), and start the sweep of expired reservations. Never throws: a spool that cannot be
   * read is logged.
   */
  async start(): Promise<void> {
    if (this.#closed) return;
    if (this.#spool) {
      try {
        if ((await this.#spool.adoptOrphans()) > 0) this.#scheduleRetry();
      } catch (error) {
        this.#logger.warn("The cost spool of earlier processes could not be read.", {
          directory: this.#spool.directory,
          error: describe(error),
        });
      }
    }
    if (this.#options.sweepIntervalMs === null) return;
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
  policyFor(agentId: string): BudgetPolicy | undefined {
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
      i: randomUUID(),
      a: agentId,
      s: sessionId,
      d: day,
      t: String(projection.tokens),
      u: femtoToUsd(projection.femto),
      m: options.model ?? null,
      ttl: this.#options.reservationTtlSeconds,
      ...capsOf(policy.exact),
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
        { agentId, sessionId, error: describe(error) },
      );
      await this.#evidence({
        agentId,
        sessionId,
        kind: "budget.check_failed",
        model: options.model ?? null,
        metadata: {
          failOpen,
          decision: failOpen ? "allowed" : "denied",
          error: describe(error),
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
        unit: UNIT[cap],
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
      reservationId: result.reserved ? request.i : null,
      agentId,
      sessionId,
      tokens: projection.tokens,
      usd: Number(request.u),
      exactUsd: request.u,
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
   * @throws {UnknownModelError} (strict mode) · `InvalidArgumentError`; nothing was recorded.
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
    checkId("reason", options.reason, 64);
    let usage: unknown;
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
   * Release reservations whose time ran out (`reservationTtlSeconds`, database clock): calls
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
          error: describe(error),
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
    let session:
      | {
          usd: string;
          tokens: string;
          reserved_usd: string;
          reserved_tokens: string;
          elapsed: string;
        }
      | undefined;
    let daily:
      | { usd: string; tokens: string; reserved_usd: string; reserved_tokens: string }
      | undefined;
    let degraded = false;
    try {
      const rows = await this.#store.query<{
        s: typeof session | null;
        d: typeof daily | null;
      }>(sql`
        select
          (select jsonb_build_object('usd', usd::text, 'tokens', tokens::text,
                   'reserved_usd', reserved_usd::text, 'reserved_tokens', reserved_tokens::text,
                   'elapsed', extract(epoch from now() - started_at)::text)
             from gov_cost.sessions where agent_id = ${agentId} and session_id = ${sessionId}) as s,
          (select jsonb_build_object('usd', usd::text, 'tokens', tokens::text,
                   'reserved_usd', reserved_usd::text, 'reserved_tokens', reserved_tokens::text)
             from gov_cost.agent_days where agent_id = ${agentId} and day = ${day}::date) as d`);
      session = rows[0]?.s ?? undefined;
      daily = rows[0]?.d ?? undefined;
    } catch (error) {
      degraded = true;
      this.#logger.error("snapshot could not read the budget; zeros are returned (degraded).", {
        agentId,
        sessionId,
        error: describe(error),
      });
    }
    const femto = (value: string | undefined) =>
      value === undefined ? 0n : (decimalToUnits(value, FEMTO_DIGITS) as bigint);
    const sUsd = femto(session?.usd);
    const sRes = femto(session?.reserved_usd);
    const dUsd = femto(daily?.usd);
    const dRes = femto(daily?.reserved_usd);
    const sTok = Number(session?.tokens ?? 0);
    const sTokRes = Number(session?.reserved_tokens ?? 0);
    const dTok = Number(daily?.tokens ?? 0);
    const dTokRes = Number(daily?.reserved_tokens ?? 0);
    const elapsed = session ? Number(session.elapsed) : null;
    const caps = this.#policies.get(agentId)?.exact;
    const usdLeft = (limit: bigint | null | undefined, used: bigint) =>
      limit == null ? null : Number(femtoToUsd(limit > used ? limit - used : 0n));
    const tokLeft = (limit: number | null | undefined, used: number) =>
      limit == null ? null : Math.max(0, limit - used);
    return Object.freeze({
      agentId,
      sessionId,
      day,
      sessionUsdUsed: Number(femtoToUsd(sUsd)),
      sessionTokensUsed: sTok,
      sessionUsdReserved: Number(femtoToUsd(sRes)),
      sessionTokensReserved: sTokRes,
      agentDailyUsdUsed: Number(femtoToUsd(dUsd)),
      agentDailyTokensUsed: dTok,
      agentDailyUsdReserved: Number(femtoToUsd(dRes)),
      agentDailyTokensReserved: dTokRes,
      sessionSeconds: elapsed,
      sessionUsdRemaining: usdLeft(caps?.perSessionUsd, sUsd + sRes),
      sessionTokensRemaining: tokLeft(caps?.perSessionTokens, sTok + sTokRes),
      agentDailyUsdRemaining: usdLeft(caps?.perAgentUsdDaily, dUsd + dRes),
      agentDailyTokensRemaining: tokLeft(caps?.perAgentTokensDaily, dTok + dTokRes),
      sessionSecondsRemaining:
        caps?.perSessionSeconds == null
          ? null
          : Math.max(0, caps.perSessionSeconds - (elapsed ?? 0)),
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
    checkId("agentId", agentId, BUDGET_LIMITS.agentId);
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
      const rows = await this.#store.query<{ model: string; usd: string; tokens: string }>(sql`
        select model, sum(usd)::text as usd, sum(tokens)::text as tokens
        from gov_cost.usage
        where agent_id = ${agentId} and model is not null
          ${since ? sql`and recorded_at >= ${since.toISOString()}::timestamptz` : sql``}
        group by model order by model`);
      const out: Record<string, { usd: number; tokens: number }> = {};
      for (const row of rows) out[row.model] = { usd: Number(row.usd), tokens: Number(row.tokens) };
      return out;
    } catch (error) {
      this.#logger.error("modelBreakdown could not read usage; {} is returned.", {
        agentId,
        error: describe(error),
      });
      return {};
    }
  }

  /** Counters of what the module did since it started. */
  metrics(): CostMetrics {
    return { ...this.#metrics, backlog: this.#waiting() };
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
    const deadline = Date.now() + timeoutMs;
    while (this.#waiting() > 0 && Date.now() < deadline) {
      if (!(await this.#retryBacklog())) {
        await new Promise((resolve) =>
          setTimeout(resolve, Math.min(200, Math.max(0, deadline - Date.now()))),
        );
      }
    }
    await Promise.race([
      Promise.allSettled([...this.#deliveries]),
      new Promise((resolve) => setTimeout(resolve, Math.max(0, deadline - Date.now())).unref()),
    ]);
    return this.#waiting();
  }

  /** Stop the sweep, try once more to write queued usage, and wait for alert deliveries. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#sweepTimer) clearInterval(this.#sweepTimer);
    if (this.#retryTimer) clearTimeout(this.#retryTimer);
    // Calls already made finish first: what they fail to write joins what flush() writes.
    const drainUntil = Date.now() + 5_000;
    while (this.#reserve.pending + this.#settle.pending > 0 && Date.now() < drainUntil) {
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    const left = await this.flush(5_000);
    this.#abortAlerts.abort();
    await Promise.allSettled([...this.#deliveries]);
    const inMemory = this.#backlog.length;
    if (inMemory > 0) {
      this.#logger.error("The cost module closed with usage it could not write; it is lost.", {
        records: inMemory,
      });
    }
    if (left > inMemory) {
      this.#logger.warn(
        "The cost module closed with usage in its spool; the next process to start replays it.",
        { records: left - inMemory, directory: this.#spool?.directory },
      );
    }
    await this.#spool?.close();
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
        error: describe(error),
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

  #price(model: unknown, usage: unknown): PriceBreakdown {
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
      kind: SettleItem["k"];
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
      id: entry.usageId ?? randomUUID(),
      a: agentId,
      s: sessionId,
      d: this.#day(),
      m: entry.model,
      k: entry.kind,
      t: String(entry.tokens),
      u: femtoToUsd(entry.femto),
      ...(entry.reservationId
        ? { r: entry.reservationId }
        : entry.matchOldest
          ? { fifo: true }
          : {}),
      ...(entry.reason ? { why: entry.reason } : {}),
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
        usageId: item.id,
        recorded,
        queued,
        reservationId,
        tokens: entry.tokens,
        usd: Number(item.u),
        exactUsd: item.u,
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
      await this.#enqueue({ item, policy }, error);
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
    this.#deliveries.add(recording);
    void recording.finally(() => this.#deliveries.delete(recording));
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
    this.#deliveries.add(recording);
    void recording.finally(() => this.#deliveries.delete(recording));
  }

  /** Usage that will never be written: logged and audit-logged as `budget.usage_dropped`. */
  async #dropped(item: SettleItem, error: unknown, message: string): Promise<void> {
    this.#metrics.usageDropped++;
    this.#logger.error(message, {
      agentId: item.a,
      sessionId: item.s,
      usd: item.u,
      tokens: item.t,
      error: describe(error),
    });
    await this.#evidence({
      agentId: item.a,
      sessionId: item.s,
      kind: "budget.usage_dropped",
      model: item.m,
      metadata: {
        usageId: item.id,
        usd: item.u,
        tokens: Number(item.t),
        ...(error === null ? {} : { error: describe(error) }),
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
        agentId: item.a,
        sessionId: item.s,
        reservationId: item.r,
      });
    }
    for (const alert of result.alerts ?? []) this.#alert(item, alert, result.day ?? item.d, policy);
  }

  #alert(
    item: SettleItem,
    crossing: { cap: BudgetCap; used: string; limit: string },
    day: string,
    policy: BudgetPolicy | undefined,
  ): void {
    const target = policy ? alertTarget(policy) : null;
    if (!policy?.alert || target === null) return;
    const unit = UNIT[crossing.cap] === "usd" ? "usd" : "tokens";
    const payload: BudgetAlertPayload = {
      type: "budget.threshold_crossed",
      id: randomUUID(),
      agentId: item.a,
      sessionId: item.s,
      cap: crossing.cap,
      unit,
      used: trimDecimal(crossing.used),
      limit: trimDecimal(crossing.limit),
      thresholdPercent: policy.alert.thresholdPercent,
      day: crossing.cap.startsWith("perAgent") ? day : null,
      at: this.#clock.now().toISOString(),
    };
    const host = new URL(target.url).host;
    const delivery = (async () => {
      await this.#evidence({
        agentId: item.a,
        sessionId: item.s,
        kind: "budget.threshold_crossed",
        metadata: {
          alertId: payload.id,
          cap: payload.cap,
          unit,
          used: payload.used,
          limit: payload.limit,
          thresholdPercent: payload.thresholdPercent,
          webhookHost: host,
        },
      });
      const outcome = await deliverAlert(
        { url: target.url, secret: target.secret, payload },
        {
          timeoutMs: this.#options.alertTimeoutMs,
          attempts: this.#options.alertAttempts,
          backoffMs: 250,
          nowMs: () => this.#clock.nowMs(),
          signal: this.#abortAlerts.signal,
        },
      );
      if (outcome.delivered) {
        this.#metrics.alertsSent++;
        return;
      }
      this.#metrics.alertsFailed++;
      this.#logger.warn("A budget alert webhook could not be delivered.", {
        agentId: item.a,
        cap: payload.cap,
        webhookHost: host,
        attempts: outcome.attempts,
        error: outcome.error,
      });
      await this.#evidence({
        agentId: item.a,
        sessionId: item.s,
        kind: "budget.alert_failed",
        metadata: {
          alertId: payload.id,
          cap: payload.cap,
          webhookHost: host,
          attempts: outcome.attempts,
          status: outcome.status,
          error: outcome.error,
        },
      });
    })().catch((error: unknown) => {
      this.#logger.error("A budget alert failed unexpectedly.", { error: describe(error) });
    });
    this.#deliveries.add(delivery);
    void delivery.finally(() => this.#deliveries.delete(delivery));
  }

  /** Records waiting for the store: in memory and in the spool. */
  #waiting(): number {
    return this.#backlog.length + (this.#spool?.depth ?? 0);
  }

  async #enqueue(entry: Backlogged, error: unknown): Promise<void> {
    this.#metrics.usageQueued++;
    const first = this.#waiting() === 0;
    if (this.#spool) {
      try {
        await this.#spool.append([{ v: 1, item: entry.item }]);
        if (first) {
          this.#logger.warn(
            "Usage could not be recorded; it is spooled to disk and replayed when the store is back.",
            {
              agentId: entry.item.a,
              sessionId: entry.item.s,
              directory: this.#spool.directory,
              error: describe(error),
            },
          );
        }
        this.#scheduleRetry();
        return;
      } catch (spoolError) {
        this.#logger.error("The cost spool cannot be written; usage is kept in memory only.", {
          directory: this.#spool.directory,
          error: describe(spoolError),
        });
      }
    } else if (first) {
      this.#logger.warn(
        "Usage could not be recorded; it is kept in memory and retried until the store is back.",
        { agentId: entry.item.a, sessionId: entry.item.s, error: describe(error) },
      );
    }
    this.#backlog.push(entry);
    while (this.#backlog.length > this.#options.maxBacklog) {
      const index = this.#backlog.findIndex((waiting) => !this.#sending.has(waiting));
      if (index < 0) break;
      const [dropped] = this.#backlog.splice(index, 1) as [Backlogged];
      void this.#dropped(
        dropped.item,
        null,
        "The usage backlog is full; the oldest waiting record was dropped.",
      );
    }
    if (this.#closed && !this.#retryTimer) {
      // No retry will come: this record is lost unless the store takes it during close.
      this.#logger.error("Usage was recorded after close and could not be written.", {
        agentId: entry.item.a,
        sessionId: entry.item.s,
      });
    }
    this.#scheduleRetry();
  }

  #scheduleRetry(): void {
    if (this.#retryTimer || this.#closed || this.#waiting() === 0) return;
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = null;
      void this.#retryBacklog().then((ok) => {
        this.#retryDelayMs = ok ? 500 : Math.min(this.#retryDelayMs * 2, 30_000);
        this.#scheduleRetry();
      });
    }, this.#retryDelayMs);
    this.#retryTimer.unref();
  }

  /**
   * Write what waits — the memory backlog, then the spool — in order, in batches; false when
   * the store is still away. One replay at a time: the spool's bookkeeping counts on it.
   */
  #retryBacklog(): Promise<boolean> {
    this.#replaying ??= this.#replay().finally(() => {
      this.#replaying = null;
    });
    return this.#replaying;
  }

  async #replay(): Promise<boolean> {
    while (this.#backlog.length > 0) {
      const batch = this.#backlog.slice(0, this.#options.maxBatch);
      for (const entry of batch) this.#sending.add(entry);
      let results: (SettleResult | ItemFailure)[];
      try {
        results = await this.#runSettle(batch.map((entry) => entry.item));
      } catch {
        return false;
      } finally {
        for (const entry of batch) this.#sending.delete(entry);
      }
      // By identity: entries may have been added (or dropped for room) meanwhile.
      const sent = new Set(batch);
      this.#backlog = this.#backlog.filter((entry) => !sent.has(entry));
      for (const [index, entry] of batch.entries()) {
        await this.#settled(entry.item, results[index], entry.policy);
      }
    }
    if (this.#spool && this.#spool.depth > 0) {
      let lines: SpoolLine[];
      try {
        lines = await this.#spool.readAll();
      } catch (error) {
        this.#logger.error("The cost spool could not be read; the next retry tries again.", {
          directory: this.#spool.directory,
          error: describe(error),
        });
        return false;
      }
      let done = 0;
      let ok = true;
      while (done < lines.length) {
        const batch = lines.slice(done, done + this.#options.maxBatch).map((line) => line.item);
        let results: (SettleResult | ItemFailure)[];
        try {
          results = await this.#runSettle(batch);
        } catch {
          ok = false;
          break;
        }
        for (const [index, item] of batch.entries()) {
          await this.#settled(item, results[index], this.#policies.get(item.a));
        }
        done += batch.length;
      }
      // Written rows are recognized by their usage id if a crash replays them again.
      if (done > 0) await this.#spool.dropFirst(done).catch(() => undefined);
      if (!ok) return false;
    }
    this.#logger.info("The usage backlog was written.", {});
    return true;
  }

  #runReserve(items: ReserveRequest[]): Promise<(ReserveResult | ItemFailure)[]> {
    return this.#send("reserve", items);
  }

  #runSettle(items: SettleItem[]): Promise<(SettleResult | ItemFailure)[]> {
    return this.#send("settle", items);
  }

  /**
   * One call of `gov_cost.<fn>` for a batch. When the database refuses the batch for its data
   * (SQLSTATE classes 22 and 23), the items are sent one by one, so that only the item at
   * fault fails and its batch-mates — other agents' checks — are not denied with it.
   */
  async #send<R>(fn: "reserve" | "settle", items: readonly object[]): Promise<(R | ItemFailure)[]> {
    const call = (batch: readonly object[]) =>
      this.#withRetry(async () => {
        const json = JSON.stringify(batch);
        const rows = await this.#store.query<{ r: R[] }>(
          fn === "reserve"
            ? sql`select gov_cost.reserve(${json}::jsonb) as r`
            : sql`select gov_cost.settle(${json}::jsonb) as r`,
        );
        return rows[0]?.r ?? [];
      });
    try {
      return await call(items);
    } catch (error) {
      if (items.length === 1 || isTransient(error)) throw error;
      const results: (R | ItemFailure)[] = [];
      for (const item of items) {
        try {
          const [result] = await call([item]);
          results.push(result as R);
        } catch (itemError) {
          if (isTransient(itemError)) throw itemError;
          results.push(new ItemFailure(itemError));
        }
      }
      return results;
    }
  }

  async #withRetry<T>(work: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await work();
      } catch (error) {
        if (attempt >= 3 || !isContention(error)) throw error;
      }
    }
  }
}

// ── validation ────────────────────────────────────────────────────────────────────────

// biome-ignore lint/suspicious/noControlCharactersInRegex: matching them is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;

function checkId(field: string, value: unknown, limit: number): string {
  if (typeof value !== "string") {
    throw new InvalidArgumentError(
      field,
      `must be a string, got ${typeOf(value)}.`,
      `Pass ${field} as a non-empty string.`,
    );
  }
  if (value.trim().length === 0) {
    throw new InvalidArgumentError(
      field,
      value.length === 0 ? "must not be empty." : "must not be blank.",
      `Pass a non-empty ${field}.`,
    );
  }
  if (value.length > limit) {
    throw new InvalidArgumentError(
      field,
      `is ${value.length} characters long; the limit is ${limit}.`,
      `Shorten ${field} to at most ${limit} characters.`,
    );
  }
  if (CONTROL.test(value) || !isWellFormed(value)) {
    throw new InvalidArgumentError(
      field,
      "must not contain control or bidirectional-override characters, or half of a character (a lone surrogate).",
      `Pass ${field} as printable text.`,
    );
  }
  return value;
}

function checkIds(agentId: unknown, sessionId: unknown): void {
  checkId("agentId", agentId, BUDGET_LIMITS.agentId);
  if (checkId("sessionId", sessionId, BUDGET_LIMITS.sessionId).startsWith("agent:")) {
    throw new InvalidArgumentError(
      "sessionId",
      'must not start with "agent:", which names the audit chain of an agent\'s events outside sessions.',
      "Use a session id of your own, e.g. a UUID.",
    );
  }
}

function checkTokens(field: string, value: unknown, zeroAllowed: boolean): number {
  if (
    typeof value !== "number" ||
    !Number.isInteger(value) ||
    value < (zeroAllowed ? 0 : 1) ||
    value > COST_LIMITS.tokens
  ) {
    throw new InvalidArgumentError(
      field,
      typeof value === "number" && value < 0
        ? `must not be negative, got ${value}${field === "tokens" ? "; counters only grow" : ""}.`
        : `must be a whole number from ${zeroAllowed ? 0 : 1} to ${COST_LIMITS.tokens}, got ${typeof value === "number" ? value : typeOf(value)}.`,
      `Pass ${field} as a whole number of tokens.`,
    );
  }
  return value;
}

function checkUsd(field: string, value: unknown): bigint {
  if (typeof value !== "number" && typeof value !== "string") {
    throw new InvalidArgumentError(
      field,
      `must be a number or a decimal string of USD, got ${typeOf(value)}.`,
      `Pass ${field} as USD, e.g. 0.003 or "0.003".`,
    );
  }
  const units = decimalToUnits(value, FEMTO_DIGITS);
  if (isDecimalProblem(units)) {
    throw new InvalidArgumentError(
      field,
      `${units.problem}${String(value).trim().startsWith("-") ? " Counters only grow." : ""}`,
      `Pass ${field} as a non-negative amount of USD with at most 15 decimal places.`,
    );
  }
  if (units > BigInt(BUDGET_LIMITS.usd) * 10n ** BigInt(FEMTO_DIGITS)) {
    throw new InvalidArgumentError(
      field,
      `is ${value} USD; the limit is ${BUDGET_LIMITS.usd}.`,
      `Pass a smaller ${field}.`,
    );
  }
  return units;
}

function checkModel(field: string, value: unknown): string {
  const problem = modelIdProblem(value);
  if (problem)
    throw new InvalidArgumentError(
      field,
      problem,
      'Pass the model id as the provider names it, e.g. "gpt-4o".',
    );
  return value as string;
}

function checkReservationId(value: unknown, required: boolean): string | null {
  if (value === undefined || value === null) {
    if (!required) return null;
    throw new InvalidArgumentError(
      "reservationId",
      "is required.",
      "Pass the reservationId that checkOrRaise returned.",
    );
  }
  if (typeof value !== "string" || !UUID.test(value)) {
    throw new InvalidArgumentError(
      "reservationId",
      `must be a reservation id (a UUID), got ${typeof value === "string" ? JSON.stringify(value.slice(0, 64)) : typeOf(value)}.`,
      "Pass the reservationId that checkOrRaise returned.",
    );
  }
  return value.toLowerCase();
}

/**
 * Refuse options that are not a plain object — a `Map`, a class instance or an object whose
 * fields come from its prototype is not read as it looks — and keys a method does not know,
 * so that a typo (`reservation_id`) is not ignored.
 */
function checkOptions(
  options: unknown,
  known: ReadonlySet<string>,
  method: string,
  shape: string,
  example: string,
): asserts options is Record<string, unknown> {
  if (!isPlainObject(options)) {
    throw new InvalidArgumentError(
      "options",
      `must be a plain object ${shape}, got ${typeOf(options)}.`,
      `Pass an object literal, e.g. ${example}.`,
    );
  }
  for (const key of Object.keys(options)) {
    if (!known.has(key)) {
      throw new InvalidArgumentError(
        key,
        `is not a ${method} option.`,
        `Use ${[...known].join(", ")}.`,
      );
    }
  }
}

const COUNT_FIELDS = [
  "inputTokens",
  "outputTokens",
  "cachedInputTokens",
  "cacheWriteTokens",
  "reasoningTokens",
] as const;

/** Each token count given must be a whole number of tokens: `null` is not 0. */
function checkCounts(counts: TokenCounts): void {
  for (const field of COUNT_FIELDS) {
    if (counts[field] !== undefined) checkTokens(field, counts[field], true);
  }
}

function hasCounts(counts: TokenCounts): boolean {
  return (
    counts.inputTokens !== undefined ||
    counts.outputTokens !== undefined ||
    counts.cachedInputTokens !== undefined ||
    counts.cacheWriteTokens !== undefined ||
    counts.reasoningTokens !== undefined
  );
}

function countsOf(counts: TokenCounts): Partial<NormalizedUsage> & { format: "tokens" } {
  return {
    format: "tokens",
    inputTokens: counts.inputTokens ?? 0,
    outputTokens: counts.outputTokens ?? 0,
    cachedInputTokens: counts.cachedInputTokens ?? 0,
    cacheWriteTokens: counts.cacheWriteTokens ?? 0,
    reasoningTokens: counts.reasoningTokens ?? 0,
  };
}

function exactFemto(breakdown: PriceBreakdown): bigint {
  return decimalToUnits(breakdown.exactUsd.total, FEMTO_DIGITS) as bigint;
}

function capsOf(caps: ExactCaps): Partial<ReserveRequest> {
  const out: Partial<ReserveRequest> = {};
  if (caps.perSessionSeconds !== null) out.ss = String(caps.perSessionSeconds);
  if (caps.perSessionUsd !== null) out.su = femtoToUsd(caps.perSessionUsd);
  if (caps.perSessionTokens !== null) out.st = String(caps.perSessionTokens);
  if (caps.perAgentUsdDaily !== null) out.du = femtoToUsd(caps.perAgentUsdDaily);
  if (caps.perAgentTokensDaily !== null) out.dt = String(caps.perAgentTokensDaily);
  return out;
}

function alertOf(policy: BudgetPolicy | undefined): Pick<SettleItem, "alert"> {
  if (!policy?.alert) return {};
  const caps = capsOf(policy.exact);
  const alert: NonNullable<SettleItem["alert"]> = { p: policy.alert.thresholdPercent };
  if (caps.su !== undefined) alert.su = caps.su;
  if (caps.st !== undefined) alert.st = caps.st;
  if (caps.du !== undefined) alert.du = caps.du;
  if (caps.dt !== undefined) alert.dt = caps.dt;
  return { alert };
}

/** `0.500000000000000` → `0.5`. */
function trimDecimal(value: string | undefined): string {
  if (value === undefined) return "0";
  if (!value.includes(".")) return value;
  const trimmed = value.replace(/0+$/, "").replace(/\.$/, "");
  return trimmed === "" ? "0" : trimmed;
}

function describe(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
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
});
