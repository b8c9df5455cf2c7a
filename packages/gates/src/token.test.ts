import { createHmac } from "node:crypto";
import { ChainKey, GovernanceError } from "@gov/core";
import { describe, expect, it } from "vitest";
import { keyringOf, SECRET_A, SECRET_B, SECRET_C } from "./__fixtures__";
import { ApprovalTokenError, GATES_ERROR_CODES, TokenVersionTooOldError } from "./errors";
import {
  mintToken,
  parseToken,
  TOKEN_DIGEST_DOMAIN,
  TOKEN_MAC_DOMAIN,
  tokenDigest,
  verifyTokenMac,
} from "./token";

const REQUEST_ID = "0b6f5a8e-3c1d-4f2a-9e7b-5d4c3b2a1f00";
const ACTION_HASH = "a".repeat(64);
const EXPIRES_AT = Date.parse("2026-01-01T01:00:00.000Z");
const FIELDS = { requestId: REQUEST_ID, actionHash: ACTION_HASH, expiresAtMs: EXPIRES_AT };

function refusal(run: () => unknown): ApprovalTokenError {
  try {
    run();
  } catch (error) {
    if (ApprovalTokenError.isInstance(error)) return error;
    throw error;
  }
  throw new Error("expected an ApprovalTokenError, but nothing was thrown");
}

/** Replace the character at `index` with another hex digit. */
function flip(token: string, index: number): string {
  const character = token[index] === "0" ? "1" : "0";
  return `${token.slice(0, index)}${character}${token.slice(index + 1)}`;
}

describe("the v2 token format", () => {
  const keyA = new ChainKey(SECRET_A);

  it("is v2:<key id>:<request id>:<action hash>:<expires at ms>:<mac>, the MAC over the rest", () => {
    const token = mintToken(keyA, 2, FIELDS);
    const signed = `v2:${keyA.id}:${REQUEST_ID}:${ACTION_HASH}:${EXPIRES_AT}`;
    // The documented construction, recomputed by hand (README: "The token format").
    const mac = createHmac("sha256", SECRET_A).update(`gov.gates.token\0${signed}`).digest("hex");
    expect(token).toBe(`${signed}:${mac}`);
    expect(TOKEN_MAC_DOMAIN).toBe("gov.gates.token\0");
    expect(parseToken(token)).toEqual({
      version: 2,
      keyId: keyA.id,
      requestId: REQUEST_ID,
      actionHash: ACTION_HASH,
      expiresAtMs: EXPIRES_AT,
      mac,
      signed,
    });
    expect(verifyTokenMac(parseToken(token), keyringOf(SECRET_A)).id).toBe(keyA.id);
  });

  it("a token forged under another key is refused as a signature mismatch", () => {
    // The forger knows the format and a key id, but not the secret.
    const forged = mintToken(new ChainKey(SECRET_B), 2, FIELDS).replace(
      new ChainKey(SECRET_B).id,
      keyA.id,
    );
    const error = refusal(() => verifyTokenMac(parseToken(forged), keyringOf(SECRET_A)));
    expect(error.reason).toBe("signature_mismatch");
    expect(error.code).toBe(GATES_ERROR_CODES.APPROVAL_TOKEN_INVALID);
    expect(error.requestId).toBe(REQUEST_ID);
  });

  it("every single flipped character of the MAC is refused", () => {
    const token = mintToken(keyA, 2, FIELDS);
    const start = token.lastIndexOf(":") + 1;
    for (let index = start; index < token.length; index++) {
      const error = refusal(() =>
        verifyTokenMac(parseToken(flip(token, index)), keyringOf(SECRET_A)),
      );
      expect(error.reason).toBe("signature_mismatch");
    }
  });

  it("a swapped action hash, request id or expiry breaks the MAC", () => {
    const token = mintToken(keyA, 2, FIELDS);
    const swapped = [
      token.replace(ACTION_HASH, "b".repeat(64)),
      token.replace(REQUEST_ID, "1b6f5a8e-3c1d-4f2a-9e7b-5d4c3b2a1f00"),
      token.replace(String(EXPIRES_AT), String(EXPIRES_AT + 86_400_000)),
    ];
    for (const altered of swapped) {
      expect(refusal(() => verifyTokenMac(parseToken(altered), keyringOf(SECRET_A))).reason).toBe(
        "signature_mismatch",
      );
    }
  });

  it("still verifies after a key rotation while the old key is in the keyring", () => {
    const token = mintToken(keyA, 2, FIELDS);
    const rotated = keyringOf(SECRET_B, SECRET_A);
    expect(rotated.current.id).not.toBe(keyA.id);
    expect(verifyTokenMac(parseToken(token), rotated).id).toBe(keyA.id);
  });

  it("fails with historical_key_unavailable when the old key is absent", () => {
    const token = mintToken(keyA, 2, FIELDS);
    const error = refusal(() => verifyTokenMac(parseToken(token), keyringOf(SECRET_B, SECRET_C)));
    expect(error.reason).toBe("historical_key_unavailable");
    expect(error.message).toContain(keyA.id);
    expect(error.recoveryHint).toContain("GOVERNANCE_CHAIN_KEY_");
  });

  it("a prefix of another key's id is not that key: the id must match exactly", () => {
    const token = mintToken(keyA, 2, FIELDS);
    // A well-formed 16-hex id that shares its first 8 characters with key A's.
    const near = `${keyA.id.slice(0, 8)}${keyA.id.slice(8) === "00000000" ? "11111111" : "00000000"}`;
    const error = refusal(() =>
      verifyTokenMac(parseToken(token.replace(keyA.id, near)), keyringOf(SECRET_A)),
    );
    expect(error.reason).toBe("historical_key_unavailable");
  });
});

