import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ChainKey, Keyring } from "./keys";
import {
  DurableSpool,
  readSpoolFile,
  type DurableSpool as Spool,
  type SpoolIntegrityProblem,
  type StrandedSpoolFiles,
} from "./spool";
import { recordingLogger } from "./testing";

const KEYRING = new Keyring(new ChainKey("spool-test-secret-0123456789-abcdefghijklmn"));
const OTHER_KEYRING = new Keyring(new ChainKey("other-spool-secret-9876543210-ZYXWVUTSRQPO"));
const NAMES = { prefix: "test-spool-", name: "test", noun: "test entries" };
/** A pid that no process has (above the kernel's maximum). */
const DEAD_PID = 2 ** 22 + 4321;

interface Item {
  id: number;
  text: string;
}

const item = (id: number): Item => ({ id, text: `entry ${id}` });

describe("DurableSpool", () => {
  let directory: string;
  let logger: ReturnType<typeof recordingLogger>;
  let problems: SpoolIntegrityProblem[];
  let stranded: StrandedSpoolFiles[];

  beforeEach(async () => {
    directory = await mkdtemp(join(tmpdir(), "gov-spool-"));
    logger = recordingLogger();
    problems = [];
    stranded = [];
  });

  afterEach(async () => {
    await rm(directory, { recursive: true, force: true });
  });

  function spool(
    options: {
      keyring?: Keyring;
      directory?: string;
      names?: typeof NAMES;
      isRetiredKey?: (keyId: string) => boolean;
      adoptHosts?: readonly string[];
    } = {},
  ): Spool<Item> {
    return new DurableSpool<Item>(options.directory ?? directory, logger, options.names ?? NAMES, {
      keyring: options.keyring ?? KEYRING,
      onIntegrityProblem: (problem) => problems.push(problem),
      onStranded: (files) => stranded.push(files),
      ...(options.isRetiredKey ? { isRetiredKey: options.isRetiredKey } : {}),
      ...(options.adoptHosts ? { adoptHosts: options.adoptHosts } : {}),
    });
  }

  const files = async (dir = directory) => (await readdir(dir)).sort();
  const spoolFiles = async () =>
    (await files()).filter((name) => name.startsWith(NAMES.prefix) && name.endsWith(".jsonl"));
  const rejectedFiles = async () => (await files()).filter((name) => name.startsWith("rejected-"));
  const ownFile = async () => {
    const [name, ...others] = await spoolFiles();
    expect(others).toEqual([]);
    return join(directory, name as string);
  };
  const linesOf = async (path: string) => (await readFile(path, "utf8")).split("\n").slice(0, -1);
  const errors = () => logger.lines.filter((line) => line.level === "error");

  /** The text of a spool file written elsewhere (closed unless `close` is false). */
  async function spoolText(
    entries: readonly Item[],
    options: { close?: boolean; keyring?: Keyring; names?: typeof NAMES } = {},
  ): Promise<string> {
    const elsewhere = await mkdtemp(join(tmpdir(), "gov-spool-elsewhere-"));
    const writer = spool({ directory: elsewhere, ...options });
    await writer.append(entries);
    if (options.close === false) writer.release();
    else await writer.close();
    const [name] = await readdir(elsewhere);
    const text = await readFile(join(elsewhere, name as string), "utf8");
    await rm(elsewhere, { recursive: true, force: true });
    return text;
  }

  /** A spool file left by a process that is gone: written here, named with a dead pid. */
  async function orphan(
    entries: readonly Item[],
    options: { close?: boolean; keyring?: Keyring; names?: typeof NAMES; host?: string } = {},
  ): Promise<string> {
    const { host, ...writing } = options;
    const text = await spoolText(entries, writing);
    const path = join(
      directory,
      `${(options.names ?? NAMES).prefix}${host ?? hostname()}-${DEAD_PID}-${Math.random().toString(16).slice(2, 8)}.jsonl`,
    );
    await writeFile(path, text);
    return path;
  }

  describe("valid use", () => {
    it("signs each file: a header, then entries with a sequence number and a chained MAC", async () => {
      const subject = spool();
      await subject.append([item(1), item(2)]);
      await subject.append([item(3)]);
      const lines = (await linesOf(await ownFile())).map((line) => JSON.parse(line));
      expect(lines[0]).toMatchObject({
        format: "gov.spool",
        v: 1,
        spool: "test",
        keyId: KEYRING.current.id,
        nonce: expect.stringMatching(/^[0-9a-f]{32}$/),
        mac: expect.stringMatching(/^[0-9a-f]{64}$/),
      });
      expect(lines.slice(1)).toEqual([
        { seq: 1, mac: expect.stringMatching(/^[0-9a-f]{64}$/), entry: item(1) },
        { seq: 2, mac: expect.any(String), entry: item(2) },
        { seq: 3, mac: expect.any(String), entry: item(3) },
      ]);
      // No secret in the file.
      expect(await readFile(await ownFile(), "utf8")).not.toContain("spool-test-secret");
      expect(await subject.readAll()).toEqual([item(1), item(2), item(3)]);
      expect(subject.depth).toBe(3);
      expect(problems).toEqual([]);
    });

    it("drops what was replayed, keeps what was appended meanwhile, and starts fresh files", async () => {
      const subject = spool();
      await subject.append([item(1), item(2), item(3)]);
      expect(await subject.readAll()).toHaveLength(3);
      await subject.append([item(4)]);
      await subject.dropFirst(2);
      expect(await subject.readAll()).toEqual([item(3), item(4)]);
      await subject.append([item(5)]);
      expect(await subject.readAll()).toEqual([item(3), item(4), item(5)]);
      await subject.dropFirst(3);
      expect(subject.depth).toBe(0);
      expect(await spoolFiles()).toEqual([]);
      await subject.append([item(6)]);
      expect(await subject.readAll()).toEqual([item(6)]);
      expect(problems).toEqual([]);
      expect(errors()).toEqual([]);
    });

    it("adopts a file of an earlier process that closed cleanly, without a word of doubt", async () => {
      await orphan([item(1), item(2)]);
      const next = spool();
      expect(await next.adoptOrphans()).toBe(2);
      await next.append([item(3)]);
      expect(await next.readAll()).toEqual([item(1), item(2), item(3)]);
      await next.dropFirst(3);
      expect(await files()).toEqual([]);
      expect(problems).toEqual([]);
    });

    it("adopts the files a process had adopted before it died too", async () => {
      await orphan([item(1)]);
      const first = spool();
      expect(await first.adoptOrphans()).toBe(1);
      first.release(); // died before replaying them
      const [claimed] = await files();
      expect(claimed).toMatch(/^adopted-test-spool-/);
      const second = spool();
      expect(await second.adoptOrphans()).toBe(1);
      expect(await second.readAll()).toEqual([item(1)]);
    });

    it("reads its own file under the key that started it, after the keyring moved on", async () => {
      let keyring = KEYRING;
      const subject = new DurableSpool<Item>(directory, logger, NAMES, { keyring: () => keyring });
      await subject.append([item(1)]);
      keyring = new Keyring(OTHER_KEYRING.current, [KEYRING.current]);
      await subject.append([item(2)]);
      expect(await subject.readAll()).toEqual([item(1), item(2)]);
      await subject.close();
      const next = new DurableSpool<Item>(directory, logger, NAMES, { keyring });
      expect(await next.adoptOrphans()).toBe(2);
      expect(errors()).toEqual([]);
    });

    it("without a keyring, signs with a key of this process and says that a crash loses the spool", async () => {
      const subject = new DurableSpool<Item>(directory, logger, NAMES);
      await subject.append([item(1)]);
      expect(await subject.readAll()).toEqual([item(1)]);
      expect(logger.lines.some((line) => line.message.includes("no keyring was given"))).toBe(true);
      subject.release();
      // Another key cannot prove it: refused, kept.
      const next = spool({ keyring: OTHER_KEYRING });
      expect(await next.adoptOrphans()).toBe(0);
      expect(problems[0]).toMatchObject({ kind: "rejected", line: 1 });
      expect(problems[0]?.reason).toContain("not in the keyring");
      expect(await rejectedFiles()).toHaveLength(1);
    });
  });

  it("rejects bad arguments instead of throwing, and changes nothing", async () => {
    const subject = spool();
    await subject.append([item(1)]);
    for (const call of [
      () => subject.append(null as never),
      () => subject.append("entries" as never),
      () => subject.dropFirst(-1),
      () => subject.dropFirst(1.5),
      () => subject.dropFirst(Number.NaN),
    ]) {
      let promise: Promise<void> | undefined;
      expect(() => {
        promise = call();
      }).not.toThrow();
      await expect(promise).rejects.toMatchObject({ code: "INVALID_ARGUMENT" });
    }
    expect(await subject.readAll()).toEqual([item(1)]);
  });

  // Each way of changing a file this process is writing, between the append and the replay.
  const ownTampering: {
    name: string;
    change(lines: string[], other: string[]): string[] | null;
    proven: Item[];
    line: number | null;
  }[] = [
    {
      name: "an entry edited",
      change: (lines) =>
        lines.map((line, i) => (i === 2 ? line.replace("entry 2", "entry 9") : line)),
      proven: [item(1)],
      line: 3,
    },
    {
      name: "an entry's id edited",
      change: (lines) =>
        lines.map((line, i) => (i === 3 ? line.replace('"id":3', '"id":30') : line)),
      proven: [item(1), item(2)],
      line: 4,
    },
    {
      name: "a MAC replaced",
      change: (lines) =>
        lines.map((line, i) =>
          i === 1 ? line.replace(/"mac":"[0-9a-f]+"/, `"mac":"${"0".repeat(64)}"`) : line,
        ),
      proven: [],
      line: 2,
    },
    {
      name: "two lines swapped",
      change: (lines) => [lines[0], lines[2], lines[1], lines[3]] as string[],
      proven: [],
      line: 2,
    },
    {
      name: "two lines swapped with their sequence numbers",
      change: (lines) => [
        lines[0] as string,
        (lines[2] as string).replace('"seq":2', '"seq":1'),
        (lines[1] as string).replace('"seq":1', '"seq":2'),
        lines[3] as string,
      ],
      proven: [],
      line: 2,
    },
    {
      name: "a middle line deleted",
      change: (lines) => lines.filter((_, i) => i !== 2),
      proven: [item(1)],
      line: 3,
    },
    {
      name: "a line repeated",
      change: (lines) => [...lines.slice(0, 3), lines[2] as string, ...lines.slice(3)],
      proven: [item(1), item(2)],
      line: 4,
    },
    {
      name: "a line of another spool file spliced in",
      change: (lines, other) => [...lines.slice(0, 2), other[2] as string, ...lines.slice(3)],
      proven: [item(1)],
      line: 3,
    },
    {
      name: "another file's header put first",
      change: (lines, other) => [other[0] as string, ...lines.slice(1)],
      proven: [],
      line: 1,
    },
    {
      name: "the header removed",
      change: (lines) => lines.slice(1),
      proven: [],
      line: 1,
    },
    {
      name: "an unsigned line inserted",
      change: (lines) => [...lines, JSON.stringify({ seq: 4, entry: item(4) })],
      proven: [item(1), item(2), item(3)],
      line: 5,
    },
    {
      name: "a blank line inserted",
      change: (lines) => [...lines.slice(0, 2), "", ...lines.slice(2)],
      proven: [item(1)],
      line: 3,
    },
    {
      name: "the last whole line removed",
      change: (lines) => lines.slice(0, -1),
      proven: [item(1), item(2)],
      line: null,
    },
    {
      name: "every entry removed, the header kept",
      change: (lines) => lines.slice(0, 1),
      proven: [],
      line: null,
    },
    {
      name: "an end marker forged after a valid prefix",
      change: (lines) => [
        ...lines.slice(0, 2),
        JSON.stringify({ end: true, count: 1, mac: "0".repeat(64) }),
      ],
      proven: [item(1)],
      line: 3,
    },
    {
      name: "the file deleted",
      change: () => null,
      proven: [],
      line: null,
    },
  ];

  // Replay must refuse an edited, reordered, inserted, spliced or truncated spool loudly,
  // keep the file for inspection, and replay only what its MACs prove.
  it.each(ownTampering)(
    "refuses its own file with $name: loudly, kept aside, only the proven prefix replayed",
    async ({ change, proven, line }) => {
      const other = spool({ directory: await mkdtemp(join(tmpdir(), "gov-spool-other-")) });
      await other.append([item(1), item(2), item(3)]);
      const otherLines = await linesOf(
        join(other.directory, (await readdir(other.directory))[0] as string),
      );
      await rm(other.directory, { recursive: true, force: true });

      const subject = spool();
      await subject.append([item(1), item(2), item(3)]);
      const path = await ownFile();
      const original = await linesOf(path);
      const changed = change([...original], otherLines);
      if (changed === null) await rm(path);
      else await writeFile(path, `${changed.join("\n")}\n`);

      expect(await subject.readAll()).toEqual(proven);
      expect(problems).toHaveLength(1);
      expect(problems[0]).toMatchObject({
        kind: "rejected",
        spool: "test",
        line,
        proven: proven.length,
        lost: 3 - proven.length,
      });
      expect(errors()).toHaveLength(1);
      expect(errors()[0]?.message).toContain("was refused");
      const kept = await rejectedFiles();
      if (changed === null) {
        expect(kept).toEqual([]);
      } else {
        expect(kept).toHaveLength(1);
        expect(await linesOf(join(directory, kept[0] as string))).toEqual(changed);
      }
      // What is left is a clean file: no second report, and the spool goes on.
      expect(await subject.readAll()).toEqual(proven);
      await subject.append([item(4)]);
      expect(await subject.readAll()).toEqual([...proven, item(4)]);
      expect(problems).toHaveLength(1);
      expect(subject.depth).toBe(proven.length + 1);
    },
  );

  it("refuses its own file rolled back to an earlier copy of itself", async () => {
    const subject = spool();
    await subject.append([item(1)]);
    const path = await ownFile();
    const earlier = await readFile(path, "utf8");
    await subject.append([item(2)]);
    await writeFile(path, earlier);
    expect(await subject.readAll()).toEqual([item(1)]);
    expect(problems[0]).toMatchObject({ kind: "rejected", lost: 1 });
    expect(problems[0]?.reason).toContain("truncated or rolled back");
  });

  // Files of earlier processes: the same class of changes, proven by the MACs and the end marker.
  const orphanTampering: {
    name: string;
    change(lines: string[]): string[];
    proven: Item[];
  }[] = [
    {
      name: "an entry edited",
      change: (lines) =>
        lines.map((line, i) => (i === 1 ? line.replace("entry 1", "entry 7") : line)),
      proven: [],
    },
    {
      name: "two lines swapped",
      change: (lines) => [lines[0], lines[1], lines[3], lines[2], lines[4]] as string[],
      proven: [item(1)],
    },
    {
      name: "a line removed, the end marker kept",
      change: (lines) => lines.filter((_, i) => i !== 3),
      proven: [item(1), item(2)],
    },
    {
      name: "a line appended after the end marker",
      change: (lines) => [...lines, lines[1] as string],
      proven: [item(1), item(2), item(3)],
    },
    {
      name: "the end marker's count raised",
      change: (lines) =>
        lines.map((line, i) => (i === 4 ? line.replace('"count":3', '"count":4') : line)),
      proven: [item(1), item(2), item(3)],
    },
  ];

  it.each(orphanTampering)(
    "refuses an earlier process's file with $name, and keeps it aside",
    async ({ change, proven }) => {
      const path = await orphan([item(1), item(2), item(3)]);
      const changed = change(await linesOf(path));
      await writeFile(path, `${changed.join("\n")}\n`);
      const next = spool();
      expect(await next.adoptOrphans()).toBe(proven.length);
      expect(await next.readAll()).toEqual(proven);
      expect(problems).toMatchObject([{ kind: "rejected", proven: proven.length, lost: null }]);
      const kept = await rejectedFiles();
      expect(kept).toHaveLength(1);
      expect(await linesOf(join(directory, kept[0] as string))).toEqual(changed);
      // Replayed and dropped: only the kept file remains.
      await next.dropFirst(proven.length);
      expect(await files()).toEqual(kept);
    },
  );

  it("refuses an unsigned file (the format of earlier versions, or one written by hand)", async () => {
    await writeFile(
      join(directory, `test-spool-${hostname()}-${DEAD_PID}-abcd.jsonl`),
      `${JSON.stringify(item(1))}\n${JSON.stringify(item(2))}\n`,
    );
    const next = spool();
    expect(await next.adoptOrphans()).toBe(0);
    expect(problems).toMatchObject([{ kind: "rejected", line: 1, proven: 0 }]);
    expect(problems[0]?.reason).toContain("no signed header");
    expect(await rejectedFiles()).toHaveLength(1);
  });

  it("refuses another spool's file put under this spool's name", async () => {
    const cost = { prefix: "cost-spool-", name: "cost", noun: "usage records" };
    const path = await orphan([item(1)], { names: cost });
    const renamed = path.replace("cost-spool-", "test-spool-");
    await writeFile(renamed, await readFile(path, "utf8"));
    await rm(path);
    const next = spool();
    expect(await next.adoptOrphans()).toBe(0);
    expect(problems[0]?.reason).toContain("a cost spool, not a test spool");
  });

  it("refuses a file whose key is not in the keyring, and says how to recover it", async () => {
    await orphan([item(1)], { keyring: OTHER_KEYRING });
    const next = spool();
    expect(await next.adoptOrphans()).toBe(0);
    expect(problems[0]?.reason).toContain(OTHER_KEYRING.current.id);
    expect(problems[0]?.reason).toContain("historical key");
  });

  // A crash in the middle of an append leaves a torn last line: not tampering.
  it("replays the proven prefix of a file with a torn last line, and says so once", async () => {
    const path = await orphan([item(1), item(2)], { close: false });
    const text = await readFile(path, "utf8");
    await writeFile(path, `${text}{"seq":3,"mac":"ab`);
    const next = spool();
    expect(await next.adoptOrphans()).toBe(2);
    expect(await next.readAll()).toEqual([item(1), item(2)]);
    expect(await next.readAll()).toEqual([item(1), item(2)]);
    expect(problems).toMatchObject([{ kind: "torn", line: 4, proven: 2 }]);
    expect(errors()).toEqual([]);
    expect(logger.lines.some((line) => line.message.includes("torn last line"))).toBe(true);
    expect(await rejectedFiles()).toEqual([]);
  });

  it("says that a file of a process that did not close cleanly cannot show lines cut from its end", async () => {
    const path = await orphan([item(1), item(2), item(3)], { close: false });
    // Cut the last whole line: without an end marker, nothing in the file can show it.
    const lines = await linesOf(path);
    await writeFile(path, `${lines.slice(0, -1).join("\n")}\n`);
    const next = spool();
    expect(await next.adoptOrphans()).toBe(2);
    expect(problems).toMatchObject([{ kind: "unclosed", proven: 2 }]);
    // Adopted, it is rewritten closed: cutting it now is caught.
    await next.readAll();
    const [adopted] = (await files()).filter((name) => name.startsWith("adopted-"));
    const adoptedPath = join(directory, adopted as string);
    const adoptedLines = await linesOf(adoptedPath);
    await writeFile(adoptedPath, `${adoptedLines.slice(0, 2).join("\n")}\n`);
    expect(await next.readAll()).toEqual([item(1)]);
    expect(problems.map((problem) => problem.kind)).toEqual(["unclosed", "rejected"]);
  });

  // Files put in place of one this process holds: valid MACs, as many entries, another file.
  const ownSwaps: { name: string; replacement(): Promise<string> }[] = [
    {
      name: "an earlier file of this spool, already replayed",
      async replacement() {
        const subject = spool();
        await subject.append([item(1), item(2), item(3)]);
        const text = await readFile(await ownFile(), "utf8");
        await subject.dropFirst(3);
        return text;
      },
    },
    {
      name: "another spool's file with the same key, cut to as many entries",
      replacement: async () =>
        `${(await spoolText([item(91), item(92), item(93), item(94)], { close: false }))
          .split("\n")
          .slice(0, 4)
          .join("\n")}\n`,
    },
    {
      name: "another spool's closed file with as many entries",
      replacement: () => spoolText([item(71), item(72), item(73)]),
    },
    {
      name: "a file signed with a historical key of the keyring",
      replacement: () =>
        spoolText([item(81), item(82), item(83)], { keyring: OTHER_KEYRING, close: false }),
    },
  ];

  // Guards against: a swapped own spool file silently losing acknowledged entries (the count
  // and the end marker state agreed, the file was another one).
  it.each(ownSwaps)(
    "refuses its own file replaced by $name: loudly, kept aside, nothing of it replayed",
    async ({ replacement }) => {
      const text = await replacement();
      const subject = spool({
        keyring: new Keyring(KEYRING.current, [OTHER_KEYRING.current]),
      });
      await subject.append([item(4), item(5), item(6)]);
      const path = await ownFile();
      await writeFile(path, text);
      expect(await subject.readAll()).toEqual([]);
      expect(problems).toMatchObject([
        { kind: "rejected", line: 1, proven: 0, lost: 3, keyId: expect.any(String) },
      ]);
      expect(problems[0]?.reason).toContain("replaced");
      expect(errors()).toHaveLength(1);
      const kept = await rejectedFiles();
      expect(kept).toHaveLength(1);
      expect(await readFile(join(directory, kept[0] as string), "utf8")).toBe(text);
      // The spool goes on with a new file.
      await subject.append([item(7)]);
      expect(await subject.readAll()).toEqual([item(7)]);
      expect(problems).toHaveLength(1);
    },
  );

  // Guards against: the rewrite at a partial drop giving a window to put the file's earlier
  // self back (as many entries, valid MACs, another nonce).
  it("refuses its own file swapped back to what it held before a partial drop", async () => {
    const subject = spool();
    await subject.append([item(1), item(2), item(3), item(4)]);
    const before = await linesOf(await ownFile());
    expect(await subject.readAll()).toHaveLength(4);
    await subject.dropFirst(1);
    await writeFile(await ownFile(), `${before.slice(0, 4).join("\n")}\n`);
    expect(await subject.readAll()).toEqual([]);
    expect(problems).toMatchObject([{ kind: "rejected", proven: 0, lost: 3 }]);
    expect(problems[0]?.reason).toContain("replaced");
  });

  // Guards against: an adopted file swapped for another closed file with as many entries.
  it.each([
    { name: "the same key", keyring: undefined },
    { name: "a historical key of the keyring", keyring: OTHER_KEYRING },
  ])(
    "refuses an adopted file replaced by another closed file of $name with as many entries",
    async ({ keyring }) => {
      await orphan([item(1), item(2)]);
      const decoy = await spoolText([item(71), item(72)], keyring ? { keyring } : {});
      const subject = spool({ keyring: new Keyring(KEYRING.current, [OTHER_KEYRING.current]) });
      expect(await subject.adoptOrphans()).toBe(2);
      const [adopted] = (await files()).filter((name) => name.startsWith("adopted-"));
      await writeFile(join(directory, adopted as string), decoy);
      expect(await subject.readAll()).toEqual([]);
      expect(problems).toMatchObject([{ kind: "rejected", line: 1, proven: 0, lost: 2 }]);
      expect(problems[0]?.reason).toContain("replaced");
      expect(subject.depth).toBe(0);
      const kept = await rejectedFiles();
      expect(await readFile(join(directory, kept[0] as string), "utf8")).toBe(decoy);
    },
  );

  // Guards against: an adopted file that was rewritten (after a partial drop) swapped for
  // another file with as many entries.
  it("refuses an adopted file replaced after a partial drop", async () => {
    await orphan([item(1), item(2), item(3)]);
    const subject = spool();
    expect(await subject.adoptOrphans()).toBe(3);
    expect(await subject.readAll()).toHaveLength(3);
    await subject.dropFirst(1);
    const [adopted] = (await files()).filter((name) => name.startsWith("adopted-"));
    await writeFile(join(directory, adopted as string), await spoolText([item(8), item(9)]));
    expect(await subject.readAll()).toEqual([]);
    expect(problems).toMatchObject([{ kind: "rejected", proven: 0, lost: 2 }]);
  });

  describe("files signed with a retired key", () => {
    const KEY_A = KEYRING.current;
    /** The keyring of a process restarted after a rotation: B current, A kept to verify. */
    const ROTATED = new Keyring(OTHER_KEYRING.current, [KEY_A]);
    const retiredA = (keyId: string) => keyId === KEY_A.id;

    // Guards against: a holder of a retired key who can write the spool directory getting
    // entries replayed (and signed with the current key) by planting a file under a dead pid.
    it.each([
      { name: "closed", close: true, torn: false },
      { name: "not closed", close: false, torn: false },
      { name: "with a torn last line", close: false, torn: true },
    ])(
      "does not replay a file of an earlier process signed with a retired key ($name): kept aside, reported",
      async ({ close, torn }) => {
        const path = await orphan([item(1), item(2)], { close });
        if (torn) await writeFile(path, `${await readFile(path, "utf8")}{"seq":3,"mac":"ab`);
        const text = await readFile(path, "utf8");
        const subject = spool({ keyring: ROTATED, isRetiredKey: retiredA });
        expect(await subject.adoptOrphans()).toBe(0);
        expect(await subject.readAll()).toEqual([]);
        expect(problems).toMatchObject([
          { kind: "rejected", line: 1, proven: 0, lost: null, keyId: KEY_A.id },
        ]);
        expect(problems[0]?.reason).toContain(`retired key ${KEY_A.id}`);
        expect(problems[0]?.reason).toContain("import");
        expect(errors()).toHaveLength(1);
        const kept = await rejectedFiles();
        expect(kept).toHaveLength(1);
        expect(await readFile(join(directory, kept[0] as string), "utf8")).toBe(text);
        expect(await spoolFiles()).toEqual([]);
      },
    );

    // Guards against: a retired-key file adopted while the rotation history was unknown (the
    // database away at start) being rewritten under the current key, and so laundered.
    it("refuses at the next read a file adopted before its key was known to be retired, still under that key", async () => {
      await orphan([item(1), item(2)], { close: false });
      let retired = false;
      const subject = spool({ keyring: ROTATED, isRetiredKey: () => retired });
      expect(await subject.adoptOrphans()).toBe(2);
      expect(problems).toMatchObject([{ kind: "unclosed" }]);
      const [adopted] = (await files()).filter((name) => name.startsWith("adopted-"));
      const [header] = await linesOf(join(directory, adopted as string));
      expect(JSON.parse(header as string)).toMatchObject({ keyId: KEY_A.id });
      retired = true;
      expect(await subject.readAll()).toEqual([]);
      expect(problems).toMatchObject([
        { kind: "unclosed" },
        { kind: "rejected", line: 1, proven: 0, lost: 2, keyId: KEY_A.id },
      ]);
      expect(subject.depth).toBe(0);
    });

    // The legitimate case: a process that never learned of the rotation spools under its key.
    it("keeps its own file after its key was retired (a process still on the old key)", async () => {
      let retired = false;
      const subject = spool({ isRetiredKey: () => retired });
      await subject.append([item(1)]);
      retired = true;
      await subject.append([item(2)]);
      expect(await subject.readAll()).toEqual([item(1), item(2)]);
      expect(problems).toEqual([]);
    });

    it("adopts a file signed with a historical key that is not retired", async () => {
      await orphan([item(1)]);
      const subject = spool({ keyring: ROTATED, isRetiredKey: () => false });
      expect(await subject.adoptOrphans()).toBe(1);
      expect(problems).toEqual([]);
    });
  });

  describe("files of other hosts", () => {
    // Guards against: spool files stranded without a word when a container is recreated on the
    // same volume under a new hostname.
    it("says at start how many files of other hosts it leaves, whose and how old, and adopts none", async () => {
      await orphan([item(1), item(2)], { host: "old-container-1" });
      await orphan([item(3)], { host: "old-container-1" });
      const adoptedElsewhere = await orphan([item(4)], { host: "old-container-2" });
      await writeFile(
        adoptedElsewhere.replace(/test-spool-/, "adopted-test-spool-"),
        await readFile(adoptedElsewhere, "utf8"),
      );
      await rm(adoptedElsewhere);
      const subject = spool();
      expect(await subject.adoptOrphans()).toBe(0);
      expect(stranded).toHaveLength(1);
      expect(stranded[0]).toMatchObject({
        spool: "test",
        files: 3,
        hosts: [
          { host: "old-container-1", files: 2 },
          { host: "old-container-2", files: 1 },
        ],
      });
      expect(stranded[0]?.oldestAgeMs).toBeGreaterThanOrEqual(0);
      const warning = logger.lines.find((line) => line.message.includes("other hosts"));
      expect(warning?.level).toBe("warn");
      expect(warning?.message).toContain("3 test spool files");
      expect(warning?.message).toContain("old-container-1");
      expect(warning?.message).toContain("adoptHosts");
      // Nothing was touched.
      expect(await spoolFiles()).toHaveLength(2);
    });

    it("adopts the files of the hosts it is told are gone, and only those", async () => {
      await orphan([item(1), item(2)], { host: "old-container-1" });
      await orphan([item(3)], { host: "still-running" });
      const subject = spool({ adoptHosts: ["old-container-1"] });
      expect(await subject.adoptOrphans()).toBe(2);
      expect(await subject.readAll()).toEqual([item(1), item(2)]);
      expect(stranded).toMatchObject([{ files: 1, hosts: [{ host: "still-running" }] }]);
      expect(problems).toEqual([]);
    });

    it("says nothing when every file is its own host's", async () => {
      await orphan([item(1)]);
      const subject = spool();
      expect(await subject.adoptOrphans()).toBe(1);
      expect(stranded).toEqual([]);
    });

    it("refuses adoptHosts that are not host names", () => {
      for (const adoptHosts of ["old" as never, [""], [42 as never], ["a/b"]]) {
        expect(() => spool({ adoptHosts })).toThrow(/adoptHosts/);
      }
    });
  });

  describe("readSpoolFile (an explicit import)", () => {
    const read = (path: string, options: Partial<Parameters<typeof readSpoolFile>[1]> = {}) =>
      readSpoolFile<Item>(path, { name: "test", keyring: KEYRING, ...options });

    it("proves a signed file and says what it is", async () => {
      const path = await orphan([item(1), item(2)]);
      expect(await read(path)).toMatchObject({
        entries: [item(1), item(2)],
        signed: true,
        keyId: KEYRING.current.id,
        retiredKey: false,
        closed: true,
        torn: false,
        sha256: expect.stringMatching(/^[0-9a-f]{64}$/),
      });
      const unclosed = await orphan([item(3)], { close: false });
      await writeFile(unclosed, `${await readFile(unclosed, "utf8")}{"seq":2`);
      expect(await read(unclosed)).toMatchObject({ entries: [item(3)], closed: false, torn: true });
    });

    // Guards against: an import quietly accepting what automatic replay refuses.
    it("refuses a file signed with a retired key unless told to accept it", async () => {
      const path = await orphan([item(1)]);
      const options = { isRetiredKey: (keyId: string) => keyId === KEYRING.current.id };
      await expect(read(path, options)).rejects.toMatchObject({
        code: "SPOOL_FILE_REFUSED",
        line: 1,
        reason: expect.stringContaining("retired"),
      });
      expect(await read(path, { ...options, acceptRetiredKey: true })).toMatchObject({
        entries: [item(1)],
        retiredKey: true,
      });
    });

    it("refuses an unsigned file (an earlier version's) unless told to accept it", async () => {
      const path = join(directory, "legacy.jsonl");
      await writeFile(
        path,
        `${JSON.stringify(item(1))}\n\n${JSON.stringify(item(2))}\n{"id":3,"te`,
      );
      await expect(read(path)).rejects.toMatchObject({
        code: "SPOOL_FILE_REFUSED",
        line: 1,
        reason: expect.stringContaining("unsigned"),
      });
      expect(await read(path, { acceptUnsigned: true })).toMatchObject({
        entries: [item(1), item(2)],
        signed: false,
        keyId: null,
        torn: true,
      });
      // A damaged line in the middle is not a torn write.
      await writeFile(path, `${JSON.stringify(item(1))}\nnot json\n${JSON.stringify(item(2))}\n`);
      await expect(read(path, { acceptUnsigned: true })).rejects.toMatchObject({ line: 2 });
    });

    it("refuses what its MACs do not prove, an unknown key and another spool's file, naming the line", async () => {
      const path = await orphan([item(1), item(2)]);
      const lines = await linesOf(path);
      await writeFile(
        path,
        `${lines.map((l, i) => (i === 2 ? l.replace("entry 2", "entry 9") : l)).join("\n")}\n`,
      );
      await expect(read(path)).rejects.toMatchObject({ code: "SPOOL_FILE_REFUSED", line: 3 });
      const foreignKey = await orphan([item(1)], { keyring: OTHER_KEYRING });
      await expect(read(foreignKey)).rejects.toMatchObject({
        reason: expect.stringContaining("not in the keyring"),
      });
      const cost = await orphan([item(1)], {
        names: { prefix: "cost-spool-", name: "cost", noun: "usage records" },
      });
      await expect(read(cost)).rejects.toMatchObject({
        reason: expect.stringContaining("cost spool"),
      });
      await expect(read(join(directory, "missing.jsonl"))).rejects.toMatchObject({
        code: "SPOOL_FILE_REFUSED",
      });
    });

    it("rejects bad arguments instead of throwing", async () => {
      for (const call of [
        () => readSpoolFile(42 as never, { name: "test", keyring: KEYRING }),
        () => readSpoolFile("x", null as never),
        () => readSpoolFile("x", { name: "test", keyring: {} as never }),
      ]) {
        let promise: Promise<unknown> | undefined;
        expect(() => {
          promise = call();
        }).not.toThrow();
        await expect(promise).rejects.toMatchObject({ code: "INVALID_ARGUMENT" });
      }
    });
  });
});
