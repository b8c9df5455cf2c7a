import { resolve } from "node:path";
import {
  checkId,
  checkText,
  InvalidArgumentError,
  type ModuleContext,
  parseOptions,
  SigningKey,
  spoolHostNames,
  type VerifyingKey,
} from "@gov/core";
import { z } from "zod";
import { verifyingKeys } from "./checkpoint-signing";
import { AGENT_CHAIN_PREFIX, AUDIT_LIMITS, idForm } from "./models";
import { type CheckpointWitness, isCheckpointWitness, toWitness } from "./witness";

/** Options of the audit module. */
export interface AuditOptions {
  /**
   * Verify the chains of the rows `getEvents()` returns before returning them (throws
   * `ChainIntegrityError` on tampering). @default false
   */
  verifyChainOnRead?: boolean;
  /**
   * Where events wait while the database is unreachable; `null` disables the spool (events
   * then become placeholders). @default `<embedded database home>/audit-spool`, or
   * `./.governance/audit-spool`
   */
  spoolDirectory?: string | null;
  /**
   * Host names whose spool files this process adopts and replays as if they were its own
   * host's: hosts that are gone, e.g. the old name of a container recreated on the same
   * volume (a process can tell whether a writer runs only on its own host). Files of other
   * hosts are otherwise left alone, with a warning and an `audit.spool_stranded` event at
   * start. Never name a host that still runs a process writing into the spool directory.
   * @default []
   * @example
   * ```ts
   * new AuditModule(context, { spoolAdoptHosts: ["3f2a9c1b7d4e"] });
   * ```
   */
  spoolAdoptHosts?: readonly string[];
  /** Most events one transaction carries. @default 1000 */
  maxBatchSize?: number;
  /**
   * Batches written at once (each on its own connection; never two with the same chain).
   * @default 2 on Postgres, 1 on the embedded database (one connection)
   */
  maxConcurrentBatches?: number;
  /** First wait before retrying the database after a failure; doubles up to 30 s. @default 1000 */
  retryIntervalMs?: number;
  /**
   * Sign every chain's head in a checkpoint this often (0: only when `checkpoint()` is
   * called). Heads reach the witness only through checkpoints: with a witness this is how
   * stale its view of the database's chains can be.
   * @default 60000 with a `witness`, else 0
   */
  checkpointIntervalMs?: number;
  /**
   * Where every checkpoint is also written, outside the database: a file path (JSON lines,
   * appended and fsynced, see `FileCheckpointWitness`) or any {@link CheckpointWitness}. A
   * failing witness never fails `checkpoint()`: it is warned about, recorded as
   * `audit.witness_failed`, and its checkpoints are retried at the next checkpoint.
   * @default none
   */
  witness?: CheckpointWitness | string | null;
  /**
   * The Ed25519 key that signs checkpoints besides the HMAC. `null` signs with the HMAC only.
   * @default the context's `signingKey` (`GOVERNANCE_AUDIT_SIGNING_KEY`, or the key kept beside
   *   the embedded database)
   */
  signingKey?: SigningKey | null;
  /**
   * Ed25519 public keys (PEM, base64 DER or `VerifyingKey`) whose checkpoint signatures are
   * believed besides the signing key's own: the public keys of earlier signing keys.
   * @default []
   */
  trustedSigningKeys?: readonly (string | VerifyingKey)[];
}

/** Filters of {@link AuditModule.getEvents}. */
export interface EventFilters {
  sessionId?: string;
  agentId?: string;
  kind?: string;
  /** Events at or after this time. */
  since?: Date;
  /** Events before this time. */
  until?: Date;
  /** Most events returned. @default 1000 (at most 10000) */
  limit?: number;
}

