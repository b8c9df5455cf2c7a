import {
  type AuditEventInput,
  type AuditMetadata,
  canonicalJson,
  checkId,
  InvalidArgumentError,
  isUuid,
  sanitizeName,
  sanitizeText,
} from "@gov/core";
import { InvalidAuditEventError } from "./errors";
import { rememberCanonicalMetadata } from "./record";

/** The reference's limits on an audit event. */
export const AUDIT_LIMITS = {
  kind: 128,
  agentId: 256,
  sessionId: 256,
  model: 128,
  metadataKeys: 64,
  metadataKeyLength: 256,
  /** Bytes of one metadata value, in its canonical JSON form. */
  metadataValueBytes: 8 * 1024,
  /** Bytes of all the metadata, in its canonical JSON form. */
  metadataBytes: 64 * 1024,
  /**
   * Levels of objects and arrays nested in the metadata, the metadata object itself being
   * the first: `{ a: { b: [1] } }` has three. Deeper metadata, and metadata that refers to
   * itself, is refused (it has no finite JSON form to sign).
   */
  metadataDepth: 32,
} as const;

/** Chains of events without a session are named `agent:<agentId>`; sessions may not use it. */
export const AGENT_CHAIN_PREFIX = "agent:";

/** A validated event (its metadata's text sanitized): what gets signed. */
export interface NormalizedEvent {
  agentId: string;
  kind: string;
  sessionId: string | null;
  parentEventId: string | null;
  model: string | null;
  inputHash: string | null;
  outputHash: string | null;
  metadata: AuditMetadata;
}

const HEX_HASH = /^[0-9a-f]{32,128}$/;

/** How a value that is not plain data reads in a message: "a Map", "an instance of Order". */
function kindOf(value: object): string {
  try {
    const tag = Object.prototype.toString.call(value).slice(8, -1);
    if (tag !== "Object") return `${/^[AEIOU]/.test(tag) ? "an" : "a"} ${tag}`;
    const name: unknown = Object.getPrototypeOf(value)?.constructor?.name;
    return typeof name === "string" && name !== ""
      ? `an instance of ${name}`
      : "an object with a prototype";
  } catch {
    return "an object that cannot be inspected";
  }
}

/** A value whose properties could not be read (a getter or a proxy threw). */
function unreadable(field: string, error: unknown): InvalidAuditEventError {
  return new InvalidAuditEventError(
    field,
    `could not be read: reading its properties threw ${error instanceof Error ? `a ${error.name}` : "an exception"}.`,
    "Pass plain data (copy the fields an auditor needs into an object literal), not objects with getters or proxies.",
    undefined,
    error,
  );
}

/**
 * Sanitize the text in a metadata value. `level` is the nesting level of `value` if it is an
 * object or array (the metadata object is level 1); `ancestors` are the objects that contain
 * it, so that a cycle is refused rather than followed until the stack overflows.
 *
 * Only plain data goes in: objects whose prototype is `Object.prototype` or null, arrays,
 * Dates and JSON primitives. A Map, a Set, a class instance or a typed array would be signed
 * as `{}` or as some of its fields only — what the chain records would differ from what was
 * logged — so it is refused; so are two keys that read the same once sanitized (one value
 * would be dropped), and properties that cannot be read.
 */
function sanitizeValue(value: unknown, field: string, level: number, ancestors: object[]): unknown {
  if (typeof value === "string") return sanitizeText(value);
  if (value === null || typeof value !== "object" || value instanceof Date) return value;
  if (ancestors.includes(value)) {
    throw new InvalidAuditEventError(
      field,
      "refers to itself (a cycle), which has no JSON form.",
      "Pass a tree of plain values: copy the fields an auditor needs.",
    );
  }
  if (level > AUDIT_LIMITS.metadataDepth) {
    throw new InvalidAuditEventError(
      field,
      `nests objects and arrays more than ${AUDIT_LIMITS.metadataDepth} levels deep (the metadata object is the first); the limit is ${AUDIT_LIMITS.metadataDepth}.`,
      "Flatten the structure, or store a hash of it (contentHash) instead of the structure.",
      AUDIT_LIMITS.metadataDepth,
    );
  }
  let entries: [string, unknown][];
  let isArray: boolean;
  try {
    isArray = Array.isArray(value);
    if (!isArray && !isPlainObject(value)) {
      throw new InvalidAuditEventError(
        field,
        `holds ${kindOf(value)}, which is not plain data: it has no faithful JSON form (it would be signed as {} or as some of its fields only).`,
        "Pass plain data: object literals, arrays, strings, finite numbers, booleans, null or Dates — e.g. Object.fromEntries(map), [...set], Array.from(bytes), or the fields an auditor needs.",
      );
    }
    entries = isArray ? [] : Object.entries(value);
  } catch (error) {
    if (error instanceof InvalidAuditEventError) throw error;
    throw unreadable(field, error);
  }
  ancestors.push(value);
  try {
    if (isArray) {
      let items: unknown[];
      try {
        items = [...(value as unknown[])];
      } catch (error) {
        throw unreadable(field, error);
      }
      return items.map((item) => sanitizeValue(item, field, level + 1, ancestors));
    }
    const out: Record<string, unknown> = {};
    for (const [key, item] of entries) {
      if (item === undefined) continue;
      const clean = metadataKey(key, field);
      if (Object.hasOwn(out, clean)) throw collidingKeys(field, clean);
      out[clean] = sanitizeValue(item, field, level + 1, ancestors);
    }
    return out;
  } finally {
    ancestors.pop();
  }
}

