/**
 * Attacks on framework-mode approvals that survive a restart: requests keyed by the AI SDK's
 * tool call id in gates, found again by a process that did not make them. Each process here is
 * a fresh governed tool set on gates modules of its own (nothing shared in memory); the calls
 * are made as the AI SDK makes them (`needsApproval`, then `execute`).
 */
import {
  type ApprovalGate,
  ChainKey,
  type GovernancePorts,
  Keyring,
  type StewardGuard,
  sql,
  systemClock,
} from "@gov/core";
import {
  createTestStore,
  recordingAuditSink,
  recordingLogger,
  rejectionOf,
  type TestEngine,
  type TestStore,
  testEngines,
} from "@gov/core/testing";
import { ApprovalStoreError, GatesModule, gatesMigrations } from "@gov/gates";
import { PresenceModule, presenceMigrations } from "@gov/presence";
import { ScopeModule, scopeMigrations } from "@gov/scope";
import * as ai6 from "ai";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { PAYMENT, PAYMENT_AGENT, paymentAgent } from "../__fixtures__/payment-agent";
import { ToolCallBlockedError } from "../errors";
import type { ApprovalRequestNotice } from "./approval-options";
import { toolApprovalResponses } from "./approval-responses";

const SECRET = "wrappers-approvals-attack-secret-0123456789-abcdefghijk";
const REVIEWER = { reviewerId: "bob@company.com" };

interface Harness {
  store: TestStore;
  audit: ReturnType<typeof recordingAuditSink>;
  /** A gates module in a process of its own (started; closed with the harness). */
  process(): Promise<GatesModule>;
  /** The agent in a process of its own, on `gates` (a fresh gates module unless given). */
  agent(
    gates?: ApprovalGate,
    ports?: Partial<GovernancePorts>,
  ): Promise<ReturnType<typeof paymentAgent>>;
  close(): Promise<void>;
}

async function harness(engine: TestEngine): Promise<Harness> {
  const store = await createTestStore(engine, {
    migrations: [presenceMigrations, scopeMigrations, gatesMigrations],
  });
  const audit = recordingAuditSink();
  const logger = recordingLogger();
  const context = {
    store,
    keyring: new Keyring(new ChainKey(SECRET)),
    clock: systemClock,
    logger,
    audit,
  };
  const presence = new PresenceModule(context);
  await presence.start();
  const scope = new ScopeModule({ ...context, halt: presence });
  await scope.start();
  scope.register({ agentId: PAYMENT_AGENT, allowedTools: ["wire_money"] });
  const opened: GatesModule[] = [];
  const process = async () => {
    const gates = new GatesModule({ ...context, halt: presence, operators: presence });
    opened.push(gates);
    await gates.start();
    return gates;
  };
  return {
    store,
    audit,
    process,
    agent: async (gates, ports = {}) =>
      paymentAgent(ai6, {
        halt: presence,
        scope,
        audit,
        logger,
        gates: gates ?? (await process()),
        ...ports,
      }),
    close: async () => {
      for (const gates of opened) await gates.close();
      await scope.close();
      await presence.close();
      await store.close();
    },
  };
}

type Tools = ReturnType<typeof paymentAgent>["tools"];
type Governed = {
  needsApproval: (input: unknown, options: object) => Promise<boolean>;
  execute: (input: unknown, options: object) => Promise<unknown>;
};
const governed = (tools: Tools) => tools.wire_money as unknown as Governed;
/** The AI SDK asking whether a call needs approval. */
const needsApproval = (tools: Tools, input: unknown, toolCallId: string) =>
  governed(tools).needsApproval(input, { toolCallId, messages: [] });
/** The AI SDK executing an approved call (a resumed run: straight to `execute` after the re-check). */
const execute = (tools: Tools, input: unknown, toolCallId: string) =>
  Promise.resolve().then(() => governed(tools).execute(input, { toolCallId, messages: [] }));

/** The saved messages of a run that stopped at an approval request for `toolCallId`. */
function savedMessages(toolCallId: string, input: unknown = PAYMENT): unknown[] {
  return [
    {
      role: "assistant",
      content: [
        { type: "tool-call", toolCallId, toolName: "wire_money", input },
        { type: "tool-approval-request", approvalId: `approval-${toolCallId}`, toolCallId },
      ],
    },
  ];
}

