/**
 * Budget leases (`lease` option): the checks of a session admitted locally in a lease held in
 * the database, each call's usage releasing its part, what is left released when the lease
 * ends — and the caps holding across processes as they do with one reservation per call.
 */
import { InvalidArgumentError } from "@gov/core";
import { type TestEngine, testEngines } from "@gov/core/testing";
import { afterEach, describe, expect, it } from "vitest";
import { type CostHarness, costHarness, rejection } from "./__fixtures__";
import { leaseRowsOf, leasingModules, reservedTokensOf } from "./__fixtures__/leases";
import { BudgetExceeded } from "./errors";
import { CostModule } from "./module";

const A = "billing-agent";
const S = "session-1";
const USAGE = { model: "gpt-4o", inputTokens: 100, outputTokens: 50 }; // 150 tokens
const WORST = { model: "gpt-4o", inputTokens: 100, maxTokens: 1000 }; // 1,100 tokens

async function until(condition: () => Promise<boolean> | boolean): Promise<void> {
  for (let turn = 0; turn < 500; turn++) {
    if (await condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  expect(await condition()).toBe(true);
}

describe.each(testEngines())("budget leases on $name", (engine: TestEngine) => {
  let h: CostHarness;
  const modules = leasingModules(() => h, { lease: { calls: 4 } });
  const leasing = modules.leasing;
  const setup = async () => {
    h = await costHarness(engine);
  };
  afterEach(async () => {
    if (!engine.available) return;
    await modules.close();
    await h.close();
  });
  const reservedTokens = () => reservedTokensOf(h, A, S);
  const leaseRows = async () => (await leaseRowsOf(h)).map((row) => Number(row.tokens));

  // Guards against: a round trip per check with leases on (the point of a lease), or usage that
  // does not release its call's part of the lease (budget held twice).
  it.skipIf(!engine.available)(
    "admits the checks that fit in the lease without a round trip; each usage releases its part",
    async () => {
      await setup();
      const { cost, counts } = leasing();
      cost.register({ agentId: A, perSessionTokens: 100_000 });
      const calls = [];
      for (let call = 0; call < 4; call++) calls.push(await cost.checkOrRaise(A, S, WORST));
      expect(counts).toMatchObject({ lease: 1, reserve: 0 });
      expect(cost.metrics()).toMatchObject({ leasesOpened: 1, leaseAdmissions: 4, passed: 4 });
      expect(new Set(calls.map((call) => call.reservationId)).size).toBe(4);
      expect(await reservedTokens()).toBe(4_400);
      for (const call of calls.slice(0, 2))
        await cost.trackUsage(A, S, { ...USAGE, reservationId: call.reservationId });
      expect(await h.sessionRow(A, S)).toMatchObject({ tokens: "300", reserved_tokens: "2200" });
      expect(await leaseRows()).toEqual([2_200]);
      // No room left: a new lease; the old one ends when its last calls are settled.
      await cost.checkOrRaise(A, S, WORST);
      expect(counts.lease).toBe(2);
      expect(await reservedTokens()).toBe(2_200 + 4_400);
      for (const call of calls.slice(2))
        await cost.trackUsage(A, S, { ...USAGE, reservationId: call.reservationId });
      await until(async () => (await leaseRows()).length === 1);
      expect(await h.sessionRow(A, S)).toMatchObject({ tokens: "600", reserved_tokens: "4400" });
    },
  );

  // Guards against: a lease that makes a check fail which one reservation would pass.
  it.skipIf(!engine.available)(
    "near a cap, where no lease fits, reserves one call at a time in the same round trip",
    async () => {
      await setup();
      const { cost, counts } = leasing();
      cost.register({ agentId: A, perSessionTokens: 3_000 });
      expect((await cost.checkOrRaise(A, S, WORST)).reservationId).not.toBeNull();
      expect((await cost.checkOrRaise(A, S, WORST)).reservationId).not.toBeNull();
      expect(counts).toMatchObject({ lease: 1, reserve: 1 });
      expect(await leaseRows()).toEqual([]);
      const error = await rejection(cost.checkOrRaise(A, S, WORST));
      expect(error).toBeInstanceOf(BudgetExceeded);
      expect(error).toMatchObject({ cap: "perSessionTokens", used: 2_200, limit: 3_000 });
      expect(h.audit.events.filter((event) => event.kind === "budget.exceeded")).toHaveLength(1);
    },
  );

  // Guards against: leases of several processes jointly passing a cap (each admits locally).
  it.skipIf(!engine.available)(
    "checks of two processes with leases never jointly pass a cap",
    async () => {
      await setup();
      const processes = [leasing(), leasing()];
      for (const { cost } of processes) cost.register({ agentId: A, perSessionTokens: 10_000 });
      const outcomes = await Promise.allSettled(
        Array.from({ length: 24 }, (_, index) =>
          (processes[index % 2] as (typeof processes)[number]).cost.checkOrRaise(A, S, WORST),
        ),
      );
      const passed = outcomes.filter((outcome) => outcome.status === "fulfilled").length;
      expect(passed * 1_100).toBeLessThanOrEqual(10_000);
      expect(passed).toBeGreaterThanOrEqual(4);
      for (const outcome of outcomes)
        if (outcome.status === "rejected") expect(outcome.reason).toBeInstanceOf(BudgetExceeded);
      expect(await reservedTokens()).toBeLessThanOrEqual(10_000);
    },
  );

  // Guards against: a call never made keeping its part of the lease, or release() sending a
  // share to the database (where no reservation has its id).
  it.skipIf(!engine.available)("a released share goes back to its lease", async () => {
    await setup();
    const { cost, counts } = leasing({ lease: { calls: 2 } });
    cost.register({ agentId: A, perSessionTokens: 100_000 });
    const first = await cost.checkOrRaise(A, S, WORST);
    await cost.checkOrRaise(A, S, WORST);
    expect(await cost.release(first.reservationId as string)).toBe(1);
    await cost.checkOrRaise(A, S, WORST); // in the room the release gave back
    expect(counts).toMatchObject({ lease: 1, reserve: 0 });
    expect(cost.metrics().leaseAdmissions).toBe(3);
  });

  // Guards against: budget held by a lease nobody uses any more.
  it.skipIf(!engine.available)(
    "what is left of a lease is released when it is idle, and at close",
    async () => {
      await setup();
      const idle = leasing({ lease: { calls: 4, idleMs: 20 } });
      idle.cost.register({ agentId: A, perSessionTokens: 100_000 });
      const call = await idle.cost.checkOrRaise(A, S, WORST);
      await idle.cost.trackUsage(A, S, { ...USAGE, reservationId: call.reservationId });
      await until(async () => (await reservedTokens()) === 0);
      expect(await leaseRows()).toEqual([]);

      const closing = leasing({ lease: { calls: 4, idleMs: 600_000 } });
      closing.cost.register({ agentId: A, perSessionTokens: 100_000 });
      const other = await closing.cost.checkOrRaise(A, S, WORST);
      await closing.cost.trackUsage(A, S, { ...USAGE, reservationId: other.reservationId });
      expect(await reservedTokens()).toBe(3_300);
      await closing.cost.close();
      expect(await reservedTokens()).toBe(0);
      expect(await h.sessionRow(A, S)).toMatchObject({ tokens: "300" });
    },
  );

  // Guards against: a policy change admitting calls in a lease taken under the old policy.
  it.skipIf(!engine.available)("a new policy ends the agent's leases", async () => {
    await setup();
    const { cost, counts } = leasing({ lease: { calls: 4, idleMs: 600_000 } });
    cost.register({ agentId: A, perSessionTokens: 100_000 });
    const call = await cost.checkOrRaise(A, S, WORST);
    cost.register({ agentId: A, perSessionTokens: 2_000 });
    await cost.trackUsage(A, S, { ...USAGE, reservationId: call.reservationId });
    await until(async () => (await leaseRows()).length === 0);
    await cost.checkOrRaise(A, S, WORST); // 150 + 1,100 ≤ 2,000: its own reservation
    expect(counts).toMatchObject({ lease: 2, reserve: 0 });
    expect(await leaseRows()).toEqual([]);
    expect(await rejection(cost.checkOrRaise(A, S, WORST))).toBeInstanceOf(BudgetExceeded);
  });

  // Guards against: a usage that names no reservation settling (deleting) a lease whose calls
  // are still running, or a share's usage counted twice.
  it.skipIf(!engine.available)(
    "a lease is never matched to a usage that names no reservation; a share counts once",
    async () => {
      await setup();
      const { cost } = leasing();
      cost.register({ agentId: A, perSessionTokens: 100_000 });
      const call = await cost.checkOrRaise(A, S, WORST);
      await cost.trackUsage(A, S, USAGE); // names no reservation
      expect(await leaseRows()).toEqual([4_400]);
      const first = await cost.trackUsage(A, S, { ...USAGE, reservationId: call.reservationId });
      const again = await cost.trackUsage(A, S, { ...USAGE, reservationId: call.reservationId });
      expect([first.recorded, again.recorded]).toEqual([true, false]);
      expect(await h.sessionRow(A, S)).toMatchObject({ tokens: "300", reserved_tokens: "3300" });
    },
  );

  // Guards against: a lease of a process that died holding budget forever.
  it.skipIf(!engine.available)(
    "a lease whose process is gone is released by the sweep when it expires",
    async () => {
      await setup();
      const { cost } = leasing({ reservationTtlMs: 1_000 });
      cost.register({ agentId: A, perSessionTokens: 100_000 });
      await cost.checkOrRaise(A, S, WORST);
      expect(await reservedTokens()).toBe(4_400);
      // A lease is held for one and a half reservationTtlMs (it admits calls for half of it).
      await new Promise((resolve) => setTimeout(resolve, 1_600));
      const sweeper = new CostModule(
        { store: h.store, audit: h.audit, logger: h.logger, halt: h.halt, clock: h.clock },
        { sweepIntervalMs: null, spoolDirectory: null },
      );
      modules.adopt(sweeper);
      expect(await sweeper.releaseExpired()).toBe(1);
      expect(await reservedTokens()).toBe(0);
    },
  );

  // Guards against: calls admitted locally past the session's time cap.
  it.skipIf(!engine.available)("the session's time cap is checked by the database", async () => {
    await setup();
    const { cost, counts } = leasing();
    cost.register({ agentId: A, perSessionSeconds: 1, perSessionTokens: 100_000 });
    await cost.checkOrRaise(A, S, WORST);
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    const error = await rejection(cost.checkOrRaise(A, S, WORST));
    expect(error).toMatchObject({ cap: "perSessionSeconds" });
    expect(counts.lease).toBe(2);
  });

  it.skipIf(!engine.available)("refuses a lease option out of range, naming it", async () => {
    await setup();
    const error = await rejection(Promise.resolve().then(() => leasing({ lease: { calls: 1 } })));
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect(error).toMatchObject({ field: "options.lease.calls" });
  });
});