/** Options of {@link AuditModule.verifyChain}. */
export interface VerifyChainOptions {
  /** One session's chain; all chains when absent. */
  sessionId?: string;
  /** An agent's chain of events without a session. */
  agentId?: string;
  /** First seq of a window (needs `sessionId` or `agentId`). */
  fromSeq?: number;
  /** Last seq of a window (needs `sessionId` or `agentId`). */
  toSeq?: number;
  /**
   * Also compare the database with the checkpoints this witness kept (a path of a witness
   * file, or a {@link CheckpointWitness}): a chain the witness knows and the database has not,
   * a head behind the witnessed one, a row that differs from a witnessed checkpoint, and a
   * witnessed checkpoint missing from the database are failures; so is a witness entry
   * that is JSON but not a validly signed checkpoint (edited or forged). A line that is not
   * even JSON (torn by a crash or a full disk) is counted in `damagedWitnessLines` and
   * warned about, not failed: it hides nothing that deleting it would not. A witness file
   * that is missing, unreadable, a symbolic link or not a witness file rejects with
   * `AUDIT_WITNESS_UNAVAILABLE` (naming the path): never "nothing to compare".
   */
  witness?: CheckpointWitness | string;
  /**
   * Refuse checkpoints that carry no Ed25519 signature (HMAC only: whoever holds the HMAC
   * secret could have forged them), in the database and in the witness. @default false
   */
  requireSignedCheckpoints?: boolean;
}

/** Counters of what the module did; degradations show here and in warnings. */
export interface AuditMetrics {
  /** log() calls accepted. */
  logged: number;
  /** Events written to the chain (including replayed ones). */
  stored: number;
  /** Transactions that wrote them. */
  batches: number;
  /** Events that went to the spool because the database could not take them. */
  spooled: number;
  /** Spooled events since written into the chain. */
  replayed: number;
  /** Events neither the database nor the spool could keep: lost, and returned as placeholders. */
  placeholders: number;
  /** Subscriber calls that threw. */
  subscriberErrors: number;
  /** Events waiting in the spool now. */
  spoolDepth: number;
  /** True while the database is not taking events. */
  degraded: boolean;
  /** The last database failure, if any (code and message; never a connection string). */
  lastError: { code: string; message: string } | null;
  /** Checkpoints that did not reach the witness yet (retried at the next checkpoint). */
  witnessPending: number;
  /** Appends to the witness that failed. */
  witnessFailures: number;
  /**
   * Spool files refused at replay (edited, reordered, truncated, replaced, signed with a
   * retired key, unsigned…; kept aside, see the log and `audit.spool_rejected`).
   */
  spoolRejections: number;
  /**
   * Key rotation records that name this process's chain key as rotated out but are not
   * signed by it: forged (a table owner can insert one, not sign one). While one is in
   * `gov_audit.key_rotations`, the database refuses this process's rows (they wait in the
   * spool) and `lastError.code` is `AUDIT_KEY_ROTATION_FORGED`; the error log names them.
   */
  forgedKeyRotations: number;
}

/** Options of {@link AuditModule.track}. */
export interface TrackOptions {
  kind: string;
  agentId: string;
  sessionId?: string | null;
  parentEventId?: string | null;
  model?: string | null;
}

/** Options of {@link AuditModule.rotateChainKey}. */
export interface RotateChainKeyOptions {
  /** The new secret (≥ 32 bytes, ≥ 8 distinct byte values). */
  newKey: string;
  /** Who rotated it. */
  operatorId: string;
  /** Why. */
  reason: string;
}

/** Options of {@link AuditModule.importSpool}. */
export interface ImportSpoolOptions {
  /** Who vouches for the file (recorded in the chain). */
  operatorId: string;
  /** Why it is imported: where it comes from (recorded in the chain). */
  reason: string;
  /**
   * Accept a file signed with a retired chain key: one written by a process of yours that
   * still held the key after its rotation (it had not learned of it). Whoever holds the
   * retired key could have written such a file too: import it only if you know its writer.
   * @default false
   */
  acceptRetiredKey?: boolean;
  /**
   * Accept an unsigned file: a spool left by a version before spool files were signed. Its
   * events prove nothing by themselves: anyone who could write the file could have written
   * them. @default false
   */
  acceptUnsigned?: boolean;
}

/** What {@link AuditModule.importSpool} queued. */
export interface SpoolImportResult {
  /** The file's name. */
  file: string;
  /** SHA-256 (hex) of the file as it was read (also in the `audit.spool_imported` event). */
  sha256: string;
  /** Events queued for the chain (those already in it are skipped when they are written). */
  entries: number;
  /** The key that signed the file; null for an unsigned file. */
  keyId: string | null;
  /** Whether that key is retired. */
  retiredKey: boolean;
  /** Whether the file is signed. */
  signed: boolean;
  /** The id of the `audit.spool_imported` event that records the import. */
  importEventId: string;
}

