import { randomUUID } from "node:crypto";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { silentLogger, sql } from "@gov/core";
import { type TestEngine, testEngines } from "@gov/core/testing";
import { describe, expect, it } from "vitest";
import {
  type AuditHarness,
  eventually,
  flakyStore,
  recordingLogger,
  useAuditHarness,
} from "./__fixtures__";
import { normalizeEvent } from "./models";
import type { AuditModule } from "./module";
import { PLACEHOLDER_HMAC } from "./record";
import { AuditSpool, type SpoolEntry } from "./spool";

async function kindsOf(h: AuditHarness, sessionId: string): Promise<string[]> {
  return (await h.audit.getEvents({ sessionId })).map((event) => `${event.seq}:${event.kind}`);
}

describe.each(testEngines())(
  "the audit chain when the database is away, on $name",
  (engine: TestEngine) => {
    let logger: ReturnType<typeof recordingLogger>;
    const h = useAuditHarness(engine, () => {
      logger = recordingLogger();
      return { logger };
    });

    function flakyModule(): { audit: AuditModule; setDown(down: boolean): void } {
      const flaky = flakyStore(h.store);
      return { audit: h.another({ store: flaky.store }), setDown: flaky.setDown };
    }

    it.skipIf(!engine.available)(
      "spools events durably, marks where degradation began, and replays them in order",
      async () => {
        const { audit, setDown } = flakyModule();
        const before = await audit.log({ agentId: "a", kind: "before", sessionId: "s" });
        expect(before.status).toBe("stored");
        setDown(true);
        const spooled = [];
        for (const kind of ["during.1", "during.2", "during.3"])
          spooled.push(await audit.log({ agentId: "a", kind, sessionId: "s" }));
        expect(spooled.map((record) => [record.status, record.seq, record.isPlaceholder])).toEqual([
          ["spooled", null, false],
          ["spooled", null, false],
          ["spooled", null, false],
        ]);
        expect(audit.metrics()).toMatchObject({
          degraded: true,
          spooled: 3,
          spoolDepth: 4,
          placeholders: 0,
          lastError: { code: "STORE_CONNECTION" },
        });
        expect(
          logger.lines.some(
            (line) => line.level === "warn" && line.message.includes("local spool"),
          ),
        ).toBe(true);
        // The spool is on disk before log() resolves: a signed header, then one line per event.
        const files = await readdir(h.spoolDirectory);
        const lines = (await readFile(join(h.spoolDirectory, files[0] ?? ""), "utf8"))
          .trim()
          .split("\n")
          .map((line) => JSON.parse(line));
        expect(lines[0]).toMatchObject({ format: "gov.spool", spool: "audit" });
        expect(lines.slice(1).map((line) => [line.seq, line.entry.event.kind])).toEqual([
          [1, "chain.degraded_start"],
          [2, "during.1"],
          [3, "during.2"],
          [4, "during.3"],
        ]);

        setDown(false);
        await eventually(() => audit.metrics().spoolDepth === 0);
        const after = await audit.log({ agentId: "a", kind: "after", sessionId: "s" });
        expect(after).toMatchObject({ status: "stored", seq: 6 });
        expect(await kindsOf(h, "s")).toEqual([
          "1:before",
          "2:chain.degraded_start",
          "3:during.1",
          "4:during.2",
          "5:during.3",
          "6:after",
        ]);
        const [marker] = await h.audit.getEvents({ sessionId: "s", kind: "chain.degraded_start" });
        expect(marker?.metadata).toMatchObject({
          reason: expect.stringContaining("ECONNREFUSED"),
          since: spooled[0]?.createdAt.toISOString(),
        });
        // Spooled records keep their ids: the ids handed out while degraded are the ids in the chain.
        expect((await h.audit.getEvents({ sessionId: "s", kind: "during.2" }))[0]?.eventId).toBe(
          spooled[1]?.eventId,
        );
        expect(audit.metrics()).toMatchObject({ degraded: false, spoolDepth: 0, replayed: 4 });
        expect(await h.audit.verifyChain()).toBe(true);
      },
    );

    it.skipIf(!engine.available)(
      "replays on its own once the database is back, and tells subscribers then",
      async () => {
        const { audit, setDown } = flakyModule();
        const seen: string[] = [];
        audit.subscribe((record) => {
          seen.push(record.kind);
        });
        setDown(true);
        await audit.log({ agentId: "a", kind: "k1", sessionId: "s" });
        await audit.log({ agentId: "a", kind: "k2", sessionId: "other" });
        expect(seen).toEqual([]);
        setDown(false);
        await eventually(() => audit.metrics().spoolDepth === 0);
        expect(seen.sort()).toEqual(["chain.degraded_start", "chain.degraded_start", "k1", "k2"]);
        expect(await kindsOf(h, "other")).toEqual(["1:chain.degraded_start", "2:k2"]);
      },
    );

    it.skipIf(!engine.available)(
      "returns a visible placeholder when the spool cannot be written either",
      async () => {
        const flaky = flakyStore(h.store);
        const blocked = join(h.spoolDirectory, "not-a-directory");
        await writeFile(blocked, "a file where the spool directory should be");
        const audit = h.another({ store: flaky.store, audit: { spoolDirectory: blocked }, logger });
        flaky.setDown(true);
        const record = await audit.log({
          agentId: "a",
          kind: "lost",
          sessionId: "s",
          metadata: { n: 1 },
        });
        expect(record).toMatchObject({
          isPlaceholder: true,
          status: "placeholder",
          hmac: PLACEHOLDER_HMAC,
          metadata: { n: 1, "audit.unavailable": true },
        });
        expect(audit.metrics().placeholders).toBe(1);
        expect(
          logger.lines.some(
            (line) => line.level === "error" && line.message.includes("placeholders"),
          ),
        ).toBe(true);
      },
    );

    it.skipIf(!engine.available)(
      "returns a placeholder while down when no spool is configured",
      async () => {
        const flaky = flakyStore(h.store);
        const audit = h.another({ store: flaky.store, audit: { spoolDirectory: null } });
        flaky.setDown(true);
        expect((await audit.log({ agentId: "a", kind: "k" })).isPlaceholder).toBe(true);
        flaky.setDown(false);
        expect((await audit.log({ agentId: "a", kind: "k" })).status).toBe("stored");
      },
    );

    it.skipIf(!engine.available)(
      "adopts the spool of a process that stopped while degraded, and replays it",
      async () => {
        const { audit: first, setDown } = flakyModule();
        setDown(true);
        const lost = await first.log({ agentId: "a", kind: "while.down", sessionId: "s" });
        await first.close();
        const next = h.another();
        await next.start();
        await next.flush();
        await eventually(() => next.metrics().spoolDepth === 0);
        const events = await h.audit.getEvents({ sessionId: "s" });
        expect(events.map((event) => event.kind)).toEqual(["chain.degraded_start", "while.down"]);
        expect(events[1]?.eventId).toBe(lost.eventId);
        expect(await readdir(h.spoolDirectory)).toEqual([]);
      },
    );

    // A replay interrupted after its transaction committed but before the spool was trimmed
    // must not write those events twice.
    it.skipIf(!engine.available)("skips spooled events that are already in the chain", async () => {
      const stored = await h.audit.log({ agentId: "a", kind: "already", sessionId: "s" });
      const fresh = {
        v: 1,
        eventId: randomUUID(),
        chain: "s",
        createdAt: new Date().toISOString(),
        event: normalizeEvent({ agentId: "a", kind: "fresh", sessionId: "s" }),
      };
      const duplicate = {
        v: 1,
        eventId: stored.eventId,
        chain: "s",
        createdAt: stored.createdAt.toISOString(),
        event: normalizeEvent({ agentId: "a", kind: "already", sessionId: "s" }),
      };
      // Signed under the chain key by a process that is gone, with a torn last line.
      const elsewhere = await mkdtemp(join(tmpdir(), "gov-audit-elsewhere-"));
      const writer = new AuditSpool(elsewhere, silentLogger, { keyring: h.keyring });
      await writer.append([duplicate, fresh] as SpoolEntry[]);
      writer.release();
      const [written] = await readdir(elsewhere);
      const signed = await readFile(join(elsewhere, written as string), "utf8");
      await rm(elsewhere, { recursive: true, force: true });
      await mkdir(h.spoolDirectory, { recursive: true });
      await writeFile(
        join(h.spoolDirectory, `audit-spool-${hostname()}-${2 ** 22 + 4321}-abcd.jsonl`),
        `${signed}{"seq":3,"mac":"tor`,
      );
      const next = h.another({ logger });
      await next.start();
      await eventually(() => next.metrics().spoolDepth === 0);
      expect(await kindsOf(h, "s")).toEqual(["1:already", "2:fresh"]);
      expect(logger.lines.some((line) => line.message.includes("torn last line"))).toBe(true);
      expect(await h.audit.verifyChain()).toBe(true);
    });
  },
);

