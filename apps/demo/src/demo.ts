import { fork } from "node:child_process";
import { randomUUID } from "node:crypto";
import { fileURLToPath } from "node:url";
import {
  AgentHaltedError,
  contentHash,
  GovernanceError,
  GovernanceSDK,
  type GovernanceSDKOptions,
} from "@gov/sdk";
import { settled } from "@gov/wrappers";
import { wrapOpenAI } from "@gov/wrappers/openai";
import type { OpenAIServer } from "@gov/wrappers/testing";
import OpenAI from "openai";
import { VERSION as OPENAI_VERSION } from "openai/version";
import { type AgentHooks, billingTools, runAgent } from "./agent";
import { MODEL, startScriptedModel } from "./model-server";
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

/** The events the wrapper and the agent's hooks record on every run; the rest are decisions. */
const ROUTINE_KINDS = [
  "wrapper.registered",
  "llm.call",
  "llm.result",
  "agent.plan",
  "tool.call",
  "tool.result",
];

/**
 * Start the SDK and the scripted model (a loopback server speaking the OpenAI API), run the
 * billing agent through the real `openai` client wrapped with `wrapOpenAI`, and report. The
 * wrapper governs every model call (halt, model scope, hidden tools, budget reserved and
 * settled, `llm.call` / `llm.result` in the audit chain); the demo's hooks govern the plan and
 * the tool calls (scope, loops, heartbeats, the steward, a human's approval). The session's
 * chain is verified at the end. Then an operator halts the agent, and every check refuses it.
 */