/** The checkpoint interval when a witness is configured and no interval is given. */
const WITNESS_CHECKPOINT_INTERVAL_MS = 60_000;

/**
 * {@link AuditOptions} as zod reads them (core's `parseOptions`: unknown keys refused with a
 * "did you mean"). Host names, trusted keys and witnesses are then read by the helpers that
 * know them (`spoolHostNames`, `verifyingKeys`, `toWitness`).
 */
const auditOptionsSchema = z.strictObject({
  verifyChainOnRead: z.boolean().default(false),
  spoolDirectory: z.string().min(1).nullable().optional(),
  spoolAdoptHosts: z.array(z.unknown()).default([]),
  maxBatchSize: z.int().min(1).max(100_000).default(1_000),
  maxConcurrentBatches: z.int().min(1).max(32).optional(),
  retryIntervalMs: z.int().min(1).max(600_000).default(1_000),
  checkpointIntervalMs: z.int().min(0).max(86_400_000).optional(),
  witness: z
    .union([
      z.string().refine((path) => path.trim() !== "", { message: "must not be blank." }),
      z.custom<CheckpointWitness>(isCheckpointWitness, {
        message: "must be a file path or an object with append() and read() (a CheckpointWitness).",
      }),
    ])
    .nullable()
    .optional(),
  signingKey: z
    .custom<SigningKey>((value) => value instanceof SigningKey, {
      message: "must be a SigningKey (an Ed25519 private key), or null.",
    })
    .nullable()
    .optional(),
  trustedSigningKeys: z.array(z.unknown()).max(64).default([]),
});

const AUDIT_OPTION_FIXES: Readonly<Record<string, string>> = {
  verifyChainOnRead: "Use true or false.",
  spoolDirectory: "Use a writable directory path, or null to turn the spool off.",
  spoolAdoptHosts: 'Use an array of host names that are gone, e.g. ["old-container-1"].',
  maxBatchSize: "Use an integer from 1 to 100000 (default 1000).",
  maxConcurrentBatches: "Use an integer from 1 to 32 (default 2 on Postgres, 1 on PGlite).",
  retryIntervalMs: "Use an integer number of milliseconds from 1 to 600000 (default 1000).",
  checkpointIntervalMs:
    "Use an integer number of milliseconds from 0 (only when checkpoint() is called) to 86400000.",
  witness:
    'Use the path of a file outside the database\'s reach, e.g. "evidence/gov-checkpoints.jsonl", or a CheckpointWitness (an object with append() and read()).',
  signingKey:
    "Pass new SigningKey(pem) (an Ed25519 private key), or null to sign checkpoints with the HMAC only.",
  trustedSigningKeys:
    "Use an array of Ed25519 public keys (PEM), e.g. [sdk.audit.signingPublicKey.pem].",
};

/** {@link AuditOptions} checked, with their defaults. */
export interface ResolvedAuditOptions {
  verifyChainOnRead: boolean;
  maxBatchSize: number;
  maxConcurrentBatches: number;
  retryIntervalMs: number;
  spoolDirectory: string | null;
  spoolAdoptHosts: readonly string[];
  checkpointIntervalMs: number;
  witness: CheckpointWitness | null;
  signingKey: SigningKey | null;
  verifyingKeys: readonly VerifyingKey[];
}

/**
 * Check the module's options and fill in their defaults.
 * @throws {InvalidArgumentError} naming the option (`options.maxBatchSize`), the limit and the
 *   fix; an unknown option with a "did you mean".
 */
