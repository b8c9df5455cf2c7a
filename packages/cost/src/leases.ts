/**
 * Budget leases (`CostOptions.lease`): instead of one round trip per check, a process holds
 * the budget of several calls of a session at once — a reservation marked `lease`, checked
 * against every cap like any other — and admits the calls that fit in it locally. Each call
 * admitted is a *share* of the lease: its usage, recorded with the share's id, releases the
 * share's part of the lease in the same statement; a share released by hand goes back to the
 * lease. What is left of a lease is released when it ends: idle for `idleMs`, replaced by a
 * new one (it had no room left, the day turned, the policy changed), or at `close()`; a lease
 * whose process died is released by the sweep when its reservation expires. A lease admits
 * calls for half of `reservationTtlMs` and is held for one and a half, so that every call
 * admitted in it is held at least as long as its own reservation would be.
 *
 * Every lease is a reservation in the database, so the caps hold across processes exactly as
 * with one reservation per call; the price is that a lease holds budget that other processes
 * cannot use until it ends. Near a cap, where a lease does not fit, checks fall back to one
 * reservation per call, in the same round trip; a check refused while this process's leases
 * hold room it cannot use releases that room ({@link LeaseBook.free}) and is checked again.
 * @module
 */
import { randomUUID } from "node:crypto";
import { describeError, sql } from "@gov/core";
import type { BudgetCap, BudgetPolicy } from "./budget-policy";
import { femtoToUsd } from "./money";
import type { CostRuntime } from "./runtime";
import type { ReserveRequest, ReserveResult } from "./sql";

/** Sessions remembered as having no room for a lease before the expired ones are forgotten. */
const MAX_NO_ROOM = 10_000;

/** How a lease is sized and kept (`CostOptions.lease`, parsed). */
export interface LeaseSettings {
  /** A lease holds the worst case of this many calls like the one that opened it. */
  readonly calls: number;
  /** A lease with no call in flight is released after this long without a new call. */
  readonly idleMs: number;
}

/** A call's projection, as the lease counts it. */
export interface Projection {
  readonly tokens: number;
  readonly femto: bigint;
}

/** What `gov_cost.lease` answers: `check_and_reserve`'s answer, and whether the lease was taken. */
interface LeaseResult extends ReserveResult {
  leased?: boolean;
  /** The session's age in seconds, on the database's clock. */
  elapsed?: string;
}

interface Lease {
  readonly id: string;
  readonly key: string;
  readonly agentId: string;
  readonly sessionId: string;
  readonly day: string;
  readonly policy: BudgetPolicy;
  leftFemto: bigint;
  leftTokens: number;
  /** Shares admitted and not yet settled or released, by share id. */
  readonly shares: Map<string, Projection>;
  /**
   * Admissions stop here: half the reservation's time to live after the request was sent. The
   * lease is held for one and a half, so a call admitted last still has a whole one.
   */
  readonly admitUntilMs: number;
  /**
   * The session's age in seconds as the database measured it for the lease, and when the
   * request was sent (here): never later than the measure, so the age is never underestimated.
   */
  readonly secondsAtGrant: number;
  readonly grantedAtMs: number;
  /** False once replaced or ended: it admits nothing more, and ends when its last share does. */
  current: boolean;
  /** True once released, or forgotten after it expired (the sweep releases it then). */
  ended: boolean;
  idleTimer: NodeJS.Timeout | null;
  /** When the lease expires in the database: its shares are forgotten (no call outlives it). */
  expiryTimer: NodeJS.Timeout | null;
}

/** The part of a lease a usage record releases (`record_usage`'s `leaseId`, `shareUsd`, `shareTokens`). */
export interface ShareSettlement {
  readonly leaseId: string;
  readonly shareUsd: string;
  readonly shareTokens: string;
}

/** The leases of one cost module, by agent, session and day. */
export class LeaseBook {
  readonly #settings: LeaseSettings;
  readonly #current = new Map<string, Lease>();
  /** Every share admitted and not yet settled or released, with its lease. */
  readonly #shares = new Map<string, Lease>();
  /** Every lease not ended, current or not (a replaced lease waits for its calls). */
  readonly #live = new Set<Lease>();
  /** Lease requests in flight, by key: checks of the same session wait for them. */
  readonly #opening = new Map<string, Promise<unknown>>();
  /** Keys where a lease did not fit, until when: checks reserve one call at a time there. */
  readonly #noRoomUntil = new Map<string, number>();
  readonly #ending = new Set<Promise<void>>();
  #closed = false;

