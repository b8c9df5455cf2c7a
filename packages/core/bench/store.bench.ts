/**
 * `pnpm bench` for @gov/core: store cold starts, and how long the host's event loop can be
 * held while the embedded database works. Results: bench/results/core.json.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { type BenchResult, type BenchTarget, reportResults, summarize } from "@gov/bench-kit";
import { createStore, ensurePgliteTemplate, silentLogger, sql } from "../src/index";
import { extractTar } from "../src/pglite-archive.js";
import { createBenchDatabase } from "../src/testing/index";

const RUNS = Number(process.env.GOVERNANCE_BENCH_RUNS ?? 5);
const child = fileURLToPath(new URL("./cold-start-child.mjs", import.meta.url));

function coldStart(databaseUrl: string): number {
  const output = execFileSync(process.execPath, [child, databaseUrl], { encoding: "utf8" });
  return Number(output.trim());
}

const results: BenchResult[] = [];

// 1. First start on PGlite: a new directory (template unpacked, migrations applied).
// 2. Reopen: the same directory again.
{
  const first: number[] = [];
  const reopen: number[] = [];
  for (let run = 0; run < RUNS; run++) {
    const home = mkdtempSync(join(tmpdir(), "gov-bench-"));
    try {
      first.push(coldStart(home));
      reopen.push(coldStart(home));
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  }
  results.push(summarize("pglite.first-start", "ms", first));
  results.push(summarize("pglite.reopen", "ms", reopen));
}

// 2b. What the disk costs: unpacking the template alone (about 1,000 files) into a new
//     directory. On a throttled virtual disk this is most of the first start.
{
  const template = await ensurePgliteTemplate();
  if (template) {
    const archive = readFileSync(template);
    const samples: number[] = [];
    for (let run = 0; run < RUNS; run++) {
      const home = mkdtempSync(join(tmpdir(), "gov-bench-"));
      try {
        const started = performance.now();
        extractTar(archive, join(home, "pgdata"));
        samples.push(performance.now() - started);
      } finally {
        rmSync(home, { recursive: true, force: true });
      }
    }
    results.push(summarize("pglite.template-unpack", "ms", samples));
  }
}

// 3. Cold start on a real Postgres (a database created for the bench, migrated on the first run).
const database = await createBenchDatabase([]);
if (database) {
  try {
    coldStart(database.databaseUrl);
    const samples = Array.from({ length: RUNS }, () => coldStart(database.databaseUrl));
    results.push(summarize("postgres.cold-start", "ms", samples));
  } finally {
    await database.dispose();
  }
} else {
  process.stdout.write("GOVERNANCE_TEST_DATABASE_URL is not set: postgres.cold-start SKIPPED\n");
}

// 4. The longest stall of the host's event loop while 5,000 rows are inserted, one awaited
//    insert after another, into an embedded database in a directory.
{
  const stalls: number[] = [];
  const rates: number[] = [];
  for (let run = 0; run < RUNS; run++) {
    const home = mkdtempSync(join(tmpdir(), "gov-bench-"));
    const store = await createStore({ databaseUrl: home, logger: silentLogger });
    try {
      await store.query(
        sql`create table rows (id int primary key, agent text not null, body jsonb not null)`,
      );
      const histogram = monitorEventLoopDelay({ resolution: 1 });
      histogram.enable();
      const started = performance.now();
      for (let id = 0; id < 5_000; id++) {
        await store.query(
          sql`insert into rows values (${id}, ${"billing-agent"}, ${JSON.stringify({ step: id, note: "x".repeat(64) })})`,
        );
      }
      const elapsed = performance.now() - started;
      histogram.disable();
      stalls.push(histogram.max / 1e6);
      rates.push(5_000 / (elapsed / 1_000));
    } finally {
      await store.close();
      rmSync(home, { recursive: true, force: true });
    }
  }
  results.push(summarize("pglite.event-loop-stall-5000-inserts", "ms", stalls));
  results.push(summarize("pglite.sequential-inserts", "rows/s", rates));
}

const targets: Record<string, BenchTarget> = {
  "pglite.first-start": { statistic: "median", direction: "max", value: 1_500 },
  "pglite.reopen": { statistic: "median", direction: "max", value: 1_000 },
  "pglite.event-loop-stall-5000-inserts": { statistic: "max", direction: "max", value: 10 },
};
const met = await reportResults("@gov/core", results, targets);
if (!met) process.stdout.write("some results missed their targets (see the table)\n");
