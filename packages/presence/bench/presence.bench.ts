/**
 * `pnpm bench` for @gov/presence:
 * - halt in this process → `assertNotHalted` throws in another OS process (real Postgres,
 *   when GOVERNANCE_BENCH_DATABASE_URL or GOVERNANCE_TEST_DATABASE_URL is set; a database
 *   is created for the bench and dropped after). The other process's cache TTL is an hour,
 *   so what is measured is the NOTIFY path: commit, delivery, cache update, next check.
 * - the cached halt checks: `isHalted` and `assertNotHalted` on an agent that is not halted.
 * Results: bench/results/presence.json.
 *
 * GOVERNANCE_BENCH_RUNS (default 50) sets the number of halt → refusal rounds.
 */

import { randomBytes } from "node:crypto";
import { type BenchResult, type BenchTarget, reportResults, summarize } from "@gov/bench-kit";
import { ChainKey, Keyring, type Store, silentLogger, systemClock } from "@gov/core";
import { forEachBenchEngine } from "@gov/core/testing";
import { spawnHaltChild } from "../src/__fixtures__/child-process";
import { PresenceModule, presenceMigrations } from "../src/index";

const ROUNDS = Number(process.env.GOVERNANCE_BENCH_RUNS ?? 50);
/** A throwaway chain key for this run: halts are signed and verified as in production. */
const SECRET = randomBytes(48).toString("base64url");
const keyring = new Keyring(new ChainKey(SECRET));
const results: BenchResult[] = [];

/** Halt → refusal in another process, then resume → seen again, ROUNDS times. */
async function crossProcess(url: string, store: Store): Promise<void> {
  const presence = new PresenceModule({ store, keyring, clock: systemClock, logger: silentLogger });
  const child = spawnHaltChild(url, "bench-agent", ROUNDS, SECRET);
  try {
    const ready = await child.next();
    if (ready.event !== "ready") throw new Error(`unexpected ${JSON.stringify(ready)}`);
    const haltToRefusal: number[] = [];
    const resumeToSeen: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      let started = performance.now();
      await presence.halt("bench-agent", { haltedBy: "bench", reason: `round ${round}` });
      const halted = await child.next();
      haltToRefusal.push(performance.now() - started);
      if (halted.event !== "halted" || halted.reason !== `round ${round}`)
        throw new Error(`unexpected ${JSON.stringify(halted)}`);
      started = performance.now();
      await presence.resume("bench-agent", { resumedBy: "bench", reason: "next round" });
      const resumed = await child.next();
      resumeToSeen.push(performance.now() - started);
      if (resumed.event !== "resumed") throw new Error(`unexpected ${JSON.stringify(resumed)}`);
    }
    await child.exited();
    results.push(summarize("postgres.halt-to-refusal.other-process", "ms", haltToRefusal));
    results.push(summarize("postgres.resume-to-allowed.other-process", "ms", resumeToSeen));
  } finally {
    child.kill();
    await presence.close();
  }
}

/** Nanoseconds per call of `fn`, in batches. */
function perCall(fn: () => void, batches = 200, perBatch = 10_000): number[] {
  for (let index = 0; index < perBatch * 10; index++) fn(); // warm-up
  const samples: number[] = [];
  for (let batch = 0; batch < batches; batch++) {
    const started = performance.now();
    for (let index = 0; index < perBatch; index++) fn();
    samples.push(((performance.now() - started) * 1e6) / perBatch);
  }
  return samples;
}

async function perAsyncCall(
  fn: () => Promise<void>,
  batches = 200,
  perBatch = 2_000,
): Promise<number[]> {
  for (let index = 0; index < perBatch * 5; index++) await fn();
  const samples: number[] = [];
  for (let batch = 0; batch < batches; batch++) {
    const started = performance.now();
    for (let index = 0; index < perBatch; index++) await fn();
    samples.push(((performance.now() - started) * 1e6) / perBatch);
  }
  return samples;
}

async function cachedReads(name: string, store: Store): Promise<void> {
  const presence = new PresenceModule({ store, keyring, clock: systemClock, logger: silentLogger });
  try {
    await presence.start();
    for (let index = 0; index < 1_000; index++)
      await presence.halt(`halted-${index}`, { haltedBy: "bench", reason: "filler" });
    let sink = 0;
    results.push(
      summarize(
        `${name}.isHalted.cached`,
        "ns",
        perCall(() => {
          if (presence.isHalted("running-agent")) sink++;
        }),
      ),
    );
    results.push(
      summarize(
        `${name}.assertNotHalted.cached-not-halted`,
        "ns",
        await perAsyncCall(() =>
          presence.assertNotHalted("running-agent", { path: "bench.check" }),
        ),
      ),
    );
    if (sink !== 0) throw new Error("running-agent was never halted");
  } finally {
    await presence.close();
  }
}

// Real Postgres (a database created for the bench and dropped after; the other process
// too), then PGlite in a directory, as the default install runs: the cached reads only.
await forEachBenchEngine([presenceMigrations], async (engine) => {
  if (engine.name === "postgres") await crossProcess(engine.databaseUrl, engine.store);
  await cachedReads(engine.name, engine.store);
});

const targets: Record<string, BenchTarget> = {
  "postgres.halt-to-refusal.other-process": { statistic: "median", direction: "max", value: 100 },
  "postgres.isHalted.cached": { statistic: "median", direction: "max", value: 1_000 },
  "pglite.isHalted.cached": { statistic: "median", direction: "max", value: 1_000 },
};
const met = await reportResults("@gov/presence", results, targets);
if (!met) process.stdout.write("some results missed their targets (see the table)\n");
