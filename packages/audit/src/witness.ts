import { constants } from "node:fs";
import { type FileHandle, mkdir, open } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { createInterface } from "node:readline";
import { InvalidArgumentError } from "@gov/core";
import type { StoredCheckpoint } from "./checkpoint-signing";
import { WitnessUnavailableError } from "./errors";

/**
 * One checkpoint as a witness keeps it: everything needed to check it without the database —
 * its fields, its signed `payload`, the HMAC and, when the deployment has a signing key, the
 * Ed25519 signature (FORMAT.md, "The witness").
 */
export interface WitnessedCheckpoint
  extends Omit<StoredCheckpoint, "signature" | "signingKeyId" | "source"> {
  v: 1;
  signingKeyId: string | null;
  signature: string | null;
}

/** Which checkpoints {@link CheckpointWitness.read} should return. */
export interface WitnessFilter {
  /** Only this chain's (a witness may return more: the verifier ignores other chains). */
  chain?: string;
}

/**
 * Somewhere outside the database that keeps every checkpoint: an append-only file (see
 * {@link FileCheckpointWitness}), object storage with retention, a log service. Rows *and*
 * checkpoints deleted from the database are then still caught by
 * `verifyChain({ witness })`.
 *
 * Nothing read back is trusted: the verifier believes an entry only if its signature verifies
 * (the Ed25519 signature, or, for a checkpoint without one, its HMAC), so a witness needs
 * durability and append-only access rules, not secrecy.
 *
 * @example
 * ```ts
 * const bucket: CheckpointWitness = {
 *   async append(checkpoints) { await putObject(`witness/${Date.now()}.jsonl`, checkpoints.map((c) => JSON.stringify(c)).join("\n")); },
 *   async *read() { for await (const object of listObjects("witness/")) yield* parseLines(object); },
 * };
 * ```
 */
export interface CheckpointWitness {
  /** Keep these checkpoints durably; resolve only once they are kept. */
  append(checkpoints: readonly WitnessedCheckpoint[]): Promise<void>;
  /**
   * Everything appended (at least what matches `filter`), in any order. Entries are checked,
   * never trusted, so yield what was stored as it is: a damaged entry that is not even JSON
   * as its raw text (a string; the verifier counts it in `damagedWitnessLines`), anything
   * else as parsed (an entry that is not a validly signed checkpoint is a failure). Throw
   * (reject) when the witness cannot be read: verification then rejects rather than compare
   * the database with nothing.
   */
  read(filter?: WitnessFilter): AsyncIterable<unknown>;
}

/** A witness line for a checkpoint. */
export function witnessedCheckpoint(checkpoint: StoredCheckpoint): WitnessedCheckpoint {
  return {
    v: 1,
    checkpointId: checkpoint.checkpointId,
    chain: checkpoint.chain,
    seq: checkpoint.seq,
    hash: checkpoint.hash,
    createdAt: checkpoint.createdAt,
    keyId: checkpoint.keyId,
    signingKeyId: checkpoint.signingKeyId ?? null,
    payload: checkpoint.payload,
    hmac: checkpoint.hmac,
    signature: checkpoint.signature ?? null,
  };
}

/** True when `value` has the methods of a {@link CheckpointWitness}. */
export function isCheckpointWitness(value: unknown): value is CheckpointWitness {
  return (
    typeof value === "object" &&
    value !== null &&
    typeof (value as CheckpointWitness).append === "function" &&
    typeof (value as CheckpointWitness).read === "function"
  );
}

/** A witness given as an object or as a file path. */
export function toWitness(value: CheckpointWitness | string, field: string): CheckpointWitness {
  if (typeof value === "string" && value.trim() !== "") return new FileCheckpointWitness(value);
  if (isCheckpointWitness(value)) return value;
  throw new InvalidArgumentError(
    field,
    "must be a file path or an object with append() and read() (a CheckpointWitness).",
    `Pass ${field}: "evidence/gov-checkpoints.jsonl", or a CheckpointWitness.`,
  );
}

