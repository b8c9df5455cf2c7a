import { newestOn } from "./__fixtures__/harness";
/**
 * Observation (audit, coverage, logging, redaction) never breaks the host's call, and never
 * loses the evidence it exists for (content and tool lists cut to fit the audit limits).
 */

import { AuditModule, auditMigrations } from "@gov/audit";
import { type AuditEventInput, ChainKey, Keyring, type Logger, systemClock } from "@gov/core";
import { createTestStore, eventually, recordingLogger, testEngines } from "@gov/core/testing";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  AGENT,
  attempt,
  CLIENTS,
  type OpenAIAgent,
  openAIAgent,
  SESSION,
} from "./__fixtures__/openai-agent";
import { chatCompletion } from "./__fixtures__/openai-server";
import { wrapOpenAI } from "./openai/wrap";
import { startOpenAIServer } from "./testing/openai-server";

const ask = { model: "gpt-4o", messages: [{ role: "user" as const, content: "hi" }] };

/** A logger whose every method throws (a broken transport, a serializer that throws). */
const throwingLogger: Logger = {
  debug() {
    throw new Error("logger down");
  },
  info() {
    throw new Error("logger down");
  },
  warn() {
    throw new Error("logger down");
  },
  error() {
    throw new Error("logger down");
  },
};

