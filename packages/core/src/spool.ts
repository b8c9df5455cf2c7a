import { createHash, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, open, readdir, readFile, rename, rm, stat } from "node:fs/promises";
import { hostname } from "node:os";
import { basename, join } from "node:path";
import { describeError } from "./describe";
import { CORE_ERROR_CODES, GovernanceError, InvalidArgumentError } from "./errors";
import { ChainKey, constantTimeEqualHex, KEY_ID_LENGTH, Keyring } from "./keys";
import type { Logger } from "./logger";

/** Spool files held by spools of this process, which are never orphans. */
const liveFiles = new Set<string>();

/** The format of a spool file: its first line, each entry's line, the end marker. */
const FORMAT = "gov.spool";
const FORMAT_VERSION = 1;
const MAC_DOMAIN = "gov.spool.v1";
/** A key id as a header names it: the first hex characters of the key's fingerprint. */
const KEY_ID = new RegExp(`^[0-9a-f]{${KEY_ID_LENGTH}}$`);

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
 * - `rejected`: the file was edited, reordered, spliced, truncated or rolled back, replaced
 *   by another spool file, signed with a retired key, or its signature cannot be checked. It
 *   was renamed aside (`keptAs`) for inspection; only the `proven` entries before the first
 *   bad line are replayed (none of a file that replaced one this process held, or of a file
 *   signed with a retired key: those wait for an explicit import, see {@link readSpoolFile}).
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
  /** The key the file's header names (an id, never the key), when it has a readable header. */
  keyId: string | null;
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
   * Whether a key of the keyring was retired (rotated out). A file of an earlier process
   * signed with a retired key is not replayed: whoever still holds that key could have
   * written it. It is refused (`rejected`, kept aside) for an explicit import
   * ({@link readSpoolFile}). The key of this process's own file is never held against it: a
   * process that has not learned of a rotation goes on spooling under its key. Asked at every
   * read, so that a file adopted before the rotation history was known is refused once it is.
   * What it throws counts as retired.
   * @default no key is retired
   */
  isRetiredKey?: (keyId: string) => boolean;
  /**
   * Host names whose spool files this spool adopts as if they were its own host's, without
   * asking whether their writer runs (a process cannot tell that of a process on another
   * host). For hosts that are gone: a container recreated on the same volume gets a new host
   * name. Never name a host that still runs a process writing into this directory. Files of
   * other hosts are left alone, and reported ({@link DurableSpoolOptions.onStranded}).
   * @default []
   */
  adoptHosts?: readonly string[];
  /**
   * Told about every integrity problem (after it was logged), e.g. to record an audit event.
   * It must not throw; what it throws is ignored.
   */
  onIntegrityProblem?: (problem: SpoolIntegrityProblem) => void;
  /**
   * Told, when {@link DurableSpool.adoptOrphans} finds spool files of other hosts that it
   * leaves alone (after a warning was logged), e.g. to record an audit event. It must not
   * throw; what it throws is ignored.
   */
  onStranded?: (stranded: StrandedSpoolFiles) => void;
}

/**
 * Spool files of other hosts that {@link DurableSpool.adoptOrphans} found and left alone: it
 * cannot tell whether their writers still run. Their entries wait until those hosts adopt
 * them, or until this process is told the hosts are gone
 * ({@link DurableSpoolOptions.adoptHosts}).
 */
export interface StrandedSpoolFiles {
  /** The spool's name, e.g. `audit`. */
  spool: string;
  /** How many files. */
  files: number;
  /** Per host (at most 100, the most files first): how many files, and when they were last written. */
  hosts: { host: string; files: number; oldestModifiedAt: string; newestModifiedAt: string }[];
  /** How long ago the oldest of them was last written, in milliseconds. */
  oldestAgeMs: number;
}

/** A key that lives as long as this process, for spools given no keyring. */
let processKeyring: Keyring | null = null;

/**
 * What this process knows a spool file it holds must be: the key and nonce of its header, its
 * entry count, the MAC of its last entry, and whether it ends with its end marker. A file
 * that differs in any of them is not the file this process wrote or adopted.
 */