/**
 * Most bytes one write to a witness file carries. Each write holds whole lines only: appends
 * to a regular file opened for appending are atomic with respect to each other on a local
 * file system, so the lines of several processes never interleave.
 */
const MAX_WRITE_BYTES = 512 * 1024;
/** How every line of a witness file starts (`JSON.stringify` of a {@link WitnessedCheckpoint}). */
const LINE_START = '{"v":';
const LINE_FEED = 0x0a;
const OPEN_BRACE = 0x7b;

/**
 * A witness in one file of JSON lines, one checkpoint per line, only ever appended to and
 * fsynced before `append` resolves (the file mode is 0600, its directory's 0700). Put it
 * where the database's administrators cannot write — another volume, another machine's mount,
 * a file the storage makes append-only (`chattr +a`, object lock) — and copy it off-site.
 *
 * The file is opened as itself only: never through a symbolic link, never while another name
 * links to it (appending), and only when it holds witness lines — so that the path cannot be
 * pointed at another file, such as a key file, and have checkpoints appended to it.
 *
 * Several processes on one host may append to one file: each write carries whole lines
 * (at most 512 KiB), and writes in append mode do not interleave on a local file system (on
 * a network file system, give each process its own file). An append that fails (a full
 * disk) is cut back to where it started, so it leaves no partial line. A line torn anyway (a
 * crash in the middle of an append) is skipped when it is last; the next append starts on a
 * new line, and when read back in the middle of the file it is returned as its raw text,
 * which the verifier counts as a damaged line (a warning: it hides nothing that deleting it
 * would not). A complete line glued to the end of a torn one is still read.
 *
 * @example
 * ```ts
 * const witness = new FileCheckpointWitness("evidence/gov-checkpoints.jsonl");
 * await using sdk = await GovernanceSDK.start({ auditWitness: witness });
 * await sdk.audit.verifyChain({ witness }); // rows or checkpoints deleted in the database are caught
 * ```
 */
export class FileCheckpointWitness implements CheckpointWitness {
  /** The file, as an absolute path. */
  readonly path: string;
  #queue: Promise<unknown> = Promise.resolve();

  constructor(path: string) {
    if (typeof path !== "string" || path.trim() === "") {
      throw new InvalidArgumentError(
        "path",
        "must be a file path.",
        'Pass the path of the witness file, e.g. "evidence/gov-checkpoints.jsonl".',
      );
    }
    this.path = resolve(path);
  }

  /**
   * Append checkpoints, one line each, and fsync. Rejects — with nothing left in the file —
   * when the file cannot be written or is not a witness file
   * ({@link WitnessUnavailableError}); appends of one instance run one after the other.
   */
  append(checkpoints: readonly WitnessedCheckpoint[]): Promise<void> {
    const run = async () => {
      if (!Array.isArray(checkpoints)) {
        throw new InvalidArgumentError(
          "checkpoints",
          "must be an array of witnessed checkpoints.",
          "Pass the checkpoints to keep, e.g. [witnessedCheckpoint(checkpoint)].",
        );
      }
      if (checkpoints.length === 0) return;
      const lines = checkpoints.map((checkpoint) => `${JSON.stringify(checkpoint)}\n`);
      await mkdir(dirname(this.path), { recursive: true, mode: 0o700 });
      const { handle, size: start } = await openWitness(this.path, "append");
      try {
        // After a torn last line (a crash mid-append), start on a new line rather than glue to it.
        let separator = "";
        if (start > 0) {
          const last = Buffer.alloc(1);
          await handle.read(last, 0, 1, start - 1);
          if (last[0] !== LINE_FEED) separator = "\n";
        }
        let written = 0;
        for (const chunk of lineChunks(lines, separator)) {
          let bytes = 0;
          try {
            ({ bytesWritten: bytes } = await handle.write(chunk, 0, chunk.length));
          } catch (error) {
            await cutBack(handle, start, written);
            throw error;
          }
          written += bytes;
          if (bytes < chunk.length) {
            await cutBack(handle, start, written);
            throw new WitnessUnavailableError(
              this.path,
              `could not be written: a write was cut short (${bytes} of ${chunk.length} bytes; the disk may be full), and the append was taken back`,
              "Free space on the witness's volume; the checkpoints are appended at the next checkpoint.",
            );
          }
        }
        await handle.sync();
        if (start === 0) await syncDirectory(dirname(this.path));
      } finally {
        await handle.close();
      }
    };
    const result = this.#queue.then(run, run);
    this.#queue = result.catch(() => undefined);
    return result;
  }

