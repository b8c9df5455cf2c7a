import { AgentHaltedError } from "@gov/core";
import { eventually, recordingLogger, rejectionOf, testEngines } from "@gov/core/testing";
import { LoopDetected, LoopModule } from "@gov/loop";
import { ScopeViolation } from "@gov/scope";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AI_SDKS } from "../__fixtures__/ai-sdk";
import { type Harness, harness, versionsOn } from "../__fixtures__/harness";
import { chatCompletion } from "../__fixtures__/openai-server";
import { InvalidWrapperOptionsError } from "../errors";
import { governTools } from "./tools";

const AGENT = "billing-agent";
const SESSION = "s-1";
const EXECUTION = { toolCallId: "call_x", messages: [] };

describe.each(testEngines())("governTools on $name", (engine) => {
  describe.each(versionsOn(engine, AI_SDKS))("with $version", (sdk) => {
    const { generateText, tool, jsonSchema, stepCountIs } = sdk.ai;
    let h: Harness;
    let loop: LoopModule;
    beforeEach(async () => {
      if (!engine.available) return;
      h = await harness(engine);
      h.scope.register({
        agentId: AGENT,
        allowedTools: ["lookup_invoice", "stream_report", "fail"],
        hiddenTools: ["delete_all"],
      });
      loop = new LoopModule({ audit: h.audit, logger: h.logger });
      loop.register({ agentId: AGENT, windowSeconds: 60, maxCalls: 2 });
    });
    afterEach(async () => {
      if (!engine.available) return;
      await loop.close();
      await h.close();
    });

    const schema = jsonSchema<{ id?: string }>({ type: "object", properties: {} });
    /** The tools, and what their `execute` functions were called with. */
    function toolSet() {
      const ran: string[] = [];
      const tools = {
        lookup_invoice: tool({
          description: "Look up an invoice",
          inputSchema: schema,
          execute: async () => {
            ran.push("lookup_invoice");
            return { amount: 42, note: "private-result" };
          },
        }),
        wire_money: tool({
          description: "Wire money",
          inputSchema: schema,
          execute: async () => {
            ran.push("wire_money");
            return "wired";
          },
        }),
        fail: tool({
          description: "Fails",
          inputSchema: schema,
          execute: async (): Promise<string> => {
            ran.push("fail");
            throw new TypeError("private-failure");
          },
        }),
        stream_report: tool({
          description: "Streams a report",
          inputSchema: schema,
          async *execute() {
            ran.push("stream_report");
            yield "draft";
            yield "final";
          },
        }),
        client_side: tool({ description: "Runs in the browser", inputSchema: schema }),
      };
      return { tools, ran };
    }

    function govern<T extends Record<string, object>>(tools: T, options = {}) {
      return governTools(tools, {
        governance: { halt: h.presence, scope: h.scope, loop, audit: h.audit, logger: h.logger },
        agentId: AGENT,
        sessionId: SESSION,
        ...options,
      });
    }
    const kinds = () => h.audit.events.map((event) => event.kind);
    const event = (kind: string) => h.audit.events.find((entry) => entry.kind === kind);

    it.skipIf(!engine.available)(
      "executes an allowed tool for generateText, auditing tool.call and tool.result without content",
      async () => {
        h.server.reply = () =>
          h.server.received.length === 1
            ? { json: chatCompletion({ toolCalls: ["lookup_invoice"] }) }
            : { json: chatCompletion({ content: "The invoice is 42." }) };
        const { tools, ran } = toolSet();
        const result = await generateText({
          model: sdk.chat(h.server.baseURL),
          prompt: "hi",
          tools: govern(tools),
          stopWhen: stepCountIs(2),
          maxRetries: 0,
        });
        expect(result.text).toBe("The invoice is 42.");
        expect(ran).toEqual(["lookup_invoice"]);
        expect(result.steps[0]?.toolResults.map((entry) => entry.output)).toEqual([
          { amount: 42, note: "private-result" },
        ]);
        await eventually(() => kinds().includes("tool.result"));
        const call = event("tool.call");
        expect(call?.metadata).toMatchObject({ tool: "lookup_invoice", toolCallId: "call_0" });
        const done = event("tool.result");
        expect(done?.sessionId).toBe(SESSION);
        expect(done?.parentEventId).toBe(`event-${kinds().indexOf("tool.call") + 1}`);
        expect(done?.metadata).toMatchObject({ tool: "lookup_invoice", toolCallId: "call_0" });
        expect(JSON.stringify(h.audit.events)).not.toContain("private-result");
      },
    );

    it.skipIf(!engine.available)(
      "refuses a tool outside scope when it is executed: the tool never runs",
      async () => {
        h.server.reply = () =>
          h.server.received.length === 1
            ? { json: chatCompletion({ toolCalls: ["wire_money"] }) }
            : { json: chatCompletion({ content: "I may not." }) };
        const { tools, ran } = toolSet();
        const governed = govern(tools);
        const result = await generateText({
          model: sdk.chat(h.server.baseURL),
          prompt: "hi",
          tools: governed,
          stopWhen: stepCountIs(2),
          maxRetries: 0,
        });
        const refusal = result.steps[0]?.content.find((part) => part.type === "tool-error");
        expect(ScopeViolation.isInstance((refusal as { error?: unknown } | undefined)?.error)).toBe(
          true,
        );
        const direct = await rejectionOf(() => governed.wire_money.execute?.({}, EXECUTION));
        expect(ScopeViolation.isInstance(direct)).toBe(true);
        expect(ran).toEqual([]);
        await eventually(() => kinds().includes("scope.violation"));
        expect(kinds()).not.toContain("tool.call");
      },
    );

    it.skipIf(!engine.available)("refuses a halted agent before the tool runs", async () => {
      const { tools, ran } = toolSet();
      const governed = govern(tools);
      await h.presence.halt(AGENT, { haltedBy: "ops", reason: "review" });
      const error = await rejectionOf(() => governed.lookup_invoice.execute?.({}, EXECUTION));
      expect(AgentHaltedError.isInstance(error)).toBe(true);
      expect(ran).toEqual([]);
      expect(kinds()).not.toContain("tool.call");
    });

    it.skipIf(!engine.available)("refuses the call that makes a loop", async () => {
      const { tools, ran } = toolSet();
      const governed = govern(tools);
      await governed.lookup_invoice.execute?.({ id: "1" }, EXECUTION);
      await governed.lookup_invoice.execute?.({ id: "2" }, EXECUTION);
      const error = await rejectionOf(() =>
        governed.lookup_invoice.execute?.({ id: "3" }, EXECUTION),
      );
      expect(LoopDetected.isInstance(error)).toBe(true);
      expect(ran).toEqual(["lookup_invoice", "lookup_invoice"]);
      await eventually(() => kinds().includes("loop.detected"));
      expect(kinds().filter((kind) => kind === "tool.call")).toHaveLength(2);
    });

    it.skipIf(!engine.available)(
      "audits tool.error with the error's type, and rethrows the same error",
      async () => {
        const { tools } = toolSet();
        const governed = govern(tools);
        const error = await rejectionOf(() => governed.fail.execute?.({}, EXECUTION));
        expect(error).toBeInstanceOf(TypeError);
        expect((error as Error).message).toBe("private-failure");
        await eventually(() => kinds().includes("tool.error"));
        expect(event("tool.error")?.metadata).toMatchObject({
          tool: "fail",
          error: { type: "TypeError", name: "TypeError" },
        });
        expect(kinds()).not.toContain("tool.result");
        expect(JSON.stringify(h.audit.events)).not.toContain("private-failure");
      },
    );

    it.skipIf(!engine.available)(
      "keeps a streaming tool streaming, and audits its last output",
      async () => {
        const { tools } = toolSet();
        const governed = govern(tools, {
          recordContent: true,
          redact: ({ part, content }: { part: string; content: unknown }) =>
            part === "output" ? `<${String(content)}>` : content,
        });
        const outputs: unknown[] = [];
        const stream = governed.stream_report.execute?.({}, EXECUTION) as AsyncIterable<unknown>;
        for await (const output of stream) outputs.push(output);
        expect(outputs).toEqual(["draft", "final"]);
        await eventually(() => kinds().includes("tool.result"));
        expect(event("tool.result")?.metadata).toMatchObject({ outputs: 2, output: "<final>" });
        expect(event("tool.call")?.metadata?.input).toEqual({});
      },
    );

    it.skipIf(!engine.available)(
      "records the arguments and the result only with recordContent, through redact",
      async () => {
        const { tools } = toolSet();
        const governed = govern(tools, {
          recordContent: true,
          redact: ({ part, operation }: { part: string; operation: string }) =>
            `${part}:${operation}`,
        });
        await governed.lookup_invoice.execute?.({ id: "private-arg" }, EXECUTION);
        await eventually(() => kinds().includes("tool.result"));
        expect(event("tool.call")?.metadata?.input).toBe("input:tools.lookup_invoice.execute");
        expect(event("tool.result")?.metadata?.output).toBe("output:tools.lookup_invoice.execute");
        expect(JSON.stringify(h.audit.events)).not.toContain("private-");
      },
    );
  });
});

