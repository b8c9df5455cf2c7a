import { fork } from "node:child_process";
import { randomUUID } from "node:crypto";
import { fileURLToPath } from "node:url";
import {
  AgentHaltedError,
  type BudgetReservation,
  contentHash,
  GovernanceError,
  GovernanceSDK,
  type GovernanceSDKOptions,
} from "@gov/sdk";
import { billingTools, FakeLLM, type GovernanceHooks, refundScript, runAgent } from "./agent";
import type { ReviewAnswer, ReviewRequest } from "./reviewer";

/** The billing agent's blueprint: refunds above 500 EUR are blocked, vague ones nudged. */
const BILLING_BLUEPRINT = `
id: billing/refunds@1.0
version: "1.0"
description: Refunds of the billing agent.
scope:
  agentIds: [billing-agent]
tripwires:
  - id: large-refund
    when: { tool: issue_refund }
    condition: "args.amount > 500"
    severity: critical
    onFail: { decision: BLOCK, reason: "Refunds above 500 EUR are refused." }
  - id: unexplained-refund
    when: { tool: issue_refund }
    condition: "size(reasoning) < 20"
    onFail: { decision: NUDGE, reason: "Explain why the refund is due." }
`;

/** Where the demo writes what it did. */
export type Output = (line: string) => void;

/**
 * Start the SDK, run the scripted billing agent through its governance hooks, and report.
 * The agent is scoped to its tools, watched for loops and heartbeats as it works; every
 * plan, model call and tool call lands in the audit chain (one chain per session), which
 * is verified at the end. Then an operator halts it, and every check refuses it.
 */
