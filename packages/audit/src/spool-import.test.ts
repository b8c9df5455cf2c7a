import { randomUUID } from "node:crypto";
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { ChainKey, Keyring, type Store } from "@gov/core";
import { type TestEngine, testEngines } from "@gov/core/testing";
import { describe, expect, it } from "vitest";
import {
  eventually,
  flakyStore,
  recordingLogger,
  SECRET_A,
  SECRET_B,
  useAuditHarness,
} from "./__fixtures__";
import { normalizeEvent } from "./models";
import type { AuditModule } from "./module";
import { KEY_ROTATION_GRACE_MS } from "./rotation-record";
import { AuditSpool, type SpoolEntry } from "./spool";

const KEY_A = new ChainKey(SECRET_A);
const KEY_B = new ChainKey(SECRET_B);
/** A pid that no process has (above the kernel's maximum). */
const DEAD_PID = 2 ** 22 + 777;

describe.each(testEngines())(
  "what the audit spool replays, and explicit imports, on $name",
  (engine: TestEngine) => {
    let logger: ReturnType<typeof recordingLogger>;
    const h = useAuditHarness(engine, () => {
      logger = recordingLogger();
      return { logger };
    });

    const log = (sessionId: string, kind = "tool.call") => {
      h.clock.advance(1_000);
      return h.audit.log({ agentId: "billing-agent", kind, sessionId });
    };

    const entry = (overrides: Partial<SpoolEntry> & { kind?: string } = {}): SpoolEntry => ({
      v: 1,
      eventId: randomUUID(),
      chain: "victim",
      createdAt: h.clock.now().toISOString(),
      event: normalizeEvent({
        agentId: "billing-agent",
        kind: overrides.kind ?? "refund.approved",
        sessionId: "victim",
        metadata: { amount: 50_000 },
      }),
      ...overrides,
    });

    /** A spool file written with `keyring`, put in the spool directory under a dead pid of `host`. */
    async function plant(
      entries: SpoolEntry[],
      keyring: Keyring,
      options: { host?: string; close?: boolean } = {},
    ): Promise<string> {
      const elsewhere = await mkdtemp(join(tmpdir(), "gov-audit-plant-"));
      const writer = new AuditSpool(elsewhere, recordingLogger(), { keyring });
      await writer.append(entries);
      if (options.close) await writer.close();
      else writer.release();
      const [name] = await readdir(elsewhere);
      await mkdir(h.spoolDirectory, { recursive: true });
      const path = join(
        h.spoolDirectory,
        `audit-spool-${options.host ?? hostname()}-${DEAD_PID}-${randomUUID().slice(0, 8)}.jsonl`,
      );
      await copyFile(join(elsewhere, name as string), path);
      await rm(elsewhere, { recursive: true, force: true });
      return path;
    }

    /** Rotate A → B, then write under B, and checkpoint. */
    async function rotate(): Promise<Date> {
      await log("victim");
      await log("victim");
      const rotatedAt = h.clock.now();
      await h.audit.rotateChainKey({ newKey: SECRET_B, operatorId: "ops", reason: "A leaked" });
      h.clock.advance(KEY_ROTATION_GRACE_MS + 60_000);
      await log("victim");
      await h.audit.checkpoint();
      return rotatedAt;
    }

    const kindsOf = async (sessionId: string) =>
      (await h.audit.getEvents({ sessionId })).map((event) => event.kind);
    const rejectedFiles = async () =>
      (await readdir(h.spoolDirectory)).filter((file) => file.startsWith("rejected-"));

    /** The restarted process of the rotation procedure: B current, A kept to verify with. */
    async function restart(store: Store = h.store): Promise<AuditModule> {
      h.clock.advance(7_200_000);
      const restarted = h.another({ keyring: new Keyring(KEY_B, [KEY_A]), store, logger });
      await restarted.start();
      return restarted;
    }

    // Guards against: a holder of a RETIRED key who can write the spool directory getting rows
    // dated after the rotation into the chain (signed with the current key) through a planted
    // spool file — with the database reachable at start, and with it away at start (the
    // rotation history unknown when the file is adopted).
    it.skipIf(!engine.available).each([
      { name: "the database reachable at start", downAtStart: false },
      { name: "the database away at start", downAtStart: true },
    ])(
      "does not replay a spool file signed with a retired key ($name): set aside and recorded",
      async ({ downAtStart }) => {
        const rotatedAt = await rotate();
        const forged = entry({
          createdAt: new Date(rotatedAt.getTime() + 3_600_000).toISOString(),
        });
        const planted = await plant([forged], new Keyring(KEY_A));
        const plantedText = await readFile(planted, "utf8");
        const flaky = flakyStore(h.store);
        flaky.setDown(downAtStart);
        const restarted = await restart(flaky.store);
        flaky.setDown(false);
        await eventually(() => restarted.metrics().spoolRejections === 1, 30_000);
        await eventually(() => restarted.metrics().spoolDepth === 0, 30_000);
        await restarted.flush();

        expect(await h.audit.getEvents({ kind: "refund.approved" })).toEqual([]);
        const [rejected] = await h.audit.getEvents({ kind: "audit.spool_rejected" });
        expect(rejected?.metadata).toMatchObject({ keyId: KEY_A.id, line: 1, proven: 0 });
        expect(String(rejected?.metadata.reason)).toContain(`retired key ${KEY_A.id}`);
        const kept = await rejectedFiles();
        expect(kept).toEqual([rejected?.metadata.keptAs]);
        const keptText = await readFile(join(h.spoolDirectory, kept[0] as string), "utf8");
        // Adopted before the history was known, it was closed (rewritten) — under its own key.
        if (downAtStart) {
          expect(JSON.parse(keptText.split("\n")[0] as string)).toMatchObject({ keyId: KEY_A.id });
          expect(keptText).toContain(forged.eventId);
        } else expect(keptText).toBe(plantedText);
        expect(await restarted.verifyChain()).toBe(true);
      },
    );

    // Guards against: a replay writing a file of a key whose status it does not know yet (the
    // rotation history unreadable while the rows can be written: a brief outage, a revoked grant).
    it.skipIf(!engine.available)(
      "writes nothing of the spool until it could read the rotation history",
      async () => {
        const rotatedAt = await rotate();
        const forged = entry({
          createdAt: new Date(rotatedAt.getTime() + 3_600_000).toISOString(),
        });
        await plant([forged], new Keyring(KEY_A));
        let historyReadable = false;
        const refusals = { count: 0 };
        const store: Store = Object.create(h.store, {
          query: {
            value: (query: Parameters<Store["query"]>[0]) => {
              if (!historyReadable && JSON.stringify(query).includes("gov_audit.key_rotations")) {
                refusals.count++;
                return Promise.reject(new Error("permission denied for table key_rotations"));
              }
              return h.store.query(query);
            },
          },
          transaction: {
            value: (...args: Parameters<Store["transaction"]>) => h.store.transaction(...args),
          },
        });
        const restarted = await restart(store);
        // A replay is tried (the history with it), and writes nothing.
        const forgedRows = () => h.audit.getEvents({ kind: "refund.approved" });
        await eventually(
          async () =>
            refusals.count >= 2 &&
            ((await forgedRows()).length > 0 ||
              restarted.metrics().lastError?.message.includes("key_rotations") === true),
          30_000,
        );
        expect(await forgedRows()).toEqual([]);
        expect(restarted.metrics()).toMatchObject({ degraded: true, spoolRejections: 0 });
        historyReadable = true;
        await eventually(() => restarted.metrics().spoolRejections === 1, 30_000);
        await eventually(() => restarted.metrics().spoolDepth === 0, 30_000);
        await restarted.flush();
        expect(await h.audit.getEvents({ kind: "refund.approved" })).toEqual([]);
        expect(await restarted.verifyChain()).toBe(true);
      },
    );

    // The legitimate case: a process that never learned of the rotation spools under the
    // retired key (the database refuses its rows); after the restart an operator who knows
    // where the file comes from imports it, and the chain says who did and why.
    it.skipIf(!engine.available)(
      "keeps a stale process's spool for an operator to import with the retired key accepted, and records the import",
      async () => {
        await rotate();
        const stale = h.another({ keyring: new Keyring(KEY_A), logger });
        const spooled = await stale.log({ agentId: "billing-agent", kind: "late", sessionId: "s" });
        expect(spooled.status).toBe("spooled");
        await stale.close();
        const restarted = await restart();
        await eventually(() => restarted.metrics().spoolRejections === 1, 30_000);
        await restarted.flush();
        expect(await kindsOf("s")).toEqual([]);
        const [kept] = await rejectedFiles();
        const path = join(h.spoolDirectory, kept as string);

        // Without saying so, the retired key is refused, and nothing is recorded.
        await expect(
          restarted.importSpool(path, { operatorId: "ops@example.com", reason: "stale writer" }),
        ).rejects.toMatchObject({ code: "SPOOL_FILE_REFUSED", line: 1 });
        expect(await h.audit.getEvents({ kind: "audit.spool_imported" })).toEqual([]);

        const result = await restarted.importSpool(path, {
          operatorId: "ops@example.com",
          reason: "worker-7 ran on the old key until its restart",
          acceptRetiredKey: true,
        });
        expect(result).toMatchObject({
          entries: 2,
          keyId: KEY_A.id,
          retiredKey: true,
          signed: true,
          sha256: expect.stringMatching(/^[0-9a-f]{64}$/),
        });
        await eventually(() => restarted.metrics().spoolDepth === 0, 30_000);
        await restarted.flush();
        expect(await kindsOf("s")).toEqual(["chain.degraded_start", "late"]);
        const [late] = await h.audit.getEvents({ kind: "late" });
        expect(late).toMatchObject({ eventId: spooled.eventId, keyId: KEY_B.id });
        const [imported] = await h.audit.getEvents({ kind: "audit.spool_imported" });
        expect(imported).toMatchObject({ agentId: "gov.audit", eventId: result.importEventId });
        expect(imported?.metadata).toMatchObject({
          file: kept,
          sha256: result.sha256,
          keyId: KEY_A.id,
          retiredKey: true,
          signed: true,
          entries: 2,
          operatorId: "ops@example.com",
          reason: "worker-7 ran on the old key until its restart",
        });
        expect(await restarted.verifyChain()).toBe(true);
        // Importing again writes nothing twice.
        await restarted.importSpool(path, {
          operatorId: "ops@example.com",
          reason: "again",
          acceptRetiredKey: true,
        });
        await eventually(() => restarted.metrics().spoolDepth === 0, 30_000);
        await restarted.flush();
        expect(await kindsOf("s")).toEqual(["chain.degraded_start", "late"]);
      },
    );

    // Guards against: the previous version's unsigned spool being stranded on upgrade with no way
    // to replay it but editing files by hand — and against replaying it unasked.
    it.skipIf(!engine.available)(
      "imports an unsigned spool of the previous version only when told to, and records who did",
      async () => {
        const legacy = entry({ chain: "s", kind: "legacy.event" });
        legacy.event = normalizeEvent({ agentId: "a", kind: "legacy.event", sessionId: "s" });
        await mkdir(h.spoolDirectory, { recursive: true });
        await writeFile(
          join(h.spoolDirectory, `audit-spool-${hostname()}-${DEAD_PID}-0a0b0c0d.jsonl`),
          `${JSON.stringify(legacy)}\n`,
        );
        const next = h.another({ logger });
        await next.start();
        await eventually(() => next.metrics().spoolRejections === 1, 30_000);
        await next.flush();
        expect(await kindsOf("s")).toEqual([]);
        const [rejected] = await h.audit.getEvents({ kind: "audit.spool_rejected" });
        expect(String(rejected?.metadata.reason)).toContain("unsigned");
        const path = join(h.spoolDirectory, String(rejected?.metadata.keptAs));
        await expect(
          next.importSpool(path, { operatorId: "ops", reason: "upgrade" }),
        ).rejects.toMatchObject({
          code: "SPOOL_FILE_REFUSED",
          reason: expect.stringContaining("unsigned"),
        });
        const result = await next.importSpool(path, {
          operatorId: "ops",
          reason: "spool left by 0.x at the upgrade",
          acceptUnsigned: true,
        });
        expect(result).toMatchObject({ entries: 1, signed: false, keyId: null, retiredKey: false });
        await eventually(() => next.metrics().spoolDepth === 0, 30_000);
        await next.flush();
        expect(await kindsOf("s")).toEqual(["legacy.event"]);
        const [imported] = await h.audit.getEvents({ kind: "audit.spool_imported" });
        expect(imported?.metadata).toMatchObject({ signed: false, operatorId: "ops", entries: 1 });
        expect(await h.audit.verifyChain()).toBe(true);
      },
    );

    // Guards against: an import writing what is not an audit event, or half a file.
    it.skipIf(!engine.available)(
      "refuses to import a file with anything that is not an audit spool entry, and writes nothing",
      async () => {
        const good = entry({ chain: "s" });
        good.event = normalizeEvent({ agentId: "a", kind: "good", sessionId: "s" });
        const variants: [string, unknown][] = [
          ["not an object", 42],
          ["an unknown version", { ...good, v: 2 }],
          ["a bad event id", { ...good, eventId: "nope" }],
          ["a bad date", { ...good, createdAt: "yesterday" }],
          ["a chain that is not its event's", { ...good, chain: "other" }],
          ["an event that does not validate", { ...good, event: { ...good.event, agentId: "" } }],
          ["an event that is not normalized", { ...good, event: { ...good.event, extra: 1 } }],
        ];
        for (const [name, bad] of variants) {
          const path = join(h.spoolDirectory, "..", `import-${randomUUID()}.jsonl`);
          await writeFile(path, `${JSON.stringify(good)}\n${JSON.stringify(bad)}\n`);
          const error = await h.audit
            .importSpool(path, { operatorId: "ops", reason: "test", acceptUnsigned: true })
            .then(
              () => null,
              (caught: { code?: string; reason?: string }) => caught,
            );
          expect(error, name).toMatchObject({ code: "SPOOL_FILE_REFUSED" });
          expect(error?.reason, name).toContain("entry 2");
          await rm(path);
        }
        await h.audit.flush();
        expect(await h.audit.getEvents({ kind: "audit.spool_imported" })).toEqual([]);
        expect(await kindsOf("s")).toEqual([]);
        expect(h.audit.metrics().spoolDepth).toBe(0);
      },
    );

    it.skipIf(!engine.available)(
      "rejects bad arguments to importSpool instead of throwing",
      async () => {
        for (const [call, field] of [
          [() => h.audit.importSpool(42 as never, { operatorId: "o", reason: "r" }), "path"],
          [() => h.audit.importSpool("x.jsonl", null as never), "options"],
          [() => h.audit.importSpool("x.jsonl", { operatorId: "", reason: "r" }), "operatorId"],
          [() => h.audit.importSpool("x.jsonl", { operatorId: "o" } as never), "reason"],
          [
            () =>
              h.audit.importSpool("x.jsonl", {
                operatorId: "o",
                reason: "r",
                acceptRetiredKey: "yes" as never,
              }),
            "acceptRetiredKey",
          ],
        ] as const) {
          let promise: Promise<unknown> | undefined;
          expect(() => {
            promise = call();
          }).not.toThrow();
          await expect(promise, field).rejects.toMatchObject({ code: "INVALID_ARGUMENT", field });
        }
        const unspooled = h.another({ audit: { spoolDirectory: null } });
        await expect(
          unspooled.importSpool("x.jsonl", { operatorId: "o", reason: "r" }),
        ).rejects.toMatchObject({ code: "AUDIT_NOT_CONFIGURED" });
      },
    );

    // Guards against: spool files stranded without a word when a container is recreated on the
    // same volume under a new host name.
    it.skipIf(!engine.available)(
      "records spool files of other hosts at start, and adopts them when told their host is gone",
      async () => {
        const stranded = entry({ chain: "s" });
        stranded.event = normalizeEvent({ agentId: "a", kind: "stranded", sessionId: "s" });
        await plant([stranded], h.keyring, { host: "old-container-1", close: true });
        const next = h.another({ logger });
        await next.start();
        await next.flush();
        const [event] = await h.audit.getEvents({ kind: "audit.spool_stranded" });
        expect(event?.metadata).toMatchObject({
          spool: "audit",
          files: 1,
          hosts: [{ host: "old-container-1", files: 1 }],
        });
        expect(
          logger.lines.some(
            (line) => line.level === "warn" && line.message.includes("old-container-1"),
          ),
        ).toBe(true);
        expect(await kindsOf("s")).toEqual([]);
        const adopting = h.another({ logger, audit: { spoolAdoptHosts: ["old-container-1"] } });
        await adopting.start();
        await eventually(() => adopting.metrics().spoolDepth === 0, 30_000);
        await adopting.flush();
        expect(await kindsOf("s")).toEqual(["stranded"]);
      },
    );

    it.skipIf(!engine.available)("refuses spoolAdoptHosts that are not host names", () => {
      expect(() => h.another({ audit: { spoolAdoptHosts: ["a/b"] } })).toThrow(/spoolAdoptHosts/);
    });
  },
);
