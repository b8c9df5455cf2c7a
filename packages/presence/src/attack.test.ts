/**
 * The halt under attack from a role that can only connect: any role that can log in to the
 * database can NOTIFY on any channel, without any privilege on gov_presence. A notification
 * must never carry state that a process believes (DESIGN.md rule 8).
 */
import { randomBytes } from "node:crypto";
import { AgentHaltedError, createStore, type Store, silentLogger, sql } from "@gov/core";
import { testEngines } from "@gov/core/testing";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { eventually, type PresenceHarness, presenceHarness } from "./__fixtures__";
import { HALT_CHANNEL } from "./halt-cache";
import type { PresenceModule } from "./module";

const postgres = testEngines().find((engine) => engine.name === "postgres");
const HALT = { haltedBy: "alice@company.com", reason: "refund loop" };
const HALTED = "billing-agent";
const HEALTHY = "healthy-agent";
const AT = "2026-01-01T00:00:00.000Z";

/** A role with LOGIN and nothing else, connected to the test database. */
interface Attacker {
  store: Store;
  /** Send `payload` on the halt channel, as `NOTIFY` would. */
  notify(payload: string): Promise<void>;
  drop(): Promise<void>;
}

async function connectAttacker(h: PresenceHarness): Promise<Attacker> {
  const role = `gov_attacker_${randomBytes(5).toString("hex")}`;
  await h.store.query(sql.raw(`create role ${role} login`));
  const url = new URL(h.store.connectionString as string);
  url.username = role;
  url.password = "";
  const store = await createStore({
    databaseUrl: url.toString(),
    logger: silentLogger,
    pool: { max: 1 },
  });
  return {
    store,
    notify: async (payload) => {
      await store.query(sql`select pg_notify(${HALT_CHANNEL}, ${payload})`);
    },
    drop: async () => {
      await store.close().catch(() => undefined);
      await h.store.query(sql.raw(`drop role if exists ${role}`));
    },
  };
}

