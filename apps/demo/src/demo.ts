import { randomUUID } from "node:crypto";
import { contentHash, GovernanceSDK, type GovernanceSDKOptions } from "@gov/sdk";
import { billingTools, FakeLLM, type GovernanceHooks, refundScript, runAgent } from "./agent";

/** Where the demo writes what it did. */
export type Output = (line: string) => void;

/**
 * Start the SDK, run the scripted billing agent through its governance hooks, and report.
 * Every plan, model call and tool call lands in the audit chain (one chain per session),
 * which is verified at the end; later modules extend `hooks` with their checks.
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
    const sessionId = `demo-${randomUUID()}`;
    const audit = sdk.audit;
    const recordedKinds: string[] = [];
    audit.subscribe((record) => {
      recordedKinds.push(record.kind);
    });
    let lastEvent: string | null = null;
    const record = async (
      kind: string,
      fields: {
        model?: string;
        inputHash?: string;
        outputHash?: string;
        metadata?: Record<string, unknown>;
      },
    ) => {
      const stored = await audit.log({
        agentId,
        sessionId,
        kind,
        parentEventId: lastEvent,
        ...fields,
      });
      if (!stored.isPlaceholder) lastEvent = stored.eventId;
      output(
        `    audit    seq ${stored.seq ?? "-"} ${kind} (${stored.status}, hmac ${stored.hmac.slice(0, 12)}…)`,
      );
    };
    const hooks: GovernanceHooks = {
      beforePlan: async (steps) => {
        output(`  plan       ${agentId}: ${steps.join(" → ")}`);
        await record("agent.plan", { metadata: { steps: [...steps] } });
      },
      beforeModelCall: async (model, turn) =>
        output(`  model call ${agentId}: ${model}, turn ${turn}`),
      afterModelCall: async (model, reply) =>
        record("llm.call", {
          model,
          outputHash: contentHash(reply),
          metadata: {
            reply: reply.type,
            prompt_tokens: reply.usage.prompt_tokens,
            completion_tokens: reply.usage.completion_tokens,
          },
        }),
      beforeToolCall: async (tool, args) => {
        output(`  tool call  ${agentId}: ${tool}(${JSON.stringify(args)})`);
        await record("tool.call", { inputHash: contentHash(args), metadata: { tool } });
      },
      afterToolCall: async (tool, result) =>
        record("tool.result", { outputHash: contentHash(result), metadata: { tool } }),
    };
    output(`agent ${agentId}: "Refund invoice INV-42" (session ${sessionId})`);
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
    await audit.verifyChain({ sessionId });
    const chain = await audit.traceSessionChain(sessionId);
    output(
      `audit chain of ${sessionId}: ${chain.length} events, seq 1–${chain.at(-1)?.seq ?? 0}, every HMAC and link verified`,
    );
    output(`  subscriber saw: ${summarize(recordedKinds)}`);
  } finally {
    await sdk.close();
  }
  output("closed cleanly");
}

/** "llm.call ×5, tool.call ×3, …" in order of first appearance. */
function summarize(kinds: readonly string[]): string {
  const counts = new Map<string, number>();
  for (const kind of kinds) counts.set(kind, (counts.get(kind) ?? 0) + 1);
  return [...counts].map(([kind, count]) => `${kind} ×${count}`).join(", ");
}
