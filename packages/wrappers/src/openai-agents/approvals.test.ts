/**
 * Tool approvals of a governed Agents SDK agent: `needsApproval` opens a gates request keyed by
 * the call id, the run is interrupted and its `RunState` saved; a reviewer decides; another
 * "process" — the agent governed anew on gates modules that share nothing in memory with the
 * first — restores the state, reads the decision from gates, and resumes. The tool runs once,
 * with exactly the approved arguments.
 */
import type { GovernancePorts } from "@gov/core";
import { eventually, testEngines } from "@gov/core/testing";
import { Agent, OpenAIResponsesModel, RunState, run, tool } from "@openai/agents";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type ApprovalHarness, approvalHarness } from "../__fixtures__/ai-sdk";
import {
  AGENT,
  agentResponse,
  billingAgent,
  callOutputs,
  client,
  PAY,
  script,
} from "../__fixtures__/openai-agents";
import type { ApprovalRequestNotice } from "../ai-sdk/approval-options";
import { resolveApprovals } from "./approvals";
import { governAgent } from "./govern-agent";

describe.each(testEngines())("approvals of a governed agent on $name", (engine) => {
  let h: ApprovalHarness;
  beforeEach(async () => {
    if (!engine.available) return;
    h = await approvalHarness(engine);
    h.scope.register({ agentId: AGENT, allowedTools: ["lookup_invoice", "wire_money"] });
  });
  afterEach(async () => {
    if (engine.available) await h.close();
  });

  /** The billing agent governed in a process whose gates (and steward) are these. */
  function agentOn(ports: Pick<GovernancePorts, "gates" | "steward">) {
    const billing = billingAgent();
    const notices: ApprovalRequestNotice[] = [];
    const agent = governAgent(
      billing.agent.clone({ model: new OpenAIResponsesModel(client(h.server), "gpt-4o") }),
      {
        governance: {
          halt: h.presence,
          scope: h.scope,
          audit: h.audit,
          logger: h.logger,
          ...ports,
        },
        agentId: AGENT,
        approval: { tools: ["wire_money"], onRequest: (notice) => void notices.push(notice) },
      },
    );
    return { ...billing, agent, notices };
  }

  /** Process A runs until the payment needs approval, saves the run and goes away. */
  async function askedByA() {
    script(h.server, agentResponse({ calls: [PAY] }));
    const a = agentOn({ gates: h.gates });
    const result = await run(a.agent, "Pay 120 to acct-7.");
    expect(result.interruptions.map((item) => item.name)).toEqual(["wire_money"]);
    expect(a.ran).toEqual([]);
    expect(a.notices).toHaveLength(1);
    const notice = a.notices[0] as ApprovalRequestNotice;
    expect(notice.toolCallId).toBe("call_pay");
    return { saved: result.state.toString(), request: notice.request };
  }

  /** Process B: the agent governed anew on fresh gates, the run restored from the saved state. */
  async function restoredInB(saved: string) {
    const b = agentOn({ gates: (await h.restarted()).gates });
    const state = await RunState.fromString(b.agent, saved);
    return { b, state };
  }

  it.skipIf(!engine.available)(
    "a grant made after A is gone resumes the run in B: the tool runs once, with the approved input; a replay in C is refused",
    async () => {
      const { saved, request } = await askedByA();
      const { b, state } = await restoredInB(saved);
      expect(await resolveApprovals(state)).toMatchObject([{ status: "pending" }]);

      await h.reviewer.grant(request.token, { reviewerId: "bob@company.com" });
      expect(await resolveApprovals(state)).toEqual([
        { toolName: "wire_money", callId: "call_pay", status: "approved" },
      ]);
      script(h.server);
      const resumed = await run(b.agent, state);
      expect(resumed.finalOutput).toBe("Done.");
      expect(b.ran).toEqual([{ tool: "wire_money", input: PAY.input }]);
      expect(b.notices).toEqual([]);
      expect((await h.reviewer.getRequest(request.requestId))?.executedAt).toBeInstanceOf(Date);
      await eventually(() => h.audit.events.some((event) => event.kind === "tool.call"));
      expect(h.audit.events.find((event) => event.kind === "tool.call")?.metadata).toMatchObject({
        tool: "wire_money",
        approval: { requestId: request.requestId, reviewerId: "bob@company.com" },
      });

      // The same saved run resumed once more, in yet another process: the grant was used.
      const c = await restoredInB(saved);
      expect(await resolveApprovals(c.state)).toMatchObject([{ status: "approved" }]);
      script(h.server);
      await run(c.b.agent, c.state);
      expect([...b.ran, ...c.b.ran]).toHaveLength(1);
      await eventually(() =>
        h.audit.events.some(
          (event) =>
            event.kind === "approval.refused" && event.metadata?.reason === "already_executed",
        ),
      );
    },
  );

  it.skipIf(!engine.available)(
    "a saved run whose arguments were edited is refused: the grant is for the approved input only",
    async () => {
      const { saved, request } = await askedByA();
      await h.reviewer.grant(request.token, { reviewerId: "bob@company.com" });
      const tampered = saved.replaceAll('\\"amount\\":120', '\\"amount\\":9999');
      expect(tampered).not.toBe(saved);
      const { b, state } = await restoredInB(tampered);
      expect(await resolveApprovals(state)).toMatchObject([{ status: "approved" }]);
      script(h.server);
      await run(b.agent, state);
      expect(b.ran).toEqual([]);
      await eventually(() =>
        h.audit.events.some(
          (event) =>
            event.kind === "approval.refused" && event.metadata?.reason === "action_hash_mismatch",
        ),
      );
      expect((await h.reviewer.getRequest(request.requestId))?.executedAt).toBeNull();
    },
  );

  it.skipIf(!engine.available)(
    "a denial rejects the call: the tool does not run and the model reads the reviewer's reason",
    async () => {
      const { saved, request } = await askedByA();
      await h.reviewer.deny(request.token, {
        reviewerId: "bob@company.com",
        reason: "Not this month.",
      });
      const { b, state } = await restoredInB(saved);
      expect(await resolveApprovals(state)).toEqual([
        {
          toolName: "wire_money",
          callId: "call_pay",
          status: "rejected",
          reason: "Not this month.",
        },
      ]);
      script(h.server);
      await run(b.agent, state);
      expect(b.ran).toEqual([]);
      const [output] = callOutputs(h.server.received.at(-1)?.body ?? {});
      expect(output?.callId).toBe("call_pay");
      expect(JSON.stringify(output?.output)).toContain("Not this month.");
    },
  );

  it.skipIf(!engine.available)(
    "an approval set on the state without gates does not run the tool",
    async () => {
      const { saved } = await askedByA();
      const { b, state } = await restoredInB(saved);
      // The application approves by itself, without a reviewer's grant.
      for (const item of state.getInterruptions()) state.approve(item);
      script(h.server);
      await run(b.agent, state);
      expect(b.ran).toEqual([]);
    },
  );

  /** An agent with the steward's `pay` tool (the approval blueprint: BLOCK, ESCALATE over 1,000 a day). */
  function payingAgent() {
    h.scope.register({ agentId: AGENT, allowedTools: ["pay"] });
    const ran: unknown[] = [];
    const notices: ApprovalRequestNotice[] = [];
    const pay = tool({
      name: "pay",
      description: "Pay an account",
      parameters: {
        type: "object",
        properties: { to: { type: "string" }, amount: { type: "number" } },
        required: ["to", "amount"],
        additionalProperties: false,
      },
      strict: true,
      execute: async (input) => {
        ran.push(input);
        return "paid";
      },
    });
    const agent = governAgent(
      new Agent({
        name: "Payer",
        model: new OpenAIResponsesModel(client(h.server), "gpt-4o"),
        tools: [pay],
      }),
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
        approval: { steward: true, onRequest: (notice) => void notices.push(notice) },
      },
    );
    return { agent, ran, notices };
  }

  it.skipIf(!engine.available)(
    "the steward's BLOCK refuses the call (the model reads why); its ESCALATE asks a reviewer",
    async () => {
      const { agent, ran, notices } = payingAgent();
      const blocked = { name: "pay", input: { to: "blocked-account", amount: 10 }, id: "call_b" };
      script(h.server, agentResponse({ calls: [blocked] }));
      const first = await run(agent, "Pay the blocked account.");
      expect(first.interruptions).toEqual([]);
      expect(ran).toEqual([]);
      const [refusal] = callOutputs(h.server.received.at(-1)?.body ?? {});
      expect(JSON.stringify(refusal?.output)).toContain("blocked");
      await eventually(() =>
        h.audit.events.some(
          (event) => event.kind === "tool.blocked" && event.metadata?.reason === "steward_block",
        ),
      );

      const large = { name: "pay", input: { to: "acct-7", amount: 5000 }, id: "call_l" };
      script(h.server, agentResponse({ calls: [large] }));
      const second = await run(agent, "Pay 5000 to acct-7.");
      expect(second.interruptions.map((item) => item.name)).toEqual(["pay"]);
      expect(notices.map((notice) => notice.cause)).toEqual(["steward"]);
      expect(ran).toEqual([]);
    },
  );
});
