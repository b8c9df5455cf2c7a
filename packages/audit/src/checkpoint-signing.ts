import type { KeyObject } from "node:crypto";
import {
  canonicalJson,
  InvalidArgumentError,
  isUuid,
  type Keyring,
  parseOptions,
  VerifyingKey,
} from "@gov/core";
import { z } from "zod";
import { RECORD_FORMAT_VERSION } from "./record";

/** A signed checkpoint of a chain's head, from the database or from a witness. */
export interface StoredCheckpoint {
  checkpointId: string;
  chain: string;
  seq: number;
  /** The HMAC of the chain's row at `seq`. */
  hash: string;
  createdAt: string;
  /** The id of the HMAC key that MACed `payload`. */
  keyId: string;
  hmac: string;
  payload: string;
  /** Ed25519 signature of `payload` (128 hex characters); null or absent: HMAC only. */
  signature?: string | null;
  /** Id of the Ed25519 public key that verifies `signature`. */
  signingKeyId?: string | null;
  /** Where it was read: the checkpoints table (the default), or a witness. */
  source?: "database" | "witness";
}

/**
 * The signed form of a checkpoint (FORMAT.md): the canonical JSON of its fields, with
 * `signingKeyId` when it is also signed with Ed25519 (older checkpoints have none).
 */
export function checkpointPayload(
  checkpoint: Omit<StoredCheckpoint, "hmac" | "payload" | "signature" | "source">,
): string {
  return canonicalJson({
    v: RECORD_FORMAT_VERSION,
    type: "checkpoint",
    checkpointId: checkpoint.checkpointId,
    chain: checkpoint.chain,
    seq: checkpoint.seq,
    hash: checkpoint.hash,
    createdAt: checkpoint.createdAt,
    keyId: checkpoint.keyId,
    ...(checkpoint.signingKeyId ? { signingKeyId: checkpoint.signingKeyId } : {}),
  });
}

/** What a verifier trusts to believe a checkpoint. */
export interface CheckpointTrust {
  /** The HMAC keys; null for a verifier that holds public keys only. */
  keyring: Keyring | null;
  /** The Ed25519 public keys whose signatures are believed. */
  verifyingKeys: readonly VerifyingKey[];
  /** Refuse a checkpoint that carries no Ed25519 signature (HMAC only). */
  requireSignature: boolean;
}

/**
 * What checking one checkpoint found: believed (`signed`: by a trusted Ed25519 key; else by
 * its HMAC), or not, and why. `hmacOnly` marks a checkpoint without a signature that a
 * public-key verifier could not check at all (not a failure unless signatures are required).
 */
export type CheckpointCheck =
  | { ok: true; signed: boolean }
  | { ok: false; reason: string; hmacOnly: boolean };

/**
 * Check one checkpoint: its payload is the canonical form of its fields; its Ed25519
 * signature (if it has one) verifies under a trusted public key; its HMAC verifies when the
 * verifier holds the key it names. A signature by a key the verifier does not trust, or an
 * HMAC that does not verify, is a failure; an unsigned checkpoint is believed on its HMAC
 * alone unless `requireSignature`.
 */
export function checkCheckpoint(
  checkpoint: StoredCheckpoint,
  trust: CheckpointTrust,
): CheckpointCheck {
  const fail = (reason: string, hmacOnly = false): CheckpointCheck => ({
    ok: false,
    reason,
    hmacOnly,
  });
  if (checkpointPayload(checkpoint) !== checkpoint.payload) {
    return fail("its fields differ from its signed payload");
  }
  const signature = checkpoint.signature ?? null;
  const signingKeyId = checkpoint.signingKeyId ?? null;
  if ((signature === null) !== (signingKeyId === null)) {
    return fail("it names a signing key without a signature, or the reverse");
  }
  let signed = false;
  if (signature !== null && signingKeyId !== null) {
    const key = trust.verifyingKeys.find((candidate) => candidate.id === signingKeyId);
    if (!key) {
      return fail(
        `it is signed with Ed25519 key ${signingKeyId}, which is not a trusted signing key`,
      );
    }
    if (!key.verify(checkpoint.payload, signature)) {
      return fail("its Ed25519 signature does not verify");
    }
    signed = true;
  }
  const hmacKey = trust.keyring?.find(checkpoint.keyId);
  if (hmacKey && !hmacKey.verifyHex(checkpoint.payload, checkpoint.hmac)) {
    return fail("its HMAC does not verify");
  }
  if (!signed) {
    if (trust.requireSignature) {
      return fail("it carries no Ed25519 signature (HMAC only), and signatures are required", true);
    }
    if (!hmacKey) {
      return trust.keyring
        ? fail(`it is signed with key ${checkpoint.keyId}, which is not in the keyring`)
        : fail("it carries no Ed25519 signature (HMAC only): a public key cannot check it", true);
    }
  }
  return { ok: true, signed };
}

