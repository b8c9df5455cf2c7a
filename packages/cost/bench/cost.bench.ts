/**
 * `pnpm bench` for @gov/cost: `checkOrRaise` including its reservation — the latency of one
 * awaited check at a light load (one caller), and the sustained rate of checks on one hot
 * agent (64 concurrent callers, each in its own session, so that every check also takes the
 * agent's daily row) — plus, for reference, a full check → trackUsage cycle. On real
 * Postgres (GOVERNANCE_BENCH_DATABASE_URL or GOVERNANCE_TEST_DATABASE_URL) and on PGlite.
 * Results: bench/results/cost.json.
 *
 * GOVERNANCE_BENCH_RUNS (default 5) sets the runs of each throughput benchmark,
 * GOVERNANCE_BENCH_SECONDS (default 5) their length.
 */
import { type BenchResult, type BenchTarget, reportResults, summarize } from "@gov/bench-kit";
import { noopAuditSink, noopHaltGuard, type Store, silentLogger } from "@gov/core";
import { forEachBenchEngine } from "@gov/core/testing";
import { CostModule, costMigrations } from "../src/index";

const RUNS = Number(process.env.GOVERNANCE_BENCH_RUNS ?? 5);
const SECONDS = Number(process.env.GOVERNANCE_BENCH_SECONDS ?? 5);
const results: BenchResult[] = [];

/** Generous caps of every kind, so that every check evaluates all five and none is refused. */
const POLICY = {
  agentId: "hot-agent",
  perSessionUsd: 1_000_000,
  perSessionTokens: 1_000_000_000_000,
  perAgentUsdDaily: 1_000_000_000,
  perAgentTokensDaily: 1_000_000_000_000_000,
  perSessionSeconds: 86_400,
};
const CHECK = { model: "gpt-4o", inputTokens: 500, maxTokens: 256 };

function moduleOn(store: Store): CostModule {
  const cost = new CostModule(
    { store, logger: silentLogger, audit: noopAuditSink, halt: noopHaltGuard },
    { sweepIntervalMs: null },
  );
  cost.register(POLICY);
  return cost;
}

/** Checks per second of `callers` concurrent loops for `SECONDS`. */
async function sustained(
  cost: CostModule,
  callers: number,
  step: (caller: number) => Promise<unknown>,
): Promise<number> {
  let done = 0;
  const deadline = performance.now() + SECONDS * 1000;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: callers }, async (_, caller) => {
      while (performance.now() < deadline) {
        await step(caller);
        done++;
      }
    }),
  );
  void cost;
  return done / ((performance.now() - started) / 1000);
}

async function bench(name: string, store: Store, latencySamples: number): Promise<void> {
  const cost = moduleOn(store);
  try {
    // Warm up the pool, the plan cache and the JIT.
    for (let index = 0; index < 200; index++) await cost.checkOrRaise("hot-agent", "warm", CHECK);

    const latencies: number[] = [];
    for (let index = 0; index < latencySamples; index++) {
      const start = performance.now();
      await cost.checkOrRaise("hot-agent", "latency-session", CHECK);
      latencies.push(performance.now() - start);
    }
    results.push(summarize(`${name}.check-or-raise.latency.1-caller`, "ms", latencies));

    const hot: number[] = [];
    for (let run = 0; run < RUNS; run++) {
      hot.push(
        await sustained(cost, 64, (caller) =>
          cost.checkOrRaise("hot-agent", `run-${run}-session-${caller}`, CHECK),
        ),
      );
    }
    results.push(summarize(`${name}.check-or-raise.hot-agent.64-callers`, "checks/s", hot));

    const cycle: number[] = [];
    for (let run = 0; run < RUNS; run++) {
      cycle.push(
        await sustained(cost, 64, async (caller) => {
          const session = `cycle-${run}-session-${caller}`;
          const reservation = await cost.checkOrRaise("hot-agent", session, CHECK);
          await cost.trackUsage("hot-agent", session, {
            model: "gpt-4o",
            usage: { prompt_tokens: 500, completion_tokens: 120 },
            reservationId: reservation.reservationId,
          });
        }),
      );
    }
    results.push(
      summarize(`${name}.check-then-track-usage.hot-agent.64-callers`, "cycles/s", cycle),
    );
  } finally {
    await cost.close();
  }
}

// Real Postgres (a database created for the bench and dropped after), then PGlite in a
// directory, as the default install runs.
await forEachBenchEngine(
  [costMigrations],
  (engine) => bench(engine.name, engine.store, engine.name === "postgres" ? 5_000 : 2_000),
  { postgresPool: { max: 10 } },
);

const targets: Record<string, BenchTarget> = {
  "postgres.check-or-raise.latency.1-caller": { statistic: "median", direction: "max", value: 1 },
  "postgres.check-or-raise.hot-agent.64-callers": {
    statistic: "median",
    direction: "min",
    value: 2_000,
  },
};
const met = await reportResults("@gov/cost", results, targets);
if (!met) process.stdout.write("some results missed their targets (see the table)\n");
