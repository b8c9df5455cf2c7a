import { createHash } from "node:crypto";
import { type AuditEventInput, canonicalJson, InvalidArgumentError } from "@gov/core";
import { InvalidAuditEventError } from "./errors";
import { normalizeEvent } from "./models";
import { METHOD_OPTION_KEYS, refuseUnknownOptions, type TrackOptions } from "./options";
import type { AuditEventRecord } from "./record";
import { truncate } from "./state";
import { refuseReservedAgent } from "./system-events";

/**
 * Wrap an async function so that each call is recorded through `log`: `<kind>.start`,
 * then `<kind>.end` or `<kind>.error` (see {@link AuditModule.track}). Bad arguments throw
 * at once: it returns a function.
 */
export function trackCalls<Args extends unknown[], Result>(
  log: (input: AuditEventInput) => Promise<AuditEventRecord>,
  options: TrackOptions,
  fn: (...args: Args) => Promise<Result>,
): (...args: Args) => Promise<Result> {
  // It returns a function: bad arguments throw now, not at the first call.
  const fix =
    'Pass track({ kind: "charge_card", agentId: "billing-agent" }, async (...args) => …).';
  refuseUnknownOptions(METHOD_OPTION_KEYS.track, options, fix);
  if (typeof fn !== "function") {
    throw new InvalidArgumentError(
      "fn",
      `must be the async function to record, got ${fn === null ? "null" : typeof fn}.`,
      fix,
    );
  }
  if (typeof options.kind !== "string") {
    throw new InvalidAuditEventError(
      "kind",
      `must be a string, got ${options.kind === null ? "null" : typeof options.kind}.`,
      'Pass the kind of the call, e.g. "charge_card" (recorded as charge_card.start, .end or .error).',
    );
  }
  const checked = normalizeEvent({
    agentId: options.agentId,
    kind: `${options.kind}.start`,
    sessionId: options.sessionId ?? null,
    parentEventId: options.parentEventId ?? null,
    model: options.model ?? null,
  });
  refuseReservedAgent(checked.agentId);
  const base = {
    agentId: options.agentId,
    sessionId: options.sessionId ?? null,
    parentEventId: options.parentEventId ?? null,
    model: options.model ?? null,
  };
  return async (...args: Args) => {
    const start = await log({
      ...base,
      kind: `${options.kind}.start`,
      inputHash: contentHash(args),
    });
    const parent = start.isPlaceholder ? base.parentEventId : start.eventId;
    let result: Result;
    try {
      result = await fn(...args);
    } catch (error) {
      await log({
        ...base,
        parentEventId: parent,
        kind: `${options.kind}.error`,
        metadata: { error: errorMetadata(error) },
      });
      throw error;
    }
    await log({
      ...base,
      parentEventId: parent,
      kind: `${options.kind}.end`,
      outputHash: contentHash(result),
    });
    return result;
  };
}

/**
 * SHA-256 (hex) of a value's RFC 8785 canonical JSON: the `inputHash` / `outputHash` that
 * `track()` records, for callers that log inputs and outputs themselves. Values without a
 * JSON form (functions, symbols, cycles) are hashed by their type.
 *
 * @example
 * ```ts
 * await sdk.audit.log({ agentId, kind: "tool.call", inputHash: contentHash(args) });
 * ```
 */
export function contentHash(value: unknown): string {
  let text: string;
  try {
    text = canonicalJson(value === undefined ? null : value);
  } catch {
    text = `unhashable:${Object.prototype.toString.call(value)}`;
  }
  return createHash("sha256").update(text, "utf8").digest("hex");
}

/** How a failed call is recorded in its `<kind>.error` event. */
function errorMetadata(error: unknown): { name: string; message: string; code?: string } {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return {
      name: error.name,
      message: truncate(error.message, 2_000),
      ...(typeof code === "string" ? { code } : {}),
    };
  }
  return { name: typeof error, message: truncate(String(error), 2_000) };
}
