import type { AuditSink, Clock, HaltGuard, Logger, Store } from "@gov/core";
import type { AlertDispatcher } from "./alert-dispatch";
import type { UsageBacklog } from "./backlog";
import type { Batcher } from "./batcher";
import type { BudgetPolicy } from "./budget-policy";
import type { LeaseBook } from "./leases";
import type { CostMetrics } from "./models";
import { rateToUsdPerMillion } from "./money";
import type { ParsedCostOptions } from "./options";
import type { PriceBreakdown, PriceTable } from "./price-table";
import type { SettlementsInFlight } from "./settling";
import type { ReserveRequest, ReserveResult, SettleItem, SettleResult } from "./sql";
import type { ProviderUsage } from "./usage";
import { checkModel } from "./validate";

/**
 * What the parts of one cost module share: its context, its validated options, the price
 * table, the registered policies, the counters, and the batchers, backlog and alert
 * dispatcher it writes through. Internal: made by `CostModule`.
 */
export interface CostRuntime {
  readonly store: Store;
  readonly logger: Logger;
  readonly audit: AuditSink;
  readonly halt: HaltGuard;
  readonly clock: Clock;
  readonly options: ParsedCostOptions;
  readonly prices: PriceTable;
  /** The registered policies, by agent id (in this process). */
  readonly policies: Map<string, BudgetPolicy>;
  /** Agents warned that they have no budget policy (once each). */
  readonly warnedUnbudgeted: Set<string>;
  /** Agents warned that a check projected nothing against a cap (once each). */
  readonly warnedUnprojected: Set<string>;
  readonly metrics: CostMetrics;
  readonly reserve: Batcher<ReserveRequest, ReserveResult>;
  readonly settle: Batcher<SettleItem, SettleResult>;
  /** Usage records and releases in flight, waited for by a check they may have refused. */
  readonly settling: SettlementsInFlight;
  /** The budget leases of this process (`lease` option), or null when checks reserve one call each. */
  leases: LeaseBook | null;
  readonly backlog: UsageBacklog;
  readonly alerts: AlertDispatcher;
}

/** Today's UTC day (`YYYY-MM-DD`) on the module's clock. */
export function today(runtime: CostRuntime): string {
  return runtime.clock.now().toISOString().slice(0, 10);
}

/** `usage` priced for `model` from the price table, under the module's unknown-model rule. */
export function priceOf(
  runtime: CostRuntime,
  model: unknown,
  usage: ProviderUsage,
): PriceBreakdown {
  checkModel("model", model);
  return runtime.prices.priceUsage(model as string, usage, {
    strict: runtime.options.strictUnknownModels,
    fallbackUsdPerMillion:
      runtime.options.unknownModelFallbackUsdPerMillion === null
        ? null
        : rateToUsdPerMillion(runtime.options.unknownModelFallbackUsdPerMillion),
  });
}
