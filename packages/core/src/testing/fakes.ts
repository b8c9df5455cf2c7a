/**
 * Doubles every module's tests need: recorders of what a module logged or audited, a halt
 * guard, and stores that are down.
 * @module
 */
import { PgDialect } from "drizzle-orm/pg-core";
import { AgentHaltedError } from "../errors";
import type { LogFields, Logger, LogLevel } from "../logger";
import type { AuditEventInput, AuditSink, HaltCheckContext, HaltGuard } from "../ports";
import type { Store } from "../store";
import { StoreError } from "../store-errors";

/** A line a {@link recordingLogger} was told. */
export interface RecordedLogLine {
  level: LogLevel;
  message: string;
  /** The structured fields, when there were any. */
  fields?: LogFields;
}

/**
 * A logger that keeps what it was told, for assertions on warnings.
 *
 * @example
 * ```ts
 * const logger = recordingLogger();
 * const module = new LoopModule({ ...context, logger });
 * expect(logger.messages("warn")).toEqual([expect.stringContaining("spooled")]);
 * ```
 */
export function recordingLogger(): Logger & {
  /** Every line, as level and message. */
  lines: { level: LogLevel; message: string }[];
  /** Every line with its structured fields, when there were any. */
  entries: RecordedLogLine[];
  /** The messages of one level (every level when none is given), in order. */
  messages(level?: LogLevel): string[];
} {
  const lines: { level: LogLevel; message: string }[] = [];
  const entries: RecordedLogLine[] = [];
  const at = (level: LogLevel) => (message: string, fields?: LogFields) => {
    lines.push({ level, message });
    entries.push(fields === undefined ? { level, message } : { level, message, fields });
  };
  return {
    lines,
    entries,
    messages: (level) =>
      lines
        .filter((line) => level === undefined || line.level === level)
        .map((line) => line.message),
    debug: at("debug"),
    info: at("info"),
    warn: at("warn"),
    error: at("error"),
  };
}

/** Options of {@link recordingAuditSink}. */
export interface RecordingAuditSinkOptions {
  /**
   * Whether `log()` resolves (and records) on a later turn of the event loop, as a real
   * sink's does; false records at once, in the call. @default true
   */
  deferred?: boolean;
}

/**
 * An audit sink that keeps every event it is given, for assertions on what was recorded.
 * Each `log()` resolves on a later turn of the event loop, as a real sink's does (unless
 * `deferred: false`).
 *
 * @example
 * ```ts
 * const audit = recordingAuditSink();
 * await loop.record("billing-agent", call);
 * expect(audit.kinds()).toEqual(["loop.detected"]);
 * ```
 */
export function recordingAuditSink(options: RecordingAuditSinkOptions = {}): AuditSink & {
  events: AuditEventInput[];
  /** The kinds of the events, in order. */
  kinds(): string[];
} {
  const deferred = options.deferred ?? true;
  const events: AuditEventInput[] = [];
  return {
    events,
    kinds: () => events.map((event) => event.kind),
    async log(event) {
      if (deferred) await new Promise((resolve) => setImmediate(resolve));
      events.push(event);
      return { eventId: `event-${events.length}`, isPlaceholder: false };
    },
  };
}

/**
 * A halt guard that refuses the agents in `halted` (as an operator's halt would) and
 * remembers every check it was asked to make, for asserting that the halt check came first.
 */
export function recordingHaltGuard(halted: Iterable<string> = []): HaltGuard & {
  halted: Set<string>;
  calls: { agentId: string; context: HaltCheckContext }[];
} {
  const set = new Set(halted);
  const calls: { agentId: string; context: HaltCheckContext }[] = [];
  return {
    halted: set,
    calls,
    async assertAlive(agentId, context) {
      calls.push({ agentId, context });
      if (set.has(agentId)) {
        throw new AgentHaltedError({
          agentId,
          haltedBy: "operator@example.com",
          reason: "runaway spend",
          path: context.path,
        });
      }
    },
  };
}

/** A store whose every call fails as a refused connection would: a database that is down. */
export function unreachableStore(): Store {
  const fail = async () => {
    throw new Error("connect ECONNREFUSED 127.0.0.1:5432");
  };
  const db = new Proxy(
    {},
    {
      get: () => () => {
        throw new Error("connect ECONNREFUSED 127.0.0.1:5432");
      },
    },
  );
  return {
    engine: "postgres",
    description: "an unreachable Postgres",
    directory: null,
    db,
    closed: false,
    query: fail,
    transaction: fail,
    listen: fail,
    notify: fail,
    health: fail,
    close: async () => {},
    [Symbol.asyncDispose]: async () => {},
  } as unknown as Store;
}

/**
 * A store that can be made unreachable: while `down`, every query and transaction fails
 * as a lost connection would (`STORE_CONNECTION`), and nothing reaches the database.
 */
export function flakyStore(store: Store): { store: Store; setDown(down: boolean): void } {
  let down = false;
  const refuse = () =>
    Promise.reject(
      new StoreError({
        kind: "connection",
        message: "Could not reach the database (ECONNREFUSED).",
      }),
    );
  const wrapped: Store = Object.create(store, {
    query: {
      value: (query: Parameters<Store["query"]>[0]) => (down ? refuse() : store.query(query)),
    },
    transaction: {
      value: (
        work: Parameters<Store["transaction"]>[0],
        options: Parameters<Store["transaction"]>[1],
      ) => (down ? refuse() : store.transaction(work, options)),
    },
  });
  return {
    store: wrapped,
    setDown: (value) => {
      down = value;
    },
  };
}

/** A store whose matching statements can be held at a gate ({@link gatedStore}). */
export interface GatedStore {
  store: Store;
  /** Hold every statement whose text matches from now on, until the returned function is called. */
  hold(): () => void;
  /** Statements held so far. */
  held(): number;
}

/**
 * A store whose statements matching `pattern` (their SQL text) wait while the gate is held;
 * everything else goes straight through. For tests that need a write to be in flight at a
 * known moment (a usage record still on its way when the next check runs).
 */
export function gatedStore(store: Store, pattern: RegExp): GatedStore {
  const dialect = new PgDialect();
  let gate: Promise<void> | null = null;
  let held = 0;
  const wrapped: Store = Object.create(store, {
    query: {
      value: async (query: Parameters<Store["query"]>[0]) => {
        if (gate !== null && pattern.test(dialect.sqlToQuery(query).sql)) {
          held++;
          await gate;
        }
        return store.query(query);
      },
    },
  });
  return {
    store: wrapped,
    hold: () => {
      let open: () => void = () => undefined;
      const current = new Promise<void>((resolve) => {
        open = resolve;
      });
      gate = current;
      return () => {
        if (gate === current) gate = null;
        open();
      };
    },
    held: () => held,
  };
}