export function resolveAuditOptions(
  context: Pick<ModuleContext, "store"> & Partial<Pick<ModuleContext, "signingKey">>,
  options: unknown,
): ResolvedAuditOptions {
  const parsed = parseOptions(auditOptionsSchema, options, { fixes: AUDIT_OPTION_FIXES });
  const spoolAdoptHosts = spoolHostNames(parsed.spoolAdoptHosts, "options.spoolAdoptHosts");
  const spoolDirectory =
    parsed.spoolDirectory === undefined
      ? resolve(context.store.directory ?? ".governance", "audit-spool")
      : parsed.spoolDirectory;
  const signingKey =
    parsed.signingKey !== undefined ? parsed.signingKey : (context.signingKey ?? null);
  const trusted = [
    ...(signingKey ? [signingKey.publicKey] : []),
    ...verifyingKeys(
      parsed.trustedSigningKeys as (string | VerifyingKey)[],
      "options.trustedSigningKeys",
    ),
  ];
  const witness =
    parsed.witness === undefined || parsed.witness === null
      ? null
      : toWitness(parsed.witness, "options.witness");
  return {
    verifyChainOnRead: parsed.verifyChainOnRead,
    maxBatchSize: parsed.maxBatchSize,
    maxConcurrentBatches:
      parsed.maxConcurrentBatches ?? (context.store.engine === "pglite" ? 1 : 2),
    retryIntervalMs: parsed.retryIntervalMs,
    spoolDirectory,
    spoolAdoptHosts,
    checkpointIntervalMs:
      parsed.checkpointIntervalMs ?? (witness ? WITNESS_CHECKPOINT_INTERVAL_MS : 0),
    witness,
    signingKey,
    verifyingKeys: trusted,
  };
}

/**
 * The keys of a method's options object, as a schema for {@link refuseUnknownOptions}: every
 * key of `T`, each value left to the method to check under its own name.
 */
function optionKeys<T extends object>(keys: { readonly [K in keyof Required<T>]: true }) {
  return z.object(
    Object.fromEntries(Object.keys(keys).map((key) => [key, z.unknown().optional()])),
  );
}

/** The options each public method takes, by name (keys only). */
export const METHOD_OPTION_KEYS = {
  getEvents: optionKeys<EventFilters>({
    sessionId: true,
    agentId: true,
    kind: true,
    since: true,
    until: true,
    limit: true,
  }),
  verifyChain: optionKeys<VerifyChainOptions>({
    sessionId: true,
    agentId: true,
    fromSeq: true,
    toSeq: true,
    witness: true,
    requireSignedCheckpoints: true,
  }),
  checkpoint: optionKeys<{ sessionIds?: readonly string[] }>({ sessionIds: true }),
  track: optionKeys<TrackOptions>({
    kind: true,
    agentId: true,
    sessionId: true,
    parentEventId: true,
    model: true,
  }),
  rotateChainKey: optionKeys<RotateChainKeyOptions>({
    newKey: true,
    operatorId: true,
    reason: true,
  }),
  importSpool: optionKeys<ImportSpoolOptions>({
    operatorId: true,
    reason: true,
    acceptRetiredKey: true,
    acceptUnsigned: true,
  }),
};

/**
 * Refuse what is not an options object, `undefined` included (`fix` says how to call the
 * method), and the keys its method does not take, with a "did you mean" (core's
 * `parseOptions` with `required`; `field` names the argument, e.g. `options.sesionId`). The
 * values are checked by the method, under their own names.
 * @throws {InvalidArgumentError} naming `field`, or the first unknown key.
 */
export function refuseUnknownOptions<T>(
  keys: (typeof METHOD_OPTION_KEYS)[keyof typeof METHOD_OPTION_KEYS],
  value: T,
  fix: string,
  field = "options",
): asserts value is T & object {
  parseOptions(keys, value, { field, required: true, fixes: { "": fix } });
}

/** The chains `checkpoint()` was asked for: null for all; refuses what is not a list of ids. */
export function checkpointChains(options: { sessionIds?: readonly string[] }): string[] | null {
  refuseUnknownOptions(
    METHOD_OPTION_KEYS.checkpoint,
    options,
    "Call checkpoint() or checkpoint({ sessionIds: [sessionId] }).",
  );
  const ids: unknown = options.sessionIds;
  if (ids === undefined) return null;
  const fix = "Pass sessionIds as an array of session ids, e.g. { sessionIds: [sessionId] }.";
  if (!Array.isArray(ids) || ids.length > 10_000) {
    throw new InvalidArgumentError(
      "sessionIds",
      `must be an array of at most 10000 session ids, got ${Array.isArray(ids) ? `${ids.length} ids` : typeof ids}.`,
      fix,
    );
  }
  for (const [index, id] of ids.entries()) {
    if (typeof id !== "string" || id.length === 0 || id.length > 256) {
      throw new InvalidArgumentError(
        `sessionIds[${index}]`,
        "must be a session id (a string of 1 to 256 characters).",
        fix,
      );
    }
  }
  return ids as string[];
}

