import { GovernanceSDK, type GovernanceSDKOptions } from "@gov/sdk";
import { billingTools, FakeLLM, type GovernanceHooks, refundScript, runAgent } from "./agent";

/** Where the demo writes what it did. */
export type Output = (line: string) => void;

/**
 * Start the SDK, run the scripted billing agent through its governance hooks, and report.
 * Later modules extend `hooks` with their checks; today the SDK runs with core alone.
 */
export async function runDemo(options: GovernanceSDKOptions, output: Output): Promise<void> {
  const started = performance.now();
  const sdk = await GovernanceSDK.start(options);
  try {
    const startMs = Math.round(performance.now() - started);
    output(`governance store: ${sdk.store.description} (ready in ${startMs} ms)`);
    const applied = sdk.migrations.modules.flatMap((module) =>
      module.applied.map((tag) => `${module.schema}/${tag}`),
    );
    output(
      `migrations applied: ${applied.length === 0 ? "none (no modules with tables are enabled yet)" : applied.join(", ")}`,
    );
    output(
      `audit key: ${sdk.keyring.current.id} (fingerprint prefix; the key itself stays in its file or secret store)`,
    );
    const health = await sdk.health();
    output(
      `health: ${health.ok ? "ok" : `FAILED (${health.error?.code})`}, round trip ${health.latencyMs?.toFixed(2)} ms`,
    );

    const agentId = "billing-agent";
    const hooks: GovernanceHooks = {
      beforePlan: async (steps) => output(`  plan       ${agentId}: ${steps.join(" → ")}`),
      beforeModelCall: async (model, turn) =>
        output(`  model call ${agentId}: ${model}, turn ${turn}`),
      afterModelCall: async () => undefined,
      beforeToolCall: async (tool, args) =>
        output(`  tool call  ${agentId}: ${tool}(${JSON.stringify(args)})`),
      afterToolCall: async () => undefined,
    };
    output(`agent ${agentId}: "Refund invoice INV-42"`);
    const run = await runAgent(
      new FakeLLM(refundScript()),
      billingTools(),
      hooks,
      "Refund invoice INV-42",
    );
    output(`agent answered: ${run.answer}`);
    output(
      `${run.modelCalls} model calls, ${run.toolCalls.length} tool calls, ${run.tokens} tokens (fake LLM, no network)`,
    );
  } finally {
    await sdk.close();
  }
  output("closed cleanly");
}
