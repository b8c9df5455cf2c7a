import { AgentHaltedError } from "@gov/core";
import {
  eventually,
  recordingAuditSink,
  recordingLogger,
  rejectionOf,
  testEngines,
} from "@gov/core/testing";
import { PriceTable } from "@gov/cost";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { CLIENTS, versionsOn } from "../__fixtures__/harness";
import { AGENT, type AgentHarness, agentHarness, SESSION } from "../__fixtures__/openai-agent";
import {
  CHAT_USAGE,
  chatChunks,
  chatCompletion,
  RESPONSES_USAGE,
  response,
  responseEvents,
} from "../__fixtures__/openai-server";
import { InvalidWrapperOptionsError, ToolCallOutOfScopeError } from "../errors";
import { wrapOpenAI } from "./wrap";

/** gpt-4o's rates from the price table, applied part by part. */
function expectedUsd(): number {
  const price = new PriceTable().lookup("gpt-4o")?.price;
  if (!price) throw new Error("gpt-4o is not in the price table");
  const rate = (value: string | null, fallback: string) => Number(value ?? fallback) / 1e6;
  return (
    200 * rate(price.inputUsdPerMillion, "0") +
    1000 * rate(price.cachedInputUsdPerMillion, price.inputUsdPerMillion) +
    100 * rate(price.outputUsdPerMillion, "0") +
    200 * rate(price.reasoningUsdPerMillion, price.outputUsdPerMillion)
  );
}

