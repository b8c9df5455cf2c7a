import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  ChainKey,
  Keyring,
  type Logger,
  ManualClock,
  type Store,
  silentLogger,
  sql,
} from "@gov/core";
import { createTestStore, type TestEngine, type TestStore, thrown } from "@gov/core/testing";
import { afterEach, beforeEach } from "vitest";
import { ChainIntegrityError } from "../errors";
import { AuditModule, type AuditOptions, auditMigrations } from "../module";

export const SECRET_A = "audit-key-A-0123456789-abcdefghijklmnopqrstuv";
export const SECRET_B = "audit-key-B-9876543210-ZYXWVUTSRQPONMLKJIHGFE";

export interface AuditHarness {
  store: TestStore;
  audit: AuditModule;
  keyring: Keyring;
  clock: ManualClock;
  spoolDirectory: string;
  /** Another module on the same store, e.g. with another keyring. */
  another(options?: {
    keyring?: Keyring;
    store?: Store;
    audit?: AuditOptions;
    logger?: Logger;
  }): AuditModule;
  close(): Promise<void>;
}

/** Options of {@link auditHarness}: the module's, and the logger it writes to. */
export type AuditHarnessOptions = AuditOptions & { logger?: Logger };

/** A fresh database with the audit schema, and a module on it. */
export async function auditHarness(
  engine: TestEngine,
  { logger, ...options }: AuditHarnessOptions = {},
): Promise<AuditHarness> {
  const store = await createTestStore(engine, { migrations: [auditMigrations] });
  const keyring = new Keyring(new ChainKey(SECRET_A));
  const clock = new ManualClock(new Date("2026-01-01T00:00:00.000Z"));
  const spoolDirectory = await mkdtemp(join(tmpdir(), "gov-audit-spool-"));
  const modules: AuditModule[] = [];
  const make = (
    extra: { keyring?: Keyring; store?: Store; audit?: AuditOptions; logger?: Logger } = {},
  ) => {
    const module = new AuditModule(
      {
        store: extra.store ?? store,
        keyring: extra.keyring ?? keyring,
        clock,
        logger: extra.logger ?? logger ?? silentLogger,
      },
      { spoolDirectory, retryIntervalMs: 20, ...options, ...extra.audit },
    );
    modules.push(module);
    return module;
  };
  const audit = make();
  return {
    store,
    audit,
    keyring,
    clock,
    spoolDirectory,
    another: make,
    close: async () => {
      for (const module of modules) await module.close();
      await store.close();
      await rm(spoolDirectory, { recursive: true, force: true });
    },
  };
}

/**
 * A fresh {@link auditHarness} before each test of a `describe.each(testEngines())` block (none
 * on an engine that is not available), closed after it. Call it in the block's body; what it
 * returns stands for the current test's harness, so read it only inside tests. `options` may be
 * a function, called before each test (on every engine), to give each test its own logger:
 *
 * ```ts
 * let logger: ReturnType<typeof recordingLogger>;
 * const h = useAuditHarness(engine, () => {
 *   logger = recordingLogger();
 *   return { logger };
 * });
 * ```
 */
export function useAuditHarness(
  engine: TestEngine,
  options: AuditHarnessOptions | (() => AuditHarnessOptions) = {},
): AuditHarness {
  let current: AuditHarness | undefined;
  beforeEach(async () => {
    const resolved = typeof options === "function" ? options() : options;
    if (engine.available) current = await auditHarness(engine, resolved);
  });
  afterEach(async () => {
    const closing = current;
    current = undefined;
    await closing?.close();
  });
  const harness = (): AuditHarness => {
    if (current === undefined) {
      throw new Error(
        `There is no audit harness here (${engine.name}): it exists only inside a test, on an available engine.`,
      );
    }
    return current;
  };
  return {
    get store() {
      return harness().store;
    },
    get audit() {
      return harness().audit;
    },
    get keyring() {
      return harness().keyring;
    },
    get clock() {
      return harness().clock;
    },
    get spoolDirectory() {
      return harness().spoolDirectory;
    },
    another: (extra) => harness().another(extra),
    close: () => harness().close(),
  };
}

/**
 * Change the chain as a superuser would: triggers off for this transaction, unique indexes
 * dropped so that forks and duplicates can be written.
 */
export async function tamper(store: Store, statements: readonly string[]): Promise<void> {
  await store.transaction(async (tx) => {
    await tx.execute(sql.raw("set local session_replication_role = replica"));
    await tx.execute(sql.raw("drop index if exists gov_audit.events_chain_seq"));
    await tx.execute(sql.raw("drop index if exists gov_audit.events_chain_prev_hash"));
    await tx.execute(sql.raw("drop index if exists gov_audit.events_chain_root"));
    for (const statement of statements) await tx.execute(sql.raw(statement));
  });
}

/** The ChainIntegrityError `run` rejects with (anything else fails the test). */
export async function chainError(run: () => Promise<unknown>): Promise<ChainIntegrityError> {
  const error = await thrown(run);
  if (ChainIntegrityError.isInstance(error)) return error;
  throw error;
}

export { eventually, flakyStore, recordingLogger } from "@gov/core/testing";
