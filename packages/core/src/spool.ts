import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, open, readdir, readFile, rename, rm, stat } from "node:fs/promises";
import { hostname } from "node:os";
import { basename, join } from "node:path";
import { InvalidArgumentError } from "./errors";
import { ChainKey, Keyring } from "./keys";
import type { Logger } from "./logger";

/** Spool files held by spools of this process, which are never orphans. */
const liveFiles = new Set<string>();

/** The format of a spool file: its first line, each entry's line, the end marker. */
const FORMAT = "gov.spool";
const FORMAT_VERSION = 1;
const MAC_DOMAIN = "gov.spool.v1";

/** Names of a {@link DurableSpool}'s files and messages. */
export interface DurableSpoolNames {
  /** The file name prefix, e.g. `audit-spool-` (lower case, ends with `-`). */
  prefix: string;
  /** The spool's name in messages and in its signed header, e.g. `audit`. */
  name: string;
  /** What it holds, in messages, e.g. `audit events`. */
  noun: string;
}

/**
 * Something wrong with a spool file, found when it was read (see
 * {@link DurableSpoolOptions.onIntegrityProblem}).
 *
 * - `rejected`: the file was edited, reordered, spliced, truncated or rolled back, or its
 *   signature cannot be checked. It was renamed aside (`keptAs`) for inspection; only the
 *   `proven` entries before the first bad line are replayed.
 * - `torn`: its last line is incomplete — a crash in the middle of an append that was never
 *   acknowledged. The `proven` entries before it are replayed.
 * - `unclosed`: a file of an earlier process has no end marker (it did not close cleanly), so
 *   whole lines removed from its end could not be noticed. Its `proven` entries are replayed.
 */
export interface SpoolIntegrityProblem {
  kind: "rejected" | "torn" | "unclosed";
  /** The spool's name, e.g. `audit`. */
  spool: string;
  /** The file's name (in the spool's directory). */
  file: string;
  /** The name the rejected file was kept under, in the same directory; null otherwise. */
  keptAs: string | null;
  /** The first bad line (1 is the header), when there is one. */
  line: number | null;
  /** What is wrong, in words. */
  reason: string;
  /** Entries that were proven and will be replayed. */
  proven: number;
  /**
   * Entries this process spooled (or adopted) that were not proven — a file of this process
   * that was truncated, edited or deleted; null when nobody knows (a file of an earlier
   * process, read for the first time).
   */
  lost: number | null;
}

/** Options of a {@link DurableSpool}. */
export interface DurableSpoolOptions {
  /**
   * The keys that sign spool files: each file is MACed under the key that is current when it
   * is started (named in its header), and checked under the key its header names. Pass the
   * chain keyring (or a function returning it, when it changes on rotation) so that the files
   * of a process that died can be proven by the next one. Without it, a random key that lives
   * as long as the process signs the files: a file left behind by a crash is then refused.
   */
  keyring?: Keyring | (() => Keyring);
  /**
   * Told about every integrity problem (after it was logged), e.g. to record an audit event.
   * It must not throw; what it throws is ignored.
   */
  onIntegrityProblem?: (problem: SpoolIntegrityProblem) => void;
}

/** A key that lives as long as this process, for spools given no keyring. */
let processKeyring: Keyring | null = null;

/** The state of a spool file this process writes. */
interface OwnFile {
  path: string;
  key: ChainKey;
  nonce: string;
  /** Entries written (and acknowledged). */
  count: number;
  /** The MAC of the last line written (the header's, before the first entry). */
  lastMac: string;
  /** The file's length after the last acknowledged write. */
  size: number;
}

/** What reading one spool file proved. */
interface FileContents<Entry> {
  /** The entries proven, in order. */
  entries: Entry[];
  /** The first problem, if any. */
  problem: { kind: SpoolIntegrityProblem["kind"]; line: number | null; reason: string } | null;
  /** Whether the file ends with its end marker. */
  closed: boolean;
}

