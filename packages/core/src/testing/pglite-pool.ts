/**
 * Per-test embedded databases: booted from a migrated archive made once per set of
 * migrations, and recycled (wiped and migrated again) when a test closes its store.
 * @module
 */
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { sql } from "drizzle-orm";
import { storeOptionsSchema } from "../config";
import { parseDatabaseUrl } from "../database-url";
import { type Logger, silentLogger } from "../logger";
import { type MigrationSource, runMigrations } from "../migrations";
import {
  defaultTemplateCacheDirectory,
  ensurePgliteTemplate,
  installedPgliteVersion,
} from "../pglite-template";
import type { HealthReport, Store, Subscription } from "../store";
import { StoreError } from "../store-errors";
import { openPgliteStore } from "../store-pglite";
import type { TestStore } from "./engines";

const pgliteTemplates = new Map<string, Promise<string>>();

/** An archive of a fresh embedded database with `migrations` applied, made once per set. */
async function migratedPgliteTemplate(
  id: string,
  migrations: readonly MigrationSource[],
): Promise<string> {
  let pending = pgliteTemplates.get(id);
  if (!pending) {
    pending = (async () => {
      // Keyed by the PGlite version too (a data directory belongs to one version), in the
      // user's own cache rather than a shared temporary folder.
      const folder = join(defaultTemplateCacheDirectory(), "test-templates");
      const file = join(folder, `pglite-${installedPgliteVersion()}-${id}.tar.gz`);
      if (existsSync(file)) return file;
      const base = await ensurePgliteTemplate();
      const config = storeOptionsSchema.parse({ databaseUrl: "memory://" });
      const target = parseDatabaseUrl("memory://");
      if (target?.engine !== "pglite") throw new Error("unreachable");
      const store = await openPgliteStore(target, config, silentLogger, { template: base });
      try {
        await runMigrations(store, migrations);
        const archive = await (store as unknown as { dump(): Promise<ArrayBuffer> }).dump();
        await mkdir(folder, { recursive: true, mode: 0o700 });
        const staging = `${file}.${process.pid}-${randomBytes(4).toString("hex")}`;
        await writeFile(staging, Buffer.from(archive));
        await rename(staging, file);
      } finally {
        await store.close();
      }
      return file;
    })();
    pgliteTemplates.set(id, pending);
    pending.catch(() => pgliteTemplates.delete(id));
  }
  return pending;
}

const RESET_SQL = `
do $$
declare s text;
begin
  for s in select nspname from pg_namespace
    where nspname not in ('pg_catalog', 'information_schema', 'pg_toast')
      and nspname not like 'pg_temp%' and nspname not like 'pg_toast_temp%'
  loop
    execute format('drop schema %I cascade', s);
  end loop;
end $$
`;

const idlePglite = new Map<string, Store[]>();

async function bootPglite(
  id: string,
  migrations: readonly MigrationSource[],
  logger: Logger,
): Promise<Store> {
  const template =
    migrations.length === 0
      ? await ensurePgliteTemplate()
      : await migratedPgliteTemplate(id, migrations);
  const config = storeOptionsSchema.parse({ databaseUrl: "memory://" });
  const target = parseDatabaseUrl("memory://");
  if (target?.engine !== "pglite") throw new Error("unreachable");
  return openPgliteStore(target, config, logger, { template });
}

/**
 * An embedded database for one test. Booting PGlite costs most of a second of CPU, so each
 * test process keeps its instances: when a test closes its store, the database is wiped
 * (every schema dropped, session state discarded) and migrated again, then handed to the
 * next test, which sees a database as fresh as a new one.
 */
export async function pooledPgliteStore(
  id: string,
  migrations: readonly MigrationSource[],
  logger: Logger,
): Promise<TestStore> {
  const idle = idlePglite.get(id) ?? [];
  idlePglite.set(id, idle);
  let inner = idle.pop();
  if (inner && !(await inner.health()).ok) {
    await inner.close();
    inner = undefined;
  }
  const store = inner ?? (await bootPglite(id, migrations, logger));
  const subscriptions = new Set<Subscription>();
  let closing: Promise<void> | null = null;
  const recycle = async () => {
    for (const subscription of subscriptions) await subscription.unsubscribe();
    try {
      if (store.closed) return;
      await store.query(sql.raw(RESET_SQL));
      await store.query(sql.raw("create schema public"));
      await store.query(sql.raw("discard all"));
      await runMigrations(store, migrations);
      idle.push(store);
    } catch {
      await store.close();
    }
  };
  const facade: TestStore = {
    engineName: "pglite",
    connectionString: null,
    engine: "pglite",
    description: store.description,
    directory: store.directory,
    db: store.db,
    get closed() {
      return closing !== null || store.closed;
    },
    query: (query) => (closing ? Promise.reject(closedError()) : store.query(query)),
    transaction: (work, options) =>
      closing ? Promise.reject(closedError()) : store.transaction(work, options),
    listen: async (channel, handler, options) => {
      if (closing) throw closedError();
      const subscription = await store.listen(channel, handler, options);
      subscriptions.add(subscription);
      return subscription;
    },
    notify: (channel, payload) =>
      closing ? Promise.reject(closedError()) : store.notify(channel, payload),
    health: async (options) =>
      closing ? { ...(await closedHealth(store)) } : store.health(options),
    close: () => {
      closing ??= recycle();
      return closing;
    },
    [Symbol.asyncDispose]: () => facade.close(),
  };
  return facade;
}

function closedError(): StoreError {
  return new StoreError({ kind: "closed", message: "The store is closed." });
}

async function closedHealth(store: Store): Promise<HealthReport> {
  const error = closedError();
  return {
    ok: false,
    engine: store.engine,
    description: store.description,
    latencyMs: null,
    error: { code: error.code, message: error.message },
  };
}
