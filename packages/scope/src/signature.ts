import { type ChainKey, canonicalJson, type Keyring } from "@gov/core";
import { SCOPE_LIMITS } from "./models";

/**
 * The domain tag of a stored policy's MAC. It is part of the signed form, so a MAC that the
 * chain key made for anything else (an audit row, an approval decision) never verifies as a
 * scope policy, and a policy's MAC never verifies as anything else.
 */
export const SCOPE_POLICY_SIGNATURE_TYPE = "gov.scope.policy.v1";

/**
 * Why a stored policy was refused, as logged and written to the audit chain
 * (`scope.policy_rejected`, `metadata.reason`).
 */
export type ScopePolicyRejectionReason =
  /** The row has no MAC: written before policies were signed, or by hand. */
  | "unsigned"
  /** The row names a key that is not in this process's keyring. */
  | "unknown_key"
  /** The MAC does not match the row's fields (changed, copied from another agent, forged). */
  | "bad_signature"
  /** The row's columns are not what the module writes (lists that are not arrays of names, a revision out of range). */
  | "malformed"
  /** The row is signed but is not a valid policy for this version of the module. */
  | "invalid_policy";

/** Everything a check relies on, as signed: the row's fields. */
export interface SignedPolicyFields {
  agentId: string;
  allowedTools: readonly string[];
  allowedApis: readonly string[];
  hiddenTools: readonly string[];
  allowedModels: readonly string[];
  /** The stored revision (≥ 1): signed, so that a row cannot be made to look newer. */
  revision: number;
}

/** A stored row as it was read: any column may have been changed by hand. */
export interface StoredPolicyRow {
  agentId: string;
  allowedTools: unknown;
  allowedApis: unknown;
  hiddenTools: unknown;
  allowedModels: unknown;
  revision: unknown;
  mac: string | null;
  keyId: string | null;
}

/** The outcome of {@link verifyStoredPolicy}. */
export type StoredPolicyCheck =
  | { ok: true; fields: SignedPolicyFields }
  | { ok: false; reason: ScopePolicyRejectionReason; problem: string };

/**
 * The signed form of a policy: RFC 8785 JSON of its fields and the domain tag. Key order
 * does not matter; list order does (it is kept as stored).
 */
export function signedPolicyPayload(fields: SignedPolicyFields): string {
  return canonicalJson({
    type: SCOPE_POLICY_SIGNATURE_TYPE,
    agentId: fields.agentId,
    allowedTools: [...fields.allowedTools],
    allowedApis: [...fields.allowedApis],
    hiddenTools: [...fields.hiddenTools],
    allowedModels: [...fields.allowedModels],
    revision: fields.revision,
  });
}

/** Sign a policy's fields with `key`: the MAC and the key id to store beside them. */
export function signPolicy(
  key: ChainKey,
  fields: SignedPolicyFields,
): { mac: string; keyId: string } {
  return { mac: key.hmacHex(signedPolicyPayload(fields)), keyId: key.id };
}

/** The longest list a row may hold before its MAC is even computed. */
const MAX_LIST = Math.max(
  SCOPE_LIMITS.allowedTools,
  SCOPE_LIMITS.allowedApis,
  SCOPE_LIMITS.hiddenTools,
  SCOPE_LIMITS.allowedModels,
);

/** A list of names as the module writes it; anything else is refused before hashing. */
function isNameList(value: unknown): value is string[] {
  if (!Array.isArray(value) || value.length > MAX_LIST) return false;
  for (const item of value) if (typeof item !== "string") return false;
  return true;
}

/**
 * Check a stored row against the keyring: its columns have the shapes the module writes, it
 * names a key of the keyring (by its exact id), and its MAC matches its fields (compared in
 * constant time). Never throws; says why a row is refused, without any key material.
 */
export function verifyStoredPolicy(keyring: Keyring, row: StoredPolicyRow): StoredPolicyCheck {
  const { agentId, allowedTools, allowedApis, hiddenTools, allowedModels, revision } = row;
  for (const [column, value] of [
    ["allowed_tools", allowedTools],
    ["allowed_apis", allowedApis],
    ["hidden_tools", hiddenTools],
    ["allowed_models", allowedModels],
  ] as const) {
    if (!isNameList(value))
      return {
        ok: false,
        reason: "malformed",
        problem: `its ${column} is not an array of at most ${MAX_LIST} names`,
      };
  }
  if (typeof revision !== "number" || !Number.isSafeInteger(revision) || revision < 1)
    return {
      ok: false,
      reason: "malformed",
      problem: "its revision is not an integer between 1 and 2^53 - 1",
    };
  if (row.mac === null || row.keyId === null)
    return { ok: false, reason: "unsigned", problem: "it has no signature" };
  const key = keyring.find(row.keyId);
  // The exact id only: a prefix of it, or the whole fingerprint, is not what the module writes.
  if (key === undefined || key.id !== row.keyId)
    return {
      ok: false,
      reason: "unknown_key",
      problem: `it is signed with key ${describeKeyId(row.keyId)}, which is not in the keyring`,
    };
  const fields: SignedPolicyFields = {
    agentId,
    allowedTools: allowedTools as string[],
    allowedApis: allowedApis as string[],
    hiddenTools: hiddenTools as string[],
    allowedModels: allowedModels as string[],
    revision,
  };
  if (!key.verifyHex(signedPolicyPayload(fields), row.mac))
    return {
      ok: false,
      reason: "bad_signature",
      problem: `its MAC does not match its fields under key ${key.id}`,
    };
  return { ok: true, fields };
}

/** A key id from the table, as it may be shown: hex of a key id's length, or a placeholder. */
export function describeKeyId(keyId: string | null): string {
  if (keyId === null) return "(none)";
  return /^[0-9a-f]{1,64}$/.test(keyId) ? keyId : "(not a key id)";
}
