import type { ApprovalRequestLike } from "@gov/core";
import { eventually, rejectionOf, testEngines } from "@gov/core/testing";
import type { ToolSet } from "ai";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  AI_SDKS,
  type ApprovalHarness,
  approvalHarness,
  approvedOutputs,
  firstToolError,
  toolCallCompletion,
} from "../__fixtures__/ai-sdk";
import { versionsOn } from "../__fixtures__/harness";
import { chatCompletion } from "../__fixtures__/openai-server";
import { InvalidWrapperOptionsError, ToolCallBlockedError } from "../errors";
import type { ApprovalRequestNotice } from "./approval-options";
import { toolApprovalResponses } from "./approval-responses";
import { governTools } from "./tools";

const AGENT = "billing-agent";
const SESSION = "s-1";
const PROMPT = "Pay 120 to acct-7.";
const PAYMENT = { to: "acct-7", amount: 120 };

describe.each(testEngines())("governTools approvals (framework mode) on $name", (engine) => {
  describe.each(
    versionsOn(
      engine,
      AI_SDKS.filter((sdk) => sdk.major >= 6),
    ),
  )("with $version", (sdk) => {
    const { generateText, tool, jsonSchema, stepCountIs } = sdk.ai;
    let h: ApprovalHarness;
    let notices: ApprovalRequestNotice[];
    beforeEach(async () => {
      if (!engine.available) return;
      h = await approvalHarness(engine);
      h.scope.register({ agentId: AGENT, allowedTools: ["wire_money", "lookup_invoice"] });
      notices = [];
    });
    afterEach(async () => {
      if (engine.available) await h.close();
    });

    const schema = jsonSchema<{ to?: string; amount?: number }>({
      type: "object",
      properties: { to: { type: "string" }, amount: { type: "number" } },
    });
    function toolSet() {
      const ran: unknown[] = [];
      const tools = {
        wire_money: tool({
          description: "Wire money",
          inputSchema: schema,
          execute: async (input: unknown) => {
            ran.push(input);
            return "wired";
          },
        }),
        lookup_invoice: tool({
          description: "Look up an invoice",
          inputSchema: schema,
          execute: async () => "42",
        }),
      };
      return { tools, ran };
    }
    function govern<T extends Record<string, object>>(
      tools: T,
      governance: Record<string, unknown> = {},
      approval: Record<string, unknown> = {},
    ) {
      return governTools(tools, {
        governance: {
          halt: h.presence,
          scope: h.scope,
          gates: h.gates,
          audit: h.audit,
          logger: h.logger,
          ...governance,
        },
        agentId: AGENT,
        sessionId: SESSION,
        approval: {
          tools: ["wire_money"],
          onRequest: (notice: ApprovalRequestNotice) => void notices.push(notice),
          ...approval,
        },
      });
    }
    /** First step: the model calls wire_money; after the tool result, it answers. */
    function replies(input: unknown = PAYMENT) {
      h.server.reply = ({ body }) => {
        const messages = (body.messages ?? []) as { role: string }[];
        return messages.some((message) => message.role === "tool")
          ? { json: chatCompletion({ content: "Done." }) }
          : { json: toolCallCompletion([{ name: "wire_money", input }]) };
      };
    }
    const kinds = () => h.audit.events.map((event) => event.kind);
    /** The reasons of gates' `approval.refused` events. */
    const refusals = () =>
      h.audit.events
        .filter((entry) => entry.kind === "approval.refused")
        .map((entry) => String(entry.metadata?.reason));
    const event = (kind: string) => h.audit.events.find((entry) => entry.kind === kind);

    async function firstRun(tools: Record<string, object>) {
      const result = await generateText({
        model: sdk.chat(h.server.baseURL),
        tools: tools as ToolSet,
        prompt: PROMPT,
        stopWhen: stepCountIs(3),
        maxRetries: 0,
      });
      return result;
    }
    async function resume(
      tools: Record<string, object>,
      first: Awaited<ReturnType<typeof firstRun>>,
      responses: unknown[],
      edit: (messages: unknown[]) => unknown[] = (messages) => messages,
    ) {
      return generateText({
        model: sdk.chat(h.server.baseURL),
        tools: tools as ToolSet,
        messages: [
          { role: "user", content: PROMPT },
          ...(edit(first.response.messages) as typeof first.response.messages),
          { role: "tool", content: responses as never },
        ],
        stopWhen: stepCountIs(3),
        maxRetries: 0,
      });
    }

    it.skipIf(!engine.available)(
      "a listed tool waits for a reviewer in another process; the grant runs it once, and no token is ever logged, audited or sent",
      async () => {
        replies();
        const { tools, ran } = toolSet();
        const governed = govern(tools);
        const first = await firstRun(governed);
        expect(ran).toEqual([]);
        const asked = first.content.filter((part) => part.type === "tool-approval-request");
        expect(asked).toHaveLength(1);
        expect(notices).toHaveLength(1);
        const notice = notices[0] as ApprovalRequestNotice;
        expect(notice).toMatchObject({
          toolName: "wire_money",
          input: PAYMENT,
          cause: "listed",
          request: { kind: "tool.wire_money", agentId: AGENT, stored: true },
        });
        expect((await h.reviewer.getRequest(notice.request.requestId))?.status).toBe("pending");

        // Undecided: no response yet.
        expect(await toolApprovalResponses(governed, first.content)).toEqual([]);
        await h.reviewer.grant(notice.request.token, { reviewerId: "bob@company.com" });
        // Read from the messages and the content together: one response per request.
        const responses = await toolApprovalResponses(governed, [
          ...first.response.messages,
          ...first.content,
        ]);
        expect(responses).toEqual([
          {
            type: "tool-approval-response",
            approvalId: (asked[0] as { approvalId: string }).approvalId,
            approved: true,
          },
        ]);

        const second = await resume(governed, first, responses);
        expect(second.text).toBe("Done.");
        expect(ran).toEqual([PAYMENT]);
        // Asked again before running (the AI SDK re-checks an approved call): the same request.
        expect(notices).toHaveLength(1);
        await eventually(() => kinds().includes("tool.result"));
        expect(event("tool.call")?.metadata).toMatchObject({
          tool: "wire_money",
          approval: { requestId: notice.request.requestId, reviewerId: "bob@company.com" },
        });
        expect((await h.reviewer.getRequest(notice.request.requestId))?.executedAt).toBeInstanceOf(
          Date,
        );

        expect(approvedOutputs(second)).toEqual([
          { toolName: "wire_money", type: "text", value: "wired" },
        ]);

        // Once: the same approval replayed is refused by gates, and the tool does not run again.
        const replay = await resume(governed, first, responses);
        expect(approvedOutputs(replay)).toEqual([
          {
            toolName: "wire_money",
            type: "error-text",
            value: expect.stringContaining("already ran"),
          },
        ]);
        expect(ran).toHaveLength(1);
        expect(notices).toHaveLength(1);
        await eventually(() => refusals().includes("already_executed"));

        const token = notice.request.token;
        expect(token.length).toBeGreaterThan(20);
        expect(JSON.stringify(h.audit.events)).not.toContain(token);
        expect(JSON.stringify(h.logger.entries)).not.toContain(token);
        expect(JSON.stringify(h.server.received)).not.toContain(token);
      },
    );

    it.skipIf(!engine.available)(
      "a denial reaches the model with the reviewer's reason, and the tool never runs",
      async () => {
        replies();
        const { tools, ran } = toolSet();
        const governed = govern(tools);
        const first = await firstRun(governed);
        const request = (notices[0] as ApprovalRequestNotice).request;
        await h.reviewer.deny(request.token, {
          reviewerId: "bob@company.com",
          reason: "Over the weekly limit.",
        });
        const responses = await toolApprovalResponses(governed, first.content);
        expect(responses).toMatchObject([{ approved: false, reason: "Over the weekly limit." }]);
        const second = await resume(governed, first, responses);
        expect(second.text).toBe("Done.");
        expect(ran).toEqual([]);
        const sent = JSON.stringify(h.server.received.at(-1)?.body);
        expect(sent).toContain("Over the weekly limit.");
        expect(kinds()).not.toContain("tool.call");
      },
    );

    it.skipIf(!engine.available)(
      "the application's own approval without a gates grant is refused at execute",
      async () => {
        replies();
        const { tools, ran } = toolSet();
        const governed = govern(tools);
        const first = await firstRun(governed);
        const asked = first.content.find((part) => part.type === "tool-approval-request") as {
          approvalId: string;
        };
        const second = await resume(governed, first, [
          { type: "tool-approval-response", approvalId: asked.approvalId, approved: true },
        ]);
        expect(approvedOutputs(second)).toEqual([
          {
            toolName: "wire_money",
            type: "error-text",
            value: expect.stringContaining("waiting for a human decision"),
          },
        ]);
        expect(ran).toEqual([]);
        // The model saw the refusal, and answered.
        expect(second.text).toBe("Done.");
        expect(kinds()).not.toContain("tool.call");
      },
    );

    it.skipIf(!engine.available)(
      "a grant for other arguments is refused at execute (verifyAction)",
      async () => {
        replies();
        const { tools, ran } = toolSet();
        const governed = govern(tools);
        const first = await firstRun(governed);
        const request = (notices[0] as ApprovalRequestNotice).request;
        await h.reviewer.grant(request.token, { reviewerId: "bob@company.com" });
        const responses = await toolApprovalResponses(governed, first.content);
        // The message history edited after the grant: the call now pays 9,999.
        const tampered = (messages: unknown[]) =>
          JSON.parse(JSON.stringify(messages).replace('"amount":120', '"amount":9999'));
        const second = await resume(governed, first, responses, tampered);
        expect(approvedOutputs(second)).toEqual([
          { toolName: "wire_money", type: "error-text", value: expect.any(String) },
        ]);
        expect(ran).toEqual([]);
        await eventually(() => refusals().includes("action_hash_mismatch"));
        expect(notices).toHaveLength(1);
        // Not consumed: the approved call itself may still run.
        expect((await h.reviewer.getRequest(request.requestId))?.executedAt).toBeNull();
      },
    );

    it.skipIf(!engine.available)(
      "without a gates port, a call that needs approval is refused (and the tool never runs)",
      async () => {
        replies();
        const { tools, ran } = toolSet();
        const governed = govern(tools, { gates: undefined });
        expect(h.logger.messages("warn").join("\n")).toContain("without a gates port");
        const result = await firstRun(governed);
        const failed = firstToolError(result);
        expect(ToolCallBlockedError.isInstance(failed)).toBe(true);
        expect((failed as ToolCallBlockedError).reason).toBe("approval_unavailable");
        expect(result.text).toBe("Done.");
        expect(ran).toEqual([]);
        await eventually(() => kinds().includes("tool.blocked"));
        expect(event("tool.blocked")?.metadata).toMatchObject({
          tool: "wire_money",
          reason: "approval_unavailable",
        });
      },
    );

    it.skipIf(!engine.available)(
      "an onRequest that throws refuses the call; its error's message is never logged",
      async () => {
        replies();
        const { tools, ran } = toolSet();
        let token = "";
        const governed = govern(
          tools,
          {},
          {
            onRequest: ({ request }: { request: ApprovalRequestLike }) => {
              token = request.token;
              throw new Error(`could not post ${request.token}`);
            },
          },
        );
        const result = await firstRun(governed);
        const failed = firstToolError(result);
        expect((failed as ToolCallBlockedError).reason).toBe("approval_unavailable");
        expect(ran).toEqual([]);
        expect(h.logger.messages("error").join("\n")).toContain("onRequest threw");
        expect(token.length).toBeGreaterThan(20);
        expect(JSON.stringify(h.logger.entries)).not.toContain(token);
        await eventually(() => kinds().includes("tool.blocked"));
        expect(JSON.stringify(h.audit.events)).not.toContain(token);
      },
    );

    it.skipIf(!engine.available)(
      "a tool's own needsApproval is answered by gates too; other tools run without asking",
      async () => {
        h.server.reply = ({ body }) => {
          const messages = (body.messages ?? []) as { role: string }[];
          return messages.some((message) => message.role === "tool")
            ? { json: chatCompletion({ content: "Done." }) }
            : {
                json: toolCallCompletion([
                  { name: "lookup_invoice", input: { to: "x" }, id: "call_a" },
                  { name: "wire_money", input: PAYMENT, id: "call_b" },
                ]),
              };
        };
        const { tools, ran } = toolSet();
        const own = {
          ...tools,
          wire_money: { ...tools.wire_money, needsApproval: async () => true },
        };
        const governed = govern(own, {}, { tools: [] });
        const first = await firstRun(governed);
        expect(notices.map((notice) => [notice.toolName, notice.cause])).toEqual([
          ["wire_money", "tool"],
        ]);
        expect(ran).toEqual([]);
        const results = first.content.filter((part) => part.type === "tool-result");
        expect(results.map((part) => (part as { toolName: string }).toolName)).toEqual([
          "lookup_invoice",
        ]);
      },
    );
  });
});

