import { createTestDatabase, testEngines } from "@gov/core/testing";
import { silentLogger } from "@gov/sdk";
import { setTracingDisabled } from "@openai/agents";
import { describe, expect, it, onTestFinished } from "vitest";
import { runOpenAIAgentsExample } from "./openai-agents";

const SECRET = "examples-agents-secret-0123456789-abcdefghijklmnopqrs";

describe.each(testEngines())("the OpenAI Agents SDK example on $name", (engine) => {
  it.skipIf(!engine.available)(
    "governs the existing agent: hidden tool not offered, payment approved and resumed, halt enforced",
    async () => {
      const { databaseUrl, dispose } = await createTestDatabase(engine);
      onTestFinished(dispose);
      // The SDK turns tracing off under NODE_ENV=test; the example audits the run's spans.
      setTracingDisabled(false);
      onTestFinished(() => setTracingDisabled(true));
      const lines: string[] = [];
      await runOpenAIAgentsExample(
        {
          databaseUrl,
          ...(engine.name === "postgres" ? { auditSecret: SECRET } : {}),
          logger: silentLogger,
          env: {},
        },
        (line) => lines.push(line),
      );
      expect(lines).toEqual([
        "approval asked: wire_money",
        "tools offered: lookup_invoice, wire_money",
        "paused for: wire_money",
        "decisions: wire_money approved",
        "answer: Hello.",
        'the tools ran: lookup_invoice {"invoiceId":"INV-42"}; wire_money {"to":"acct-7","amount":120}',
        "after the halt: AgentHaltedError, model calls 0",
        "spent: 4500 tokens over 3 model calls",
        "audited: the run's spans, 2 tool calls",
        "closed cleanly",
      ]);
    },
  );
});