interface KnownFile {
  path: string;
  keyId: string;
  nonce: string;
  /** Entries written (and acknowledged), or adopted. */
  count: number;
  /** The MAC of the last entry (the header's, before the first entry). */
  lastMac: string;
  closed: boolean;
}

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
  /** Its header's key id and nonce, when the header is well-formed (proven or not). */
  header: { keyId: string; nonce: string } | null;
  /** The MAC of the last proven entry (the header's when none); null if the header is not proven. */
  lastMac: string | null;
}

/** What a file this process writes is known to be. */
function knownOf(file: OwnFile, closed: boolean): KnownFile {
  return {
    path: file.path,
    keyId: file.key.id,
    nonce: file.nonce,
    count: file.count,
    lastMac: file.lastMac,
    closed,
  };
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
 * it are kept. For every file it holds — its own and those it adopted — the spool also
 * remembers the key and nonce of its header, how many entries it holds and the MAC of the
 * last one, so that whole lines removed from its end, a rolled-back copy, a deleted file, or
 * another valid spool file put in its place are caught at the next read (a replaced file is
 * refused whole: none of its entries are what this process acknowledged).
 *
 * A file of an earlier process signed with a retired key ({@link DurableSpoolOptions.isRetiredKey})
 * is refused and kept aside for an explicit import ({@link readSpoolFile}): its writer may be
 * whoever still holds that key. Files of other hosts are not adopted (a process cannot tell
 * whether their writers run) but reported, unless their hosts are named in
 * {@link DurableSpoolOptions.adoptHosts}.
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
  readonly #onStranded: ((stranded: StrandedSpoolFiles) => void) | undefined;
  readonly #isRetiredKey: ((keyId: string) => boolean) | undefined;
  readonly #adoptHosts: ReadonlySet<string>;
  readonly #keyed: boolean;
  /** The file this process appends to, once it has one. */
  #own: OwnFile | null = null;
  /** Spool files of earlier processes, adopted at start, as this process knows them. */
  #adopted: KnownFile[] = [];
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
    this.#onStranded = options.onStranded;
    this.#isRetiredKey = options.isRetiredKey;
    this.#adoptHosts = new Set(spoolHostNames(options.adoptHosts ?? [], "adoptHosts"));
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
            { file: own.path, error: describeError(error) },
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
      const stranded: { host: string; mtime: number }[] = [];
      for (const { name, mtime } of withTimes.sort((a, b) => a.mtime - b.mtime)) {
        const path = join(this.directory, name);
        const unprefixed = name.startsWith(claimable) ? name.slice("adopted-".length) : name;
        const writer = writerOf(unprefixed, this.#names.prefix);
        if (liveFiles.has(path) || !writer) continue;
        if (writer.host !== hostname()) {
          // Whether its writer runs cannot be told from here: only if told its host is gone.
          if (!this.#adoptHosts.has(writer.host)) {
            stranded.push({ host: writer.host, mtime });
            continue;
          }
        } else if (!isGone(writer.pid)) continue;
        const claimed = this.#newPath("adopted-");
        try {
          await rename(path, claimed);
        } catch {
          liveFiles.delete(claimed);
          continue; // Another process claimed it.
        }
        const proven = await this.#check(claimed, null, name);
        if (proven.file !== null) this.#adopted.push(proven.file);
        adopted += proven.entries.length;
      }
      this.#recount();
      if (stranded.length > 0) this.#reportStranded(stranded);
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
        const path = proven.file?.path ?? null;
        if (own) {
          // #check may have replaced the file (and this.#own) if it was refused meanwhile.
          this.#own = path && left.length > 0 ? await this.#writeSigned(path, left, false) : null;
          if (path && left.length === 0) await rm(path, { force: true });
        } else if (adopted) {
          // What is left keeps the key of the file it came from (a retired key stays visible).
          const rest =
            path && left.length > 0
              ? knownOf(
                  await this.#writeSigned(path, left, true, this.#keyOf(proven.file?.keyId)),
                  true,
                )
              : null;
          if (path && !rest) await rm(path, { force: true });
          this.#adopted = this.#adopted.flatMap((candidate) =>
            candidate !== adopted ? [candidate] : rest ? [rest] : [],
          );
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

  /** A new file's state: the key (by default the current one), a fresh nonce, nothing written yet. */
  #start(path: string, key: ChainKey = this.#keyring().current): OwnFile {
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
    const adopted: KnownFile[] = [];
    for (const file of this.#adopted) {
      const proven = await this.#check(file.path, null, basename(file.path), file);
      if (proven.file === null || proven.entries.length === 0) continue;
      adopted.push(proven.file);
      snapshot.push({ path: proven.file.path, count: proven.entries.length });
      all.push(...proven.entries);
    }
    this.#adopted = adopted;
    const own = this.#own;
    if (own && (own.count > 0 || existsSync(own.path))) {
      const proven = await this.#check(own.path, own, basename(own.path));
      if (proven.file !== null && proven.entries.length > 0) {
        snapshot.push({ path: proven.file.path, count: proven.entries.length });
        all.push(...proven.entries);
      }
    }
    this.#snapshot = snapshot;
    this.#recount();
    return all;
  }

  /**
   * Read and prove one file: `own`, this process's, held to what it wrote; `adopted`, one it
   * adopted, held to what it adopted; neither, a file of an earlier process read for the first
   * time. A refused file is renamed aside, and what it proved goes to a new signed file (for
   * this process's own file, a new own file). A torn or unclosed file of an earlier process is
   * reported once and rewritten closed, so that from now on nothing can be cut from it
   * unnoticed. A file rewritten for an earlier process keeps that file's key.
   * @returns the proven entries, and the file that now holds them (null: none).
   */
  async #check(
    path: string,
    own: OwnFile | null,
    name: string,
    adopted: KnownFile | null = null,
  ): Promise<{ entries: Entry[]; file: KnownFile | null }> {
    let text: string | null = null;
    try {
      text = await readFile(path, "utf8");
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
    }
    // What this process knows the file must be: what it wrote, or what it adopted (and
    // rewrote closed).
    const expected = own ? knownOf(own, false) : adopted;
    const contents: FileContents<Entry> =
      text === null
        ? {
            entries: [],
            closed: false,
            header: null,
            lastMac: null,
            problem:
              expected && expected.count > 0
                ? { kind: "rejected", line: null, reason: "the file was deleted" }
                : null,
          }
        : parseSpoolFile<Entry>(
            text,
            this.#names.name,
            (keyId) => (own && own.key.id === keyId ? own.key : this.#keyring().find(keyId)),
            // This process's own key is never held against its own file.
            own ? () => false : (keyId) => this.#retired(keyId),
          );
    const { header } = contents;
    if (
      expected &&
      header &&
      (header.keyId !== expected.keyId || !constantTimeEqualHex(expected.nonce, header.nonce))
    ) {
      // Another valid spool file (an earlier one, another process's, a decoy) in its place:
      // none of its entries are what this process acknowledged.
      contents.entries = [];
      contents.problem = {
        kind: "rejected",
        line: 1,
        reason: `it was replaced by another spool file (its header names key ${header.keyId} and a nonce other than the file this process ${own ? "wrote" : "adopted"})`,
      };
    } else if (
      expected &&
      text !== null &&
      contents.problem?.kind !== "rejected" &&
      (contents.problem !== null ||
        contents.entries.length !== expected.count ||
        contents.closed !== expected.closed ||
        !constantTimeEqualHex(expected.lastMac, contents.lastMac ?? ""))
    ) {
      // Whole lines cut from the end, or an earlier copy put back, leave a valid file: only
      // this process's memory of what the file holds can tell.
      contents.problem = {
        kind: "rejected",
        line: contents.problem?.line ?? null,
        reason: `it holds ${contents.entries.length} entries where this process ${own ? "wrote" : "adopted"} ${expected.count} (truncated or rolled back)`,
      };
    }
    const { entries } = contents;
    const found = contents.problem;
    const keyId = header?.keyId ?? null;
    // A file of an earlier process is rewritten under its own key; this process's under the current one.
    const fileKey = own ? undefined : this.#keyOf(keyId ?? undefined);
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
        keyId,
        proven: entries.length,
        lost: expected ? Math.max(0, expected.count - entries.length) : null,
      });
      if (own) this.#own = null;
      if (entries.length === 0) return { entries, file: null };
      const replacement = this.#newPath(own ? "" : "adopted-");
      const written = await this.#writeSigned(replacement, entries, !own, fileKey);
      if (own) this.#own = written;
      return { entries, file: knownOf(written, !own) };
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
        keyId,
        proven: entries.length,
        lost: null,
      });
      if (entries.length === 0) {
        await rm(path, { force: true });
        liveFiles.delete(path);
        return { entries, file: null };
      }
      return {
        entries,
        file: knownOf(await this.#writeSigned(path, entries, true, fileKey), true),
      };
    }
    if (!expected && text !== null && entries.length === 0) {
      // An empty file (a header alone, or nothing).
      await rm(path, { force: true });
      liveFiles.delete(path);
      return { entries, file: null };
    }
    if (expected) return { entries, file: { ...expected, path } };
    if (!header || contents.lastMac === null) return { entries, file: null };
    return {
      entries,
      file: {
        path,
        keyId: header.keyId,
        nonce: header.nonce,
        count: entries.length,
        lastMac: contents.lastMac,
        closed: true,
      },
    };
  }

  /** Whether a key is retired; a predicate that throws counts it retired (fail closed). */
  #retired(keyId: string): boolean {
    if (!this.#isRetiredKey) return false;
    try {
      return Boolean(this.#isRetiredKey(keyId));
    } catch {
      return true;
    }
  }

  /** The keyring's key with this id (the current key when there is no id or no such key). */
  #keyOf(keyId: string | undefined): ChainKey {
    const keyring = this.#keyring();
    return (keyId === undefined ? undefined : keyring.find(keyId)) ?? keyring.current;
  }

  /**
   * Write `entries` as a complete signed file at `path` (aside first, then renamed over),
   * with an end marker when `closed`.
   */
  async #writeSigned(
    path: string,
    entries: readonly Entry[],
    closed: boolean,
    key?: ChainKey,
  ): Promise<OwnFile> {
    const file = this.#start(`${path}.${randomBytes(4).toString("hex")}.tmp`, key);
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

  /** Spool files of other hosts were left alone: say how many, whose, how old, and the way out. */
  #reportStranded(files: readonly { host: string; mtime: number }[]): void {
    const byHost = new Map<string, { files: number; oldest: number; newest: number }>();
    for (const { host, mtime } of files) {
      const entry = byHost.get(host) ?? { files: 0, oldest: mtime, newest: mtime };
      entry.files++;
      entry.oldest = Math.min(entry.oldest, mtime);
      entry.newest = Math.max(entry.newest, mtime);
      byHost.set(host, entry);
    }
    const hosts = [...byHost]
      .sort(([a, x], [b, y]) => y.files - x.files || (a < b ? -1 : a > b ? 1 : 0))
      .slice(0, 100)
      .map(([host, entry]) => ({
        host,
        files: entry.files,
        oldestModifiedAt: new Date(entry.oldest).toISOString(),
        newestModifiedAt: new Date(entry.newest).toISOString(),
      }));
    // File times are the machine's wall time, so the age is measured against it, not a clock.
    const oldestAgeMs = Math.max(0, Date.now() - Math.min(...files.map((file) => file.mtime)));
    const stranded: StrandedSpoolFiles = {
      spool: this.#names.name,
      files: files.length,
      hosts,
      oldestAgeMs,
    };
    const listed = hosts
      .slice(0, 10)
      .map((host) => `${host.host}: ${host.files}`)
      .join(", ");
    this.#logger.warn(
      `${files.length} ${this.#names.name} spool file${files.length === 1 ? " of another host is" : "s of other hosts are"} not adopted (${listed}${hosts.length > 10 ? ", …" : ""}; the oldest last written ${formatAge(oldestAgeMs)} ago): a process cannot tell whether a writer on another host still runs, so their ${this.#names.noun} wait for that host. If those hosts are gone (a container recreated on the same volume gets a new host name), name them in the spool's adoptHosts option to adopt their files.`,
      { ...stranded, directory: this.directory },
    );
    try {
      this.#onStranded?.(stranded);
    } catch {
      // A reporting hook must not stop the start.
    }
  }
}

