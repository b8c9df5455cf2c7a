/**
 * `pnpm bench` for @gov/loop: the latency of `recordCall` (the hot path every tool call
 * takes), in microseconds per call, on the system clock. Results: bench/results/loop.json.
 *
 * Each sample is the mean of a batch of calls (timer resolution is coarser than one call);
 * batches of `BATCH` calls, `SAMPLES` samples per scenario after a warm-up.
 *
 * GOVERNANCE_BENCH_SAMPLES (default 20000) sets the number of samples per scenario.
 */
import { type BenchResult, type BenchTarget, reportResults, summarize } from "@gov/bench-kit";
import { ManualClock, silentLogger } from "@gov/core";
import { LoopModule } from "../src/index";

const SAMPLES = Number(process.env.GOVERNANCE_BENCH_SAMPLES ?? 20_000);
const BATCH = 10;
const AGENT = "bench-agent";
const TOOLS = ["search_web", "read_page", "Summarize", "write_file", "lookup_invoice"];
const SESSIONS = Array.from({ length: 1_000 }, (_, index) => `session-${index}`);

const results: BenchResult[] = [];

/** Time `SAMPLES` batches of `BATCH` calls of `call(i)`; µs per call. */
function measure(name: string, call: (index: number) => void): void {
  let index = 0;
  for (let warm = 0; warm < 50_000; warm++) call(index++);
  const samples = new Array<number>(SAMPLES);
  for (let sample = 0; sample < SAMPLES; sample++) {
    const started = performance.now();
    for (let inBatch = 0; inBatch < BATCH; inBatch++) call(index++);
    samples[sample] = ((performance.now() - started) * 1_000) / BATCH;
  }
  results.push(summarize(name, "µs", samples));
}

// 1. The common case: many sessions, a few tools each, never a loop (the reference's rule).
{
  const loop = new LoopModule({ logger: silentLogger });
  loop.register({ agentId: AGENT, windowSeconds: 60, maxCalls: 1_000, action: "log" });
  measure("recordCall", (index) => {
    loop.recordCall(
      AGENT,
      SESSIONS[index % SESSIONS.length] as string,
      TOOLS[index % TOOLS.length] as string,
    );
  });
  await loop.close();
}

// 2. One hot session and tool, a call every 2 ms on a manual clock: 500 calls in its 1 s
//    window, calls expiring as fast as they come (the deque at its steady size).
{
  const clock = new ManualClock(Date.now());
  const loop = new LoopModule({ clock, logger: silentLogger });
  loop.register({ agentId: AGENT, windowSeconds: 1, maxCalls: 1_000, action: "log" });
  measure("recordCall.hot-session", () => {
    clock.advance(2);
    loop.recordCall(AGENT, "hot", "search_web");
  });
  await loop.close();
}

// 3. No policy: the no-op path (validation and one lookup).
{
  const loop = new LoopModule({ logger: silentLogger });
  measure("recordCall.no-policy", (index) => {
    loop.recordCall(AGENT, SESSIONS[index % SESSIONS.length] as string, "search_web");
  });
  await loop.close();
}

// 4. All rules on: oscillation, and identical calls (hashing the arguments' canonical JSON).
{
  const loop = new LoopModule({ logger: silentLogger });
  loop.register({
    agentId: AGENT,
    maxCalls: 1_000,
    action: "log",
    identicalCalls: { maxCalls: 1_000 },
    oscillation: { minRepetitions: 10, maxPeriod: 5 },
  });
  measure("recordCall.all-rules-with-args", (index) => {
    loop.recordCall(
      AGENT,
      SESSIONS[index % SESSIONS.length] as string,
      TOOLS[index % TOOLS.length] as string,
      { args: { query: "weather in Paris", page: index % 3 } },
    );
  });
  await loop.close();
}

// 5. check(): read-only, a session with five tools.
{
  const loop = new LoopModule({ logger: silentLogger });
  loop.register({ agentId: AGENT, maxCalls: 1_000, action: "log" });
  for (let index = 0; index < 5_000; index++)
    loop.recordCall(AGENT, SESSIONS[index % 10] as string, TOOLS[index % TOOLS.length] as string);
  measure("check", (index) => {
    loop.check(AGENT, SESSIONS[index % 10] as string);
  });
  await loop.close();
}

const targets: Record<string, BenchTarget> = {
  recordCall: { statistic: "median", direction: "max", value: 2 },
  "recordCall.hot-session": { statistic: "median", direction: "max", value: 2 },
};
const met = await reportResults("@gov/loop", results, targets);
if (!met) process.stdout.write("some results missed their targets (see the table)\n");
