import {
  type AuditEventInput,
  type AuditMetadata,
  type AuditReceipt,
  describeError,
  noopAuditSink,
} from "@gov/core";
import type { GatesRuntime } from "./runtime";

/** The audit sink did not answer within `auditTimeoutMs`. */
export class AuditTimeoutError extends Error {
  constructor(timeoutMs: number) {
    super(`the audit sink did not answer within ${timeoutMs} ms (auditTimeoutMs)`);
    this.name = "AuditTimeoutError";
  }
}

/**
 * Write an event to the audit sink, waiting at most `auditTimeoutMs`.
 * @throws {AuditTimeoutError} the sink did not answer in time (the write may still land:
 *   that is logged when it does).
 */
export async function auditLog(
  runtime: GatesRuntime,
  event: AuditEventInput,
): Promise<AuditReceipt> {
  const writing = Promise.resolve().then(() => runtime.audit.log(event));
  if (runtime.audit === noopAuditSink) return writing;
  let timer: NodeJS.Timeout | undefined;
  let timedOut = false;
  const timeoutMs = runtime.options.auditTimeoutMs;
  try {
    return await Promise.race([
      writing,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          timedOut = true;
          reject(new AuditTimeoutError(timeoutMs));
        }, timeoutMs);
      }),
    ]);
  } finally {
    clearTimeout(timer);
    if (timedOut)
      writing.then(
        (receipt) => {
          if (!receipt.isPlaceholder)
            runtime.logger.warn(
              `A ${event.kind} event was written after auditTimeoutMs had passed; the module had already given up on it.`,
              { agentId: event.agentId, requestId: event.metadata?.requestId },
            );
        },
        () => undefined,
      );
  }
}

/** Write an event; a failure is logged, never thrown (the callers decide what it means). */
export async function record(
  runtime: GatesRuntime,
  agentId: string,
  kind: string,
  metadata: AuditMetadata,
): Promise<void> {
  try {
    const receipt = await auditLog(runtime, { agentId, kind, metadata });
    if (receipt.isPlaceholder && runtime.audit !== noopAuditSink) {
      runtime.logger.warn(`The ${kind} event could not be kept in the audit chain.`, {
        agentId,
        requestId: metadata.requestId,
      });
    }
  } catch (error) {
    runtime.logger.error(`The ${kind} event was refused by the audit sink.`, {
      agentId,
      requestId: metadata.requestId,
      error: describeError(error),
    });
  }
}