/** Plain data: an object whose prototype is `Object.prototype` or null. */
function isPlainObject(value: object): boolean {
  const prototype = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}

/** A metadata key as stored (sanitized); `__proto__` is refused (it would set a prototype). */
function metadataKey(key: string, field: string): string {
  const clean = sanitizeName(key);
  if (clean === "__proto__") {
    throw new InvalidAuditEventError(
      field,
      'has a key "__proto__", which would change an object\'s prototype instead of holding a value.',
      "Rename the key.",
    );
  }
  return clean;
}

function collidingKeys(field: string, key: string): InvalidAuditEventError {
  return new InvalidAuditEventError(
    field,
    `has two keys that become the same key ${JSON.stringify(key)} once sanitized (control characters neutralized, NFC): one value would be lost.`,
    "Give each value a distinct key of visible characters.",
  );
}

/**
 * An id of the event (agent id, kind, session id, model) as core's `checkId` accepts it: a
 * string of 1 to `limit` characters without control, invisible or formatting characters and
 * without white space at either end. Refused, never repaired: what is signed is what was given.
 */
function requiredName(value: unknown, field: string, limit: number): string {
  try {
    return idForm(checkId(value, field, { max: limit }), field, limit);
  } catch (error) {
    if (!InvalidArgumentError.isInstance(error)) throw error;
    throw new InvalidAuditEventError(
      field,
      error.message.replace(/^Invalid [^:]+: /, ""),
      error.recoveryHint,
      // The limit exceeded (never the minimum length of 1).
      error.limit === limit ? limit : undefined,
    );
  }
}

/**
 * An id accepted by `checkId`, in the form it is stored and looked up in: NFC (one form for
 * "é", whichever way it was typed), still within `limit`.
 * @throws {InvalidArgumentError} when NFC makes it longer than `limit`.
 */
export function idForm(id: string, field: string, limit: number): string {
  const normalized = id.normalize("NFC");
  return normalized === id ? id : checkId(normalized, field, { max: limit });
}

function optionalName(value: unknown, field: string, limit: number): string | null {
  if (value === undefined || value === null) return null;
  return requiredName(value, field, limit);
}

function optionalHash(value: unknown, field: string): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== "string" || !HEX_HASH.test(value.toLowerCase())) {
    throw new InvalidAuditEventError(
      field,
      "must be a hex digest (32 to 128 hex characters).",
      `Pass the SHA-256 of the ${field === "inputHash" ? "input" : "output"} as hex, or leave it out.`,
    );
  }
  return value.toLowerCase();
}

function byteLength(text: string): number {
  return Buffer.byteLength(text, "utf8");
}

/**
 * Validate an event against the reference's limits — its ids (agent id, kind, session id,
 * model) refused unless they pass core's `checkId` — and sanitize the text of its metadata
 * (NFC, control characters neutralized), so that what is signed is exactly what is stored
 * and shown.
 *
 * @throws {InvalidAuditEventError} naming the field, the limit and the fix.
 */
export function normalizeEvent(given: AuditEventInput): NormalizedEvent {
  if (typeof given !== "object" || given === null) {
    throw new InvalidAuditEventError("event", "must be an object.", "Pass { agentId, kind, … }.");
  }
  const input = readEvent(given);
  const agentId = requiredName(input.agentId, "agentId", AUDIT_LIMITS.agentId);
  const kind = requiredName(input.kind, "kind", AUDIT_LIMITS.kind);
  const sessionId = optionalName(input.sessionId, "sessionId", AUDIT_LIMITS.sessionId);
  if (sessionId?.startsWith(AGENT_CHAIN_PREFIX)) {
    throw new InvalidAuditEventError(
      "sessionId",
      `must not start with "${AGENT_CHAIN_PREFIX}", which names the chains of events without a session.`,
      "Use another session id, such as a UUID.",
    );
  }
  const model = optionalName(input.model, "model", AUDIT_LIMITS.model);
  let parentEventId: string | null = null;
  if (input.parentEventId !== undefined && input.parentEventId !== null) {
    if (typeof input.parentEventId !== "string" || !isUuid(input.parentEventId.toLowerCase())) {
      throw new InvalidAuditEventError(
        "parentEventId",
        "must be the UUID of an audit event.",
        "Pass the eventId of a record returned by log().",
      );
    }
    parentEventId = input.parentEventId.toLowerCase();
  }
  const inputHash = optionalHash(input.inputHash, "inputHash");
  const outputHash = optionalHash(input.outputHash, "outputHash");
  const metadata = normalizeMetadata(input.metadata);
  return { agentId, kind, sessionId, parentEventId, model, inputHash, outputHash, metadata };
}

