/**
 * A wrapped call returns before its usage is written: the settlement runs after, `settled()`
 * waits for it, and the next call waits for it only when its budget check would be refused
 * without it.
 */
import type { BudgetGuard } from "@gov/core";
import { testEngines } from "@gov/core/testing";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  AGENT,
  CLIENTS,
  type OpenAIAgent,
  openAIAgent,
  SESSION,
} from "./__fixtures__/openai-agent";
import { CHAT_USAGE, chatCompletion } from "./__fixtures__/openai-server";
import { settled } from "./governed-call";
import { wrapOpenAI } from "./openai/wrap";

const ask = {
  model: "gpt-4o",
  max_tokens: 500,
  messages: [{ role: "user" as const, content: "hi" }],
};

/** A gate that holds every `trackUsage` of the cost port until it is opened. */
function heldUsage(cost: BudgetGuard): { port: BudgetGuard; open(): void; waiting(): number } {
  let open: () => void = () => undefined;
  const gate = new Promise<void>((resolve) => {
    open = resolve;
  });
  let waiting = 0;
  const port: BudgetGuard = {
    checkOrRaise: (...args) => cost.checkOrRaise(...args),
    reconcile: (...args) => cost.reconcile(...args),
    release: (...args) => cost.release(...args),
    trackUsage: async (...args) => {
      waiting++;
      await gate;
      return cost.trackUsage(...args);
    },
  };
  return { port, open: () => open(), waiting: () => waiting };
}

/** Let every pending callback and I/O turn run. */
const turns = async (count = 20) => {
  for (let index = 0; index < count; index++) await new Promise((resolve) => setImmediate(resolve));
};

describe.each(testEngines())("settlement after the call on $name", (engine) => {
  let h: OpenAIAgent;
  let held: ReturnType<typeof heldUsage>;
  beforeEach(async () => {
    if (!engine.available) return;
    h = await openAIAgent(engine, CLIENTS[0]);
    held = heldUsage(h.governance.cost);
  });
  afterEach(async () => {
    if (!engine.available) return;
    held.open(); // a failed assertion must not leave a settlement waiting for ever
    await h.close();
  });

  // Guards against: the call waits for the usage to be written (a database round trip the
  // host does not need), or the usage is never written, or settled() does not wait for it.
  it.skipIf(!engine.available)(
    "returns the response before the usage is written; settled() waits for it",
    async () => {
      h.server.reply = () => ({ json: chatCompletion() });
      const openai = wrapOpenAI(CLIENTS[0].create(h.server.baseURL), {
        governance: { ...h.governance, cost: held.port },
        agentId: AGENT,
        sessionId: SESSION,
      });
      const completion = await openai.chat.completions.create(ask);
      expect(completion.usage).toEqual(CHAT_USAGE);
      expect(held.waiting()).toBe(1);
      const during = await h.cost.snapshot(AGENT, SESSION);
      expect(during.sessionTokensReserved).toBeGreaterThan(0); // the worst case, still held
      expect(during.sessionTokensUsed).toBe(0);
      let done = false;
      const waiting = settled().then(() => {
        done = true;
      });
      await turns();
      expect(done).toBe(false);
      held.open();
      await waiting;
      const after = await h.cost.snapshot(AGENT, SESSION);
      expect(after.sessionTokensReserved).toBe(0);
      expect(after.sessionTokensUsed).toBe(CHAT_USAGE.total_tokens);
      expect(h.kinds()).toContain("llm.result");
    },
  );

  // Guards against: the next call waiting for the last call's usage record (a database round
  // trip on the hot path) when its budget check passes with the worst case still reserved.
  it.skipIf(!engine.available)(
    "does not hold the next call for the last call's usage when its budget check passes",
    async () => {
      h.server.reply = () => ({ json: chatCompletion() });
      const openai = wrapOpenAI(CLIENTS[0].create(h.server.baseURL), {
        governance: { ...h.governance, cost: held.port },
        agentId: AGENT,
        sessionId: SESSION,
      });
      await openai.chat.completions.create(ask);
      await openai.chat.completions.create(ask);
      expect(h.server.received).toHaveLength(2);
      expect(held.waiting()).toBe(2); // both usage records still waiting
      held.open();
      await settled();
      const after = await h.cost.snapshot(AGENT, SESSION);
      expect(after.sessionTokensUsed).toBe(2 * CHAT_USAGE.total_tokens);
      expect(after.sessionTokensReserved).toBe(0);
    },
  );

  // Guards against: a sequential agent refused because its last call's worst case is still
  // reserved while the real (smaller) usage is on its way: the check must see its spend
  // exactly, and audit no breach.
  it.skipIf(!engine.available)(
    "a call that only the last call's worst case would refuse waits for its usage and is sent",
    async () => {
      h.server.reply = () => ({ json: chatCompletion() });
      const openai = h.wrapped();
      const big = { ...ask, max_tokens: 10_000 };
      await openai.chat.completions.create(big);
      await settled();
      const release = h.holdUsageRecords();
      await openai.chat.completions.create(big); // its usage is held on the way
      const worst = (await h.cost.snapshot(AGENT, SESSION)).sessionTokensReserved;
      const used = CHAT_USAGE.total_tokens;
      expect(worst).toBeGreaterThan(used);
      // Room for the spend so far and one worst case, not for two worst cases.
      h.cost.register({ agentId: AGENT, perSessionTokens: used + 2 * worst - 1 });
      let sent = false;
      const next = openai.chat.completions.create(big).then(() => {
        sent = true;
      });
      await turns();
      expect(sent).toBe(false);
      expect(h.server.received).toHaveLength(2);
      release();
      await next;
      expect(h.server.received).toHaveLength(3);
      expect(h.kinds()).not.toContain("budget.exceeded");
      await settled();
      const after = await h.cost.snapshot(AGENT, SESSION);
      expect(after.sessionTokensUsed).toBe(3 * used);
      expect(after.sessionTokensReserved).toBe(0);
    },
  );
});
