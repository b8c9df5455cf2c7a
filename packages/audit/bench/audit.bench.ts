/**
 * `pnpm bench` for @gov/audit: append throughput (many sessions; one hot session), log()
 * latency at a light load, and verification speed — on real Postgres (when
 * GOVERNANCE_BENCH_DATABASE_URL or GOVERNANCE_TEST_DATABASE_URL is set) and on PGlite.
 * Results: bench/results/audit.json.
 *
 * GOVERNANCE_BENCH_RUNS (default 5) sets the number of runs of each throughput benchmark.
 */
import { type BenchResult, type BenchTarget, reportResults, summarize } from "@gov/bench-kit";
import { ChainKey, Keyring, type Store, silentLogger, systemClock } from "@gov/core";
import { forEachBenchEngine } from "@gov/core/testing";
import { AuditModule, auditMigrations } from "../src/index";

const RUNS = Number(process.env.GOVERNANCE_BENCH_RUNS ?? 5);
const SECRET = "bench-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
const results: BenchResult[] = [];

interface Engine {
  name: "postgres" | "pglite";
  store: Store;
  /** Events in the chain that verification reads. */
  verifyEvents: number;
}

function moduleOn(store: Store): AuditModule {
  return new AuditModule(
    { store, keyring: new Keyring(new ChainKey(SECRET)), clock: systemClock, logger: silentLogger },
    { spoolDirectory: null },
  );
}

/** `writers` concurrent loggers, each logging `perWriter` events into `sessionOf(writer)`. */
async function load(
  audit: AuditModule,
  writers: number,
  perWriter: number,
  sessionOf: (writer: number) => string,
): Promise<number> {
  const started = performance.now();
  await Promise.all(
    Array.from({ length: writers }, async (_, writer) => {
      for (let index = 0; index < perWriter; index++) {
        const record = await audit.log({
          agentId: `agent-${writer % 16}`,
          kind: "tool.call",
          sessionId: sessionOf(writer),
          model: "gpt-4o-mini",
          metadata: { writer, index, tool: "lookup_invoice", prompt_tokens: 150 },
        });
        if (record.status !== "stored") throw new Error(`an event was ${record.status}`);
      }
    }),
  );
  const seconds = (performance.now() - started) / 1_000;
  return (writers * perWriter) / seconds;
}

async function bench(engine: Engine): Promise<void> {
  const name = engine.name;
  const audit = moduleOn(engine.store);
  try {
    // Warm-up: connections, plans, JIT.
    await load(audit, 8, 200, (writer) => `warmup-${writer}`);

    // log() latency at a light load: one writer, one event at a time.
    const latencies: number[] = [];
    for (let index = 0; index < 2_000; index++) {
      const started = performance.now();
      await audit.log({
        agentId: "agent-1",
        kind: "llm.call",
        sessionId: "latency",
        metadata: { index },
      });
      latencies.push(performance.now() - started);
    }
    results.push(summarize(`${name}.log-latency.1-writer`, "ms", latencies));

    // 64 concurrent sessions, 8 writers each (512 events in flight, each writer awaiting its
    // own): the load the append path is built for, where group commit has work to share.
    const manySessions: number[] = [];
    for (let run = 0; run < RUNS; run++) {
      manySessions.push(await load(audit, 512, 50, (writer) => `many-${run}-${writer % 64}`));
    }
    results.push(summarize(`${name}.append.64-sessions-8-writers-each`, "events/s", manySessions));

    // 64 concurrent sessions, one writer each (64 events in flight): bounded by how long
    // one commit takes, since each writer waits for its event to be durable.
    const oneWriterEach: number[] = [];
    for (let run = 0; run < RUNS; run++) {
      oneWriterEach.push(await load(audit, 64, 200, (writer) => `single-${run}-${writer}`));
    }
    results.push(summarize(`${name}.append.64-sessions-1-writer-each`, "events/s", oneWriterEach));

    // One hot session, 8 concurrent writers.
    const hot: number[] = [];
    for (let run = 0; run < RUNS; run++) {
      hot.push(await load(audit, 8, 1_000, () => `hot-${run}`));
    }
    results.push(summarize(`${name}.append.hot-session-8-writers`, "events/s", hot));

    // verifyChain reading one long session from the database.
    const filled = performance.now();
    await load(audit, 16, engine.verifyEvents / 16, () => "long");
    process.stdout.write(
      `${name}: wrote the ${engine.verifyEvents}-event session in ${((performance.now() - filled) / 1_000).toFixed(1)} s\n`,
    );
    const verify: number[] = [];
    for (let run = 0; run < RUNS; run++) {
      const started = performance.now();
      await audit.verifyChain({ sessionId: "long" });
      verify.push(engine.verifyEvents / ((performance.now() - started) / 1_000));
    }
    results.push(
      summarize(`${name}.verify-chain.${engine.verifyEvents / 1_000}k-events`, "events/s", verify),
    );
  } finally {
    await audit.close();
  }
}

// Real Postgres (a database created for the bench and dropped after), then PGlite in a
// directory, as the default install runs.
await forEachBenchEngine([auditMigrations], (engine) =>
  bench({ name: engine.name, store: engine.store, verifyEvents: 100_000 }),
);

const targets: Record<string, BenchTarget> = {
  "postgres.append.64-sessions-8-writers-each": {
    statistic: "median",
    direction: "min",
    value: 15_000,
  },
  "postgres.append.hot-session-8-writers": { statistic: "median", direction: "min", value: 5_000 },
  "postgres.verify-chain.100k-events": { statistic: "median", direction: "min", value: 60_000 },
};
const met = await reportResults("@gov/audit", results, targets);
if (!met) process.stdout.write("some results missed their targets (see the table)\n");
