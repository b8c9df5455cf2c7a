import { resolve } from "node:path";
import { isPrivateKeyMaterial, type SdkContribution, VerifyingKey } from "@gov/core";
import { z } from "zod";
import type { AuditOptions } from "./options";
import { type CheckpointWitness, isCheckpointWitness } from "./witness";

/** The audit module's options as the SDK takes them. */
export interface AuditSdkOptions {
  /** Audit module on or off (`sdk.audit`). @default true */
  enableAudit?: boolean;
  /** Verify the chains of what `sdk.audit.getEvents()` returns. Env: `GOVERNANCE_VERIFY_CHAIN_ON_READ`. @default false */
  verifyChainOnRead?: boolean;
  /**
   * Where audit events wait while the database is away; `false` turns the spool off (events
   * then become placeholders). Env: `GOVERNANCE_AUDIT_SPOOL_DIR`.
   * @default `<embedded database>/audit-spool`, or `./.governance/audit-spool`
   */
  auditSpoolDirectory?: string | false;
  /**
   * Sign every chain's head into a checkpoint this often; 0 turns it off. Heads reach the
   * witness only through checkpoints. Env: `GOVERNANCE_AUDIT_CHECKPOINT_INTERVAL_MS`.
   * @default 60000 with an `auditWitness`, else 0
   */
  auditCheckpointIntervalMs?: number;
  /**
   * Where every checkpoint is also written, outside the database, so that rows and
   * checkpoints deleted together are still caught (`sdk.audit.verifyChain({ witness })`): a
   * file path (JSON lines, append-only, fsynced; relative to `cwd`) or a `CheckpointWitness`.
   * Env: `GOVERNANCE_AUDIT_WITNESS_PATH`. @default none
   */
  auditWitness?: string | CheckpointWitness;
  /**
   * Ed25519 public keys (PEM or base64 DER) of earlier checkpoint signing keys, whose
   * checkpoints verification still believes. Public keys only: a private key is refused
   * (`ConfigError` naming the option, never the key), so that it never sits in `sdk.config`.
   * @default []
   * @example
   * ```ts
   * await GovernanceSDK.start({ auditTrustedSigningKeys: [previousSdk.audit.signingPublicKey!.pem] });
   * ```
   */
  auditTrustedSigningKeys?: string[];
}

/**
 * A trusted checkpoint signing key: an Ed25519 public key. A private key is refused (its
 * public half is not derived): it would sit in the parsed configuration, which is shown. The
 * message never repeats the value.
 */
const trustedSigningKeySchema = z
  .string()
  .min(1)
  .superRefine((value, context) => {
    if (isPrivateKeyMaterial(value)) {
      context.addIssue({
        code: "custom",
        message:
          "is a private key; only public keys are trusted here (keep the private key in auditSigningKey).",
      });
      return;
    }
    try {
      new VerifyingKey(value, "auditTrustedSigningKeys");
    } catch {
      context.addIssue({
        code: "custom",
        message: "is not an Ed25519 public key (PEM or the base64 of its DER form).",
      });
    }
  });

/** The audit module's SDK options once parsed (defaults applied). */
interface AuditSdkConfig {
  verifyChainOnRead: boolean;
  auditSpoolDirectory?: string | false;
  auditCheckpointIntervalMs?: number;
  auditWitness?: string | CheckpointWitness;
  auditTrustedSigningKeys: string[];
}

/**
 * What the audit module contributes to `GovernanceSDK.start()`: `enableAudit` (on by
 * default), its options (`verifyChainOnRead`, `audit…`), their environment variables and
 * fixes, and how they become {@link AuditOptions} (paths resolved against `cwd`; `false`
 * turns the spool off).
 */
export const auditSdkContribution: SdkContribution<AuditSdkConfig> = {
  flag: "enableAudit",
  enabledByDefault: true,
  options: {
    verifyChainOnRead: z.boolean().default(false),
    auditSpoolDirectory: z.union([z.string().min(1), z.literal(false)]).optional(),
    auditCheckpointIntervalMs: z.number().int().min(0).max(86_400_000).optional(),
    auditWitness: z
      .union([
        z.string().min(1),
        z.custom<CheckpointWitness>(isCheckpointWitness, {
          message: "must be a file path or an object with append() and read().",
        }),
      ])
      .optional(),
    auditTrustedSigningKeys: z.array(trustedSigningKeySchema).max(64).default([]),
  },
  env: [
    { env: "GOVERNANCE_VERIFY_CHAIN_ON_READ", path: ["verifyChainOnRead"], kind: "boolean" },
    { env: "GOVERNANCE_AUDIT_SPOOL_DIR", path: ["auditSpoolDirectory"], kind: "string" },
    {
      env: "GOVERNANCE_AUDIT_CHECKPOINT_INTERVAL_MS",
      path: ["auditCheckpointIntervalMs"],
      kind: "integer",
    },
    { env: "GOVERNANCE_AUDIT_WITNESS_PATH", path: ["auditWitness"], kind: "string" },
  ],
  fixes: {
    verifyChainOnRead: "Use true or false.",
    auditSpoolDirectory: "Use a writable directory path, or false to turn the spool off.",
    auditCheckpointIntervalMs: "Use an integer number of milliseconds from 0 (off) to 86400000.",
    auditWitness:
      "Use the path of a file outside the database's reach, or an object with append() and read() (a CheckpointWitness).",
    auditTrustedSigningKeys:
      "Use Ed25519 public keys as PEM (-----BEGIN PUBLIC KEY-----), e.g. sdk.audit.signingPublicKey.pem or `openssl pkey -in key.pem -pubout`; never a private key.",
  },
  moduleOptions: (config, { cwd }): AuditOptions => ({
    verifyChainOnRead: config.verifyChainOnRead,
    ...(config.auditSpoolDirectory === undefined
      ? {}
      : {
          spoolDirectory:
            config.auditSpoolDirectory === false ? null : resolve(cwd, config.auditSpoolDirectory),
        }),
    ...(config.auditCheckpointIntervalMs === undefined
      ? {}
      : { checkpointIntervalMs: config.auditCheckpointIntervalMs }),
    ...(config.auditWitness === undefined
      ? {}
      : {
          witness:
            typeof config.auditWitness === "string"
              ? resolve(cwd, config.auditWitness)
              : config.auditWitness,
        }),
    trustedSigningKeys: config.auditTrustedSigningKeys,
  }),
};