/**
 * A spool file given to {@link readSpoolFile} was refused: what it holds is not proven, or
 * not accepted as it is (a retired key, no signature). Nothing was read from it.
 */
export class SpoolFileError extends GovernanceError {
  static override readonly errorIdentity: string = "@gov/core.SpoolFileError";

  /** The file's name (without its directory). */
  readonly file: string;
  /** The first bad line (1 is the header), when there is one. */
  readonly line: number | null;
  /** What is wrong, in words. */
  readonly reason: string;

  constructor(details: { file: string; line: number | null; reason: string; fix: string }) {
    const where = details.line === null ? "" : ` (line ${details.line})`;
    super({
      code: CORE_ERROR_CODES.SPOOL_FILE_REFUSED,
      message: `The spool file ${details.file} was refused: ${details.reason}${where}.`,
      recoveryHint: details.fix,
    });
    this.name = "SpoolFileError";
    this.file = details.file;
    this.line = details.line;
    this.reason = details.reason;
  }
}

/** Options of {@link readSpoolFile}. */
export interface ReadSpoolFileOptions {
  /** The spool's name, as its header names it, e.g. `audit`. */
  name: string;
  /** The keys that may have signed it (a file's header names its key). */
  keyring: Keyring;
  /** Which keys of the keyring are retired (see {@link DurableSpoolOptions.isRetiredKey}). */
  isRetiredKey?: (keyId: string) => boolean;
  /**
   * Accept a file signed with a retired key: for an operator who knows that a process of
   * theirs still held that key when it wrote the file (it had not learned of the rotation).
   * @default false
   */
  acceptRetiredKey?: boolean;
  /**
   * Accept a file without a signature — the JSON lines, one entry each, of the spool format
   * before files were signed — for an operator who knows where it comes from. Its entries
   * prove nothing: anyone who could write the file could have written them.
   * @default false
   */
  acceptUnsigned?: boolean;
}