describe("forged halt notifications from a role that can only connect (real Postgres)", () => {
  let h: PresenceHarness;
  let second: Store;
  /** Another module with connections of its own, as another process has. */
  let checker: PresenceModule;
  let attacker: Attacker;
  let sentinels = 0;

  beforeEach(async () => {
    if (!postgres?.available) return;
    // A TTL of an hour: only a notification (or a read it causes) can change the caches.
    h = await presenceHarness(postgres, { haltCacheTtlMs: 3_600_000 });
    second = await createStore({
      databaseUrl: h.store.connectionString as string,
      logger: silentLogger,
      pool: { max: 4 },
    });
    checker = h.another({ store: second });
    await checker.start();
    attacker = await connectAttacker(h);
    await h.presence.halt(HALTED, HALT);
    await h.presence.heartbeat(HEALTHY);
    await eventually(() => checker.isHalted(HALTED));
  });

  afterEach(async () => {
    await attacker?.drop();
    await h?.close();
    await second?.close();
  });

  /** Wait until both modules have handled every notification sent before this call. */
  async function settled(): Promise<void> {
    const sentinel = `sentinel-${sentinels++}`;
    await h.presence.halt(sentinel, { haltedBy: "ops", reason: "sync" });
    await eventually(() => checker.isHalted(sentinel) && h.presence.isHalted(sentinel));
  }

  /** Every check of both agents in both modules, counted: what a forgery must never change. */
  async function checkAll(tally: { passed: number; wronglyHalted: number }): Promise<void> {
    for (const module of [h.presence, checker]) {
      if (!module.isHalted(HALTED)) tally.passed++;
      try {
        await module.assertNotHalted(HALTED, { path: "attack.check" });
        tally.passed++;
      } catch (error) {
        if (!AgentHaltedError.isInstance(error)) throw error;
        // The halt in force is the operator's, never a forged one.
        expect(error).toMatchObject(HALT);
      }
      if (module.isHalted(HEALTHY)) tally.wronglyHalted++;
      await module
        .assertNotHalted(HEALTHY, { path: "attack.check" })
        .catch(() => tally.wronglyHalted++);
    }
  }

  async function assertUnmoved(): Promise<void> {
    await settled();
    for (const module of [h.presence, checker]) {
      expect(module.haltOf(HALTED)).toMatchObject(HALT);
      expect(module.isHalted(HEALTHY)).toBe(false);
    }
  }

  it.skipIf(!postgres?.available)("the attacker has no privilege on gov_presence", async () => {
    await expect(
      attacker.store.query(sql`select agent_id from gov_presence.agents`),
    ).rejects.toThrow(/permission denied/);
    await expect(
      attacker.store.query(sql`update gov_presence.agents set halted_at = null`),
    ).rejects.toThrow(/permission denied/);
  });

  it.skipIf(!postgres?.available)(
    "forged resumes, at any version, never lift an operator's halt in any process",
    async () => {
      const [row] = await h.store.query<{ v: string }>(
        sql`select halt_version::text as v from gov_presence.agents where agent_id = ${HALTED}`,
      );
      const known = Number(row?.v);
      const versions = [known, known + 1, known + 1_000, 2 ** 53 - 1, 9.2e18, 1e308];
      const tally = { passed: 0, wronglyHalted: 0 };
      for (let round = 0; round < 40; round++) {
        for (const v of versions) await attacker.notify(JSON.stringify({ a: HALTED, v, h: null }));
        await checkAll(tally);
      }
      await assertUnmoved();
      await checkAll(tally);
      expect(tally).toEqual({ passed: 0, wronglyHalted: 0 });
    },
    60_000,
  );

  it.skipIf(!postgres?.available)(
    "forged halts never halt a healthy agent, nor rewrite who halted an agent and why",
    async () => {
      const tally = { passed: 0, wronglyHalted: 0 };
      for (let round = 0; round < 40; round++) {
        for (const v of [1, 1e6, 2 ** 53 - 1]) {
          await attacker.notify(
            JSON.stringify({ a: HEALTHY, v, h: { by: "attacker", at: AT, reason: "forged" } }),
          );
          await attacker.notify(
            JSON.stringify({ a: HALTED, v, h: { by: "attacker", at: AT, reason: "forged" } }),
          );
        }
        await checkAll(tally);
      }
      await assertUnmoved();
      expect(tally).toEqual({ passed: 0, wronglyHalted: 0 });
      // A forged halt of an agent never seen is not believed either.
      await attacker.notify(
        JSON.stringify({ a: "never-seen", v: 1e9, h: { by: "x", at: AT, reason: "forged" } }),
      );
      await settled();
      expect(checker.isHalted("never-seen")).toBe(false);
    },
    60_000,
  );

  it.skipIf(!postgres?.available)(
    "malformed, oversized and reload payloads, and floods of them, change nothing",
    async () => {
      const payloads = [
        "",
        "{",
        "null",
        "[]",
        '"billing-agent"',
        "1e309",
        JSON.stringify({ a: 1, v: 1, h: null }),
        JSON.stringify({ a: HALTED, v: "99999999", h: null }),
        JSON.stringify({ a: HALTED, v: Number.NaN, h: null }),
        JSON.stringify({ a: HALTED, h: null }),
        JSON.stringify({ a: HALTED, v: 1e12, h: { by: 1, at: "yesterday", reason: null } }),
        JSON.stringify({ a: HALTED, v: 1e12, h: null, __proto__: { h: null } }),
        JSON.stringify({ a: "x".repeat(7_000), v: 1e12, h: null }),
        JSON.stringify({ a: HALTED, v: 1e12, h: null, pad: "p".repeat(7_800) }),
        "z".repeat(7_990),
        '{"reload":true}',
      ];
      const tally = { passed: 0, wronglyHalted: 0 };
      for (const payload of payloads) {
        await attacker.notify(payload);
        await checkAll(tally);
      }
      await assertUnmoved();
      // Floods: reload requests, and wake-ups naming thousands of agents.
      await Promise.all(Array.from({ length: 300 }, () => attacker.notify('{"reload":true}')));
      await checkAll(tally);
      for (let index = 0; index < 2_000; index++) {
        await attacker.notify(JSON.stringify({ a: `agent-${index}`, v: 1e12, h: null }));
        await attacker.notify(JSON.stringify({ a: HALTED, v: 1e12 + index, h: null }));
      }
      await checkAll(tally);
      await assertUnmoved();
      expect(tally).toEqual({ passed: 0, wronglyHalted: 0 });
    },
    120_000,
  );

  it.skipIf(!postgres?.available)(
    "after a flood of forgeries, a real resume and a real halt still reach every process",
    async () => {
      for (let index = 0; index < 200; index++) {
        await attacker.notify(JSON.stringify({ a: HALTED, v: 1e15 + index, h: null }));
        await attacker.notify(
          JSON.stringify({ a: HEALTHY, v: 1e15 + index, h: { by: "x", at: AT, reason: "y" } }),
        );
      }
      await h.presence.resume(HALTED, { resumedBy: "alice", reason: "fixed" });
      await h.presence.halt(HEALTHY, { haltedBy: "bob", reason: "now really" });
      await eventually(() => !checker.isHalted(HALTED) && checker.isHalted(HEALTHY));
      expect(checker.haltOf(HEALTHY)).toMatchObject({ haltedBy: "bob", reason: "now really" });
    },
    60_000,
  );
});

// The embedded database has one process, but anything holding its store can still NOTIFY:
// the payload must be no more believed there than on a server.
describe("forged halt notifications on the embedded database (PGlite)", () => {
  const pglite = testEngines().find((engine) => engine.name === "pglite");

  it.skipIf(!pglite?.available)("change no halt state", async () => {
    const h = await presenceHarness(pglite as never, { haltCacheTtlMs: 3_600_000 });
    try {
      await h.presence.halt(HALTED, HALT);
      await h.presence.heartbeat(HEALTHY);
      const forged = [
        JSON.stringify({ a: HALTED, v: 1e12, h: null }),
        JSON.stringify({ a: HEALTHY, v: 1e12, h: { by: "x", at: AT, reason: "forged" } }),
        "{",
        '{"reload":true}',
      ];
      for (const payload of forged) await h.store.notify(HALT_CHANNEL, payload);
      // Delivered after the forgeries: once it is seen, they were handled.
      await h.another().halt("sentinel", { haltedBy: "ops", reason: "sync" });
      await eventually(() => h.presence.isHalted("sentinel"));
      expect(h.presence.haltOf(HALTED)).toMatchObject(HALT);
      expect(h.presence.isHalted(HEALTHY)).toBe(false);
    } finally {
      await h.close();
    }
  });
});