describe.each(testEngines())("wrapOpenAI on $name", (engine) => {
  describe.each(versionsOn(engine, CLIENTS))("with $major", (client) => {
    let h: AgentHarness;
    beforeEach(async () => {
      if (engine.available) h = await agentHarness(engine);
    });
    afterEach(async () => {
      if (engine.available) await h.close();
    });

    /** What the coverage port was told, as `agent:client:event`. */
    let covered: string[] = [];
    function wrapped(options: Record<string, unknown> = {}) {
      const openai = client.create(h.server.baseURL);
      covered = [];
      return wrapOpenAI(openai, {
        governance: {
          ...h.governance,
          coverage: {
            record: (agentId: string, name: string, event?: string) =>
              void covered.push(`${agentId}:${name}:${event ?? "call"}`),
          },
        },
        agentId: AGENT,
        sessionId: SESSION,
        ...options,
      });
    }

    const snapshot = () => h.snapshot();
    const kinds = () => h.kinds();

    it.skipIf(!engine.available)(
      "records the client as covered when wrapped and on each admitted call",
      async () => {
        h.server.reply = () => ({ json: chatCompletion() });
        const openai = wrapped();
        await openai.chat.completions.create({
          model: "gpt-4o",
          messages: [{ role: "user", content: "hi" }],
        });
        await h.presence.halt(AGENT, { haltedBy: "ops", reason: "review" });
        await rejectionOf(() =>
          openai.chat.completions.create({
            model: "gpt-4o",
            messages: [{ role: "user", content: "hi" }],
          }),
        );
        expect(covered).toEqual([`${AGENT}:openai:wrapped`, `${AGENT}:openai:call`]);
      },
    );

    it.skipIf(!engine.available)(
      "refuses a halted agent before any request reaches the server",
      async () => {
        const openai = wrapped();
        await h.presence.halt(AGENT, { haltedBy: "ops", reason: "review" });
        const error = await rejectionOf(() =>
          openai.chat.completions.create({
            model: "gpt-4o",
            messages: [{ role: "user", content: "hi" }],
          }),
        );
        expect(AgentHaltedError.isInstance(error)).toBe(true);
        expect(h.server.received).toEqual([]);
      },
    );

    it.skipIf(!engine.available)("refuses a call over budget before any request", async () => {
      h.cost.register({ agentId: AGENT, perSessionUsd: 0.000001 });
      const openai = wrapped();
      const error = await rejectionOf(() =>
        openai.chat.completions.create({
          model: "gpt-4o",
          max_tokens: 1000,
          messages: [{ role: "user", content: "hi" }],
        }),
      );
      expect((error as { code?: string }).code).toBe("BUDGET_EXCEEDED");
      expect(h.server.received).toEqual([]);
    });

    it.skipIf(!engine.available)(
      "refuses a model outside allowedModels before any request",
      async () => {
        const openai = wrapped();
        const error = await rejectionOf(() =>
          openai.responses.create({ model: "gpt-4o-mini", input: "hi" }),
        );
        expect((error as { code?: string }).code).toBe("SCOPE_VIOLATION");
        expect(h.server.received).toEqual([]);
      },
    );

    it.skipIf(!engine.available)(
      "strips hidden tools from what the server receives, and audits the call",
      async () => {
        h.server.reply = () => ({ json: chatCompletion() });
        const openai = wrapped();
        const tool = (name: string) => ({
          type: "function" as const,
          function: { name, parameters: {} },
        });
        await openai.chat.completions.create({
          model: "gpt-4o",
          messages: [{ role: "user", content: "secret" }],
          tools: [tool("lookup_invoice"), tool("delete_all")],
        });
        const sent = h.server.received[0]?.body.tools as { function: { name: string } }[];
        expect(sent.map((t) => t.function.name)).toEqual(["lookup_invoice"]);
        await eventually(() => kinds().includes("llm.result"));
        const call = h.audit.events.find((event) => event.kind === "llm.call");
        expect(call?.metadata).toMatchObject({
          provider: "openai",
          tools: ["lookup_invoice"],
          hiddenToolsRemoved: 1,
        });
        expect(JSON.stringify(h.audit.events)).not.toContain("secret");
      },
    );

    it.skipIf(!engine.available)(
      "prices usage with cached and reasoning tokens exactly and settles the reservation",
      async () => {
        h.server.reply = () => ({ json: chatCompletion() });
        const openai = wrapped();
        const completion = await openai.chat.completions.create({
          model: "gpt-4o",
          max_tokens: 500,
          messages: [{ role: "user", content: "hi" }],
        });
        expect(completion.usage).toEqual(CHAT_USAGE);
        const after = await snapshot();
        expect(after.sessionUsdReserved).toBe(0);
        expect(after.sessionUsdUsed).toBeCloseTo(expectedUsd(), 12);
        await eventually(() => kinds().includes("llm.result"));
        const result = h.audit.events.find((event) => event.kind === "llm.result");
        expect(result?.metadata?.usd).toBeCloseTo(expectedUsd(), 12);
        expect(result?.metadata?.finishReason).toBe("stop");
      },
    );

    it.skipIf(!engine.available)("prices a Responses call the same way", async () => {
      h.server.reply = () => ({ json: response() });
      const openai = wrapped();
      const result = await openai.responses.create({
        model: "gpt-4o",
        input: "hi",
        max_output_tokens: 500,
      });
      expect(result.usage).toEqual(RESPONSES_USAGE);
      const after = await snapshot();
      expect(after.sessionUsdReserved).toBe(0);
      expect(after.sessionUsdUsed).toBeCloseTo(expectedUsd(), 12);
    });

    it.skipIf(!engine.available)(
      "removes a returned tool call outside scope, and audits it",
      async () => {
        h.server.reply = () => ({
          json: chatCompletion({ toolCalls: ["lookup_invoice", "wire_money"] }),
        });
        const openai = wrapped();
        const completion = await openai.chat.completions.create({
          model: "gpt-4o",
          messages: [{ role: "user", content: "hi" }],
        });
        expect(
          completion.choices[0]?.message.tool_calls?.map(
            (c) => (c as { function: { name: string } }).function.name,
          ),
        ).toEqual(["lookup_invoice"]);
        await eventually(() => kinds().includes("llm.tool_call_blocked"));
        expect(kinds()).toContain("scope.violation");
        expect((await snapshot()).sessionUsdReserved).toBe(0);
      },
    );

    it.skipIf(!engine.available)(
      "throws for a returned tool call outside scope with onToolOutOfScope: throw",
      async () => {
        h.server.reply = () => ({ json: response({ toolCalls: ["wire_money"] }) });
        const openai = wrapped({ onToolOutOfScope: "throw" });
        const error = await rejectionOf(() =>
          openai.responses.create({ model: "gpt-4o", input: "hi" }),
        );
        expect(ToolCallOutOfScopeError.isInstance(error)).toBe(true);
        const after = await snapshot();
        expect(after.sessionUsdReserved).toBe(0);
        expect(after.sessionUsdUsed).toBeCloseTo(expectedUsd(), 12);
      },
    );

    it.skipIf(!engine.available)(
      "audits llm.error, releases the reservation and rethrows the same error",
      async () => {
        h.server.reply = () => ({
          json: { error: { message: "bad", type: "invalid_request_error" } },
          status: 400,
        });
        const openai = wrapped();
        const promise = openai.chat.completions.create({
          model: "gpt-4o",
          messages: [{ role: "user", content: "hi" }],
        });
        const error = await rejectionOf(() => promise);
        expect((error as { status?: number }).status).toBe(400);
        expect(await rejectionOf(() => promise)).toBe(error);
        const after = await snapshot();
        expect(after.sessionUsdReserved).toBe(0);
        expect(after.sessionUsdUsed).toBe(0);
        await eventually(() => kinds().includes("llm.error"));
      },
    );

    it.skipIf(!engine.available)(
      "settles a completed chat stream, and hides the usage chunk the host did not ask for",
      async () => {
        h.server.reply = ({ body }) => ({ sse: chatChunks(body) });
        const openai = wrapped();
        const stream = await openai.chat.completions.create({
          model: "gpt-4o",
          stream: true,
          messages: [{ role: "user", content: "hi" }],
        });
        const seen: unknown[] = [];
        for await (const chunk of stream) seen.push(chunk);
        expect(h.server.received[0]?.body.stream_options).toEqual({ include_usage: true });
        expect(seen.every((chunk) => (chunk as { choices: unknown[] }).choices.length > 0)).toBe(
          true,
        );
        const after = await snapshot();
        expect(after.sessionUsdReserved).toBe(0);
        expect(after.sessionUsdUsed).toBeCloseTo(expectedUsd(), 12);
      },
    );

    it.skipIf(!engine.available)(
      "removes an out-of-scope tool call from a chat stream (the .stream() helper sees none)",
      async () => {
        h.server.reply = ({ body }) => ({
          sse: chatChunks(body, { toolCalls: ["wire_money", "lookup_invoice"] }),
        });
        const openai = wrapped();
        const completions = (openai as { chat: { completions: { stream?: unknown } } }).chat
          .completions;
        const helper = (
          typeof completions.stream === "function"
            ? completions
            : (openai as unknown as { beta: { chat: { completions: unknown } } }).beta.chat
                .completions
        ) as {
          stream(body: unknown): {
            finalChatCompletion(): Promise<{
              choices: { message: { tool_calls?: { function: { name: string } }[] } }[];
            }>;
          };
        };
        const final = await helper
          .stream({ model: "gpt-4o", messages: [{ role: "user", content: "hi" }] })
          .finalChatCompletion();
        expect(
          final.choices[0]?.message.tool_calls?.map(
            (c: { function: { name: string } }) => c.function.name,
          ),
        ).toEqual(["lookup_invoice"]);
        expect((await snapshot()).sessionUsdReserved).toBe(0);
      },
    );

    it.skipIf(!engine.available)("reconciles a stream the consumer breaks off", async () => {
      h.server.reply = ({ body }) => ({
        sse: chatChunks(body, { text: ["a", "b", "c", "d"] }),
        hang: true,
      });
      const openai = wrapped();
      const stream = await openai.chat.completions.create({
        model: "gpt-4o",
        max_tokens: 500,
        stream: true,
        messages: [{ role: "user", content: "hi" }],
      });
      let count = 0;
      for await (const _ of stream) {
        if (++count === 2) break;
      }
      const after = await snapshot();
      expect(h.logger.lines.filter((line) => line.level === "error")).toEqual([]);
      expect(after.sessionUsdReserved).toBe(0);
      expect(after.sessionUsdUsed).toBeGreaterThan(0);
    });

    it.skipIf(!engine.available)("reconciles a stream the consumer aborts", async () => {
      h.server.reply = ({ body }) => ({ sse: chatChunks(body), hang: true, done: false });
      const openai = wrapped();
      const stream = await openai.chat.completions.create({
        model: "gpt-4o",
        max_tokens: 500,
        stream: true,
        messages: [{ role: "user", content: "hi" }],
      });
      // the client ends the iteration quietly on its own abort
      let count = 0;
      for await (const _ of stream) {
        if (++count === 2) stream.controller.abort();
      }
      const after = await snapshot();
      expect(after.sessionUsdReserved).toBe(0);
    });

    it.skipIf(!engine.available)("reconciles a stream the server cuts", async () => {
      h.server.reply = () => ({ sse: responseEvents().slice(0, 4), cut: true });
      const openai = wrapped();
      const stream = await openai.responses.create({
        model: "gpt-4o",
        input: "hi",
        max_output_tokens: 500,
        stream: true,
      });
      const error = await rejectionOf(async () => {
        for await (const _ of stream) {
        }
      });
      expect(error).toBeDefined();
      const after = await snapshot();
      expect(after.sessionUsdReserved).toBe(0);
      expect(after.sessionUsdUsed).toBeGreaterThan(0);
      await eventually(() => kinds().includes("llm.error"));
    });

    it.skipIf(!engine.available)(
      "settles a Responses stream and drops an out-of-scope function call",
      async () => {
        h.server.reply = () => ({
          sse: responseEvents({ toolCalls: ["wire_money", "lookup_invoice"] }),
        });
        const openai = wrapped();
        const final = await openai.responses
          .stream({ model: "gpt-4o", input: "hi" })
          .finalResponse();
        expect(
          final.output
            .filter((item) => item.type === "function_call")
            .map((item) => (item as { name: string }).name),
        ).toEqual(["lookup_invoice"]);
        const after = await snapshot();
        expect(after.sessionUsdReserved).toBe(0);
        expect(after.sessionUsdUsed).toBeCloseTo(expectedUsd(), 12);
      },
    );

    it.skipIf(!engine.available)("governs .parse()", async () => {
      h.server.reply = () => ({ json: chatCompletion({ content: '{"ok":true}' }) });
      const openai = wrapped();
      const completions = (openai as { chat: { completions: { parse?: unknown } } }).chat
        .completions;
      const helper = (
        typeof completions.parse === "function"
          ? completions
          : (openai as unknown as { beta: { chat: { completions: unknown } } }).beta.chat
              .completions
      ) as {
        parse(body: unknown): Promise<{ choices: { message: { content: string } }[] }>;
      };
      const parsed = await helper.parse({
        model: "gpt-4o",
        messages: [{ role: "user", content: "hi" }],
      });
      expect(parsed.choices[0]?.message.content).toBe('{"ok":true}');
      expect((await snapshot()).sessionUsdUsed).toBeCloseTo(expectedUsd(), 12);
    });

    it.skipIf(!engine.available)(
      "never lets concurrent calls jointly exceed a tight budget",
      async () => {
        h.cost.register({ agentId: AGENT, perSessionUsd: 0.02 });
        // each call uses what it reserves, so that the calls admitted after the first ones'
        // usage is known are as few as those admitted together
        h.server.reply = () => ({
          json: chatCompletion({
            usage: { prompt_tokens: 10, completion_tokens: 1000, total_tokens: 1010 },
          }),
        });
        const openai = wrapped();
        // each call reserves 1000 output tokens of gpt-4o: only a few fit under $0.02
        const results = await Promise.allSettled(
          Array.from({ length: 8 }, () =>
            openai.chat.completions.create({
              model: "gpt-4o",
              max_tokens: 1000,
              messages: [{ role: "user", content: "hi" }],
            }),
          ),
        );
        const passed = results.filter((result) => result.status === "fulfilled").length;
        expect(passed).toBeGreaterThan(0);
        expect(passed).toBeLessThan(8);
        expect(h.server.received.length).toBe(passed);
        const after = await snapshot();
        expect(after.sessionUsdUsed + after.sessionUsdReserved).toBeLessThanOrEqual(0.02);
      },
    );
  });
});