/** What {@link readSpoolFile} read. */
export interface SpoolFileContents<Entry> {
  /** The entries, in order. */
  entries: Entry[];
  /** Whether the file is signed (false: an unsigned file, accepted with `acceptUnsigned`). */
  signed: boolean;
  /** The key its header names; null for an unsigned file. */
  keyId: string | null;
  /** Whether that key is retired (accepted with `acceptRetiredKey`). */
  retiredKey: boolean;
  /** Whether it ends with its end marker (its writer closed it cleanly). */
  closed: boolean;
  /** Whether its last line was torn (an append that never completed, ignored). */
  torn: boolean;
  /** SHA-256 (hex) of the whole file as read, to name it in evidence. */
  sha256: string;
}

/**
 * Read one spool file for an explicit import — a file {@link DurableSpool} refused or left
 * alone: one signed with a retired key, an unsigned file of an earlier version, a file of
 * another host, a file that replaced one a process held. A signed file must prove whole (a
 * torn last line aside): any bad line refuses it. What automatic replay refuses is refused
 * here too, unless the caller says to accept it (`acceptRetiredKey`, `acceptUnsigned`): the
 * caller, not the file, vouches for it, and should record who did and why. The file is only
 * read, never changed.
 *
 * Rejects with {@link SpoolFileError} (`SPOOL_FILE_REFUSED`) naming the line and the reason,
 * and with `INVALID_ARGUMENT` for bad arguments.
 *
 * @example
 * ```ts
 * const file = await readSpoolFile<Usage>("rejected-cost-spool-….jsonl", {
 *   name: "cost", keyring, isRetiredKey, acceptRetiredKey: true,
 * });
 * file.entries; // in order; file.keyId, file.retiredKey, file.sha256 for the record
 * ```
 */
