/**
 * An existing MCP client agent, governed by `@gov` (`@gov/wrappers/mcp`). The agent lists the
 * billing server's tools, looks an invoice up and issues a refund, through the real
 * `@modelcontextprotocol/sdk` client talking to a real MCP server over the SDK's in-memory
 * transport (no network). The lines marked `+` govern it: the hidden tool is never listed, the
 * refund (a tool annotated `destructiveHint: true`) waits for a reviewer's grant, every call is
 * audited with its arguments hashed, and once an operator halts the agent its next call never
 * reaches the server.
 *
 * Run: `pnpm --filter @gov/examples mcp` (the embedded database in memory).
 */
import { GovernanceSDK, type GovernanceSDKOptions } from "@gov/sdk"; // +
import { governMcpClient } from "@gov/wrappers/mcp"; // +
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { z } from "zod";

/** The billing MCP server: what the agent connects to (another process, in real life). */
function billingServer(calls: string[]): McpServer {
  const server = new McpServer({ name: "billing", version: "1.0.0" });
  const invoice = { invoiceId: z.string() };
  server.registerTool(
    "lookup_invoice",
    {
      description: "An invoice's balance",
      inputSchema: invoice,
      annotations: { readOnlyHint: true },
    },
    async ({ invoiceId }) => {
      calls.push(`lookup_invoice ${invoiceId}`);
      return { content: [{ type: "text", text: `${invoiceId}: 120 EUR due` }] };
    },
  );
  server.registerTool(
    "issue_refund",
    {
      description: "Refund an invoice",
      inputSchema: { ...invoice, amount: z.number() },
      annotations: { destructiveHint: true },
    },
    async ({ invoiceId, amount }) => {
      calls.push(`issue_refund ${invoiceId} ${amount}`);
      return { content: [{ type: "text", text: `refunded ${amount} EUR on ${invoiceId}` }] };
    },
  );
  server.registerTool(
    "delete_customer",
    { description: "Delete a customer", inputSchema: { customerId: z.string() } },
    async ({ customerId }) => {
      calls.push(`delete_customer ${customerId}`);
      return { content: [{ type: "text", text: "deleted" }] };
    },
  );
  return server;
}

/** The agent's own code, unchanged by governance: it lists the tools and calls two. */
async function billingAgent(client: Client, say: (line: string) => void): Promise<void> {
  const { tools } = await client.listTools();
  say(`tools offered: ${tools.map((tool) => tool.name).join(", ")}`);
  for (const call of [
    { name: "lookup_invoice", arguments: { invoiceId: "INV-42" } },
    { name: "issue_refund", arguments: { invoiceId: "INV-42", amount: 120 } },
  ]) {
    const result = await client.callTool(call);
    const [first] = result.content as { text: string }[];
    say(`${call.name}: ${first?.text}`);
  }
}

/** Where the example writes what happened. */
export type Output = (line: string) => void;

/** Run the governed agent against the billing server, on the SDK started with `options`. */
export async function runMcpExample(options: GovernanceSDKOptions, output: Output): Promise<void> {
  const calls: string[] = [];
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
  await billingServer(calls).connect(serverSide);
  const client = new Client({ name: "billing-agent", version: "1.0.0" });
  await client.connect(clientSide);

  const sdk = await GovernanceSDK.start({ warnOnNoWrappers: false, ...options }); // +
  try {
    sdk.scope.register({
      agentId: "billing-agent",
      allowedTools: ["billing/lookup_invoice", "billing/issue_refund"],
      hiddenTools: ["billing/delete_customer"],
    }); // +
    governMcpClient(client, {
      governance: sdk,
      agentId: "billing-agent",
      serverName: "billing",
      // Refunds (destructiveHint: true) wait for a reviewer. Yours: deliver the token to one.
      approval: {
        onRequest: ({ request, toolName }) => {
          output(`approval asked: ${toolName}`);
          setTimeout(
            () => void sdk.gates.grant(request.token, { reviewerId: "bob@example.com" }),
            50,
          );
        },
      },
    }); // +

    await billingAgent(client, output);

    await sdk.presence.halt("billing-agent", { haltedBy: "ops@example.com", reason: "review" });
    try {
      await client.callTool({ name: "lookup_invoice", arguments: { invoiceId: "INV-43" } });
    } catch (error) {
      output(`after the halt: ${(error as Error).name}`);
    }
    output(`the server ran: ${calls.join("; ")}`);
    const events = await sdk.audit.getEvents({ agentId: "billing-agent" });
    const toolCalls = events.filter((event) => event.kind === "tool.call");
    const hash = String(toolCalls[0]?.metadata.argumentsHash).slice(0, 12);
    output(`audited: ${toolCalls.length} tool calls, arguments hashed (sha256 ${hash}…)`);
  } finally {
    await client.close();
    await sdk.close();
  }
  output("closed cleanly");
}

if (import.meta.url === `file://${process.argv[1]}`)
  await runMcpExample({ databaseUrl: "memory://" }, (line) => process.stdout.write(`${line}\n`));