/**
 * A durable local spool of JSON lines: when the database cannot take what an observation
 * surface must not lose, it is appended here (fsynced before `append` resolves) and replayed,
 * in order, when the database is back. Each process writes its own file; the files of
 * processes that died with entries in them are adopted by the next process that starts.
 * Entries should carry an id the database deduplicates on: after a crash between a replay
 * and `dropFirst`, entries are replayed twice.
 *
 * Every file is signed, so that it cannot be edited before it is replayed: a header line
 * with a random nonce, MACed under the chain key; then each entry with a sequence number and
 * a MAC over the previous line's MAC, its sequence number and the entry; and, when the spool
 * is closed cleanly, an end marker MACed the same way. Reading a file replays only what its
 * MACs prove. An edited, reordered, inserted, spliced or deleted line, or an unknown key, is
 * refused loudly (an error, {@link DurableSpoolOptions.onIntegrityProblem}): the file is
 * renamed aside (`rejected-…`) for inspection, and only the entries before the first bad
 * line are kept. A torn last line (a crash mid-append) is reported, and the entries before
 * it are kept. Within one process, the spool also remembers how many entries its own file
 * holds and the MAC of the last one, so that whole lines removed from its end, a rolled-back
 * copy, or a deleted file are caught at the next read.
 *
 * What it cannot prove: that a file of an earlier process that ended without its end marker
 * was not cut short by whole lines, and that a whole file was not deleted (or replaced by an
 * earlier copy of itself) before a process adopted it. See the README's Security section.
 *
 * @example
 * ```ts
 * const spool = new DurableSpool<Usage>(directory, logger,
 *   { prefix: "cost-spool-", name: "cost", noun: "usage records" },
 *   { keyring: context.keyring, onIntegrityProblem: (problem) => report(problem) });
 * await spool.append([usage]);          // fsynced, signed
 * const waiting = await spool.readAll(); // only what the MACs prove
 * await spool.dropFirst(waiting.length); // after they are in the database
 * await spool.close();                   // writes the end marker
 * ```
 */
export class DurableSpool<Entry> {
  readonly directory: string;
  readonly #logger: Logger;
  readonly #names: DurableSpoolNames;
  readonly #keyring: () => Keyring;
  readonly #onProblem: ((problem: SpoolIntegrityProblem) => void) | undefined;
  readonly #keyed: boolean;
  /** The file this process appends to, once it has one. */
  #own: OwnFile | null = null;
  /** Spool files of earlier processes, adopted at start, with the entries they proved. */
  #adopted: { path: string; count: number }[] = [];
  /** The files and entry counts the last `readAll` returned, in order. */
  #snapshot: { path: string; count: number }[] | null = null;
  /** File operations, one at a time. */
  #lock: Promise<unknown> = Promise.resolve();
  #depth = 0;
  #warnedUnkeyed = false;

  constructor(
    directory: string,
    logger: Logger,
    names: DurableSpoolNames,
    options: DurableSpoolOptions = {},
  ) {
    if (!/^[a-z][a-z0-9-]*-$/.test(names.prefix)) {
      throw new RangeError(
        `DurableSpool: prefix must be lower-case and end with "-", got ${JSON.stringify(names.prefix)}`,
      );
    }
    this.directory = directory;
    this.#logger = logger;
    this.#names = names;
    const keyring = options.keyring;
    this.#keyed = keyring !== undefined;
    this.#keyring =
      typeof keyring === "function" ? keyring : keyring ? () => keyring : ephemeralKeyring;
    this.#onProblem = options.onIntegrityProblem;
  }

  /** Events waiting in the spool (this process's file and adopted ones). */
  get depth(): number {
    return this.#depth;
  }

