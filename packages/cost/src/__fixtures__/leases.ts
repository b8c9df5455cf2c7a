import { type Store, sql } from "@gov/core";
import { PgDialect } from "drizzle-orm/pg-core";
import { CostModule } from "../module";
import type { CostOptions } from "../options";
import { type CostHarness, testKeyring } from "./index";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A store that counts the budget statements sent through it, and can hold the answer of the next lease. */
export function watchedStore(store: Store) {
  const dialect = new PgDialect();
  const counts = { lease: 0, reserve: 0, record: 0 };
  const state = { delayNextLeaseMs: 0 };
  const wrapped: Store = Object.create(store, {
    query: {
      value: async (query: Parameters<Store["query"]>[0]) => {
        const text = dialect.sqlToQuery(query).sql;
        const isLease = text.includes("gov_cost.lease(");
        if (isLease) counts.lease++;
        if (text.includes("check_and_reserve(")) counts.reserve++;
        if (text.includes("record_usage(")) counts.record++;
        const rows = await store.query(query);
        if (isLease && state.delayNextLeaseMs > 0) {
          const delay = state.delayNextLeaseMs;
          state.delayNextLeaseMs = 0;
          await sleep(delay);
        }
        return rows;
      },
    },
  });
  return { store: wrapped, counts, state };
}

/**
 * Cost modules with budget leases on the harness's database — several make several processes
 * — each on a {@link watchedStore}; `close()` closes them all.
 */
export function leasingModules(harness: () => CostHarness, defaults: CostOptions) {
  const modules: CostModule[] = [];
  return {
    leasing(options: CostOptions = {}) {
      const h = harness();
      const watched = watchedStore(h.store);
      const cost = new CostModule(
        {
          store: watched.store,
          audit: h.audit,
          logger: h.logger,
          halt: h.halt,
          clock: h.clock,
          keyring: testKeyring,
        },
        { sweepIntervalMs: null, spoolDirectory: null, ...defaults, ...options },
      );
      modules.push(cost);
      return { cost, counts: watched.counts, state: watched.state };
    },
    /** Keep `cost` to close it with the others. */
    adopt(cost: CostModule) {
      modules.push(cost);
    },
    async close() {
      for (const cost of modules.splice(0)) await cost.close();
    },
  };
}

/** The session's reserved tokens, as stored. */
export async function reservedTokensOf(
  h: CostHarness,
  agentId: string,
  sessionId: string,
): Promise<number> {
  return Number((await h.sessionRow(agentId, sessionId))?.reserved_tokens ?? 0);
}

/** The lease rows, oldest first. */
export function leaseRowsOf(h: CostHarness) {
  return h.store.query<{ id: string; tokens: string }>(
    sql`select id::text as id, tokens::text as tokens from gov_cost.reservations where lease order by created_at`,
  );
}
