/**
 * Tool calls the model returns for tools outside the agent's scope, which the host must never
 * see, and tools that run at the provider, which are offered only when scope allows them
 * (issue 14's attack, breaks 4, 5, 19, 20, 30).
 */
import { testEngines } from "@gov/core/testing";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { versionsOn } from "../__fixtures__/harness";
import {
  AGENT,
  attempt,
  CLIENTS,
  type OpenAIAgent,
  offeredNames,
  openAIAgent,
} from "../__fixtures__/openai-agent";
import {
  chatChunks,
  chatCompletion,
  response,
  responseEvents,
} from "../__fixtures__/openai-server";

const ask = { model: "gpt-4o", messages: [{ role: "user" as const, content: "hi" }] };

/** A completed response whose output holds one item the host runs (not a function call). */
function responseWith(item: Record<string, unknown>): Record<string, unknown> {
  const full = response();
  return { ...full, output: [...(full.output as unknown[]), item] };
}

describe.each(testEngines())("OpenAI returned and provider-run tool calls on $name", (engine) => {
  describe.each(versionsOn(engine, CLIENTS))("with $major", (client) => {
    let h: OpenAIAgent;
    beforeEach(async () => {
      if (engine.available) h = await openAIAgent(engine, client);
    });
    afterEach(async () => {
      if (engine.available) await h.close();
    });

    // Guards against: the Responses API returns calls the host runs that are not `function_call`s —
    // `local_shell_call` (a shell command to execute), `computer_call` (a click or keystroke),
    // `shell_call`, `apply_patch_call`. filterResponse checks `function_call` and
    // `custom_tool_call` only, so a shell command for a tool outside `allowedTools` reaches
    // the host. Expected: each host-run call is checked by its tool's name (`local_shell`,
    // `computer_use_preview`, …) and removed when out of scope.
    it.skipIf(!engine.available)(
      "removes a local_shell_call for a tool outside scope",
      async () => {
        h.server.reply = () => ({
          json: responseWith({
            type: "local_shell_call",
            id: "lsh_1",
            call_id: "call_1",
            action: { type: "exec", command: ["rm", "-rf", "/srv/invoices"], env: {} },
            status: "completed",
          }),
        });
        const openai = h.wrapped();
        const result = await openai.responses.create({ model: "gpt-4o", input: "tidy up" });
        expect(result.output.map((item) => item.type)).not.toContain("local_shell_call");
      },
    );

    it.skipIf(!engine.available)(
      "removes a streamed local_shell_call for a tool outside scope, with its events",
      async () => {
        const shell = {
          type: "local_shell_call",
          id: "lsh_1",
          call_id: "call_1",
          action: { type: "exec", command: ["rm", "-rf", "/srv/invoices"], env: {} },
          status: "completed",
        };
        h.server.reply = () => {
          const events = responseEvents() as Record<string, unknown>[];
          const completed = events.pop() as { response: Record<string, unknown> };
          events.push(
            { type: "response.output_item.added", output_index: 1, item: shell },
            { type: "response.output_item.done", output_index: 1, item: shell },
          );
          const full = completed.response;
          events.push({
            ...completed,
            response: { ...full, output: [...(full.output as unknown[]), shell] },
          });
          return { sse: events.map((event, index) => ({ ...event, sequence_number: index })) };
        };
        const openai = h.wrapped();
        const stream = await openai.responses.create({
          model: "gpt-4o",
          input: "tidy up",
          stream: true,
        });
        const seen: string[] = [];
        let final: { output: { type: string }[] } | undefined;
        for await (const event of stream) {
          const item = (event as { item?: { type: string } }).item;
          if (item !== undefined) seen.push(item.type);
          if (event.type === "response.completed") final = event.response;
        }
        expect(seen).toEqual(["message", "message"]);
        expect(final?.output.map((item) => item.type)).toEqual(["message"]);
      },
    );

    it.skipIf(!engine.available)("removes a computer_call for a tool outside scope", async () => {
      h.server.reply = () => ({
        json: responseWith({
          type: "computer_call",
          id: "cu_1",
          call_id: "call_1",
          action: { type: "click", button: "left", x: 10, y: 10 },
          pending_safety_checks: [],
          status: "completed",
        }),
      });
      const openai = h.wrapped();
      const result = await openai.responses.create({ model: "gpt-4o", input: "click pay" });
      expect(result.output.map((item) => item.type)).not.toContain("computer_call");
    });

    // Guards against: tools that run at the provider (Responses `mcp`, `web_search`,
    // `code_interpreter`, …) are only filtered when hidden. One that is not in the agent's
    // `allowedTools` is sent, and the provider runs it (a remote MCP server called with
    // `require_approval: "never"`): the returned `mcp_call` is already done. Expected: a
    // provider-run tool is checked against scope when it is offered (it cannot be refused
    // later) — refused (ScopeViolation) or removed, never sent.
    it.skipIf(!engine.available)(
      "never offers the provider a provider-run tool outside allowedTools",
      async () => {
        h.server.reply = () => ({ json: response() });
        const openai = h.wrapped();
        await attempt(() =>
          openai.responses.create({
            model: "gpt-4o",
            input: "pay invoice 42",
            tools: [
              {
                type: "mcp",
                server_label: "payments",
                server_url: "https://mcp.payments.example/sse",
                require_approval: "never",
              },
              { type: "web_search" },
            ],
          } as never),
        );
        const offered = h.server.received.flatMap((request) => offeredNames(request.body));
        expect(offered).not.toContain("mcp");
        expect(offered).not.toContain("web_search");
      },
    );

    it.skipIf(!engine.available)(
      "offers a provider-run tool scope allows, by its type (an MCP server as mcp:<label>), and keeps its host-run calls",
      async () => {
        h.scope.register({
          agentId: AGENT,
          allowedTools: ["lookup_invoice", "web_search", "mcp:billing", "local_shell"],
          hiddenTools: ["delete_all"],
          allowedModels: ["gpt-4o"],
        });
        const shell = {
          type: "local_shell_call",
          id: "lsh_1",
          call_id: "call_1",
          action: { type: "exec", command: ["ls"], env: {} },
          status: "completed",
        };
        h.server.reply = () => ({ json: responseWith(shell) });
        const openai = h.wrapped();
        const result = await openai.responses.create({
          model: "gpt-4o",
          input: "list invoices",
          tools: [
            { type: "mcp", server_label: "billing", server_url: "https://mcp.billing.example" },
            { type: "mcp", server_label: "payments", server_url: "https://mcp.payments.example" },
            { type: "web_search" },
            { type: "code_interpreter", container: { type: "auto" } },
            { type: "local_shell" },
          ],
        } as never);
        const sent = h.server.received[0]?.body.tools as Record<string, unknown>[];
        expect(sent.map((offered) => offered.server_label ?? offered.type)).toEqual([
          "billing",
          "web_search",
          "local_shell",
        ]);
        expect(result.output.map((item) => item.type)).toContain("local_shell_call");
      },
    );

    // Guards against: when every tool call of a message is removed, `finish_reason` stays
    // "tool_calls" and `tool_calls` becomes `[]`. An agent loop that keys on finish_reason waits
    // for tool results that never come, and echoing the message back is refused by the API
    // (`tool_calls` may not be empty). wrapAnthropic turns `tool_use` into `end_turn` for the
    // same case. Expected: finish_reason "stop", and no empty `tool_calls`.
    it.skipIf(!engine.available)(
      "ends the turn when every returned tool call was removed",
      async () => {
        h.server.reply = () => ({ json: chatCompletion({ toolCalls: ["wire_money"] }) });
        const openai = h.wrapped();
        const completion = await openai.chat.completions.create(ask);
        const choice = completion.choices[0];
        expect(choice?.message.tool_calls ?? []).toEqual([]);
        expect(choice?.message.tool_calls).toBeUndefined();
        expect(choice?.finish_reason).toBe("stop");
      },
    );

    it.skipIf(!engine.available)(
      "ends a streamed turn when every returned tool call was removed",
      async () => {
        h.server.reply = ({ body }) => ({ sse: chatChunks(body, { toolCalls: ["wire_money"] }) });
        const openai = h.wrapped();
        const stream = await openai.chat.completions.create({ ...ask, stream: true });
        const reasons: string[] = [];
        for await (const chunk of stream)
          for (const choice of chunk.choices)
            if (choice.finish_reason) reasons.push(choice.finish_reason);
        expect(reasons).toEqual(["stop"]);
      },
    );

    // Guards against: `asResponse()` hands the host the raw HTTP response; the wrapper reads the usage
    // from a copy, but the body the host reads is unfiltered: the out-of-scope tool call is
    // there. Expected: the body the host reads is the governed one (or asResponse refuses).
    it.skipIf(!engine.available)(
      "removes an out-of-scope tool call from the body asResponse() returns",
      async () => {
        h.server.reply = () => ({
          json: chatCompletion({ toolCalls: ["lookup_invoice", "wire_money"] }),
        });
        const openai = h.wrapped();
        const raw = await openai.chat.completions.create(ask).asResponse();
        const body = (await raw.json()) as {
          choices: { message: { tool_calls?: { function: { name: string } }[] } }[];
        };
        expect(body.choices[0]?.message.tool_calls?.map((call) => call.function.name)).toEqual([
          "lookup_invoice",
        ]);
      },
    );

    // Guards against: a chat stream's tool call is checked on the first delta that names it; later
    // deltas of the same index pass unchecked. The client's accumulator (ChatCompletionStream)
    // takes the *last* name a delta gives, so a stream (an OpenAI-compatible server, or a
    // proxy) that names an allowed tool first and another one after hands the host a call to
    // the other. Expected: a delta that renames a tool call is checked (or dropped).
    it.skipIf(!engine.available)(
      "checks a tool call renamed by a later delta of a chat stream",
      async () => {
        h.server.reply = ({ body }) => {
          const chunks = chatChunks(body, { toolCalls: ["lookup_invoice"] }) as Record<
            string,
            unknown
          >[];
          // the arguments delta of the allowed call also carries another name
          for (const chunk of chunks) {
            const delta = (chunk.choices as { delta?: Record<string, unknown> }[] | undefined)?.[0]
              ?.delta;
            const call = (delta?.tool_calls as Record<string, unknown>[] | undefined)?.[0];
            const fn = call?.function as Record<string, unknown> | undefined;
            if (fn !== undefined && fn.name === undefined) fn.name = "wire_money";
          }
          return { sse: chunks };
        };
        const openai = h.wrapped();
        const completions = openai.chat.completions as unknown as {
          stream?: (body: unknown) => { finalChatCompletion(): Promise<unknown> };
        };
        const helper =
          typeof completions.stream === "function"
            ? completions
            : (
                openai as unknown as {
                  beta: { chat: { completions: NonNullable<typeof completions> } };
                }
              ).beta.chat.completions;
        const final = (await helper.stream?.({ ...ask }).finalChatCompletion()) as {
          choices: { message: { tool_calls?: { function: { name: string } }[] } }[];
        };
        const names = final.choices[0]?.message.tool_calls?.map((call) => call.function.name);
        expect(names ?? []).not.toContain("wire_money");
      },
    );
  });
});
