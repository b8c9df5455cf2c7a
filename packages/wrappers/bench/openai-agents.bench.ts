/**
 * `pnpm bench` for `@gov/wrappers/openai-agents`: the latency `governAgent` adds to one tool call
 * in a run. The real `@openai/agents` Runner runs an agent whose model (the real `openai` client,
 * not governed in either case) calls a loopback server of ours: the model calls one tool, the
 * tool runs, the model answers. The same agent, ungoverned and governed, runs alternately in the
 * same process; the governed one passes its guardrails — the halt before the run and before its
 * output, and around the tool: halt, scope, the loop count, `tool.call` and `tool.result` in the
 * audit chain — with the real modules on real Postgres (GOVERNANCE_BENCH_DATABASE_URL or
 * GOVERNANCE_TEST_DATABASE_URL) and on PGlite. The added latency is the difference of the
 * medians; a third agent, governed without the audit chain, shows what the checks cost apart
 * from its writes. The model call's own governance (`client`) is `wrappers.bench.ts`'s.
 * Results (at the repository root): bench/results/wrappers-openai-agents.json.
 *
 * GOVERNANCE_BENCH_SAMPLES (default 1000) sets the runs of each kind.
 */
import { auditMigrations } from "@gov/audit";
import { type BenchResult, type BenchTarget, reportResults, summarize } from "@gov/bench-kit";
import { type Store, silentLogger } from "@gov/core";
import { forEachBenchEngine } from "@gov/core/testing";
import { LoopModule } from "@gov/loop";
import { presenceMigrations } from "@gov/presence";
import { scopeMigrations } from "@gov/scope";
import { Agent, OpenAIResponsesModel, Runner, setTracingDisabled, tool } from "@openai/agents";
import OpenAI from "openai";
import { governAgent } from "../src/openai-agents/index";
import { response, startOpenAIServer } from "../src/testing/index";
import { addedRow, benchModules } from "./modules";

const SAMPLES = Number(process.env.GOVERNANCE_BENCH_SAMPLES ?? 1_000);
const AGENT = "bench-agent";
const results: BenchResult[] = [];
setTracingDisabled(true);

const server = await startOpenAIServer();
// A call of lookup_invoice, then (once its output is in the input) the answer.
const toolCall = response({ toolCalls: ["lookup_invoice"] });
toolCall.output = (toolCall.output as Record<string, unknown>[])
  .slice(1)
  .map((item) => ({ ...item, arguments: JSON.stringify({ id: "INV-42" }) }));
const answer = response();
server.reply = (request) => {
  const input = Array.isArray(request.body.input)
    ? (request.body.input as { type?: string }[])
    : [];
  return { json: input.some((item) => item.type === "function_call_output") ? answer : toolCall };
};

const lookupInvoice = tool({
  name: "lookup_invoice",
  description: "Look an invoice up",
  parameters: {
    type: "object",
    properties: { id: { type: "string" } },
    required: ["id"],
    additionalProperties: false,
  },
  strict: true,
  execute: async () => "INV-42: 120 EUR, unpaid",
});
const plain = new Agent({
  name: "Billing",
  model: new OpenAIResponsesModel(
    new OpenAI({ apiKey: "sk-bench", baseURL: server.baseURL, maxRetries: 0 }),
    "gpt-4o",
  ),
  tools: [lookupInvoice],
});
const runner = new Runner({ tracingDisabled: true });

async function bench(name: string, store: Store) {
  const modules = await benchModules(store);
  const { audit, presence, scope } = modules;
  const loop = new LoopModule({ audit, logger: silentLogger });
  try {
    scope.register({ agentId: AGENT, allowedTools: ["lookup_invoice"], allowedModels: ["gpt-4o"] });
    loop.register({ agentId: AGENT, windowSeconds: 1, maxCalls: 1_000 });
    const governed = governAgent(plain, {
      governance: { halt: presence, scope, loop, audit, logger: silentLogger },
      agentId: AGENT,
      sessionId: `bench-${name}`,
    });
    // The same guardrails without the audit chain: what the checks cost, apart from the writes.
    const unaudited = governAgent(plain, {
      governance: { halt: presence, scope, loop, logger: silentLogger },
      agentId: AGENT,
      sessionId: `bench-${name}-unaudited`,
    });
    const once = async (agent: Agent) => {
      const result = await runner.run(agent, "What does INV-42 say?");
      if (result.finalOutput !== "Hello.") throw new Error("the run did not end with the answer");
    };
    const kinds = [
      { kind: "ungoverned", agent: plain, samples: [] as number[] },
      { kind: "governed", agent: governed, samples: [] as number[] },
      { kind: "unaudited", agent: unaudited, samples: [] as number[] },
    ];
    // Warm up the pool, the plan cache and the JIT.
    for (let index = 0; index < 100; index++) for (const { agent } of kinds) await once(agent);
    for (let index = 0; index < SAMPLES; index++) {
      // each kind first, second and third in turn
      for (let offset = 0; offset < kinds.length; offset++) {
        const { agent, samples } = kinds[(index + offset) % kinds.length] as (typeof kinds)[number];
        const start = performance.now();
        await once(agent);
        samples.push(performance.now() - start);
      }
    }
    const [plainResult, ...governedResults] = kinds.map(({ kind, samples }) =>
      summarize(`${name}.tool-run.${kind}`, "ms", samples),
    );
    if (plainResult === undefined) throw new Error("unreachable");
    results.push(plainResult);
    for (const governedResult of governedResults)
      results.push(
        governedResult,
        addedRow(`${governedResult.name}.added`, plainResult, governedResult),
      );
  } finally {
    await loop.close();
    await modules.close();
  }
}

try {
  await forEachBenchEngine(
    [auditMigrations, presenceMigrations, scopeMigrations],
    (engine) => bench(engine.name, engine.store),
    { postgresPool: { max: 10 } },
  );
} finally {
  await server.close();
}

const targets: Record<string, BenchTarget> = {
  "postgres.tool-run.governed.added": { statistic: "median", direction: "max", value: 1 },
};
const met = await reportResults("@gov/wrappers-openai-agents", results, targets);
if (!met) process.stdout.write("some results missed their targets (see the table)\n");
