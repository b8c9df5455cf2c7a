import { eventually, testEngines } from "@gov/core/testing";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  MCP_SDKS,
  type McpHarness,
  mcpHarness,
  type Ran,
  registerTools,
  type TestAuthInfo,
  type TestClient,
  type TestServer,
} from "../__fixtures__/mcp";
import { InvalidWrapperOptionsError } from "../errors";
import { type ApprovalRequestNotice, governMcpServer, type McpCallerContext } from "./index";

const AGENT = "billing-agent";
const AUTH: TestAuthInfo = { token: "tok-private", clientId: AGENT, scopes: ["billing"] };
const REFUND = { invoiceId: "INV-42", amount: 120 };

/** The text of a tool result's first content block. */
function textOf(result: object): string {
  const [first] = ((result as { content?: unknown }).content ?? []) as { text?: string }[];
  return first?.text ?? "";
}

describe.each(testEngines())("governMcpServer on $name", (engine) => {
  describe.each(MCP_SDKS)("with $major", (sdk) => {
    let h: McpHarness;
    let server: TestServer;
    let client: TestClient | null;
    let ran: Ran;
    let callers: McpCallerContext[];
    beforeEach(async () => {
      if (!engine.available) return;
      h = await mcpHarness(engine);
      h.scope.register({
        agentId: AGENT,
        allowedTools: ["billing/lookup_invoice", "billing/issue_refund"],
        hiddenTools: ["billing/delete_all"],
      });
      ran = [];
      callers = [];
      client = null;
      server = sdk.server();
    });
    afterEach(async () => {
      if (!engine.available) return;
      await client?.close();
      await h.close();
    });

    /** Govern the server, register the tools, and connect a client with `authInfo`. */
    async function start(
      authInfo: TestAuthInfo | undefined,
      options: Record<string, unknown> = {},
    ) {
      governMcpServer(server, {
        governance: h.governance,
        serverName: "billing",
        agentId: (caller) => {
          callers.push(caller);
          return caller.authInfo?.clientId;
        },
        ...options,
      });
      registerTools(server, ran);
      client = await sdk.connect(server, authInfo);
      return client;
    }
    const kinds = () => h.audit.events.map((event) => event.kind);

    it.skipIf(!engine.available)(
      "runs a call for the agent named by the caller's auth info, audited on the server side",
      async () => {
        const caller = await start(AUTH);
        const result = await caller.callTool({ name: "lookup_invoice", arguments: REFUND });
        expect(result.isError).toBeFalsy();
        expect(ran).toEqual([{ tool: "lookup_invoice", args: REFUND }]);
        expect(callers[0]?.authInfo?.clientId).toBe(AGENT);
        await eventually(() => kinds().includes("tool.result"));
        expect(h.audit.events.find((event) => event.kind === "tool.call")).toMatchObject({
          agentId: AGENT,
          metadata: { side: "server", tool: "billing/lookup_invoice", server: "billing" },
        });
        expect(JSON.stringify(h.audit.events)).not.toContain("tok-private");
        expect(JSON.stringify(h.audit.events)).not.toContain("INV-42");
      },
    );

    it.skipIf(!engine.available)(
      "refuses a caller without auth info (fail closed): the handler never runs",
      async () => {
        const caller = await start(undefined);
        const result = await caller.callTool({ name: "lookup_invoice", arguments: REFUND });
        expect(result.isError).toBe(true);
        expect(textOf(result)).toContain("names no agent");
        expect(ran).toEqual([]);
        expect(kinds()).not.toContain("tool.call");
      },
    );

    it.skipIf(!engine.available)(
      "refuses a halted caller, and a tool outside its scope, before the handler runs",
      async () => {
        const caller = await start(AUTH);
        const hidden = await caller.callTool({ name: "delete_all", arguments: REFUND });
        expect(hidden.isError).toBe(true);
        await eventually(() => kinds().includes("scope.violation"));
        await h.presence.halt(AGENT, { haltedBy: "alice@company.com", reason: "stop" });
        const halted = await caller.callTool({ name: "lookup_invoice", arguments: REFUND });
        expect(halted.isError).toBe(true);
        // refused by the wrapper's own halt check, first (scope checks it too)
        expect(textOf(halted)).toContain("refused in mcp.billing/lookup_invoice");
        expect(ran).toEqual([]);
        expect(kinds()).not.toContain("tool.call");
      },
    );

    it.skipIf(!engine.available)(
      "holds a destructive tool for a reviewer's approval, then runs it once",
      async () => {
        const notices: ApprovalRequestNotice[] = [];
        const caller = await start(AUTH, {
          approval: {
            timeoutMs: 10_000,
            onRequest: (notice: ApprovalRequestNotice) => {
              notices.push(notice);
              setTimeout(
                () =>
                  void h.reviewer.grant(notice.request.token, { reviewerId: "bob@company.com" }),
                50,
              );
            },
          },
        });
        const result = await caller.callTool({ name: "issue_refund", arguments: REFUND });
        expect(result.isError).toBeFalsy();
        expect(notices.map((notice) => notice.toolName)).toEqual(["billing/issue_refund"]);
        expect(ran).toEqual([{ tool: "issue_refund", args: REFUND }]);
      },
    );

    it.skipIf(!engine.available)("refuses a server whose tools are registered already", () => {
      registerTools(server, ran);
      expect(() =>
        governMcpServer(server, {
          governance: h.governance,
          serverName: "billing",
          agentId: () => AGENT,
        }),
      ).toThrow(InvalidWrapperOptionsError);
    });

    it.skipIf(!engine.available || sdk.major !== "@modelcontextprotocol/sdk@1")(
      "refuses 1.x's deprecated tool(…) on a governed server (its handler would not be governed)",
      async () => {
        await start(AUTH);
        expect(() => server.tool("legacy", async () => ({ content: [] }))).toThrow(
          InvalidWrapperOptionsError,
        );
      },
    );
  });
});