export async function readSpoolFile<Entry>(
  path: string,
  options: ReadSpoolFileOptions,
): Promise<SpoolFileContents<Entry>> {
  if (typeof path !== "string" || path.length === 0) {
    throw new InvalidArgumentError(
      "path",
      "must be the path of a spool file.",
      "Pass the path of the file to import.",
    );
  }
  if (
    !isRecord(options) ||
    typeof options.name !== "string" ||
    typeof (options.keyring as Partial<Keyring> | undefined)?.find !== "function"
  ) {
    throw new InvalidArgumentError(
      "options",
      "must be { name, keyring } (the spool's name and the chain keyring).",
      'Pass e.g. { name: "audit", keyring }.',
    );
  }
  const file = basename(path);
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    throw new SpoolFileError({
      file,
      line: null,
      reason: `it cannot be read (${describeError(error)})`,
      fix: "Check the path, and that this process may read the file.",
    });
  }
  const sha256 = createHash("sha256").update(text, "utf8").digest("hex");
  const { keyring, isRetiredKey } = options;
  const retired = (keyId: string) => {
    try {
      return Boolean(isRetiredKey?.(keyId));
    } catch {
      return true;
    }
  };
  const newline = text.indexOf("\n");
  let first: unknown;
  try {
    first = JSON.parse(newline < 0 ? text : text.slice(0, newline));
  } catch {
    first = undefined;
  }
  if (isRecord(first) && !("format" in first)) {
    if (!options.acceptUnsigned) {
      throw new SpoolFileError({
        file,
        line: 1,
        reason:
          "it is unsigned (the spool format of earlier versions, or a file written by hand): nothing proves who wrote its entries",
        fix: "If you know where it comes from (a spool left by the previous version), import it with unsigned files accepted (acceptUnsigned: true); otherwise keep it as evidence.",
      });
    }
    return { ...readUnsigned<Entry>(text, file), sha256 };
  }
  const contents = parseSpoolFile<Entry>(
    text,
    options.name,
    (keyId) => keyring.find(keyId),
    options.acceptRetiredKey ? () => false : retired,
  );
  const problem = contents.problem;
  const key = contents.header ? keyring.find(contents.header.keyId) : undefined;
  if (problem?.kind === "rejected" || (problem && contents.header === null)) {
    const retiredKey = !options.acceptRetiredKey && key !== undefined && retired(key.id);
    throw new SpoolFileError({
      file,
      line: problem.line,
      reason: problem.reason,
      fix: retiredKey
        ? "If you know that a process of yours wrote it while it still held that key (it had not learned of the rotation), import it with the retired key accepted (acceptRetiredKey: true); otherwise keep it as evidence."
        : contents.header && !key
          ? "Add the key that signed it to the keyring as a historical key (GOVERNANCE_CHAIN_KEY_<key id>), then import it again."
          : "The file is not what its writer signed: keep it as evidence; only its writer's entries before the bad line could be trusted.",
    });
  }
  return {
    entries: contents.entries,
    signed: true,
    keyId: key?.id ?? null,
    retiredKey: key !== undefined && retired(key.id),
    closed: contents.closed,
    torn: problem?.kind === "torn",
    sha256,
  };
}

