/**
 * `pnpm bench` for @gov/gates:
 * - grant in this process → `waitFor` resolves in another OS process (real Postgres, when
 *   GOVERNANCE_BENCH_DATABASE_URL or GOVERNANCE_TEST_DATABASE_URL is set; a database is
 *   created for the bench and dropped after). The waiter is already asleep when the grant
 *   starts, and its polling fallback is 500 ms away, so what is measured is the whole
 *   decision path: verify the token, read, claim, record (a no-op audit sink here: the audit
 *   module's own latency is in its bench), publish, NOTIFY, the waiter's read, and its
 *   answer on a pipe.
 * - `request()` and `grant()` alone, on Postgres and on PGlite (one process).
 * Results: bench/results/gates.json.
 *
 * GOVERNANCE_BENCH_RUNS (default 200) sets the number of grant → waitFor round trips.
 */
import { type BenchResult, type BenchTarget, reportResults, summarize } from "@gov/bench-kit";
import { ChainKey, Keyring, noopAuditSink, type Store, silentLogger, systemClock } from "@gov/core";
import { forEachBenchEngine } from "@gov/core/testing";
import {
  type ChildLine,
  type GatesChild,
  spawnGatesChild,
} from "../src/__fixtures__/child-process";
import { GatesModule, gatesMigrations } from "../src/index";

const ROUNDS = Number(process.env.GOVERNANCE_BENCH_RUNS ?? 200);
const SECRET = "bench-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
const results: BenchResult[] = [];

function moduleOn(store: Store): GatesModule {
  return new GatesModule({
    store,
    keyring: new Keyring(new ChainKey(SECRET)),
    clock: systemClock,
    logger: silentLogger,
    audit: noopAuditSink,
  });
}

async function answer(child: GatesChild, id: string): Promise<ChildLine> {
  for (;;) {
    const line = await child.next();
    if (line.id === id && line.ok !== undefined) return line;
  }
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Grant here → the other process's waitFor resolves, ROUNDS times. */
async function crossProcess(url: string, store: Store): Promise<void> {
  const gates = moduleOn(store);
  const child = spawnGatesChild(url, SECRET);
  try {
    const ready = await child.next();
    if (ready.event !== "ready") throw new Error(`unexpected ${JSON.stringify(ready)}`);
    const roundTrips: number[] = [];
    const warmup = 20;
    for (let round = 0; round < ROUNDS + warmup; round++) {
      const request = await gates.request("bench.deploy", "bench-agent", { payload: { round } });
      const id = `r${round}`;
      child.send({ id, op: "wait", requestId: request.requestId, timeout: 60_000 });
      const waiting = await child.next();
      if (waiting.event !== "waiting") throw new Error(`unexpected ${JSON.stringify(waiting)}`);
      await pause(20); // the waiter has read `pending` and is asleep
      const started = performance.now();
      await gates.grant(request.token, { reviewerId: "bench-reviewer" });
      const resolved = await answer(child, id);
      const elapsed = performance.now() - started;
      if (!resolved.ok) throw new Error(`the waiter failed: ${JSON.stringify(resolved)}`);
      if (round >= warmup) roundTrips.push(elapsed);
    }
    await child.exit();
    results.push(summarize("postgres.grant-to-waitFor.other-process", "ms", roundTrips));
  } finally {
    child.kill();
    await gates.close();
  }
}

/** request() and grant() latency, one at a time. */
async function calls(name: string, store: Store, rounds: number): Promise<void> {
  const gates = moduleOn(store);
  try {
    const requests: number[] = [];
    const grants: number[] = [];
    for (let round = 0; round < rounds + 50; round++) {
      let started = performance.now();
      const request = await gates.request("bench.deploy", "bench-agent", { payload: { round } });
      const requested = performance.now() - started;
      started = performance.now();
      await gates.grant(request.token, { reviewerId: "bench-reviewer" });
      const granted = performance.now() - started;
      if (round >= 50) {
        requests.push(requested);
        grants.push(granted);
      }
    }
    results.push(summarize(`${name}.request`, "ms", requests));
    results.push(summarize(`${name}.grant`, "ms", grants));
  } finally {
    await gates.close();
  }
}

// Real Postgres (a database created for the bench and dropped after; the other process
// too), then PGlite in a directory, as the default install runs: one process.
await forEachBenchEngine([gatesMigrations], async (engine) => {
  if (engine.name === "postgres") await crossProcess(engine.databaseUrl, engine.store);
  await calls(engine.name, engine.store, engine.name === "postgres" ? 1_000 : 500);
});

const targets: Record<string, BenchTarget> = {
  "postgres.grant-to-waitFor.other-process": { statistic: "median", direction: "max", value: 50 },
};
const met = await reportResults("@gov/gates", results, targets);
if (!met) process.stdout.write("some results missed their targets (see the table)\n");