describe("the legacy v1 token format", () => {
  it("is <request id>:<action hash>:<expires at ms>:<mac> and verifies under the current key only", () => {
    const keyA = new ChainKey(SECRET_A);
    const token = mintToken(keyA, 1, FIELDS);
    expect(token.split(":")).toHaveLength(4);
    const parsed = parseToken(token);
    expect(parsed).toMatchObject({ version: 1, keyId: null, requestId: REQUEST_ID });
    expect(verifyTokenMac(parsed, keyringOf(SECRET_A)).id).toBe(keyA.id);
    // After a rotation a v1 token no longer verifies (v2's reason to exist).
    const error = refusal(() => verifyTokenMac(parsed, keyringOf(SECRET_B, SECRET_A)));
    expect(error.reason).toBe("signature_mismatch");
    expect(error.message).toContain("Legacy v1 tokens verify under the current key only");
  });

  it("TokenVersionTooOldError is an ApprovalTokenError with its own code", () => {
    const error = new TokenVersionTooOldError(REQUEST_ID, new Date("2026-07-17T00:00:00.000Z"));
    expect(ApprovalTokenError.isInstance(error)).toBe(true);
    expect(TokenVersionTooOldError.isInstance(error)).toBe(true);
    expect(GovernanceError.isInstance(error)).toBe(true);
    expect(error.code).toBe("TOKEN_VERSION_TOO_OLD");
    expect(error.reason).toBe("version_too_old");
    expect(error.message).toContain("2026-07-17T00:00:00.000Z");
    expect(error.recoveryHint).toContain("GOVERNANCE_GATES_ACCEPT_V1_UNTIL");
    expect(TokenVersionTooOldError.isInstance(new ApprovalTokenError({ reason: "expired" }))).toBe(
      false,
    );
  });
});

describe("malformed tokens", () => {
  const keyA = new ChainKey(SECRET_A);
  const v2 = mintToken(keyA, 2, FIELDS);
  const v1 = mintToken(keyA, 1, FIELDS);
  const mac = v2.slice(v2.lastIndexOf(":") + 1);

  it.each([
    ["empty", ""],
    ["one field", "hello"],
    ["a v2 token with a field missing", `v2:${keyA.id}:${REQUEST_ID}:${ACTION_HASH}:${mac}`],
    ["a v2 token with a field too many", `${v2}:extra`],
    ["an unknown version", v2.replace(/^v2:/, "v3:")],
    ["an upper-case version tag", v2.replace(/^v2:/, "V2:")],
    ["an upper-case request id", v2.replace(REQUEST_ID, REQUEST_ID.toUpperCase())],
    ["a request id that is not a UUID", v2.replace(REQUEST_ID, "not-a-uuid")],
    ["a short action hash", v2.replace(ACTION_HASH, "a".repeat(63))],
    ["an upper-case action hash", v2.replace(ACTION_HASH, "A".repeat(64))],
    ["an ISO expiry", v1.replace(String(EXPIRES_AT), "2026-01-01")],
    ["an expiry with a leading zero", v2.replace(`:${EXPIRES_AT}:`, `:0${EXPIRES_AT}:`)],
    ["a negative expiry", v2.replace(`:${EXPIRES_AT}:`, `:-${EXPIRES_AT}:`)],
    ["an expiry beyond 2^53", v2.replace(`:${EXPIRES_AT}:`, ":99999999999999999:")],
    ["an upper-case MAC", v2.replace(mac, mac.toUpperCase())],
    ["a truncated MAC", v2.slice(0, -1)],
    ["whitespace around it", ` ${v2}`],
    ["a trailing line break", `${v2}\n`],
    ["quotes around it", `"${v2}"`],
    ["a v1 token with a field missing", v1.slice(0, v1.lastIndexOf(":"))],
    ["too long", `v2:${"a".repeat(600)}`],
  ])("%s", (_name, token) => {
    const error = refusal(() => parseToken(token));
    expect(error.reason).toBe("malformed");
    expect(error.requestId).toBeNull();
    // The message never echoes the token.
    if (token.length > 0) expect(error.message).not.toContain(token.trim());
  });

  it.each([
    ["short", `${keyA.id.slice(0, 15)}`],
    ["long", `${keyA.id}0`],
    ["upper-case", keyA.id.toUpperCase()],
    ["not hex", "zzzzzzzzzzzzzzzz"],
    ["empty", ""],
  ])("a %s key prefix is a malformed key prefix", (_name, prefix) => {
    const token = v2.replace(`v2:${keyA.id}:`, `v2:${prefix}:`);
    expect(refusal(() => parseToken(token)).reason).toBe("malformed_key_prefix");
  });
});

describe("the stored digest", () => {
  it("is SHA-256 over a domain tag and the token: the token cannot be rebuilt from a row", () => {
    const token = mintToken(new ChainKey(SECRET_A), 2, FIELDS);
    expect(TOKEN_DIGEST_DOMAIN).toBe("gov.gates.token-digest\0");
    expect(tokenDigest(token)).toMatch(/^[0-9a-f]{64}$/);
    expect(tokenDigest(token)).not.toBe(tokenDigest(flip(token, token.length - 1)));
    expect(token).not.toContain(tokenDigest(token));
  });
});