/** The chain and the window of seqs a verification asks for, validated. */
export function chainWindow(options: VerifyChainOptions): {
  chain: string | undefined;
  fromSeq: number;
  toSeq: number;
} {
  refuseUnknownOptions(
    METHOD_OPTION_KEYS.verifyChain,
    options,
    "Call verifyChain() for every chain, or verifyChain({ sessionId }) for one session's.",
  );
  const sessionId =
    options.sessionId === undefined ? undefined : chainName(options.sessionId, "sessionId");
  const agentId = options.agentId === undefined ? undefined : chainName(options.agentId, "agentId");
  if (sessionId !== undefined && agentId !== undefined) {
    throw new InvalidArgumentError(
      "agentId",
      "cannot be given with sessionId: a session's events and an agent's events without a session are different chains.",
      "Pass sessionId or agentId, not both.",
    );
  }
  if (sessionId?.startsWith(AGENT_CHAIN_PREFIX)) {
    throw new InvalidArgumentError(
      "sessionId",
      `must not start with "${AGENT_CHAIN_PREFIX}", which names the chain of an agent's events without a session.`,
      `Pass { agentId: ${JSON.stringify(sessionId.slice(AGENT_CHAIN_PREFIX.length))} } instead.`,
    );
  }
  const chain =
    sessionId ?? (agentId !== undefined ? `${AGENT_CHAIN_PREFIX}${agentId}` : undefined);
  if ((options.fromSeq !== undefined || options.toSeq !== undefined) && chain === undefined) {
    throw new InvalidArgumentError(
      "fromSeq",
      "and toSeq need a sessionId (or agentId).",
      "Verify a window of one chain: { sessionId, fromSeq, toSeq }.",
    );
  }
  const fromSeq = options.fromSeq ?? 1;
  const toSeq = options.toSeq ?? Number.MAX_SAFE_INTEGER;
  for (const [name, value] of [
    ["fromSeq", fromSeq],
    ["toSeq", toSeq],
  ] as const) {
    if (!Number.isSafeInteger(value) || value < 1)
      throw new InvalidArgumentError(
        name,
        `must be a positive integer, got ${String(value)}.`,
        "Sequence numbers start at 1.",
      );
  }
  if (fromSeq > toSeq) {
    throw new InvalidArgumentError(
      "toSeq",
      `is ${toSeq}, before fromSeq (${fromSeq}).`,
      "Pass a window with fromSeq ≤ toSeq.",
    );
  }
  return { chain, fromSeq, toSeq };
}

/**
 * A session id, agent id or kind given to look events up: an id as `log()` accepts it
 * (core's `checkId`), within the limit of its field.
 * @throws {InvalidArgumentError} naming the field.
 */
export function chainName(value: unknown, field: "sessionId" | "agentId" | "kind"): string {
  const max = AUDIT_LIMITS[field];
  return idForm(checkId(value, field, { max }), field, max);
}

/**
 * Who did something (`operatorId`, an id as core's `checkId` accepts it) or why (`reason`,
 * free text as core's `checkText` accepts it, not blank): refused, never repaired.
 */
export function boundedText(value: unknown, field: string, max: number, what: string): string {
  if (value === undefined || value === null || (typeof value === "string" && value.trim() === "")) {
    throw new InvalidArgumentError(
      field,
      `must say ${what}, got ${value === undefined ? "nothing" : value === null ? "null" : "a blank string"}.`,
      `Pass ${field} as a non-empty string.`,
    );
  }
  return field === "reason"
    ? checkText(value, field, { max, multiline: true })
    : checkId(value, field, { max });
}

export function checkedDate(value: Date, field: string): Date {
  if (!(value instanceof Date) || Number.isNaN(value.getTime())) {
    throw new InvalidArgumentError(field, "must be a valid Date.", `Pass ${field} as a Date.`);
  }
  return value;
}
