import { AgentHaltedError } from "@gov/core";
import { eventually, rejectionOf, testEngines } from "@gov/core/testing";
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
import { paymentSchema } from "../__fixtures__/payment-agent";
import { ToolCallBlockedError } from "../errors";
import type { ApprovalRequestNotice } from "./approval-options";
import { governedToolApproval, toolApprovalResponses } from "./approval-responses";
import { governTools } from "./tools";

const AGENT = "billing-agent";
const SESSION = "s-1";

describe.each(testEngines())("governTools and the steward on $name", (engine) => {
  describe.each(
    versionsOn(
      engine,
      AI_SDKS.filter((sdk) => sdk.major >= 6),
    ),
  )("with $version", (sdk) => {
    const { generateText, tool, stepCountIs } = sdk.ai;
    let h: ApprovalHarness;
    let notices: ApprovalRequestNotice[];
    let ran: unknown[];
    beforeEach(async () => {
      if (!engine.available) return;
      h = await approvalHarness(engine);
      h.scope.register({ agentId: AGENT, allowedTools: ["pay"] });
      notices = [];
      ran = [];
    });
    afterEach(async () => {
      if (engine.available) await h.close();
    });

    function governed() {
      return governTools(
        {
          pay: tool({
            description: "Pay an amount to an account",
            inputSchema: paymentSchema(sdk.ai),
            execute: async (input: unknown) => {
              ran.push(input);
              return "paid";
            },
          }),
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
            steward: true,
            onRequest: (notice: ApprovalRequestNotice) => void notices.push(notice),
          },
        },
      );
    }
    /** The model pays `input` (call id `id`), then answers once it has a tool result. */
    function pays(input: { to: string; amount: number }, id: string) {
      h.server.reply = ({ body }) =>
        ((body.messages ?? []) as { role: string }[]).some((message) => message.role === "tool")
          ? { json: chatCompletion({ content: "Done." }) }
          : { json: toolCallCompletion([{ name: "pay", input, id }]) };
    }
    function run(tools: Record<string, object>, extra: Record<string, unknown> = {}) {
      return generateText({
        model: sdk.chat(h.server.baseURL),
        tools: tools as ToolSet,
        prompt: "Pay the invoice.",
        stopWhen: stepCountIs(3),
        maxRetries: 0,
        ...extra,
      });
    }
    const kinds = () => h.audit.events.map((event) => event.kind);
    const blocked = () => h.audit.events.find((event) => event.kind === "tool.blocked");
    /** The steward's ESCALATE verdicts, as it audited them. */
    const escalations = () =>
      h.audit.events.filter(
        (event) =>
          event.kind === "steward.intervention" && event.metadata?.intervention === "ESCALATE",
      ).length;

    it.skipIf(!engine.available)(
      "OK runs without asking; ESCALATE asks a reviewer, and the approved call is committed to the steward's limits",
      async () => {
        const tools = governed();
        pays({ to: "acct-7", amount: 900 }, "call_first");
        await run(tools);
        expect(ran).toEqual([{ to: "acct-7", amount: 900 }]);
        expect(notices).toEqual([]);

        pays({ to: "acct-7", amount: 900 }, "call_second");
        const first = await run(tools);
        expect(ran).toHaveLength(1);
        expect(notices).toHaveLength(1);
        const notice = notices[0] as ApprovalRequestNotice;
        expect(notice).toMatchObject({
          toolName: "pay",
          cause: "steward",
          message: expect.stringContaining("Daily total above 1,000."),
        });
        await h.reviewer.grant(notice.request.token, { reviewerId: "bob@company.com" });
        const responses = await toolApprovalResponses(tools, first.content);
        expect(responses).toMatchObject([{ approved: true }]);
        await generateText({
          model: sdk.chat(h.server.baseURL),
          tools: tools as ToolSet,
          messages: [
            { role: "user", content: "Pay the invoice." },
            ...first.response.messages,
            { role: "tool", content: responses as never },
          ],
          stopWhen: stepCountIs(3),
          maxRetries: 0,
        });
        expect(ran).toEqual([
          { to: "acct-7", amount: 900 },
          { to: "acct-7", amount: 900 },
        ]);
        // The escalation was evaluated once, not again when the AI SDK re-checked the call.
        expect(escalations()).toBe(1);
        expect(notices).toHaveLength(1);
        // Committed: 1,800 counted today (without the commit, 900), so another 50 escalates.
        const again = await h.steward.evaluate(
          { action: "pay", parameters: { to: "acct-7", amount: 50 } },
          {},
          { agentId: AGENT },
        );
        expect(again.intervention).toBe("ESCALATE");
      },
    );

    it.skipIf(!engine.available)(
      "BLOCK refuses the call with the steward's reason (ToolCallBlockedError), audited; the tool never runs",
      async () => {
        pays({ to: "blocked-account", amount: 10 }, "call_block");
        const result = await run(governed());
        const failed = firstToolError(result);
        expect(ToolCallBlockedError.isInstance(failed)).toBe(true);
        const error = failed as ToolCallBlockedError;
        expect([error.code, error.reason, error.toolName]).toEqual([
          "TOOL_CALL_BLOCKED",
          "steward_block",
          "pay",
        ]);
        expect(error.message).toContain("Payments to this account are blocked.");
        expect(ran).toEqual([]);
        expect(notices).toEqual([]);
        await eventually(() => kinds().includes("tool.blocked"));
        expect(blocked()?.metadata).toMatchObject({
          tool: "pay",
          toolCallId: "call_block",
          reason: "steward_block",
          firedTripwires: ["blocked-account"],
          traceId: error.traceId,
        });
        expect(kinds()).not.toContain("tool.call");
      },
    );

    it.skipIf(!engine.available)(
      "HALT stops the run with AgentHaltedError (haltedBy steward); the tool never runs",
      async () => {
        pays({ to: "halt-account", amount: 10 }, "call_halt");
        const error = await rejectionOf(() => run(governed()));
        const halted = AgentHaltedError.isInstance(error)
          ? error
          : (error as { cause?: unknown }).cause;
        expect(AgentHaltedError.isInstance(halted)).toBe(true);
        expect((halted as AgentHaltedError).haltedBy).toBe("steward");
        expect((halted as AgentHaltedError).reason).toContain("sanctioned account");
        expect(ran).toEqual([]);
        await eventually(() => kinds().includes("tool.blocked"));
        expect(blocked()?.metadata).toMatchObject({ tool: "pay", reason: "steward_halt" });
        // The run stopped: the model was not called again.
        expect(h.server.received).toHaveLength(1);
      },
    );

    it.skipIf(!engine.available || sdk.major !== 7)(
      "AI SDK 7 toolApproval: BLOCK is a denial the model sees, ESCALATE a user approval that gates decides",
      async () => {
        const tools = governed();
        const toolApproval = governedToolApproval(tools);
        pays({ to: "blocked-account", amount: 10 }, "call_denied");
        const denied = await run(tools, { toolApproval });
        expect(denied.text).toBe("Done.");
        expect(ran).toEqual([]);
        expect(JSON.stringify(h.server.received.at(-1)?.body)).toContain(
          "Payments to this account are blocked.",
        );
        await eventually(() => kinds().includes("tool.blocked"));

        pays({ to: "acct-7", amount: 1_200 }, "call_escalated");
        const first = await run(tools, { toolApproval });
        const asked = first.content.filter((part) => part.type === "tool-approval-request");
        expect(asked).toHaveLength(1);
        expect(notices).toHaveLength(1);
        await h.reviewer.grant((notices[0] as ApprovalRequestNotice).request.token, {
          reviewerId: "bob@company.com",
        });
        const responses = await toolApprovalResponses(tools, first.content);
        await generateText({
          model: sdk.chat(h.server.baseURL),
          tools: tools as ToolSet,
          toolApproval,
          messages: [
            { role: "user", content: "Pay the invoice." },
            ...first.response.messages,
            { role: "tool", content: responses as never },
          ],
          stopWhen: stepCountIs(3),
          maxRetries: 0,
        } as never);
        expect(ran).toEqual([{ to: "acct-7", amount: 1_200 }]);
        expect(notices).toHaveLength(1);
      },
    );
  });
});
