/**
 * Settlements in flight in this process: usage being recorded (`track`, `trackUsage`,
 * `reconcile`) and reservations being released. A budget check that is refused while some
 * of them are in flight waits for them and checks again, because the reservation that made
 * it fail may be the worst case of a call whose real (smaller) usage is on its way.
 */
export class SettlementsInFlight {
  /** By agent; releases name no agent and are kept under `null`. */
  readonly #byAgent = new Map<string | null, Set<Promise<unknown>>>();

  /** Track `work` until it settles; returns it unchanged (its rejection stays the caller's). */
  track<T>(agentId: string | null, work: Promise<T>): Promise<T> {
    let pending = this.#byAgent.get(agentId);
    if (pending === undefined) {
      pending = new Set();
      this.#byAgent.set(agentId, pending);
    }
    const set = pending;
    const done = work.then(
      () => undefined,
      () => undefined,
    );
    set.add(done);
    void done.then(() => {
      set.delete(done);
      if (set.size === 0 && this.#byAgent.get(agentId) === set) this.#byAgent.delete(agentId);
    });
    return work;
  }

  /** The settlements in flight now that may concern `agentId` (its own, and releases). Never reject. */
  of(agentId: string): Promise<unknown>[] {
    return [...(this.#byAgent.get(agentId) ?? []), ...(this.#byAgent.get(null) ?? [])];
  }
}
