import {
  type AuditSink,
  ChainKey,
  createStore,
  type HaltGuard,
  Keyring,
  type Logger,
  ManualClock,
  type OperatorDirectory,
  type SQL,
  type Store,
  silentLogger,
  sql,
} from "@gov/core";
import {
  createTestStore,
  eventually,
  flakyStore,
  recordingAuditSink,
  type TestEngine,
  type TestStore,
  thrown,
} from "@gov/core/testing";
import { gatesMigrations } from "../definition";
import type { GatesOptions } from "../models";
import { GatesModule } from "../module";

export { eventually, flakyStore, recordingAuditSink, thrown };

/** Test secrets (strong enough for `ChainKey`); never real ones. */
export const SECRET_A = "gates-test-secret-A-0123456789-abcdefghijklmnopqrstuvwxyz";
export const SECRET_B = "gates-test-secret-B-9876543210-zyxwvutsrqponmlkjihgfedcba";
export const SECRET_C = "gates-test-secret-C-a1b2c3d4e5f6-ABCDEFGHIJKLMNOPQRSTUVWX";

/** A keyring whose current key is `current`, with `historical` behind it. */
export function keyringOf(current: string, ...historical: string[]): Keyring {
  return new Keyring(
    new ChainKey(current),
    historical.map((secret) => new ChainKey(secret)),
  );
}

/** A logger that keeps every line with its fields, serialized, for "never logged" checks. */
export function capturingLogger(): Logger & {
  lines: { level: string; message: string; fields: string }[];
  text(): string;
} {
  const lines: { level: string; message: string; fields: string }[] = [];
  const at = (level: string) => (message: string, fields?: Record<string, unknown>) => {
    lines.push({ level, message, fields: JSON.stringify(fields ?? {}) });
  };
  return {
    lines,
    text: () => lines.map((line) => `${line.level} ${line.message} ${line.fields}`).join("\n"),
    debug: at("debug"),
    info: at("info"),
    warn: at("warn"),
    error: at("error"),
  };
}

/** An operator directory from a map; `fail` makes every lookup throw. */
export function operatorsOf(
  bindings: Record<string, string>,
): OperatorDirectory & { fail: boolean; lookups: string[] } {
  const directory = {
    fail: false,
    lookups: [] as string[],
    async operatorOf(agentId: string) {
      directory.lookups.push(agentId);
      if (directory.fail) throw new Error("presence database unreachable");
      return bindings[agentId] ?? null;
    },
  };
  return directory;
}

export interface GatesHarness {
  store: TestStore;
  gates: GatesModule;
  clock: ManualClock;
  audit: ReturnType<typeof recordingAuditSink>;
  logger: ReturnType<typeof capturingLogger>;
  keyring: Keyring;
  operators: ReturnType<typeof operatorsOf>;
  /** Another module (a "process") on the same store or another, sharing the clock. */
  another(options?: {
    store?: Store;
    keyring?: Keyring;
    gates?: GatesOptions;
    audit?: AuditSink;
    halt?: HaltGuard;
    operators?: OperatorDirectory;
    logger?: Logger;
  }): GatesModule;
  close(): Promise<void>;
}

/** A fresh database with the gates schema, and a module on it (keys: SECRET_A). */
export async function gatesHarness(
  engine: TestEngine,
  options: GatesOptions = {},
): Promise<GatesHarness> {
  const store = await createTestStore(engine, { migrations: [gatesMigrations] });
  const clock = new ManualClock(new Date("2026-01-01T00:00:00.000Z"));
  const audit = recordingAuditSink();
  const logger = capturingLogger();
  const keyring = keyringOf(SECRET_A);
  const operators = operatorsOf({ "deploy-agent": "alice@company.com" });
  const modules: GatesModule[] = [];
  const make: GatesHarness["another"] = (extra = {}) => {
    const module = new GatesModule(
      {
        store: extra.store ?? store,
        keyring: extra.keyring ?? keyring,
        clock,
        logger: extra.logger ?? logger,
        audit: extra.audit ?? audit,
        ...(extra.halt ? { halt: extra.halt } : {}),
        operators: extra.operators ?? operators,
      },
      { ...options, ...extra.gates },
    );
    modules.push(module);
    // Started as a composition starts it (start() never rejects); waitFor awaits its subscription.
    void module.start();
    return module;
  };
  const gates = make();
  await gates.start();
  return {
    store,
    gates,
    clock,
    audit,
    logger,
    keyring,
    operators,
    another: make,
    close: async () => {
      for (const module of modules) await module.close();
      await store.close();
    },
  };
}

/** The error `run` throws when it is one of `errorClass` (any other fails the test). */
export async function thrownAs<E>(
  run: () => unknown,
  errorClass: (abstract new (...args: never[]) => E) & { isInstance(value: unknown): boolean },
): Promise<E> {
  const error = await thrown(run);
  if (!errorClass.isInstance(error)) throw error;
  return error as E;
}

/**
 * A store whose `query` goes through `query(statement, next)`; the other methods are the real
 * store's, bound (a Postgres store keeps its state in private fields).
 */
export function wrapQuery(
  store: Store,
  query: (statement: SQL, next: (statement: SQL) => Promise<unknown[]>) => Promise<unknown[]>,
): Store {
  return Object.create(store, {
    listen: { value: store.listen.bind(store) },
    notify: { value: store.notify.bind(store) },
    transaction: { value: store.transaction.bind(store) },
    query: { value: (statement: SQL) => query(statement, (next) => store.query(next)) },
  });
}

/**
 * A new login role on the test server (real Postgres), with a store connected as it to the
 * same database (trust authentication), and a `drop()` that closes the store and removes the
 * role and its privileges. Role names are server-wide: each gets a random suffix.
 */
export async function roleStore(
  admin: Store & { connectionString: string | null },
  name: string,
): Promise<{ role: string; store: Store; drop(): Promise<void> }> {
  const role = `gov_test_${name}_${Math.random().toString(16).slice(2, 12)}`;
  await admin.query(sql.raw(`create role ${role} login`));
  const url = new URL(admin.connectionString as string);
  url.username = role;
  url.password = "";
  const store = await createStore({ databaseUrl: url.toString(), logger: silentLogger });
  return {
    role,
    store,
    async drop() {
      await store.close();
      await admin.query(sql.raw(`reassign owned by ${role} to current_user`));
      await admin.query(sql.raw(`drop owned by ${role}`));
      await admin.query(sql.raw(`drop role ${role}`));
    },
  };
}

/**
 * A role that owns `gov_gates.requests` but is not a superuser (real Postgres): it may write
 * every row and drop the trigger, and holds no key — "a table owner" in the README's Security
 * section. `drop()` removes it (and gives the table back).
 */
export async function tableOwnerRole(
  admin: Store & { connectionString: string | null },
  name = "owner",
): Promise<{ role: string; store: Store; drop(): Promise<void> }> {
  const owner = await roleStore(admin, name);
  await admin.query(sql.raw(`grant usage, create on schema gov_gates to ${owner.role}`));
  await admin.query(sql.raw(`alter table gov_gates.requests owner to ${owner.role}`));
  return owner;
}