export async function runDemo(options: GovernanceSDKOptions, output: Output): Promise<void> {
  const started = performance.now();
  const startedAt = new Date();
  const sdk = await GovernanceSDK.start({
    enableSteward: true,
    stewardBlueprints: [BILLING_BLUEPRINT],
    // The demo wraps its client right after start: the warning would only say that this
    // database has not seen a wrapped client yet.
    warnOnNoWrappers: false,
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
    const server = await startScriptedModel();
    try {
      await runAgentGoverned(sdk, server, options, output, startedAt);
    } finally {
      await server.close();
    }
  } finally {
    await sdk.close();
  }
  output("closed cleanly");
}

/** The agent's run and what the operator does after it, on a started SDK and model server. */
async function runAgentGoverned(
  sdk: GovernanceSDK,
  server: OpenAIServer,
  options: GovernanceSDKOptions,
  output: Output,
  startedAt: Date,
): Promise<void> {
  const agentId = "billing-agent";
  const sessionId = `demo-${randomUUID()}`;
  const audit = sdk.audit;
  const recordedKinds: string[] = [];
  audit.subscribe((record) => {
    recordedKinds.push(record.kind);
  });
  // What the billing agent may call (tools, APIs, models), and how often the same tool in a
  // minute is a loop.
  sdk.scope.register({
    agentId,
    allowedTools: ["lookup_invoice", "issue_refund", "send_email"],
    hiddenTools: ["admin_reset"],
    allowedApis: ["POST https://api.stripe.com/v1/refunds/*"],
    allowedModels: [MODEL],
  });
  sdk.loop.register({ agentId, maxCalls: 3, windowSeconds: 60, action: "raise" });
  // Its budget: a cent per session, five minutes per session, five dollars a day.
  sdk.cost.register({
    agentId,
    perSessionUsd: "0.01",
    perSessionSeconds: 300,
    perAgentUsdDaily: 5,
  });
  await sdk.presence.heartbeat(agentId, { operatorId: "ops@example.com" });
  // The agent's model client: the real openai client, pointed at the loopback server and
  // governed in place. From here on, every model call goes through the wrapper.
  const openai = wrapOpenAI(new OpenAI({ baseURL: server.baseURL, apiKey: "sk-demo-loopback" }), {
    governance: sdk,
    agentId,
    sessionId,
  });
  output(
    `model: ${MODEL}, played by a loopback server speaking the OpenAI API (${server.baseURL}, no network), called through openai ${OPENAI_VERSION} wrapped with wrapOpenAI`,
  );

  let lastEvent: string | null = null;
  const record = async (
    kind: string,
    fields: { inputHash?: string; outputHash?: string; metadata?: Record<string, unknown> },
  ) => {
    const stored = await audit.log({
      agentId,
      sessionId,
      kind,
      parentEventId: lastEvent,
      ...fields,
    });
    if (!stored.isPlaceholder) lastEvent = stored.eventId;
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
  const hooks: AgentHooks = {
    afterModelCall: async (turn, completion, streamed) => {
      // The wrapper has reserved this call's worst case and settled it with this usage.
      const message = completion.choices[0]?.message;
      const called = (message?.tool_calls ?? []).map((call) =>
        call.type === "function" ? call.function.name : call.custom.name,
      );
      const what = called.length > 0 ? called.join(", ") : turn === 1 ? "a plan" : "the answer";
      output(
        `  model      turn ${turn}, ${streamed ? "streamed" : "whole completion"}: ${what} (${completion.usage?.prompt_tokens} + ${completion.usage?.completion_tokens} tokens)`,
      );
    },
    beforePlan: async (steps) => {
      output(`  plan       ${agentId}: ${steps.join(" → ")}`);
      await record("agent.plan", { metadata: { steps: [...steps] } });
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
  const tools = billingTools();
  const run = await runAgent(openai, tools, hooks, "Refund invoice INV-42", { model: MODEL });
  output(`agent answered: ${run.answer}`);
  output(
    `${run.modelCalls} model calls (${run.streamedCalls} streamed), ${run.toolCalls.length} tool calls, ${run.tokens} tokens`,
  );

  // What the wrapper did. The model was offered the agent's whole toolbox; the hidden tool
  // never reached it.
  const sent = new Set(server.received.map((request) => toolNames(request.body).join(", ")));
  output(
    `  tools      the agent offered ${Object.keys(tools).join(", ")}; all ${server.received.length} requests reached the server with ${[...sent].join(" | ")} (the wrapper removed the hidden admin_reset)`,
  );
  // The wrapper settles each call's usage and writes its llm.result just after the call
  // returns (the calls do not wait for the database): wait for that, then flush the events.
  await settled();
  await audit.flush();
  // false would mean "nothing to verify": the session's events must be there.
  if ((await audit.verifyChain({ sessionId })) !== true)
    throw new Error(`the audit chain of ${sessionId} is empty`);
  const chain = await audit.traceSessionChain(sessionId);
  const priced = chain
    .filter((event) => event.kind === "llm.result")
    .map((event) => Number(event.metadata.usd));
  output(
    `  wrapper    recorded ${summarize(chain.map((event) => event.kind).filter((kind) => kind.startsWith("llm.") || kind.startsWith("wrapper.")))}; each call reserved, then settled: ${priced.map((usd) => `$${usd}`).join(" + ")} = $${exact(priced.reduce((sum, usd) => sum + usd, 0))}`,
  );
  output(
    `audit chain of ${sessionId}: ${chain.length} events, seq 1–${chain.at(-1)?.seq ?? 0}, every HMAC and link verified`,
  );
  // The wrapper's events are written as the calls go: their order among the hooks' own
  // events may vary from run to run, so the kinds are listed by name.
  output(`  subscriber saw: ${summarize([...recordedKinds].sort())}`);
  const spent = await sdk.cost.snapshot(agentId, sessionId);
  output(
    `budget: $${spent.sessionUsdUsed} of $0.01 spent this session (${spent.sessionTokensUsed} tokens), $${spent.sessionUsdRemaining} left, nothing reserved: ${spent.sessionUsdReserved === 0}`,
  );

  // The agent streams a summary for the customer, whose chat window closes after 12 chunks,
  // before the provider reported the usage: the wrapper reconciles the call from what was
  // sent and received (the prompt's estimate, 8 tokens per chunk: never $0) and releases the
  // rest of its reservation.
  const summary = await openai.chat.completions.create({
    model: MODEL,
    messages: [...run.messages, { role: "user", content: "Write the customer a summary." }],
    max_completion_tokens: 2048,
    stream: true,
  });
  let chunks = 0;
  let reserved = 0;
  for await (const _chunk of summary) {
    if (++chunks === 1) reserved = (await sdk.cost.snapshot(agentId, sessionId)).sessionUsdReserved;
    if (chunks === 12) break;
  }
  await settled();
  const after = await sdk.cost.snapshot(agentId, sessionId);
  output(
    `  stream     a summary for the customer, read for ${chunks} chunks then dropped, before the usage came: $${reserved} reserved while it streamed, ${after.sessionTokensUsed - spent.sessionTokensUsed} tokens recorded (the prompt's estimate, and 8 per chunk received) = $${exact(after.sessionUsdUsed - spent.sessionUsdUsed)}, nothing left reserved: ${after.sessionUsdReserved === 0}`,
  );
  // Calls the wrapper refuses before a byte leaves: a model outside the agent's scope, and a
  // call whose worst case would take the session past its cent.
  const requests = server.received.length;
  await refused(
    output,
    "SCOPE_VIOLATION",
    openai.chat.completions.create({ model: "gpt-4o", messages: run.messages }),
  );
  await refused(
    output,
    "BUDGET_EXCEEDED",
    openai.chat.completions.create({
      model: MODEL,
      messages: run.messages,
      max_completion_tokens: 16_384,
    }),
  );
  const leaked = server.received.length - requests;
  output(
    `  server     the refused calls sent it ${leaked} requests (refused before any byte left)`,
  );
  const byModel = await sdk.cost.modelBreakdown(agentId, { since: startedAt });
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
  // The operator presses halt: every enforcement check refuses the agent, at once — the
  // wrapped client too, before its request is sent.
  await sdk.presence.halt(agentId, { haltedBy: "ops@example.com", reason: "refund review" });
  await refused(output, "AGENT_HALTED", sdk.scope.check(agentId, { tool: "lookup_invoice" }));
  await refused(
    output,
    "AGENT_HALTED",
    openai.chat.completions.create({ model: MODEL, messages: run.messages }),
  );
  const status = (await sdk.presence.listAgents()).find((agent) => agent.agentId === agentId);
  output(`  presence: ${agentId} is ${status?.status}, halted=${status?.halted}`);
  await sdk.presence.resume(agentId, { resumedBy: "ops@example.com", reason: "review done" });
  await sdk.scope.check(agentId, { tool: "lookup_invoice" });
  output(`  resumed: ${agentId} may call lookup_invoice again`);

  // Which agents make governed model calls, as the console and the compliance report read it.
  const clients = await sdk.coverage.coverage({ agentIds: [agentId] });
  const coverage = await sdk.coverage.coveragePct([agentId]);
  output(
    `coverage: ${clients.map((entry) => `${entry.agentId} through ${entry.client} (${entry.calls} governed calls in this database)`).join(", ")}; coveragePct([${agentId}]) = ${Math.round((coverage.coveragePct ?? 0) * 100)}%`,
  );
  await audit.flush();
  if ((await audit.verifyChain()) !== true) throw new Error("the audit chain is empty");
  const evidence = await audit.getEvents({ agentId, since: startedAt, limit: 1_000 });
  const decisions = evidence
    .map((event) => event.kind)
    .filter((kind) => !ROUTINE_KINDS.includes(kind));
  output(`decisions in the chain: ${summarize(decisions)}; every chain verified`);
}

/** The names of the tools a request offered the model. */
function toolNames(body: Record<string, unknown>): string[] {
  const tools = Array.isArray(body.tools) ? body.tools : [];
  return tools.map((tool) => String((tool as { function?: { name?: unknown } }).function?.name));
}

/** A sum or difference of prices, without the binary floating point's tail. */
function exact(usd: number): string {
  return String(Number(usd.toPrecision(12)));
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
