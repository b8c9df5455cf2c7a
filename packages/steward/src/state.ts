/**
 * The counters and sums that stateful tripwires read (`state.*` in CEL), and the trust debt,
 * per agent. In memory by default; `@gov/steward`'s Postgres storages share them between
 * processes.
 */

/** What `state` holds in a stateful tripwire's condition. */
export interface AgentState {
  /** Allowed actions in the last hour (a sliding estimate: this hour plus the weighted previous one). */
  actions_last_hour: number;
  /** Allowed actions this UTC day. */
  actions_today: number;
  /** Sum of `args.amount` of the allowed actions this UTC day. */
  daily_total: number;
  /** Allowed actions ever. */
  actions_total: number;
}

/** An action counted by a stateful evaluation. */
export interface RecordedAction {
  /** `args.amount` when it is a finite number or a bigint and ≥ 0; else 0 (never negative). */
  amount: number;
}

/**
 * Where the per-agent state lives. A stateful evaluation **reserves**: the action is counted
 * and the state as it was before it is returned, in one atomic step, so that concurrent
 * evaluations (and, with Postgres, processes) each see the others' actions. When the
 * evaluation does not allow the action, the steward **releases** the reservation.
 */
export interface StateStorage {
  /** Count the action and return the state before it, atomically. */
  reserve(agentId: string, action: RecordedAction, nowMs: number): AgentState | Promise<AgentState>;
  /** Take back a reservation made at `reservedAtMs` (the action was not allowed). */
  release(agentId: string, action: RecordedAction, reservedAtMs: number): void | Promise<void>;
  /** The state now, without counting anything. */
  read(agentId: string, nowMs: number): AgentState | Promise<AgentState>;
}

/** Trust debt before and after one addition. */
export interface DebtChange {
  /** The debt before this addition, decayed to now. */
  before: number;
  after: number;
}

/** How debt decays: `debt × (1 − rate)^(elapsed / period)`. */
export interface DebtDecay {
  rate: number;
  periodMs: number;
}

/** Where the per-agent trust debt lives. `add` must be atomic. */
export interface TrustDebtStorage {
  /** Decay the agent's debt to `nowMs`, add `amount`, and return both values. */
  add(
    agentId: string,
    amount: number,
    nowMs: number,
    decay: DebtDecay,
  ): DebtChange | Promise<DebtChange>;
  /** The agent's debt decayed to `nowMs` (0 for an unknown agent). */
  read(agentId: string, nowMs: number, decay: DebtDecay): number | Promise<number>;
}

const HOUR_MS = 3_600_000;
const DAY_MS = 86_400_000;

/** Debt decayed over fractional periods (continuous), never below 0. */
export function decayed(debt: number, elapsedMs: number, decay: DebtDecay): number {
  if (elapsedMs <= 0 || decay.rate === 0 || debt === 0) return debt;
  if (decay.rate >= 1) return 0;
  return debt * (1 - decay.rate) ** (elapsedMs / decay.periodMs);
}

interface Counters {
  hourStart: number;
  hourCount: number;
  previousHourCount: number;
  dayStart: number;
  dayCount: number;
  dayAmount: number;
  total: number;
}

/** The sliding-hour estimate of fixed-hour counters at `nowMs`. */
export function actionsLastHour(
  hourStart: number,
  hourCount: number,
  previousHourCount: number,
  nowMs: number,
): number {
  const currentHour = Math.floor(nowMs / HOUR_MS) * HOUR_MS;
  if (hourStart === currentHour) {
    const elapsed = (nowMs - currentHour) / HOUR_MS;
    return hourCount + Math.floor(previousHourCount * (1 - elapsed));
  }
  if (hourStart === currentHour - HOUR_MS) {
    const elapsed = (nowMs - currentHour) / HOUR_MS;
    return Math.floor(hourCount * (1 - elapsed));
  }
  return 0;
}

/** State and counters in this process's memory. */
export class InMemoryStateStorage implements StateStorage {
  readonly #agents = new Map<string, Counters>();

  read(agentId: string, nowMs: number): AgentState {
    const counters = this.#agents.get(agentId);
    if (!counters)
      return { actions_last_hour: 0, actions_today: 0, daily_total: 0, actions_total: 0 };
    const today = counters.dayStart === Math.floor(nowMs / DAY_MS) * DAY_MS;
    return {
      actions_last_hour: actionsLastHour(
        counters.hourStart,
        counters.hourCount,
        counters.previousHourCount,
        nowMs,
      ),
      actions_today: today ? counters.dayCount : 0,
      daily_total: today ? counters.dayAmount : 0,
      actions_total: counters.total,
    };
  }

  reserve(agentId: string, action: RecordedAction, requestedMs: number): AgentState {
    // A clock moving backwards counts into the current buckets: they never move back.
    const existing = this.#agents.get(agentId);
    const nowMs = existing ? Math.max(requestedMs, existing.hourStart) : requestedMs;
    const before = this.read(agentId, nowMs);
    const hour = Math.floor(nowMs / HOUR_MS) * HOUR_MS;
    const day = Math.floor(nowMs / DAY_MS) * DAY_MS;
    let counters = existing;
    if (!counters) {
      counters = {
        hourStart: hour,
        hourCount: 0,
        previousHourCount: 0,
        dayStart: day,
        dayCount: 0,
        dayAmount: 0,
        total: 0,
      };
      this.#agents.set(agentId, counters);
    }
    if (counters.hourStart !== hour) {
      counters.previousHourCount = counters.hourStart === hour - HOUR_MS ? counters.hourCount : 0;
      counters.hourStart = hour;
      counters.hourCount = 0;
    }
    if (counters.dayStart !== day) {
      counters.dayStart = day;
      counters.dayCount = 0;
      counters.dayAmount = 0;
    }
    counters.hourCount++;
    counters.dayCount++;
    counters.dayAmount += Math.max(0, action.amount);
    counters.total++;
    return before;
  }

  release(agentId: string, action: RecordedAction, reservedAtMs: number): void {
    const counters = this.#agents.get(agentId);
    if (!counters) return;
    if (counters.hourStart === Math.floor(reservedAtMs / HOUR_MS) * HOUR_MS)
      counters.hourCount = Math.max(0, counters.hourCount - 1);
    if (counters.dayStart === Math.floor(reservedAtMs / DAY_MS) * DAY_MS) {
      counters.dayCount = Math.max(0, counters.dayCount - 1);
      counters.dayAmount = Math.max(0, counters.dayAmount - Math.max(0, action.amount));
    }
    counters.total = Math.max(0, counters.total - 1);
  }
}

/** Trust debt in this process's memory. */
export class InMemoryTrustDebtStorage implements TrustDebtStorage {
  readonly #debts = new Map<string, { debt: number; atMs: number }>();

  add(agentId: string, amount: number, nowMs: number, decay: DebtDecay): DebtChange {
    const entry = this.#debts.get(agentId);
    const before = entry ? decayed(entry.debt, nowMs - entry.atMs, decay) : 0;
    const after = before + amount;
    if (entry) {
      entry.debt = after;
      entry.atMs = Math.max(entry.atMs, nowMs);
    } else if (after !== 0) {
      this.#debts.set(agentId, { debt: after, atMs: nowMs });
    }
    return { before, after };
  }

  read(agentId: string, nowMs: number, decay: DebtDecay): number {
    const entry = this.#debts.get(agentId);
    return entry ? decayed(entry.debt, nowMs - entry.atMs, decay) : 0;
  }
}
