import { AgentHaltedError } from "@gov/core";
import {
  eventually,
  recordingAuditSink,
  recordingLogger,
  rejectionOf,
  testEngines,
} from "@gov/core/testing";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  AGENT,
  type AnthropicHarness,
  anthropicHarness,
  ask,
} from "../__fixtures__/anthropic-harness";
import { errorBody, MODEL, message, USAGE, usdOf } from "../__fixtures__/anthropic-server";
import { ANTHROPIC_CLIENTS, versionsOn } from "../__fixtures__/harness";
import { InvalidWrapperOptionsError, ToolCallOutOfScopeError } from "../errors";
import { wrapAnthropic } from "./wrap";

const expectedUsd = () => usdOf(USAGE);

const tool = (name: string) => ({ name, input_schema: { type: "object" as const } });

describe.each(testEngines())("wrapAnthropic on $name", (engine) => {
  describe.each(versionsOn(engine, ANTHROPIC_CLIENTS))("with $major", (client) => {
    let h: AnthropicHarness;

    beforeEach(async () => {
      if (engine.available) h = await anthropicHarness(engine, client);
    });

    afterEach(async () => {
      if (engine.available) await h.close();
    });

    it.skipIf(!engine.available)(
      "records the client as covered when wrapped and on each admitted call",
      async () => {
        const covered: string[] = [];
        h.server.reply = () => ({ json: message() });
        const anthropic = h.wrapped({
          governance: {
            halt: h.presence,
            logger: h.logger,
            coverage: {
              record: (agentId: string, name: string, kind?: string) =>
                void covered.push(`${agentId}:${name}:${kind ?? "call"}`),
            },
          },
        });
        await anthropic.messages.create({ model: MODEL, ...ask });
        await h.presence.halt(AGENT, { haltedBy: "ops", reason: "review" });
        await rejectionOf(() => anthropic.messages.create({ model: MODEL, ...ask }));
        expect(covered).toEqual([`${AGENT}:anthropic:wrapped`, `${AGENT}:anthropic:call`]);
      },
    );

    it.skipIf(!engine.available)(
      "refuses a halted agent before any request reaches the server",
      async () => {
        const anthropic = h.wrapped();
        await h.presence.halt(AGENT, { haltedBy: "ops", reason: "review" });
        const error = await rejectionOf(() => anthropic.messages.create({ model: MODEL, ...ask }));
        expect(AgentHaltedError.isInstance(error)).toBe(true);
        // the MessageStream helper reports it as its error, with the halt as the cause
        const streamed = await rejectionOf(() =>
          anthropic.messages.stream({ model: MODEL, ...ask }).finalMessage(),
        );
        expect(AgentHaltedError.isInstance((streamed as { cause?: unknown }).cause)).toBe(true);
        expect(h.server.received).toEqual([]);
        expect((await h.snapshot()).sessionUsdReserved).toBe(0);
      },
    );

    it.skipIf(!engine.available)("refuses a call over budget before any request", async () => {
      h.cost.register({ agentId: AGENT, perSessionUsd: 0.000001 });
      const anthropic = h.wrapped();
      const error = await rejectionOf(() =>
        anthropic.messages.create({ model: MODEL, ...ask, max_tokens: 1000 }),
      );
      expect((error as { code?: string }).code).toBe("BUDGET_EXCEEDED");
      expect(h.server.received).toEqual([]);
    });

    it.skipIf(!engine.available)(
      "refuses a model outside allowedModels before any request",
      async () => {
        const anthropic = h.wrapped();
        const error = await rejectionOf(() =>
          anthropic.messages.create({ model: "claude-opus-4-1", ...ask }),
        );
        expect((error as { code?: string }).code).toBe("SCOPE_VIOLATION");
        expect(h.server.received).toEqual([]);
      },
    );

    it.skipIf(!engine.available)(
      "strips hidden tools (and a tool_choice naming one) from what the server receives, and audits no content",
      async () => {
        h.server.reply = () => ({ json: message({ text: "the answer" }) });
        const anthropic = h.wrapped();
        await anthropic.messages.create({
          model: MODEL,
          ...ask,
          messages: [{ role: "user", content: "secret" }],
          tools: [tool("lookup_invoice"), tool("delete_all")],
          tool_choice: { type: "tool", name: "delete_all", disable_parallel_tool_use: true },
        });
        const sent = h.server.received[0]?.body ?? {};
        expect((sent.tools as { name: string }[]).map((t) => t.name)).toEqual(["lookup_invoice"]);
        expect(sent.tool_choice).toEqual({ type: "auto", disable_parallel_tool_use: true });
        expect(JSON.stringify(sent)).not.toContain("delete_all");
        // with no tool left, no tool_choice either
        await h.wrapped().messages.create({
          model: MODEL,
          ...ask,
          tools: [tool("delete_all")],
          tool_choice: { type: "any" },
        });
        expect(h.server.received[1]?.body.tools).toEqual([]);
        expect(h.server.received[1]?.body).not.toHaveProperty("tool_choice");
        await eventually(() => h.kinds().includes("llm.result"));
        expect(h.event("llm.call")?.metadata).toMatchObject({
          provider: "anthropic",
          operation: "messages.create",
          tools: ["lookup_invoice"],
          hiddenToolsRemoved: 1,
          maxTokens: 500,
        });
        const audited = JSON.stringify(h.audit.events);
        expect(audited).not.toContain("secret");
        expect(audited).not.toContain("the answer");
      },
    );

    it.skipIf(!engine.available)(
      "prices usage with cache reads and writes exactly and settles the reservation",
      async () => {
        h.server.reply = () => ({ json: message() });
        const anthropic = h.wrapped();
        const result = await anthropic.messages.create({ model: MODEL, ...ask });
        // the host sees the usage as the API sent it
        expect(result.usage).toEqual(USAGE);
        const after = await h.snapshot();
        expect(after.sessionUsdReserved).toBe(0);
        expect(after.sessionUsdUsed).toBeCloseTo(expectedUsd(), 12);
        expect(after.sessionTokensUsed).toBe(200 + 1000 + 4000 + 300);
        await eventually(() => h.kinds().includes("llm.result"));
        const metadata = h.event("llm.result")?.metadata;
        expect(metadata?.usd).toBeCloseTo(expectedUsd(), 12);
        expect(metadata?.finishReason).toBe("end_turn");
        expect(metadata?.usage).toEqual({
          input_tokens: 200,
          output_tokens: 300,
          cache_creation_input_tokens: 1000,
          cache_read_input_tokens: 4000,
        });
      },
    );

    it.skipIf(!engine.available)(
      "removes a returned tool call outside scope, and audits it",
      async () => {
        h.server.reply = () => ({ json: message({ toolUses: ["lookup_invoice", "wire_money"] }) });
        const anthropic = h.wrapped();
        const result = await anthropic.messages.create({ model: MODEL, ...ask });
        expect(result.content.map((block) => block.type)).toEqual(["text", "tool_use"]);
        expect(
          result.content.flatMap((block) => (block.type === "tool_use" ? [block.name] : [])),
        ).toEqual(["lookup_invoice"]);
        expect(result.stop_reason).toBe("tool_use");
        await eventually(() => h.kinds().includes("llm.tool_call_blocked"));
        expect(h.event("llm.tool_call_blocked")?.metadata).toMatchObject({
          tool: "wire_money",
          action: "removed",
        });
        expect(h.kinds()).toContain("scope.violation");
        await eventually(() => h.kinds().includes("llm.result"));
        expect(h.event("llm.result")?.metadata?.removedToolCalls).toEqual(["wire_money"]);
        expect((await h.snapshot()).sessionUsdReserved).toBe(0);
      },
    );

    it.skipIf(!engine.available)(
      "ends the turn when every returned tool call was removed",
      async () => {
        h.server.reply = () => ({ json: message({ toolUses: ["wire_money"] }) });
        const anthropic = h.wrapped();
        const result = await anthropic.messages.create({ model: MODEL, ...ask });
        expect(result.content.map((block) => block.type)).toEqual(["text"]);
        expect(result.stop_reason).toBe("end_turn");
      },
    );

    it.skipIf(!engine.available)(
      "throws for a returned tool call outside scope with onToolOutOfScope: throw",
      async () => {
        h.server.reply = () => ({ json: message({ toolUses: ["wire_money"] }) });
        const anthropic = h.wrapped({ onToolOutOfScope: "throw" });
        const error = await rejectionOf(() => anthropic.messages.create({ model: MODEL, ...ask }));
        expect(ToolCallOutOfScopeError.isInstance(error)).toBe(true);
        expect((error as ToolCallOutOfScopeError).toolName).toBe("wire_money");
        const after = await h.snapshot();
        expect(after.sessionUsdReserved).toBe(0);
        expect(after.sessionUsdUsed).toBeCloseTo(expectedUsd(), 12);
      },
    );

    it.skipIf(!engine.available)(
      "audits llm.error, releases the reservation and rethrows the client's error",
      async () => {
        h.server.reply = () => ({
          json: errorBody("invalid_request_error", "max_tokens: too large"),
          status: 400,
        });
        const anthropic = h.wrapped();
        const promise = anthropic.messages.create({ model: MODEL, ...ask });
        const error = await rejectionOf(() => promise);
        expect((error as { status?: number }).status).toBe(400);
        expect((error as { constructor: { name: string } }).constructor.name).toBe(
          "BadRequestError",
        );
        expect(await rejectionOf(() => promise)).toBe(error);
        const after = await h.snapshot();
        expect(after.sessionUsdReserved).toBe(0);
        expect(after.sessionUsdUsed).toBe(0);
        await eventually(() => h.kinds().includes("llm.error"));
        expect(h.event("llm.error")?.metadata?.error).toMatchObject({
          code: "invalid_request_error",
          status: 400,
        });
        expect(JSON.stringify(h.audit.events)).not.toContain("too large");
      },
    );

    it.skipIf(!engine.available)(
      "releases the reservation of a call whose connection fails, and rethrows the client's error",
      async () => {
        h.server.reply = () => ({ drop: true });
        const bare = client.create(h.server.baseURL);
        const expected = await rejectionOf(() => bare.messages.create({ model: MODEL, ...ask }));
        const error = await rejectionOf(() =>
          h.wrapped().messages.create({ model: MODEL, ...ask }),
        );
        expect((error as Error).constructor).toBe((expected as Error).constructor);
        const after = await h.snapshot();
        expect(after.sessionUsdReserved).toBe(0);
        expect(after.sessionUsdUsed).toBe(0);
        await eventually(() => h.kinds().includes("llm.error"));
      },
    );

    it.skipIf(!engine.available)(
      "records the messages and the answer only with recordContent, through redact",
      async () => {
        h.server.reply = () => ({ json: message({ text: "the answer" }) });
        const anthropic = h.wrapped({
          recordContent: true,
          redact: ({ part, content }: { part: string; content: unknown }) =>
            part === "input" ? { system: (content as { system?: unknown }).system } : content,
        });
        await anthropic.messages.create({
          model: MODEL,
          ...ask,
          system: "be brief",
          messages: [{ role: "user", content: "secret" }],
        });
        await eventually(() => h.kinds().includes("llm.result"));
        expect(h.event("llm.call")?.metadata?.input).toEqual({ system: "be brief" });
        expect(h.event("llm.result")?.metadata?.output).toEqual([
          { type: "text", text: "the answer", citations: null },
        ]);
        expect(JSON.stringify(h.audit.events)).not.toContain("secret");
      },
    );

    it.skipIf(!engine.available)(
      "admits each attempt of a retried call, and settles each",
      async () => {
        let attempt = 0;
        h.server.reply = () =>
          ++attempt === 1
            ? { json: errorBody("overloaded_error", "Overloaded"), status: 529 }
            : { json: message() };
        const anthropic = h.wrapped().withOptions({ maxRetries: 1 });
        const result = await anthropic.messages.create({ model: MODEL, ...ask });
        expect(result.usage).toEqual(USAGE);
        expect(h.server.received).toHaveLength(2);
        const after = await h.snapshot();
        expect(after.sessionUsdReserved).toBe(0);
        expect(after.sessionUsdUsed).toBeCloseTo(expectedUsd(), 12);
        await eventually(() => h.kinds().includes("llm.result"));
        expect(h.kinds().filter((kind) => kind === "llm.call")).toHaveLength(2);
        expect(h.event("llm.error")?.metadata?.error).toMatchObject({
          code: "overloaded_error",
          status: 529,
        });
      },
    );

    it.skipIf(!engine.available)("governs messages.parse and beta.messages.create", async () => {
      h.server.reply = () => ({ json: message({ text: '{"ok":true}' }) });
      const anthropic = h.wrapped();
      // messages.parse came with 0.6x: the oldest client governed sends a create instead
      const parsed =
        typeof anthropic.messages.parse === "function"
          ? await anthropic.messages.parse({ model: MODEL, ...ask })
          : await anthropic.messages.create({ model: MODEL, ...ask });
      expect(parsed.content[0]).toMatchObject({ type: "text", text: '{"ok":true}' });
      await anthropic.beta.messages.create({ model: MODEL, ...ask });
      // 0.x marks beta calls with ?beta=true; 1.x sends them like the others
      expect(h.server.received.map((request) => request.path.split("?")[0])).toEqual([
        "/v1/messages",
        "/v1/messages",
      ]);
      const after = await h.snapshot();
      expect(after.sessionUsdReserved).toBe(0);
      expect(after.sessionUsdUsed).toBeCloseTo(2 * expectedUsd(), 12);
      await eventually(() => h.kinds().filter((kind) => kind === "llm.result").length === 2);
      const beta = h.server.received[1]?.path.endsWith("?beta=true");
      expect(
        h.audit.events
          .filter((entry) => entry.kind === "llm.call")
          .map((entry) => entry.metadata?.operation),
      ).toEqual(["messages.create", beta ? "beta.messages.create" : "messages.create"]);
    });

    it.skipIf(!engine.available)(
      "never lets concurrent calls jointly exceed a tight budget",
      async () => {
        // each call reserves 1000 output tokens at $15/M (and its input), and uses them: only a
        // few fit in $0.05, whether admitted together or after the others' usage is known
        h.cost.register({ agentId: AGENT, perSessionUsd: 0.05 });
        h.server.reply = () => ({
          json: message({ usage: { input_tokens: 10, output_tokens: 1000 } }),
        });
        const anthropic = h.wrapped();
        const results = await Promise.allSettled(
          Array.from({ length: 8 }, () =>
            anthropic.messages.create({ model: MODEL, ...ask, max_tokens: 1000 }),
          ),
        );
        const passed = results.filter((result) => result.status === "fulfilled").length;
        expect(passed).toBeGreaterThan(0);
        expect(passed).toBeLessThan(8);
        expect(h.server.received.length).toBe(passed);
        for (const result of results)
          if (result.status === "rejected")
            expect((result.reason as { code?: string }).code).toBe("BUDGET_EXCEEDED");
        const after = await h.snapshot();
        expect(after.sessionUsdUsed + after.sessionUsdReserved).toBeLessThanOrEqual(0.05);
      },
    );
  });
});

