import { sql } from "@gov/core";
import { type TestEngine, testEngines } from "@gov/core/testing";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { flakyStore, type PresenceHarness, presenceHarness, thrown } from "./__fixtures__";
import { CloseHaltedAgentError, PRESENCE_ERROR_CODES } from "./errors";
import { presenceModule } from "./module";

describe.each(testEngines())("heartbeats and agent status on $name", (engine: TestEngine) => {
  let h: PresenceHarness;

  beforeEach(async () => {
    if (engine.available) h = await presenceHarness(engine);
  });

  afterEach(async () => {
    await h?.close();
  });

  const statuses = async () =>
    Object.fromEntries(
      (await h.presence.listAgents()).map((agent) => [agent.agentId, agent.status]),
    );

  it.skipIf(!engine.available)(
    "a heartbeat makes an agent Live, with its operator and metadata",
    async () => {
      expect(
        await h.presence.heartbeat("billing-agent", {
          operatorId: "alice@company.com",
          metadata: { version: "1.2.0", nested: { ok: true } },
        }),
      ).toBe(true);
      const [agent, ...rest] = await h.presence.listAgents();
      expect(rest).toEqual([]);
      expect(agent).toEqual({
        agentId: "billing-agent",
        status: "Live",
        lastSeen: new Date("2026-01-01T00:00:00.000Z"),
        firstSeen: new Date("2026-01-01T00:00:00.000Z"),
        operatorId: "alice@company.com",
        metadata: { version: "1.2.0", nested: { ok: true } },
        halted: false,
        halt: null,
      });
    },
  );

  it.skipIf(!engine.available)(
    "a later heartbeat moves lastSeen and keeps operator and metadata it does not repeat",
    async () => {
      await h.presence.heartbeat("a", { operatorId: "alice", metadata: { version: "1" } });
      h.clock.advance(30_000);
      await h.presence.heartbeat("a");
      const [agent] = await h.presence.listAgents();
      expect(agent).toMatchObject({
        lastSeen: new Date("2026-01-01T00:00:30.000Z"),
        firstSeen: new Date("2026-01-01T00:00:00.000Z"),
        operatorId: "alice",
        metadata: { version: "1" },
      });
      await h.presence.heartbeat("a", { operatorId: "bob", metadata: { version: "2" } });
      expect((await h.presence.listAgents())[0]).toMatchObject({
        operatorId: "bob",
        metadata: { version: "2" },
      });
    },
  );

  it.skipIf(!engine.available)(
    "operatorOf answers the operator bound by the latest heartbeat (the operators port)",
    async () => {
      expect(await h.presence.operatorOf("a")).toBeNull();
      await h.presence.heartbeat("a");
      expect(await h.presence.operatorOf("a")).toBeNull();
      await h.presence.heartbeat("a", { operatorId: "alice" });
      await h.presence.heartbeat("a");
      expect(await h.presence.operatorOf("a")).toBe("alice");
      await h.presence.heartbeat("a", { operatorId: "bob" });
      expect(await h.presence.operatorOf("a")).toBe("bob");
      expect(presenceModule.provides?.(h.presence).operators).toBe(h.presence);
    },
  );

  it.skipIf(!engine.available)(
    "statuses follow the clock: Live within 60 s, Idle until 300 s, then Unresponsive",
    async () => {
      await h.presence.heartbeat("a");
      expect(await statuses()).toEqual({ a: "Live" });
      h.clock.advance(60_000);
      expect(await statuses()).toEqual({ a: "Live" });
      h.clock.advance(1);
      expect(await statuses()).toEqual({ a: "Idle" });
      h.clock.advance(240_000 - 1);
      expect(await statuses()).toEqual({ a: "Idle" });
      h.clock.advance(1);
      expect(await statuses()).toEqual({ a: "Unresponsive" });
      await h.presence.heartbeat("a");
      expect(await statuses()).toEqual({ a: "Live" });
    },
  );

  it.skipIf(!engine.available).each([
    { liveWithinSeconds: 5, unresponsiveAfterSeconds: 10 },
    { liveWithinMs: 5_000, unresponsiveAfterMs: 10_000 },
  ])("the thresholds are configurable: %j", async (thresholds) => {
    const presence = h.another({ presence: thresholds });
    await presence.heartbeat("a");
    h.clock.advance(6_000);
    expect((await presence.listAgents())[0]?.status).toBe("Idle");
    h.clock.advance(5_000);
    expect((await presence.listAgents())[0]?.status).toBe("Unresponsive");
  });

  it.skipIf(!engine.available)(
    "markIdle makes a running agent Idle (a sign of life), until its next heartbeat",
    async () => {
      await h.presence.heartbeat("a");
      h.clock.advance(10_000);
      expect(await h.presence.markIdle("a")).toBe(true);
      expect(await statuses()).toEqual({ a: "Idle" });
      expect((await h.presence.listAgents())[0]?.lastSeen).toEqual(
        new Date("2026-01-01T00:00:10.000Z"),
      );
      await h.presence.markIdle("new-agent");
      expect(await statuses()).toEqual({ a: "Idle", "new-agent": "Idle" });
      await h.presence.heartbeat("a");
      expect(await statuses()).toEqual({ a: "Live", "new-agent": "Idle" });
    },
  );

  it.skipIf(!engine.available)(
    "checkStale marks agents silent for longer than the timeout, once, and returns their ids",
    async () => {
      await h.presence.heartbeat("old-1");
      await h.presence.heartbeat("old-2");
      h.clock.advance(100_000);
      await h.presence.heartbeat("fresh");
      h.clock.advance(30_000);
      // old-*: 130 s; fresh: 30 s.
      expect(await h.presence.checkStale(120)).toEqual(["old-1", "old-2"]);
      expect(await statuses()).toEqual({
        fresh: "Live",
        "old-1": "Unresponsive",
        "old-2": "Unresponsive",
      });
      expect(await h.presence.checkStale(120)).toEqual([]);
      expect(await h.presence.checkStale()).toEqual([]);
      h.clock.advance(300_000);
      expect(await h.presence.checkStale()).toEqual(["fresh"]);
      // A heartbeat brings a stale agent back.
      await h.presence.heartbeat("old-1");
      expect((await statuses())["old-1"]).toBe("Live");
    },
  );

  it.skipIf(!engine.available)("closeAgent removes an agent from the list", async () => {
    await h.presence.heartbeat("a");
    await h.presence.heartbeat("b");
    expect(await h.presence.closeAgent("a")).toBe(true);
    expect(await h.presence.closeAgent("a")).toBe(false);
    expect(await h.presence.closeAgent("never-seen")).toBe(false);
    expect(Object.keys(await statuses())).toEqual(["b"]);
  });

  // Regression guard: closing a halted agent would delete the halt with its row.
  it.skipIf(!engine.available)(
    "closeAgent refuses a halted agent and leaves it halted; after resume it may close",
    async () => {
      await h.presence.heartbeat("a");
      await h.presence.halt("a", { haltedBy: "alice", reason: "runaway refunds" });
      const error = await thrown(() => h.presence.closeAgent("a"));
      expect(error).toBeInstanceOf(CloseHaltedAgentError);
      expect(error).toMatchObject({
        code: PRESENCE_ERROR_CODES.PRESENCE_CLOSE_REFUSED,
        agentId: "a",
      });
      expect((error as Error).message).toContain("halted");
      expect((await h.presence.listAgents())[0]).toMatchObject({ agentId: "a", halted: true });
      await h.presence.forceRefreshHaltedCache();
      expect(h.presence.isHalted("a")).toBe(true);
      await h.presence.resume("a", { resumedBy: "alice", reason: "fixed" });
      expect(await h.presence.closeAgent("a")).toBe(true);
      expect(await h.presence.listAgents()).toEqual([]);
    },
  );

  it.skipIf(!engine.available)(
    "heartbeats, markIdle, closeAgent and checkStale never throw when the database is down",
    async () => {
      const flaky = flakyStore(h.store);
      const presence = h.another({ store: flaky.store });
      await presence.heartbeat("a");
      flaky.setDown(true);
      expect(await presence.heartbeat("a")).toBe(false);
      expect(await presence.markIdle("a")).toBe(false);
      expect(await presence.closeAgent("a")).toBe(false);
      expect(await presence.checkStale(1)).toEqual([]);
      expect(h.logger.lines.filter((line) => line.level === "warn").length).toBeGreaterThanOrEqual(
        4,
      );
      flaky.setDown(false);
      expect(await presence.listAgents()).toHaveLength(1);
    },
  );

  it.skipIf(!engine.available)(
    "a halted agent never seen before is listed as Unresponsive and halted",
    async () => {
      await h.presence.halt("ghost", { haltedBy: "alice", reason: "suspicious key use" });
      expect(await h.presence.listAgents()).toEqual([
        {
          agentId: "ghost",
          status: "Unresponsive",
          lastSeen: null,
          firstSeen: new Date("2026-01-01T00:00:00.000Z"),
          operatorId: null,
          metadata: null,
          halted: true,
          halt: {
            agentId: "ghost",
            haltedBy: "alice",
            haltedAt: new Date("2026-01-01T00:00:00.000Z"),
            reason: "suspicious key use",
          },
        },
      ]);
      // checkStale leaves it as it is: it was never live.
      expect(await h.presence.checkStale(1)).toEqual([]);
      const rows = await h.store.query<{ n: number }>(
        sql`select count(*)::int as n from gov_presence.agents`,
      );
      expect(rows[0]?.n).toBe(1);
    },
  );
});
