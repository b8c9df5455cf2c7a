import {
  type AuditSink,
  type Clock,
  canonicalJsonHash,
  checkId,
  createConsoleLogger,
  defineModule,
  describeError,
  InvalidArgumentError,
  type Logger,
  type ModuleContext,
  noopAuditSink,
  requirePort,
  systemClock,
  typeOf,
} from "@gov/core";
import { CallHistory, CallWindow } from "./call-window";
import { LoopDetected, type LoopDetection } from "./errors";
import {
  LOOP_LIMITS,
  type LoopOptions,
  LoopPolicy,
  type LoopPolicyInput,
  parseLoopOptions,
  readCallArgs,
} from "./models";
import { loopSdkContribution } from "./sdk-options";

/** Options of {@link LoopModule.recordCall}. */
export interface RecordCallOptions {
  /**
   * The call's arguments (JSON values). Read only when the agent's policy has the
   * `identicalCalls` rule on: two calls are identical when their tools match and the
   * SHA-256 of their arguments' canonical JSON (RFC 8785) match. Ignored otherwise.
   */
  args?: unknown;
}

/** What the module holds, for health checks and tests. */
export interface LoopMetrics {
  /** Agents with a registered policy. */
  policies: number;
  /**
   * Sessions being tracked: the sweep forgets those with no call left in any window and
   * those idle for `sessionIdleMs`; at most `maxSessions`.
   */
  sessions: number;
  /** Sessions forgotten to stay within `maxSessions` (least recently used first). */
  evictedSessions: number;
  /** Loops detected since the module started (each call over a limit counts once). */
  detections: number;
  /** `loop.detected` events the audit sink failed to take (each was logged as a warning). */
  auditFailures: number;
  /** `loop.detected` events handed to the audit sink and not yet settled. */
  pendingAuditWrites: number;
}

/** @deprecated use {@link LoopMetrics} */
export type LoopStats = LoopMetrics;

/** A registered policy with its windows in milliseconds, computed once. */
interface Compiled {
  readonly policy: LoopPolicy;
  readonly windowMs: number;
  readonly identicalWindowMs: number;
  /** Calls the oscillation rule remembers: twice the longest cycle × its repetitions. */
  readonly historyCapacity: number;
}

interface SessionState {
  lastSeenMs: number;
  /** Calls per lower-cased tool name. */
  readonly tools: Map<string, CallWindow>;
  /** Calls per (tool, arguments hash), when the identical-call rule is on. */
  identical: Map<string, CallWindow> | null;
  /** The last calls in order, when the oscillation rule is on. */
  history: CallHistory | null;
}

interface Cycle {
  period: number;
  repetitions: number;
  tools: string[];
}

const TRACKED = LOOP_LIMITS.trackedCallsPerRule;

/** Ids and tool names already checked, remembered at most this many at once (then forgotten). */
const MAX_KNOWN_NAMES = 10_000;

type LoopContext = Partial<Pick<ModuleContext, "clock" | "logger" | "audit">>;

function checkContext(context: unknown): asserts context is LoopContext {
  if (typeof context !== "object" || context === null || Array.isArray(context)) {
    throw new InvalidArgumentError(
      "context",
      `must be an object, got ${typeOf(context)}.`,
      "Pass { clock, logger, audit } (each optional) or nothing; @gov/sdk wires it for you.",
    );
  }
  const { clock, logger, audit } = context as Record<string, unknown>;
  requirePort(clock, "clock", ["now", "nowMs"], "a Clock (default systemClock)", {
    optional: true,
  });
  requirePort(
    logger,
    "logger",
    ["debug", "info", "warn", "error"],
    "a Logger (default a console logger; silentLogger logs nothing)",
    { optional: true },
  );
  requirePort(
    audit,
    "audit",
    ["log"],
    "an AuditSink (default noopAuditSink, which records nothing)",
    { optional: true },
  );
}

