import type { AuditMetadata, AuditReceipt, ChainKey } from "@gov/core";
import { canonicalJson } from "@gov/core";
import type { NormalizedEvent } from "./models";

/** Version of the signed record format (FORMAT.md). */
export const RECORD_FORMAT_VERSION = 1;

/** The HMAC of a record that could not be stored anywhere. */
export const PLACEHOLDER_HMAC = "0".repeat(64);

/** Where a record stands. */
export type AuditRecordStatus =
  /** In the chain: signed, with its seq and predecessor. */
  | "stored"
  /** In the local spool, durable; it joins the chain when the database is back. */
  | "spooled"
  /** Neither the database nor the spool could take it: nothing was kept. */
  | "placeholder";

/** An audit event as recorded. */
export interface AuditEventRecord extends AuditReceipt {
  eventId: string;
  agentId: string;
  kind: string;
  sessionId: string | null;
  parentEventId: string | null;
  model: string | null;
  inputHash: string | null;
  outputHash: string | null;
  metadata: AuditMetadata;
  /** The chain: the session id, or `agent:<agentId>`. */
  chain: string;
  /** Position in the chain, from 1; null until stored. */
  seq: number | null;
  /** The HMAC of the previous row of the chain; null for its first row (and until stored). */
  prevHash: string | null;
  /** HMAC-SHA256 of the signed payload; 64 zeros for a placeholder, "" until stored. */
  hmac: string;
  /** Id of the key that signed it; null until stored. */
  keyId: string | null;
  createdAt: Date;
  status: AuditRecordStatus;
  /** True when the record was synthesized because nothing could keep it. Alert on these. */
  isPlaceholder: boolean;
}

/** The fields of a record that are signed, besides the event itself. */
export interface ChainPosition {
  eventId: string;
  chain: string;
  seq: number;
  prevHash: string | null;
  createdAt: Date;
  keyId: string;
}

/** Canonical JSON of metadata objects, kept when validation computed it. */
const canonicalMetadata = new WeakMap<object, string>();

/** @internal Remember the canonical JSON of a (frozen-by-convention) metadata object. */
export function rememberCanonicalMetadata(metadata: AuditMetadata, text: string): void {
  canonicalMetadata.set(metadata, text);
}

const json = (value: string | null) => (value === null ? "null" : JSON.stringify(value));

/**
 * The signed bytes of a record: the RFC 8785 canonical JSON of every field that matters
 * (FORMAT.md). Stored verbatim, so that re-verifying a row is one HMAC over stored bytes.
 *
 * Written out by hand, keys in their canonical order (UTF-16 code units) and strings as
 * JSON.stringify writes them (which RFC 8785 adopts), because this runs for every event;
 * the metadata's canonical form comes from validation. Equal to `canonicalJson` of the
 * same object, byte for byte (tested).
 */
export function signedPayload(event: NormalizedEvent, position: ChainPosition): string {
  const metadata = canonicalMetadata.get(event.metadata) ?? canonicalJson(event.metadata);
  return `{"agentId":${json(event.agentId)},"chain":${json(position.chain)},"createdAt":"${position.createdAt.toISOString()}","eventId":${json(position.eventId)},"inputHash":${json(event.inputHash)},"keyId":${json(position.keyId)},"kind":${json(event.kind)},"metadata":${metadata},"model":${json(event.model)},"outputHash":${json(event.outputHash)},"parentEventId":${json(event.parentEventId)},"prevHash":${json(position.prevHash)},"seq":${position.seq},"sessionId":${json(event.sessionId)},"v":${RECORD_FORMAT_VERSION}}`;
}

/**
 * A record from its event and where it stands. Built property by property: this runs for
 * every event, and object spread is many times slower here.
 */
export function makeRecord(
  event: NormalizedEvent,
  fields: {
    eventId: string;
    chain: string;
    seq: number | null;
    prevHash: string | null;
    hmac: string;
    keyId: string | null;
    createdAt: Date;
    status: AuditRecordStatus;
  },
): AuditEventRecord {
  return {
    eventId: fields.eventId,
    agentId: event.agentId,
    kind: event.kind,
    sessionId: event.sessionId,
    parentEventId: event.parentEventId,
    model: event.model,
    inputHash: event.inputHash,
    outputHash: event.outputHash,
    metadata: event.metadata,
    chain: fields.chain,
    seq: fields.seq,
    prevHash: fields.prevHash,
    hmac: fields.hmac,
    keyId: fields.keyId,
    createdAt: fields.createdAt,
    status: fields.status,
    isPlaceholder: fields.status === "placeholder",
  };
}

/** Sign a record with `key`. */
export function signRecord(
  key: ChainKey,
  event: NormalizedEvent,
  position: Omit<ChainPosition, "keyId">,
) {
  const full: ChainPosition = { ...position, keyId: key.id };
  const payload = signedPayload(event, full);
  return { payload, hmac: key.hmacHex(payload), position: full };
}

/** The fields of a signed payload, as parsed. */
export interface PayloadFields {
  v: number;
  eventId: string;
  chain: string;
  seq: number;
  prevHash: string | null;
  createdAt: string;
  keyId: string;
  agentId: string;
  kind: string;
  sessionId: string | null;
  parentEventId: string | null;
  model: string | null;
  inputHash: string | null;
  outputHash: string | null;
  metadata: AuditMetadata;
}

/** A stored record, read back from its signed payload. */
export function recordFromPayload(payload: PayloadFields, hmac: string): AuditEventRecord {
  return {
    eventId: payload.eventId,
    agentId: payload.agentId,
    kind: payload.kind,
    sessionId: payload.sessionId,
    parentEventId: payload.parentEventId,
    model: payload.model,
    inputHash: payload.inputHash,
    outputHash: payload.outputHash,
    metadata: payload.metadata,
    chain: payload.chain,
    seq: payload.seq,
    prevHash: payload.prevHash,
    hmac,
    keyId: payload.keyId,
    createdAt: new Date(payload.createdAt),
    status: "stored",
    isPlaceholder: false,
  };
}
