import { createStore, GovernanceError, type ModuleContext, type Store, sql } from "@gov/core";
import { type TestEngine, testEngines } from "@gov/core/testing";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  eventually,
  flakyStore,
  haltedError,
  type PresenceHarness,
  presenceHarness,
  recordingLogger,
  testKeyring,
  thrown,
} from "./__fixtures__";
import { HaltNotPersistedError, HaltStateUnavailableError, PRESENCE_ERROR_CODES } from "./errors";
import { PresenceModule, presenceModule } from "./module";

const HALT = { haltedBy: "alice@company.com", reason: "refund loop" };
const T0 = new Date("2026-01-01T00:00:00.000Z");

describe.each(testEngines())("the operator's halt on $name", (engine: TestEngine) => {
  let h: PresenceHarness;

  beforeEach(async () => {
    // A TTL of an hour: anything seen sooner came by NOTIFY or by this process's own write.
    if (engine.available) h = await presenceHarness(engine, { haltCacheTtlMs: 3_600_000 });
  });

  afterEach(async () => {
    await h?.close();
  });

  it.skipIf(!engine.available)(
    "a halted agent is refused with AgentHaltedError carrying who, when, why and where",
    async () => {
      await h.presence.heartbeat("billing-agent");
      expect(await h.presence.halt("billing-agent", HALT)).toEqual({
        changed: true,
        halt: { agentId: "billing-agent", haltedAt: T0, ...HALT },
      });
      expect(h.presence.isHalted("billing-agent")).toBe(true);
      expect(h.presence.isHalted("other-agent")).toBe(false);
      const error = await haltedError(() =>
        h.presence.assertNotHalted("billing-agent", { path: "scope.check" }),
      );
      expect(error).toMatchObject({
        code: "AGENT_HALTED",
        agentId: "billing-agent",
        haltedBy: HALT.haltedBy,
        haltedAt: T0,
        reason: HALT.reason,
        path: "scope.check",
      });
      // Not a GovernanceError: a broad catch for those must not swallow a halt.
      expect(GovernanceError.isInstance(error)).toBe(false);
      // The HaltGuard port behaves the same.
      const viaPort = await haltedError(() =>
        h.presence.assertAlive("billing-agent", { path: "cost.checkOrRaise" }),
      );
      expect(viaPort.path).toBe("cost.checkOrRaise");
      await expect(
        h.presence.assertNotHalted("other-agent", { path: "scope.check" }),
      ).resolves.toBeUndefined();
    },
  );

  // Regression guard: a heartbeat's upsert must never clear the halt columns.
  it.skipIf(!engine.available)("a halt survives heartbeats, markIdle and checkStale", async () => {
    await h.presence.heartbeat("a", { metadata: { v: 1 }, operatorId: "bob" });
    await h.presence.halt("a", HALT);
    for (let beat = 0; beat < 3; beat++) {
      h.clock.advance(30_000);
      await h.presence.heartbeat("a", { metadata: { v: beat }, operatorId: "carol" });
    }
    await h.presence.markIdle("a");
    h.clock.advance(600_000);
    await h.presence.checkStale(60);
    await h.presence.forceRefreshHaltedCache();
    expect(h.presence.isHalted("a")).toBe(true);
    const [agent] = await h.presence.listAgents();
    expect(agent).toMatchObject({
      halted: true,
      halt: { haltedBy: HALT.haltedBy, reason: HALT.reason, haltedAt: T0 },
    });
  });

  it.skipIf(!engine.available)(
    "a halt survives a restart: a new module on the same store refuses the agent",
    async () => {
      await h.presence.halt("a", HALT);
      await h.presence.close();
      const restarted = h.another();
      await restarted.start();
      expect(restarted.isHalted("a")).toBe(true);
      const error = await haltedError(() =>
        restarted.assertNotHalted("a", { path: "gates.request" }),
      );
      expect(error).toMatchObject({ haltedBy: HALT.haltedBy, reason: HALT.reason, haltedAt: T0 });
      // Even without start(): the first enforcement check loads the state itself.
      const cold = h.another();
      await haltedError(() => cold.assertNotHalted("a", { path: "scope.check" }));
    },
  );

  it.skipIf(!engine.available)("an agent never seen before can be halted", async () => {
    await h.presence.halt("never-seen", HALT);
    expect(h.presence.isHalted("never-seen")).toBe(true);
    const other = h.another();
    await other.start();
    expect(other.isHalted("never-seen")).toBe(true);
    // Its first heartbeat finds it halted.
    await h.presence.heartbeat("never-seen");
    await other.forceRefreshHaltedCache();
    expect(other.isHalted("never-seen")).toBe(true);
  });

  it.skipIf(!engine.available)(
    "halting twice is idempotent: the first halt stays, and one agent.halted event is written",
    async () => {
      await h.presence.halt("a", HALT);
      h.clock.advance(5_000);
      const again = await h.presence.halt("a", { haltedBy: "bob", reason: "also" });
      expect(again).toEqual({ changed: false, halt: { agentId: "a", haltedAt: T0, ...HALT } });
      const rows = await h.store.query<{ halted_by: string; halt_reason: string }>(
        sql`select halted_by, halt_reason from gov_presence.agents where agent_id = 'a'`,
      );
      expect(rows).toEqual([{ halted_by: HALT.haltedBy, halt_reason: HALT.reason }]);
      expect(h.audit.events.filter((event) => event.kind === "agent.halted")).toHaveLength(1);
      // Twenty concurrent halts from two modules: still one halt, one event.
      const other = h.another();
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, index) =>
          (index % 2 ? other : h.presence).halt("b", { haltedBy: `op-${index}`, reason: "stop" }),
        ),
      );
      expect(results.filter((result) => result.changed)).toHaveLength(1);
      expect(new Set(results.map((result) => result.halt.haltedBy)).size).toBe(1);
      expect(
        h.audit.events.filter((event) => event.kind === "agent.halted" && event.agentId === "b"),
      ).toHaveLength(1);
    },
  );

  it.skipIf(!engine.available)(
    "halt, resume and refusals are written to the audit chain with the fields an auditor needs",
    async () => {
      await h.presence.halt("a", HALT);
      await thrown(() => h.presence.assertNotHalted("a", { path: "scope.check" }));
      h.clock.advance(60_000);
      expect(await h.presence.resume("a", { resumedBy: "bob", reason: "loop fixed" })).toEqual({
        changed: true,
        liftedHalt: { agentId: "a", haltedAt: T0, ...HALT },
      });
      expect(h.audit.events).toEqual([
        {
          agentId: "a",
          kind: "agent.halted",
          metadata: { ...HALT, haltedAt: T0.toISOString() },
        },
        {
          agentId: "a",
          kind: "agent.halt_enforced",
          metadata: { path: "scope.check", ...HALT, haltedAt: T0.toISOString() },
        },
        {
          agentId: "a",
          kind: "agent.resumed",
          metadata: {
            resumedBy: "bob",
            reason: "loop fixed",
            resumedAt: "2026-01-01T00:01:00.000Z",
            haltedBy: HALT.haltedBy,
            haltReason: HALT.reason,
            haltedAt: T0.toISOString(),
          },
        },
      ]);
    },
  );

  it.skipIf(!engine.available)(
    "resume lifts the halt everywhere; resuming an agent that is not halted writes nothing",
    async () => {
      const other = h.another();
      await other.start();
      await h.presence.halt("a", HALT);
      await eventually(() => other.isHalted("a"));
      await h.presence.resume("a", { resumedBy: "bob", reason: "fixed" });
      expect(h.presence.isHalted("a")).toBe(false);
      await expect(
        h.presence.assertNotHalted("a", { path: "scope.check" }),
      ).resolves.toBeUndefined();
      await eventually(() => !other.isHalted("a"));
      const before = h.audit.events.length;
      expect(await h.presence.resume("a", { resumedBy: "bob", reason: "again" })).toEqual({
        changed: false,
        liftedHalt: null,
      });
      expect(await h.presence.resume("unknown", { resumedBy: "bob", reason: "x" })).toEqual({
        changed: false,
        liftedHalt: null,
      });
      expect(h.audit.events.length).toBe(before);
      // And a halt after a resume takes again.
      await h.presence.halt("a", { haltedBy: "carol", reason: "again" });
      await eventually(() => other.haltOf("a")?.haltedBy === "carol");
      const [row] = await h.store.query<{ resumed_by: string; halted_by: string }>(
        sql`select resumed_by, halted_by from gov_presence.agents where agent_id = 'a'`,
      );
      expect(row).toEqual({ resumed_by: "bob", halted_by: "carol" });
    },
  );

  // Regression: a halt's version was taken before it waited for the row lock, so a resume
  // holding that lock committed a newer version and every cache dropped the halt as older.
  it.skipIf(!engine.available || engine.name !== "postgres")(
    "concurrent halts and resumes from two stores: every cache agrees with the row, without a reload",
    async () => {
      const second = await createStore({
        databaseUrl: h.store.connectionString as string,
        logger: recordingLogger(),
        pool: { max: 10 },
      });
      try {
        const a = h.presence;
        const b = h.another({ store: second });
        await b.start();
        const agent = "racer";
        await a.heartbeat(agent);
        const versions = new Set<number>();
        for (let round = 0; round < 40; round++) {
          const calls = Array.from({ length: 8 }, (_, index) => {
            const module = index % 4 < 2 ? a : b;
            return index % 2 === 0
              ? module.halt(agent, { haltedBy: `op-${round}-${index}`, reason: "stop" })
              : module.resume(agent, { resumedBy: `op-${round}-${index}`, reason: "go" });
          });
          await Promise.all(calls);
          const [row] = await h.store.query<{ halted: boolean; halt_version: string }>(
            sql`select halted_at is not null as halted, halt_version from gov_presence.agents where agent_id = ${agent}`,
          );
          if (!row) throw new Error("the agent's row is missing");
          versions.add(Number(row.halt_version));
          // The NOTIFYs arrive within milliseconds; the TTL is an hour, so no reload helps.
          await eventually(
            () => a.isHalted(agent) === row.halted && b.isHalted(agent) === row.halted,
            3_000,
          ).catch(() => {
            throw new Error(
              `round ${round}: the row says halted=${row.halted} (version ${row.halt_version}), the caches say ${a.isHalted(agent)} and ${b.isHalted(agent)}`,
            );
          });
        }
        expect(versions.size).toBeGreaterThan(1);
      } finally {
        await second.close();
      }
    },
  );

  it.skipIf(!engine.available)(
    "another module on the same database sees a halt by NOTIFY, long before its TTL",
    async () => {
      const other = h.another();
      await other.start();
      expect(other.isHalted("a")).toBe(false);
      await h.presence.halt("a", HALT);
      await eventually(() => other.isHalted("a"), 5_000);
      const error = await haltedError(() => other.assertNotHalted("a", { path: "scope.check" }));
      expect(error).toMatchObject({ haltedBy: HALT.haltedBy, reason: HALT.reason, haltedAt: T0 });
    },
  );

  it.skipIf(!engine.available)(
    "the TTL reload picks up a halt written straight to the table (no NOTIFY), as unverifiable",
    async () => {
      const polling = h.another({ presence: { haltCacheTtlMs: 100 } });
      await polling.start();
      await h.store.query(sql`
        insert into gov_presence.agents (agent_id, status, first_seen, halted_at, halted_by, halt_reason, halt_version)
        values ('console-written', 'live', now(), now(), 'dba', 'manual halt', nextval('gov_presence.halt_version'))`);
      await eventually(() => polling.isHalted("console-written"), 5_000);
      // The module with the hour-long TTL only sees it when asked to reload.
      expect(h.presence.isHalted("console-written")).toBe(false);
      await h.presence.forceRefreshHaltedCache();
      expect(h.presence.isHalted("console-written")).toBe(true);
      // Unsigned, so not believed as written: enforced as a halt, by nobody it can name.
      expect(h.presence.haltOf("console-written")?.haltedBy).toBe("(unverifiable halt state)");
      expect(
        h.audit.events.some(
          (event) =>
            event.kind === "presence.halt_state_rejected" && event.agentId === "console-written",
        ),
      ).toBe(true);
    },
  );

  it.skipIf(!engine.available)(
    "while the database is down a halted agent stays halted, isHalted never throws, and it warns",
    async () => {
      const flaky = flakyStore(h.store);
      const logger = recordingLogger();
      const presence = h.another({ store: flaky.store, logger });
      await presence.start();
      await presence.halt("a", HALT);
      flaky.setDown(true);
      const refresh = await thrown(() => presence.forceRefreshHaltedCache());
      expect(refresh).toMatchObject({ code: "STORE_CONNECTION" });
      expect(() => presence.isHalted("a")).not.toThrow();
      expect(presence.isHalted("a")).toBe(true);
      expect(presence.isHalted("b")).toBe(false);
      const error = await haltedError(() => presence.assertNotHalted("a", { path: "scope.check" }));
      expect(error.reason).toBe(HALT.reason);
      // Agents known not to be halted keep working: the last known state holds.
      await expect(presence.assertNotHalted("b", { path: "scope.check" })).resolves.toBeUndefined();
      expect(
        logger.lines.some((line) => line.level === "warn" && /last known state/.test(line.message)),
      ).toBe(true);
      // A halt cannot be lifted while the database is away, and says so.
      const resume = await thrown(() => presence.resume("a", { resumedBy: "bob", reason: "x" }));
      expect(resume).toBeInstanceOf(HaltNotPersistedError);
      expect(presence.isHalted("a")).toBe(true);
      flaky.setDown(false);
      await presence.forceRefreshHaltedCache();
      expect(presence.isHalted("a")).toBe(true);
      expect(logger.lines.some((line) => line.level === "info" && /again/.test(line.message))).toBe(
        true,
      );
    },
  );

  // Regression: once the TTL had passed, every halt check started a reload of its own after
  // the last one failed, i.e. one connection attempt per enforcement call during an outage.
  it.skipIf(!engine.available)(
    "while reloads keep failing, halt checks back off instead of hitting the database on each call",
    async () => {
      const flaky = flakyStore(h.store);
      let queries = 0;
      const counting: Store = Object.create(flaky.store, {
        query: {
          value: (query: Parameters<Store["query"]>[0]) => {
            queries += 1;
            return flaky.store.query(query);
          },
        },
      });
      const logger = recordingLogger();
      const presence = h.another({
        store: counting,
        logger,
        presence: { haltCacheTtlMs: 100 },
      });
      await presence.start();
      await presence.halt("a", HALT);
      flaky.setDown(true);
      await new Promise((resolve) => setTimeout(resolve, 150)); // the cache is now stale
      queries = 0;
      const started = performance.now();
      let checks = 0;
      while (performance.now() - started < 1_500) {
        for (let burst = 0; burst < 20; burst++) {
          checks += 2;
          expect(presence.isHalted("a")).toBe(true);
          expect(presence.isHalted("b")).toBe(false);
          await haltedError(() => presence.assertNotHalted("a", { path: "scope.check" }));
          await presence.assertNotHalted("b", { path: "scope.check" });
        }
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
      expect(checks).toBeGreaterThan(500);
      // 1.5 s of outage, retries 250 ms apart at most: a handful of attempts, not one a call.
      expect(queries).toBeGreaterThan(0);
      expect(queries).toBeLessThanOrEqual(10);
      // Still the last known state.
      expect(presence.haltedAgents().map((halt) => halt.agentId)).toEqual(["a"]);
      // Back online: the next retry succeeds (the reset of the backoff: halt-cache.test.ts).
      flaky.setDown(false);
      await eventually(() =>
        logger.lines.some((line) => line.level === "info" && /again/.test(line.message)),
      );
      await h.presence.resume("a", { resumedBy: "bob", reason: "fixed" });
      await eventually(() => !presence.isHalted("a"));
      expect(presence.isHalted("a")).toBe(false);
    },
  );

  it.skipIf(!engine.available)(
    "with nothing ever loaded and the database down, enforcement fails closed; isHalted says false",
    async () => {
      const flaky = flakyStore(h.store);
      flaky.setDown(true);
      const logger = recordingLogger();
      const presence = h.another({ store: flaky.store, logger });
      await presence.start(); // warns, never throws
      expect(presence.isHalted("a")).toBe(false);
      const error = await thrown(() => presence.assertNotHalted("a", { path: "scope.check" }));
      expect(error).toBeInstanceOf(HaltStateUnavailableError);
      expect(error).toMatchObject({
        code: PRESENCE_ERROR_CODES.HALT_STATE_UNAVAILABLE,
        agentId: "a",
        path: "scope.check",
      });
      expect(
        logger.lines.some((line) => line.level === "warn" && /never loaded/.test(line.message)),
      ).toBe(true);
      flaky.setDown(false);
      await expect(presence.assertNotHalted("a", { path: "scope.check" })).resolves.toBeUndefined();
    },
  );

  it.skipIf(!engine.available)(
    "a halt that cannot be written throws HaltNotPersistedError and halts nothing",
    async () => {
      const flaky = flakyStore(h.store);
      const presence = h.another({ store: flaky.store });
      await presence.start();
      flaky.setDown(true);
      const error = await thrown(() => presence.halt("a", HALT));
      expect(error).toBeInstanceOf(HaltNotPersistedError);
      expect(error).toMatchObject({
        code: PRESENCE_ERROR_CODES.HALT_NOT_PERSISTED,
        agentId: "a",
        operation: "halt",
      });
      expect((error as Error).message).not.toContain("postgres://");
      expect(presence.isHalted("a")).toBe(false);
      expect(h.audit.events).toEqual([]);
      flaky.setDown(false);
      expect(await h.store.query(sql`select 1 from gov_presence.agents`)).toEqual([]);
    },
  );

  it.skipIf(!engine.available)(
    "the module definition migrates gov_presence and provides the halt guard",
    async () => {
      const context = {
        store: h.store,
        keyring: testKeyring(),
        clock: h.clock,
        logger: h.logger,
        audit: h.audit,
      } as unknown as ModuleContext;
      const instance = await presenceModule.create(context, undefined);
      try {
        expect(instance).toBeInstanceOf(PresenceModule);
        expect(presenceModule.name).toBe("presence");
        expect(presenceModule.migrations?.name).toBe("presence");
        const ports = presenceModule.provides?.(instance);
        expect(ports?.halt).toBe(instance);
        await h.presence.halt("a", HALT);
        await eventually(() => instance.isHalted("a"));
        await haltedError(
          () => ports?.halt?.assertAlive("a", { path: "scope.check" }) ?? Promise.resolve(),
        );
      } finally {
        await presenceModule.close?.(instance);
      }
    },
  );
});
