import { type Logger, silentLogger } from "@gov/core";
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
