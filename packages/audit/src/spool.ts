import { DurableSpool, type Logger } from "@gov/core";
import type { NormalizedEvent } from "./models";

/** One event waiting in the spool for the database. */
export interface SpoolEntry {
  v: 1;
  eventId: string;
  chain: string;
  /** ISO 8601, as it will be signed. */
  createdAt: string;
  event: NormalizedEvent;
}

/**
 * The audit module's durable local spool: events the database could not take, one JSON line
 * each, fsynced before `log()` resolves, replayed into the chain in order (see
 * {@link DurableSpool}).
 */
export class AuditSpool extends DurableSpool<SpoolEntry> {
  constructor(directory: string, logger: Logger) {
    super(directory, logger, { prefix: "audit-spool-", name: "audit", noun: "audit events" });
  }
}