  constructor(
    private readonly runtime: CostRuntime,
    settings: LeaseSettings,
  ) {
    this.#settings = settings;
  }

  /**
   * Admit a call in the session's current lease, without a round trip.
   * @returns The share's id (the call's reservation id), or null when no lease has room for it.
   */
  admit(request: ReserveRequest, policy: BudgetPolicy, projection: Projection): string | null {
    const lease = this.#current.get(keyOf(request));
    if (lease === undefined || !this.#admits(lease, request, policy, projection)) return null;
    return this.#share(lease, projection);
  }

  /**
   * Check in the database, when {@link LeaseBook.admit} could not: a new lease for the
   * session with this call as its first share, or — where the lease does not fit under a cap
   * — this call's own reservation (`request`), checked as usual. A check that arrives while a
   * lease of its session is being opened waits for it and tries that lease first.
   *
   * @returns `check_and_reserve`'s answer; `reservationId` is the id to settle the call with.
   */
  async reserve(
    request: ReserveRequest,
    policy: BudgetPolicy,
    projection: Projection,
  ): Promise<ReserveResult & { reservationId: string }> {
    const key = keyOf(request);
    if (this.#closed) {
      return {
        ...(await this.runtime.reserve.submit(request)),
        reservationId: request.reservationId,
      };
    }
    for (let waits = 0; waits < 3; waits++) {
      const opening = this.#opening.get(key);
      if (opening === undefined) break;
      await opening.catch(() => undefined);
      const share = this.admit(request, policy, projection);
      if (share !== null) return { ok: true, reserved: true, reservationId: share };
    }
    if ((this.#noRoomUntil.get(key) ?? 0) > performance.now()) {
      return {
        ...(await this.runtime.reserve.submit(request)),
        reservationId: request.reservationId,
      };
    }
    this.#noRoomUntil.delete(key);
    const opened = this.#open(key, request, policy, projection);
    this.#opening.set(key, opened);
    try {
      return await opened;
    } finally {
      if (this.#opening.get(key) === opened) this.#opening.delete(key);
    }
  }

  /**
   * The share a usage record settles, taken out of its lease (a share is settled once). A
   * usage of another session naming it leaves it to its call: the record names the lease, so
   * that the database notes the mismatch (and keeps the share's unique slot free), and
   * releases nothing.
   * @returns What the record releases from the lease, or null when `reservationId` is no share.
   */
  settle(reservationId: string, agentId: string, sessionId: string): ShareSettlement | null {
    const lease = this.#shares.get(reservationId);
    if (lease === undefined) return null;
    if (lease.agentId !== agentId || lease.sessionId !== sessionId)
      return { leaseId: lease.id, shareUsd: "0", shareTokens: "0" };
    const share = lease.shares.get(reservationId) as Projection;
    this.#forget(lease, reservationId);
    return {
      leaseId: lease.id,
      shareUsd: femtoToUsd(share.femto),
      shareTokens: String(share.tokens),
    };
  }

  /**
   * A share whose call was never made, given back to its lease (when the lease still admits).
   * @returns Whether `reservationId` was a share.
   */
  release(reservationId: string): boolean {
    const lease = this.#shares.get(reservationId);
    if (lease === undefined) return false;
    const share = lease.shares.get(reservationId) as Projection;
    if (lease.current) {
      lease.leftFemto += share.femto;
      lease.leftTokens += share.tokens;
    }
    this.#forget(lease, reservationId);
    return true;
  }

  /** The agent's policy changed (or is gone): its leases admit nothing more. */
  retire(agentId: string): void {
    for (const lease of [...this.#current.values()])
      if (lease.agentId === agentId) this.#retire(lease);
  }

  /**
   * A check refused under `cap`: release the room this process's leases hold and cannot use
   * for it — what is left of the session's leases (session caps), or of the agent's leases of
   * the day (daily caps) — in one statement; those leases admit nothing more. The statement is
   * a settlement in flight (`runtime.settling`): the refused check waits for it and checks
   * again.
   * @returns Whether there was room to release.
   */
  free(request: Pick<ReserveRequest, "agentId" | "sessionId" | "day">, cap: BudgetCap): boolean {
    const daily = cap === "perAgentUsdDaily" || cap === "perAgentTokensDaily";
    if (!daily && cap !== "perSessionUsd" && cap !== "perSessionTokens") return false;
    const trims: { id: string; usd: string; tokens: string }[] = [];
    let freed = false;
    for (const lease of [...this.#live]) {
      if (lease.agentId !== request.agentId) continue;
      if (daily ? lease.day !== request.day : lease.sessionId !== request.sessionId) continue;
      if (lease.leftFemto === 0n && lease.leftTokens === 0) continue;
      freed = true;
      if (lease.shares.size > 0) {
        trims.push({
          id: lease.id,
          usd: femtoToUsd(lease.leftFemto),
          tokens: String(lease.leftTokens),
        });
      }
      lease.leftFemto = 0n;
      lease.leftTokens = 0;
      this.#retire(lease); // with no call in flight: released whole (#end)
    }
    if (trims.length > 0) this.#release(request.agentId, trims, request.sessionId);
    return freed;
  }

  /**
   * Retire every lease (and those being opened), release those with no call in flight, and
   * wait for the releases. A lease with calls still in flight keeps their part until they are
   * settled, and the sweep releases the rest when it expires. Checks after this reserve one
   * call each.
   */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all([...this.#opening.values()].map((opening) => opening.catch(() => undefined)));
    for (const lease of [...this.#current.values()]) this.#retire(lease);
    await Promise.all(this.#ending);
  }

  #admits(
    lease: Lease,
    request: ReserveRequest,
    policy: BudgetPolicy,
    projection: Projection,
  ): boolean {
    if (!lease.current || lease.policy !== policy || lease.day !== request.day) return false;
    const now = performance.now();
    if (now >= lease.admitUntilMs) {
      this.#retire(lease);
      return false;
    }
    const seconds = policy.exact.perSessionSeconds;
    // Past the session's time (or close to it): the database decides, and audits the refusal.
    if (seconds !== null && lease.secondsAtGrant + (now - lease.grantedAtMs) / 1000 >= seconds)
      return false;
    return projection.femto <= lease.leftFemto && projection.tokens <= lease.leftTokens;
  }

  #share(lease: Lease, projection: Projection): string {
    const id = randomUUID();
    lease.leftFemto -= projection.femto;
    lease.leftTokens -= projection.tokens;
    lease.shares.set(id, projection);
    this.#shares.set(id, lease);
    if (lease.idleTimer !== null) {
      clearTimeout(lease.idleTimer);
      lease.idleTimer = null;
    }
    this.runtime.metrics.leaseAdmissions++;
    return id;
  }

  async #open(
    key: string,
    request: ReserveRequest,
    policy: BudgetPolicy,
    projection: Projection,
  ): Promise<ReserveResult & { reservationId: string }> {
    const calls = this.#settings.calls;
    const femto = projection.femto * BigInt(calls);
    const tokens = projection.tokens * calls;
    const admitMs = Math.floor(request.ttlMs / 2);
    const leaseRequest: ReserveRequest = {
      ...request,
      reservationId: randomUUID(),
      usd: femtoToUsd(femto),
      tokens: String(tokens),
      ttlMs: request.ttlMs + admitMs,
    };
    const sentAt = performance.now();
    const rows = await this.runtime.store.query<{ r: LeaseResult }>(
      sql`select gov_cost.lease(${JSON.stringify({ lease: leaseRequest, single: request })}::jsonb) as r`,
    );
    const result = rows[0]?.r;
    if (result === undefined) throw new Error("gov_cost.lease returned no row.");
    if (!result.leased) {
      const now = performance.now();
      if (this.#noRoomUntil.size >= MAX_NO_ROOM)
        for (const [other, until] of this.#noRoomUntil)
          if (until <= now) this.#noRoomUntil.delete(other);
      this.#noRoomUntil.set(key, now + this.#settings.idleMs);
      return { ...result, reservationId: request.reservationId };
    }
    const previous = this.#current.get(key);
    if (previous !== undefined) this.#retire(previous);
    const lease: Lease = {
      id: leaseRequest.reservationId,
      key,
      agentId: request.agentId,
      sessionId: request.sessionId,
      day: request.day,
      policy,
      leftFemto: femto,
      leftTokens: tokens,
      shares: new Map(),
      admitUntilMs: sentAt + admitMs,
      secondsAtGrant: Number(result.elapsed ?? 0),
      grantedAtMs: sentAt,
      current: true,
      ended: false,
      idleTimer: null,
      expiryTimer: null,
    };
    lease.expiryTimer = setTimeout(
      () => this.#expire(lease),
      Math.max(0, sentAt + leaseRequest.ttlMs - performance.now()),
    );
    lease.expiryTimer.unref?.();
    this.#live.add(lease);
    this.#current.set(key, lease);
    this.runtime.metrics.leasesOpened++;
    const share = this.#share(lease, projection);
    // Opened while the module closed: its calls settle it, then it ends.
    if (this.#closed) this.#retire(lease);
    return { ok: true, reserved: true, reservationId: share };
  }

  #forget(lease: Lease, shareId: string): void {
    lease.shares.delete(shareId);
    this.#shares.delete(shareId);
    if (lease.shares.size > 0 || lease.ended) return;
    if (!lease.current) this.#end(lease);
    else {
      lease.idleTimer = setTimeout(() => this.#retire(lease), this.#settings.idleMs);
      lease.idleTimer.unref?.();
    }
  }

  #retire(lease: Lease): void {
    if (this.#current.get(lease.key) === lease) this.#current.delete(lease.key);
    if (!lease.current) return;
    lease.current = false;
    if (lease.idleTimer !== null) clearTimeout(lease.idleTimer);
    lease.idleTimer = null;
    if (lease.shares.size === 0) this.#end(lease);
  }

  /** Release what is left of a lease (its shares are settled or released). */
  #end(lease: Lease): void {
    if (lease.ended) return;
    this.#close(lease);
    this.#release(lease.agentId, [{ id: lease.id }], lease.sessionId);
  }

  /**
   * The lease expired in the database (the sweep releases it, and audits it): forget its
   * shares, whose calls never reported — a usage that names one later is recorded unmatched.
   */
  #expire(lease: Lease): void {
    if (lease.ended) return;
    this.#retire(lease);
    if (lease.ended) return;
    for (const shareId of lease.shares.keys()) this.#shares.delete(shareId);
    lease.shares.clear();
    this.#close(lease);
  }

  /** Mark a lease ended: it admits nothing, and nothing of it is kept here. */
  #close(lease: Lease): void {
    lease.ended = true;
    lease.current = false;
    if (this.#current.get(lease.key) === lease) this.#current.delete(lease.key);
    if (lease.idleTimer !== null) clearTimeout(lease.idleTimer);
    if (lease.expiryTimer !== null) clearTimeout(lease.expiryTimer);
    lease.idleTimer = null;
    lease.expiryTimer = null;
    this.#live.delete(lease);
  }

  /** `gov_cost.release_leases`, as a settlement in flight of the agent (a refused check waits). */
  #release(
    agentId: string,
    items: { id: string; usd?: string; tokens?: string }[],
    sessionId: string,
  ): void {
    const released = this.runtime.store
      .query(sql`select gov_cost.release_leases(${JSON.stringify(items)}::jsonb) as released`)
      .then(
        () => undefined,
        (error: unknown) => {
          this.runtime.logger.warn(
            "A budget lease could not be released; the sweep releases it when it expires.",
            { agentId, sessionId, error: describeError(error) },
          );
        },
      );
    const tracked = this.runtime.settling.track(agentId, released);
    this.#ending.add(tracked);
    void tracked.then(() => this.#ending.delete(tracked));
  }
}

function keyOf(request: Pick<ReserveRequest, "agentId" | "sessionId" | "day">): string {
  return `${request.agentId}\u0000${request.sessionId}\u0000${request.day}`;
}