  /**
   * This spool stops writing; its files (if any are left) may be adopted by a later process.
   * Without an end marker: prefer {@link DurableSpool.close}.
   */
  release(): void {
    if (this.#own) liveFiles.delete(this.#own.path);
    for (const file of this.#adopted) liveFiles.delete(file.path);
  }

  /**
   * Close the spool cleanly: sign an end marker into this process's file, if entries are left
   * in it, so that the process that adopts it can tell that no line was cut from its end;
   * then release the files. An append after this starts a new file.
   */
  close(): Promise<void> {
    return this.#exclusive(async () => {
      const own = this.#own;
      if (own && own.count > 0 && existsSync(own.path)) {
        try {
          await this.#write(own, endLine(own));
        } catch (error) {
          this.#logger.warn(
            `Could not write the end marker of the ${this.#names.name} spool; the next process replays it all the same, and says it was not closed cleanly.`,
            { file: own.path, error: describe(error) },
          );
        }
      }
      this.release();
      this.#own = null;
    });
  }

  /**
   * Take over the spool files of processes that are gone, so that their entries are
   * replayed. A file is claimed by renaming it: of several starting processes, exactly one
   * gets it. Each claimed file is proven as it is adopted (see the class).
   * @returns the entries adopted.
   */
  adoptOrphans(): Promise<number> {
    return this.#exclusive(async () => {
      if (!existsSync(this.directory)) return 0;
      const claimable = `adopted-${this.#names.prefix}`;
      const names = (await readdir(this.directory)).filter(
        (name) =>
          (name.startsWith(this.#names.prefix) || name.startsWith(claimable)) &&
          name.endsWith(".jsonl"),
      );
      const withTimes = await Promise.all(
        names.map(async (name) => ({
          name,
          mtime: (await stat(join(this.directory, name)).catch(() => null))?.mtimeMs ?? 0,
        })),
      );
      let adopted = 0;
      for (const { name } of withTimes.sort((a, b) => a.mtime - b.mtime)) {
        const path = join(this.directory, name);
        const unprefixed = name.startsWith(claimable) ? name.slice("adopted-".length) : name;
        if (liveFiles.has(path) || !isOrphan(unprefixed, this.#names.prefix)) continue;
        const claimed = this.#newPath("adopted-");
        try {
          await rename(path, claimed);
        } catch {
          liveFiles.delete(claimed);
          continue; // Another process claimed it.
        }
        const proven = await this.#check(claimed, null, name);
        if (proven.path !== null)
          this.#adopted.push({ path: proven.path, count: proven.entries.length });
        adopted += proven.entries.length;
      }
      this.#recount();
      if (adopted > 0)
        this.#logger.warn(
          `Adopted ${adopted} spooled ${this.#names.noun} of an earlier process; they will be replayed.`,
        );
      return adopted;
    });
  }

  /** Append entries durably (signed, written and fsynced before this resolves). */
  append(entries: readonly Entry[]): Promise<void> {
    if (!Array.isArray(entries)) {
      return Promise.reject(
        new InvalidArgumentError(
          "entries",
          "must be an array.",
          "Pass the entries to spool as an array.",
        ),
      );
    }
    if (entries.length === 0) return Promise.resolve();
    return this.#exclusive(async () => {
      if (!this.#keyed && !this.#warnedUnkeyed) {
        this.#warnedUnkeyed = true;
        this.#logger.warn(
          `The ${this.#names.name} spool is signed with a key that lives only as long as this process (no keyring was given): if the process dies, the next one refuses its spool. Pass the chain keyring.`,
        );
      }
      await mkdir(this.directory, { recursive: true, mode: 0o700 });
      const own = this.#own ?? this.#start(this.#newPath(""));
      const lines = own.size === 0 ? [headerLine(this.#names.name, own)] : [];
      let { count, lastMac } = own;
      for (const entry of entries) {
        count++;
        const line = entryLine(own, lastMac, count, entry);
        lastMac = line.mac;
        lines.push(line.text);
      }
      await this.#write(own, lines.join(""));
      own.count = count;
      own.lastMac = lastMac;
      this.#own = own;
      this.#recount();
    });
  }

  /**
   * Every waiting entry that its file's MACs prove, oldest first: adopted files, then this
   * process's own. Problems found on the way are handled as the class describes.
   */
  readAll(): Promise<Entry[]> {
    return this.#exclusive(() => this.#readAll());
  }

  /**
   * Keep only the entries after the first `count` of the last {@link readAll} (they are in
   * the database now). A file is rewritten aside and renamed over, so a crash leaves either
   * the old or the new one; entries replayed twice after a crash are recognized by their id
   * and skipped. Entries appended since that `readAll` are kept.
   */
  dropFirst(count: number): Promise<void> {
    if (!Number.isSafeInteger(count) || count < 0) {
      return Promise.reject(
        new InvalidArgumentError(
          "count",
          `must be a non-negative integer, got ${String(count)}.`,
          "Pass how many of the entries readAll() returned are in the database now.",
        ),
      );
    }
    return this.#exclusive(async () => {
      if (this.#snapshot === null) await this.#readAll();
      const snapshot = this.#snapshot ?? [];
      this.#snapshot = null;
      let remaining = count;
      for (const file of snapshot) {
        if (remaining <= 0) break;
        const drop = Math.min(remaining, file.count);
        remaining -= drop;
        const own = this.#own?.path === file.path ? this.#own : null;
        const adopted = this.#adopted.find((candidate) => candidate.path === file.path);
        if (!own && !adopted) continue; // Refused and set aside since.
        if ((own ?? adopted)?.count === drop) {
          await rm(file.path, { force: true });
          liveFiles.delete(file.path);
          if (own) this.#own = null;
          else this.#adopted = this.#adopted.filter((candidate) => candidate !== adopted);
          continue;
        }
        // Part of the file stays: prove it again, and write what is left as a new signed file.
        const proven = await this.#check(file.path, own, basename(file.path), adopted ?? null);
        const left = proven.entries.slice(drop);
        if (own) {
          // #check may have replaced the file (and this.#own) if it was refused meanwhile.
          const path = proven.path;
          this.#own = path && left.length > 0 ? await this.#writeSigned(path, left, false) : null;
          if (path && left.length === 0) await rm(path, { force: true });
        } else if (adopted) {
          if (proven.path && left.length > 0) await this.#writeSigned(proven.path, left, true);
          else if (proven.path) await rm(proven.path, { force: true });
          adopted.path = proven.path ?? adopted.path;
          adopted.count = left.length;
          this.#adopted = this.#adopted.filter((candidate) => candidate.count > 0);
        }
      }
      this.#recount();
    });
  }

  // ---------------------------------------------------------------------------------------

  #exclusive<T>(operation: () => Promise<T>): Promise<T> {
    const result = this.#lock.then(operation, operation);
    this.#lock = result.catch(() => undefined);
    return result;
  }

  #newPath(kind: "" | "adopted-" | "rejected-"): string {
    const path = join(
      this.directory,
      `${kind}${this.#names.prefix}${hostname()}-${process.pid}-${randomBytes(6).toString("hex")}.jsonl`,
    );
    if (kind !== "rejected-") liveFiles.add(path);
    return path;
  }

  /** A new file's state: the current key, a fresh nonce, nothing written yet. */
  #start(path: string): OwnFile {
    const key = this.#keyring().current;
    const nonce = randomBytes(16).toString("hex");
    return {
      path,
      key,
      nonce,
      count: 0,
      lastMac: headerMac(this.#names.name, key, nonce),
      size: 0,
    };
  }

  /**
   * Append text to a file this process writes, fsynced. A failed write is cut back off, so
   * that a half-written line never sits between two good ones.
   */
  async #write(file: OwnFile, text: string): Promise<void> {
    const handle = await open(file.path, "a", 0o600);
    try {
      const before = file.size;
      try {
        await handle.writeFile(text, "utf8");
        await handle.datasync();
      } catch (error) {
        await handle.truncate(before).catch(() => undefined);
        throw error;
      }
      file.size = before + Buffer.byteLength(text, "utf8");
    } finally {
      await handle.close();
    }
  }

  async #readAll(): Promise<Entry[]> {
    const all: Entry[] = [];
    const snapshot: { path: string; count: number }[] = [];
    const adopted: { path: string; count: number }[] = [];
    for (const file of this.#adopted) {
      const proven = await this.#check(file.path, null, basename(file.path), file);
      if (proven.path === null || proven.entries.length === 0) continue;
      adopted.push({ path: proven.path, count: proven.entries.length });
      snapshot.push({ path: proven.path, count: proven.entries.length });
      all.push(...proven.entries);
    }
    this.#adopted = adopted;
    const own = this.#own;
    if (own && (own.count > 0 || existsSync(own.path))) {
      const proven = await this.#check(own.path, own, basename(own.path));
      if (proven.path !== null && proven.entries.length > 0) {
        snapshot.push({ path: proven.path, count: proven.entries.length });
        all.push(...proven.entries);
      }
    }
    this.#snapshot = snapshot;
    this.#recount();
    return all;
  }

  /**
   * Read and prove one file (`own`: this process's, held to what it wrote). A refused file is
   * renamed aside, and what it proved goes to a new signed file (for this process's own file,
   * a new own file). A torn or unclosed file of an earlier process is reported once and
   * rewritten closed, so that from now on nothing can be cut from it unnoticed.
   * @returns the proven entries, and the file that now holds them (null: none).
   */
  async #check(
    path: string,
    own: OwnFile | null,
    name: string,
    adopted: { count: number } | null = null,
  ): Promise<{ entries: Entry[]; path: string | null }> {
    let text: string | null = null;
    try {
      text = await readFile(path, "utf8");
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
    }
    // What this process knows the file must hold: what it wrote, or what it adopted (and
    // rewrote closed).
    const expected = own
      ? { count: own.count, closed: false }
      : adopted && { ...adopted, closed: true };
    const contents: FileContents<Entry> =
      text === null
        ? {
            entries: [],
            closed: false,
            problem:
              expected && expected.count > 0
                ? { kind: "rejected", line: null, reason: "the file was deleted" }
                : null,
          }
        : parseSpoolFile<Entry>(text, this.#names.name, (keyId) =>
            own && own.key.id === keyId ? own.key : this.#keyring().find(keyId),
          );
    const { entries, problem } = contents;
    if (
      expected &&
      text !== null &&
      problem?.kind !== "rejected" &&
      (problem !== null || entries.length !== expected.count || contents.closed !== expected.closed)
    ) {
      // Whole lines cut from the end, or an earlier copy put back, leave a valid file: only
      // this process's memory of what the file holds can tell.
      contents.problem = {
        kind: "rejected",
        line: problem?.line ?? null,
        reason: `it holds ${entries.length} entries where this process ${own ? "wrote" : "adopted"} ${expected.count} (truncated or rolled back)`,
      };
    }
    const found = contents.problem;
    if (found?.kind === "rejected") {
      let keptAs: string | null = null;
      if (text !== null) {
        keptAs = this.#newPath("rejected-");
        await rename(path, keptAs);
      }
      liveFiles.delete(path);
      this.#report({
        ...found,
        file: name,
        keptAs: keptAs === null ? null : basename(keptAs),
        proven: entries.length,
        lost: expected ? Math.max(0, expected.count - entries.length) : null,
      });
      if (own) this.#own = null;
      if (entries.length === 0) return { entries, path: null };
      const replacement = this.#newPath(own ? "" : "adopted-");
      const written = await this.#writeSigned(replacement, entries, !own);
      if (own) this.#own = written;
      return { entries, path: replacement };
    }
    if (found?.kind === "torn" || (!expected && !contents.closed && entries.length > 0)) {
      // A file of an earlier process, adopted now: report it once, and keep what it proves
      // in a closed file, so that from now on nothing can be cut from it unnoticed.
      this.#report({
        kind: found?.kind ?? "unclosed",
        line: found?.line ?? null,
        reason:
          found?.reason ??
          "the process that wrote it did not close it cleanly, so lines cut from its end could not be noticed",
        file: name,
        keptAs: null,
        proven: entries.length,
        lost: null,
      });
      if (entries.length === 0) {
        await rm(path, { force: true });
        liveFiles.delete(path);
        return { entries, path: null };
      }
      await this.#writeSigned(path, entries, true);
    } else if (!expected && text !== null && entries.length === 0) {
      // An empty file (a header alone, or nothing).
      await rm(path, { force: true });
      liveFiles.delete(path);
      return { entries, path: null };
    }
    return { entries, path };
  }

  /**
   * Write `entries` as a complete signed file at `path` (aside first, then renamed over),
   * with an end marker when `closed`.
   */
  async #writeSigned(path: string, entries: readonly Entry[], closed: boolean): Promise<OwnFile> {
    const file = this.#start(`${path}.${randomBytes(4).toString("hex")}.tmp`);
    const lines = [headerLine(this.#names.name, file)];
    entries.forEach((entry, index) => {
      const line = entryLine(file, file.lastMac, index + 1, entry);
      file.lastMac = line.mac;
      lines.push(line.text);
    });
    file.count = entries.length;
    if (closed) lines.push(endLine(file));
    await mkdir(this.directory, { recursive: true, mode: 0o700 });
    await this.#write(file, lines.join(""));
    await rename(file.path, path);
    return { ...file, path };
  }

  #recount(): void {
    this.#depth =
      this.#adopted.reduce((sum, file) => sum + file.count, 0) + (this.#own?.count ?? 0);
  }

  #report(details: Omit<SpoolIntegrityProblem, "spool">): void {
    const problem: SpoolIntegrityProblem = { spool: this.#names.name, ...details };
    const fields = { ...problem, directory: this.directory };
    const where = problem.line === null ? "" : ` (line ${problem.line})`;
    if (problem.kind === "rejected") {
      this.#logger.error(
        `The ${this.#names.name} spool file ${problem.file} was refused: ${problem.reason}${where}. It is kept as ${problem.keptAs ?? "nothing (it is gone)"}; only the ${problem.proven} ${this.#names.noun} proven before that are replayed${problem.lost ? `, and ${problem.lost} that this process spooled are lost` : ""}.`,
        fields,
      );
    } else if (problem.kind === "torn") {
      this.#logger.warn(
        `Ignoring a torn last line in the ${this.#names.name} spool (an append that never completed); the ${problem.proven} ${this.#names.noun} before it are replayed.`,
        fields,
      );
    } else {
      this.#logger.warn(
        `The ${this.#names.name} spool file ${problem.file} of an earlier process has no end marker (it did not close cleanly): lines cut from its end could not be noticed.`,
        fields,
      );
    }
    try {
      this.#onProblem?.(problem);
    } catch {
      // A reporting hook must not stop the replay.
    }
  }
}

