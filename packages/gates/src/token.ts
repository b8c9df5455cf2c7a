import { createHash } from "node:crypto";
import { type ChainKey, isUuid, KEY_ID_LENGTH, type Keyring } from "@gov/core";
import { ApprovalTokenError } from "./errors";
import { GATES_LIMITS } from "./models";

/**
 * Domain separation for token MACs: the HMAC input is this tag followed by the token
 * without its last field (`:<mac>`). The same keys sign the audit chain, whose records are
 * canonical JSON, so a MAC over one can never be replayed as the other.
 */
export const TOKEN_MAC_DOMAIN = "gov.gates.token\0";

/** Domain separation for the stored digest of a token (the token itself is never stored). */
export const TOKEN_DIGEST_DOMAIN = "gov.gates.token-digest\0";

/** The version tag of the current format. */
export const TOKEN_V2_TAG = "v2";

/** The fields a token signs. */
export interface TokenFields {
  /** The request's UUID (lower-case). */
  requestId: string;
  /** SHA-256 (hex) of the canonical payload. */
  actionHash: string;
  /** Expiry, in milliseconds since the epoch. */
  expiresAtMs: number;
}

/** A token, parsed (not yet verified). */
export type ParsedToken = TokenFields & {
  /** 1 (legacy, bound to the current key) or 2 (bound to the key named by `keyId`). */
  version: 1 | 2;
  /** The key id the token names (v2), or null (v1). */
  keyId: string | null;
  /** The MAC, as 64 lower-case hex characters. */
  mac: string;
  /** What the MAC covers: the token without its last `:` field. */
  signed: string;
};

const HEX64 = /^[0-9a-f]{64}$/;
const KEY_ID = new RegExp(`^[0-9a-f]{${KEY_ID_LENGTH}}$`);
const MILLIS = /^[1-9][0-9]{0,15}$/;
const VERSION_TAG = /^v[0-9]+$/;

/**
 * Mint a token for `fields` under `key`.
 *
 * - v2: `v2:<key id>:<request id>:<action hash>:<expires at ms>:<mac>`
 * - v1 (legacy): `<request id>:<action hash>:<expires at ms>:<mac>`
 *
 * where `mac` is HMAC-SHA256 (hex) under `key` of {@link TOKEN_MAC_DOMAIN} followed by the
 * token up to (not including) its last `:`.
 */
export function mintToken(key: ChainKey, version: 1 | 2, fields: TokenFields): string {
  const body = `${fields.requestId}:${fields.actionHash}:${fields.expiresAtMs}`;
  const signed = version === 2 ? `${TOKEN_V2_TAG}:${key.id}:${body}` : body;
  return `${signed}:${key.hmacHex(TOKEN_MAC_DOMAIN + signed)}`;
}

function malformed(note?: string): ApprovalTokenError {
  return new ApprovalTokenError({ reason: "malformed", ...(note ? { note } : {}) });
}

/**
 * Read a token's fields, strictly: lower-case hex and UUIDs, an expiry in whole
 * milliseconds, nothing else. Nothing is verified yet.
 *
 * @throws {ApprovalTokenError} `malformed` or `malformed_key_prefix`.
 */
export function parseToken(token: string): ParsedToken {
  if (token.length === 0) throw malformed("It is empty.");
  if (token.length > GATES_LIMITS.tokenLength)
    throw malformed(
      `It is ${token.length} characters long; a token has at most ${GATES_LIMITS.tokenLength}.`,
    );
  const parts = token.split(":");
  let version: 1 | 2;
  let keyId: string | null = null;
  let rest: string[];
  if (parts[0] === TOKEN_V2_TAG) {
    if (parts.length !== 6) throw malformed("A v2 token has six fields separated by ':'.");
    keyId = parts[1] as string;
    if (!KEY_ID.test(keyId)) throw new ApprovalTokenError({ reason: "malformed_key_prefix" });
    version = 2;
    rest = parts.slice(2);
  } else if (VERSION_TAG.test(parts[0] ?? "")) {
    throw malformed(
      `Its version tag ${JSON.stringify(parts[0])} is not one this package knows (v2).`,
    );
  } else if (parts.length === 4) {
    version = 1;
    rest = parts;
  } else {
    throw malformed();
  }
  const [requestId, actionHash, expiresAt, mac] = rest as [string, string, string, string];
  if (!isUuid(requestId)) throw malformed("Its request id is not a lower-case UUID.");
  if (!HEX64.test(actionHash))
    throw malformed("Its action hash is not 64 lower-case hex characters.");
  if (!MILLIS.test(expiresAt) || !Number.isSafeInteger(Number(expiresAt)))
    throw malformed("Its expiry is not a whole number of milliseconds.");
  if (!HEX64.test(mac)) throw malformed("Its MAC is not 64 lower-case hex characters.");
  return {
    version,
    keyId,
    requestId,
    actionHash,
    expiresAtMs: Number(expiresAt),
    mac,
    signed: token.slice(0, token.length - mac.length - 1),
  };
}

/**
 * Check a parsed token's MAC, in constant time, under the key it is bound to: for v2, the
 * key its prefix names (historical keys included); for v1, the current key.
 *
 * @returns the key that verified it.
 * @throws {ApprovalTokenError} `historical_key_unavailable` or `signature_mismatch`.
 */
export function verifyTokenMac(parsed: ParsedToken, keyring: Keyring): ChainKey {
  let key: ChainKey;
  if (parsed.version === 2) {
    const found = keyring.find(parsed.keyId as string);
    // find() matches a prefix: insist on the exact id, so that one key has one spelling.
    if (!found || found.id !== parsed.keyId) {
      throw new ApprovalTokenError({
        reason: "historical_key_unavailable",
        requestId: parsed.requestId,
        note: `It names key ${parsed.keyId}; the keyring holds ${keyring.keys.map((candidate) => candidate.id).join(", ")}.`,
      });
    }
    key = found;
  } else {
    key = keyring.current;
  }
  if (!key.verifyHex(TOKEN_MAC_DOMAIN + parsed.signed, parsed.mac)) {
    throw new ApprovalTokenError({
      reason: "signature_mismatch",
      requestId: parsed.requestId,
      ...(parsed.version === 1
        ? {
            note: "Legacy v1 tokens verify under the current key only: one issued before a key rotation no longer verifies.",
          }
        : {}),
    });
  }
  return key;
}

/** SHA-256 (hex) of {@link TOKEN_DIGEST_DOMAIN} + the token: what is stored instead of it. */
export function tokenDigest(token: string): string {
  return createHash("sha256").update(TOKEN_DIGEST_DOMAIN).update(token, "utf8").digest("hex");
}
