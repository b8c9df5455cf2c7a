import { randomUUID } from "node:crypto";
import { copyFile, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { DurableSpool, silentLogger, sql } from "@gov/core";
import { recordingLogger, type TestEngine, testEngines } from "@gov/core/testing";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type CostHarness, costHarness, testKeyring } from "./__fixtures__";
import { CostModule } from "./module";
import type { CostOptions } from "./options";

const A = "billing-agent";

describe.each(testEngines())("the durable usage spool on $name", (engine: TestEngine) => {
  let h: CostHarness;
  let directory: string;

  beforeEach(async () => {
    directory = await mkdtemp(join(tmpdir(), "gov-cost-spool-"));
    if (engine.available) h = await costHarness(engine, { spoolDirectory: directory });
  });

  afterEach(async () => {
    await h?.close();
    await rm(directory, { recursive: true, force: true });
  });

  /** The module of the next process to start on the same spool directory and keys. */
  const nextProcess = (logger: ReturnType<typeof recordingLogger>, options: CostOptions = {}) =>
    new CostModule(
      {
        store: h.store,
        logger,
        audit: h.audit,
        halt: h.halt,
        clock: h.clock,
        keyring: testKeyring,
      },
      { sweepIntervalMs: null, spoolDirectory: directory, ...options },
    );

  const spoolFiles = async () =>
    (await readdir(directory)).filter((name) => name.endsWith(".jsonl"));

  it.skipIf(!engine.available)(
    "usage recorded while the store is down is fsynced to the spool and replayed once it is back",
    async () => {
      h.setDown(true);
      const receipt = await h.cost.track(A, "s-1", { tokens: 100, usd: "0.25", model: "gpt-4o" });
      expect(receipt).toMatchObject({ recorded: false, queued: true });
      const [file, ...others] = await spoolFiles();
      expect(others).toEqual([]);
      // A signed header, then the record, signed and chained to it.
      const [header, line] = (await readFile(join(directory, file as string), "utf8"))
        .trim()
        .split("\n")
        .map((text) => JSON.parse(text));
      expect(header).toMatchObject({
        format: "gov.spool",
        spool: "cost",
        keyId: testKeyring.current.id,
      });
      expect(line).toMatchObject({
        seq: 1,
        mac: expect.stringMatching(/^[0-9a-f]{64}$/),
        entry: {
          v: 2,
          item: {
            usageId: receipt.usageId,
            agentId: A,
            sessionId: "s-1",
            usd: "0.25",
            tokens: "100",
          },
        },
      });
      expect(h.cost.metrics().backlog).toBe(1);
      expect(h.logger.lines.some((entry) => entry.message.includes("spooled to disk"))).toBe(true);
      h.setDown(false);
      expect(await h.cost.flush()).toBe(0);
      expect(await h.sessionRow(A, "s-1")).toMatchObject({
        usd: "0.250000000000000",
        tokens: "100",
      });
      expect(await spoolFiles()).toEqual([]);
    },
  );

  it.skipIf(!engine.available)(
    "the spool of a process that died is adopted by the next one and replayed once — twice is recognized",
    async () => {
      h.setDown(true);
      const first = await h.cost.track(A, "s-1", { tokens: 1, usd: "0.1" });
      const second = await h.cost.track(A, "s-1", { tokens: 2, usd: "0.2" });
      const [file] = await spoolFiles();
      const text = await readFile(join(directory, file as string), "utf8");
      const lines = text.trim().split("\n");
      expect(lines).toHaveLength(3); // the header and two records
      h.setDown(false);
      // The first record reached the database before the process died (a replay after a
      // crash between writing and dropping it), the second did not.
      await h.cost.flush();
      const orphan = join(directory, `cost-spool-${hostname()}-${2 ** 22 + 4321}-abcd.jsonl`);
      await writeFile(orphan, `${lines.join("\n")}\n{"seq":3,"mac":"tor`);
      const logger = recordingLogger();
      const next = nextProcess(logger);
      await next.start();
      expect(
        logger.lines.some((entry) => entry.message.includes("Adopted 2 spooled usage records")),
      ).toBe(true);
      expect(await next.flush()).toBe(0);
      expect(next.metrics()).toMatchObject({ usageDuplicates: 2, usageRecorded: 0 });
      expect(logger.lines.some((entry) => entry.message.includes("torn last line"))).toBe(true);
      expect(h.audit.events.map((event) => event.kind)).toContain("budget.spool_torn");
      await next.close();
      expect(await h.sessionRow(A, "s-1")).toMatchObject({ usd: "0.300000000000000", tokens: "3" });
      expect([first.usageId, second.usageId]).toHaveLength(2);
      expect(await spoolFiles()).toEqual([]);
    },
  );

  // Regression: a spool left by the previous version (single-letter fields, lines of version 1)
  // must still be replayed after an upgrade, not refused or lost.
  it.skipIf(!engine.available)(
    "a spool written by the previous version (single letters) is read and replayed",
    async () => {
      const old = new DurableSpool<unknown>(
        directory,
        silentLogger,
        { prefix: "cost-spool-", name: "cost", noun: "usage records" },
        { keyring: testKeyring },
      );
      const usageId = randomUUID();
      await old.append([
        {
          v: 1,
          item: {
            id: usageId,
            a: A,
            s: "s-old",
            d: "2026-11-23",
            m: "gpt-4o",
            k: "track",
            t: "42",
            u: "0.125",
            fifo: true,
            alert: { p: 80, su: "10.000000000000000" },
          },
        },
      ]);
      await old.close();
      const [file] = await spoolFiles();
      await copyFile(
        join(directory, file as string),
        join(directory, `cost-spool-${hostname()}-${2 ** 22 + 4323}-abcd.jsonl`),
      );
      await rm(join(directory, file as string));
      const next = nextProcess(recordingLogger());
      await next.start();
      expect(await next.flush()).toBe(0);
      expect(next.metrics()).toMatchObject({ usageRecorded: 1 });
      await next.close();
      expect(await h.sessionRow(A, "s-old")).toMatchObject({
        usd: "0.125000000000000",
        tokens: "42",
      });
      const rows = await h.store.query<{ id: string; model: string; kind: string }>(
        sql`select id::text as id, model, kind from gov_cost.usage where session_id = 's-old'`,
      );
      expect(rows).toEqual([{ id: usageId, model: "gpt-4o", kind: "track" }]);
      expect(await spoolFiles()).toEqual([]);
    },
  );

  // A spool edited before its replay (less spend) must not be believed: the spool is signed
  // under the chain key, so the next process refuses the edited record and says so.
  it.skipIf(!engine.available)(
    "an edited spool is refused at replay, kept aside, and reported in the audit chain",
    async () => {
      h.setDown(true);
      await h.cost.track(A, "s-1", { tokens: 1, usd: "0.1" });
      await h.cost.track(A, "s-1", { tokens: 2, usd: "0.9" });
      const [file] = await spoolFiles();
      const text = await readFile(join(directory, file as string), "utf8");
      const orphan = join(directory, `cost-spool-${hostname()}-${2 ** 22 + 4322}-abcd.jsonl`);
      await writeFile(orphan, text.replace('"usd":"0.9"', '"usd":"0.0"'));
      await rm(join(directory, file as string));
      const logger = recordingLogger();
      const next = nextProcess(logger);
      h.setDown(false);
      await next.start();
      expect(await next.flush()).toBe(0);
      await next.close();
      // Only the record before the edited line is replayed; the edited one is not believed.
      expect(await h.sessionRow(A, "s-1")).toMatchObject({ usd: "0.100000000000000", tokens: "1" });
      const rejected = h.audit.events.find((event) => event.kind === "budget.spool_rejected");
      expect(rejected).toMatchObject({ agentId: "gov.cost", metadata: { proven: 1, line: 3 } });
      expect((await readdir(directory)).some((name) => name.startsWith("rejected-"))).toBe(true);
    },
  );

  it.skipIf(!engine.available)(
    "a spool that cannot be written falls back to memory, and says so",
    async () => {
      const file = join(directory, "not-a-directory");
      await writeFile(file, "");
      const logger = recordingLogger();
      let broken = true;
      const store = Object.create(h.store, {
        query: {
          value: (query: Parameters<typeof h.store.query>[0]) =>
            broken ? Promise.reject(new Error("connect ECONNREFUSED")) : h.store.query(query),
        },
      });
      const cost = new CostModule(
        { store, logger, audit: h.audit, halt: h.halt, clock: h.clock },
        { sweepIntervalMs: null, spoolDirectory: file },
      );
      const receipt = await cost.track(A, "s-1", { tokens: 1, usd: "0.5" });
      expect(receipt.queued).toBe(true);
      expect(
        logger.lines.some(
          (entry) => entry.level === "error" && entry.message.includes("kept in memory only"),
        ),
      ).toBe(true);
      expect(cost.metrics().backlog).toBe(1);
      broken = false;
      await cost.close();
      expect(await h.sessionRow(A, "s-1")).toMatchObject({ usd: "0.500000000000000" });
    },
  );

  // Guards against: usage that track() acknowledged as queued disappearing without a word when
  // the spool file is swapped for an earlier one with as many records (valid MACs).
  it.skipIf(!engine.available)(
    "a spool file swapped for an earlier one of as many records is refused, and the usage it lost reported",
    async () => {
      h.setDown(true);
      await h.cost.track(A, "s-1", { tokens: 10, usd: "1.00", model: "gpt-4o" });
      const [first] = await spoolFiles();
      const saved = `${directory}-saved.jsonl`;
      await copyFile(join(directory, first as string), saved);
      h.setDown(false);
      expect(await h.cost.flush()).toBe(0);
      h.setDown(true);
      await h.cost.track(A, "s-1", { tokens: 10, usd: "900.00", model: "gpt-4o" });
      const [second] = await spoolFiles();
      await copyFile(saved, join(directory, second as string));
      await rm(saved);
      h.setDown(false);
      expect(await h.cost.flush()).toBe(0);
      const rejected = h.audit.events.find((event) => event.kind === "budget.spool_rejected");
      expect(rejected).toMatchObject({
        agentId: "gov.cost",
        metadata: { file: second, line: 1, proven: 0, lost: 1 },
      });
      expect(String(rejected?.metadata?.reason)).toContain("replaced");
      expect(
        h.logger.lines.some((line) => line.level === "error" && line.message.includes("replaced")),
      ).toBe(true);
      // The earlier record is not counted twice.
      expect(await h.sessionRow(A, "s-1")).toMatchObject({ usd: "1.000000000000000" });
    },
  );

  // Guards against: usage stranded without a word when a container is recreated on the same
  // volume under a new host name.
  it.skipIf(!engine.available)(
    "spool files of other hosts are reported at start, and adopted when their host is named as gone",
    async () => {
      h.setDown(true);
      await h.cost.track(A, "s-1", { tokens: 1, usd: "0.5" });
      const [file] = await spoolFiles();
      await h.cost.close();
      const foreign = join(directory, `cost-spool-old-container-1-${2 ** 22 + 4323}-abcd.jsonl`);
      await copyFile(join(directory, file as string), foreign);
      await rm(join(directory, file as string));
      h.setDown(false);
      const logger = recordingLogger();
      const next = nextProcess(logger);
      await next.start();
      expect(await next.flush()).toBe(0);
      await next.close();
      const stranded = h.audit.events.find((event) => event.kind === "budget.spool_stranded");
      expect(stranded).toMatchObject({
        agentId: "gov.cost",
        metadata: { files: 1, hosts: [{ host: "old-container-1", files: 1 }] },
      });
      expect(logger.lines.some((line) => line.message.includes("old-container-1"))).toBe(true);
      expect(await h.sessionRow(A, "s-1")).toBeUndefined();
      const adopting = nextProcess(logger, { spoolAdoptHosts: ["old-container-1"] });
      await adopting.start();
      expect(await adopting.flush()).toBe(0);
      await adopting.close();
      expect(await h.sessionRow(A, "s-1")).toMatchObject({ usd: "0.500000000000000" });
      expect(
        () =>
          new CostModule(
            { store: h.store, logger, audit: h.audit, halt: h.halt },
            { spoolAdoptHosts: ["../x"] },
          ),
      ).toThrow(expect.objectContaining({ code: "INVALID_ARGUMENT", field: "spoolAdoptHosts[0]" }));
    },
  );
});
