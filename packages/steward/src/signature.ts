import { type ChainKey, canonicalJson, canonicalJsonHash, type Keyring } from "@gov/core";
import { validateBlueprint } from "./blueprint";
import type { BlueprintDocument } from "./models";

/**
 * The domain tag of a stored blueprint's MAC. It is part of the signed form, so a MAC that
 * the chain key made for anything else (an audit row, a scope policy, an approval) never
 * verifies as a blueprint, and a blueprint's MAC never verifies as anything else.
 */
export const BLUEPRINT_SIGNATURE_TYPE = "gov.steward.blueprint.v1";

/**
 * Why a stored blueprint was refused, as thrown (`BlueprintSignatureInvalid.reason`), logged
 * and written to the audit chain (`steward.blueprint_rejected`, `metadata.reason`).
 */
export type BlueprintRejectionReason =
  /** The row has no MAC: written before blueprints were signed, or by hand. */
  | "unsigned"
  /** The row names a key that is not in this process's keyring. */
  | "unknown_key"
  /** The MAC does not match the row (content, hash, id or version changed, or forged). */
  | "bad_signature"
  /** The stored content does not hash to the stored content hash. */
  | "hash_mismatch"
  /** The row's content is not a valid blueprint for this version of the module. */
  | "invalid_blueprint"
  /**
   * The row is signed, but its content hash is not the one the registry's ledger records as
   * published under its id: an older signed row put back after the version was published
   * again with other content (or the ledger entry edited).
   */
  | "ledger_mismatch";

/** The signed form of a blueprint: RFC 8785 JSON of the domain tag, id, version, hash and content. */
export function signedBlueprintPayload(document: BlueprintDocument, contentHash: string): string {
  return canonicalJson({
    type: BLUEPRINT_SIGNATURE_TYPE,
    id: document.id,
    version: document.version,
    contentHash,
    content: document,
  });
}

/** The content hash of a validated document (SHA-256 of its canonical JSON). */
export function blueprintContentHash(document: BlueprintDocument): string {
  return canonicalJsonHash(document, "blueprint");
}

/** Sign a validated document with `key`: its content hash, MAC and the key id to store. */
export function signBlueprint(
  key: ChainKey,
  document: BlueprintDocument,
): { contentHash: string; signature: string; keyId: string } {
  const contentHash = blueprintContentHash(document);
  return {
    contentHash,
    signature: key.hmacHex(signedBlueprintPayload(document, contentHash)),
    keyId: key.id,
  };
}

/** A stored row as it was read: any column may have been changed by hand. */
export interface StoredBlueprintRow {
  id: string;
  content: unknown;
  contentHash: string;
  keyId: string | null;
  signature: string | null;
  /** The content hash the registry's ledger records for the id; null when it has no entry. */
  ledgerHash?: string | null;
}

/** The outcome of {@link verifyStoredBlueprint}. */
export type StoredBlueprintCheck =
  | { ok: true; document: BlueprintDocument }
  | { ok: false; reason: BlueprintRejectionReason; problem: string };

/**
 * Check a stored row before anything is loaded from it: it is signed, by a key of the keyring,
 * its content is a valid blueprint whose id is the row's, it hashes to the stored hash, and
 * the MAC (compared in constant time) covers id, version, hash and content.
 */
export function verifyStoredBlueprint(
  keyring: Keyring,
  row: StoredBlueprintRow,
): StoredBlueprintCheck {
  if (row.signature === null || row.keyId === null) {
    return {
      ok: false,
      reason: "unsigned",
      problem: "it has no signature (written before blueprints were signed, or by hand)",
    };
  }
  const key = keyring.find(row.keyId);
  if (!key) {
    return {
      ok: false,
      reason: "unknown_key",
      problem: `it is signed by key ${row.keyId.slice(0, 16)}, which is not in this process's keyring`,
    };
  }
  let document: BlueprintDocument;
  try {
    const content = typeof row.content === "string" ? JSON.parse(row.content) : row.content;
    document = validateBlueprint(content);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    return {
      ok: false,
      reason: "invalid_blueprint",
      problem: `its content is not a valid blueprint (${message.slice(0, 300)})`,
    };
  }
  if (blueprintContentHash(document) !== row.contentHash) {
    return {
      ok: false,
      reason: "hash_mismatch",
      problem: "its stored content does not match its content hash (altered in the database)",
    };
  }
  if (
    document.id !== row.id ||
    !key.verifyHex(signedBlueprintPayload(document, row.contentHash), row.signature)
  ) {
    return {
      ok: false,
      reason: "bad_signature",
      problem:
        "its signature does not match its id, version, hash and content (altered in the database, or copied from another row)",
    };
  }
  if (row.ledgerHash != null && row.ledgerHash !== row.contentHash) {
    return {
      ok: false,
      reason: "ledger_mismatch",
      problem: `its content (hash ${row.contentHash.slice(0, 12)}…) is not what the registry's ledger records as published under this id (hash ${String(row.ledgerHash).slice(0, 12)}…): an older signed row put back, or the ledger edited`,
    };
  }
  return { ok: true, document };
}

/**
 * The domain tag of a ledger entry's MAC (`gov_steward.blueprint_ledger`): distinct from the
 * blueprint's, so that neither MAC verifies as the other.
 */
export const BLUEPRINT_LEDGER_SIGNATURE_TYPE = "gov.steward.blueprint-ledger.v1";

/** The signed form of a ledger entry: RFC 8785 JSON of the domain tag, id and content hash. */
function signedLedgerPayload(id: string, contentHash: string): string {
  return canonicalJson({ type: BLUEPRINT_LEDGER_SIGNATURE_TYPE, id, contentHash });
}

/** Sign the ledger entry "`contentHash` was published under `id`" with `key`. */
export function signLedgerEntry(
  key: ChainKey,
  id: string,
  contentHash: string,
): { signature: string; keyId: string } {
  return { signature: key.hmacHex(signedLedgerPayload(id, contentHash)), keyId: key.id };
}

/**
 * Whether a ledger entry was signed by a key of `keyring` for this id and hash (compared in
 * constant time). False for an unsigned entry (copied by a migration, or written by hand).
 */
export function ledgerEntrySigned(
  keyring: Keyring,
  entry: { id: string; contentHash: string; keyId: string | null; signature: string | null },
): boolean {
  if (entry.keyId === null || entry.signature === null) return false;
  const key = keyring.find(entry.keyId);
  return key?.verifyHex(signedLedgerPayload(entry.id, entry.contentHash), entry.signature) ?? false;
}
