import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, open, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { hostname } from "node:os";
import { join } from "node:path";
import type { Logger } from "./logger";

/** Spool files written by spools of this process, which are never orphans. */
const liveFiles = new Set<string>();

/** Names of a {@link DurableSpool}'s files and messages. */
export interface DurableSpoolNames {
  /** The file name prefix, e.g. `audit-spool-` (lower case, ends with `-`). */
  prefix: string;
  /** The spool's name in messages, e.g. `audit`. */
  name: string;
  /** What it holds, in messages, e.g. `audit events`. */
  noun: string;
}

/**
 * A durable local spool of JSON lines: when the database cannot take what an observation
 * surface must not lose, it is appended here (fsynced before `append` resolves) and replayed,
 * in order, when the database is back. Each process writes its own file; the files of
 * processes that died with entries in them are adopted by the next process that starts.
 * Entries should carry an id the database deduplicates on: after a crash between a replay
 * and `dropFirst`, entries are replayed twice.
 */
export class DurableSpool<Entry> {
  readonly directory: string;
  readonly #logger: Logger;
  readonly #file: string;
  readonly #names: DurableSpoolNames;
  /** Spool files of earlier processes, adopted at start; replayed before our own. */
  #adopted: string[] = [];
  #depth = 0;

  constructor(directory: string, logger: Logger, names: DurableSpoolNames) {
    if (!/^[a-z][a-z0-9-]*-$/.test(names.prefix)) {
      throw new RangeError(
        `DurableSpool: prefix must be lower-case and end with "-", got ${JSON.stringify(names.prefix)}`,
      );
    }
    this.directory = directory;
    this.#logger = logger;
    this.#names = names;
    this.#file = join(
      directory,
      `${names.prefix}${hostname()}-${process.pid}-${randomBytes(4).toString("hex")}.jsonl`,
    );
    liveFiles.add(this.#file);
  }

  /** This spool stops writing; its file (if any is left) may be adopted by a later process. */
  release(): void {
    liveFiles.delete(this.#file);
  }

  /** Events waiting in the spool (this process's file and adopted ones). */
  get depth(): number {
    return this.#depth;
  }

  /**
   * Take over the spool files of processes that are gone, so that their events are replayed.
   * A file is claimed by renaming it: of several starting processes, exactly one gets it.
   */
  async adoptOrphans(): Promise<number> {
    if (!existsSync(this.directory)) return 0;
    let adopted = 0;
    const names = (await readdir(this.directory)).filter(
      (name) => name.startsWith(this.#names.prefix) && name.endsWith(".jsonl"),
    );
    const withTimes = await Promise.all(
      names.map(async (name) => ({
        name,
        mtime: (await stat(join(this.directory, name)).catch(() => null))?.mtimeMs ?? 0,
      })),
    );
    for (const { name } of withTimes.sort((a, b) => a.mtime - b.mtime)) {
      const path = join(this.directory, name);
      if (liveFiles.has(path) || !isOrphan(name, this.#names.prefix)) continue;
      const claimed = join(
        this.directory,
        `adopted-${this.#names.prefix}${randomBytes(6).toString("hex")}.jsonl`,
      );
      try {
        await rename(path, claimed);
      } catch {
        continue; // Another process claimed it.
      }
      const entries = await this.#readFile(claimed);
      this.#adopted.push(claimed);
      this.#depth += entries.length;
      adopted += entries.length;
    }
    if (adopted > 0)
      this.#logger.warn(
        `Adopted ${adopted} spooled ${this.#names.noun} of an earlier process; they will be replayed.`,
      );
    return adopted;
  }

  /** Append entries durably (written and fsynced before this resolves). */
  async append(entries: readonly Entry[]): Promise<void> {
    if (entries.length === 0) return;
    await mkdir(this.directory, { recursive: true, mode: 0o700 });
    const handle = await open(this.#file, "a", 0o600);
    try {
      await handle.writeFile(entries.map((entry) => `${JSON.stringify(entry)}\n`).join(""), "utf8");
      await handle.datasync();
    } finally {
      await handle.close();
    }
    this.#depth += entries.length;
  }

  /** Every waiting entry, oldest first: adopted files, then this process's own. */
  async readAll(): Promise<Entry[]> {
    const all: Entry[] = [];
    for (const file of [...this.#adopted, this.#file]) all.push(...(await this.#readFile(file)));
    return all;
  }

  /**
   * Keep only the entries after the first `count` (they are in the chain now). Written
   * aside and renamed over, so a crash leaves either the old or the new file; entries
   * replayed twice after a crash are recognized by their event id and skipped.
   */
  async dropFirst(count: number): Promise<void> {
    const all = await this.readAll();
    const remaining = all.slice(count);
    for (const file of this.#adopted) await rm(file, { force: true });
    this.#adopted = [];
    if (remaining.length === 0) {
      await rm(this.#file, { force: true });
    } else {
      const staging = `${this.#file}.${randomBytes(4).toString("hex")}.tmp`;
      await writeFile(staging, remaining.map((entry) => `${JSON.stringify(entry)}\n`).join(""), {
        mode: 0o600,
      });
      await rename(staging, this.#file);
    }
    this.#depth = remaining.length;
  }

  async #readFile(path: string): Promise<Entry[]> {
    let text: string;
    try {
      text = await readFile(path, "utf8");
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw error;
    }
    const entries: Entry[] = [];
    const lines = text.split("\n");
    for (const [index, line] of lines.entries()) {
      if (line.trim() === "") continue;
      try {
        entries.push(JSON.parse(line) as Entry);
      } catch {
        // Only the last line can be torn (a crash during the append that was never
        // acknowledged to its caller); anything else is damage worth shouting about.
        const last = index >= lines.length - 2;
        (last ? this.#logger.warn : this.#logger.error)(
          last
            ? `Ignoring a torn last line in the ${this.#names.name} spool (an append that never completed).`
            : `The ${this.#names.name} spool has a damaged line; it was skipped.`,
          { file: path, line: index + 1 },
        );
      }
    }
    return entries;
  }
}

/** A spool file whose writer (by host and pid in its name) no longer runs. */
function isOrphan(name: string, prefix: string): boolean {
  if (!name.startsWith(prefix)) return false;
  const match = /^(.+)-(\d+)-[0-9a-f]+\.jsonl$/.exec(name.slice(prefix.length));
  if (!match) return false;
  const [, host, pid] = match;
  if (host !== hostname()) return false; // Cannot tell; leave it to its own host.
  if (Number(pid) === process.pid) return true; // An earlier process that had our pid.
  try {
    process.kill(Number(pid), 0);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "ESRCH";
  }
}
