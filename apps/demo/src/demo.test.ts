import { createTestDatabase, testEngines } from "@gov/core/testing";
import { silentLogger } from "@gov/sdk";
import OpenAI from "openai";
import { describe, expect, it, onTestFinished } from "vitest";
import { type AgentHooks, billingTools, runAgent, type Tool } from "./agent";
import { runDemo } from "./demo";
import { REFUND_ANSWER, refundScript, startScriptedModel } from "./model-server";

const SECRET = "demo-secret-0123456789-abcdefghijklmnopqrstuvwxyz";

describe.each(testEngines())("the demo on $name", (engine) => {
  it.skipIf(!engine.available)(
    "runs the agent through the wrapped openai client against the loopback server, and closes",
    async () => {
      const { databaseUrl, dispose } = await createTestDatabase(engine);
      onTestFinished(dispose);
      const lines: string[] = [];
      await runDemo(
        {
          databaseUrl,
          ...(engine.name === "postgres" ? { auditSecret: SECRET } : {}),
          logger: silentLogger,
          env: {},
        },
        (line) => lines.push(line),
      );
      expect(lines[0]).toMatch(
        engine.name === "pglite"
          ? /^governance store: embedded PGlite in memory/
          : /^governance store: Postgres/,
      );
      expect(lines.at(-1)).toBe("closed cleanly");
      // The model is the real openai client, wrapped, against our loopback server.
      expect(lines).toContainEqual(
        expect.stringMatching(
          /^model: gpt-4o-mini, played by a loopback server speaking the OpenAI API \(http:\/\/127\.0\.0\.1:\d+\/v1, no network\), called through openai 6\.\d+\.\d+ wrapped with wrapOpenAI$/,
        ),
      );
      expect(lines).toContain(`agent answered: ${REFUND_ANSWER}`);
      expect(lines).toContain("5 model calls (4 streamed), 3 tool calls, 1183 tokens");
      // Each model call, in order, with the usage the client read from the wire.
      expect(lines.filter((line) => line.startsWith("  model      "))).toEqual([
        "  model      turn 1, whole completion: a plan (120 + 30 tokens)",
        "  model      turn 2, streamed: lookup_invoice (160 + 20 tokens)",
        "  model      turn 3, streamed: issue_refund (210 + 25 tokens)",
        "  model      turn 4, streamed: send_email (260 + 40 tokens)",
        "  model      turn 5, streamed: the answer (300 + 18 tokens)",
      ]);
      expect(lines).toContain(
        "  plan       billing-agent: lookup_invoice → issue_refund → send_email",
      );
      expect(lines.filter((line) => line.startsWith("  tool call  "))).toEqual([
        '  tool call  billing-agent: lookup_invoice({"invoiceId":"INV-42"})',
        '  tool call  billing-agent: issue_refund({"invoiceId":"INV-42","amount":120})',
        '  tool call  billing-agent: send_email({"to":"customer@example.com","subject":"Your refund"})',
      ]);
      // The hidden tool never reached the server (without the wrapper it does: see below).
      expect(lines).toContain(
        "  tools      the agent offered lookup_invoice, issue_refund, send_email, admin_reset; all 5 requests reached the server with lookup_invoice, issue_refund, send_email (the wrapper removed the hidden admin_reset)",
      );
      // What the wrapper recorded, and each call's usage priced from its llm.result event.
      expect(lines).toContain(
        "  wrapper    recorded wrapper.registered ×1, llm.call ×5, llm.result ×5; each call reserved, then settled: $0.000036 + $0.000036 + $0.0000465 + $0.000063 + $0.0000558 = $0.0002373",
      );
      expect(lines).toContainEqual(
        expect.stringMatching(
          /^audit chain of demo-[0-9a-f-]{36}: 18 events, seq 1–18, every HMAC and link verified$/,
        ),
      );
      // On a shared Postgres the grant is written by the reviewer's process: this process's
      // subscriber does not see it (the chain has it: "decisions in the chain" below).
      expect(lines).toContain(
        `  subscriber saw: agent.plan ×1, approval.executed ×1, ${engine.name === "pglite" ? "approval.granted ×1, " : ""}approval.requested ×1, llm.call ×5, llm.result ×5, tool.call ×3, tool.result ×3, wrapper.registered ×1`,
      );
      expect(lines).toContain(
        "budget: $0.0002373 of $0.01 spent this session (1183 tokens), $0.0097627 left, nothing reserved: true",
      );
      // A streamed call dropped by its reader is reconciled from what was sent and received.
      expect(lines).toContain(
        "  stream     a summary for the customer, read for 12 chunks then dropped, before the usage came: $0.00142395 reserved while it streamed, 1397 tokens recorded (the prompt's estimate, and 8 per chunk received) = $0.00025275, nothing left reserved: true",
      );
      // The wrapped client refuses a model outside the scope and a call past the budget, and
      // neither reaches the server.
      expect(lines).toContain(
        '  refused: SCOPE_VIOLATION: Agent "billing-agent" may not call model "gpt-4o": it is not in the policy\'s allowedModels. Allowed models: "gpt-4o-mini".',
      );
      expect(lines).toContainEqual(
        expect.stringMatching(
          /^ {2}refused: BUDGET_EXCEEDED: .*perSessionUsd: \$0\.00049005 used \+ \$0\.0100167 projected > \$0\.01 limit\. Nothing was reserved\.$/,
        ),
      );
      expect(lines).toContain(
        "  server     the refused calls sent it 0 requests (refused before any byte left)",
      );
      expect(lines).toContain("  spend by model: gpt-4o-mini $0.00049005 (2580 tokens)");
      // The refund waited for a human in another OS process, and ran as approved.
      expect(lines).toContainEqual(
        expect.stringMatching(
          /^ {2}approval {3}refund\.issue requested \(action sha256 [0-9a-f]{12}…, token v2 sent to the reviewer only\)$/,
        ),
      );
      expect(lines).toContainEqual(
        expect.stringMatching(
          engine.name === "pglite"
            ? /^ {2}reviewer {3}finance-lead@example\.com in another process \(pid \d+\) granted: matches the invoice \(sent back and applied here: the embedded database is open in this process only\)$/
            : /^ {2}reviewer {3}finance-lead@example\.com in another process \(pid \d+\) granted: matches the invoice \(granted on the shared database; waitFor here saw it\)$/,
        ),
      );
      expect(lines).toContain(
        "  approved   waitFor resolved; verifyAction: the refund about to run is the one approved",
      );
      // The steward judged the refund against the billing blueprint, and would block a large one.
      expect(lines).toContain("  steward    OK (risk 0.00, blueprint billing/refunds@1.0)");
      expect(lines).toContainEqual(
        expect.stringMatching(
          /^ {2}steward {4}BLOCK for a 12000 EUR refund: .*Refunds above 500 EUR are refused\.$/,
        ),
      );
      // Scope, loop and presence: the model, the hidden tool and the look-alike host are
      // refused, the retried lookup is a loop, and the operator's halt refuses everything —
      // the wrapped client included — until lifted.
      expect(lines.filter((line) => line.startsWith("  refused: SCOPE_VIOLATION"))).toHaveLength(3);
      expect(lines).toContainEqual(expect.stringMatching(/^ {2}refused: LOOP_DETECTED: /));
      expect(lines.filter((line) => line.startsWith("  refused: AGENT_HALTED"))).toEqual([
        expect.stringMatching(/by ops@example\.com.*refund review \(refused in scope\.check\)\.$/),
        expect.stringMatching(
          /by ops@example\.com.*refund review \(refused in openai\.chat\.completions\.create\)\.$/,
        ),
      ]);
      expect(lines).toContain("  presence: billing-agent is Live, halted=true");
      expect(lines).toContain(
        "coverage: billing-agent through openai (6 governed calls in this database); coveragePct([billing-agent]) = 100%",
      );
      expect(lines).toContain(
        "decisions in the chain: approval.requested ×1, approval.granted ×1, approval.executed ×1, scope.violation ×3, budget.exceeded ×1, steward.intervention ×1, loop.detected ×1, agent.halted ×1, agent.halt_enforced ×2, agent.resumed ×1; every chain verified",
      );
    },
    // The demo starts a reviewer in another OS process (compiled on the fly by tsx): on a
    // 2-core machine running every package's suite at once, over two minutes.
    300_000,
  );
});