/** A random key that lives as long as this process, for spools given no keyring. */
function ephemeralKeyring(): Keyring {
  processKeyring ??= new Keyring(new ChainKey(randomBytes(48).toString("base64url"), "spool key"));
  return processKeyring;
}

function headerMacInput(spool: string, keyId: string, nonce: string): string {
  return `${MAC_DOMAIN}\0header\0${spool}\0${keyId}\0${nonce}`;
}

function headerMac(spool: string, key: ChainKey, nonce: string): string {
  return key.hmacHex(headerMacInput(spool, key.id, nonce));
}

function lineMacInput(nonce: string, previousMac: string, seq: number, entry: string): string {
  return `${MAC_DOMAIN}\0line\0${nonce}\0${previousMac}\0${seq}\0${entry}`;
}

function endMacInput(nonce: string, previousMac: string, count: number): string {
  return `${MAC_DOMAIN}\0end\0${nonce}\0${previousMac}\0${count}`;
}

/** A file's first line: what it is, the key that signs it, its nonce, and their MAC. */
function headerLine(spool: string, file: OwnFile): string {
  const header = {
    format: FORMAT,
    v: FORMAT_VERSION,
    spool,
    keyId: file.key.id,
    nonce: file.nonce,
    mac: headerMac(spool, file.key, file.nonce),
  };
  return `${JSON.stringify(header)}\n`;
}

