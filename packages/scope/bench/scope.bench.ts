/**
 * `pnpm bench` for @gov/scope: the latency of one `scope.check` of an allowed tool with the
 * policy cached, halt check included — with a no-op halt guard, and with a guard stub that
 * reads a halt cache as @gov/presence does (a Map lookup and a freshness check). Each sample
 * is one awaited call, timed on its own. Also, for reference: an allowed API call, a denial
 * (with a no-op audit sink) and `filterTools`. Results: bench/results/scope.json.
 *
 * GOVERNANCE_BENCH_ITERATIONS (default 200000) sets the samples per benchmark.
 */
import { type BenchResult, type BenchTarget, reportResults, summarize } from "@gov/bench-kit";
import {
  AgentHaltedError,
  type HaltGuard,
  noopAuditSink,
  noopHaltGuard,
  type Store,
  silentLogger,
} from "@gov/core";
import { ScopeModule, ScopePolicy, ScopeViolation } from "../src/index";

const ITERATIONS = Number(process.env.GOVERNANCE_BENCH_ITERATIONS ?? 200_000);
const WARMUP = 50_000;

/** The module never touches the store with `persist: false`. */
const noStore = {
  query: async () => [],
  transaction: async () => undefined,
  listen: async () => ({ unsubscribe: async () => {} }),
} as unknown as Store;

/** A halt guard that reads a cache, as presence's `assertNotHalted` does. */
function cacheReadingGuard(): HaltGuard {
  const halted = new Map<string, { haltedBy: string; reason: string }>();
  halted.set("halted-agent", { haltedBy: "operator", reason: "bench" });
  let refreshedAt = performance.now();
  const ttlMs = 5_000;
  return {
    async assertAlive(agentId, context) {
      const now = performance.now();
      if (now - refreshedAt > ttlMs) refreshedAt = now; // where a refresh would be scheduled
      const state = halted.get(agentId);
      if (state !== undefined)
        throw new AgentHaltedError({ agentId, ...state, path: context.path });
    },
  };
}

const policy = new ScopePolicy({
  agentId: "billing-agent",
  allowedTools: Array.from({ length: 50 }, (_, index) => `tool_${index}`).concat("read_invoice"),
  allowedApis: ["GET https://api.stripe.com/v1/*", "POST https://api.stripe.com/v1/refunds"],
  hiddenTools: ["delete_all", "admin_reset"],
});

function moduleWith(halt: HaltGuard): ScopeModule {
  const scope = new ScopeModule(
    { store: noStore, logger: silentLogger, audit: noopAuditSink, halt },
    { persist: false },
  );
  scope.register(policy);
  return scope;
}

/** Microseconds of each of `ITERATIONS` awaited calls, after a warm-up. */
async function sample(run: () => Promise<unknown>, iterations = ITERATIONS): Promise<number[]> {
  for (let index = 0; index < WARMUP; index++) await run();
  const samples = new Array<number>(iterations);
  for (let index = 0; index < iterations; index++) {
    const started = performance.now();
    await run();
    samples[index] = (performance.now() - started) * 1_000;
  }
  return samples;
}

/** The cost of the timer itself, to read the numbers against. */
async function timerFloor(): Promise<number[]> {
  const samples = new Array<number>(ITERATIONS);
  for (let index = 0; index < ITERATIONS; index++) {
    const started = performance.now();
    samples[index] = (performance.now() - started) * 1_000;
  }
  return samples;
}

const results: BenchResult[] = [];
const tool = { tool: "read_invoice" } as const;

results.push(summarize("timer.floor", "µs", await timerFloor()));
{
  const scope = moduleWith(noopHaltGuard);
  results.push(
    summarize(
      "check.allowed-tool.noop-halt",
      "µs",
      await sample(() => scope.check("billing-agent", tool)),
    ),
  );
}
{
  const scope = moduleWith(cacheReadingGuard());
  results.push(
    summarize(
      "check.allowed-tool.cached-halt",
      "µs",
      await sample(() => scope.check("billing-agent", tool)),
    ),
  );
  const api = { api: "GET https://api.stripe.com/v1/invoices/in_123?expand=lines" } as const;
  results.push(
    summarize(
      "check.allowed-api.cached-halt",
      "µs",
      await sample(() => scope.check("billing-agent", api), 50_000),
    ),
  );
  const denied = { tool: "delete_user" } as const;
  results.push(
    summarize(
      "check.denied-tool.noop-audit",
      "µs",
      await sample(
        () =>
          scope.check("billing-agent", denied).catch((error: unknown) => {
            if (!ScopeViolation.isInstance(error)) throw error;
          }),
        50_000,
      ),
    ),
  );
  const tools = [
    "read_invoice",
    { name: "delete_all" },
    { type: "function", function: { name: "tool_1" } },
    { type: "function", function: { name: "admin_reset" } },
    "tool_2",
    "tool_3",
    "tool_4",
    "tool_5",
    "tool_6",
    "tool_7",
  ];
  results.push(
    summarize(
      "filterTools.10-tools",
      "µs",
      await sample(async () => scope.filterTools("billing-agent", tools), 50_000),
    ),
  );
}

const targets: Record<string, BenchTarget> = {
  "check.allowed-tool.noop-halt": { statistic: "median", direction: "max", value: 2 },
  "check.allowed-tool.cached-halt": { statistic: "median", direction: "max", value: 2 },
};
const p99: Record<string, number> = {
  "check.allowed-tool.noop-halt": 10,
  "check.allowed-tool.cached-halt": 10,
};
let met = await reportResults("@gov/scope", results, targets);
for (const [name, limit] of Object.entries(p99)) {
  const result = results.find((candidate) => candidate.name === name);
  const ok = result !== undefined && result.p99 <= limit;
  met &&= ok;
  process.stdout.write(
    `${ok ? "ok  " : "MISS"} ${name} p99 ${result?.p99} µs (target ≤ ${limit} µs)\n`,
  );
}
if (!met) process.stdout.write("some results missed their targets (see above)\n");
