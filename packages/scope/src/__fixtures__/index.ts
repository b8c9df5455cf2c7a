import { randomBytes } from "node:crypto";
import {
  ChainKey,
  type HaltGuard,
  Keyring,
  type LogFields,
  type Logger,
  type Store,
  silentLogger,
} from "@gov/core";
import {
  createTestStore,
  recordingAuditSink as recordingAudit,
  recordingHaltGuard,
  type TestEngine,
  type TestStore,
  unreachableStore,
} from "@gov/core/testing";
import { ScopeModule, type ScopeOptions, scopeMigrations } from "../module";

export { recordingAudit, unreachableStore };

/** A HaltGuard that refuses the agents in `halted`, and remembers what it was asked. */
export const fakeHalt = recordingHaltGuard;

export { recordingLogger } from "@gov/core/testing";

/** A fresh chain-key secret (48 random bytes, base64url). */
export function randomSecret(): string {
  return randomBytes(48).toString("base64url");
}

/** A keyring of one fresh random key. */
export function testKeyring(secret = randomSecret()): Keyring {
  return new Keyring(new ChainKey(secret));
}

/** One line a {@link fieldLogger} was told. */
export interface LoggedLine {
  level: "debug" | "info" | "warn" | "error";
  message: string;
  fields: LogFields | undefined;
}

/** A logger that keeps every line with its fields, for assertions on warnings. */
export function fieldLogger(): Logger & { lines: LoggedLine[] } {
  const lines: LoggedLine[] = [];
  const at = (level: LoggedLine["level"]) => (message: string, fields?: LogFields) => {
    lines.push({ level, message, fields });
  };
  return { lines, debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") };
}

/** A module without a database (policies in memory only), and its recording ports. */
export function memoryScope(options: { halted?: Iterable<string>; logger?: Logger } = {}) {
  const audit = recordingAudit();
  const halt = fakeHalt(options.halted);
  const scope = new ScopeModule(
    { store: unreachableStore(), logger: options.logger ?? silentLogger, audit, halt },
    { persist: false },
  );
  return { scope, audit, halt };
}

/** What a module of a {@link ScopeHarness} is made with, besides the shared store and key. */
export interface HarnessPorts {
  /** Another store than the harness's (e.g. a {@link countingReads} wrapper of it). */
  store?: Store;
  logger?: Logger;
  audit?: ReturnType<typeof recordingAudit>;
  keyring?: Keyring;
  /** The halt guard (a fresh {@link fakeHalt} that halts nobody, unless given). */
  halt?: HaltGuard;
}

export interface ScopeHarness {
  store: TestStore;
  audit: ReturnType<typeof recordingAudit>;
  /** The secret of {@link ScopeHarness.keyring}'s key, to check that it never leaks. */
  secret: string;
  /** The keyring every module of the harness signs and verifies with (unless given another). */
  keyring: Keyring;
  /** A started module on the store (no polling unless asked). */
  make(options?: ScopeOptions, ports?: HarnessPorts): Promise<ScopeModule>;
  close(): Promise<void>;
}

/** How many reads of policies a store was asked for, and how many ran at once at most. */
export interface ReadCounts {
  started: number;
  inFlight: number;
  maxInFlight: number;
}

/**
 * A store that counts the `db.select` queries run through it (the module's policy reads):
 * how many started, and the most that were in flight at once.
 */
export function countingReads(store: Store): { store: Store; reads: ReadCounts } {
  const reads: ReadCounts = { started: 0, inFlight: 0, maxInFlight: 0 };
  const done = () => {
    reads.inFlight--;
  };
  const track = (builder: object): object =>
    new Proxy(builder, {
      get(target, property) {
        const value: unknown = Reflect.get(target, property, target);
        if (typeof value !== "function") return value;
        if (property === "then") {
          return (resolve?: (value: unknown) => unknown, reject?: (error: unknown) => unknown) => {
            reads.started++;
            reads.inFlight++;
            reads.maxInFlight = Math.max(reads.maxInFlight, reads.inFlight);
            return value.call(
              target,
              (result: unknown) => {
                done();
                return resolve ? resolve(result) : result;
              },
              (error: unknown) => {
                done();
                if (reject) return reject(error);
                throw error;
              },
            );
          };
        }
        return (...args: unknown[]) => {
          const out: unknown = value.apply(target, args);
          return typeof out === "object" && out !== null ? track(out) : out;
        };
      },
    });
  const db = new Proxy(store.db, {
    get(target, property) {
      const value: unknown = Reflect.get(target, property, target);
      if (property === "select" && typeof value === "function")
        return (...args: unknown[]) => track(value.apply(target, args));
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  const counted: Store = {
    engine: store.engine,
    description: store.description,
    directory: store.directory,
    db,
    get closed() {
      return store.closed;
    },
    query: (query) => store.query(query),
    transaction: (work, options) => store.transaction(work, options),
    listen: (channel, handler, options) => store.listen(channel, handler, options),
    notify: (channel, payload) => store.notify(channel, payload),
    health: (options) => store.health(options),
    close: () => store.close(),
    [Symbol.asyncDispose]: () => store.close(),
  };
  return { store: counted, reads };
}

/** A fresh database with the scope schema, and modules on it. */
export async function scopeHarness(engine: TestEngine): Promise<ScopeHarness> {
  const store = await createTestStore(engine, { migrations: [scopeMigrations] });
  const audit = recordingAudit();
  const secret = randomSecret();
  const keyring = testKeyring(secret);
  const modules: ScopeModule[] = [];
  return {
    store,
    audit,
    secret,
    keyring,
    async make(options = {}, ports = {}) {
      const scope = new ScopeModule(
        {
          store: ports.store ?? store,
          keyring: ports.keyring ?? keyring,
          logger: ports.logger ?? silentLogger,
          audit: ports.audit ?? audit,
          halt: ports.halt ?? fakeHalt(),
        },
        { pollIntervalMs: null, ...options },
      );
      modules.push(scope);
      await scope.start();
      return scope;
    },
    async close() {
      for (const scope of modules) await scope.close();
      await store.close();
    },
  };
}