const HEX_64 = /^[0-9a-f]{64}$/;

/** A timestamp as ISO text: drivers return `timestamptz` columns as Dates. */
function isoText(value: unknown): unknown {
  return value instanceof Date && !Number.isNaN(value.getTime()) ? value.toISOString() : value;
}

/**
 * A checkpoint from untrusted data: a witness line (camelCase) or a row of
 * `gov_audit.checkpoints` (snake_case columns, `seq` as a number or a string). Null when it
 * does not have a checkpoint's shape; its signatures are not checked here.
 */
export function parseCheckpoint(value: unknown): StoredCheckpoint | null {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return null;
  const record = value as Record<string, unknown>;
  const field = (camel: string, snake: string) => record[camel] ?? record[snake];
  const seqValue = field("seq", "seq");
  const seq =
    typeof seqValue === "string" && /^\d{1,16}$/.test(seqValue) ? Number(seqValue) : seqValue;
  const checkpoint = {
    checkpointId: field("checkpointId", "checkpoint_id"),
    chain: field("chain", "chain"),
    seq,
    hash: field("hash", "hash"),
    createdAt: isoText(field("createdAt", "created_at")),
    keyId: field("keyId", "key_id"),
    hmac: field("hmac", "hmac"),
    payload: field("payload", "payload"),
    signature: field("signature", "signature") ?? null,
    signingKeyId: field("signingKeyId", "signing_key_id") ?? null,
  };
  const optionalText = (text: unknown) => text === null || typeof text === "string";
  if (
    !isUuid(checkpoint.checkpointId) ||
    typeof checkpoint.chain !== "string" ||
    checkpoint.chain === "" ||
    !Number.isSafeInteger(checkpoint.seq) ||
    (checkpoint.seq as number) < 1 ||
    typeof checkpoint.hash !== "string" ||
    typeof checkpoint.createdAt !== "string" ||
    typeof checkpoint.keyId !== "string" ||
    typeof checkpoint.hmac !== "string" ||
    !HEX_64.test(checkpoint.hmac) ||
    typeof checkpoint.payload !== "string" ||
    !optionalText(checkpoint.signature) ||
    !optionalText(checkpoint.signingKeyId)
  ) {
    return null;
  }
  // The stored createdAt may come back from the database in another ISO form: the payload's
  // is the signed one, and the payload check compares the rest.
  let createdAt = checkpoint.createdAt;
  try {
    const signed = JSON.parse(checkpoint.payload) as { createdAt?: unknown };
    if (
      typeof signed.createdAt === "string" &&
      Date.parse(signed.createdAt) === Date.parse(createdAt)
    ) {
      createdAt = signed.createdAt;
    }
  } catch {
    // Not JSON: the payload check refuses it.
  }
  return { ...(checkpoint as StoredCheckpoint), createdAt };
}

/** Trusted Ed25519 public keys, from PEM, base64 DER, KeyObjects or VerifyingKeys. */
export function verifyingKeys(
  keys: readonly (string | KeyObject | VerifyingKey)[],
  field: string,
): VerifyingKey[] {
  if (!Array.isArray(keys)) {
    throw new InvalidArgumentError(
      field,
      "must be an array of Ed25519 public keys.",
      "Pass [publicKeyPem], e.g. the PEM of sdk.audit.signingPublicKey.",
    );
  }
  return keys.map((key, index) =>
    key instanceof VerifyingKey ? key : new VerifyingKey(key, `${field}[${index}]`),
  );
}

/** One checkpoint a public-key verification refused. */
export interface CheckpointFailure {
  /** Its position in what was given (1 for the first; a witness file's line number). */
  index: number;
  checkpointId: string | null;
  chain: string | null;
  seq: number | null;
  reason: string;
}

/** What {@link verifyCheckpoints} found. */
export interface CheckpointVerificationReport {
  /** Checkpoints whose Ed25519 signature verified under a trusted key. */
  verified: number;
  /**
   * Checkpoints without a signature (written before signing keys, or without one): a public
   * key cannot check them, so they prove nothing here. Failures instead when
   * `requireSignature`.
   */
  hmacOnly: number;
  /** Checkpoints refused: edited, forged, or signed by a key that is not trusted. */
  failed: number;
  /**
   * Witness lines that are not even JSON (given as their raw text: torn by a crash or a full
   * disk, or overwritten): counted, not failures — such a line hides nothing that deleting it
   * would not.
   */
  damaged: number;
  /** The first failures (at most 100). */
  failures: CheckpointFailure[];
  /**
   * Each chain's highest verified checkpoint: the head it must still reach. Compare with
   * `select chain, max(seq) from gov_audit.events group by chain` and the row at `seq`
   * (`hmac` = `hash`) — no secret needed.
   */
  heads: { chain: string; seq: number; hash: string; createdAt: string; checkpointId: string }[];
}

