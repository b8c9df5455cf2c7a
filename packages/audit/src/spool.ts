import { DurableSpool, type DurableSpoolOptions, type Logger } from "@gov/core";
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
 * The audit module's durable local spool: events the database could not take, one signed
 * JSON line each (a MAC per line under the chain key, chained from a signed header), fsynced
 * before `log()` resolves, replayed into the chain in order, and refused loudly if the file
 * was edited before replay (see {@link DurableSpool}).
 */
export class AuditSpool extends DurableSpool<SpoolEntry> {
  /**
   * @param options `keyring`: the chain keyring (or a function returning it, as it changes on
   *   rotation); `onIntegrityProblem`: told about refused, torn or unclosed files.
   */
  constructor(directory: string, logger: Logger, options: DurableSpoolOptions = {}) {
    super(
      directory,
      logger,
      { prefix: "audit-spool-", name: "audit", noun: "audit events" },
      options,
    );
  }
}