describe("wrapOpenAI's options", () => {
  const client = CLIENTS[0].create("http://127.0.0.1:9/v1");

  it("refuses an empty agent id and an unknown option, wrapping nothing", () => {
    const create = client.chat.completions.create;
    expect(() => wrapOpenAI(client, { governance: {}, agentId: "" })).toThrow(
      InvalidWrapperOptionsError,
    );
    const error = (() => {
      try {
        wrapOpenAI(client, { governance: {}, agentId: "a", onToolOutOfScop: "throw" } as never);
      } catch (caught) {
        return caught as Error;
      }
    })();
    expect(error?.message).toContain("onToolOutOfScope");
    expect(client.chat.completions.create).toBe(create);
  });

  it("wraps in place, once; a second wrap warns and changes nothing", async () => {
    const logger = recordingLogger();
    const audit = recordingAuditSink();
    const coverage: string[] = [];
    const governance = {
      logger,
      coverage: {
        record: (agentId: string, name: string, event?: string) =>
          void coverage.push(`${agentId}:${name}:${event}`),
      },
      audit,
    };
    const fresh = CLIENTS[1].create("http://127.0.0.1:9/v1");
    expect(wrapOpenAI(fresh, { governance, agentId: "a" })).toBe(fresh);
    const governed = fresh.chat.completions.create;
    expect(wrapOpenAI(fresh, { governance, agentId: "a" })).toBe(fresh);
    expect(fresh.chat.completions.create).toBe(governed);
    expect(coverage).toEqual(["a:openai:wrapped"]);
    await eventually(() => audit.events.length === 1);
    expect(audit.events.map((event) => [event.kind, event.metadata])).toEqual([
      [
        "wrapper.registered",
        { provider: "openai", operations: ["chat.completions.create", "responses.create"] },
      ],
    ]);
    expect(logger.lines.some((line) => line.level === "warn")).toBe(true);
  });
});
