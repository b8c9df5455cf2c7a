import { randomBytes, randomUUID } from "node:crypto";
import {
  type AuditEventInput,
  type AuditSink,
  ChainKey,
  type Clock,
  GovernanceError,
  Keyring,
  parseOptions,
  systemClock,
} from "@gov/core";
import { z } from "zod";
import { AUDIT_ERROR_CODES, StoreUnavailableError } from "./errors";
import { chainOf, normalizeEvent } from "./models";
import { type AuditEventRecord, type PayloadFields, recordFromPayload, signRecord } from "./record";
import { ChainVerifier, type StoredRow } from "./verify";

/** Options of {@link InMemoryAuditStore}. */
export interface InMemoryAuditStoreOptions {
  /** Most events kept. */
  maxEvents: number;
  /**
   * When full: `"raise"` refuses the event with `StoreUnavailableError` (the default: silent
   * eviction would open a hole in the chain); `"evict"` drops the oldest event and counts it.
   * @default "raise"
   */
  onFull?: "raise" | "evict";
  /** The key that signs the chain. @default a random key */
  key?: ChainKey;
  clock?: Clock;
}

/** What {@link InMemoryAuditStore.metrics} reports. */
export interface InMemoryAuditStoreMetrics {
  /** Events held now. */
  size: number;
  maxEvents: number;
  /** Events dropped to make room (`onFull: "evict"`). */
  evictions: number;
  onFull: "raise" | "evict";
}

/** @deprecated use {@link InMemoryAuditStoreMetrics} (what `metrics()` returns). */
export type InMemoryAuditStoreStats = InMemoryAuditStoreMetrics;

const memoryStoreOptionsSchema = z.strictObject({
  maxEvents: z.int().min(1).max(Number.MAX_SAFE_INTEGER),
  onFull: z.enum(["raise", "evict"]).default("raise"),
  key: z.instanceof(ChainKey).optional(),
  clock: z
    .custom<Clock>(
      (value) =>
        typeof value === "object" &&
        value !== null &&
        typeof (value as Clock).now === "function" &&
        typeof (value as Clock).nowMs === "function",
      { message: "must be a Clock (an object with now() and nowMs())." },
    )
    .optional(),
});

const MEMORY_STORE_OPTION_FIXES: Readonly<Record<string, string>> = {
  "": "Pass { maxEvents }, e.g. new InMemoryAuditStore({ maxEvents: 10_000 }).",
  maxEvents: "Pass maxEvents, e.g. 10000.",
  onFull: 'Use "raise" unless losing old events is acceptable.',
  key: "Pass a ChainKey, or leave it out for a random key.",
  clock: "Pass a Clock (systemClock, or a ManualClock in tests), or leave it out.",
};

/**
 * An audit chain held in memory, signed and verifiable like the database's: for tests, and
 * for hosts without a database that still want tamper evidence for the life of the process.
 *
 * @example
 * ```ts
 * const store = new InMemoryAuditStore({ maxEvents: 10_000 });
 * await store.log({ agentId: "a", kind: "tool.call" });
 * store.verifyChain();
 * ```
 */
export class InMemoryAuditStore implements AuditSink {
  readonly #maxEvents: number;
  readonly #onFull: "raise" | "evict";
  readonly #key: ChainKey;
  readonly #clock: Clock;
  readonly #rows: StoredRow[] = [];
  readonly #heads = new Map<string, { seq: number; hmac: string }>();
  /** The HMAC of the last evicted row of each chain, so that the rest still link. */
  readonly #evictedHeads = new Map<string, { seq: number; hmac: string }>();
  #evictions = 0;

  /**
   * @throws {InvalidArgumentError} for a bad or unknown option (`options.maxEvents`), naming
   *   the limit and the fix.
   */
  constructor(options: InMemoryAuditStoreOptions) {
    const parsed = parseOptions(memoryStoreOptionsSchema, options, {
      fixes: MEMORY_STORE_OPTION_FIXES,
    });
    this.#maxEvents = parsed.maxEvents;
    this.#onFull = parsed.onFull;
    this.#key = parsed.key ?? new ChainKey(randomBytes(48).toString("base64url"));
    this.#clock = parsed.clock ?? systemClock;
  }

