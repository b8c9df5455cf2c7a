/**
 * The times of recent calls, oldest first, in a ring buffer that grows by doubling up to a
 * cap: pushing and expiring are O(1) (amortized), and no call copies the buffer.
 * @internal
 */
export class CallWindow {
  #times: Float64Array;
  #head = 0;
  #size = 0;
  readonly #cap: number;
  /** True when a call still in the window was dropped to stay under the cap. */
  capped = false;

  constructor(cap: number, initialCapacity = 8) {
    this.#cap = cap;
    this.#times = new Float64Array(Math.min(initialCapacity, cap));
  }

  /** Calls held. */
  get size(): number {
    return this.#size;
  }

  /** The newest call's time, or -Infinity when empty. */
  newest(): number {
    if (this.#size === 0) return Number.NEGATIVE_INFINITY;
    return this.#times[(this.#head + this.#size - 1) % this.#times.length] as number;
  }

  /** The time of the `index`-th newest call (0 is the newest). */
  fromNewest(index: number): number {
    return this.#times[(this.#head + this.#size - 1 - index) % this.#times.length] as number;
  }

  /** Drop the calls made at or before `cutoff` (oldest first). */
  expire(cutoff: number): void {
    const times = this.#times;
    const length = times.length;
    let dropped = false;
    while (this.#size > 0 && (times[this.#head] as number) <= cutoff) {
      this.#head = this.#head + 1 === length ? 0 : this.#head + 1;
      this.#size--;
      dropped = true;
    }
    // What the cap dropped was older than anything dropped now: gone from the window too.
    if (dropped) this.capped = false;
  }

  /** Add a call at `time`. */
  push(time: number): void {
    let times = this.#times;
    if (this.#size === times.length) {
      if (times.length < this.#cap) {
        times = this.#grow(Math.min(times.length * 2, this.#cap));
      } else {
        // Full at the cap: the oldest call makes room.
        this.#head = this.#head + 1 === times.length ? 0 : this.#head + 1;
        this.#size--;
        this.capped = true;
      }
    }
    let index = this.#head + this.#size;
    if (index >= times.length) index -= times.length;
    times[index] = time;
    this.#size++;
  }

  /**
   * How many calls were made after `cutoff`, counting from the newest and stopping at
   * `enough`. Read-only.
   */
  countAfter(cutoff: number, enough: number): number {
    let count = 0;
    for (let index = 0; index < this.#size && count < enough; index++) {
      if (this.fromNewest(index) <= cutoff) break;
      count++;
    }
    return count;
  }

  #grow(capacity: number): Float64Array {
    const next = new Float64Array(capacity);
    for (let index = 0; index < this.#size; index++)
      next[index] = this.#times[(this.#head + index) % this.#times.length] as number;
    this.#times = next;
    this.#head = 0;
    return next;
  }
}

/**
 * A session's most recent calls (tool and time), newest last, for the oscillation rule.
 * Fixed capacity; the oldest call makes room.
 * @internal
 */
export class CallHistory {
  readonly #tools: string[];
  readonly #times: Float64Array;
  #head = 0;
  #size = 0;

  constructor(readonly capacity: number) {
    this.#tools = new Array<string>(capacity).fill("");
    this.#times = new Float64Array(capacity);
  }

  get size(): number {
    return this.#size;
  }

  push(tool: string, time: number): void {
    const capacity = this.capacity;
    let index = this.#head + this.#size;
    if (index >= capacity) index -= capacity;
    this.#tools[index] = tool;
    this.#times[index] = time;
    if (this.#size < capacity) this.#size++;
    else this.#head = this.#head + 1 === capacity ? 0 : this.#head + 1;
  }

  /** The tool of the `index`-th newest call (0 is the newest). */
  toolFromNewest(index: number): string {
    return this.#tools[(this.#head + this.#size - 1 - index) % this.capacity] as string;
  }

  /** The time of the `index`-th newest call. */
  timeFromNewest(index: number): number {
    return this.#times[(this.#head + this.#size - 1 - index) % this.capacity] as number;
  }
}