/**
 * Runaway detection: counts each session's tool calls in a sliding window and reports an
 * agent that repeats itself beyond its {@link LoopPolicy}.
 *
 * The counters live in this process's memory, as in the reference: a ring buffer of call
 * times per (session, tool), so `recordCall` costs about a microsecond. Sessions with no call
 * left in any window, or idle for `sessionIdleMs` (one day), are forgotten by the sweep,
 * and at most `maxSessions` (100,000) are held: beyond it the least recently used session is
 * forgotten. Each detection is written to the audit chain
 * as `loop.detected`; the write is not awaited on the call's path, but its failure is logged
 * (never lost silently) and `flush()`/`close()` wait for it.
 *
 * Time is the module's clock (`context.clock`), so tests can move it.
 *
 * @example
 * ```ts
 * sdk.loop.register(new LoopPolicy({ agentId: "my-agent", windowSeconds: 60, maxCalls: 5 }));
 * try {
 *   sdk.loop.recordCall("my-agent", sessionId, "search_web");
 * } catch (error) {
 *   if (LoopDetected.isInstance(error)) breakTheLoop(); // the 6th call within 60 s
 *   else throw error;
 * }
 * ```
 */
export class LoopModule {
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #audit: AuditSink;
  readonly #idleMs: number;
  readonly #sweepMs: number;
  readonly #maxSessions: number;
  readonly #policies = new Map<string, Compiled>();
  /**
   * agentId → sessionId → state. Each agent's map is in order of use (least recently used
   * first): a session is moved to the end when a call is recorded in it.
   */
  readonly #sessions = new Map<string, Map<string, SessionState>>();
  #sessionCount = 0;
  /** The session of the last recorded call: already last in its agent's map. */
  #lastSession: SessionState | null = null;
  #evictions = 0;
  #nextSweepMs: number;
  #timer: NodeJS.Timeout | null = null;
  #closed = false;
  readonly #pending = new Set<Promise<void>>();
  #detections = 0;
  #auditFailures = 0;
  /**
   * Ids and tool names that passed core's `checkId`: the hot path checks each name once (a
   * Set lookup after that, as fast as the length checks it replaced).
   */
  readonly #knownNames = new Set<string>();

  /**
   * @param context The clock, logger and audit sink (from `ModuleContext` when composed);
   *   used alone, the system clock, a console logger and a sink that records nothing.
   * @throws {InvalidArgumentError} for a context that is not an object, or a clock, logger
   *   or audit sink without the methods the module calls (`field` names it).
   * @throws {InvalidLoopPolicyError} for bad options.
   */
  constructor(context: LoopContext = {}, options: LoopOptions = {}) {
    checkContext(context);
    const resolved = parseLoopOptions(options);
    this.#clock = context.clock ?? systemClock;
    this.#logger = context.logger ?? createConsoleLogger();
    this.#audit = context.audit ?? noopAuditSink;
    this.#idleMs = resolved.sessionIdleMs;
    this.#sweepMs = resolved.sweepIntervalMs;
    this.#maxSessions = resolved.maxSessions;
    this.#nextSweepMs = this.#clock.nowMs() + this.#sweepMs;
  }