/** Entry `seq`'s line, chained to the line before it by `previousMac`. */
function entryLine(
  file: OwnFile,
  previousMac: string,
  seq: number,
  entry: unknown,
): { text: string; mac: string } {
  const json = JSON.stringify(entry);
  const mac = file.key.hmacHex(lineMacInput(file.nonce, previousMac, seq, json));
  return { text: `{"seq":${seq},"mac":"${mac}","entry":${json}}\n`, mac };
}

/** The end marker after the file's last entry. */
function endLine(file: OwnFile): string {
  const mac = file.key.hmacHex(endMacInput(file.nonce, file.lastMac, file.count));
  return `${JSON.stringify({ end: true, count: file.count, mac })}\n`;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * Prove a spool file's text: its signed header, then each line's sequence number and chained
 * MAC, then the optional end marker. Stops at the first problem, keeping what was proven
 * before it. A last line without its line feed is torn (a write that never completed); any
 * other bad line is tampering.
 */
function parseSpoolFile<Entry>(
  text: string,
  spool: string,
  findKey: (keyId: string) => ChainKey | undefined,
): FileContents<Entry> {
  const entries: Entry[] = [];
  const lines = text.split("\n");
  const tail = lines.pop() ?? "";
  const fail = (line: number, reason: string): FileContents<Entry> => ({
    entries,
    closed: false,
    problem: { kind: "rejected", line, reason },
  });
  if (lines.length === 0) {
    return {
      entries,
      closed: false,
      problem: tail === "" ? null : { kind: "torn", line: 1, reason: "the header is incomplete" },
    };
  }
  let header: unknown;
  try {
    header = JSON.parse(lines[0] as string);
  } catch {
    header = null;
  }
  if (!isRecord(header) || header.format !== FORMAT) {
    return fail(1, "it has no signed header (not a spool file of this version, or forged)");
  }
  if (header.v !== FORMAT_VERSION)
    return fail(1, `its format version ${String(header.v)} is not known`);
  if (header.spool !== spool)
    return fail(1, `it is a ${String(header.spool)} spool, not a ${spool} spool`);
  const { keyId, nonce, mac } = header;
  if (
    typeof keyId !== "string" ||
    typeof nonce !== "string" ||
    !/^[0-9a-f]{32}$/.test(nonce) ||
    typeof mac !== "string"
  ) {
    return fail(1, "its header is malformed");
  }
  const key = findKey(keyId);
  if (!key) {
    return fail(
      1,
      `it is signed with key ${keyId}, which is not in the keyring (supply it as a historical key, then move the file back under its original name)`,
    );
  }
  if (!key.verifyHex(headerMacInput(spool, keyId, nonce), mac)) {
    return fail(1, "its header's MAC does not verify");
  }
  let previous = mac;
  let closed = false;
  for (let index = 1; index < lines.length; index++) {
    const number = index + 1;
    if (closed) return fail(number, "a line follows its end marker");
    let line: unknown;
    try {
      line = JSON.parse(lines[index] as string);
    } catch {
      line = null;
    }
    if (!isRecord(line) || typeof line.mac !== "string") {
      return fail(number, "the line is not a signed spool line");
    }
    if (line.end === true) {
      if (
        line.count !== entries.length ||
        !key.verifyHex(endMacInput(nonce, previous, entries.length), line.mac)
      ) {
        return fail(number, "its end marker does not verify (lines were removed or moved)");
      }
      closed = true;
      continue;
    }
    const seq = entries.length + 1;
    if (line.seq !== seq || !("entry" in line)) {
      return fail(
        number,
        `expected entry ${seq}, found ${typeof line.seq === "number" ? `entry ${line.seq}` : "no sequence number"} (a line was removed, inserted or moved)`,
      );
    }
    if (!key.verifyHex(lineMacInput(nonce, previous, seq, JSON.stringify(line.entry)), line.mac)) {
      return fail(
        number,
        "its MAC does not verify (the line was edited, or comes from another spool file)",
      );
    }
    entries.push(line.entry as Entry);
    previous = line.mac;
  }
  if (tail !== "") {
    if (closed) return fail(lines.length + 1, "a line follows its end marker");
    return {
      entries,
      closed,
      problem: {
        kind: "torn",
        line: lines.length + 1,
        reason: "its last line is incomplete (an append that never completed)",
      },
    };
  }
  return { entries, closed, problem: null };
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

function describe(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}
