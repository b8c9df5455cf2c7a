import {
  type AuditEventInput,
  type AuditSink,
  type LogFields,
  type Logger,
  ManualClock,
} from "@gov/core";
import type { LoopOptions } from "../models";
import { LoopModule } from "../module";

/** 2026-01-01T00:00:00Z: tests start from a round time. */
export const START = Date.UTC(2026, 0, 1);

/** An audit sink that keeps what it is given. */
export class RecordingSink implements AuditSink {
  readonly events: AuditEventInput[] = [];

  async log(event: AuditEventInput) {
    this.events.push(event);
    return { eventId: `event-${this.events.length}`, isPlaceholder: false };
  }

  kinds(): string[] {
    return this.events.map((event) => event.kind);
  }
}

/** A logger that keeps its warnings. */
export class RecordingLogger implements Logger {
  readonly warnings: { message: string; fields: LogFields | undefined }[] = [];
  debug() {}
  info() {}
  warn(message: string, fields?: LogFields) {
    this.warnings.push({ message, fields });
  }
  error(message: string, fields?: LogFields) {
    this.warnings.push({ message, fields });
  }
}

const opened: LoopModule[] = [];

/** Close every module {@link setup} made (stops their sweep timers). */
export async function closeAll(): Promise<void> {
  await Promise.all(opened.splice(0).map((loop) => loop.close()));
}

/** A loop module on a manual clock, with a recording sink and logger. */
export function setup(options: LoopOptions = {}, audit?: AuditSink) {
  const clock = new ManualClock(START);
  const sink = new RecordingSink();
  const logger = new RecordingLogger();
  const loop = new LoopModule({ clock, logger, audit: audit ?? sink }, options);
  opened.push(loop);
  return { loop, clock, sink, logger };
}

export { thrown } from "@gov/core/testing";
