/**
 * Framework-mode approvals that survive the process that asked: the agent asks, its process
 * goes away, a reviewer decides from anywhere, and a new process — a fresh tool set, with an
 * empty memory of its own, on gates and steward modules of its own — resumes the run from the
 * saved messages. The request is found in gates by the tool call id (its key); gates still
 * verifies the grant for exactly the input that runs, once. (approvals-multiprocess.test.ts
 * does the same with the first process a real child process.)
 */
import type { ApprovalGate, GovernancePorts } from "@gov/core";
import { eventually, rejectionOf, testEngines } from "@gov/core/testing";
import type { GatesModule } from "@gov/gates";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  AI_SDKS,
  type ApprovalHarness,
  approvalHarness,
  approvedOutputs,
} from "../__fixtures__/ai-sdk";
import { versionsOn } from "../__fixtures__/harness";
import {
  callsTool,
  firstRun,
  PAYMENT,
  PAYMENT_AGENT,
  PAYMENT_CALL_ID,
  paymentAgent,
  resumedRun,
} from "../__fixtures__/payment-agent";
import { ToolCallBlockedError } from "../errors";
import type { ApprovalRequestNotice } from "./approval-options";
import { toolApprovalResponses } from "./approval-responses";

/** A governed tool's `execute`, called as the AI SDK calls it. */
function execute(
  tools: Record<string, unknown>,
  input: unknown,
  options: object,
): Promise<unknown> {
  const governed = tools.wire_money as { execute: (input: unknown, options: object) => unknown };
  return Promise.resolve(governed.execute(input, options));
}

/** A gates port without `findRequest` (a gate that knows no keys), over a gates module. */
function keylessGate(gates: GatesModule): ApprovalGate {
  return {
    request: (kind, agentId, options) => gates.request(kind, agentId, options),
    waitFor: (requestId, options) => gates.waitFor(requestId, options),
    verifyAction: (requestId, payload, options) => gates.verifyAction(requestId, payload, options),
    getRequest: (requestId) => gates.getRequest(requestId),
  };
}

