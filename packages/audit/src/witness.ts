import type { createReadStream } from "node:fs";
import { mkdir, open } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { createInterface } from "node:readline";
import { InvalidArgumentError } from "@gov/core";
import type { StoredCheckpoint } from "./checkpoint-signing";

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
   * never trusted, so yield what was stored as it is (damaged entries included: they are
   * reported).
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
 * A witness in one file of JSON lines, one checkpoint per line, only ever appended to and
 * fsynced before `append` resolves (the file mode is 0600, its directory's 0700). Put it
 * where the database's administrators cannot write — another volume, another machine's mount,
 * a file the storage makes append-only (`chattr +a`, object lock) — and copy it off-site.
 * Several processes may append to one file: each append is one write in append mode.
 *
 * A torn last line (a crash in the middle of an append) is skipped when reading, and the
 * next append starts on a new line.
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

  append(checkpoints: readonly WitnessedCheckpoint[]): Promise<void> {
    const run = async () => {
      if (checkpoints.length === 0) return;
      await mkdir(dirname(this.path), { recursive: true, mode: 0o700 });
      const handle = await open(this.path, "a+", 0o600);
      try {
        // After a torn last line, start on a new line rather than glue to it.
        const { size } = await handle.stat();
        let separator = "";
        if (size > 0) {
          const last = Buffer.alloc(1);
          await handle.read(last, 0, 1, size - 1);
          if (last[0] !== 0x0a) separator = "\n";
        }
        const text = checkpoints.map((checkpoint) => `${JSON.stringify(checkpoint)}\n`).join("");
        await handle.appendFile(`${separator}${text}`, "utf8");
        await handle.sync();
        if (size === 0) await syncDirectory(dirname(this.path));
      } finally {
        await handle.close();
      }
    };
    const result = this.#queue.then(run, run);
    this.#queue = result.catch(() => undefined);
    return result;
  }

  async *read(filter: WitnessFilter = {}): AsyncIterable<unknown> {
    let stream: ReturnType<typeof createReadStream>;
    try {
      const handle = await open(this.path, "r");
      stream = handle.createReadStream({ encoding: "utf8" });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return;
      throw error;
    }
    const lines = createInterface({ input: stream, crlfDelay: Number.POSITIVE_INFINITY });
    // readline cannot say whether the last line ended with a line feed: hold each line back
    // until the next one (or the end) shows it was complete.
    let pending: string | null = null;
    let endsWithNewline = true;
    stream.on("data", (chunk) => {
      if (chunk.length > 0) endsWithNewline = String(chunk).endsWith("\n");
    });
    for await (const line of lines) {
      if (pending !== null) {
        const value = parseLine(pending, filter);
        if (value !== undefined) yield value;
      }
      pending = line;
    }
    if (pending !== null && endsWithNewline) {
      const value = parseLine(pending, filter);
      if (value !== undefined) yield value;
    }
  }
}

/** A line's value: parsed JSON, or the raw text of a damaged line (reported by the verifier). */
function parseLine(line: string, filter: WitnessFilter): unknown {
  if (line.trim() === "") return undefined;
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return line;
  }
  if (
    filter.chain !== undefined &&
    typeof value === "object" &&
    value !== null &&
    typeof (value as { chain?: unknown }).chain === "string" &&
    (value as { chain: string }).chain !== filter.chain
  ) {
    return undefined;
  }
  return value;
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
