import { type Store, sql } from "@gov/core";
import { type TestEngine, testEngines } from "@gov/core/testing";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type GatesHarness, gatesHarness, thrown } from "./__fixtures__";
import { gatesModule } from "./definition";
import { ApprovalStoreError, ApprovalTimeout } from "./errors";
import { GatesModule } from "./module";

/** A store that counts its `listen` calls (the subscription `start()` makes). */
function countingListens(store: Store): { store: Store; listens: () => number } {
  let listens = 0;
  const counted = Object.create(store, {
    listen: {
      value: (...args: Parameters<Store["listen"]>) => {
        listens++;
        return store.listen(...args);
      },
    },
    notify: { value: store.notify.bind(store) },
    transaction: { value: store.transaction.bind(store) },
    query: { value: store.query.bind(store) },
  }) as Store;
  return { store: counted, listens: () => listens };
}

describe.each(testEngines())("lifecycle and renamed options on $name", (engine: TestEngine) => {
  let h: GatesHarness;

  beforeEach(async () => {
    if (engine.available) h = await gatesHarness(engine);
  });

  afterEach(async () => {
    await h?.close();
  });

  const context = (store: Store = h.store) => ({
    store,
    keyring: h.keyring,
    clock: h.clock,
    logger: h.logger,
    audit: h.audit,
  });

  it.skipIf(!engine.available)(
    "start() subscribes once, however often it is called; the constructor does no I/O",
    async () => {
      const counted = countingListens(h.store);
      const gates = new GatesModule(context(counted.store));
      expect(counted.listens()).toBe(0);
      await Promise.all([gates.start(), gates.start()]);
      await gates.start();
      expect(counted.listens()).toBe(1);
      await gates.close();
      await gates.close();
      // Not after close().
      await gates.start();
      expect(counted.listens()).toBe(1);
    },
  );

  it.skipIf(!engine.available)("with listen: false, start() subscribes to nothing", async () => {
    const counted = countingListens(h.store);
    const gates = new GatesModule(context(counted.store), { listen: false });
    await gates.start();
    expect(counted.listens()).toBe(0);
    await gates.close();
  });

  it.skipIf(!engine.available)(
    "gatesModule.create starts the module: a waiter wakes on the decision's NOTIFY",
    async () => {
      const counted = countingListens(h.store);
      const gates = await gatesModule.create(
        { ...context(counted.store), halt: { async assertAlive() {} } },
        { pollIntervalMs: 60_000 },
      );
      expect(counted.listens()).toBe(1);
      const request = await gates.request("deploy.production", "deploy-agent");
      const waiting = gates.waitFor(request.requestId, { timeoutMs: 30_000 });
      await new Promise((resolve) => setTimeout(resolve, 100));
      await h.gates.grant(request.token, { reviewerId: "bob" });
      // Polling is a minute away: only the notification can wake it in time.
      expect(await waiting).toBe(true);
      await gatesModule.close?.(gates);
    },
  );

  it.skipIf(!engine.available)(
    "waitFor on a module that was not started polls, and says once how to start it",
    async () => {
      const counted = countingListens(h.store);
      const gates = new GatesModule(context(counted.store), { pollIntervalMs: 50 });
      const request = await gates.request("deploy.production", "deploy-agent");
      await h.gates.grant(request.token, { reviewerId: "bob" });
      expect(await gates.waitFor(request.requestId, { timeoutMs: 30_000 })).toBe(true);
      expect(await gates.waitFor(request.requestId, { timeoutMs: 0 })).toBe(true);
      expect(counted.listens()).toBe(0);
      const warnings = h.logger.lines.filter((line) => line.message.includes("not started"));
      expect(warnings).toHaveLength(1);
      expect(warnings[0]?.message).toContain("gates.start()");
      await gates.close();
    },
  );

  it.skipIf(!engine.available)(
    "close() makes waiters fail closed and refuses new decisions; Symbol.asyncDispose closes",
    async () => {
      const gates = new GatesModule(context());
      await gates.start();
      const request = await gates.request("deploy.production", "deploy-agent");
      const waiting = thrown(() => gates.waitFor(request.requestId, { timeoutMs: 30_000 }));
      await new Promise((resolve) => setTimeout(resolve, 100));
      await gates[Symbol.asyncDispose]();
      expect(ApprovalStoreError.isInstance(await waiting)).toBe(true);
      const refused = await thrown(() => gates.grant(request.token, { reviewerId: "bob" }));
      expect(ApprovalStoreError.isInstance(refused)).toBe(true);
    },
  );

  // The renamed options keep their README names as deprecated aliases.
  it.skipIf(!engine.available)(
    "deprecated expiresIn and defaultExpiresIn still set the expiry, in ms",
    async () => {
      const byAlias = await h.gates.request("deploy.production", "deploy-agent", {
        expiresIn: 60_000,
      });
      expect(byAlias.expiresAt.getTime() - byAlias.createdAt.getTime()).toBe(60_000);
      const byName = await h.gates.request("deploy.production", "deploy-agent", {
        expiresInMs: 60_000,
      });
      expect(byName.expiresAt.getTime() - byName.createdAt.getTime()).toBe(60_000);
      for (const options of [{ defaultExpiresIn: 120_000 }, { defaultExpiresInMs: 120_000 }]) {
        const gates = h.another({ gates: options });
        const request = await gates.request("deploy.production", "deploy-agent");
        expect(request.expiresAt.getTime() - request.createdAt.getTime()).toBe(120_000);
      }
    },
  );

  it.skipIf(!engine.available)(
    "deprecated timeout still bounds waitFor and requireApproval, in ms",
    async () => {
      const request = await h.gates.request("deploy.production", "deploy-agent");
      const waited = await thrown(() => h.gates.waitFor(request.requestId, { timeout: 100 }));
      expect(ApprovalTimeout.isInstance(waited)).toBe(true);
      expect((waited as ApprovalTimeout).timeoutMs).toBe(100);
      const guarded = h.gates.requireApproval(
        { kind: "refund.issue", agentId: "billing-agent", timeout: 100, expiresIn: 60_000 },
        async () => "ran",
      );
      const refused = await thrown(() => guarded());
      expect(ApprovalTimeout.isInstance(refused)).toBe(true);
      expect((refused as ApprovalTimeout).timeoutMs).toBe(100);
      const [row] = await h.store.query<{ seconds: number }>(sql`
        select extract(epoch from expires_at - created_at)::int as seconds
        from gov_gates.requests where kind = 'refund.issue'`);
      expect(row?.seconds).toBe(60);
    },
  );
});
