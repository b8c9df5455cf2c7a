/**
 * OpenTelemetry export of the audit chain: `audit.subscribe(createOtelExporter())` turns
 * every stored event into a span, with the event's ids and kind as attributes and its
 * metadata flattened, secrets redacted. Needs `@opentelemetry/api` (an optional peer).
 *
 * @example
 * ```ts
 * import { createOtelExporter } from "@gov/audit/otel";
 * sdk.audit.subscribe(createOtelExporter());
 * ```
 * @module
 */

import { redactConnectionStrings } from "@gov/core";
import { type Attributes, SpanKind, type Tracer, trace } from "@opentelemetry/api";
import type { AuditEventRecord } from "./record";

/** Options of {@link createOtelExporter}. */
export interface OtelExporterOptions {
  /** The tracer to use. @default trace.getTracer("@gov/audit") */
  tracer?: Tracer;
  /** Extra metadata keys to redact (matched case-insensitively, anywhere in the key). */
  redactKeys?: readonly string[];
  /** Longest attribute string kept; longer ones are cut. @default 1024 */
  maxAttributeLength?: number;
}

/** The text that replaces a redacted value. */
export const REDACTED = "[REDACTED]";

const SECRET_KEYS =
  /(secret|password|passwd|pwd|api[-_]?key|apikey|authorization|auth[-_]?header|cookie|credential|private[-_]?key|session[-_]?key|access[-_]?key|signature)/i;
// "token" names a secret (access_token, idToken), but "tokens", "token_count" or
// "max_tokens" name counts, which are exactly what an LLM trace should show.
const TOKEN_KEY = /token/i;
const TOKEN_COUNT_KEY = /tokens|count|usage|limit|budget|max/i;

function isSecretKey(key: string): boolean {
  return SECRET_KEYS.test(key) || (TOKEN_KEY.test(key) && !TOKEN_COUNT_KEY.test(key));
}
const SECRET_VALUES = [
  /^(?:sk|pk|rk)-[A-Za-z0-9_-]{16,}/, // OpenAI, Stripe and similar keys
  /^sk-ant-[A-Za-z0-9_-]{16,}/, // Anthropic keys
  /^bearer\s+\S+/i, // an Authorization header value
  /^eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/, // a JWT
  /\bAKIA[0-9A-Z]{16}\b/, // an AWS access key id
  /^gh[pousr]_[A-Za-z0-9]{20,}$/, // a GitHub token
  /^xox[abprs]-[A-Za-z0-9-]{10,}$/, // a Slack token
];

function redactValue(value: string): string {
  if (SECRET_VALUES.some((pattern) => pattern.test(value.trim()))) return REDACTED;
  return redactConnectionStrings(value);
}

/**
 * Metadata as OpenTelemetry attributes (`gov.metadata.<path>`), with the values of
 * secret-looking keys (access token, password, api key, authorization, …; not token counts
 * such as `tokens` or `max_tokens`) and secret-looking values
 * (API keys, bearer tokens, JWTs, credentials in connection strings) redacted.
 */
export function metadataAttributes(
  metadata: Record<string, unknown>,
  options: Pick<OtelExporterOptions, "redactKeys" | "maxAttributeLength"> = {},
): Attributes {
  const extra = (options.redactKeys ?? []).map((key) => key.toLowerCase());
  const max = options.maxAttributeLength ?? 1_024;
  const attributes: Attributes = {};
  const cut = (text: string) => (text.length > max ? `${text.slice(0, max)}…` : text);
  const visit = (value: unknown, path: string, depth: number) => {
    const leaf = path.split(".").at(-1) ?? path;
    if (isSecretKey(leaf) || extra.some((key) => leaf.toLowerCase().includes(key))) {
      attributes[`gov.metadata.${path}`] = REDACTED;
      return;
    }
    if (typeof value === "string") attributes[`gov.metadata.${path}`] = cut(redactValue(value));
    else if (typeof value === "number" || typeof value === "boolean")
      attributes[`gov.metadata.${path}`] = value;
    else if (value === null) attributes[`gov.metadata.${path}`] = "null";
    else if (Array.isArray(value) || depth >= 3)
      attributes[`gov.metadata.${path}`] = cut(redactValue(JSON.stringify(value)));
    else if (typeof value === "object") {
      for (const [key, item] of Object.entries(value as Record<string, unknown>))
        visit(item, `${path}.${key}`, depth + 1);
    }
  };
  for (const [key, value] of Object.entries(metadata)) visit(value, key, 1);
  return attributes;
}

/**
 * A subscriber that exports each stored audit event as one span: named by the event's
 * kind, starting and ending at its time, with `gov.event_id`, `gov.agent_id`, `gov.kind`,
 * `gov.session_id`, `gov.chain`, `gov.seq`, `gov.parent_event_id`, `gov.model`,
 * `gov.key_id` and the redacted metadata as attributes.
 */
export function createOtelExporter(
  options: OtelExporterOptions = {},
): (record: AuditEventRecord) => void {
  const tracer = options.tracer ?? trace.getTracer("@gov/audit");
  return (record) => {
    const attributes: Attributes = {
      "gov.event_id": record.eventId,
      "gov.agent_id": record.agentId,
      "gov.kind": record.kind,
      "gov.chain": record.chain,
      ...(record.sessionId ? { "gov.session_id": record.sessionId } : {}),
      ...(record.seq !== null ? { "gov.seq": record.seq } : {}),
      ...(record.parentEventId ? { "gov.parent_event_id": record.parentEventId } : {}),
      ...(record.model ? { "gov.model": record.model } : {}),
      ...(record.keyId ? { "gov.key_id": record.keyId } : {}),
      ...metadataAttributes(record.metadata, options),
    };
    const span = tracer.startSpan(record.kind, {
      kind: SpanKind.INTERNAL,
      startTime: record.createdAt,
      attributes,
    });
    span.end(record.createdAt);
  };
}
