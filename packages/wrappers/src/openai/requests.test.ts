/**
 * What a governed OpenAI client sends: nothing for a halted agent (copies, retries and the
 * calls not otherwise governed included), only the request governance checked, and no tool
 * the agent may not be offered named anywhere in it (issue 14's attack, breaks 1, 9, 11–14, 28).
 */
import { AgentHaltedError } from "@gov/core";
import { testEngines } from "@gov/core/testing";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { versionsOn } from "../__fixtures__/harness";
import {
  attempt,
  CLIENTS,
  type OpenAIAgent,
  offeredNames,
  openAIAgent,
} from "../__fixtures__/openai-agent";
import { chatCompletion, response } from "../__fixtures__/openai-server";
import { InvalidWrapperOptionsError } from "../errors";
import { wrapOpenAI } from "./wrap";

const tool = (name: string) => ({ type: "function" as const, function: { name, parameters: {} } });
const ask = { model: "gpt-4o", messages: [{ role: "user" as const, content: "hi" }] };

describe.each(testEngines())("OpenAI requests on $name", (engine) => {
  describe.each(versionsOn(engine, CLIENTS))("with $major", (client) => {
    let h: OpenAIAgent;
    beforeEach(async () => {
      if (engine.available) h = await openAIAgent(engine, client);
    });
    afterEach(async () => {
      if (engine.available) await h.close();
    });

    // Guards against: `client.withOptions(…)` (openai 5 and later) builds a new client with new
    // resources, none of them wrapped: the copy is not governed at all. A halted agent's call
    // through it reaches the server. Expected: the copy is governed as the original is (as
    // wrapAnthropic's copies are, through the shared middleware list), or withOptions is
    // wrapped so that the copy is wrapped too: AgentHaltedError, nothing sent.
    it.skipIf(!engine.available || client.major === "openai@4")(
      "governs a copy made with withOptions(): a halted agent's call does not reach the server",
      async () => {
        h.server.reply = () => ({ json: chatCompletion() });
        const openai = h.wrapped();
        await h.presence.halt("billing-agent", { haltedBy: "ops", reason: "review" });
        const copy = (openai as unknown as { withOptions(o: object): typeof openai }).withOptions({
          timeout: 5_000,
        });
        const error = await attempt(() => copy.chat.completions.create(ask));
        expect(h.server.received).toEqual([]);
        expect(AgentHaltedError.isInstance(error)).toBe(true);
      },
    );

    // Guards against: the client builds its request as `{ body, ...options }`, so a request option
    // `body` replaces the parameters the wrapper checked. The wrapper admits "gpt-4o" and the
    // server receives "gpt-4o-mini" (and any hidden tool). Expected: the wrapper governs what
    // is sent — it refuses an options.body (or checks it instead), and nothing outside scope
    // reaches the server.
    it.skipIf(!engine.available)(
      "governs the body that is sent, not a body that request options replace",
      async () => {
        h.server.reply = () => ({ json: chatCompletion({ model: "gpt-4o-mini" }) });
        const openai = h.wrapped();
        const error = await attempt(() =>
          openai.chat.completions.create(ask, {
            body: { ...ask, model: "gpt-4o-mini", tools: [tool("delete_all")] },
          } as never),
        );
        expect(InvalidWrapperOptionsError.isInstance(error)).toBe(true);
        expect((error as InvalidWrapperOptionsError).field).toBe("options.body");
        expect(h.server.received.map((request) => request.body.model)).not.toContain("gpt-4o-mini");
        expect(JSON.stringify(h.server.received)).not.toContain("delete_all");
      },
    );

    // Guards against: hidden tools are taken out of `tools`, but a `tool_choice` that names one is sent
    // as it is: the hidden tool's name reaches the model (and the API answers 400, failing the
    // agent's call). wrapAnthropic rewrites such a choice to `auto`; the AI SDK middleware
    // refuses it. Expected: the hidden name never reaches the server.
    it.skipIf(!engine.available)(
      "never sends a hidden tool's name in a chat tool_choice",
      async () => {
        h.server.reply = () => ({ json: chatCompletion() });
        const openai = h.wrapped();
        await attempt(() =>
          openai.chat.completions.create({
            ...ask,
            tools: [tool("lookup_invoice"), tool("delete_all")],
            tool_choice: { type: "function", function: { name: "delete_all" } },
          }),
        );
        expect(h.server.received.map((request) => offeredNames(request.body))).toEqual(
          h.server.received.length === 0 ? [] : [["lookup_invoice"]],
        );
        expect(JSON.stringify(h.server.received)).not.toContain("delete_all");
      },
    );

    // Guards against: the Responses API's `tool_choice: { type: "allowed_tools", tools: [...] }` lists
    // tools by name; the wrapper filters `tools` only, so a hidden tool listed there is sent.
    // Expected: the hidden name never reaches the server.
    it.skipIf(!engine.available)(
      "never sends a hidden tool's name in a Responses allowed_tools choice",
      async () => {
        h.server.reply = () => ({ json: response() });
        const openai = h.wrapped();
        await attempt(() =>
          openai.responses.create({
            model: "gpt-4o",
            input: "hi",
            tools: [
              { type: "function", name: "lookup_invoice", parameters: {}, strict: false },
              { type: "function", name: "delete_all", parameters: {}, strict: false },
            ],
            tool_choice: {
              type: "allowed_tools",
              mode: "auto",
              tools: [
                { type: "function", name: "lookup_invoice" },
                { type: "function", name: "delete_all" },
              ],
            },
          } as never),
        );
        expect(JSON.stringify(h.server.received)).not.toContain("delete_all");
        expect(h.server.received.map((request) => request.body.tool_choice)).toEqual([
          {
            type: "allowed_tools",
            mode: "auto",
            tools: [{ type: "function", name: "lookup_invoice" }],
          },
        ]);
      },
    );

    it.skipIf(!engine.available)(
      "sends a tool_choice that names an offered tool as it is, and drops one left without tools",
      async () => {
        h.server.reply = () => ({ json: chatCompletion() });
        const openai = h.wrapped();
        const forced = { type: "function" as const, function: { name: "lookup_invoice" } };
        await openai.chat.completions.create({
          ...ask,
          tools: [tool("lookup_invoice")],
          tool_choice: forced,
        });
        await openai.chat.completions.create({
          ...ask,
          tools: [tool("delete_all")],
          tool_choice: "required",
        });
        await openai.chat.completions.create({
          ...ask,
          tools: [tool("delete_all")],
          tool_choice: { type: "function", function: { name: "delete_all" } },
        });
        const sent = h.server.received.map((request) => [
          request.body.tools,
          request.body.tool_choice,
        ]);
        expect(sent).toEqual([
          [[tool("lookup_invoice")], forced],
          [[], undefined],
          [[], undefined],
        ]);
      },
    );

    // Guards against: Chat Completions still accepts the deprecated `functions` / `function_call`
    // parameters (and the client still sends them). The wrapper reads `tools` only: a hidden
    // function offered through `functions` reaches the model. Expected: filtered like `tools`.
    it.skipIf(!engine.available)(
      "never sends a hidden function offered through the legacy functions parameter",
      async () => {
        h.server.reply = () => ({ json: chatCompletion() });
        const openai = h.wrapped();
        await attempt(() =>
          openai.chat.completions.create({
            ...ask,
            functions: [
              { name: "lookup_invoice", parameters: {} },
              { name: "delete_all", parameters: {} },
            ],
          }),
        );
        expect(JSON.stringify(h.server.received)).not.toContain("delete_all");
        expect(h.server.received.map((request) => request.body.functions)).toEqual([
          [{ name: "lookup_invoice", parameters: {} }],
        ]);
      },
    );

    it.skipIf(!engine.available)(
      "refuses to wrap a client again for another agent, and leaves it governed as the first",
      async () => {
        h.server.reply = () => ({ json: chatCompletion() });
        const openai = h.wrapped();
        const governed = openai.chat.completions.create;
        const error = await attempt(() =>
          wrapOpenAI(openai, { governance: h.governance, agentId: "other-agent" }),
        );
        expect(InvalidWrapperOptionsError.isInstance(error)).toBe(true);
        expect((error as Error).message).toContain("billing-agent");
        expect(openai.chat.completions.create).toBe(governed);
      },
    );

    // Guards against: the wrapper governs a `create` once, around the client's own retries. When the
    // operator halts the agent while the client backs off after a 429, the retry still goes
    // out. wrapAnthropic governs each HTTP attempt ("an operator's halt between two attempts
    // stops the retry"); wrapOpenAI does not. Expected: a halt stops the retry — nothing more
    // reaches the server once the agent is halted.
    it.skipIf(!engine.available)(
      "stops the client's retry when the agent is halted during its back-off",
      async () => {
        let halting: Promise<unknown> = Promise.resolve();
        h.server.reply = () => {
          if (h.server.received.length > 1) return { json: chatCompletion() };
          halting = h.presence.halt("billing-agent", { haltedBy: "ops", reason: "review" });
          return { json: { error: { message: "slow down", type: "rate_limit" } }, status: 429 };
        };
        const openai = h.wrapped();
        const error = await attempt(() => openai.chat.completions.create(ask, { maxRetries: 1 }));
        await halting;
        expect(h.server.received).toHaveLength(1);
        expect(AgentHaltedError.isInstance(error)).toBe(true);
      },
    );

    // Guards against: only chat.completions.create and responses.create are wrapped. The legacy
    // `completions.create` and `embeddings.create` are model calls too (priced per token): a
    // halted agent makes them, unscoped and unbudgeted. Expected: every model call of the
    // client refuses a halted agent before anything is sent (the reference's halt applies
    // "across the wrappers"), or the README says these calls are not governed.
    it.skipIf(!engine.available)(
      "refuses a halted agent's legacy completions and embeddings calls",
      async () => {
        h.server.reply = () => ({ json: { error: { message: "not served" } }, status: 400 });
        const openai = h.wrapped();
        await h.presence.halt("billing-agent", { haltedBy: "ops", reason: "review" });
        await attempt(() =>
          openai.completions.create({ model: "gpt-3.5-turbo-instruct", prompt: "hi" }),
        );
        await attempt(() =>
          openai.embeddings.create({ model: "text-embedding-3-small", input: "hi" }),
        );
        expect(h.server.received.map((request) => request.path)).toEqual([]);
      },
    );
  });
});
