/**
 * Attacks on `@gov/wrappers/mcp`: what the governed call checked must be what the server runs.
 */
import { rejectionOf, testEngines } from "@gov/core/testing";
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
import {
  type ApprovalRequestNotice,
  argumentsHash,
  governMcpClient,
  governMcpServer,
} from "./index";

const AGENT = "billing-agent";
const SESSION = "ticket-4711";
const AUTH: TestAuthInfo = { token: "tok-private", clientId: AGENT, scopes: ["billing"] };

describe("argumentsHash on hostile arguments", () => {
  it("neither throws nor hangs on cyclic, getter-laden or huge arguments", () => {
    const cyclic: Record<string, unknown> = { a: 1 };
    cyclic.self = cyclic;
    const getter = {
      get boom(): never {
        throw new Error("getter");
      },
    };
    const huge = { list: Array.from({ length: 200_000 }, (_, index) => index) };
    for (const value of [cyclic, getter, huge, 10n, () => 1, Symbol("s")])
      expect(argumentsHash(value)).toMatch(/^[0-9a-f]{64}$/);
  });
});

describe.each(testEngines())("MCP attacks on $name", (engine) => {
  describe.each(MCP_SDKS)("with $major", (sdk) => {
    let h: McpHarness;
    let client: TestClient;
    let server: TestServer;
    let ran: Ran;
    beforeEach(async () => {
      if (!engine.available) return;
      h = await mcpHarness(engine);
      h.scope.register({
        agentId: AGENT,
        allowedTools: ["billing/lookup_invoice", "billing/issue_refund", "billing/fail"],
        hiddenTools: ["billing/delete_all"],
      });
      ran = [];
    });
    afterEach(async () => {
      if (!engine.available) return;
      await client.close();
      await h.close();
    });

    async function governedClient(options: Record<string, unknown> = {}) {
      server = sdk.server();
      registerTools(server, ran);
      client = await sdk.connect(server);
      governMcpClient(client, {
        governance: h.governance,
        agentId: AGENT,
        sessionId: SESSION,
        serverName: "billing",
        ...options,
      });
    }

    it.skipIf(!engine.available)(
      "a tool name changed after callTool was called is not the tool that runs",
      async () => {
        await governedClient();
        const params = { name: "lookup_invoice", arguments: { invoiceId: "INV-42" } };
        const call = client.callTool(params);
        params.name = "delete_all"; // the hidden tool, swapped in while the checks run
        await call.catch(() => undefined);
        expect(ran.map((entry) => entry.tool)).not.toContain("delete_all");
      },
    );

    it.skipIf(!engine.available)(
      "a name getter cannot pass scope with one tool and call another",
      async () => {
        await governedClient();
        let reads = 0;
        const params = {
          get name() {
            reads++;
            return reads <= 2 ? "lookup_invoice" : "delete_all";
          },
          arguments: { invoiceId: "INV-42" },
        };
        await client.callTool(params).catch(() => undefined);
        expect(ran.map((entry) => entry.tool)).not.toContain("delete_all");
      },
    );

    it.skipIf(!engine.available)(
      "arguments changed after the grant was verified are not what the tool receives",
      async () => {
        const args = { invoiceId: "INV-42", amount: 120 };
        await governedClient({
          governance: {
            ...h.governance,
            gates: new Proxy(h.gates, {
              get(target, key) {
                if (key === "verifyAction")
                  return async (...rest: unknown[]) => {
                    const granted = await (
                      target.verifyAction as (...a: unknown[]) => Promise<unknown>
                    )(...rest);
                    args.amount = 1_000_000; // after the grant, before the call is sent
                    return granted;
                  };
                const value = Reflect.get(target, key, target);
                return typeof value === "function" ? value.bind(target) : value;
              },
            }),
          },
          approval: {
            timeoutMs: 10_000,
            onRequest: (notice: ApprovalRequestNotice) => {
              setTimeout(
                () =>
                  void h.reviewer
                    .grant(notice.request.token, { reviewerId: "bob@company.com" })
                    .catch(() => undefined),
                50,
              );
            },
          },
        });
        await client.callTool({ name: "issue_refund", arguments: args }).catch(() => undefined);
        expect(ran).toEqual([{ tool: "issue_refund", args: { invoiceId: "INV-42", amount: 120 } }]);
      },
    );

    it.skipIf(!engine.available)(
      "arguments that are not JSON are refused with a clear error, nothing sent",
      async () => {
        await governedClient();
        const cyclic: Record<string, unknown> = { invoiceId: "INV-42" };
        cyclic.self = cyclic;
        const error = await rejectionOf(() =>
          client.callTool({ name: "lookup_invoice", arguments: cyclic }),
        );
        expect(InvalidWrapperOptionsError.isInstance(error)).toBe(true);
        expect(ran).toEqual([]);
      },
    );

    it.skipIf(!engine.available)(
      "approval.steward without a steward port is refused, not skipped (client and server)",
      async () => {
        const approval = { steward: true, onRequest: () => undefined };
        const error = await rejectionOf(() => governedClient({ approval }));
        expect(InvalidWrapperOptionsError.isInstance(error)).toBe(true);
        expect((error as InvalidWrapperOptionsError).message).toContain("options.approval.steward");
        expect(() =>
          governMcpServer(sdk.server(), {
            governance: h.governance,
            serverName: "billing",
            agentId: () => AGENT,
            approval,
          }),
        ).toThrow(/options\.approval\.steward/);
      },
    );

    it.skipIf(!engine.available)(
      "case variants and look-alikes of an allowed tool's name are out of scope",
      async () => {
        await governedClient();
        for (const name of [
          "Lookup_Invoice",
          "lookup_invo\u0456ce",
          "lookup_invoice ",
          "billing/lookup_invoice",
        ]) {
          const error = await rejectionOf(() => client.callTool({ name, arguments: {} }));
          expect((error as { code?: string }).code).toBe("SCOPE_VIOLATION");
        }
        expect(ran).toEqual([]);
      },
    );

    it.skipIf(!engine.available)(
      "task calls (1.x experimental.tasks.callToolStream) cannot reach a tool past the governed callTool",
      async () => {
        await governedClient();
        const tasks = (client as unknown as { experimental?: { tasks?: Record<string, unknown> } })
          .experimental?.tasks;
        // 2.x has no task calls on the client: nothing to refuse
        if (typeof tasks?.callToolStream !== "function") return;
        const stream = (tasks.callToolStream as (params: object) => AsyncIterable<unknown>)({
          name: "delete_all",
          arguments: {},
        });
        const error = await rejectionOf(async () => {
          for await (const _message of stream) {
            // drained
          }
        });
        expect(InvalidWrapperOptionsError.isInstance(error)).toBe(true);
        expect(ran).toEqual([]);
      },
    );

    it.skipIf(!engine.available)(
      "server side: task tools (1.x registerToolTask) cannot be registered ungoverned",
      async () => {
        server = sdk.server();
        governMcpServer(server, {
          governance: h.governance,
          serverName: "billing",
          agentId: ({ authInfo }) => authInfo?.clientId,
        });
        const tasks = (server as unknown as { experimental?: { tasks?: Record<string, unknown> } })
          .experimental?.tasks;
        if (typeof tasks?.registerToolTask === "function")
          expect(() =>
            (tasks.registerToolTask as (...args: unknown[]) => unknown)(
              "wipe",
              {},
              {
                createTask: async () => ({}),
              },
            ),
          ).toThrow(InvalidWrapperOptionsError);
        client = await sdk.connect(server, AUTH);
      },
    );

    it.skipIf(!engine.available)(
      "server side: a tool renamed with update() is scoped and audited by its new name",
      async () => {
        server = sdk.server();
        governMcpServer(server, {
          governance: h.governance,
          serverName: "billing",
          agentId: ({ authInfo }) => authInfo?.clientId,
        });
        const entry = server.registerTool(
          "lookup_invoice",
          { description: "read" } as never,
          (async () => {
            ran.push({ tool: "renamed", args: null });
            return { content: [{ type: "text", text: "ok" }] };
          }) as never,
        ) as unknown as { update(updates: object): void };
        entry.update({ name: "delete_all" }); // the hidden tool's name
        client = await sdk.connect(server, AUTH);
        const result = await client.callTool({ name: "delete_all", arguments: {} });
        expect(result.isError).toBe(true);
        expect(ran).toEqual([]);
      },
    );
  });
});
