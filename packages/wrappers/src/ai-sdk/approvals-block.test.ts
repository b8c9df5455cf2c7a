import { eventually, rejectionOf, testEngines } from "@gov/core/testing";
import { ApprovalDenied, ApprovalTimeout } from "@gov/gates";
import type { ToolSet } from "ai";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  AI_SDKS,
  type ApprovalHarness,
  approvalHarness,
  firstToolError,
  toolCallCompletion,
} from "../__fixtures__/ai-sdk";
import { versionsOn } from "../__fixtures__/harness";
import { chatCompletion } from "../__fixtures__/openai-server";
import type { ApprovalRequestNotice } from "./approval-options";
import { governTools } from "./tools";

const AGENT = "billing-agent";
const SESSION = "s-1";
const PAYMENT = { to: "acct-7", amount: 120 };

describe.each(testEngines())("governTools approvals (block mode) on $name", (engine) => {
  describe.each(versionsOn(engine, AI_SDKS))("with $version", (sdk) => {
    const { generateText, tool, jsonSchema, stepCountIs } = sdk.ai;
    let h: ApprovalHarness;
    let notices: ApprovalRequestNotice[];
    let ran: unknown[];
    beforeEach(async () => {
      if (!engine.available) return;
      h = await approvalHarness(engine);
      h.scope.register({ agentId: AGENT, allowedTools: ["wire_money", "pay"] });
      notices = [];
      ran = [];
    });
    afterEach(async () => {
      if (engine.available) await h.close();
    });

    const schema = jsonSchema<{ to?: string; amount?: number }>({
      type: "object",
      properties: { to: { type: "string" }, amount: { type: "number" } },
    });
    /**
     * `wire_money` (listed) and `pay` (the steward's), in block mode; `decide` is what the
     * reviewer does, in their own process, once a request was delivered.
     */
    function governed(
      decide: (notice: ApprovalRequestNotice) => Promise<unknown> | undefined,
      approval: Record<string, unknown> = {},
    ) {
      const execute = async (input: unknown) => {
        ran.push(input);
        return "paid";
      };
      return governTools(
        {
          wire_money: tool({ description: "Wire money", inputSchema: schema, execute }),
          pay: tool({ description: "Pay", inputSchema: schema, execute }),
        },
        {
          governance: {
            halt: h.presence,
            scope: h.scope,
            gates: h.gates,
            steward: h.steward,
            audit: h.audit,
            logger: h.logger,
          },
          agentId: AGENT,
          sessionId: SESSION,
          approval: {
            tools: ["wire_money"],
            steward: true,
            mode: "block",
            onRequest: (notice: ApprovalRequestNotice) => {
              notices.push(notice);
              // Not awaited: the reviewer decides later, while execute waits.
              setTimeout(() => void decide(notice)?.catch(() => undefined), 50);
            },
            ...approval,
          },
        },
      );
    }
    function calls(name: string, input: unknown) {
      h.server.reply = ({ body }) =>
        ((body.messages ?? []) as { role: string }[]).some((message) => message.role === "tool")
          ? { json: chatCompletion({ content: "Done." }) }
          : { json: toolCallCompletion([{ name, input }]) };
    }
    function run(tools: Record<string, object>) {
      return generateText({
        model: sdk.chat(h.server.baseURL),
        tools: tools as ToolSet,
        prompt: "Pay the invoice.",
        stopWhen: stepCountIs(3),
        maxRetries: 0,
      });
    }
    const kinds = () => h.audit.events.map((event) => event.kind);
    const grant = (notice: ApprovalRequestNotice) =>
      h.reviewer.grant(notice.request.token, { reviewerId: "bob@company.com" });

    it.skipIf(!engine.available)(
      "execute waits for the reviewer's grant in another process, verifies it, then runs once",
      async () => {
        calls("wire_money", PAYMENT);
        const result = await run(governed(grant));
        expect(result.text).toBe("Done.");
        expect(ran).toEqual([PAYMENT]);
        expect(notices).toHaveLength(1);
        const notice = notices[0] as ApprovalRequestNotice;
        expect(notice).toMatchObject({ toolName: "wire_money", cause: "listed" });
        expect(result.steps[0]?.toolResults.map((part) => part.output)).toEqual(["paid"]);
        await eventually(() => kinds().includes("tool.result"));
        expect(h.audit.events.find((event) => event.kind === "tool.call")?.metadata).toMatchObject({
          approval: { requestId: notice.request.requestId, reviewerId: "bob@company.com" },
        });
        expect((await h.reviewer.getRequest(notice.request.requestId))?.executedAt).toBeInstanceOf(
          Date,
        );
        expect(JSON.stringify(h.audit.events)).not.toContain(notice.request.token);
        expect(JSON.stringify(h.logger.entries)).not.toContain(notice.request.token);
        expect(JSON.stringify(h.server.received)).not.toContain(notice.request.token);
      },
    );

    it.skipIf(!engine.available)(
      "a denial is the tool's error (ApprovalDenied, with the reason), and the tool never runs",
      async () => {
        calls("wire_money", PAYMENT);
        const result = await run(
          governed((notice) =>
            h.reviewer.deny(notice.request.token, {
              reviewerId: "bob@company.com",
              reason: "Not this week.",
            }),
          ),
        );
        const failed = firstToolError(result);
        expect(ApprovalDenied.isInstance(failed)).toBe(true);
        expect((failed as ApprovalDenied).reason).toBe("Not this week.");
        expect(ran).toEqual([]);
        expect(JSON.stringify(h.server.received.at(-1)?.body)).toContain("Not this week.");
      },
    );

    it.skipIf(!engine.available)(
      "the steward's ESCALATE waits for a reviewer too, and the approval is counted against its limits",
      async () => {
        calls("pay", { to: "acct-7", amount: 1_500 });
        const result = await run(governed(grant));
        expect(result.text).toBe("Done.");
        expect(ran).toEqual([{ to: "acct-7", amount: 1_500 }]);
        expect(notices.map((notice) => notice.cause)).toEqual(["steward"]);
        // Committed once approved: the daily total is 1,500, so 10 more escalates as well.
        calls("pay", { to: "acct-7", amount: 10 });
        await run(governed(grant));
        expect(notices).toHaveLength(2);
        expect(ran).toHaveLength(2);
      },
    );

    it.skipIf(!engine.available)(
      "a run aborted while execute waits (abortSignal) never runs the tool, even once granted later",
      async () => {
        const controller = new AbortController();
        const tools = governed(() => {
          controller.abort(new Error("the user left"));
          return undefined;
        });
        const error = await rejectionOf(() =>
          tools.wire_money.execute?.(PAYMENT, {
            toolCallId: "call_abort",
            messages: [],
            abortSignal: controller.signal,
          }),
        );
        expect((error as Error).message).toBe("the user left");
        const notice = notices[0] as ApprovalRequestNotice;
        await grant(notice);
        await new Promise((resolve) => setTimeout(resolve, 100));
        expect(ran).toEqual([]);
        expect((await h.reviewer.getRequest(notice.request.requestId))?.executedAt).toBeNull();
        expect(kinds()).not.toContain("tool.call");
      },
    );

    it.skipIf(!engine.available || sdk.major !== 6)(
      "nobody decides within timeoutMs: ApprovalTimeout, and the tool never runs",
      async () => {
        const tools = governed(() => undefined, { timeoutMs: 1_000 });
        const error = await rejectionOf(() =>
          tools.wire_money.execute?.(PAYMENT, { toolCallId: "call_late", messages: [] }),
        );
        expect(ApprovalTimeout.isInstance(error)).toBe(true);
        expect(ran).toEqual([]);
      },
    );
  });
});
