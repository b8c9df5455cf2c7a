/**
 * `pnpm bench` for @gov/wrappers: the latency a wrapper adds to a model call. The real `openai`
 * client calls a loopback server of ours, unwrapped and wrapped, alternately in the same run
 * (so that both see the same machine), non-streaming and streaming; the wrapped client is
 * governed by the real modules — presence (halt), scope (model and tools), cost (a reservation
 * before the call, the usage settled after it), the audit chain and the coverage registry —
 * on real Postgres (GOVERNANCE_BENCH_DATABASE_URL or GOVERNANCE_TEST_DATABASE_URL) and on
 * PGlite. The cost module runs with budget leases (`lease: {}`: most checks are admitted
 * without a round trip); GOVERNANCE_BENCH_LEASE=0 measures one reservation per call. The added latency is the difference of the medians. Results:
 * bench/results/wrappers.json.
 *
 * GOVERNANCE_BENCH_SAMPLES (default 2000) sets the calls of each kind.
 */
import { auditMigrations } from "@gov/audit";
import { type BenchResult, type BenchTarget, reportResults, summarize } from "@gov/bench-kit";
import type { Store } from "@gov/core";
import { forEachBenchEngine } from "@gov/core/testing";
import { type CostModule, costMigrations } from "@gov/cost";
import { presenceMigrations } from "@gov/presence";
import { scopeMigrations } from "@gov/scope";
import OpenAI from "openai";
import { coverageMigrations } from "../src/index";
import { wrapOpenAI } from "../src/openai/index";
import { chatChunks, chatCompletion, startOpenAIServer } from "../src/testing/index";
import { addedRow, benchModules } from "./modules";

const SAMPLES = Number(process.env.GOVERNANCE_BENCH_SAMPLES ?? 2_000);
/** Budget leases on (the cost module's `lease` option), unless GOVERNANCE_BENCH_LEASE=0. */
const LEASE = process.env.GOVERNANCE_BENCH_LEASE !== "0";
const AGENT = "bench-agent";
const results: BenchResult[] = [];
const server = await startOpenAIServer();
server.reply = (request) =>
  request.body.stream === true ? { sse: chatChunks(request.body) } : { json: chatCompletion() };
const BODY = {
  model: "gpt-4o",
  messages: [{ role: "user" as const, content: "What is the balance of invoice INV-42?" }],
  max_tokens: 256,
};

async function bench(name: string, store: Store) {
  const modules = await benchModules(store, {
    cost: { sweepIntervalMs: null, lease: LEASE ? {} : null },
    coverage: true,
  });
  const { audit, presence, scope, coverage } = modules;
  const cost = modules.cost as CostModule;
  try {
    scope.register({ agentId: AGENT, allowedTools: ["lookup_invoice"], allowedModels: ["gpt-4o"] });
    cost.register({ agentId: AGENT, perSessionUsd: 1_000_000 });
    const client = () => new OpenAI({ apiKey: "sk-bench", baseURL: server.baseURL, maxRetries: 0 });
    const plain = client();
    const governed = wrapOpenAI(client(), {
      governance: { halt: presence, scope, cost, audit, ...(coverage ? { coverage } : {}) },
      agentId: AGENT,
      sessionId: `bench-${name}`,
    });
    const call = (openai: OpenAI) => openai.chat.completions.create(BODY);
    const stream = async (openai: OpenAI) => {
      const chunks = await openai.chat.completions.create({ ...BODY, stream: true });
      for await (const _ of chunks) {
        // read to the end
      }
    };
    for (const [kind, run] of [
      ["create", call],
      ["stream", stream],
    ] as const) {
      // Warm up the pool, the plan cache and the JIT.
      for (let index = 0; index < 200; index++) {
        await run(plain);
        await run(governed);
      }
      const unwrapped: number[] = [];
      const wrapped: number[] = [];
      for (let index = 0; index < SAMPLES; index++) {
        for (const [openai, into] of index % 2 === 0
          ? ([
              [plain, unwrapped],
              [governed, wrapped],
            ] as const)
          : ([
              [governed, wrapped],
              [plain, unwrapped],
            ] as const)) {
          const start = performance.now();
          await run(openai);
          into.push(performance.now() - start);
        }
      }
      const plainResult = summarize(`${name}.${kind}.unwrapped`, "ms", unwrapped);
      const wrappedResult = summarize(`${name}.${kind}.wrapped`, "ms", wrapped);
      results.push(
        plainResult,
        wrappedResult,
        addedRow(`${name}.${kind}.added`, plainResult, wrappedResult),
      );
    }
  } finally {
    await modules.close();
  }
}

try {
  await forEachBenchEngine(
    [auditMigrations, presenceMigrations, scopeMigrations, costMigrations, coverageMigrations],
    (engine) => bench(engine.name, engine.store),
    { postgresPool: { max: 10 } },
  );
} finally {
  await server.close();
}

const targets: Record<string, BenchTarget> = {
  "postgres.create.added": { statistic: "median", direction: "max", value: 1 },
  "postgres.stream.added": { statistic: "median", direction: "max", value: 1 },
};
const met = await reportResults("@gov/wrappers", results, targets);
if (!met) process.stdout.write("some results missed their targets (see the table)\n");