describe.each(testEngines())("approvals resumed by another process on $name", (engine) => {
  describe.each(
    versionsOn(
      engine,
      AI_SDKS.filter((sdk) => sdk.major >= 6),
    ),
  )("with $version", (sdk) => {
    let h: ApprovalHarness;
    beforeEach(async () => {
      if (!engine.available) return;
      h = await approvalHarness(engine);
      h.scope.register({ agentId: PAYMENT_AGENT, allowedTools: ["wire_money", "pay"] });
    });
    afterEach(async () => {
      if (engine.available) await h.close();
    });

    const model = () => sdk.chat(h.server.baseURL);
    /** The agent in a process whose gates (and steward) are these. */
    const agent = (
      ports: Pick<GovernancePorts, "gates" | "steward">,
      options: { steward?: boolean; toolName?: string } = {},
    ) =>
      paymentAgent(
        sdk.ai,
        { halt: h.presence, scope: h.scope, audit: h.audit, logger: h.logger, ...ports },
        options,
      );
    /** Process A asks (one request, delivered), and goes away: what is left is the saved messages. */
    async function askedByA() {
      callsTool(h.server, PAYMENT);
      const a = agent({ gates: h.gates });
      const first = await firstRun(sdk.ai, model(), a.tools);
      expect(a.ran).toEqual([]);
      expect(a.notices).toHaveLength(1);
      const notice = a.notices[0] as ApprovalRequestNotice;
      return { saved: JSON.stringify(first.response.messages), request: notice.request };
    }
    /** Process B (or C): the agent again, on gates modules that share nothing in memory with A's. */
    const restarted = async () => agent({ gates: (await h.restarted()).gates });
    /** A asked and went away, a reviewer granted; B reads the decision from the saved messages. */
    async function grantedThenB() {
      const { saved, request } = await askedByA();
      await h.reviewer.grant(request.token, { reviewerId: "bob@company.com" });
      const b = await restarted();
      const responses = await toolApprovalResponses(b.tools, JSON.parse(saved));
      return { saved, request, b, responses };
    }
    const refusals = () =>
      h.audit.events
        .filter((entry) => entry.kind === "approval.refused")
        .map((entry) => String(entry.metadata?.reason));

    it.skipIf(!engine.available)(
      "a grant made after A is gone runs the call in B, once, with the approved input; a replay in C is refused",
      async () => {
        const { saved, request, b, responses } = await grantedThenB();
        // From the saved messages alone, B found the request by the call's id.
        expect(responses).toMatchObject([{ type: "tool-approval-response", approved: true }]);
        const second = await resumedRun(sdk.ai, model(), b.tools, saved, responses);
        expect(second.text).toBe("Done.");
        expect(b.ran).toEqual([PAYMENT]);
        // B asked nobody: the AI SDK's re-check found the request A made.
        expect(b.notices).toEqual([]);
        expect(approvedOutputs(second)).toMatchObject([{ type: "text", value: "paid" }]);
        expect((await h.reviewer.getRequest(request.requestId))?.executedAt).toBeInstanceOf(Date);
        await eventually(() => h.audit.events.some((entry) => entry.kind === "tool.call"));
        expect(h.audit.events.find((entry) => entry.kind === "tool.call")?.metadata).toMatchObject({
          approval: { requestId: request.requestId, reviewerId: "bob@company.com" },
        });

        // Resumed once more, in yet another process: the approval already ran.
        const c = await restarted();
        const replay = await resumedRun(sdk.ai, model(), c.tools, saved, responses);
        expect(approvedOutputs(replay)).toMatchObject([
          { type: "error-text", value: expect.stringContaining("already ran") },
        ]);
        expect([...b.ran, ...c.ran]).toEqual([PAYMENT]);
        expect(c.notices).toEqual([]);
        await eventually(() => refusals().includes("already_executed"));
      },
    );

    it.skipIf(!engine.available)(
      "the saved messages edited before B resumes: the grant is refused for the other input, and kept for the approved one",
      async () => {
        const { saved, request, b, responses } = await grantedThenB();
        const tampered = (text: string) => text.replace('"amount":120', '"amount":9999');
        const second = await resumedRun(sdk.ai, model(), b.tools, saved, responses, tampered);
        expect(approvedOutputs(second)).toMatchObject([{ type: "error-text" }]);
        expect(b.ran).toEqual([]);
        expect(b.notices).toEqual([]);
        await eventually(() => refusals().includes("action_hash_mismatch"));
        expect((await h.reviewer.getRequest(request.requestId))?.executedAt).toBeNull();
      },
    );

    it.skipIf(!engine.available)(
      "B reads an undecided request as no response yet, and a denial as the reviewer's reason; nothing runs",
      async () => {
        const { saved, request } = await askedByA();
        const b = await restarted();
        expect(await toolApprovalResponses(b.tools, JSON.parse(saved))).toEqual([]);
        await h.reviewer.deny(request.token, {
          reviewerId: "bob@company.com",
          reason: "Over the weekly limit.",
        });
        const responses = await toolApprovalResponses(b.tools, JSON.parse(saved));
        expect(responses).toMatchObject([{ approved: false, reason: "Over the weekly limit." }]);
        await resumedRun(sdk.ai, model(), b.tools, saved, responses);
        expect(b.ran).toEqual([]);
        expect(b.notices).toEqual([]);
      },
    );

    it.skipIf(!engine.available)(
      "the steward's ESCALATE: B asks the steward again, runs the granted call, and commits it to B's steward",
      async () => {
        callsTool(h.server, { to: "acct-7", amount: 1_200 }, "call_escalated", "pay");
        const a = agent({ gates: h.gates, steward: h.steward }, { steward: true, toolName: "pay" });
        const first = await firstRun(sdk.ai, model(), a.tools);
        const notice = a.notices[0] as ApprovalRequestNotice;
        expect(notice.cause).toBe("steward");
        await h.reviewer.grant(notice.request.token, { reviewerId: "bob@company.com" });

        // B: its own steward, which never saw A's verdict.
        const modules = await h.restarted();
        const b = agent(modules, { steward: true, toolName: "pay" });
        const saved = JSON.stringify(first.response.messages);
        const responses = await toolApprovalResponses(b.tools, JSON.parse(saved));
        await resumedRun(sdk.ai, model(), b.tools, saved, responses);
        expect(b.ran).toEqual([{ to: "acct-7", amount: 1_200 }]);
        expect(b.notices).toEqual([]);
        // Committed in B: 1,200 counted today, so another 50 escalates (without it, 50 is OK).
        const again = await modules.steward.evaluate(
          { action: "pay", parameters: { to: "acct-7", amount: 50 } },
          {},
          { agentId: PAYMENT_AGENT },
        );
        expect(again.intervention).toBe("ESCALATE");
      },
    );

    it.skipIf(!engine.available)(
      "a provider that reuses a call id: another input under an id whose request already ran is asked anew",
      async () => {
        const { saved, request, b, responses } = await grantedThenB();
        await resumedRun(sdk.ai, model(), b.tools, saved, responses);
        expect(b.ran).toEqual([PAYMENT]);

        // A later run, the same call id, another payment.
        const other = { to: "acct-9", amount: 5 };
        callsTool(h.server, other);
        const next = await firstRun(sdk.ai, model(), b.tools);
        expect(b.notices).toHaveLength(1);
        const asked = (b.notices[0] as ApprovalRequestNotice).request;
        expect(asked.requestId).not.toBe(request.requestId);
        await h.reviewer.grant(asked.token, { reviewerId: "bob@company.com" });
        const granted = await toolApprovalResponses(b.tools, next.content);
        const messages = JSON.stringify(next.response.messages);
        await resumedRun(sdk.ai, model(), b.tools, messages, granted);
        expect(b.ran).toEqual([PAYMENT, other]);
      },
    );

    it.skipIf(!engine.available)(
      "a provider that reuses a call id: another input under an id whose request was denied is asked anew",
      async () => {
        const { request } = await askedByA();
        await h.reviewer.deny(request.token, { reviewerId: "bob@company.com", reason: "No." });
        callsTool(h.server, { to: "acct-9", amount: 5 });
        const b = await restarted();
        await firstRun(sdk.ai, model(), b.tools);
        expect(b.notices.map((notice) => notice.request.requestId)).toEqual([
          expect.not.stringMatching(request.requestId),
        ]);
      },
    );

    it.skipIf(!engine.available)(
      "execute called in B without the AI SDK's re-check (an AI SDK that does not ask) runs the granted call, once",
      async () => {
        const { b } = await grantedThenB();
        const call = { toolCallId: PAYMENT_CALL_ID, messages: [] };
        expect(await execute(b.tools, PAYMENT, call)).toBe("paid");
        const again = await rejectionOf(() => execute(b.tools, PAYMENT, call));
        expect((again as { reason?: string }).reason).toBe("already_executed");
        expect(b.ran).toEqual([PAYMENT]);
        expect(b.notices).toEqual([]);
      },
    );

    it.skipIf(!engine.available)(
      "a gates port without findRequest is given no key, and B cannot find A's request: refused",
      async () => {
        callsTool(h.server, PAYMENT);
        const a = agent({ gates: keylessGate(h.gates) });
        const first = await firstRun(sdk.ai, model(), a.tools);
        const request = (a.notices[0] as ApprovalRequestNotice).request;
        expect((await h.reviewer.getRequest(request.requestId))?.key).toBeNull();
        await h.reviewer.grant(request.token, { reviewerId: "bob@company.com" });
        const b = agent({ gates: keylessGate((await h.restarted()).gates) });
        const saved = JSON.stringify(first.response.messages);
        expect(await toolApprovalResponses(b.tools, JSON.parse(saved))).toEqual([]);
        const error = await rejectionOf(() =>
          execute(b.tools, PAYMENT, { toolCallId: PAYMENT_CALL_ID, messages: [] }),
        );
        expect(ToolCallBlockedError.isInstance(error)).toBe(true);
        expect((error as ToolCallBlockedError).reason).toBe("approval_missing");
        expect((error as ToolCallBlockedError).message).toContain(
          "no approval request was made for this call",
        );
        expect(b.ran).toEqual([]);
        expect((await h.reviewer.getRequest(request.requestId))?.executedAt).toBeNull();
      },
    );
  });
});