describe.each(testEngines())("governTools approvals with AI SDK 5 on $name", (engine) => {
  const sdk = AI_SDKS.find((entry) => entry.major === 5);
  it.skipIf(!engine.available || sdk === undefined)(
    "framework mode refuses a call that needs approval (AI SDK 5 does not ask needsApproval): use block mode",
    async () => {
      if (sdk === undefined) return;
      const h = await approvalHarness(engine);
      try {
        h.scope.register({ agentId: AGENT, allowedTools: ["wire_money"] });
        const notices: unknown[] = [];
        const ran: unknown[] = [];
        h.server.reply = ({ body }) =>
          ((body.messages ?? []) as { role: string }[]).some((message) => message.role === "tool")
            ? { json: chatCompletion({ content: "Done." }) }
            : { json: toolCallCompletion([{ name: "wire_money", input: PAYMENT }]) };
        const { generateText, tool, jsonSchema, stepCountIs } = sdk.ai;
        const tools = governTools(
          {
            wire_money: tool({
              description: "Wire money",
              inputSchema: jsonSchema<{ to?: string }>({ type: "object", properties: {} }),
              execute: async (input: unknown) => void ran.push(input),
            }),
          },
          {
            governance: { halt: h.presence, scope: h.scope, gates: h.gates, audit: h.audit },
            agentId: AGENT,
            approval: { tools: ["wire_money"], onRequest: (notice) => void notices.push(notice) },
          },
        );
        const result = await generateText({
          model: sdk.chat(h.server.baseURL),
          tools,
          prompt: PROMPT,
          stopWhen: stepCountIs(3),
          maxRetries: 0,
        });
        const failed = firstToolError(result);
        expect((failed as ToolCallBlockedError).reason).toBe("approval_missing");
        expect(ran).toEqual([]);
        expect(notices).toEqual([]);
      } finally {
        await h.close();
      }
    },
  );
});

