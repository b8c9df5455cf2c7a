/**
 * What the wrappers' benches share: the governance modules started on a bench store (audit,
 * presence, scope, and optionally cost and the coverage registry), closed in reverse order,
 * and the "added" row of a governed result against its plain one.
 */
import { AuditModule } from "@gov/audit";
import type { BenchResult } from "@gov/bench-kit";
import { ChainKey, Keyring, type Store, silentLogger, systemClock } from "@gov/core";
import { CostModule, type CostOptions } from "@gov/cost";
import { PresenceModule } from "@gov/presence";
import { ScopeModule } from "@gov/scope";
import { CoverageRegistry } from "../src/index";

/** The modules of a bench run; `close()` closes what was started, last first. */
export async function benchModules(
  store: Store,
  options: { cost?: CostOptions; coverage?: boolean } = {},
) {
  const keyring = new Keyring(new ChainKey("wrappers-bench-secret-0123456789-abcdefghijklmnop"));
  const base = { store, keyring, clock: systemClock, logger: silentLogger };
  const started: { close(): Promise<void> }[] = [];
  const audit = new AuditModule(base, { spoolDirectory: null });
  await audit.start();
  started.push(audit);
  const context = { ...base, audit };
  const presence = new PresenceModule(context);
  await presence.start();
  started.push(presence);
  const scope = new ScopeModule({ ...context, halt: presence });
  await scope.start();
  started.push(scope);
  let cost: CostModule | null = null;
  if (options.cost !== undefined) {
    cost = new CostModule({ ...context, halt: presence }, options.cost);
    await cost.start();
    started.push(cost);
  }
  let coverage: CoverageRegistry | null = null;
  if (options.coverage) {
    coverage = new CoverageRegistry(base, { warnOnNoWrappers: false });
    await coverage.start();
    started.push(coverage);
  }
  return {
    audit,
    presence,
    scope,
    cost,
    coverage,
    async close() {
      for (const module of started.reverse()) await module.close();
    },
  };
}

/** The latency governance adds: the difference of the medians (and of the p99s). */
export function addedRow(name: string, plain: BenchResult, governed: BenchResult): BenchResult {
  return {
    name,
    unit: plain.unit,
    median: Math.round((governed.median - plain.median) * 1000) / 1000,
    p99: Math.round((governed.p99 - plain.p99) * 1000) / 1000,
    min: Number.NaN,
    max: Number.NaN,
    n: governed.n,
  };
}
