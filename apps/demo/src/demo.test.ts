import { createTestDatabase, type TestEngine, testEngines } from "@gov/core/testing";
import { silentLogger } from "@gov/sdk";
import { describe, expect, it, onTestFinished } from "vitest";
import { billingTools, FakeLLM, type GovernanceHooks, refundScript, runAgent } from "./agent";
import { runDemo } from "./demo";

describe("the demo", () => {
  it("runs the scripted agent on the embedded database and closes", async () => {
    const lines: string[] = [];
    await runDemo({ databaseUrl: "memory://", logger: silentLogger, env: {} }, (line) =>
      lines.push(line),
    );
    expect(lines[0]).toMatch(/^governance store: embedded PGlite in memory/);
    expect(lines).toContain(
      "agent answered: Refunded 120.00 EUR on INV-42 and emailed the customer.",
    );
    expect(lines).toContain("5 model calls, 3 tool calls, 1183 tokens (fake LLM, no network)");
    expect(lines.at(-1)).toBe("closed cleanly");
    // Every plan, model call and tool call landed in one verified session chain.
    expect(lines.filter((line) => /^ {4}audit {4}seq \d+ /.test(line))).toHaveLength(12);
    expect(lines).toContainEqual(
      expect.stringMatching(
        /^audit chain of demo-[0-9a-f-]{36}: 12 events, seq 1–12, every HMAC and link verified$/,
      ),
    );
    expect(lines).toContain(
      "  subscriber saw: llm.call ×5, agent.plan ×1, tool.call ×3, tool.result ×3, approval.requested ×1, approval.granted ×1, approval.executed ×1",
    );
    // The refund waited for a human in another OS process, and ran as approved.
    expect(lines).toContainEqual(
      expect.stringMatching(
        /^ {2}approval {3}refund\.issue requested \(action sha256 [0-9a-f]{12}…, token v2 sent to the reviewer only\)$/,
      ),
    );
    expect(lines).toContainEqual(
      expect.stringMatching(
        /^ {2}reviewer {3}finance-lead@example\.com in another process \(pid \d+\) granted: matches the invoice \(sent back and applied here: the embedded database is open in this process only\)$/,
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
    // Scope, loop and presence: the hidden tool and the look-alike host are refused, the
    // retried lookup is a loop, and the operator's halt refuses everything until lifted.
    expect(lines).toContain(
      "tools offered to the model: lookup_invoice, issue_refund, send_email (admin_reset is hidden)",
    );
    expect(lines.filter((line) => line.startsWith("  refused: SCOPE_VIOLATION"))).toHaveLength(2);
    expect(lines).toContainEqual(expect.stringMatching(/^ {2}refused: LOOP_DETECTED: /));
    expect(lines).toContainEqual(
      expect.stringMatching(/^ {2}refused: AGENT_HALTED: .*by ops@example\.com.*refund review/),
    );
    expect(lines).toContain("  presence: billing-agent is Live, halted=true");
    expect(lines.filter((line) => line.startsWith("  refused: AGENT_HALTED"))).toHaveLength(2);
    // Cost: each model call reserved its worst case and settled it with the real usage; the
    // cancelled stream is recorded at 8 tokens per chunk; the oversized call is refused.
    expect(lines).toContain("  model call billing-agent: gpt-4o-mini, turn 1, reserved $0.0006144");
    expect(lines).toContain(
      "budget: $0.0002373 of $0.01 spent this session (1183 tokens), $0.0097627 left, nothing reserved: true",
    );
    expect(lines).toContain(
      "  stream     a streamed answer cancelled after 12 chunks, no usage reported: reserved $0.0012738, recorded 396 tokens (300 prompt + 8 per chunk) = $0.0001026, the rest released",
    );
    expect(lines).toContainEqual(
      expect.stringMatching(
        /^ {2}refused: BUDGET_EXCEEDED: .*perSessionUsd: \$0\.0003399 used \+ \$0\.04096 projected > \$0\.01 limit/,
      ),
    );
    expect(lines).toContain("  spend by model: gpt-4o-mini $0.0003399 (1579 tokens)");
    expect(lines).toContain(
      "decisions in the chain: approval.requested ×1, approval.granted ×1, approval.executed ×1, budget.exceeded ×1, steward.intervention ×1, scope.violation ×2, loop.detected ×1, agent.halted ×1, agent.halt_enforced ×2, agent.resumed ×1; every chain verified",
    );
  }, 120_000);

  const postgres = testEngines().find((engine) => engine.name === "postgres");
  it.skipIf(!postgres?.available)(
    "on a shared Postgres, the reviewer process grants itself and the agent wakes (real Postgres)",
    async () => {
      const { databaseUrl, dispose } = await createTestDatabase(postgres as TestEngine);
      onTestFinished(dispose);
      const lines: string[] = [];
      await runDemo(
        {
          databaseUrl,
          auditSecret: "demo-secret-0123456789-abcdefghijklmnopqrstuvwxyz",
          logger: silentLogger,
          env: {},
        },
        (line) => lines.push(line),
      );
      expect(lines).toContainEqual(
        expect.stringMatching(
          /^ {2}reviewer {3}finance-lead@example\.com in another process \(pid \d+\) granted: matches the invoice \(granted on the shared database; waitFor here saw it\)$/,
        ),
      );
      expect(lines).toContain(
        "  approved   waitFor resolved; verifyAction: the refund about to run is the one approved",
      );
      expect(lines.at(-1)).toBe("closed cleanly");
    },
    60_000,
  );

  it("stops the agent when a governance hook refuses", async () => {
    const refused = new Error("refund needs approval");
    const hooks: GovernanceHooks = {
      beforePlan: async () => undefined,
      beforeModelCall: async () => undefined,
      afterModelCall: async () => undefined,
      beforeToolCall: async (tool) => {
        if (tool === "issue_refund") throw refused;
      },
      afterToolCall: async () => undefined,
    };
    const tools = billingTools();
    const calls: string[] = [];
    const spied = Object.fromEntries(
      Object.entries(tools).map(([name, tool]) => [
        name,
        async (args: Record<string, unknown>) => {
          calls.push(name);
          return tool(args);
        },
      ]),
    );
    await expect(
      runAgent(new FakeLLM(refundScript()), spied, hooks, "Refund invoice INV-42"),
    ).rejects.toBe(refused);
    expect(calls).toEqual(["lookup_invoice"]);
  });
});