/** Options of {@link verifyCheckpoints}. */
export interface VerifyCheckpointsOptions {
  /** The Ed25519 public keys to trust (PEM, base64 DER, KeyObject or VerifyingKey). */
  publicKeys: readonly (string | KeyObject | VerifyingKey)[];
  /** Count checkpoints without a signature as failures. @default false */
  requireSignature?: boolean;
}

const verifyCheckpointsOptionsSchema = z.object({
  publicKeys: z.unknown().optional(),
  requireSignature: z.boolean().optional(),
});

/**
 * Verify checkpoints with Ed25519 public keys alone — no HMAC secret, no database access:
 * the lines of a witness file, or rows of `gov_audit.checkpoints`. Each must be the canonical
 * form of its fields, signed by a trusted key. Checkpoints without a signature are counted as
 * HMAC-only (a public key cannot check them); witness lines that are not even JSON (raw
 * text) as damaged.
 *
 * @example
 * ```ts
 * const report = await verifyCheckpoints(new FileCheckpointWitness("evidence/gov-checkpoints.jsonl").read(), {
 *   publicKeys: [process.env.GOVERNANCE_AUDIT_PUBLIC_KEY!],
 * });
 * report.failed; // 0 when nothing was edited or forged
 * report.heads; // the head every chain must still reach
 * ```
 * @throws {InvalidArgumentError} (as a rejection) without a public key.
 */
export async function verifyCheckpoints(
  checkpoints: Iterable<unknown> | AsyncIterable<unknown>,
  options: VerifyCheckpointsOptions,
): Promise<CheckpointVerificationReport> {
  if (typeof options === "object" && options !== null) {
    // Unknown keys and a non-boolean requireSignature; the keys are read below, by name.
    parseOptions(verifyCheckpointsOptionsSchema, options);
  }
  const keys = verifyingKeys(options?.publicKeys ?? [], "publicKeys");
  if (keys.length === 0) {
    throw new InvalidArgumentError(
      "publicKeys",
      "must hold at least one Ed25519 public key.",
      "Pass the public key checkpoints are signed with (sdk.audit.signingPublicKey.pem).",
    );
  }
  if (
    checkpoints === null ||
    typeof checkpoints !== "object" ||
    !(Symbol.iterator in checkpoints || Symbol.asyncIterator in checkpoints)
  ) {
    throw new InvalidArgumentError(
      "checkpoints",
      "must be an iterable of checkpoints (witness lines or rows of gov_audit.checkpoints).",
      "Pass witness.read(), or the rows of `select * from gov_audit.checkpoints`.",
    );
  }
  const trust: CheckpointTrust = {
    keyring: null,
    verifyingKeys: keys,
    requireSignature: options.requireSignature ?? false,
  };
  const report: CheckpointVerificationReport = {
    verified: 0,
    hmacOnly: 0,
    failed: 0,
    damaged: 0,
    failures: [],
    heads: [],
  };
  const heads = new Map<string, CheckpointVerificationReport["heads"][number]>();
  let index = 0;
  for await (const value of checkpoints) {
    index++;
    if (typeof value === "string") {
      report.damaged++;
      continue;
    }
    const checkpoint = parseCheckpoint(value);
    const result: CheckpointCheck = checkpoint
      ? checkCheckpoint(checkpoint, trust)
      : { ok: false, reason: "it is not a checkpoint", hmacOnly: false };
    if (result.ok) {
      report.verified++;
      const known = heads.get((checkpoint as StoredCheckpoint).chain);
      if (checkpoint && (!known || checkpoint.seq > known.seq)) {
        heads.set(checkpoint.chain, {
          chain: checkpoint.chain,
          seq: checkpoint.seq,
          hash: checkpoint.hash,
          createdAt: checkpoint.createdAt,
          checkpointId: checkpoint.checkpointId,
        });
      }
    } else if (result.hmacOnly && !trust.requireSignature) {
      report.hmacOnly++;
    } else {
      report.failed++;
      if (report.failures.length < 100) {
        report.failures.push({
          index,
          checkpointId: checkpoint?.checkpointId ?? null,
          chain: checkpoint?.chain ?? null,
          seq: checkpoint?.seq ?? null,
          reason: result.reason,
        });
      }
    }
  }
  report.heads = [...heads.values()].sort((a, b) =>
    a.chain < b.chain ? -1 : a.chain > b.chain ? 1 : 0,
  );
  return report;
}