  /**
   * Start the sweep timer (unref'd: it never keeps the process alive). Idempotent; a closed
   * module stays closed. The module counts calls without it (`recordCall` sweeps by itself
   * once `sweepIntervalMs` has passed on the module's clock); the timer only frees the memory
   * of sessions that went quiet.
   *
   * @example
   * ```ts
   * const loop = new LoopModule({ clock, logger, audit });
   * await loop.start();
   * ```
   */
  async start(): Promise<void> {
    if (this.#timer !== null || this.#closed) return;
    this.#timer = setInterval(() => this.prune(), this.#sweepMs);
    this.#timer.unref();
  }

  /**
   * Register (or replace) the loop policy of `policy.agentId`. Counters already kept for the
   * agent's sessions stay; the new limits apply from the next call.
   *
   * @returns the policy as built (a `LoopPolicy`, immutable).
   * @throws {InvalidLoopPolicyError} when a plain object fails validation; nothing changes.
   */
  register(policy: LoopPolicy | LoopPolicyInput): LoopPolicy {
    const built = policy instanceof LoopPolicy ? policy : new LoopPolicy(policy);
    const oscillation = built.oscillation;
    this.#policies.set(built.agentId, {
      policy: built,
      windowMs: built.windowSeconds * 1_000,
      identicalWindowMs: (built.identicalCalls?.windowSeconds ?? built.windowSeconds) * 1_000,
      // Twice what detection needs, so that a detection can say how far the cycle goes back.
      historyCapacity: oscillation ? 2 * oscillation.maxPeriod * oscillation.minRepetitions : 0,
    });
    return built;
  }

  /**
   * Remove an agent's policy and forget its sessions' counters.
   * @returns true when there was a policy.
   */
  unregister(agentId: string): boolean {
    this.#checkName(agentId, "agentId");
    this.#dropAgent(agentId);
    return this.#policies.delete(agentId);
  }

  /** The agent's policy, or undefined when it has none. */
  getPolicy(agentId: string): LoopPolicy | undefined {
    this.#checkName(agentId, "agentId");
    return this.#policies.get(agentId)?.policy;
  }

  /**
   * Record a tool call and check it against the agent's policy. The tool name is
   * lower-cased (`Search_Web` and `search_web` are one tool); sessions are counted apart.
   *
   * More than `maxCalls` calls of the same tool in the session within `windowSeconds` is a
   * loop (exactly `maxCalls` pass). On a loop, a `loop.detected` event goes to the audit
   * chain and, with `action: "raise"`, the call is refused with {@link LoopDetected} (the
   * call still counts, so the loop lasts until calls leave the window). An agent without a
   * policy is not tracked (no-op).
   *
   * Synchronous: `await` is not needed (but harmless).
   *
   * @returns the detection with `action: "log"`, or null when there is no loop (or no policy).
   * @throws {LoopDetected} on a loop with `action: "raise"`.
   * @throws {InvalidArgumentError} for a missing, blank or over-long id or tool name, options
   *   that are not a plain object or hold an unknown key (with a "did you mean"), or (with
   *   `identicalCalls` on) arguments that have no JSON form; nothing is recorded then.
   */
  recordCall(
    agentId: string,
    sessionId: string,
    toolName: string,
    options?: RecordCallOptions,
  ): LoopDetection | null {
    this.#checkName(agentId, "agentId");
    this.#checkName(sessionId, "sessionId");
    this.#checkName(toolName, "toolName");
    const args = options === undefined ? undefined : readCallArgs(options);
    const compiled = this.#policies.get(agentId);
    if (compiled === undefined) return null;
    const policy = compiled.policy;
    const tool = toolName.toLowerCase();
    // Hash before anything is recorded: arguments without a JSON form change nothing.
    const argsHash =
      policy.identicalCalls !== null && args !== undefined ? canonicalJsonHash(args, "args") : null;

    const now = this.#clock.nowMs();
    if (now >= this.#nextSweepMs) this.prune();
    const session = this.#session(agentId, sessionId, compiled, now);

    let calls = session.tools.get(tool);
    if (calls === undefined) {
      calls = new CallWindow(TRACKED);
      session.tools.set(tool, calls);
    }
    calls.expire(now - compiled.windowMs);
    calls.push(now);

    let detection: LoopDetection | null = null;
    if (calls.size > policy.maxCalls) {
      detection = this.#detection(policy, sessionId, tool, "repeat", {
        count: calls.size,
        countCapped: calls.capped,
        windowSeconds: policy.windowSeconds,
        maxCalls: policy.maxCalls,
      });
    }

    if (argsHash !== null && policy.identicalCalls !== null) {
      let identical = session.identical;
      if (identical === null) {
        identical = new Map();
        session.identical = identical;
      }
      const key = `${tool}\u0000${argsHash}`;
      let same = identical.get(key);
      if (same === undefined) {
        same = new CallWindow(TRACKED, 4);
        identical.set(key, same);
      }
      same.expire(now - compiled.identicalWindowMs);
      same.push(now);
      if (detection === null && same.size > policy.identicalCalls.maxCalls) {
        detection = this.#detection(policy, sessionId, tool, "identical", {
          count: same.size,
          countCapped: same.capped,
          windowSeconds: policy.identicalCalls.windowSeconds,
          maxCalls: policy.identicalCalls.maxCalls,
          argsHash,
        });
      }
    }

    if (session.history !== null) {
      session.history.push(tool, now);
      if (detection === null) {
        const cycle = this.#cycle(session, compiled, now);
        if (cycle !== null) {
          detection = this.#detection(policy, sessionId, tool, "oscillation", {
            count: cycle.period * cycle.repetitions,
            countCapped: false,
            windowSeconds: policy.windowSeconds,
            maxCalls: policy.maxCalls,
            cycle: cycle.tools,
            repetitions: cycle.repetitions,
          });
        }
      }
    }

    if (detection === null) return null;
    this.#detections++;
    this.#record(detection);
    if (policy.action === "raise") throw new LoopDetected(detection);
    return detection;
  }

  /**
   * Whether the session is in a loop now: a rule of the agent's policy is over its limit
   * with the calls still in their windows. Read-only: records nothing, and does not keep an
   * idle session alive. False for an agent without a policy or an unknown session.
   *
   * @throws {InvalidArgumentError} for a missing, blank or over-long id.
   */
  check(agentId: string, sessionId: string): boolean {
    this.#checkName(agentId, "agentId");
    this.#checkName(sessionId, "sessionId");
    const compiled = this.#policies.get(agentId);
    if (compiled === undefined) return false;
    const session = this.#sessions.get(agentId)?.get(sessionId);
    if (session === undefined) return false;
    const policy = compiled.policy;
    const now = this.#clock.nowMs();
    const limit = policy.maxCalls;
    for (const calls of session.tools.values()) {
      if (calls.countAfter(now - compiled.windowMs, limit + 1) > limit) return true;
    }
    if (policy.identicalCalls !== null && session.identical !== null) {
      const identicalLimit = policy.identicalCalls.maxCalls;
      for (const calls of session.identical.values()) {
        if (calls.countAfter(now - compiled.identicalWindowMs, identicalLimit + 1) > identicalLimit)
          return true;
      }
    }
    return session.history !== null && this.#cycle(session, compiled, now) !== null;
  }

  /**
   * Forget one session's counters, e.g. after a human has dealt with the loop.
   * @returns true when the session was tracked.
   */
  resetSession(agentId: string, sessionId: string): boolean {
    this.#checkName(agentId, "agentId");
    this.#checkName(sessionId, "sessionId");
    const sessions = this.#sessions.get(agentId);
    if (!sessions?.delete(sessionId)) return false;
    this.#sessionCount--;
    if (sessions.size === 0) this.#sessions.delete(agentId);
    return true;
  }

  /**
   * Forget calls that have left their windows, sessions with no call left in any window (they
   * can no longer contribute to a detection), and sessions idle for `sessionIdleMs`.
   * Runs by itself (on `recordCall` every `sweepIntervalMs` of the module's clock, and
   * on an unref'd timer); call it to sweep now.
   * @returns how many sessions were forgotten.
   */
  prune(): number {
    const now = this.#clock.nowMs();
    this.#nextSweepMs = now + this.#sweepMs;
    let removed = 0;
    for (const [agentId, sessions] of this.#sessions) {
      const compiled = this.#policies.get(agentId);
      for (const [sessionId, session] of sessions) {
        if (compiled === undefined || now - session.lastSeenMs >= this.#idleMs) {
          sessions.delete(sessionId);
          removed++;
          continue;
        }
        const cutoff = now - compiled.windowMs;
        for (const [tool, calls] of session.tools) {
          if (calls.newest() <= cutoff) session.tools.delete(tool);
        }
        const identical = session.identical;
        if (identical !== null) {
          for (const [key, calls] of identical) {
            if (calls.newest() <= now - compiled.identicalWindowMs) identical.delete(key);
          }
        }
        const history = session.history;
        if (
          session.tools.size === 0 &&
          (identical === null || identical.size === 0) &&
          (history === null || history.size === 0 || history.timeFromNewest(0) <= cutoff)
        ) {
          // Nothing left in any window: a new call starts from zero either way.
          sessions.delete(sessionId);
          removed++;
        }
      }
      if (sessions.size === 0) this.#sessions.delete(agentId);
    }
    this.#sessionCount -= removed;
    return removed;
  }

  /** What the module holds and did. */
  metrics(): LoopMetrics {
    return {
      policies: this.#policies.size,
      sessions: this.#sessionCount,
      evictedSessions: this.#evictions,
      detections: this.#detections,
      auditFailures: this.#auditFailures,
      pendingAuditWrites: this.#pending.size,
    };
  }

  /** @deprecated use {@link LoopModule.metrics} (the same object). */
  stats(): LoopMetrics {
    return this.metrics();
  }

  /** Resolves when every `loop.detected` event handed to the audit sink so far has settled. */
  async flush(): Promise<void> {
    while (this.#pending.size > 0) await Promise.all([...this.#pending]);
  }

  /** Stop the sweep timer and wait for pending audit writes. Idempotent. Counters stay usable. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer !== null) {
      clearInterval(this.#timer);
      this.#timer = null;
    }
    await this.flush();
  }

  /** Same as {@link LoopModule.close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /** Core's `checkId`, once per distinct name. @throws {InvalidArgumentError} */
  #checkName(value: unknown, field: string): asserts value is string {
    if (typeof value === "string" && this.#knownNames.has(value)) return;
    checkId(value, field);
    if (this.#knownNames.size >= MAX_KNOWN_NAMES) this.#knownNames.clear();
    this.#knownNames.add(value as string);
  }

  #session(agentId: string, sessionId: string, compiled: Compiled, now: number): SessionState {
    let sessions = this.#sessions.get(agentId);
    let session = sessions?.get(sessionId);
    if (session === undefined) {
      // Make room first: the new session is then the most recently used, never the evicted.
      if (this.#sessionCount >= this.#maxSessions) this.#evictLeastRecentlyUsed();
      sessions = this.#sessions.get(agentId);
      if (sessions === undefined) {
        sessions = new Map();
        this.#sessions.set(agentId, sessions);
      }
      session = { lastSeenMs: now, tools: new Map(), identical: null, history: null };
      sessions.set(sessionId, session);
      this.#sessionCount++;
    } else if (session !== this.#lastSession) {
      // Move it to the end of its agent's map: the maps stay in order of use.
      (sessions as Map<string, SessionState>).delete(sessionId);
      (sessions as Map<string, SessionState>).set(sessionId, session);
    }
    this.#lastSession = session;
    session.lastSeenMs = now;
    const capacity = compiled.historyCapacity;
    if (capacity === 0) {
      session.history = null;
    } else if (session.history === null || session.history.capacity !== capacity) {
      // The rule was just turned on (or changed): the cycle is looked for from here on.
      session.history = new CallHistory(capacity);
    }
    return session;
  }

  /**
   * The shortest cycle of at least two tools repeated `minRepetitions` times in a row at the
   * end of the session's calls, all within the window; null if none. Read-only.
   */
  #cycle(session: SessionState, compiled: Compiled, now: number): Cycle | null {
    const history = session.history;
    const rule = compiled.policy.oscillation;
    if (history === null || rule === null) return null;
    const cutoff = now - compiled.windowMs;
    for (let period = 2; period <= rule.maxPeriod; period++) {
      const needed = period * rule.minRepetitions;
      if (history.size < needed) break;
      if (history.timeFromNewest(needed - 1) <= cutoff) break;
      let periodic = true;
      for (let index = 0; index + period < needed; index++) {
        if (history.toolFromNewest(index) !== history.toolFromNewest(index + period)) {
          periodic = false;
          break;
        }
      }
      if (!periodic) continue;
      const first = history.toolFromNewest(0);
      let distinct = false;
      for (let index = 1; index < period; index++) {
        if (history.toolFromNewest(index) !== first) {
          distinct = true;
          break;
        }
      }
      if (!distinct) continue;
      // How far the cycle reaches back (within what is remembered and the window).
      let length = needed;
      while (
        length < history.size &&
        history.toolFromNewest(length) === history.toolFromNewest(length - period) &&
        history.timeFromNewest(length) > cutoff
      ) {
        length++;
      }
      const tools: string[] = [];
      for (let index = period - 1; index >= 0; index--) tools.push(history.toolFromNewest(index));
      return { period, repetitions: Math.floor(length / period), tools };
    }
    return null;
  }

  #detection(
    policy: LoopPolicy,
    sessionId: string,
    tool: string,
    pattern: LoopDetection["pattern"],
    fields: Pick<LoopDetection, "count" | "countCapped" | "windowSeconds" | "maxCalls"> &
      Partial<Pick<LoopDetection, "argsHash" | "cycle" | "repetitions">>,
  ): LoopDetection {
    return {
      agentId: policy.agentId,
      sessionId,
      tool,
      pattern,
      count: fields.count,
      countCapped: fields.countCapped,
      windowSeconds: fields.windowSeconds,
      maxCalls: fields.maxCalls,
      action: policy.action,
      argsHash: fields.argsHash ?? null,
      cycle: fields.cycle ?? null,
      repetitions: fields.repetitions ?? null,
    };
  }

  /** Hand the `loop.detected` event to the audit sink without waiting; a failure is logged. */
  #record(detection: LoopDetection): void {
    const { agentId, sessionId, ...fields } = detection;
    let written: Promise<unknown>;
    try {
      written = this.#audit.log({
        agentId,
        sessionId,
        kind: "loop.detected",
        metadata: { ...fields, cycle: fields.cycle ? [...fields.cycle] : null },
      });
    } catch (error) {
      this.#auditFailed(detection, error);
      return;
    }
    const settled = Promise.resolve(written).then(
      () => undefined,
      (error: unknown) => this.#auditFailed(detection, error),
    );
    this.#pending.add(settled);
    void settled.then(() => this.#pending.delete(settled));
  }

  #auditFailed(detection: LoopDetection, error: unknown): void {
    this.#auditFailures++;
    this.#logger.warn(
      "A loop.detected audit event could not be written; its fields are in this warning.",
      { ...detection, error: describeError(error) },
    );
  }

  /** Forget the least recently used session of all agents (the oldest first in its map). */
  #evictLeastRecentlyUsed(): void {
    let oldestAgent: string | undefined;
    let oldestSession: string | undefined;
    let oldestMs = Number.POSITIVE_INFINITY;
    for (const [agentId, sessions] of this.#sessions) {
      const first = sessions.entries().next();
      if (first.done) continue;
      const [sessionId, session] = first.value;
      if (oldestAgent === undefined || session.lastSeenMs < oldestMs) {
        oldestAgent = agentId;
        oldestSession = sessionId;
        oldestMs = session.lastSeenMs;
      }
    }
    if (oldestAgent === undefined || oldestSession === undefined) return;
    const sessions = this.#sessions.get(oldestAgent) as Map<string, SessionState>;
    sessions.delete(oldestSession);
    if (sessions.size === 0) this.#sessions.delete(oldestAgent);
    this.#sessionCount--;
    if (this.#evictions++ === 0) {
      this.#logger.warn(
        "The loop module holds maxSessions sessions: the least recently used ones are now forgotten to make room (their counters start again from zero). Raise maxSessions if this is expected; logged once.",
        {
          maxSessions: this.#maxSessions,
          agentId: oldestAgent,
          sessionId: oldestSession,
          idleMs: this.#clock.nowMs() - oldestMs,
        },
      );
    }
  }

  #dropAgent(agentId: string): void {
    const sessions = this.#sessions.get(agentId);
    if (sessions === undefined) return;
    this.#sessionCount -= sessions.size;
    this.#sessions.delete(agentId);
  }
}

/** The loop module's definition, for `@gov/sdk` and for composing it by hand (no migrations: it stores nothing). */
export const loopModule = defineModule({
  name: "loop",
  create: async (context: ModuleContext, options: LoopOptions | undefined) => {
    const loop = new LoopModule(context, options ?? {});
    await loop.start();
    return loop;
  },
  close: (loop: LoopModule) => loop.close(),
  sdk: loopSdkContribution,
});
