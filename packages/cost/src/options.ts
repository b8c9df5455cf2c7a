/**
 * The cost module's options: the {@link CostOptions} a caller passes, and how they are read
 * (core's `parseOptions`: unknown keys refused with a "did you mean", every issue named).
 */
import { ConfigError, parseOptions } from "@gov/core";
import { z } from "zod";
import { COST_LIMITS, rateSchema } from "./models";
import { PriceTable } from "./price-table";

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
   * never reported), in milliseconds: 1 s to 1 day. @default 900000 (15 minutes)
   */
  reservationTtlMs?: number;
  /**
   * @deprecated use `reservationTtlMs` (the same time in milliseconds). Whole seconds, 1 to
   * 86400; giving both is refused.
   */
  reservationTtlSeconds?: number;
  /** How often expired reservations are released; `null` turns the sweep off. @default 60000 */
  sweepIntervalMs?: number | null;
  /** Milliseconds each alert webhook attempt may take. @default 5000 */
  alertTimeoutMs?: number;
  /** Attempts per alert webhook (first plus retries, with backoff). @default 3 */
  alertAttempts?: number;
  /** Most checks (or usage records) sent in one round trip. @default 256 */
  maxBatchSize?: number;
  /** @deprecated use `maxBatchSize` (the same number); giving both is refused. */
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
  /**
   * Budget leases, for agents that make many calls per session: a check that finds no room in
   * the session's lease takes a new one — the worst case of `calls` calls like it, checked
   * against every cap and reserved in one round trip — and the checks that follow are
   * admitted in it locally, without a round trip, until it has no room left. Each call's usage
   * releases its part of the lease; what is left is released after `idleMs` without a call, on
   * a new day or policy, and at `close()` (or by the sweep, when the process died).
   *
   * The caps hold across processes as without leases (a lease is a reservation like any
   * other), but a lease holds budget other processes cannot use until it ends: near a cap,
   * where no lease fits, checks reserve one call at a time again. `null`: one reservation, and
   * one round trip, per check. @default null
   */
  lease?: { calls?: number; idleMs?: number } | null;
}

/** Renamed options: the current name and its deprecated form (kept: both are in the README). */
const DEPRECATED = [
  ["reservationTtlMs", "reservationTtlSeconds"],
  ["maxBatchSize", "maxBatch"],
] as const;

const optionsSchema = z
  .strictObject({
    failOpen: z.boolean().default(false),
    defaultMaxTokens: z.int().min(1).max(COST_LIMITS.tokens).nullable().default(null),
    strictUnknownModels: z.boolean().default(true),
    unknownModelFallbackUsdPerMillion: rateSchema.nullable().default(null),
    prices: z.instanceof(PriceTable).optional(),
    reservationTtlMs: z.int().min(1_000).max(86_400_000).optional(),
    reservationTtlSeconds: z.int().min(1).max(86_400).optional(),
    sweepIntervalMs: z.int().min(100).max(86_400_000).nullable().default(60_000),
    alertTimeoutMs: z.int().min(100).max(60_000).default(5_000),
    alertAttempts: z.int().min(1).max(10).default(3),
    maxBatchSize: z.int().min(1).max(10_000).optional(),
    maxBatch: z.int().min(1).max(10_000).optional(),
    maxBacklog: z.int().min(0).max(10_000_000).default(100_000),
    spoolDirectory: z.string().min(1).nullable().optional(),
    spoolAdoptHosts: z.array(z.unknown()).optional(),
    lease: z
      .strictObject({
        calls: z.int().min(2).max(1_000).default(16),
        idleMs: z.int().min(10).max(600_000).default(1_000),
      })
      .nullable()
      .default(null),
  })
  .superRefine((options, context) => {
    for (const [current, old] of DEPRECATED) {
      if (options[current] !== undefined && options[old] !== undefined) {
        context.addIssue({
          code: "custom",
          path: [old],
          message: `cannot be given with ${current} (it is its deprecated form).`,
        });
      }
    }
  })
  .transform(({ reservationTtlSeconds, maxBatch, ...options }) => ({
    ...options,
    reservationTtlMs:
      options.reservationTtlMs ??
      (reservationTtlSeconds === undefined ? 900_000 : reservationTtlSeconds * 1_000),
    maxBatchSize: options.maxBatchSize ?? maxBatch ?? 256,
  }));

/** The cost module's options once read: defaults applied, deprecated names folded in. */
export type ParsedCostOptions = z.output<typeof optionsSchema>;

const OPTION_FIXES: Record<string, string> = {
  failOpen: "Use true (availability over safety) or false (deny when the store is unreachable).",
  defaultMaxTokens: "Use a whole number of tokens ≥ 1, or null.",
  strictUnknownModels: "Use true or false.",
  unknownModelFallbackUsdPerMillion: "Use a positive rate in USD per million tokens, or null.",
  prices: "Pass a PriceTable (new PriceTable()), or leave it out for the bundled prices.",
  reservationTtlMs: "Use whole milliseconds from 1000 to 86400000.",
  reservationTtlSeconds: "Use reservationTtlMs (milliseconds from 1000 to 86400000) instead.",
  sweepIntervalMs: "Use milliseconds from 100 to 86400000, or null to turn the sweep off.",
  alertTimeoutMs: "Use milliseconds from 100 to 60000.",
  alertAttempts: "Use a whole number from 1 to 10.",
  maxBatchSize: "Use a whole number from 1 to 10000.",
  maxBatch: "Use maxBatchSize (a whole number from 1 to 10000) instead.",
  maxBacklog: "Use a whole number from 0 to 10000000.",
  spoolDirectory: "Use a writable directory path, or null to keep unwritten usage in memory only.",
  spoolAdoptHosts: 'Use an array of host names that are gone, e.g. ["old-container-1"].',
  lease:
    "Use { calls, idleMs } (calls from 2 to 1000, idleMs from 10 to 600000, both optional), or null for one reservation per check.",
  "lease.calls": "Use a whole number of calls from 2 to 1000.",
  "lease.idleMs": "Use whole milliseconds from 10 to 600000.",
};

/**
 * Read the cost module's options.
 *
 * @throws {InvalidArgumentError} an unknown option (with a "did you mean"), a value out of
 *   range, or a renamed option given under both its names.
 * @throws {ConfigError} `strictUnknownModels: false` without a positive fallback rate.
 */
export function parseCostOptions(options: unknown): ParsedCostOptions {
  const data = parseOptions(optionsSchema, options ?? {}, { fixes: OPTION_FIXES });
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
  return data;
}
