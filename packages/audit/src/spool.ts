import {
  type AuditEventInput,
  canonicalJson,
  DurableSpool,
  type DurableSpoolOptions,
  isUuid,
  type Logger,
  SpoolFileError,
} from "@gov/core";
import { chainOf, type NormalizedEvent, normalizeEvent } from "./models";

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
 * was edited, replaced or signed with a retired key before replay (see {@link DurableSpool}).
 */
export class AuditSpool extends DurableSpool<SpoolEntry> {
  /**
   * @param options `keyring`: the chain keyring (or a function returning it, as it changes on
   *   rotation); `isRetiredKey`: which keys the rotation history retired; `adoptHosts`: hosts
   *   that are gone; `onIntegrityProblem`, `onStranded`: told about refused, torn or unclosed
   *   files, and about files of other hosts left alone.
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

/**
 * Entry `index` (from 1) of a spool file given to `importSpool`, as the spool writes it: a
 * version 1 entry with a lower-case UUID, a time as `toISOString()` writes it, an event in its
 * normalized form, and its event's chain. An unsigned file could hold anything: nothing else
 * is imported.
 * @throws {SpoolFileError} naming the entry and what is wrong with it.
 */
export function importedEntry(value: unknown, index: number, file: string): SpoolEntry {
  const refuse = (problem: string) =>
    new SpoolFileError({
      file,
      line: null,
      reason: `entry ${index} ${problem}`,
      fix: "Only audit spool entries can be imported; keep the file as evidence.",
    });
  if (typeof value !== "object" || value === null || Array.isArray(value))
    throw refuse("is not an object");
  const raw = value as Record<string, unknown>;
  if (raw.v !== 1) throw refuse(`has version ${JSON.stringify(raw.v) ?? "none"}, not 1`);
  if (!isUuid(raw.eventId)) throw refuse("has no valid eventId (a lower-case UUID)");
  const createdAt = raw.createdAt;
  if (
    typeof createdAt !== "string" ||
    Number.isNaN(Date.parse(createdAt)) ||
    new Date(createdAt).toISOString() !== createdAt
  ) {
    throw refuse("has no valid createdAt (an ISO 8601 time as toISOString() writes it)");
  }
  let event: NormalizedEvent;
  try {
    event = normalizeEvent(raw.event as AuditEventInput);
  } catch (error) {
    throw refuse(
      `holds an event that does not validate (${error instanceof Error ? error.message : String(error)})`,
    );
  }
  let same = false;
  try {
    same = canonicalJson(event) === canonicalJson(raw.event);
  } catch {
    same = false;
  }
  if (!same) throw refuse("holds an event that is not in its normalized form");
  if (raw.chain !== chainOf(event))
    throw refuse(`names chain ${JSON.stringify(raw.chain)}, not its event's (${chainOf(event)})`);
  return { v: 1, eventId: raw.eventId, chain: chainOf(event), createdAt, event };
}