/** Hooks that let everything through. */
const PASS: AgentHooks = {
  afterModelCall: async () => undefined,
  beforePlan: async () => undefined,
  beforeToolCall: async () => undefined,
  afterToolCall: async () => undefined,
};

/** A model server for one test, closed after it, and an (unwrapped) client of it. */
async function scriptedModel() {
  const server = await startScriptedModel();
  onTestFinished(() => server.close());
  return { server, openai: new OpenAI({ baseURL: server.baseURL, apiKey: "sk-test" }) };
}

describe("the agent and its scripted model", () => {
  it("plays the conversation through the plain openai client, every tool offered", async () => {
    const { server, openai } = await scriptedModel();
    const streamed: boolean[] = [];
    const run = await runAgent(
      openai,
      billingTools(),
      { ...PASS, afterModelCall: async (_turn, _completion, stream) => void streamed.push(stream) },
      "Refund invoice INV-42",
    );
    expect(run.answer).toBe(REFUND_ANSWER);
    expect(run.toolCalls).toEqual(["lookup_invoice", "issue_refund", "send_email"]);
    expect(run.tokens).toBe(1183);
    expect(streamed).toEqual([false, true, true, true, true]);
    // Unwrapped, the hidden tool is offered to the model: the demo's wrapper is what removes it.
    expect(server.received.map((request) => request.body.stream === true)).toEqual(streamed);
    for (const request of server.received)
      expect(
        (request.body.tools as { function: { name: string } }[]).map((tool) => tool.function.name),
      ).toEqual(["lookup_invoice", "issue_refund", "send_email", "admin_reset"]);
    // The tool results went back to the model with the calls' ids.
    expect(server.received.at(-1)?.body.messages).toContainEqual({
      role: "tool",
      tool_call_id: "call_0",
      content: JSON.stringify({ delivered: true, to: "customer@example.com" }),
    });
  });

  it("answers a turn past its script with a 400 the client does not retry", async () => {
    const { server, openai } = await scriptedModel();
    const assistant = { role: "assistant" as const, content: "…" };
    const error = await openai.chat.completions
      .create({
        model: "gpt-4o-mini",
        messages: Array.from({ length: refundScript().length }, () => assistant),
      })
      .then(
        () => null,
        (caught: unknown) => caught,
      );
    expect(error).toBeInstanceOf(OpenAI.BadRequestError);
    expect((error as Error).message).toContain("no answer for /chat/completions, turn 7");
    expect(server.received).toHaveLength(1);
  });

  it("stops the agent when a hook refuses", async () => {
    const { openai } = await scriptedModel();
    const refused = new Error("refund needs approval");
    const calls: string[] = [];
    const spied: Record<string, Tool> = Object.fromEntries(
      Object.entries(billingTools()).map(([name, tool]) => [
        name,
        {
          ...tool,
          run: async (args: Record<string, unknown>) => {
            calls.push(name);
            return tool.run(args);
          },
        },
      ]),
    );
    await expect(
      runAgent(
        openai,
        spied,
        {
          ...PASS,
          beforeToolCall: async (tool) => {
            if (tool === "issue_refund") throw refused;
          },
        },
        "Refund invoice INV-42",
      ),
    ).rejects.toBe(refused);
    expect(calls).toEqual(["lookup_invoice"]);
  });
});
