/**
 * `pnpm bench` for @gov/steward: `evaluate` with a blueprint of 20 tier-0 tripwires and
 * in-memory state and trust debt (conformance `standard`; the traces pass, so nothing is
 * audited), a stateful variant (one `state` tripwire among the 20), and loading + compiling
 * a blueprint of 100 tripwires from YAML. Results: bench/results/steward.json.
 *
 * GOVERNANCE_BENCH_SAMPLES (default 200000) sets the evaluations measured.
 */
import { type BenchResult, type BenchTarget, reportResults, summarize } from "@gov/bench-kit";
import { silentLogger } from "@gov/core";
import { stringify } from "yaml";
import { GovernanceSteward, loadBlueprints, parseBlueprintYaml } from "../src/index";

const SAMPLES = Number(process.env.GOVERNANCE_BENCH_SAMPLES ?? 200_000);
const results: BenchResult[] = [];

function tripwires(count: number, stateful: boolean) {
  return Array.from({ length: count }, (_, index) => {
    const kind = index % 4;
    if (stateful && index === 0) {
      return {
        id: `t${index}`,
        condition: "state.daily_total + args.amount > 1000000000.0",
        requiresState: true,
        onFail: { decision: "BLOCK" },
      };
    }
    return {
      id: `t${index}`,
      severity: "standard",
      condition:
        kind === 0
          ? `args.amount > ${10_000 + index}`
          : kind === 1
            ? `action == "forbidden_${index}"`
            : kind === 2
              ? `reasoning.contains("secret_${index}")`
              : `confidence != null && confidence < 0.0${index % 10}`,
      onFail: { decision: kind === 1 ? "BLOCK" : kind === 3 ? "NUDGE" : "ESCALATE" },
    };
  });
}

const blueprint = (count: number, stateful = false) => ({
  id: `bench${stateful ? "-stateful" : ""}@1.0`,
  version: "1.0",
  tripwires: tripwires(count, stateful),
});

const TRACE = {
  agentId: "bench-agent",
  agentTier: "tier-1",
  action: "refund",
  parameters: { amount: 120, order: "A-1234" },
  reasoning: "The customer reported a damaged item; the refund is within policy.",
  confidence: 0.9,
};

async function benchEvaluate(name: string, stateful: boolean): Promise<void> {
  const steward = new GovernanceSteward(
    { logger: silentLogger },
    { blueprints: [blueprint(20, stateful)] },
  );
  for (let index = 0; index < 20_000; index++) await steward.evaluate(TRACE);
  const latencies = new Array<number>(SAMPLES);
  for (let index = 0; index < SAMPLES; index++) {
    const start = performance.now();
    const result = await steward.evaluate(TRACE);
    latencies[index] = (performance.now() - start) * 1000;
    if (result.intervention !== "OK") throw new Error(`unexpected ${result.intervention}`);
  }
  results.push(summarize(name, "µs", latencies));
}

await benchEvaluate("evaluate.20-tripwires.in-memory", false);
await benchEvaluate("evaluate.20-tripwires.1-stateful.in-memory", true);

{
  const yaml = stringify(blueprint(100));
  const samples: number[] = [];
  for (let index = 0; index < 200; index++) {
    const start = performance.now();
    loadBlueprints([parseBlueprintYaml(yaml)]);
    samples.push(performance.now() - start);
  }
  results.push(summarize("load-and-compile.100-tripwires.yaml", "ms", samples));
}

const targets: Record<string, BenchTarget> = {
  "evaluate.20-tripwires.in-memory": { statistic: "median", direction: "max", value: 20 },
  "evaluate.20-tripwires.in-memory.p99": { statistic: "p99", direction: "max", value: 100 },
  "load-and-compile.100-tripwires.yaml": { statistic: "max", direction: "max", value: 50 },
};
// The same samples, held to the p99 target (one target per row).
const p99 = results[0];
if (p99) results.push({ ...p99, name: "evaluate.20-tripwires.in-memory.p99" });
const met = await reportResults("@gov/steward", results, targets);
if (!met) process.stdout.write("some results missed their targets (see the table)\n");