/** The entries of an unsigned spool file: one JSON value a line; a torn last line is ignored. */
function readUnsigned<Entry>(text: string, file: string): Omit<SpoolFileContents<Entry>, "sha256"> {
  const lines = text.split("\n");
  const tail = lines.pop() ?? "";
  const entries: Entry[] = [];
  for (const [index, line] of lines.entries()) {
    if (line.trim() === "") continue;
    try {
      entries.push(JSON.parse(line) as Entry);
    } catch {
      throw new SpoolFileError({
        file,
        line: index + 1,
        reason: "the line is not JSON (and it is not the last, torn, line)",
        fix: "The file was damaged or edited: keep it as evidence, or remove the damaged line by hand if you know what it held.",
      });
    }
  }
  return {
    entries,
    signed: false,
    keyId: null,
    retiredKey: false,
    closed: false,
    torn: tail.trim() !== "",
  };
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
 * other bad line is tampering. A header signed with a key that `isRetired` says was retired
 * is refused: the file proves nothing.
 */
function parseSpoolFile<Entry>(
  text: string,
  spool: string,
  findKey: (keyId: string) => ChainKey | undefined,
  isRetired: (keyId: string) => boolean,
): FileContents<Entry> {
  const entries: Entry[] = [];
  const lines = text.split("\n");
  const tail = lines.pop() ?? "";
  let header: FileContents<Entry>["header"] = null;
  let previous: string | null = null;
  const fail = (line: number, reason: string): FileContents<Entry> => ({
    entries,
    closed: false,
    header,
    lastMac: previous,
    problem: { kind: "rejected", line, reason },
  });
  if (lines.length === 0) {
    return {
      entries,
      closed: false,
      header,
      lastMac: null,
      problem: tail === "" ? null : { kind: "torn", line: 1, reason: "the header is incomplete" },
    };
  }
  let first: unknown;
  try {
    first = JSON.parse(lines[0] as string);
  } catch {
    first = null;
  }
  if (!isRecord(first) || first.format !== FORMAT) {
    return fail(
      1,
      isRecord(first) && !("format" in first)
        ? "it has no signed header: an unsigned spool file (the format of earlier versions), or one written by hand — import it explicitly if it is genuine"
        : "it has no signed header (not a spool file of this version, or forged)",
    );
  }
  if (first.v !== FORMAT_VERSION)
    return fail(1, `its format version ${String(first.v)} is not known`);
  if (first.spool !== spool)
    return fail(1, `it is a ${String(first.spool)} spool, not a ${spool} spool`);
  const { keyId, nonce, mac } = first;
  if (
    typeof keyId !== "string" ||
    !KEY_ID.test(keyId) ||
    typeof nonce !== "string" ||
    !/^[0-9a-f]{32}$/.test(nonce) ||
    typeof mac !== "string"
  ) {
    return fail(1, "its header is malformed");
  }
  header = { keyId, nonce };
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
  if (isRetired(key.id)) {
    return fail(
      1,
      `it is signed with retired key ${keyId}: whoever still holds that key could have written it, so it is not replayed automatically — check it, and import it explicitly if it is genuine`,
    );
  }
  previous = mac;
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
      header,
      lastMac: previous,
      problem: {
        kind: "torn",
        line: lines.length + 1,
        reason: "its last line is incomplete (an append that never completed)",
      },
    };
  }
  return { entries, closed, header, lastMac: previous, problem: null };
}