describe.each(testEngines())("observation faults on $name", (engine) => {
  describe.each(newestOn(engine, CLIENTS))("with $major", (client) => {
    let h: OpenAIAgent;
    beforeEach(async () => {
      if (engine.available) h = await openAIAgent(engine, client);
    });
    afterEach(async () => {
      if (engine.available) await h.close();
    });

    // Guards against: `Governor.log` catches an audit sink that throws, then reports it through the
    // logger — outside any try. With a logger that throws too, `wrapper.registered` makes
    // wrapOpenAI itself throw. Expected: observation never breaks the host: the client is
    // wrapped and the failures are swallowed (a failing logger is the last resort).
    it.skipIf(!engine.available)(
      "wraps a client although the audit sink and the logger throw",
      async () => {
        const governance = {
          ...h.governance,
          audit: {
            log(): never {
              throw new Error("sink down");
            },
          },
          logger: throwingLogger,
        };
        const raw = client.create(h.server.baseURL);
        expect(
          await attempt(() => wrapOpenAI(raw, { governance, agentId: AGENT })),
        ).toBeUndefined();
      },
    );

    // Guards against: a sink that rejects and a logger that throws while the rejection is
    // reported: the handler itself rejected, an unhandled rejection in the host's process.
    it.skipIf(!engine.available)(
      "leaves no unhandled rejection when the sink rejects and the logger throws",
      async () => {
        const unhandled: unknown[] = [];
        const onUnhandled = (reason: unknown) => unhandled.push(reason);
        process.on("unhandledRejection", onUnhandled);
        try {
          h.server.reply = () => ({ json: chatCompletion() });
          const governance = {
            ...h.governance,
            audit: { log: () => Promise.reject(new Error("sink down")) },
            logger: throwingLogger,
          };
          const openai = wrapOpenAI(client.create(h.server.baseURL), {
            governance,
            agentId: AGENT,
            sessionId: SESSION,
          });
          expect(await attempt(() => openai.chat.completions.create(ask))).toBeUndefined();
          await new Promise((resolve) => setTimeout(resolve, 50));
        } finally {
          process.off("unhandledRejection", onUnhandled);
        }
        expect(unhandled).toEqual([]);
      },
    );

    // Guards against: the same fault on the call's path: `llm.call` is handed to a sink that throws,
    // the logger throws while reporting it, and the host's call rejects with the logger's
    // error — after its budget was reserved, so the reservation is left held. Expected: the
    // call goes through and its usage is settled.
    it.skipIf(!engine.available)(
      "makes the call although the audit sink and the logger throw",
      async () => {
        h.server.reply = () => ({ json: chatCompletion() });
        const governance = {
          ...h.governance,
          // throws synchronously for llm.call (a promise-returning sink that throws)
          audit: {
            log(event: AuditEventInput) {
              if (event.kind === "llm.call") throw new Error("sink down");
              return Promise.resolve({ eventId: "", isPlaceholder: true });
            },
          },
          logger: throwingLogger,
        };
        const openai = wrapOpenAI(client.create(h.server.baseURL), {
          governance,
          agentId: AGENT,
          sessionId: SESSION,
        });
        const error = await attempt(() => openai.chat.completions.create(ask));
        expect(error).toBeUndefined();
        expect((await h.snapshot()).sessionTokensReserved).toBe(0);
      },
    );

    // Guards against: the coverage recorder is an observation port: `#cover` catches a recorder that
    // throws, then logs through the logger outside any try. With both failing, the admitted
    // call rejects after its reservation. Expected: the call goes through.
    it.skipIf(!engine.available)(
      "makes the call although the coverage recorder and the logger throw",
      async () => {
        h.server.reply = () => ({ json: chatCompletion() });
        const governance = {
          ...h.governance,
          logger: throwingLogger,
          coverage: {
            record(_agentId: string, _client: string, event?: string) {
              if (event !== "wrapped") throw new Error("registry down");
            },
          },
        };
        const openai = wrapOpenAI(client.create(h.server.baseURL), {
          governance,
          agentId: AGENT,
          sessionId: SESSION,
        });
        expect(await attempt(() => openai.chat.completions.create(ask))).toBeUndefined();
        expect((await h.snapshot()).sessionTokensReserved).toBe(0);
      },
    );

    // Guards against: `redact` is handed the request's own `messages` array (no copy), before the
    // request is serialized. A hook that redacts in place — the natural way to write one —
    // changes what the model receives. Expected: the host's request is sent as the host made
    // it, whatever the hook does (hand the hook a copy, or record after sending).
    it.skipIf(!engine.available)(
      "sends the host's messages unchanged whatever the redact hook does",
      async () => {
        h.server.reply = () => ({ json: chatCompletion() });
        const openai = h.wrapped({
          recordContent: true,
          redact: ({ content }: { content: unknown }) => {
            if (Array.isArray(content))
              for (const message of content as { content: unknown }[])
                message.content = "[redacted]";
            return content;
          },
        });
        await openai.chat.completions.create({
          model: "gpt-4o",
          messages: [{ role: "user", content: "What is the balance of INV-42?" }],
        });
        const sent = h.server.received[0]?.body.messages as { content: string }[];
        expect(sent[0]?.content).toBe("What is the balance of INV-42?");
        await eventually(() => h.kinds().includes("llm.call"));
        const call = h.audit.events.find((event) => event.kind === "llm.call");
        expect(call?.metadata?.input).toEqual([{ role: "user", content: "[redacted]" }]);
      },
    );
  });
});

