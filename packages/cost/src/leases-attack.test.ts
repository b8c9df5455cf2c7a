/**
 * Attacks on budget leases (`lease` option): each test is a way the feature once let spend
 * pass a cap, refused what one reservation would pass, held budget it should not, or let a
 * lease outlive the calls it covers — and what it does now.
 */
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { AgentHaltedError, noopHaltGuard, sql } from "@gov/core";
import {
  createTestStore,
  recordingAuditSink,
  recordingLogger,
  spawnJsonLinesChild,
  type TestEngine,
  testEngines,
} from "@gov/core/testing";
import { afterEach, describe, expect, it } from "vitest";
import { type CostHarness, costHarness, rejection, testKeyring } from "./__fixtures__";
import { leaseRowsOf, leasingModules, reservedTokensOf } from "./__fixtures__/leases";
import { costMigrations } from "./definition";
import { BudgetExceeded } from "./errors";
import { CostModule } from "./module";

const A = "billing-agent";
const S = "session-1";
const USAGE = { model: "gpt-4o", inputTokens: 100, outputTokens: 50 }; // 150 tokens
const WORST = { model: "gpt-4o", inputTokens: 100, maxTokens: 1000 }; // 1,100 tokens

const postgres = testEngines().find((engine) => engine.name === "postgres");

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe.each(testEngines())("attacks on budget leases on $name", (engine: TestEngine) => {
  let h: CostHarness;
  const modules = leasingModules(() => h, { lease: { calls: 4, idleMs: 600_000 } });
  const leasing = modules.leasing;
  const setup = async () => {
    h = await costHarness(engine);
  };
  afterEach(async () => {
    if (!engine.available) return;
    await modules.close();
    await h.close();
  });
  const reservedTokens = async (session = S) => reservedTokensOf(h, A, session);
  const leaseRows = () => leaseRowsOf(h);

  // Break: what was left of the session's own lease stayed reserved, so a call that one
  // reservation would pass (150 spent + 3,500 ≤ 5,000) was refused (150 + 3,300 + 3,500).
  it.skipIf(!engine.available)(
    "a check is not refused for what is left of the session's own lease",
    async () => {
      await setup();
      const { cost } = leasing();
      cost.register({ agentId: A, perSessionTokens: 5_000 });
      const call = await cost.checkOrRaise(A, S, WORST);
      await cost.trackUsage(A, S, { ...USAGE, reservationId: call.reservationId });
      expect(await reservedTokens()).toBe(3_300);
      const big = await cost.checkOrRaise(A, S, { model: "gpt-4o", maxTokens: 3_500 });
      expect(big.reservationId).not.toBeNull();
      expect(await h.sessionRow(A, S)).toMatchObject({ tokens: "150", reserved_tokens: "3500" });
      expect(h.audit.events.filter((event) => event.kind === "budget.exceeded")).toEqual([]);
    },
  );

  // Break: the same, under a daily cap, with the leases of the agent's other sessions.
  it.skipIf(!engine.available)(
    "a check is not refused for what is left of the agent's leases in other sessions",
    async () => {
      await setup();
      const { cost } = leasing();
      cost.register({ agentId: A, perAgentTokensDaily: 6_000 });
      await cost.checkOrRaise(A, "s1", WORST); // a lease of 4,400
      await cost.checkOrRaise(A, "s2", WORST); // no lease fits: 1,100 alone
      // 3 × 1,100 ≤ 6,000, as without leases; the lease's 3,300 unused is what is in the way.
      const third = await cost.checkOrRaise(A, "s3", WORST);
      expect(third.reservationId).not.toBeNull();
      const [day] = await h.store.query<{ reserved_tokens: string }>(
        sql`select reserved_tokens::text as reserved_tokens from gov_cost.agent_days where agent_id = ${A}`,
      );
      expect(Number(day?.reserved_tokens)).toBe(3_300);
      // The trimmed lease admits nothing more: a new check of s1 goes to the database.
      await expect(cost.checkOrRaise(A, "s1", WORST)).resolves.toMatchObject({ tokens: 1_100 });
      expect(await h.sessionRow(A, "s1")).toMatchObject({ reserved_tokens: "2200" });
    },
  );

  // Break: a lease was held for reservationTtlMs from its grant but admitted calls until half
  // of it, so the sweep released it under a call admitted late (its worst case no longer held).
  it.skipIf(!engine.available)(
    "the sweep never releases a lease under a call younger than reservationTtlMs",
    async () => {
      await setup();
      const { cost } = leasing({ reservationTtlMs: 4_000 });
      cost.register({ agentId: A, perSessionTokens: 100_000 });
      const first = await cost.checkOrRaise(A, S, WORST);
      await cost.trackUsage(A, S, { ...USAGE, reservationId: first.reservationId });
      await sleep(1_500);
      const late = await cost.checkOrRaise(A, S, WORST); // a share, 1.5 s into the lease
      expect(cost.metrics().leasesOpened).toBe(1);
      await sleep(2_800); // the lease is 4.3 s old, the late call 2.8 s
      expect(await cost.releaseExpired()).toBe(0);
      expect(await reservedTokens()).toBe(3_300);
      await cost.trackUsage(A, S, { ...USAGE, reservationId: late.reservationId });
      expect(await reservedTokens()).toBe(2_200);
    },
  );

  // Break: the session's time was counted from when the lease's answer arrived, not from when
  // the database measured it: a slow round trip let the lease admit past perSessionSeconds.
  it.skipIf(!engine.available)(
    "a slow answer does not stretch the session's time cap",
    async () => {
      await setup();
      const { cost, state } = leasing();
      cost.register({ agentId: A, perSessionSeconds: 2, perSessionTokens: 100_000 });
      state.delayNextLeaseMs = 1_500;
      await cost.checkOrRaise(A, S, WORST); // the session starts; the answer takes 1.5 s
      await sleep(800); // 2.3 s into the session
      const error = await rejection(cost.checkOrRaise(A, S, WORST));
      expect(error).toBeInstanceOf(BudgetExceeded);
      expect(error).toMatchObject({ cap: "perSessionSeconds" });
    },
  );

  // Break: release() of the lease's own row (its id is in the table and in the sweep's audit
  // events) gave its budget back while this process went on admitting calls in it.
  it.skipIf(!engine.available)(
    "a lease's own id is not released by release(), nor settled by a usage naming it",
    async () => {
      await setup();
      const { cost } = leasing();
      cost.register({ agentId: A, perSessionTokens: 100_000 });
      await cost.checkOrRaise(A, S, WORST);
      const [row] = await leaseRows();
      const leaseId = (row as { id: string }).id;
      expect(await cost.release(leaseId)).toBe(0);
      expect(await reservedTokens()).toBe(4_400);
      const receipt = await cost.trackUsage(A, S, { ...USAGE, reservationId: leaseId });
      expect(receipt.recorded).toBe(true);
      expect(await h.sessionRow(A, S)).toMatchObject({ tokens: "150", reserved_tokens: "4400" });
      expect((await leaseRows()).map((lease) => Number(lease.tokens))).toEqual([4_400]);
    },
  );

  // Break (memory): a share whose call never reported (a stream abandoned without reconcile)
  // kept its lease in memory for the life of the process; without leases the sweep is all.
  it.skipIf(!engine.available)(
    "a share never settled is forgotten once its lease has expired",
    async () => {
      await setup();
      const { cost } = leasing({ reservationTtlMs: 1_000 });
      cost.register({ agentId: A, perSessionTokens: 100_000 });
      const call = await cost.checkOrRaise(A, S, WORST);
      await sleep(1_700);
      // Released by the sweep (audit-logged), not by this process; the share is gone too.
      expect(await cost.releaseExpired()).toBe(1);
      expect(await cost.release(call.reservationId as string)).toBe(0);
      expect(await reservedTokens()).toBe(0);
    },
  );

  // Break (low): a usage of another session naming a share took the share out of its lease,
  // so the call's own usage later released nothing and its part stayed held.
  it.skipIf(!engine.available)(
    "a usage of another session naming a share leaves the share to its own call",
    async () => {
      await setup();
      const { cost } = leasing();
      cost.register({ agentId: A, perSessionTokens: 100_000 });
      const call = await cost.checkOrRaise(A, S, WORST);
      const forged = await cost.trackUsage(A, "session-2", {
        ...USAGE,
        reservationId: call.reservationId,
      });
      expect(forged.recorded).toBe(true);
      expect(await reservedTokens()).toBe(4_400);
      await cost.trackUsage(A, S, { ...USAGE, reservationId: call.reservationId });
      expect(await h.sessionRow(A, S)).toMatchObject({ tokens: "150", reserved_tokens: "3300" });
    },
  );

  // Break (low): a lease being opened when close() ran was kept after it (its budget held
  // until the sweep); checks after close() opened new ones.
  it.skipIf(!engine.available)("close() ends a lease that was being opened", async () => {
    await setup();
    const { cost, state } = leasing();
    cost.register({ agentId: A, perSessionTokens: 100_000 });
    state.delayNextLeaseMs = 300;
    const checking = cost.checkOrRaise(A, S, WORST);
    await sleep(50);
    await cost.close();
    const call = await checking;
    expect(await reservedTokens()).toBe(4_400);
    await cost.trackUsage(A, S, { ...USAGE, reservationId: call.reservationId });
    await expect.poll(() => reservedTokens()).toBe(0);
  });

  // Holds: the claims that survived the attack, kept so that they stay true.
  it.skipIf(!engine.available)(
    "a lease admits nothing on a new UTC day, nor for a halted agent",
    async () => {
      await setup();
      const { cost, counts } = leasing();
      cost.register({ agentId: A, perAgentTokensDaily: 100_000 });
      await cost.checkOrRaise(A, S, WORST);
      h.clock.advance(12 * 3_600_000); // midnight UTC
      const tomorrow = await cost.checkOrRaise(A, S, WORST);
      expect(tomorrow.day).toBe("2026-11-24");
      expect(counts.lease).toBe(2);
      const days = await h.store.query<{ day: string; reserved_tokens: string }>(
        sql`select day::text as day, reserved_tokens::text as reserved_tokens from gov_cost.agent_days order by day`,
      );
      expect(days).toEqual([
        { day: "2026-11-23", reserved_tokens: "4400" },
        { day: "2026-11-24", reserved_tokens: "4400" },
      ]);
      h.halt.halted.add(A);
      expect(await rejection(cost.checkOrRaise(A, S, WORST))).toBeInstanceOf(AgentHaltedError);
      expect(cost.metrics().leaseAdmissions).toBe(2);
    },
  );

  it.skipIf(!engine.available)(
    "a share settled by reconcile, then by trackUsage, counts once and releases once",
    async () => {
      await setup();
      const { cost } = leasing();
      cost.register({ agentId: A, perSessionTokens: 100_000 });
      const call = await cost.checkOrRaise(A, S, WORST);
      const reservationId = call.reservationId as string;
      await cost.reconcile(A, S, { ...USAGE, reservationId, reason: "completed" });
      await cost.reconcile(A, S, { ...USAGE, reservationId, reason: "completed" });
      const again = await cost.trackUsage(A, S, { ...USAGE, reservationId });
      expect(again.recorded).toBe(false);
      expect(await cost.release(reservationId)).toBe(0);
      expect(await h.sessionRow(A, S)).toMatchObject({ tokens: "150", reserved_tokens: "3300" });
    },
  );
  // Holds: two processes, three sessions, checks racing lease openings, refusals freeing
  // leases, usage and releases in any order: the caps hold at every moment, and when all is
  // settled and closed nothing stays reserved and every usage counted once.
  it.skipIf(!engine.available)(
    "racing checks, usage and releases of two processes keep every counter exact",
    async () => {
      await setup();
      const processes = [leasing({ lease: { calls: 4, idleMs: 50 } }), leasing()];
      for (const { cost } of processes)
        cost.register({ agentId: A, perSessionTokens: 6_000, perAgentTokensDaily: 12_000 });
      let recorded = 0;
      let sampling = true;
      const samples: { tokens: string; reserved: string }[] = [];
      const sampler = (async () => {
        while (sampling) {
          samples.push(
            ...(await h.store.query<{ tokens: string; reserved: string }>(
              sql`select tokens::text as tokens, reserved_tokens::text as reserved from gov_cost.agent_days`,
            )),
          );
          await sleep(5);
        }
      })();
      await Promise.all(
        Array.from({ length: 90 }, async (_, index) => {
          const { cost } = processes[index % 2] as (typeof processes)[number];
          const session = `s${index % 3}`;
          await sleep((index * 7) % 40);
          let call: Awaited<ReturnType<typeof cost.checkOrRaise>>;
          try {
            call = await cost.checkOrRaise(A, session, WORST);
          } catch (error) {
            expect(error).toBeInstanceOf(BudgetExceeded);
            return;
          }
          await sleep((index * 13) % 30);
          if (index % 5 === 0) {
            await cost.release(call.reservationId as string);
          } else {
            const receipt = await cost.trackUsage(A, session, {
              ...USAGE,
              reservationId: call.reservationId,
            });
            if (receipt.recorded) recorded++;
          }
        }),
      );
      for (const { cost } of processes) await cost.close();
      sampling = false;
      await sampler;
      for (const sample of samples) {
        expect(Number(sample.reserved)).toBeGreaterThanOrEqual(0);
        expect(Number(sample.tokens) + Number(sample.reserved)).toBeLessThanOrEqual(12_000);
      }
      const rows = await h.store.query<{ tokens: string; reserved: string }>(
        sql`select tokens::text as tokens, reserved_tokens::text as reserved from gov_cost.sessions`,
      );
      expect(rows.every((row) => row.reserved === "0")).toBe(true);
      expect(rows.reduce((sum, row) => sum + Number(row.tokens), 0)).toBe(recorded * 150);
      expect(await leaseRows()).toEqual([]);
      expect(recorded).toBeGreaterThan(10);
    },
  );

  // Holds: a share's usage spooled while the store was down and replayed by the next process
  // releases its part of the lease once; the first process's own retry is a duplicate.
  it.skipIf(!engine.available)(
    "a spooled share settlement replayed by the next process releases its part once",
    async () => {
      const directory = await mkdtemp(join(tmpdir(), "gov-cost-lease-spool-"));
      try {
        h = await costHarness(engine, {
          spoolDirectory: directory,
          lease: { calls: 4, idleMs: 600_000 },
        });
        h.cost.register({ agentId: A, perSessionTokens: 100_000 });
        const call = await h.cost.checkOrRaise(A, S, WORST);
        h.setDown(true);
        const queued = await h.cost.trackUsage(A, S, {
          ...USAGE,
          reservationId: call.reservationId,
        });
        expect(queued).toMatchObject({ recorded: false, queued: true });
        const [file] = (await readdir(directory)).filter((name) => name.endsWith(".jsonl"));
        const text = await readFile(join(directory, file as string), "utf8");
        expect(text).toContain('"leaseId"');
        // The process "dies" with the record spooled; the next one adopts and replays it.
        await writeFile(
          join(directory, `cost-spool-${hostname()}-${2 ** 22 + 777}-beef.jsonl`),
          text,
        );
        const next = new CostModule(
          {
            store: h.store,
            audit: h.audit,
            logger: recordingLogger(),
            halt: h.halt,
            clock: h.clock,
            keyring: testKeyring,
          },
          { sweepIntervalMs: null, spoolDirectory: directory },
        );
        modules.adopt(next);
        await next.start();
        expect(await next.flush()).toBe(0);
        expect(await h.sessionRow(A, S)).toMatchObject({ tokens: "150", reserved_tokens: "3300" });
        h.setDown(false);
        expect(await h.cost.flush()).toBe(0);
        expect(h.cost.metrics()).toMatchObject({ usageDuplicates: 1 });
        expect(await h.sessionRow(A, S)).toMatchObject({ tokens: "150", reserved_tokens: "3300" });
        await h.cost.close();
        expect(await h.sessionRow(A, S)).toMatchObject({ tokens: "150", reserved_tokens: "0" });
      } finally {
        await rm(directory, { recursive: true, force: true });
      }
    },
  );
});

