import {
  AgentHaltedError,
  type HaltCheckContext,
  type HaltGuard,
  type Logger,
  type Store,
  silentLogger,
} from "@gov/core";
import {
  createTestStore,
  recordingAuditSink as recordingAudit,
  type TestEngine,
  type TestStore,
} from "@gov/core/testing";
import { ScopeModule, type ScopeOptions, scopeMigrations } from "../module";

export { recordingAudit };

/** A HaltGuard that refuses the agents in `halted`, and remembers what it was asked. */
export function fakeHalt(halted: Iterable<string> = []): HaltGuard & {
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

export { recordingLogger } from "@gov/core/testing";

/** A store whose every call fails: a database that is down. */
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

export interface ScopeHarness {
  store: TestStore;
  audit: ReturnType<typeof recordingAudit>;
  /** A started module on the store (no polling unless asked). */
  make(options?: ScopeOptions): Promise<ScopeModule>;
  close(): Promise<void>;
}

/** A fresh database with the scope schema, and modules on it. */
export async function scopeHarness(engine: TestEngine): Promise<ScopeHarness> {
  const store = await createTestStore(engine, { migrations: [scopeMigrations] });
  const audit = recordingAudit();
  const modules: ScopeModule[] = [];
  return {
    store,
    audit,
    async make(options = {}) {
      const scope = new ScopeModule(
        { store, logger: silentLogger, audit, halt: fakeHalt() },
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