/** The event's fields, each read once (a getter that throws is refused, naming the field). */
function readEvent(input: AuditEventInput): Record<keyof AuditEventInput, unknown> {
  const fields = [
    "agentId",
    "kind",
    "sessionId",
    "parentEventId",
    "model",
    "inputHash",
    "outputHash",
    "metadata",
  ] as const;
  const read = {} as Record<keyof AuditEventInput, unknown>;
  for (const field of fields) {
    try {
      read[field] = input[field];
    } catch (error) {
      throw unreadable(field, error);
    }
  }
  return read;
}

function normalizeMetadata(raw: unknown): AuditMetadata {
  if (raw === undefined || raw === null) return {};
  let entries: [string, unknown][];
  try {
    if (
      typeof raw !== "object" ||
      Array.isArray(raw) ||
      Object.getPrototypeOf(raw) !== Object.prototype
    ) {
      throw new InvalidAuditEventError(
        "metadata",
        "must be a plain object.",
        "Pass metadata as { key: value }.",
      );
    }
    entries = Object.entries(raw as Record<string, unknown>).filter(
      ([, value]) => value !== undefined,
    );
  } catch (error) {
    if (error instanceof InvalidAuditEventError) throw error;
    throw unreadable("metadata", error);
  }
  if (entries.length > AUDIT_LIMITS.metadataKeys) {
    throw new InvalidAuditEventError(
      "metadata",
      `has ${entries.length} keys; the limit is ${AUDIT_LIMITS.metadataKeys}.`,
      "Keep the fields an auditor needs, or nest related ones under one key.",
      AUDIT_LIMITS.metadataKeys,
    );
  }
  // Each value's canonical JSON, by sanitized key (two raw keys that sanitize to one are
  // refused: a value would be lost).
  const texts = new Map<string, string>();
  for (const [rawKey, rawValue] of entries) {
    const key = metadataKey(rawKey, "metadata");
    if (texts.has(key)) throw collidingKeys("metadata", key);
    if (key.length === 0 || key.length > AUDIT_LIMITS.metadataKeyLength) {
      throw new InvalidAuditEventError(
        "metadata",
        `has a key of ${key.length} characters; keys are 1 to ${AUDIT_LIMITS.metadataKeyLength}.`,
        "Use short, descriptive keys.",
        AUDIT_LIMITS.metadataKeyLength,
      );
    }
    let text: string;
    try {
      text = canonicalJson(sanitizeValue(rawValue, `metadata.${key}`, 2, [raw]), `metadata.${key}`);
    } catch (error) {
      if (error instanceof InvalidArgumentError) {
        throw new InvalidAuditEventError(
          error.field,
          error.message.replace(/^Invalid [^:]+: /, ""),
          error.recoveryHint,
        );
      }
      throw error;
    }
    if (byteLength(text) > AUDIT_LIMITS.metadataValueBytes) {
      throw new InvalidAuditEventError(
        `metadata.${key}`,
        `is ${byteLength(text)} bytes as JSON; the limit is ${AUDIT_LIMITS.metadataValueBytes}.`,
        "Store a hash or a reference to large content instead of the content.",
        AUDIT_LIMITS.metadataValueBytes,
      );
    }
    texts.set(key, text);
  }
  // The whole object's canonical form, from its values' (keys sorted by UTF-16 code units).
  const text = `{${[...texts.keys()]
    .sort()
    .map((key) => `${JSON.stringify(key)}:${texts.get(key)}`)
    .join(",")}}`;
  const total = byteLength(text);
  if (total > AUDIT_LIMITS.metadataBytes) {
    throw new InvalidAuditEventError(
      "metadata",
      `is ${total} bytes as JSON; the limit is ${AUDIT_LIMITS.metadataBytes}.`,
      "Store hashes or references to large content instead of the content.",
      AUDIT_LIMITS.metadataBytes,
    );
  }
  // Exactly the JSON data model (a Date becomes its ISO string): the record handed back is
  // the record that is signed and stored.
  const metadata = JSON.parse(text) as AuditMetadata;
  rememberCanonicalMetadata(metadata, text);
  return metadata;
}

/** The chain an event belongs to: its session, or its agent's chain. */
export function chainOf(event: Pick<NormalizedEvent, "agentId" | "sessionId">): string {
  return event.sessionId ?? `${AGENT_CHAIN_PREFIX}${event.agentId}`;
}