describe("a process killed while it holds a lease (real Postgres)", () => {
  // Holds: SIGKILL leaves the lease in the database; the sweep of another process releases
  // what is left of it once it expires, and the usage recorded before the kill stays.
  it.skipIf(!postgres?.available)(
    "what is left of its lease is released by the sweep when it expires",
    async () => {
      const store = await createTestStore(postgres as never, { migrations: [costMigrations] });
      try {
        const child = spawnJsonLinesChild(
          new URL("./__fixtures__/lease-child.ts", import.meta.url),
          [store.connectionString as string, A, S],
          { cwd: new URL("..", import.meta.url) },
        );
        const leased = (await child.next()) as { event: string; pid: number };
        expect(leased.event).toBe("leased");
        process.kill(leased.pid, "SIGKILL");
        await child.exited().catch(() => undefined);
        const row = async () =>
          (
            await store.query<{ tokens: string; reserved_tokens: string }>(sql`
              select tokens::text as tokens, reserved_tokens::text as reserved_tokens
              from gov_cost.sessions where agent_id = ${A} and session_id = ${S}`)
          )[0];
        expect(await row()).toEqual({ tokens: "150", reserved_tokens: "3300" });
        const sweeper = new CostModule(
          { store, audit: recordingAuditSink(), logger: recordingLogger(), halt: noopHaltGuard },
          { sweepIntervalMs: null, spoolDirectory: null },
        );
        expect(await sweeper.releaseExpired()).toBe(0); // not before it expires
        await sleep(1_600);
        expect(await sweeper.releaseExpired()).toBe(1);
        expect(await row()).toEqual({ tokens: "150", reserved_tokens: "0" });
        await sweeper.close();
      } finally {
        await store.close();
      }
    },
    60_000,
  );
});
