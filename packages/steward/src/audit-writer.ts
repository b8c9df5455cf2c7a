/**
 * How the steward writes its audit events: awaited (bounded) at `complete`, in the background
 * otherwise, never throwing — a failed write is logged and counted.
 */
import type { AuditEventInput, AuditSink, Logger } from "@gov/core";
import { firstLineOf } from "./cel";
import type { StewardCounters } from "./metrics";

/** The outcome of one awaited write. */
export type AuditWriteOutcome = "ok" | "failed" | "timeout";

/** The steward's audit writes, and the ones still in flight. */
export class AuditWriter {
  readonly #sink: AuditSink;
  readonly #awaited: boolean;
  readonly #timeoutMs: number;
  readonly #logger: Logger;
  readonly #counters: StewardCounters;
  readonly #pending = new Set<Promise<unknown>>();

  /**
   * @param awaited whether writes are awaited (conformance `complete`) or run in the background.
   */
  constructor(
    sink: AuditSink,
    options: { awaited: boolean; timeoutMs: number; logger: Logger; counters: StewardCounters },
  ) {
    this.#sink = sink;
    this.#awaited = options.awaited;
    this.#timeoutMs = options.timeoutMs;
    this.#logger = options.logger;
    this.#counters = options.counters;
  }

  /** At `complete`, awaited (bounded by `auditTimeoutMs`); otherwise in the background. */
  async write(event: AuditEventInput): Promise<void> {
    if (this.#awaited) await this.writeAwaited(event);
    else this.writeInBackground(event);
  }

  /** Start a write without waiting for it (`flush()` waits). */
  writeInBackground(event: AuditEventInput): void {
    const pending = this.writeAwaited(event);
    this.#pending.add(pending);
    void pending.finally(() => this.#pending.delete(pending));
  }

  /** Write an audit event; never throws. `"timeout"` when the sink took over `auditTimeoutMs`. */
  async writeAwaited(event: AuditEventInput): Promise<AuditWriteOutcome> {
    let timer: NodeJS.Timeout | undefined;
    try {
      const timeout = new Promise<"timeout">((resolve) => {
        timer = setTimeout(() => resolve("timeout"), this.#timeoutMs);
      });
      const outcome = await Promise.race([
        Promise.resolve().then(() => this.#sink.log(event)),
        timeout,
      ]);
      if (outcome === "timeout") {
        this.#counters.auditFailures++;
        this.#counters.auditTimeouts++;
        this.#logger.error("steward: an audit event timed out; the evaluation goes on without it", {
          kind: event.kind,
          agentId: event.agentId,
          timeoutMs: this.#timeoutMs,
        });
        return "timeout";
      }
      return "ok";
    } catch (cause) {
      this.#counters.auditFailures++;
      this.#logger.error("steward: an audit event could not be written", {
        kind: event.kind,
        agentId: event.agentId,
        error: firstLineOf(cause),
      });
      return "failed";
    } finally {
      clearTimeout(timer);
    }
  }

  /** Wait for the writes in flight. */
  async flush(): Promise<void> {
    while (this.#pending.size > 0) await Promise.all([...this.#pending]);
  }
}
