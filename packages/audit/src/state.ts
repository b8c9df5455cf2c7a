import type { Clock, Keyring, Logger, Store } from "@gov/core";
import type { AuditMetrics } from "./options";
import type { AuditSpool } from "./spool";

/**
 * What the parts of one audit module share: the context, the keyring (replaced on rotation),
 * the spool, the counters, and whether the module is closed.
 */
export interface AuditState {
  readonly store: Store;
  readonly clock: Clock;
  readonly logger: Logger;
  /** The keyring the module signs and verifies with (it changes on rotation). */
  keyring: Keyring;
  readonly spool: AuditSpool | null;
  readonly metrics: AuditMetrics;
  closed: boolean;
}

/** Shorten a text for a log line or an event's metadata. */
export function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max)}…`;
}
