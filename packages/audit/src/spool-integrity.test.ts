import { copyFile, mkdtemp, readdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Store } from "@gov/core";
import { type TestEngine, testEngines } from "@gov/core/testing";
import { describe, expect, it } from "vitest";
import { eventually, flakyStore, recordingLogger, useAuditHarness } from "./__fixtures__";
import { AuditSpool } from "./spool";

/** Replace a file in one step, as an attacker with a text editor would (and without a torn read). */
async function replaceFile(path: string, text: string): Promise<void> {
  await writeFile(`${path}.edit`, text);
  await rename(`${path}.edit`, path);
}

describe.each(testEngines())("the audit spool's signatures on $name", (engine: TestEngine) => {
  let logger: ReturnType<typeof recordingLogger>;
  const h = useAuditHarness(engine, () => {
    logger = recordingLogger();
    return { logger };
  });

  /** A spool line of another spool file signed with the same key: valid there, not here. */
  async function foreignLine(): Promise<string> {
    const elsewhere = await mkdtemp(join(tmpdir(), "gov-audit-foreign-"));
    try {
      const other = new AuditSpool(elsewhere, logger, { keyring: h.keyring });
      const [line] = await h.audit.getEvents({ limit: 1 });
      await other.append([
        {
          v: 1,
          eventId: "00000000-0000-4000-8000-000000000000",
          chain: "s",
          createdAt: new Date().toISOString(),
          event: {
            agentId: "a",
            kind: "forged.approval",
            sessionId: "s",
            parentEventId: null,
            model: null,
            inputHash: null,
            outputHash: null,
            metadata: { approved: true, seen: line?.eventId ?? null },
          },
        },
      ]);
      const [name] = await readdir(elsewhere);
      return (await readFile(join(elsewhere, name as string), "utf8")).split("\n")[1] as string;
    } finally {
      await rm(elsewhere, { recursive: true, force: true });
    }
  }

  // Each way to change the spool while the database is away; each leaves `proven` events
  // (the degraded marker first) that the MACs still prove.
  const attacks: {
    name: string;
    change(lines: string[], foreign: string): string[] | null;
    proven: string[];
  }[] = [
    {
      name: "an event's kind edited",
      change: (lines) =>
        lines.map((line, i) => (i === 3 ? line.replace("during.2", "during.approved") : line)),
      proven: ["chain.degraded_start", "during.1"],
    },
    {
      name: "two events swapped",
      change: (lines) => [lines[0], lines[1], lines[3], lines[2], lines[4]] as string[],
      proven: ["chain.degraded_start"],
    },
    {
      name: "the last event cut off (whole line)",
      change: (lines) => lines.slice(0, -1),
      proven: ["chain.degraded_start", "during.1", "during.2"],
    },
    {
      name: "an event deleted from the middle",
      change: (lines) => lines.filter((_, i) => i !== 2),
      proven: ["chain.degraded_start"],
    },
    {
      name: "an event repeated",
      change: (lines) => [...lines.slice(0, 3), lines[2] as string, ...lines.slice(3)],
      proven: ["chain.degraded_start", "during.1"],
    },
    {
      name: "a line of another spool file spliced in",
      change: (lines, foreign) => [...lines.slice(0, 2), foreign, ...lines.slice(2)],
      proven: ["chain.degraded_start"],
    },
    {
      name: "the whole file deleted",
      change: () => null,
      proven: [],
    },
  ];

  // Replay must refuse an edited spool loudly — error log, audit event, file kept aside — and
  // write into the chain only what the spool's MACs prove.
  it.skipIf(!engine.available).each(attacks)(
    "refuses a spool with $name: loudly, kept aside, only the proven events replayed",
    async ({ change, proven }) => {
      await h.audit.log({ agentId: "a", kind: "seed", sessionId: "other" });
      const foreign = await foreignLine();
      const flaky = flakyStore(h.store);
      const audit = h.another({ store: flaky.store, logger });
      flaky.setDown(true);
      for (const kind of ["during.1", "during.2", "during.3"])
        expect((await audit.log({ agentId: "a", kind, sessionId: "s" })).status).toBe("spooled");
      const [name] = (await readdir(h.spoolDirectory)).filter((file) =>
        file.startsWith("audit-spool-"),
      );
      const path = join(h.spoolDirectory, name as string);
      const original = (await readFile(path, "utf8")).split("\n").slice(0, -1);
      expect(original).toHaveLength(5);
      const changed = change([...original], foreign);
      if (changed === null) await rm(path);
      else await replaceFile(path, `${changed.join("\n")}\n`);
      // The next retry, with the database still away, reads the spool and refuses it. (A
      // replay that had read the spool before the change and found the database back would
      // write the authentic events and drop the file: safe, but not this test.)
      await eventually(() => audit.metrics().spoolRejections === 1, 30_000);

      flaky.setDown(false);
      // The retry interval doubles while the database is away: allow for a few of them.
      await eventually(() => audit.metrics().spoolDepth === 0 && !audit.metrics().degraded, 30_000);
      await audit.flush();
      expect((await h.audit.getEvents({ sessionId: "s" })).map((event) => event.kind)).toEqual(
        proven,
      );
      expect(audit.metrics().spoolRejections).toBe(1);
      expect(
        logger.lines.filter(
          (line) => line.level === "error" && line.message.includes("was refused"),
        ),
      ).toHaveLength(1);
      const [rejected] = await h.audit.getEvents({ kind: "audit.spool_rejected" });
      expect(rejected).toMatchObject({ agentId: "gov.audit", chain: "agent:gov.audit" });
      expect(rejected?.metadata).toMatchObject({
        spool: "audit",
        file: name,
        proven: proven.length,
        lost: 4 - proven.length,
      });
      const kept = (await readdir(h.spoolDirectory)).filter((file) => file.startsWith("rejected-"));
      if (changed === null) {
        expect(kept).toEqual([]);
        expect(rejected?.metadata.keptAs).toBeNull();
      } else {
        expect(kept).toEqual([rejected?.metadata.keptAs]);
        expect(
          (await readFile(join(h.spoolDirectory, kept[0] as string), "utf8")).split("\n"),
        ).toEqual([...changed, ""]);
      }
      // Nothing forged reached the chain, and the chain verifies.
      expect(await h.audit.getEvents({ kind: "forged.approval" })).toEqual([]);
      expect(await h.audit.verifyChain()).toBe(true);
    },
  );

  it.skipIf(!engine.available)(
    "records a torn last line of an adopted spool as evidence, and replays what precedes it",
    async () => {
      const flaky = flakyStore(h.store);
      const first = h.another({ store: flaky.store, logger });
      flaky.setDown(true);
      await first.log({ agentId: "a", kind: "kept", sessionId: "s" });
      // The process dies in the middle of its next append: no end marker, a torn last line.
      const [name] = (await readdir(h.spoolDirectory)).filter((file) =>
        file.startsWith("audit-spool-"),
      );
      const path = join(h.spoolDirectory, name as string);
      const text = await readFile(path, "utf8");
      await first.close();
      await replaceFile(path, `${text}{"seq":3,"mac":"0123`);
      const next = h.another({ logger });
      await next.start();
      await eventually(() => next.metrics().spoolDepth === 0, 30_000);
      await next.flush();
      expect((await h.audit.getEvents({ sessionId: "s" })).map((event) => event.kind)).toEqual([
        "chain.degraded_start",
        "kept",
      ]);
      const [torn] = await h.audit.getEvents({ kind: "audit.spool_torn" });
      expect(torn?.metadata).toMatchObject({ line: 4, proven: 2, keptAs: null });
      expect(next.metrics().spoolRejections).toBe(0);
      expect(await h.audit.verifyChain()).toBe(true);
    },
  );

  // Guards against: a spool file swapped for an earlier one with as many lines (valid MACs)
  // losing events that log() had resolved as "spooled", without a word.
  it.skipIf(!engine.available)(
    "refuses its spool file swapped for an earlier one of the same length, and records the spooled events lost",
    async () => {
      const flaky = flakyStore(h.store);
      // The database comes back inside the next call made to it, after the file is swapped:
      // a replay that read the spool before asking the database would write the real events
      // and never look at the swapped file (the race this test once lost under load).
      let onNextCall: (() => Promise<void>) | null = null;
      const beforeCall = async () => {
        const hook = onNextCall;
        onNextCall = null;
        await hook?.();
      };
      const store: Store = Object.create(flaky.store, {
        query: {
          value: async (query: Parameters<Store["query"]>[0]) => {
            await beforeCall();
            return flaky.store.query(query);
          },
        },
        transaction: {
          value: async (...args: Parameters<Store["transaction"]>) => {
            await beforeCall();
            return flaky.store.transaction(...args);
          },
        },
      });
      const audit = h.another({ store, logger });
      const spoolFiles = async () =>
        (await readdir(h.spoolDirectory)).filter((file) => file.startsWith("audit-spool-"));
      // Outage 1: spooled, then replayed; someone keeps a copy of the file.
      flaky.setDown(true);
      for (const kind of ["first.1", "first.2"])
        expect((await audit.log({ agentId: "a", kind, sessionId: "s" })).status).toBe("spooled");
      const [first] = await spoolFiles();
      const saved = join(h.spoolDirectory, "..", `${first}.saved`);
      await copyFile(join(h.spoolDirectory, first as string), saved);
      flaky.setDown(false);
      await eventually(() => audit.metrics().spoolDepth === 0 && !audit.metrics().degraded, 30_000);
      // Outage 2: as many lines (a marker and two events), then the copy put in its place.
      flaky.setDown(true);
      for (const kind of ["second.1", "second.2"])
        expect((await audit.log({ agentId: "a", kind, sessionId: "s" })).status).toBe("spooled");
      const [second] = await spoolFiles();
      const secondPath = join(h.spoolDirectory, second as string);
      const swapped = await readFile(saved, "utf8");
      await rm(saved);
      onNextCall = async () => {
        await replaceFile(secondPath, swapped);
        flaky.setDown(false);
      };
      await eventually(() => audit.metrics().spoolDepth === 0 && !audit.metrics().degraded, 30_000);
      await audit.flush();
      expect(audit.metrics().spoolRejections).toBe(1);
      const [rejected] = await h.audit.getEvents({ kind: "audit.spool_rejected" });
      expect(rejected?.metadata).toMatchObject({
        file: second,
        keyId: h.keyring.current.id,
        line: 1,
        proven: 0,
        lost: 3,
      });
      expect(String(rejected?.metadata.reason)).toContain("replaced");
      const kept = (await readdir(h.spoolDirectory)).filter((file) => file.startsWith("rejected-"));
      expect(kept).toEqual([rejected?.metadata.keptAs]);
      expect(await readFile(join(h.spoolDirectory, kept[0] as string), "utf8")).toBe(swapped);
      expect(
        logger.lines.filter((line) => line.level === "error" && line.message.includes("replaced")),
      ).toHaveLength(1);
      // The events of the first outage are not written twice; the chain verifies.
      const kinds = (await h.audit.getEvents({ sessionId: "s" })).map((event) => event.kind);
      expect(kinds.filter((kind) => kind === "first.1")).toHaveLength(1);
      expect(await h.audit.verifyChain()).toBe(true);
    },
  );
});