describe("governTools' tool set and options", () => {
  const execute = async () => "ok";
  const tools = { a: { description: "A", execute }, b: { description: "client-side" } };

  it("returns a new set and leaves the given one, and tools without execute, as they were", () => {
    const governed = governTools(tools, { governance: {}, agentId: "a" });
    expect(governed).not.toBe(tools);
    expect(tools.a.execute).toBe(execute);
    expect(governed.a.execute).not.toBe(execute);
    expect(governed.a.description).toBe("A");
    expect(governed.b).toBe(tools.b);
  });

  it("leaves an already governed tool as it is, with a warning", () => {
    const logger = recordingLogger();
    const once = governTools(tools, { governance: { logger }, agentId: "a" });
    const twice = governTools(once, { governance: { logger }, agentId: "a" });
    expect(twice.a).toBe(once.a);
    expect(logger.lines.filter((line) => line.level === "warn")).toHaveLength(1);
  });

  it("refuses onToolOutOfScope, a tool set that is not an object, and an empty agent id", () => {
    const refusal = (run: () => unknown) => {
      try {
        run();
      } catch (error) {
        return error as InvalidWrapperOptionsError;
      }
      throw new Error("nothing was thrown");
    };
    const misplaced = refusal(() =>
      governTools(tools, { governance: {}, agentId: "a", onToolOutOfScope: "throw" } as never),
    );
    expect(InvalidWrapperOptionsError.isInstance(misplaced)).toBe(true);
    expect(misplaced.field).toBe("options.onToolOutOfScope");
    const list = refusal(() => governTools([] as never, { governance: {}, agentId: "a" }));
    expect(list.field).toBe("tools");
    const empty = refusal(() => governTools(tools, { governance: {}, agentId: "" }));
    expect(InvalidWrapperOptionsError.isInstance(empty)).toBe(true);
  });
});