export async function runDemo(options: GovernanceSDKOptions, output: Output): Promise<void> {
  const started = performance.now();
  const startedAt = new Date();
  const sdk = await GovernanceSDK.start({
    enableSteward: true,
    stewardBlueprints: [BILLING_BLUEPRINT],
    ...options,
  });
  try {
    const startMs = Math.round(performance.now() - started);
    output(`governance store: ${sdk.store.description} (ready in ${startMs} ms)`);
    // Counted per schema, not listed again: the SDK's log names each migration as it runs.
    const migrated = sdk.migrations.modules.filter((module) => module.applied.length > 0);
    output(
      migrated.length === 0
        ? "migrations: none to apply (the database is up to date)"
        : `migrations: ${migrated.reduce((sum, module) => sum + module.applied.length, 0)} applied (${migrated.map((module) => `${module.schema} ${module.applied.length}`).join(", ")})`,
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
    // What the billing agent may call, and how often the same tool in a minute is a loop.
    sdk.scope.register({
      agentId,
      allowedTools: ["lookup_invoice", "issue_refund", "send_email"],
      hiddenTools: ["admin_reset"],
      allowedApis: ["POST https://api.stripe.com/v1/refunds/*"],
    });
    sdk.loop.register({ agentId, maxCalls: 3, windowSeconds: 60, action: "raise" });
    // Its budget: a cent per session, five minutes per session, five dollars a day.
    sdk.cost.register({
      agentId,
      perSessionUsd: "0.01",
      perSessionSeconds: 300,
      perAgentUsdDaily: 5,
    });
    let reservation: BudgetReservation | null = null;
    await sdk.presence.heartbeat(agentId, { operatorId: "ops@example.com" });
    const offered = sdk.scope.filterTools(agentId, [...Object.keys(billingTools()), "admin_reset"]);
    output(`tools offered to the model: ${offered.join(", ")} (admin_reset is hidden)`);
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
    // A refund waits for a human: the request goes to a reviewer in another OS process, the
    // agent waits for the decision, and the refund about to run is checked against the one
    // approved (and may run once).
    const approved = async (args: Record<string, unknown>) => {
      const request = await sdk.gates.request("refund.issue", agentId, {
        payload: args,
        expiresInMs: 10 * 60_000,
      });
      output(
        `  approval   refund.issue requested (action sha256 ${request.actionHash.slice(0, 12)}…, token v${request.tokenVersion} sent to the reviewer only)`,
      );
      const waiting = sdk.gates.waitFor(request.requestId, { timeoutMs: 60_000 });
      const answer = await askReviewer(
        {
          requestId: request.requestId,
          kind: request.kind,
          payload: args,
          token: request.token,
          databaseUrl: sdk.store.engine === "postgres" ? databaseUrlOf(options) : null,
        },
        options,
      );
      if (answer.error) throw new Error(`the reviewer failed: ${answer.error}`);
      if (!answer.direct && answer.token) {
        // An embedded database is open in one process at a time (this one): the reviewer
        // cannot write to it, so its decision comes back over IPC and is applied here.
        if (answer.decision === "granted")
          await sdk.gates.grant(answer.token, {
            reviewerId: answer.reviewerId,
            reason: answer.reason,
          });
        else
          await sdk.gates.deny(answer.token, {
            reviewerId: answer.reviewerId,
            reason: answer.reason,
          });
      }
      output(
        `  reviewer   ${answer.reviewerId} in ${answer.pid === process.pid ? "this process" : `another process (pid ${answer.pid})`} ${answer.decision}: ${answer.reason} (${answer.direct ? "granted on the shared database; waitFor here saw it" : "sent back and applied here: the embedded database is open in this process only"})`,
      );
      await waiting;
      await sdk.gates.verifyAction(request.requestId, args, { kind: "refund.issue", agentId });
      output(
        "  approved   waitFor resolved; verifyAction: the refund about to run is the one approved",
      );
    };
    const hooks: GovernanceHooks = {
      beforePlan: async (steps) => {
        output(`  plan       ${agentId}: ${steps.join(" → ")}`);
        await record("agent.plan", { metadata: { steps: [...steps] } });
      },
      beforeModelCall: async (model, turn) => {
        // Reserve the call's worst case (1,024 output tokens) before it is made.
        reservation = await sdk.cost.checkOrRaise(agentId, sessionId, { model, maxTokens: 1024 });
        output(
          `  model call ${agentId}: ${model}, turn ${turn}, reserved $${reservation.exactUsd}`,
        );
      },
      afterModelCall: async (model, reply) => {
        // Settle the reservation with what the call really used; the rest is released.
        await sdk.cost.trackUsage(agentId, sessionId, {
          model,
          usage: reply.usage,
          reservationId: reservation?.reservationId ?? null,
        });
        await record("llm.call", {
          model,
          outputHash: contentHash(reply),
          metadata: {
            reply: reply.type,
            prompt_tokens: reply.usage.prompt_tokens,
            completion_tokens: reply.usage.completion_tokens,
          },
        });
      },
      beforeToolCall: async (tool, args) => {
        output(`  tool call  ${agentId}: ${tool}(${JSON.stringify(args)})`);
        await sdk.scope.check(agentId, { tool });
        sdk.loop.recordCall(agentId, sessionId, tool);
        await sdk.presence.heartbeat(agentId);
        if (tool === "issue_refund") {
          // The steward judges the planned refund against the billing blueprint first.
          const judged = await sdk.steward.evaluate({
            agentId,
            action: tool,
            parameters: args,
            reasoning: "The customer was charged twice for INV-42; refund the duplicate payment.",
            confidence: 0.92,
            evidence: ["INV-42"],
          });
          output(
            `  steward    ${judged.intervention} (risk ${judged.governanceStatus.riskScore.toFixed(2)}, blueprint ${judged.governanceStatus.blueprintId})`,
          );
          if (judged.intervention === "BLOCK" || judged.intervention === "HALT")
            throw new Error(`the steward refused the refund: ${judged.message}`);
          await approved(args);
        }
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
    // false would mean "nothing to verify": the session's events must be there.
    if ((await audit.verifyChain({ sessionId })) !== true)
      throw new Error(`the audit chain of ${sessionId} is empty`);
    const chain = await audit.traceSessionChain(sessionId);
    output(
      `audit chain of ${sessionId}: ${chain.length} events, seq 1–${chain.at(-1)?.seq ?? 0}, every HMAC and link verified`,
    );
    output(`  subscriber saw: ${summarize(recordedKinds)}`);
    const spent = await sdk.cost.snapshot(agentId, sessionId);
    output(
      `budget: $${spent.sessionUsdUsed} of $0.01 spent this session (${spent.sessionTokensUsed} tokens), $${spent.sessionUsdRemaining} left, nothing reserved: ${spent.sessionUsdReserved === 0}`,
    );

    // The client cancels a streamed answer after 12 chunks, before the provider reported its
    // usage: reconcile records the prompt plus a conservative 8 tokens per chunk received
    // (never $0), and releases the rest of the reservation.
    const stream = { inputTokens: 300, chunks: 12 };
    const streamed = await sdk.cost.checkOrRaise(agentId, sessionId, {
      model: "gpt-4o-mini",
      inputTokens: stream.inputTokens,
      maxTokens: 2048,
    });
    const reconciled = await sdk.cost.reconcile(agentId, sessionId, {
      reservationId: streamed.reservationId as string,
      model: "gpt-4o-mini",
      inputTokens: stream.inputTokens,
      chunks: stream.chunks,
      reason: "cancelled",
    });
    output(
      `  stream     a streamed answer cancelled after ${stream.chunks} chunks, no usage reported: reserved $${streamed.exactUsd}, recorded ${reconciled.tokens} tokens (${stream.inputTokens} prompt + 8 per chunk) = $${reconciled.exactUsd}, the rest released`,
    );
    // A call whose worst case would take the session past its cent is refused before it is made.
    await refused(
      output,
      "BUDGET_EXCEEDED",
      sdk.cost.checkOrRaise(agentId, sessionId, { model: "gpt-4o", maxTokens: 4096 }),
    );
    const byModel = await sdk.cost.modelBreakdown(agentId);
    output(
      `  spend by model: ${Object.entries(byModel)
        .map(([model, total]) => `${model} $${total.usd} (${total.tokens} tokens)`)
        .join(", ")}`,
    );

    // The steward would block a refund far above the invoice, before anyone is asked.
    const large = await sdk.steward.evaluate({
      agentId,
      action: "issue_refund",
      parameters: { invoiceId: "INV-42", amount: 12_000 },
      reasoning: "Refund everything.",
    });
    output(`  steward    ${large.intervention} for a 12000 EUR refund: ${large.message}`);
    // A call outside the agent's scope is refused, and the refusal is evidence.
    await refused(output, "SCOPE_VIOLATION", sdk.scope.check(agentId, { tool: "admin_reset" }));
    await refused(
      output,
      "SCOPE_VIOLATION",
      sdk.scope.check(agentId, { api: "POST https://api.stripe.com.evil.io/v1/refunds/re_1" }),
    );
    // The model gets stuck retrying the same lookup: the fourth call in a minute is a loop.
    await refused(
      output,
      "LOOP_DETECTED",
      (async () => {
        for (let retry = 0; retry < 3; retry++)
          sdk.loop.recordCall(agentId, sessionId, "lookup_invoice");
      })(),
    );
    // The operator presses halt: every enforcement check refuses the agent, at once.
    await sdk.presence.halt(agentId, { haltedBy: "ops@example.com", reason: "refund review" });
    await refused(output, "AGENT_HALTED", sdk.scope.check(agentId, { tool: "lookup_invoice" }));
    await refused(output, "AGENT_HALTED", sdk.cost.checkOrRaise(agentId, sessionId));
    const status = (await sdk.presence.listAgents()).find((agent) => agent.agentId === agentId);
    output(`  presence: ${agentId} is ${status?.status}, halted=${status?.halted}`);
    await sdk.presence.resume(agentId, { resumedBy: "ops@example.com", reason: "review done" });
    await sdk.scope.check(agentId, { tool: "lookup_invoice" });
    output(`  resumed: ${agentId} may call lookup_invoice again`);
    if ((await audit.verifyChain()) !== true) throw new Error("the audit chain is empty");
    const evidence = await audit.getEvents({ agentId, since: startedAt, limit: 1_000 });
    const decisions = evidence
      .map((event) => event.kind)
      .filter((kind) => !["llm.call", "agent.plan", "tool.call", "tool.result"].includes(kind));
    output(`decisions in the chain: ${summarize(decisions)}; every chain verified`);
  } finally {
    await sdk.close();
  }
  output("closed cleanly");
}

/** The Postgres URL the SDK was started on, for the reviewer process. */
function databaseUrlOf(options: GovernanceSDKOptions): string | null {
  return options.databaseUrl ?? (options.env ?? process.env).GOVERNANCE_DATABASE_URL ?? null;
}

/** Run the reviewer (reviewer.ts) in another OS process and wait for its answer. */
function askReviewer(request: ReviewRequest, options: GovernanceSDKOptions): Promise<ReviewAnswer> {
  const fromSource = import.meta.url.endsWith(".ts");
  const script = fileURLToPath(
    new URL(fromSource ? "./reviewer.ts" : "./reviewer.js", import.meta.url),
  );
  const env = { ...(options.env ?? process.env) };
  if (options.auditSecret) env.GOVERNANCE_AUDIT_SECRET = options.auditSecret;
  const child = fork(script, [], {
    execArgv: fromSource ? ["--import", "tsx", "--conditions=@gov/source"] : [],
    env,
    stdio: ["ignore", "ignore", "pipe", "ipc"],
  });
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  return new Promise<ReviewAnswer>((resolve, reject) => {
    child.once("message", (answer) => resolve(answer as ReviewAnswer));
    child.once("exit", (code) =>
      reject(new Error(`the reviewer exited (${code}) without an answer: ${stderr}`)),
    );
    child.once("error", reject);
    child.send(request);
  });
}

/** "llm.call ×5, tool.call ×3, …" in order of first appearance. */
function summarize(kinds: readonly string[]): string {
  const counts = new Map<string, number>();
  for (const kind of kinds) counts.set(kind, (counts.get(kind) ?? 0) + 1);
  return [...counts].map(([kind, count]) => `${kind} ×${count}`).join(", ");
}

/** Run a check that must refuse with `code`, and say how it refused. */
async function refused(output: Output, code: string, check: Promise<unknown>): Promise<void> {
  try {
    await check;
  } catch (error) {
    if (
      (AgentHaltedError.isInstance(error) || GovernanceError.isInstance(error)) &&
      error.code === code
    ) {
      output(`  refused: ${error.code}: ${error.message.split("\n")[0]}`);
      return;
    }
    throw error;
  }
  throw new Error(`the check let the call through instead of refusing it with ${code}`);
}
