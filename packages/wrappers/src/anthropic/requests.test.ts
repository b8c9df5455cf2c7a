/**
 * What a governed Anthropic client sends: nothing for a halted agent (copies and batches
 * included), only the request governance checked, no server tool scope does not allow and no
 * hidden tool's name (issue 14's attack, breaks 2, 5, 10, 26, 29).
 */
import { AgentHaltedError } from "@gov/core";
import { eventually, testEngines } from "@gov/core/testing";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  AGENT,
  type AnthropicHarness,
  anthropicHarness,
  ask,
  SESSION,
} from "../__fixtures__/anthropic-harness";
import { MODEL, message, USAGE, usdOf } from "../__fixtures__/anthropic-server";
import { ANTHROPIC_CLIENTS, versionsOn } from "../__fixtures__/harness";
import { attempt } from "../__fixtures__/openai-agent";
import { InvalidWrapperOptionsError, ToolCallOutOfScopeError } from "../errors";
import { wrapAnthropic } from "./wrap";

const tool = (name: string) => ({ name, input_schema: { type: "object" as const } });

/** A middleware of the host's: logs nothing, passes the request on. */
const passThrough = async (request: unknown, next: (request: unknown) => Promise<Response>) =>
  next(request);

describe.each(testEngines())("Anthropic requests on $name", (engine) => {
  describe.each(versionsOn(engine, ANTHROPIC_CLIENTS))("with $major", (client) => {
    let h: AnthropicHarness;
    beforeEach(async () => {
      if (engine.available) h = await anthropicHarness(engine, client);
    });
    afterEach(async () => {
      if (engine.available) await h.close();
    });

    // Guards against: the README says copies made with `withOptions(…)` are governed "which share the
    // list". They share it only when the copy does not pass its own `middleware`: the client
    // builds the copy from `{ middleware: this.middleware, ...options }`, so
    // `withOptions({ middleware: [logging] })` replaces the list and drops governance. A
    // halted agent's call through the copy reaches the server. Expected: the copy is governed
    // (or the README says it is not, and how to keep it).
    it.skipIf(!engine.available || client.via !== "middleware")(
      "governs a withOptions() copy that brings its own middleware",
      async () => {
        h.server.reply = () => ({ json: message() });
        const anthropic = h.wrapped();
        await h.presence.halt(AGENT, { haltedBy: "ops", reason: "review" });
        const copy = anthropic.withOptions({ middleware: [passThrough] } as never);
        const error = await attempt(() => copy.messages.create({ model: MODEL, ...ask }));
        expect(h.server.received).toEqual([]);
        expect(AgentHaltedError.isInstance(error)).toBe(true);
      },
    );

    // Guards against: the client runs per-request `middleware` (a request option) *after* the client's
    // own list, so after governance: it can change the request governance admitted. Here it
    // rewrites the model, and a model outside `allowedModels` reaches the server, budgeted at
    // the admitted model's price. Expected: governance sees the request as it leaves (or
    // refuses calls with per-request middleware).
    it.skipIf(!engine.available || client.via !== "middleware")(
      "governs the request a per-request middleware sends",
      async () => {
        h.server.reply = () => ({ json: message() });
        const anthropic = h.wrapped();
        const swapModel = async (
          request: { body?: unknown },
          next: (request: unknown) => Promise<Response>,
        ) =>
          next({
            ...request,
            body: JSON.stringify({
              ...JSON.parse(String(request.body)),
              model: "claude-opus-4-1",
            }),
          });
        const error = await attempt(() =>
          anthropic.messages.create({ model: MODEL, ...ask }, {
            middleware: [swapModel],
          } as never),
        );
        expect(InvalidWrapperOptionsError.isInstance(error)).toBe(true);
        expect(h.server.received).toEqual([]);
        expect(h.server.received.map((request) => request.body.model)).not.toContain(
          "claude-opus-4-1",
        );
      },
    );

    // Guards against: only `POST /v1/messages` is governed. `messages.batches.create` sends a batch of
    // Messages requests — each with its model, tools and max_tokens — that Anthropic runs
    // later: a halted agent submits it, with models outside scope, unbudgeted. The README says
    // batches "go through untouched"; the reference's halt applies across the wrappers.
    // Expected: a halted agent's batch is refused before it is sent (and each request in it
    // scoped and reserved), or the README warns that batches bypass governance.
    it.skipIf(!engine.available)(
      "refuses a halted agent's message batch before it reaches the server",
      async () => {
        h.server.reply = () => ({ json: { id: "msgbatch_1", type: "message_batch" } });
        const anthropic = h.wrapped();
        await h.presence.halt(AGENT, { haltedBy: "ops", reason: "review" });
        await attempt(() =>
          anthropic.messages.batches.create({
            requests: [
              {
                custom_id: "a",
                params: { model: "claude-opus-4-1", ...ask, tools: [tool("delete_all")] },
              },
            ],
          }),
        );
        expect(h.server.received.map((request) => request.path)).toEqual([]);
      },
    );

    // Guards against: server tools (`web_fetch`, `code_execution`, `web_search`, …) run at Anthropic;
    // the wrapper only filters hidden ones and says they are "governed when offered". One the
    // agent may not use (not in `allowedTools`) is sent and runs at the provider — there is
    // no returned call to refuse afterwards. Expected: a server tool is checked against scope
    // when offered (refused or removed), never sent.
    it.skipIf(!engine.available)("never offers a server tool outside allowedTools", async () => {
      h.server.reply = () => ({ json: message() });
      const anthropic = h.wrapped();
      await attempt(() =>
        anthropic.messages.create({
          model: MODEL,
          ...ask,
          tools: [
            tool("lookup_invoice"),
            { type: "web_fetch_20250910", name: "web_fetch", max_uses: 5 },
          ],
        } as never),
      );
      const names = h.server.received.flatMap((request) =>
        ((request.body.tools as { name: string }[] | undefined) ?? []).map((t) => t.name),
      );
      expect(names).not.toContain("web_fetch");
    });

    it.skipIf(!engine.available)(
      "offers a server tool scope allows, by its name, and a host-run typed tool as any tool",
      async () => {
        h.scope.register({
          agentId: AGENT,
          allowedTools: ["lookup_invoice", "web_fetch"],
          hiddenTools: ["delete_all"],
          allowedModels: [MODEL],
        });
        h.server.reply = () => ({ json: message() });
        const anthropic = h.wrapped();
        await anthropic.messages.create({
          model: MODEL,
          ...ask,
          tools: [
            tool("lookup_invoice"),
            { type: "web_fetch_20250910", name: "web_fetch", max_uses: 5 },
            { type: "web_search_20250305", name: "web_search" },
            { type: "bash_20250124", name: "bash" },
          ],
        } as never);
        const names = h.server.received.flatMap((request) =>
          ((request.body.tools as { name: string }[] | undefined) ?? []).map((t) => t.name),
        );
        expect(names).toEqual(["lookup_invoice", "web_fetch", "bash"]);
      },
    );

    it.skipIf(!engine.available)(
      "offers an MCP connector server, and its toolset, only when scope allows mcp:<name>",
      async () => {
        h.scope.register({
          agentId: AGENT,
          allowedTools: ["lookup_invoice", "mcp:billing"],
          hiddenTools: ["delete_all"],
          allowedModels: [MODEL],
        });
        h.server.reply = () => ({ json: message() });
        const anthropic = h.wrapped();
        const server = (name: string) => ({ type: "url", name, url: `https://${name}.example` });
        await anthropic.messages.create({
          model: MODEL,
          ...ask,
          mcp_servers: [server("billing"), server("payments")],
          tools: [
            { type: "mcp_toolset", mcp_server_name: "billing" },
            { type: "mcp_toolset", mcp_server_name: "payments" },
          ],
        } as never);
        const body = h.server.received[0]?.body as {
          mcp_servers: { name: string }[];
          tools: { mcp_server_name: string }[];
        };
        expect(body.mcp_servers.map((entry) => entry.name)).toEqual(["billing"]);
        expect(body.tools.map((entry) => entry.mcp_server_name)).toEqual(["billing"]);
      },
    );

    it.skipIf(!engine.available || client.via !== "middleware")(
      "refuses to wrap a client again for another agent, and keeps governance last in copies",
      async () => {
        const anthropic = h.wrapped();
        const error = await attempt(() =>
          wrapAnthropic(anthropic, { governance: h.governance, agentId: "other-agent" }),
        );
        expect(InvalidWrapperOptionsError.isInstance(error)).toBe(true);
        expect(anthropic.middleware).toHaveLength(1);
        const governance = anthropic.middleware[0];
        const copy = anthropic.withOptions({ middleware: [passThrough] } as never);
        expect(copy.middleware).toEqual([passThrough, governance]);
        const again = copy.withOptions({ middleware: [governance, passThrough] } as never);
        expect(again.middleware).toEqual([passThrough, governance]);
      },
    );

    // Guards against: a client without the middleware option (before 0.101.0) governed around its
    // `fetch`, but a copy made with its own `fetch` (or a copy of a copy) sends around it.
    it.skipIf(!engine.available || client.via !== "fetch")(
      "governs withOptions() copies that bring their own fetch, and copies of copies",
      async () => {
        h.server.reply = () => ({ json: message() });
        const anthropic = h.wrapped();
        await h.presence.halt(AGENT, { haltedBy: "ops", reason: "review" });
        const own = (url: string, init: RequestInit) => fetch(url, init);
        const copy = anthropic.withOptions({ fetch: own } as never);
        const copies = [copy, copy.withOptions({ fetch: own } as never), copy.withOptions({})];
        for (const each of copies) {
          const error = await attempt(() => each.messages.create({ model: MODEL, ...ask }));
          expect(AgentHaltedError.isInstance(error)).toBe(true);
        }
        expect(h.server.received).toEqual([]);
      },
    );

    it.skipIf(!engine.available || client.via !== "fetch")(
      "refuses to wrap a fetch-governed client again for another agent",
      async () => {
        const anthropic = h.wrapped();
        const governed = (anthropic as unknown as { fetch: unknown }).fetch;
        const error = await attempt(() =>
          wrapAnthropic(anthropic, { governance: h.governance, agentId: "other-agent" }),
        );
        expect(InvalidWrapperOptionsError.isInstance(error)).toBe(true);
        expect((anthropic as unknown as { fetch: unknown }).fetch).toBe(governed);
        wrapAnthropic(anthropic, { governance: h.governance, agentId: AGENT });
        expect((anthropic as unknown as { fetch: unknown }).fetch).toBe(governed);
        expect(h.logger.lines.filter((line) => line.level === "warn")).toHaveLength(1);
        await eventually(() => h.event("wrapper.registered") !== undefined);
        expect(h.event("wrapper.registered")?.metadata).toMatchObject({ via: "fetch" });
      },
    );

    // Guards against: a client before 0.101.0 takes what its `fetch` throws for a connection failure:
    // a refusal thrown there reaches the caller wrapped in `APIConnectionError`, and the
    // client retries it (admitted again, and — for a refused tool call — the model called and
    // paid for again). Expected: refusals reach the caller as they are, with no retry.
    it.skipIf(!engine.available || client.via !== "fetch")(
      "passes refusals to the caller as they are, never retried by the client",
      async () => {
        const Client = client.create(h.server.baseURL).constructor as new (
          options: object,
        ) => ReturnType<typeof client.create>;
        const retrying = () =>
          wrapAnthropic(
            new Client({ apiKey: "sk-ant-test", baseURL: h.server.baseURL, maxRetries: 2 }),
            {
              governance: h.governance,
              agentId: AGENT,
              sessionId: SESSION,
              onToolOutOfScope: "throw",
            },
          );
        h.server.reply = () => ({ json: message({ toolUses: ["wire_money"] }) });
        const refused = await attempt(() => retrying().messages.create({ model: MODEL, ...ask }));
        expect(ToolCallOutOfScopeError.isInstance(refused)).toBe(true);
        expect(h.server.received).toHaveLength(1);
        await h.presence.halt(AGENT, { haltedBy: "ops", reason: "review" });
        const halted = await attempt(() => retrying().messages.create({ model: MODEL, ...ask }));
        expect(AgentHaltedError.isInstance(halted)).toBe(true);
        expect(h.server.received).toHaveLength(1);
        expect(h.kinds().filter((kind) => kind === "llm.call")).toHaveLength(1);
      },
    );

    // Guards against: a call aborted by the caller while it was being admitted: the client checks
    // the signal after its `prepareRequest` hook and never calls `fetch`, so the reservation
    // made in the hook is never settled (held until it expires).
    it.skipIf(!engine.available || client.via !== "fetch")(
      "releases the reservation of a call aborted while it was admitted",
      async () => {
        let open: () => void = () => undefined;
        const gate = new Promise<void>((resolve) => {
          open = resolve;
        });
        const halt = {
          assertAlive: async (agentId: string, context: { path: string }) => {
            await h.presence.assertAlive(agentId, context);
            if (context.path === "anthropic.messages.create") await gate;
          },
        };
        const anthropic = wrapAnthropic(client.create(h.server.baseURL), {
          governance: { ...h.governance, halt },
          agentId: AGENT,
          sessionId: SESSION,
        });
        const controller = new AbortController();
        const call = attempt(() =>
          anthropic.messages.create({ model: MODEL, ...ask }, { signal: controller.signal }),
        );
        await eventually(() => h.kinds().includes("wrapper.registered"));
        controller.abort();
        open();
        const error = (await call) as Error;
        expect(error?.constructor.name).toBe("APIUserAbortError");
        expect(h.server.received).toEqual([]);
        const after = await h.snapshot();
        expect(after.sessionUsdReserved).toBe(0);
      },
    );

    // Guards against: the governed `fetch` called directly (or handed to another client) admits the
    // request and audits the hidden tools as removed, but sends the body as it came.
    it.skipIf(!engine.available || client.via !== "fetch")(
      "sends what it admitted when its fetch is called directly",
      async () => {
        h.server.reply = () => ({ json: message() });
        const anthropic = h.wrapped() as unknown as {
          fetch: (url: string, init: RequestInit) => Promise<Response>;
        };
        const tool = (name: string) => ({ name, input_schema: { type: "object" } });
        const response = await anthropic.fetch(`${h.server.baseURL}/v1/messages`, {
          method: "POST",
          headers: { "content-type": "application/json", "x-api-key": "sk-ant-test" },
          body: JSON.stringify({
            model: MODEL,
            ...ask,
            tools: [tool("lookup_invoice"), tool("delete_all")],
          }),
        });
        expect(response.ok).toBe(true);
        await response.text();
        const sent = h.server.received[0]?.body as { tools: { name: string }[] };
        expect(sent.tools.map((entry) => entry.name)).toEqual(["lookup_invoice"]);
      },
    );

    // Guards against: a copy whose own fetch calls the governed client's fetch: one request,
    // admitted and charged twice.
    it.skipIf(!engine.available || client.via !== "fetch")(
      "governs a request once when one governed fetch calls another",
      async () => {
        h.server.reply = () => ({ json: message() });
        const anthropic = h.wrapped();
        const viaParent = (url: string, init: RequestInit) =>
          (anthropic as unknown as { fetch: typeof fetch }).fetch(url, init);
        const copy = anthropic.withOptions({ fetch: viaParent } as never);
        await copy.messages.create({ model: MODEL, ...ask });
        const after = await h.snapshot();
        expect(h.server.received).toHaveLength(1);
        expect(h.kinds().filter((kind) => kind === "llm.call")).toHaveLength(1);
        expect(after.sessionUsdUsed).toBeCloseTo(usdOf(USAGE), 12);
      },
    );

    // Guards against: a `fetch` assigned after wrapping (as instrumentation does) bypassing the
    // governed one: the call admitted in prepareRequest is never settled (held until it expires)
    // and its response never governed.
    it.skipIf(!engine.available || client.via !== "fetch")(
      "keeps governing when the client's fetch is replaced after wrapping",
      async () => {
        h.server.reply = () => ({ json: message({ toolUses: ["wire_money"] }) });
        const anthropic = h.wrapped();
        let through = 0;
        (anthropic as unknown as { fetch: typeof fetch }).fetch = (url, init) => {
          through++;
          return fetch(url, init);
        };
        const result = await anthropic.messages.create({ model: MODEL, ...ask });
        expect(through).toBe(1);
        expect(result.content.map((block) => block.type)).toEqual(["text"]); // wire_money removed
        const after = await h.snapshot();
        expect(after.sessionUsdReserved).toBe(0);
        expect(h.kinds()).toContain("llm.result");
      },
    );

    // Guards against: a request prepared (admitted, reserved) that the client then never sends
    // (here its logger throws between the hook and fetch): the reservation held until it expires.
    it.skipIf(!engine.available || client.via !== "fetch")(
      "releases a prepared request the client never sends",
      async () => {
        const Client = client.create(h.server.baseURL).constructor as new (
          options: object,
        ) => ReturnType<typeof client.create>;
        const noisy = {
          debug: (message: string) => {
            if (String(message).includes("sending request")) throw new Error("logger broke");
          },
          info: () => undefined,
          warn: () => undefined,
          error: () => undefined,
        };
        const anthropic = wrapAnthropic(
          new Client({
            apiKey: "sk-ant-test",
            baseURL: h.server.baseURL,
            maxRetries: 0,
            logLevel: "debug",
            logger: noisy,
          }),
          { governance: h.governance, agentId: AGENT, sessionId: SESSION },
        );
        const error = (await attempt(() =>
          anthropic.messages.create({ model: MODEL, ...ask }),
        )) as Error;
        expect(error?.message).toBe("logger broke");
        expect(h.server.received).toEqual([]);
        await eventually(() => h.kinds().includes("llm.error"));
        const after = await h.snapshot();
        expect(after.sessionUsdReserved).toBe(0);
      },
    );

    // Guards against: `tool_choice` is rewritten only when a hidden tool was removed from `tools`. A
    // choice that names a hidden tool the request does not offer is sent as it is: the hidden
    // name reaches the model. Expected: the hidden name never reaches the server.
    it.skipIf(!engine.available)("never sends a hidden tool's name in tool_choice", async () => {
      h.server.reply = () => ({ json: message() });
      const anthropic = h.wrapped();
      await attempt(() =>
        anthropic.messages.create({
          model: MODEL,
          ...ask,
          tools: [tool("lookup_invoice")],
          tool_choice: { type: "tool", name: "delete_all" },
        }),
      );
      expect(JSON.stringify(h.server.received.map((request) => request.body))).not.toContain(
        "delete_all",
      );
    });
  });
});