  /**
   * Every line, parsed (a damaged line as its raw text; a torn last line is skipped). Rejects
   * with {@link WitnessUnavailableError} when the file is missing, unreadable, a symbolic
   * link, not a regular file, or does not hold witness lines: a witness to verify against
   * that cannot be read is never "nothing to compare".
   */
  async *read(filter: WitnessFilter = {}): AsyncIterable<unknown> {
    const { handle } = await openWitness(this.path, "read");
    const stream = handle.createReadStream({ encoding: "utf8" });
    const lines = createInterface({ input: stream, crlfDelay: Number.POSITIVE_INFINITY });
    // readline cannot say whether the last line ended with a line feed: hold each line back
    // until the next one (or the end) shows it was complete.
    let pending: string | null = null;
    let endsWithNewline = true;
    stream.on("data", (chunk) => {
      if (chunk.length > 0) endsWithNewline = String(chunk).endsWith("\n");
    });
    try {
      for await (const line of lines) {
        if (pending !== null) yield* parseLine(pending, filter);
        pending = line;
      }
      if (pending !== null && endsWithNewline) yield* parseLine(pending, filter);
    } finally {
      lines.close();
      stream.destroy();
    }
  }
}

/** The lines in writes of at most {@link MAX_WRITE_BYTES}, each ending with a line feed. */
function lineChunks(lines: readonly string[], separator: string): Buffer[] {
  const chunks: Buffer[] = [];
  let current: Buffer[] = separator ? [Buffer.from(separator, "utf8")] : [];
  let size = separator.length;
  for (const line of lines) {
    const bytes = Buffer.from(line, "utf8");
    if (size > 0 && size + bytes.length > MAX_WRITE_BYTES) {
      chunks.push(Buffer.concat(current));
      current = [];
      size = 0;
    }
    current.push(bytes);
    size += bytes.length;
  }
  if (current.length > 0) chunks.push(Buffer.concat(current));
  return chunks;
}

/**
 * Take back a failed append: truncate the file to where it started, but only when it holds
 * exactly what this append wrote after that point (another process appending meanwhile is
 * never cut). Best effort: what cannot be taken back is a damaged line the reader reports.
 */
async function cutBack(handle: FileHandle, start: number, written: number): Promise<void> {
  if (written === 0) return;
  try {
    const { size } = await handle.stat();
    if (size !== start + written) return;
    await handle.truncate(start);
    await handle.sync();
  } catch {
    // The original failure is what the caller reports.
  }
}

/**
 * Open a witness file as itself: not through a symbolic link (`O_NOFOLLOW`), a regular file,
 * and one that holds witness lines (or nothing yet); for appending, also one that no other
 * name links to (a hard link could make the path another file, such as a key file).
 */