describe.each(testEngines())("attacks on resumed approvals on $name", (engine) => {
  let h: Harness;
  beforeEach(async () => {
    if (engine.available) h = await harness(engine);
  });
  afterEach(async () => {
    if (engine.available) await h.close();
  });

  // Guards against: a row inserted under the call's key by someone who can write the requests
  // table but holds no key (it never verifies) being adopted as the call's request — the
  // reviewer never asked, the call never grantable: blocked until that row's made-up expiry.
  it.skipIf(!engine.available)(
    "a request squatted in the table under the call's id is not adopted: the reviewer is asked, and the call runs once granted",
    async () => {
      const id = "call_squatted";
      await h.store.query(sql`
        insert into gov_gates.requests
          (request_id, kind, agent_id, action_hash, payload, token_version, key_id, token_digest,
            status, created_at, expires_at, request_key)
        values (gen_random_uuid(), 'tool.wire_money', ${PAYMENT_AGENT}, ${"0".repeat(64)}, 'null'::jsonb, 2,
          ${"0".repeat(16)}, ${"0".repeat(64)}, 'pending', now(), now() + interval '30 days', ${id})`);
      const a = await h.agent();
      expect(await needsApproval(a.tools, PAYMENT, id)).toBe(true);
      expect(a.notices).toHaveLength(1);
      const { request } = a.notices[0] as ApprovalRequestNotice;
      await (await h.process()).grant(request.token, REVIEWER);
      expect(await toolApprovalResponses(a.tools, savedMessages(id))).toMatchObject([
        { approved: true },
      ]);
      expect(await needsApproval(a.tools, PAYMENT, id)).toBe(true);
      expect(await execute(a.tools, PAYMENT, id)).toBe("paid");
      expect(a.ran).toEqual([PAYMENT]);
    },
  );

  // Guards against: a provider whose tool call ids gates refuses as keys (over 256 characters,
  // or with a character gates refuses) having every call that needs approval refused
  // (`approval_unavailable`) — and against such a call not surviving a restart.
  it.skipIf(!engine.available).each([
    ["of 257 characters", `call_${"x".repeat(252)}`],
    ["with a zero-width space", "call_\u200b1"],
    ["with a line feed", "call\n1"],
    ["that starts with the prefix of hashed keys", "sha256:call_1"],
  ])("a tool call id %s is asked, and resumed in another process", async (_name, id) => {
    const a = await h.agent();
    expect(await needsApproval(a.tools, PAYMENT, id)).toBe(true);
    expect(a.notices).toHaveLength(1);
    const { request } = a.notices[0] as ApprovalRequestNotice;
    await (await h.process()).grant(request.token, REVIEWER);
    const b = await h.agent();
    expect(await toolApprovalResponses(b.tools, savedMessages(id))).toMatchObject([
      { approved: true },
    ]);
    expect(await needsApproval(b.tools, PAYMENT, id)).toBe(true);
    expect(b.notices).toEqual([]);
    expect(await execute(b.tools, PAYMENT, id)).toBe("paid");
    expect(b.ran).toEqual([PAYMENT]);
    const c = await h.agent();
    expect(
      ((await rejectionOf(() => execute(c.tools, PAYMENT, id))) as { reason?: string }).reason,
    ).toBe("already_executed");
  });

  // Guards against: two processes resuming the same granted call at once both running it.
  it.skipIf(!engine.available)(
    "two processes resuming the same granted call at once: exactly one runs it",
    async () => {
      const a = await h.agent();
      expect(await needsApproval(a.tools, PAYMENT, "call_twice")).toBe(true);
      await (await h.process()).grant(
        (a.notices[0] as ApprovalRequestNotice).request.token,
        REVIEWER,
      );
      const [b, c] = [await h.agent(), await h.agent()];
      const outcomes = await Promise.allSettled([
        needsApproval(b.tools, PAYMENT, "call_twice").then(() =>
          execute(b.tools, PAYMENT, "call_twice"),
        ),
        needsApproval(c.tools, PAYMENT, "call_twice").then(() =>
          execute(c.tools, PAYMENT, "call_twice"),
        ),
      ]);
      expect(outcomes.filter((outcome) => outcome.status === "fulfilled")).toHaveLength(1);
      expect([...b.ran, ...c.ran]).toEqual([PAYMENT]);
      expect([...b.notices, ...c.notices]).toEqual([]);
    },
  );

  // Guards against: ids that only look the same (another case, another Unicode normalization)
  // finding each other's requests.
  it.skipIf(!engine.available)(
    "ids that differ only in case or Unicode normalization are different calls",
    async () => {
      const nfc = "call_caf\u00e9";
      const a = await h.agent();
      expect(await needsApproval(a.tools, PAYMENT, nfc)).toBe(true);
      await (await h.process()).grant(
        (a.notices[0] as ApprovalRequestNotice).request.token,
        REVIEWER,
      );
      const b = await h.agent();
      for (const other of ["call_cafe\u0301", "CALL_CAF\u00c9"]) {
        const error = await rejectionOf(() => execute(b.tools, PAYMENT, other));
        expect((error as ToolCallBlockedError).reason).toBe("approval_missing");
      }
      expect(await execute(b.tools, PAYMENT, nfc)).toBe("paid");
      expect(b.ran).toEqual([PAYMENT]);
    },
  );

  // Guards against: a call id from another agent's run finding that agent's grant.
  it.skipIf(!engine.available)(
    "another agent's grant under the same call id runs nothing",
    async () => {
      const gates = await h.process();
      const theirs = await gates.request("tool.wire_money", "other-agent", {
        payload: { tool: "wire_money", input: PAYMENT },
        key: "call_shared",
      });
      await gates.grant(theirs.token, REVIEWER);
      const b = await h.agent();
      expect(await toolApprovalResponses(b.tools, savedMessages("call_shared"))).toEqual([]);
      const error = await rejectionOf(() => execute(b.tools, PAYMENT, "call_shared"));
      expect((error as ToolCallBlockedError).reason).toBe("approval_missing");
      expect(b.ran).toEqual([]);
    },
  );

  // Guards against: an approval moved, in the saved messages, onto another call of the tool.
  it.skipIf(!engine.available)(
    "an approval moved to another call (another id, another input) runs nothing, and the granted call still can",
    async () => {
      const a = await h.agent();
      expect(await needsApproval(a.tools, PAYMENT, "call_granted")).toBe(true);
      expect(await needsApproval(a.tools, { to: "acct-9", amount: 9_999 }, "call_pending")).toBe(
        true,
      );
      await (await h.process()).grant(
        (a.notices[0] as ApprovalRequestNotice).request.token,
        REVIEWER,
      );
      const b = await h.agent();
      const moved = { to: "acct-9", amount: 9_999 };
      expect(
        ((await rejectionOf(() => execute(b.tools, moved, "call_pending"))) as Error).name,
      ).toBe("ApprovalPending");
      expect(
        ((await rejectionOf(() => execute(b.tools, moved, "call_granted"))) as { reason?: string })
          .reason,
      ).toBe("action_hash_mismatch");
      expect(await execute(b.tools, PAYMENT, "call_granted")).toBe("paid");
      expect(b.ran).toEqual([PAYMENT]);
    },
  );

  // Guards against: a store that fails while a resumed call's request is looked up letting the
  // call through, or refusing it without a tool.blocked event (every refusal is evidence).
  it.skipIf(!engine.available)(
    "the gates store failing during the look-up refuses the call (approval_unavailable), audited",
    async () => {
      const gates = await h.process();
      const failing: ApprovalGate = {
        request: (kind, agentId, options) => gates.request(kind, agentId, options),
        waitFor: (requestId, options) => gates.waitFor(requestId, options),
        verifyAction: (requestId, payload, options) =>
          gates.verifyAction(requestId, payload, options),
        getRequest: (requestId) => gates.getRequest(requestId),
        findRequest: async () => {
          throw new ApprovalStoreError("read", null, new Error("connection reset"));
        },
      };
      const b = await h.agent(failing);
      const error = await rejectionOf(() => execute(b.tools, PAYMENT, "call_store_down"));
      expect(ToolCallBlockedError.isInstance(error)).toBe(true);
      expect((error as ToolCallBlockedError).reason).toBe("approval_unavailable");
      expect((error as ToolCallBlockedError).message).toContain("could not be looked up");
      expect(b.ran).toEqual([]);
      await expect
        .poll(() =>
          h.audit.events.some(
            (event) =>
              event.kind === "tool.blocked" && event.metadata?.reason === "approval_unavailable",
          ),
        )
        .toBe(true);
      // And when the AI SDK asks first: refused the same way (it is told no approval will
      // come, so it executes the call, which throws the refusal), no request made.
      expect(await needsApproval(b.tools, PAYMENT, "call_store_down")).toBe(false);
      const refused = await rejectionOf(() => execute(b.tools, PAYMENT, "call_store_down"));
      expect((refused as ToolCallBlockedError).reason).toBe("approval_unavailable");
      expect(b.notices).toEqual([]);
    },
  );

  // Guards against: the steward's BLOCK on resume being overridden by the grant, or consuming it.
  it.skipIf(!engine.available)(
    "the steward's BLOCK in the process that resumes refuses a granted call, which is not consumed",
    async () => {
      const a = await h.agent();
      expect(await needsApproval(a.tools, PAYMENT, "call_blocked_later")).toBe(true);
      const { request } = a.notices[0] as ApprovalRequestNotice;
      await (await h.process()).grant(request.token, REVIEWER);
      const blocking: StewardGuard = {
        evaluate: async () => ({
          intervention: "BLOCK",
          message: "Frozen account.",
          traceId: "trace-1",
          governanceStatus: { firedTripwires: ["frozen"], flagged: false, blueprintId: "b" },
          metadata: {},
        }),
        commit: async () => false,
      };
      const gates = await h.process();
      const b = paymentAgent(ai6, { audit: h.audit, gates, steward: blocking }, { steward: true });
      const error = await rejectionOf(() => execute(b.tools, PAYMENT, "call_blocked_later"));
      expect((error as ToolCallBlockedError).reason).toBe("steward_block");
      expect(b.ran).toEqual([]);
      expect((await gates.getRequest(request.requestId))?.executedAt).toBeNull();
    },
  );
});