describe("wrapAnthropic's options", () => {
  const create = ANTHROPIC_CLIENTS[0].create;

  it("refuses an empty agent id and an unknown option, wrapping nothing", () => {
    const client = create("http://127.0.0.1:9");
    expect(() => wrapAnthropic(client, { governance: {}, agentId: "" })).toThrow(
      InvalidWrapperOptionsError,
    );
    const error = (() => {
      try {
        wrapAnthropic(client, {
          governance: {},
          agentId: "a",
          onToolOutOfScop: "throw",
        } as never);
      } catch (caught) {
        return caught as Error;
      }
    })();
    expect(InvalidWrapperOptionsError.isInstance(error)).toBe(true);
    expect(error?.message).toContain("onToolOutOfScope");
    expect(client.middleware).toEqual([]);
  });

  it("refuses what is not an Anthropic client with the middleware option or a fetch", () => {
    expect(() => wrapAnthropic({ chat: {} }, { governance: {}, agentId: "a" })).toThrow(
      InvalidWrapperOptionsError,
    );
    // a client from before 0.50.0 has messages.create but neither a middleware list nor a fetch
    const old = { messages: { create: () => undefined } };
    const error = (() => {
      try {
        wrapAnthropic(old, { governance: {}, agentId: "a" });
      } catch (caught) {
        return caught as Error;
      }
    })();
    expect(InvalidWrapperOptionsError.isInstance(error)).toBe(true);
    expect(error?.message).toContain("0.50.0");
  });

  it("wraps in place, once (withOptions copies included); a second wrap warns and changes nothing", async () => {
    const logger = recordingLogger();
    const audit = recordingAuditSink();
    const coverage: string[] = [];
    const governance = {
      logger,
      audit,
      coverage: {
        record: (agentId: string, name: string, event?: string) =>
          void coverage.push(`${agentId}:${name}:${event ?? "call"}`),
      },
    };
    const own = async (request: unknown, next: (request: unknown) => Promise<Response>) =>
      next(request);
    const fresh = new (
      ANTHROPIC_CLIENTS[1].create("http://127.0.0.1:9").constructor as new (
        options: object,
      ) => ReturnType<typeof create>
    )({ apiKey: "k", baseURL: "http://127.0.0.1:9", middleware: [own] });
    expect(wrapAnthropic(fresh, { governance, agentId: "a" })).toBe(fresh);
    const governed = fresh.middleware;
    expect(governed).toHaveLength(2);
    expect(governed[0]).toBe(own);
    expect(wrapAnthropic(fresh, { governance, agentId: "a" })).toBe(fresh);
    expect(fresh.middleware).toBe(governed);
    const copy = fresh.withOptions({ timeout: 1000 });
    expect(wrapAnthropic(copy, { governance, agentId: "a" })).toBe(copy);
    expect(copy.middleware).toEqual(governed);
    expect(coverage).toEqual(["a:anthropic:wrapped"]);
    await eventually(() => audit.events.length === 1);
    expect(audit.events.map((event) => [event.kind, event.metadata])).toEqual([
      [
        "wrapper.registered",
        {
          provider: "anthropic",
          via: "middleware",
          operations: [
            "messages.create",
            "messages.stream",
            "beta.messages.create",
            "beta.messages.stream",
          ],
        },
      ],
    ]);
    expect(logger.lines.filter((line) => line.level === "warn")).toHaveLength(2);
  });
});