async function openWitness(
  path: string,
  purpose: "append" | "read",
): Promise<{ handle: FileHandle; size: number }> {
  const flags =
    (purpose === "append"
      ? constants.O_RDWR | constants.O_APPEND | constants.O_CREAT
      : constants.O_RDONLY) |
    (constants.O_NOFOLLOW ?? 0) |
    (constants.O_NONBLOCK ?? 0);
  let handle: FileHandle;
  try {
    handle = await open(path, flags, 0o600);
  } catch (error) {
    throw openProblem(path, error, purpose);
  }
  try {
    const stats = await handle.stat();
    const fail = (problem: string, fix: string) => new WitnessUnavailableError(path, problem, fix);
    if (!stats.isFile()) {
      throw fail(
        "is not a regular file (a directory, a device or a pipe)",
        "Pass the path of the witness file itself.",
      );
    }
    if (purpose === "append" && stats.nlink > 1) {
      throw fail(
        `has ${stats.nlink - 1} other hard link(s): it may be another file (such as a key file) under a second name, and is not appended to`,
        "Give the witness a file of its own: move the linked file away, or choose another path.",
      );
    }
    if (stats.size > 0) {
      const first = Buffer.alloc(1);
      await handle.read(first, 0, 1, 0);
      if (first[0] !== OPEN_BRACE) {
        throw fail(
          "is not a witness file (it does not start with a checkpoint line)",
          "Point the witness at its own file (new or written by a witness), never at another file.",
        );
      }
    }
    return { handle, size: stats.size };
  } catch (error) {
    await handle.close();
    throw error;
  }
}

/** A clear error for a witness file that could not be opened. */
function openProblem(path: string, error: unknown, purpose: "append" | "read"): Error {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === "ELOOP" || code === "EMLINK") {
    return new WitnessUnavailableError(
      path,
      "is a symbolic link; a witness is opened only as the file itself, so that it cannot be pointed at another file",
      "Pass the real path of the witness file (not a link to it).",
      error,
    );
  }
  if (code === "ENOENT" && purpose === "read") {
    return new WitnessUnavailableError(
      path,
      "does not exist",
      "Check the path (relative paths are resolved against the working directory). If no checkpoint was written yet, call checkpoint() first; if the file was deleted, restore it from its copies: that is a finding, not an empty witness.",
      error,
    );
  }
  if (code === "EISDIR") {
    return new WitnessUnavailableError(
      path,
      "is not a regular file (a directory, a device or a pipe)",
      "Pass the path of the witness file itself.",
      error,
    );
  }
  return new WitnessUnavailableError(
    path,
    `could not be opened for ${purpose === "append" ? "appending" : "reading"} (${code ?? (error as Error).message})`,
    purpose === "append"
      ? "Check that its directory exists or can be created and is writable by this process; the checkpoints are appended at the next checkpoint."
      : "Check that the file is readable by this process.",
    error,
  );
}

/**
 * A line's values: parsed JSON, or the raw text of a damaged line (counted by the verifier).
 * A damaged line that ends with a complete checkpoint line — an append that followed a torn
 * one — gives the torn part as damaged text and the checkpoint parsed.
 */
function* parseLine(line: string, filter: WitnessFilter): Generator<unknown> {
  if (line.trim() === "") return;
  const parsed = parseJson(line);
  if (parsed.ok) {
    if (matches(parsed.value, filter)) yield parsed.value;
    return;
  }
  const glued = line.lastIndexOf(LINE_START);
  if (glued > 0) {
    const rest = parseJson(line.slice(glued));
    if (rest.ok) {
      yield line.slice(0, glued);
      if (matches(rest.value, filter)) yield rest.value;
      return;
    }
  }
  yield line;
}

function parseJson(text: string): { ok: true; value: unknown } | { ok: false } {
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch {
    return { ok: false };
  }
}

/** False for an entry of another chain than the filter's. */
function matches(value: unknown, filter: WitnessFilter): boolean {
  return !(
    filter.chain !== undefined &&
    typeof value === "object" &&
    value !== null &&
    typeof (value as { chain?: unknown }).chain === "string" &&
    (value as { chain: string }).chain !== filter.chain
  );
}

/** Make a new file's directory entry durable too (best effort: not every platform can). */
async function syncDirectory(directory: string): Promise<void> {
  try {
    const handle = await open(directory, "r");
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {
    // Directories cannot be opened for fsync on some platforms.
  }
}