describe("governTools' approval option", () => {
  const tools = { a: { description: "A", execute: async () => "ok" } };
  const onRequest = () => {};
  const refusal = (run: () => unknown) => {
    try {
      run();
    } catch (error) {
      return error as InvalidWrapperOptionsError;
    }
    throw new Error("nothing was thrown");
  };

  it("refuses steward: true without a steward port, a missing onRequest, and bad values", () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ steward: true, onRequest }, "options.approval.steward"],
      [{ tools: ["a"] }, "options.approval.onRequest"],
      [{ onRequest, mode: "wait" }, "options.approval.mode"],
      [{ onRequest, timeoutMs: 10 }, "options.approval.timeoutMs"],
      [{ onRequest, tools: "a" }, "options.approval.tools"],
      [{ onRequest, tool: ["a"] }, "options.approval.tool"],
    ];
    for (const [approval, field] of cases) {
      const error = refusal(() =>
        governTools(tools, { governance: {}, agentId: "a", approval: approval as never }),
      );
      expect(InvalidWrapperOptionsError.isInstance(error)).toBe(true);
      expect(error.field).toBe(field);
    }
  });

  it("leaves needsApproval to the AI SDK's approval flow in framework mode, and removes it in block mode", () => {
    const own = { a: { ...tools.a, needsApproval: true } };
    const framework = governTools(own, {
      governance: {},
      agentId: "a",
      approval: { onRequest },
    });
    expect(typeof framework.a.needsApproval).toBe("function");
    const block = governTools(own, {
      governance: {},
      agentId: "a",
      approval: { onRequest, mode: "block" },
    });
    expect("needsApproval" in block.a).toBe(false);
    expect(own.a.needsApproval).toBe(true);
  });

  it("toolApprovalResponses refuses a tool set without approvals, by rejecting", async () => {
    const plain = governTools(tools, { governance: {}, agentId: "a" });
    const error = await rejectionOf(() => toolApprovalResponses(plain, []));
    expect(InvalidWrapperOptionsError.isInstance(error)).toBe(true);
    const bad = await rejectionOf(() =>
      toolApprovalResponses(
        governTools(tools, { governance: {}, agentId: "a", approval: { onRequest } }),
        [],
        { timeoutMs: -1 },
      ),
    );
    expect((bad as InvalidWrapperOptionsError).field).toBe("options.timeoutMs");
  });
});
