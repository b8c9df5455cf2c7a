/**
 * `pnpm bench` for `@gov/wrappers/mcp`: the latency `governMcpClient` adds to one `callTool`.
 * A real MCP client (`@modelcontextprotocol/sdk` 1.x) calls a real MCP server over the SDK's
 * in-memory transport, ungoverned and governed, alternately in the same run; the governed
 * client is checked by the real modules — presence (halt), scope, the audit chain and the
 * coverage registry — on real Postgres (GOVERNANCE_BENCH_DATABASE_URL or
 * GOVERNANCE_TEST_DATABASE_URL) and on PGlite. Loop detection is left out (an in-memory count,
 * whose policies allow at most 1,000 calls per window). The added latency is the difference of
 * the medians. Results: bench/results/wrappers-mcp.json.
 *
 * GOVERNANCE_BENCH_SAMPLES (default 2000) sets the calls of each kind.
 */
import { auditMigrations } from "@gov/audit";
import { type BenchResult, type BenchTarget, reportResults, summarize } from "@gov/bench-kit";
import type { Store } from "@gov/core";
import { forEachBenchEngine } from "@gov/core/testing";
import { presenceMigrations } from "@gov/presence";
import { scopeMigrations } from "@gov/scope";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { z } from "zod";
import { coverageMigrations } from "../src/index";
import { governMcpClient } from "../src/mcp/index";
import { addedRow, benchModules } from "./modules";

const SAMPLES = Number(process.env.GOVERNANCE_BENCH_SAMPLES ?? 2_000);
const AGENT = "bench-agent";
const results: BenchResult[] = [];

/** A server with one tool, and a client connected to it in memory. */
async function connected(): Promise<Client> {
  const server = new McpServer({ name: "billing", version: "1.0.0" });
  server.registerTool(
    "lookup_invoice",
    { description: "The balance of an invoice", inputSchema: { invoiceId: z.string() } },
    async ({ invoiceId }) => ({ content: [{ type: "text", text: `${invoiceId}: 120 USD` }] }),
  );
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
  await server.connect(serverSide);
  const client = new Client({ name: "bench-agent", version: "1.0.0" });
  await client.connect(clientSide);
  return client;
}

/** Run each of `runs` `samples` times, taking turns (first one first, then the other), timed in ms. */
async function alternately(
  runs: readonly (() => Promise<unknown>)[],
  samples: number,
): Promise<number[][]> {
  const times = runs.map((): number[] => []);
  for (let index = 0; index < samples; index++) {
    const order = index % 2 === 0 ? runs.keys() : [...runs.keys()].reverse();
    for (const which of order) {
      const start = performance.now();
      await runs[which]?.();
      times[which]?.push(performance.now() - start);
    }
  }
  return times;
}

async function bench(name: string, store: Store) {
  const modules = await benchModules(store, { coverage: true });
  const { audit, presence, scope, coverage } = modules;
  const plain = await connected();
  const governed = governMcpClient(await connected(), {
    governance: { halt: presence, scope, audit, ...(coverage ? { coverage } : {}) },
    agentId: AGENT,
    sessionId: `bench-${name}`,
    serverName: "billing",
  });
  try {
    scope.register({ agentId: AGENT, allowedTools: ["billing/lookup_invoice"] });
    const call = (client: Client) =>
      client.callTool({ name: "lookup_invoice", arguments: { invoiceId: "INV-42" } });
    // Warm up the pool, the plan cache and the JIT.
    for (let index = 0; index < 200; index++) {
      await call(plain);
      await call(governed);
    }
    const [ungoverned, governedTimes] = await alternately(
      [() => call(plain), () => call(governed)],
      SAMPLES,
    );
    const plainResult = summarize(`${name}.callTool.ungoverned`, "ms", ungoverned ?? []);
    const governedResult = summarize(`${name}.callTool.governed`, "ms", governedTimes ?? []);
    results.push(
      plainResult,
      governedResult,
      addedRow(`${name}.callTool.added`, plainResult, governedResult),
    );
  } finally {
    await plain.close();
    await governed.close();
    await modules.close();
  }
}

await forEachBenchEngine(
  [auditMigrations, presenceMigrations, scopeMigrations, coverageMigrations],
  (engine) => bench(engine.name, engine.store),
  { postgresPool: { max: 10 } },
);

const targets: Record<string, BenchTarget> = {
  "postgres.callTool.added": { statistic: "median", direction: "max", value: 1 },
};
const met = await reportResults("@gov/wrappers-mcp", results, targets);
if (!met) process.stdout.write("some results missed their targets (see the table)\n");