/** The host and pid a spool file's name says wrote it (null: not a spool file name). */
function writerOf(name: string, prefix: string): { host: string; pid: number } | null {
  if (!name.startsWith(prefix)) return null;
  const match = /^(.+)-(\d+)-[0-9a-f]+\.jsonl$/.exec(name.slice(prefix.length));
  if (!match) return null;
  return { host: match[1] as string, pid: Number(match[2]) };
}

/** Whether the process with this pid (on this host) is gone. */
function isGone(pid: number): boolean {
  if (pid === process.pid) return true; // An earlier process that had our pid.
  try {
    process.kill(pid, 0);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "ESRCH";
  }
}

/**
 * Validate a list of host names for {@link DurableSpoolOptions.adoptHosts}, naming `field` (the
 * option as its caller calls it) in the error.
 * @throws {InvalidArgumentError} when it is not an array of at most 1000 host names.
 * @example
 * ```ts
 * const adoptHosts = spoolHostNames(options.spoolAdoptHosts ?? [], "spoolAdoptHosts");
 * ```
 */
export function spoolHostNames(value: unknown, field: string): string[] {
  const fix = `Pass ${field} as an array of host names, e.g. ["old-container-1"].`;
  if (!Array.isArray(value)) throw new InvalidArgumentError(field, "must be an array.", fix);
  if (value.length > 1_000)
    throw new InvalidArgumentError(field, `has ${value.length} names, at most 1000.`, fix);
  return value.map((host, index) => {
    if (typeof host !== "string" || !/^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$/.test(host)) {
      throw new InvalidArgumentError(
        `${field}[${index}]`,
        "must be a host name (letters, digits, dots, dashes, underscores; at most 253 characters).",
        fix,
      );
    }
    return host;
  });
}

/** A duration for people: `42 s`, `17 min`, `5 h`, `3 days`. */
function formatAge(ms: number): string {
  const seconds = Math.max(0, Math.round(ms / 1000));
  if (seconds < 120) return `${seconds} s`;
  if (seconds < 7_200) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172_800) return `${Math.round(seconds / 3_600)} h`;
  return `${Math.round(seconds / 86_400)} days`;
}