describe.each(testEngines())("evidence lost on $name", (engine) => {
  let audit: AuditModule;
  let close: () => Promise<void>;
  let server: Awaited<ReturnType<typeof startOpenAIServer>>;
  const logger = recordingLogger();
  beforeEach(async () => {
    if (!engine.available) return;
    const store = await createTestStore(engine, { migrations: [auditMigrations] });
    audit = new AuditModule(
      {
        store,
        keyring: new Keyring(new ChainKey("wrappers-observation-secret-0123456789-abcdefghij")),
        clock: systemClock,
        logger,
      },
      { spoolDirectory: null },
    );
    await audit.start();
    server = await startOpenAIServer();
    server.reply = () => ({ json: chatCompletion() });
    close = async () => {
      await server.close();
      await audit.close();
      await store.close();
    };
  });
  afterEach(async () => {
    if (engine.available) await close();
  });

  const kindsWritten = async () => {
    await audit.flush();
    return (await audit.getEvents({ sessionId: SESSION })).map((event) => event.kind);
  };

  // Guards against: with `recordContent: true`, the messages go into `llm.call`'s metadata as they
  // are; the audit module refuses a metadata value over 8 KiB, so any real prompt (a system
  // prompt and a few turns) makes the whole `llm.call` event rejected — logged, and lost:
  // the chain has an `llm.result` whose call was never recorded. Expected: the event is
  // written (the content cut, or replaced by its hash — `inputHash` exists for this).
  it.skipIf(!engine.available)(
    "records llm.call with recordContent when the prompt is larger than 8 KiB",
    async () => {
      const openai = wrapOpenAI(CLIENTS[0].create(server.baseURL), {
        governance: { audit },
        agentId: AGENT,
        sessionId: SESSION,
        recordContent: true,
      });
      await openai.chat.completions.create({
        model: "gpt-4o",
        messages: [
          { role: "system", content: "You are the billing agent. ".repeat(400) },
          { role: "user", content: "What is the balance of INV-42?" },
        ],
      });
      await eventually(async () => (await kindsWritten()).includes("llm.result"));
      const events = await audit.getEvents({ sessionId: SESSION });
      const call = events.find((event) => event.kind === "llm.call");
      expect(call?.inputHash).toMatch(/^[0-9a-f]{64}$/);
      expect(call?.metadata.inputCut).toMatchObject({ bytes: expect.any(Number) });
      expect(String(call?.metadata.input)).toContain("You are the billing agent.");
      const result = events.find((event) => event.kind === "llm.result");
      expect(result?.parentEventId).toBe(call?.eventId);
    },
  );

  // Guards against: the same loss on the way back: a long answer recorded with recordContent
  // made `llm.result` exceed the audit module's 8 KiB per value, and the result was lost.
  it.skipIf(!engine.available)(
    "records llm.result with recordContent when the answer is larger than 8 KiB",
    async () => {
      const answer = "The balance of INV-42 is 120 EUR. ".repeat(400);
      server.reply = () => ({ json: chatCompletion({ content: answer }) });
      const openai = wrapOpenAI(CLIENTS[0].create(server.baseURL), {
        governance: { audit },
        agentId: AGENT,
        sessionId: SESSION,
        recordContent: true,
      });
      const completion = await openai.chat.completions.create(ask);
      expect(completion.choices[0]?.message.content).toBe(answer);
      await eventually(async () => (await kindsWritten()).includes("llm.result"));
      const events = await audit.getEvents({ sessionId: SESSION });
      const result = events.find((event) => event.kind === "llm.result");
      expect(result?.outputHash).toMatch(/^[0-9a-f]{64}$/);
      expect(result?.metadata.outputCut).toMatchObject({ bytes: expect.any(Number) });
      expect(String(result?.metadata.output)).toContain("The balance of INV-42");
    },
  );

  // Guards against: without any content, `llm.call` lists the names of the tools offered in one
  // metadata value. 128 tools (OpenAI's limit) with 64-character names (its limit) exceed
  // the audit module's 8 KiB per value: `llm.call` is rejected and lost. Expected: the event
  // is written (the list cut with a count, or hashed).
  it.skipIf(!engine.available)("records llm.call for a call offering 128 tools", async () => {
    const openai = wrapOpenAI(CLIENTS[0].create(server.baseURL), {
      governance: { audit },
      agentId: AGENT,
      sessionId: SESSION,
    });
    const tools = Array.from({ length: 128 }, (_, index) => ({
      type: "function" as const,
      function: { name: `mcp__billing__${String(index).padStart(3, "0")}`.padEnd(64, "_") },
    }));
    await openai.chat.completions.create({ ...ask, tools });
    await eventually(async () => (await kindsWritten()).includes("llm.result"));
    const events = await audit.getEvents({ sessionId: SESSION });
    const call = events.find((event) => event.kind === "llm.call");
    expect(call?.metadata.toolsCut).toMatchObject({ total: 128 });
    const recorded = (call?.metadata.tools ?? []) as string[];
    expect(recorded.length).toBeGreaterThan(0);
    expect(recorded[0]).toBe(tools[0]?.function.name);
  });
});
