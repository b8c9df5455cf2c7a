import { createTestDatabase, testEngines } from "@gov/core/testing";
import { silentLogger } from "@gov/sdk";
import { describe, expect, it, onTestFinished } from "vitest";
import { runMcpExample } from "./mcp";

const SECRET = "examples-mcp-secret-0123456789-abcdefghijklmnopqrstu";

describe.each(testEngines())("the MCP example on $name", (engine) => {
  it.skipIf(!engine.available)(
    "governs the existing MCP client: hidden tool unlisted, refund approved, halt enforced",
    async () => {
      const { databaseUrl, dispose } = await createTestDatabase(engine);
      onTestFinished(dispose);
      const lines: string[] = [];
      await runMcpExample(
        {
          databaseUrl,
          ...(engine.name === "postgres" ? { auditSecret: SECRET } : {}),
          logger: silentLogger,
          env: {},
        },
        (line) => lines.push(line),
      );
      expect(lines).toEqual([
        "tools offered: lookup_invoice, issue_refund",
        "lookup_invoice: INV-42: 120 EUR due",
        "approval asked: billing/issue_refund",
        "issue_refund: refunded 120 EUR on INV-42",
        "after the halt: AgentHaltedError",
        "the server ran: lookup_invoice INV-42; issue_refund INV-42 120",
        expect.stringMatching(/^audited: 2 tool calls, arguments hashed \(sha256 [0-9a-f]{12}…\)$/),
        "closed cleanly",
      ]);
    },
  );
});