describe("the audit chain through a real outage (real Postgres)", () => {
  const engine = testEngines().find((candidate) => candidate.name === "postgres");

  it.skipIf(!engine?.available)(
    "keeps every event, in order, with the degraded marker, when the database goes away mid-load and comes back",
    async () => {
      const { createServer, connect } = await import("node:net");
      const { createStore, ChainKey, Keyring, silentLogger, systemClock } = await import(
        "@gov/core"
      );
      const { createTestDatabase } = await import("@gov/core/testing");
      const { AuditModule, auditMigrations } = await import("./module");
      const { mkdtemp, rm } = await import("node:fs/promises");
      const { tmpdir } = await import("node:os");
      const database = await createTestDatabase(engine as TestEngine, {
        migrations: [auditMigrations],
      });
      // A TCP proxy in front of Postgres that the test can take away and bring back.
      const sockets = new Set<import("node:net").Socket>();
      const proxy = createServer((client) => {
        const upstream = connect(Number(new URL(database.databaseUrl).port || 5432), "127.0.0.1");
        sockets.add(client);
        sockets.add(upstream);
        client.pipe(upstream).pipe(client);
        const drop = () => {
          client.destroy();
          upstream.destroy();
        };
        client.on("error", drop);
        upstream.on("error", drop);
        client.on("close", () => sockets.delete(client));
        upstream.on("close", () => sockets.delete(upstream));
      });
      await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
      const port = (proxy.address() as import("node:net").AddressInfo).port;
      const url = new URL(database.databaseUrl);
      url.host = `127.0.0.1:${port}`;
      const spoolDirectory = await mkdtemp(join(tmpdir(), "gov-audit-outage-"));
      const store = await createStore({
        databaseUrl: url.toString(),
        logger: silentLogger,
        pool: { max: 4, connectionTimeoutMs: 500 },
      });
      const audit = new AuditModule(
        {
          store,
          keyring: new Keyring(new ChainKey("outage-test-secret-0123456789-abcdefghij")),
          clock: systemClock,
          logger: silentLogger,
        },
        { spoolDirectory, retryIntervalMs: 50 },
      );
      try {
        const writers = Array.from({ length: 5 }, async (_, writer) => {
          const statuses: string[] = [];
          for (let index = 0; index < 200; index++) {
            const record = await audit.log({
              agentId: `agent-${writer}`,
              kind: "step",
              sessionId: `s-${writer}`,
              metadata: { index },
            });
            statuses.push(record.status);
            // Paced, so that the load is still running when the database goes away.
            await new Promise((resolve) => setTimeout(resolve, 3));
          }
          return statuses;
        });
        // Take the database away for a moment, mid-load.
        await eventually(() => audit.metrics().stored > 100);
        proxy.close();
        for (const socket of sockets) socket.destroy();
        await eventually(() => audit.metrics().spooled > 0);
        await new Promise((resolve) => setTimeout(resolve, 300));
        await new Promise<void>((resolve) => proxy.listen(port, "127.0.0.1", resolve));
        const statuses = (await Promise.all(writers)).flat();
        expect(statuses.filter((status) => status === "placeholder")).toEqual([]);
        expect(statuses.filter((status) => status === "spooled").length).toBeGreaterThan(0);
        await eventually(
          () => audit.metrics().spoolDepth === 0 && !audit.metrics().degraded,
          20_000,
        );
        for (let writer = 0; writer < 5; writer++) {
          const events = await audit.getEvents({ sessionId: `s-${writer}`, limit: 10_000 });
          const steps = events
            .filter((event) => event.kind === "step")
            .map((event) => event.metadata.index);
          expect(steps).toEqual(Array.from({ length: 200 }, (_, index) => index));
          expect(events.map((event) => event.seq)).toEqual(
            Array.from({ length: events.length }, (_, index) => index + 1),
          );
        }
        const markers = await audit.getEvents({ kind: "chain.degraded_start" });
        expect(markers.length).toBeGreaterThan(0);
        expect(await audit.verifyChain()).toBe(true);
        const [count] = await store.query<{ n: number }>(
          sql`select count(*)::int as n from gov_audit.events where kind = 'step'`,
        );
        expect(count?.n).toBe(1_000);
      } finally {
        await audit.close();
        await store.close();
        proxy.close();
        for (const socket of sockets) socket.destroy();
        await database.dispose();
        await rm(spoolDirectory, { recursive: true, force: true });
      }
    },
    120_000,
  );
});
