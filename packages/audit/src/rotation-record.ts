/**
 * The key rotation record (FORMAT.md, "Key rotation"): its stored and signed forms, the
 * check of one record, and the constants of the format.
 */
import { canonicalJson, type Keyring } from "@gov/core";
import { RECORD_FORMAT_VERSION } from "./record";

/** A key rotation as stored in `gov_audit.key_rotations` (FORMAT.md, "Key rotation"). */
export interface StoredRotation {
  rotationId: string;
  oldKeyId: string;
  newKeyId: string;
  /** The `rotated_at` column, ISO 8601. */
  rotatedAt: string;
  /** The signed record. */
  payload: string;
  /** HMAC-SHA256 of `payload` under the old key. */
  hmacOld: string;
  /** HMAC-SHA256 of `payload` under the new key. */
  hmacNew: string;
}

/** The signed fields of a key rotation. */
export interface KeyRotationFields {
  rotationId: string;
  oldKeyId: string;
  newKeyId: string;
  operatorId: string;
  reason: string;
  /** ISO 8601 UTC with milliseconds. */
  rotatedAt: string;
}

/** One key's place in the rotation history: when it may sign. */
export interface KeyEpoch {
  keyId: string;
  /** Position in the history, from 0 (the first key). Along a chain it never goes back. */
  index: number;
  /** When it was rotated in, in ms since the epoch; `-Infinity` for the first key. */
  from: number;
  /** When it was rotated out, in ms since the epoch; `Infinity` for the newest key. */
  until: number;
  /** The rotation that retired it, if any. */
  rotatedOutBy: string | null;
}

/**
 * How far a signed `createdAt` may lie outside its key's validity and still be accepted:
 * the clocks of two hosts disagree a little, and a row signed just before its process
 * learned of a rotation can land just after it. A row under a retired key dated later
 * than its key's rotation-out plus this grace fails; so does a row under a key dated
 * earlier than its rotation-in minus this grace. Part of the format (FORMAT.md).
 */
export const KEY_ROTATION_GRACE_MS = 60_000;

/** The `chain` of a failure of the key rotation history itself (not of an event chain). */
export const KEY_HISTORY_CHAIN = "gov_audit.key_rotations";

/** The kind of the event that records a key rotation in the chain `agent:gov.audit`. */
export const KEY_ROTATED_KIND = "audit.key_rotated";

/** The signed form of a key rotation (FORMAT.md, "Key rotation"). */
export function rotationPayload(rotation: KeyRotationFields): string {
  return canonicalJson({
    v: RECORD_FORMAT_VERSION,
    type: "key_rotation",
    rotationId: rotation.rotationId,
    oldKeyId: rotation.oldKeyId,
    newKeyId: rotation.newKeyId,
    operatorId: rotation.operatorId,
    reason: rotation.reason,
    rotatedAt: rotation.rotatedAt,
  });
}

/**
 * What is wrong with a stored rotation, or null: its signed record (canonical, version 1),
 * its columns against it, and each MAC the keyring can check — `hmac_old` under the old key,
 * `hmac_new` under the new one. A MAC whose key is not in the keyring cannot be checked and
 * is not held against the record.
 */
export function rotationProblem(rotation: StoredRotation, keyring: Keyring): string | null {
  let signed: Partial<KeyRotationFields> & { v?: unknown; type?: unknown };
  try {
    signed = JSON.parse(rotation.payload) as typeof signed;
  } catch {
    return "its signed record is not JSON";
  }
  if (signed.v !== RECORD_FORMAT_VERSION || signed.type !== "key_rotation")
    return `its signed record is not a version ${RECORD_FORMAT_VERSION} key rotation`;
  let canonical: string;
  try {
    canonical = rotationPayload(signed as KeyRotationFields);
  } catch {
    canonical = "";
  }
  if (canonical !== rotation.payload) return "its signed record is not in its canonical form";
  for (const field of ["rotationId", "oldKeyId", "newKeyId"] as const) {
    if (signed[field] !== rotation[field])
      return `its ${field.replace(/[A-Z]/g, (letter) => `_${letter.toLowerCase()}`)} column differs from its signed record`;
  }
  if (Date.parse(String(signed.rotatedAt)) !== Date.parse(rotation.rotatedAt))
    return "its rotated_at column differs from its signed record";
  if (rotation.oldKeyId === rotation.newKeyId) return "it rotates a key to itself";
  const oldKey = keyring.find(rotation.oldKeyId);
  if (oldKey && !oldKey.verifyHex(rotation.payload, rotation.hmacOld))
    return `it is not signed by key ${rotation.oldKeyId}, the old key (hmac_old does not verify)`;
  const newKey = keyring.find(rotation.newKeyId);
  if (newKey && !newKey.verifyHex(rotation.payload, rotation.hmacNew))
    return `it is not signed by key ${rotation.newKeyId}, the new key (hmac_new does not verify)`;
  return null;
}

/** Rotations in history order: by time, then id. */
export function byRotatedAt(a: StoredRotation, b: StoredRotation): number {
  return (
    Date.parse(a.rotatedAt) - Date.parse(b.rotatedAt) ||
    (a.rotationId < b.rotationId ? -1 : a.rotationId > b.rotationId ? 1 : 0)
  );
}