  /**
   * Append an event to its chain.
   * @throws {InvalidAuditEventError} for invalid input; {@link StoreUnavailableError} when
   *   full with `onFull: "raise"`.
   */
  async log(input: AuditEventInput): Promise<AuditEventRecord> {
    const event = normalizeEvent(input);
    if (this.#rows.length >= this.#maxEvents) {
      if (this.#onFull === "raise") {
        throw new StoreUnavailableError(
          `The in-memory audit store is full (${this.#maxEvents} events).`,
          'Raise maxEvents, drain the store, or pass onFull: "evict" if losing the oldest events is acceptable.',
        );
      }
      const evicted = this.#rows.shift();
      if (evicted) {
        this.#evictions++;
        this.#evictedHeads.set(evicted.chain, { seq: evicted.seq, hmac: evicted.hmac });
      }
    }
    const chain = chainOf(event);
    const head = this.#heads.get(chain);
    const position = {
      eventId: randomUUID(),
      chain,
      seq: (head?.seq ?? 0) + 1,
      prevHash: head?.hmac ?? null,
      createdAt: this.#clock.now(),
    };
    const signed = signRecord(this.#key, event, position);
    this.#rows.push({
      eventId: position.eventId,
      chain,
      seq: position.seq,
      prevHash: position.prevHash,
      hmac: signed.hmac,
      keyId: this.#key.id,
      createdAt: position.createdAt.toISOString(),
      agentId: event.agentId,
      kind: event.kind,
      sessionId: event.sessionId,
      parentEventId: event.parentEventId,
      payload: signed.payload,
    });
    this.#heads.set(chain, { seq: position.seq, hmac: signed.hmac });
    return recordFromPayload(JSON.parse(signed.payload) as PayloadFields, signed.hmac);
  }

  /** The events held, oldest first, optionally of one session. */
  events(filters: { sessionId?: string; agentId?: string } = {}): AuditEventRecord[] {
    return this.#rows
      .filter(
        (row) =>
          (filters.sessionId === undefined || row.chain === filters.sessionId) &&
          (filters.agentId === undefined || row.agentId === filters.agentId),
      )
      .map((row) => recordFromPayload(JSON.parse(row.payload) as PayloadFields, row.hmac));
  }

  /** How full the store is, and what it dropped. */
  metrics(): InMemoryAuditStoreMetrics {
    return {
      size: this.#rows.length,
      maxEvents: this.#maxEvents,
      evictions: this.#evictions,
      onFull: this.#onFull,
    };
  }

  /** @deprecated use {@link InMemoryAuditStore.metrics} (the same counters). */
  stats(): InMemoryAuditStoreMetrics {
    return this.metrics();
  }

  /**
   * Fail loud if events were evicted since the store was created: the chains it holds are
   * then incomplete. Call it at the end of a test run or before building a report.
   * @throws {GovernanceError} `CHAIN_TRUNCATED`
   */
  verifyNotTruncated(): void {
    if (this.#evictions > 0) {
      throw new GovernanceError({
        code: AUDIT_ERROR_CODES.CHAIN_TRUNCATED,
        message: `The in-memory audit store evicted ${this.#evictions} events (onFull: "evict"); the chains it holds are incomplete.`,
        recoveryHint:
          'Raise maxEvents, or use onFull: "raise" (the default) where no event may be lost.',
      });
    }
  }

  /**
   * Verify every chain held: signatures and links (chains whose oldest events were evicted
   * are verified from the first event kept).
   *
   * **`false` means "nothing was verified"** (the store holds no events), not "intact":
   * `true` only when at least one row was verified and every check passed.
   * @throws {ChainIntegrityError} at the first bad row.
   */
  verifyChain(): boolean {
    const verifier = new ChainVerifier(new Keyring(this.#key), { strict: true });
    const byChain = new Map<string, StoredRow[]>();
    for (const row of this.#rows) byChain.set(row.chain, [...(byChain.get(row.chain) ?? []), row]);
    for (const [chain, rows] of byChain) {
      const sorted = [...rows].sort((a, b) => a.seq - b.seq);
      const evicted = this.#evictedHeads.get(chain);
      const first = sorted[0];
      verifier.beginChain(
        chain,
        [],
        evicted && first && first.seq > 1
          ? { fromSeq: first.seq, predecessor: evicted }
          : undefined,
      );
      for (const row of sorted) verifier.row(row);
      verifier.endChain(true);
    }
    return verifier.report().verified > 0;
  }

  /** @internal For tests: the rows as stored, to tamper with. */
  rawRows(): StoredRow[] {
    return this.#rows;
  }
}
