import { createHash } from "node:crypto";
import { AgentHaltedError, canonicalJson } from "@gov/core";
import { eventually, rejectionOf, testEngines } from "@gov/core/testing";
import { ApprovalDenied } from "@gov/gates";
import { LoopDetected } from "@gov/loop";
import { ScopeViolation } from "@gov/scope";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  MCP_SDKS,
  type McpHarness,
  mcpHarness,
  type Ran,
  registerTools,
  type TestClient,
} from "../__fixtures__/mcp";
import { InvalidWrapperOptionsError } from "../errors";
import type { ApprovalRequestNotice } from "./index";
import { governMcpClient } from "./index";

const AGENT = "billing-agent";
const SESSION = "ticket-4711";
const REFUND = { invoiceId: "INV-42", amount: 120 };

describe.each(testEngines())("governMcpClient on $name", (engine) => {
  describe.each(MCP_SDKS)("with $major", (sdk) => {
    let h: McpHarness;
    let client: TestClient;
    let ran: Ran;
    beforeEach(async () => {
      if (!engine.available) return;
      h = await mcpHarness(engine);
      h.scope.register({
        agentId: AGENT,
        allowedTools: ["billing/lookup_invoice", "billing/issue_refund", "billing/fail"],
        hiddenTools: ["billing/delete_all"],
      });
      h.loop.register({ agentId: AGENT, windowSeconds: 60, maxCalls: 3 });
      ran = [];
      const server = sdk.server();
      registerTools(server, ran);
      client = await sdk.connect(server);
    });
    afterEach(async () => {
      if (!engine.available) return;
      await client.close();
      await h.close();
    });

    function govern(options: Record<string, unknown> = {}) {
      return governMcpClient(client, {
        governance: h.governance,
        agentId: AGENT,
        sessionId: SESSION,
        serverName: "billing",
        ...options,
      });
    }
    const kinds = () => h.audit.events.map((event) => event.kind);
    const event = (kind: string) => h.audit.events.find((entry) => entry.kind === kind);
    const lookup = () => client.callTool({ name: "lookup_invoice", arguments: REFUND });

    it.skipIf(!engine.available)(
      "lists the tools without the hidden ones, and calls an allowed tool, audited with hashed arguments",
      async () => {
        govern();
        const { tools } = await client.listTools();
        expect(tools.map((tool) => tool.name).sort()).toEqual([
          "fail",
          "issue_refund",
          "lookup_invoice",
        ]);
        const result = await lookup();
        expect(result.content).toEqual([
          { type: "text", text: "lookup_invoice done: private-result" },
        ]);
        expect(ran).toEqual([{ tool: "lookup_invoice", args: REFUND }]);
        await eventually(() => kinds().includes("tool.result"));
        const hash = createHash("sha256").update(canonicalJson(REFUND)).digest("hex");
        expect(event("tool.call")).toMatchObject({
          agentId: AGENT,
          sessionId: SESSION,
          metadata: {
            provider: "mcp",
            side: "client",
            server: "billing",
            tool: "billing/lookup_invoice",
            argumentsHash: hash,
          },
        });
        expect(event("tool.result")?.metadata).toMatchObject({
          tool: "billing/lookup_invoice",
          isError: false,
          resultBytes: expect.any(Number),
        });
        expect(event("tool.result")?.parentEventId).toBe(
          `event-${kinds().indexOf("tool.call") + 1}`,
        );
        const recorded = JSON.stringify(h.audit.events);
        expect(recorded).not.toContain("INV-42");
        expect(recorded).not.toContain("private-result");
        expect(kinds()).toContain("wrapper.registered");
      },
    );

    it.skipIf(!engine.available)(
      "records the arguments and the result only with recordContent",
      async () => {
        govern({ recordContent: true });
        await lookup();
        await eventually(() => kinds().includes("tool.result"));
        expect(event("tool.call")?.metadata).toMatchObject({ input: REFUND });
        expect(JSON.stringify(event("tool.result")?.metadata)).toContain("private-result");
      },
    );

    it.skipIf(!engine.available)(
      "an error result is recorded as isError, and passed on",
      async () => {
        govern();
        const result = await client.callTool({ name: "fail", arguments: REFUND });
        expect(result.isError).toBe(true);
        await eventually(() => kinds().includes("tool.result"));
        expect(event("tool.result")?.metadata).toMatchObject({
          tool: "billing/fail",
          isError: true,
        });
      },
    );

    it.skipIf(!engine.available)(
      "a halted agent is stopped before the tool runs: the server sees no call",
      async () => {
        govern();
        await h.presence.halt(AGENT, { haltedBy: "alice@company.com", reason: "refund loop" });
        const error = await rejectionOf(lookup);
        expect(AgentHaltedError.isInstance(error)).toBe(true);
        // refused by the wrapper's own check, first (not only by scope, which checks it too)
        expect((error as AgentHaltedError).path).toBe("mcp.billing/lookup_invoice");
        expect(ran).toEqual([]);
        expect(kinds()).not.toContain("tool.call");
      },
    );

    it.skipIf(!engine.available)(
      "an out-of-scope call is refused and audited, and never reaches the server",
      async () => {
        govern();
        const error = await rejectionOf(() =>
          client.callTool({ name: "delete_all", arguments: REFUND }),
        );
        expect(ScopeViolation.isInstance(error)).toBe(true);
        expect(ran).toEqual([]);
        await eventually(() => kinds().includes("scope.violation"));
        expect(JSON.stringify(event("scope.violation"))).toContain("billing/delete_all");
        expect(kinds()).not.toContain("tool.call");
      },
    );

    it.skipIf(!engine.available)("a tool of another server's name is out of scope", async () => {
      governMcpClient(client, { governance: h.governance, agentId: AGENT, serverName: "crm" });
      expect(ScopeViolation.isInstance(await rejectionOf(lookup))).toBe(true);
      expect(ran).toEqual([]);
    });

    it.skipIf(!engine.available)("a loop is detected and the looping call refused", async () => {
      govern();
      for (let index = 0; index < 3; index++) await lookup();
      const error = await rejectionOf(lookup);
      expect(LoopDetected.isInstance(error)).toBe(true);
      expect(ran).toHaveLength(3);
      await eventually(() => kinds().includes("loop.detected"));
    });

    /** Govern with destructive tools held for approval; `decide` is the reviewer, later. */
    function governWithApproval(decide: (notice: ApprovalRequestNotice) => Promise<unknown>) {
      const notices: ApprovalRequestNotice[] = [];
      govern({
        approval: {
          timeoutMs: 10_000,
          onRequest: (notice: ApprovalRequestNotice) => {
            notices.push(notice);
            setTimeout(() => void decide(notice).catch(() => undefined), 50);
          },
        },
      });
      return notices;
    }

    it.skipIf(!engine.available)(
      "a destructive tool waits for a reviewer's grant (in another process), then runs once",
      async () => {
        const notices = governWithApproval((notice) =>
          h.reviewer.grant(notice.request.token, { reviewerId: "bob@company.com" }),
        );
        const result = await client.callTool({ name: "issue_refund", arguments: REFUND });
        expect(result.isError).toBeFalsy();
        expect(ran).toEqual([{ tool: "issue_refund", args: REFUND }]);
        expect(notices).toHaveLength(1);
        const notice = notices[0] as ApprovalRequestNotice;
        expect(notice).toMatchObject({ toolName: "billing/issue_refund", input: REFUND });
        await eventually(() => kinds().includes("tool.result"));
        expect(event("tool.call")?.metadata).toMatchObject({
          approval: { requestId: notice.request.requestId, reviewerId: "bob@company.com" },
        });
        expect((await h.reviewer.getRequest(notice.request.requestId))?.executedAt).toBeInstanceOf(
          Date,
        );
        // a read-only tool is not held
        await lookup();
        expect(notices).toHaveLength(1);
        expect(JSON.stringify(h.audit.events)).not.toContain(notice.request.token);
      },
    );

    it.skipIf(!engine.available)(
      "a denial refuses the call with the reviewer's reason, and the tool never runs",
      async () => {
        governWithApproval((notice) =>
          h.reviewer.deny(notice.request.token, {
            reviewerId: "bob@company.com",
            reason: "Not this week.",
          }),
        );
        const error = await rejectionOf(() =>
          client.callTool({ name: "issue_refund", arguments: REFUND }),
        );
        expect(ApprovalDenied.isInstance(error)).toBe(true);
        expect((error as ApprovalDenied).reason).toBe("Not this week.");
        expect(ran).toEqual([]);
        expect(kinds()).not.toContain("tool.call");
      },
    );

    it.skipIf(!engine.available)(
      "enforcement fails closed: a scope check that cannot answer refuses the call",
      async () => {
        const down = new Error("the scope store is down");
        govern({
          governance: {
            ...h.governance,
            scope: {
              check: () => Promise.reject(down),
              filterTools: <T>(_agentId: string, tools: readonly T[]) => [...tools],
            },
          },
        });
        expect(await rejectionOf(lookup)).toBe(down);
        expect(ran).toEqual([]);
        expect(kinds()).not.toContain("tool.call");
      },
    );

    it.skipIf(!engine.available)(
      "observation never breaks the call: an audit sink that throws",
      async () => {
        govern({
          governance: {
            ...h.governance,
            audit: {
              log: () => {
                throw new Error("audit down");
              },
            },
          },
        });
        const result = await lookup();
        expect(result.isError).toBeFalsy();
        expect(ran).toHaveLength(1);
      },
    );

    it.skipIf(!engine.available)(
      "wrapping twice changes nothing (a warning); another agent and an empty id are refused",
      async () => {
        govern();
        govern();
        expect(JSON.stringify(h.logger.entries)).toContain("already governed");
        await lookup();
        await eventually(() => kinds().includes("tool.result"));
        expect(kinds().filter((kind) => kind === "tool.call")).toHaveLength(1);
        expect(() => govern({ agentId: "support-agent" })).toThrow(InvalidWrapperOptionsError);
        expect(() =>
          governMcpClient(client, { governance: h.governance, agentId: "", serverName: "x" }),
        ).toThrow(InvalidWrapperOptionsError);
        expect(() =>
          governMcpClient(client, { governance: h.governance, agentId: AGENT, serverName: "a/b" }),
        ).toThrow(/must not contain "\/"/);
      },
    );
  });
});
