/**
 * The source of time for every governance decision that depends on it (expiries, windows,
 * daily budgets). Production uses {@link systemClock}; tests use a {@link ManualClock}.
 *
 * Limits measured against the database (session time limits, for instance) use the
 * database's clock instead, so that many hosts agree.
 */
export interface Clock {
  /** The current time. */
  now(): Date;
  /** The current time in milliseconds since the epoch. */
  nowMs(): number;
}

/** The host's wall clock. */
export const systemClock: Clock = {
  now: () => new Date(),
  nowMs: () => Date.now(),
};

/**
 * A clock that moves only when told to.
 *
 * @example
 * ```ts
 * const clock = new ManualClock(new Date("2026-01-01T00:00:00Z"));
 * clock.advance(60_000); // one minute later
 * ```
 */
export class ManualClock implements Clock {
  #ms: number;

  /** @param start The initial time. @default the Unix epoch */
  constructor(start: Date | number = 0) {
    this.#ms = typeof start === "number" ? start : start.getTime();
  }

  now(): Date {
    return new Date(this.#ms);
  }

  nowMs(): number {
    return this.#ms;
  }

  /** Move the clock forward by `ms` milliseconds (negative moves it back). */
  advance(ms: number): void {
    if (!Number.isFinite(ms))
      throw new RangeError(`ManualClock.advance: ms must be finite, got ${ms}`);
    this.#ms += ms;
  }

  /** Set the clock to `time`. */
  set(time: Date | number): void {
    this.#ms = typeof time === "number" ? time : time.getTime();
  }
}
