/**
 * Attacks on `governAgent`: tools that reach the runner without the governed copy's guardrails.
 * The real `@openai/agents` Runner against the loopback OpenAI server, on both engines.
 */
import { eventually, testEngines } from "@gov/core/testing";
import { Agent, type MCPServer, OpenAIResponsesModel, run, tool } from "@openai/agents";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type AgentHarness, agentHarness } from "../__fixtures__/openai-agent";
import {
  AGENT,
  agentResponse,
  billingAgent,
  client,
  offered,
  SESSION,
  script,
} from "../__fixtures__/openai-agents";
import { governAgent } from "./govern-agent";

const EMPTY = {
  type: "object" as const,
  properties: {},
  required: [] as string[],
  additionalProperties: false as const,
};

/** An MCP server of the Agents SDK (its `MCPServer` interface) with one tool, recording its calls. */
function mcpServer(ran: string[], toolName: string): MCPServer {
  return {
    name: "billing-mcp",
    cacheToolsList: false,
    connect: async () => undefined,
    close: async () => undefined,
    listTools: async () => [{ name: toolName, description: "Wipe", inputSchema: { ...EMPTY } }],
    callTool: async (name: string) => {
      ran.push(name);
      return [{ type: "text", text: "wiped" }];
    },
    invalidateToolsCache: async () => undefined,
  } as unknown as MCPServer;
}

describe.each(testEngines())("governAgent attacks on $name", (engine) => {
  let h: AgentHarness;
  beforeEach(async () => {
    if (!engine.available) return;
    // lookup_invoice allowed, delete_all hidden
    h = await agentHarness(engine);
  });
  afterEach(async () => {
    if (!engine.available) return;
    await h.close();
  });

  /** The billing agent, its model a plain client's (only the guardrails govern). */
  function ungovernedModel() {
    const billing = billingAgent();
    return {
      ...billing,
      agent: billing.agent.clone({ model: new OpenAIResponsesModel(client(h.server), "gpt-4o") }),
    };
  }
  const options = () => ({ governance: h.governance, agentId: AGENT, sessionId: SESSION });

  it.skipIf(!engine.available)(
    "a tool of the agent's MCP servers (mcpServers) is governed: outside scope, it does not run",
    async () => {
      const ran: string[] = [];
      const { agent } = ungovernedModel();
      const governed = governAgent(
        agent.clone({ mcpServers: [mcpServer(ran, "wipe")] }),
        options(),
      );
      script(h.server, agentResponse({ calls: [{ name: "wipe", input: {} }] }));
      await run(governed, "Wipe it.");
      expect(ran).toEqual([]);
      await eventually(() => h.kinds().includes("scope.violation"));
    },
  );

  it.skipIf(!engine.available)(
    "an allowed tool of an MCP server runs through the guardrails, audited",
    async () => {
      const ran: string[] = [];
      const { agent } = ungovernedModel();
      const governed = governAgent(
        agent.clone({ mcpServers: [mcpServer(ran, "lookup_invoice")], tools: [] }),
        options(),
      );
      script(h.server, agentResponse({ calls: [{ name: "lookup_invoice", input: {} }] }));
      await run(governed, "Look it up.");
      expect(ran).toEqual(["lookup_invoice"]);
      await eventually(() => h.kinds().includes("tool.result"));
      const call = h.audit.events.find((event) => event.kind === "tool.call");
      expect(call?.metadata).toMatchObject({ provider: "openai-agents", tool: "lookup_invoice" });
    },
  );

  it.skipIf(!engine.available)("a hidden tool of an MCP server is never offered", async () => {
    const ran: string[] = [];
    const { agent } = ungovernedModel();
    const governed = governAgent(
      agent.clone({ mcpServers: [mcpServer(ran, "delete_all")], tools: [] }),
      options(),
    );
    script(h.server);
    await run(governed, "hello");
    expect(offered(h.server.received.at(-1)?.body ?? {})).not.toContain("delete_all");
  });

  it.skipIf(!engine.available)(
    "a tool added to the governed agent afterwards is governed: outside scope, it does not run",
    async () => {
      const ran: string[] = [];
      const { agent } = ungovernedModel();
      const governed = governAgent(agent, options());
      governed.tools.push(
        tool({
          name: "wipe",
          description: "Wipe",
          parameters: EMPTY,
          strict: true,
          execute: async () => {
            ran.push("wipe");
            return "wiped";
          },
        }),
      );
      script(h.server, agentResponse({ calls: [{ name: "wipe", input: {} }] }));
      await run(governed, "Wipe it.");
      expect(ran).toEqual([]);
      await eventually(() => h.kinds().includes("scope.violation"));
    },
  );

  it.skipIf(!engine.available)(
    "a scope store that fails refuses the call (fail closed) without telling the model its error",
    async () => {
      const { agent, ran } = ungovernedModel();
      const down = new Error("connect ECONNREFUSED postgres://gov:hunter2@db:5432/gov");
      const governed = governAgent(agent, {
        ...options(),
        governance: {
          ...h.governance,
          scope: {
            check: () => Promise.reject(down),
            filterTools: <T>(_agentId: string, tools: readonly T[]) => [...tools],
          },
        },
      });
      script(
        h.server,
        agentResponse({ calls: [{ name: "lookup_invoice", input: { id: "INV-42" } }] }),
      );
      const result = await run(governed, "Look it up.");
      expect(ran).toEqual([]);
      const sent = JSON.stringify(h.server.received.at(-1)?.body ?? {});
      expect(sent).toContain("governance check could not be completed");
      expect(sent).not.toContain("hunter2");
      const guardrail = result.toolInputGuardrailResults.find(
        (entry) => entry.guardrail.name === "gov.tool-input",
      );
      expect(guardrail?.output.outputInfo).toMatchObject({ code: "UNEXPECTED_ERROR" });
      expect(JSON.stringify(h.logger.entries)).toContain("governance check of a tool call failed");
    },
  );

  it.skipIf(!engine.available)(
    "a handoff to an agent that is not governed is warned about; to a governed one, not",
    async () => {
      const { agent } = ungovernedModel();
      const refunds = new Agent({ name: "Refunds", model: "gpt-4o" });
      governAgent(agent.clone({ handoffs: [refunds] }), options());
      const warnings = () => h.logger.messages("warn").join("\n");
      expect(warnings()).toContain("handoffs lead to agents that are not governed");
      const before = warnings();
      governAgent(agent.clone({ handoffs: [governAgent(refunds, options())] }), options());
      expect(warnings()).toBe(before);
    },
  );

  it.skipIf(!engine.available)(
    "a function tool whose isEnabled is a boolean (as the SDK allows) does not break the run",
    async () => {
      const { agent, tools } = ungovernedModel();
      const plain = {
        ...tools.lookupInvoice,
        isEnabled: true,
      } as unknown as typeof tools.lookupInvoice;
      const governed = governAgent(agent.clone({ tools: [plain] }), options());
      script(h.server);
      const result = await run(governed, "hello");
      expect(result.finalOutput).toBe("Done.");
      expect(offered(h.server.received.at(-1)?.body ?? {})).toContain("lookup_invoice");
    },
  );
});
