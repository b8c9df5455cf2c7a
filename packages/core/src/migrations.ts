import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { sql } from "drizzle-orm";
import { z } from "zod";
import { CORE_ERROR_CODES, GovernanceError, InvalidArgumentError } from "./errors";
import { parseOptions } from "./input";
import { type Logger, loggerSchema } from "./logger";
import { acquireTransactionLock, type GovTransaction, type Store } from "./store";
import { StoreError, toStoreError } from "./store-errors";

/** Name of the table, in each module's own schema, that records its applied migrations. */
export const MIGRATIONS_TABLE = "__migrations";

const MODULE_NAME = /^[a-z][a-z0-9_]{0,39}$/;
const BREAKPOINT = "--> statement-breakpoint";

/**
 * What a module contributes to the migrations runner: its name (its data lives in the
 * Postgres schema `gov_<name>`) and the folder of SQL that drizzle-kit generated from its
 * `schema.ts`.
 *
 * @example
 * ```ts
 * export const auditMigrations: MigrationSource = {
 *   name: "audit",
 *   migrationsFolder: new URL("../drizzle", import.meta.url),
 * };
 * ```
 */
export interface MigrationSource {
  /** Lower-case module name; the schema is `gov_<name>`. */
  name: string;
  /** drizzle-kit's output folder (SQL files and `meta/_journal.json`). */
  migrationsFolder: string | URL;
}

/** One migration file, as shipped with the code. */
export interface Migration {
  /** Position in the module's journal, from 0. */
  index: number;
  /** drizzle-kit's tag, e.g. `0000_create_events`. */
  tag: string;
  /** SHA-256 (hex) of the SQL file. */
  hash: string;
  /** The statements, in order. */
  statements: string[];
}

/** One module's part of a {@link MigrationReport}. */
export interface ModuleMigrationReport {
  module: string;
  schema: string;
  /** Tags already in the database before this run. */
  alreadyApplied: string[];
  /** Tags applied by this run (empty on a dry run). */
  applied: string[];
  /** Tags a dry run would apply (empty on a real run). */
  pending: string[];
}

/** What {@link runMigrations} did, or would do. */
export interface MigrationReport {
  dryRun: boolean;
  modules: ModuleMigrationReport[];
}

/** A migration could not be planned or applied. Nothing was changed. */
export class MigrationError extends GovernanceError {
  static override readonly errorIdentity: string = "@gov/core.MigrationError";

  /** The module whose migrations failed. */
  readonly module: string;
  /** The migration at fault, when there is one. */
  readonly tag: string | undefined;

  constructor(options: {
    code: string;
    module: string;
    tag?: string;
    message: string;
    recoveryHint: string;
    cause?: unknown;
  }) {
    super(options);
    this.name = "MigrationError";
    this.module = options.module;
    this.tag = options.tag;
  }
}

const journalSchema = z.object({
  entries: z.array(
    z.object({
      idx: z.int().min(0),
      tag: z.string().regex(/^[\w-]+$/),
      breakpoints: z.boolean().optional(),
    }),
  ),
});

function folderPath(folder: string | URL): string {
  return folder instanceof URL ? fileURLToPath(folder) : folder;
}

/** The schema a module's tables live in. */
export function moduleSchema(name: string): string {
  return `gov_${name}`;
}

function invalidSource(module: string, message: string, cause?: unknown): MigrationError {
  return new MigrationError({
    code: CORE_ERROR_CODES.MIGRATION_SOURCE_INVALID,
    module,
    message,
    recoveryHint: "Regenerate the folder with drizzle-kit generate, or reinstall the package.",
    cause,
  });
}

/**
 * Read a module's migrations from its folder.
 * @throws {MigrationError} `MIGRATION_SOURCE_INVALID` when the folder is missing or malformed.
 */
export async function loadMigrations(source: MigrationSource): Promise<Migration[]> {
  if (!MODULE_NAME.test(source.name)) {
    throw invalidSource(
      source.name,
      `Module name ${JSON.stringify(source.name)} is not a lower-case identifier of at most 40 characters.`,
    );
  }
  const folder = folderPath(source.migrationsFolder);
  let journalText: string;
  try {
    journalText = await readFile(join(folder, "meta", "_journal.json"), "utf8");
  } catch (error) {
    throw invalidSource(
      source.name,
      `The migrations folder of module "${source.name}" has no meta/_journal.json (${folder}).`,
      error,
    );
  }
  let journal: z.infer<typeof journalSchema>;
  try {
    journal = journalSchema.parse(JSON.parse(journalText));
  } catch (error) {
    throw invalidSource(
      source.name,
      `The migrations journal of module "${source.name}" is malformed (${folder}).`,
      error,
    );
  }
  const entries = [...journal.entries].sort((a, b) => a.idx - b.idx);
  return Promise.all(
    entries.map(async (entry, position) => {
      if (entry.idx !== position) {
        throw invalidSource(
          source.name,
          `The migrations journal of module "${source.name}" skips index ${position}.`,
        );
      }
      let text: string;
      try {
        text = await readFile(join(folder, `${entry.tag}.sql`), "utf8");
      } catch (error) {
        throw invalidSource(
          source.name,
          `Migration ${entry.tag}.sql of module "${source.name}" is missing.`,
          error,
        );
      }
      return {
        index: entry.idx,
        tag: entry.tag,
        hash: createHash("sha256").update(text).digest("hex"),
        statements: text
          .split(BREAKPOINT)
          .map((statement) => statement.trim())
          .filter((statement) => statement.length > 0),
      };
    }),
  );
}

interface AppliedRow extends Record<string, unknown> {
  id: number;
  tag: string;
  hash: string;
}

async function readApplied(
  tx: GovTransaction,
  schema: string,
): Promise<AppliedRow[] | "no-schema" | "foreign-schema"> {
  const state = await tx.execute<{ has_schema: boolean; has_table: boolean }>(sql`
    select
      to_regclass(${`"${schema}"."${MIGRATIONS_TABLE}"`}) is not null as has_table,
      exists(select 1 from pg_namespace where nspname = ${schema}) as has_schema
  `);
  const row = state.rows[0];
  if (!row?.has_schema) return "no-schema";
  if (!row.has_table) {
    // A schema without our table: empty (someone made it for us), or not ours.
    const relations = await tx.execute<{ n: number }>(sql`
      select count(*)::int as n from pg_class c join pg_namespace n on n.oid = c.relnamespace where n.nspname = ${schema}
    `);
    return (relations.rows[0]?.n ?? 0) === 0 ? "no-schema" : "foreign-schema";
  }
  const applied = await tx.execute<AppliedRow>(
    sql`select id, tag, hash from ${sql.identifier(schema)}.${sql.identifier(MIGRATIONS_TABLE)} order by id`,
  );
  return applied.rows;
}

function checkHistory(
  module: string,
  schema: string,
  code: Migration[],
  applied: AppliedRow[],
): void {
  const known = new Map(code.map((migration) => [migration.tag, migration]));
  for (const [position, row] of applied.entries()) {
    const migration = known.get(row.tag);
    if (!migration || migration.index !== row.id) {
      throw new MigrationError({
        code: CORE_ERROR_CODES.MIGRATION_UNKNOWN,
        module,
        tag: row.tag,
        message: `Schema ${schema} holds migration ${row.tag}, which this version of the "${module}" module does not know: the database was migrated by a newer release. Nothing was changed.`,
        recoveryHint: `Upgrade the package that provides the "${module}" module to the release that migrated this database (or newer), or point GOVERNANCE_DATABASE_URL at the database this release belongs to.`,
      });
    }
    if (migration.hash !== row.hash) {
      throw new MigrationError({
        code: CORE_ERROR_CODES.MIGRATION_CHECKSUM_MISMATCH,
        module,
        tag: row.tag,
        message: `Migration ${row.tag} of schema ${schema} was applied from a different file than the one this release ships (checksum mismatch). Nothing was changed.`,
        recoveryHint:
          "Released migrations must never be edited: restore the original file, and put the change in a new migration.",
      });
    }
    if (row.id !== position) {
      throw new MigrationError({
        code: CORE_ERROR_CODES.MIGRATION_HISTORY_INVALID,
        module,
        tag: row.tag,
        message: `The migration history of schema ${schema} has a gap before ${row.tag}. Nothing was changed.`,
        recoveryHint: "Restore the database's migrations table, or migrate a fresh database.",
      });
    }
  }
}

/** Options of {@link runMigrations}. */
const runMigrationsOptionsSchema = z.object({
  dryRun: z.boolean().optional(),
  logger: loggerSchema.optional(),
});

export interface RunMigrationsOptions {
  /** List what would be applied, apply nothing. @default false */
  dryRun?: boolean;
  /** Where to log applied migrations. */
  logger?: Logger;
}

/**
 * Apply the pending migrations of the given modules.
 *
 * Each module keeps its own migrations table (`gov_<name>.__migrations`), so the histories
 * of modules never mix. The whole run is one transaction holding one advisory lock per
 * module (taken in name order), so any number of processes can start at once: one applies,
 * the others wait and then find nothing to do. It runs at READ COMMITTED whatever the
 * database's default, so that a process that waited sees what the winner committed. Before anything is applied, every module's
 * history is checked against the code: a migration the code does not know (the database is
 * newer than the code), or a changed file, refuses the run and nothing is changed.
 *
 * @example
 * ```ts
 * const plan = await runMigrations(store, [auditMigrations], { dryRun: true });
 * console.log(plan.modules[0]?.pending);
 * await runMigrations(store, [auditMigrations]);
 * ```
 * @throws {MigrationError} `MIGRATION_UNKNOWN`, `MIGRATION_CHECKSUM_MISMATCH`,
 *   `MIGRATION_SOURCE_INVALID` or `MIGRATION_FAILED`.
 */
export async function runMigrations(
  store: Store,
  sources: readonly MigrationSource[],
  options: RunMigrationsOptions = {},
): Promise<MigrationReport> {
  if (typeof (store as Partial<Store> | null)?.transaction !== "function")
    throw new InvalidArgumentError(
      "store",
      "must be a @gov/core Store.",
      "Open one with createStore() and pass it first.",
    );
  if (!Array.isArray(sources))
    throw new InvalidArgumentError(
      "sources",
      `must be an array of migration sources, got ${sources === null ? "null" : typeof sources}.`,
      "Pass the modules' migration sources, e.g. [auditModule.migrations].",
    );
  const parsed = parseOptions(runMigrationsOptionsSchema, options, {
    fixes: { "": "Pass { dryRun?, logger? }, or nothing." },
  });
  const names = new Set<string>();
  for (const source of sources) {
    if (names.has(source.name))
      throw invalidSource(source.name, `Module "${source.name}" was listed twice.`);
    names.add(source.name);
  }
  const ordered = [...sources].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const loaded = await Promise.all(
    ordered.map(async (source) => ({ source, migrations: await loadMigrations(source) })),
  );
  const dryRun = parsed.dryRun === true;
  const rollback = Symbol("dry run");
  let report: MigrationReport | undefined;
  try {
    await store.transaction(
      async (tx) => {
        const plans: {
          module: string;
          schema: string;
          code: Migration[];
          applied: AppliedRow[];
        }[] = [];
        for (const { source, migrations } of loaded) {
          await acquireTransactionLock(tx, `gov:migrations:${source.name}`);
          const schema = moduleSchema(source.name);
          const state = await readApplied(tx, schema);
          if (state === "foreign-schema") {
            throw new MigrationError({
              code: CORE_ERROR_CODES.MIGRATION_UNKNOWN,
              module: source.name,
              message: `Schema ${schema} exists and holds tables, but has no ${MIGRATIONS_TABLE} table: it was not created by the "${source.name}" module's migrations. Nothing was changed.`,
              recoveryHint: `Use a database where ${schema} belongs to @gov, or drop the unrelated schema.`,
            });
          }
          const applied = state === "no-schema" ? [] : state;
          checkHistory(source.name, schema, migrations, applied);
          plans.push({ module: source.name, schema, code: migrations, applied });
        }
        const modules: ModuleMigrationReport[] = [];
        for (const plan of plans) {
          const pending = plan.code.slice(plan.applied.length);
          const done: string[] = [];
          if (!dryRun) {
            for (const migration of pending) {
              await applyMigration(tx, plan.module, plan.schema, migration);
              done.push(migration.tag);
            }
          }
          modules.push({
            module: plan.module,
            schema: plan.schema,
            alreadyApplied: plan.applied.map((row) => row.tag),
            applied: done,
            pending: dryRun ? pending.map((migration) => migration.tag) : [],
          });
        }
        report = { dryRun, modules };
        // A dry run takes the same locks and reads, then leaves everything as it was.
        if (dryRun) throw rollback;
      },
      { isolationLevel: "read committed" },
    );
  } catch (error) {
    if (error !== rollback) throw error;
  }
  if (!report) throw new Error("unreachable: migrations finished without a report");
  // Said once per schema, and only after the transaction committed: a rolled-back run
  // applied nothing.
  if (!report.dryRun) {
    for (const module of report.modules) {
      if (module.applied.length > 0)
        parsed.logger?.info(`Migrated ${module.schema}: ${module.applied.join(", ")}.`);
    }
  }
  return report;
}

async function applyMigration(
  tx: GovTransaction,
  module: string,
  schema: string,
  migration: Migration,
): Promise<void> {
  for (const [position, statement] of migration.statements.entries()) {
    try {
      await tx.execute(sql.raw(statement));
    } catch (error) {
      const classified = toStoreError(error);
      const detail = StoreError.isInstance(classified)
        ? classified.message
        : "the database refused it.";
      throw new MigrationError({
        code: CORE_ERROR_CODES.MIGRATION_FAILED,
        module,
        tag: migration.tag,
        message: `Statement ${position + 1} of migration ${migration.tag} (schema ${schema}) failed: ${detail} Every migration of this run was rolled back.`,
        recoveryHint: "Fix the migration or the database state it depends on, then start again.",
        cause: classified,
      });
    }
  }
  try {
    await tx.execute(
      sql.raw(
        `create table if not exists "${schema}"."${MIGRATIONS_TABLE}" (id integer primary key, tag text not null unique, hash text not null, applied_at timestamptz not null default now())`,
      ),
    );
  } catch (error) {
    const classified = toStoreError(error);
    const missingSchema = StoreError.isInstance(classified) && classified.sqlState === "3F000";
    throw new MigrationError({
      code: missingSchema
        ? CORE_ERROR_CODES.MIGRATION_SOURCE_INVALID
        : CORE_ERROR_CODES.MIGRATION_FAILED,
      module,
      tag: migration.tag,
      message: missingSchema
        ? `After migration ${migration.tag}, schema ${schema} does not exist: the first migration of module "${module}" must create it.`
        : `Recording migration ${migration.tag} in ${schema}.${MIGRATIONS_TABLE} failed: ${StoreError.isInstance(classified) ? classified.message : "the database refused it."} Every migration of this run was rolled back.`,
      recoveryHint: missingSchema
        ? `Declare the module's tables in pgSchema("${schema}") so that drizzle-kit generates CREATE SCHEMA.`
        : "Check that the database user may create tables in the module's schema, then start again.",
      cause: classified,
    });
  }
  await tx.execute(
    sql`insert into ${sql.identifier(schema)}.${sql.identifier(MIGRATIONS_TABLE)} (id, tag, hash) values (${migration.index}, ${migration.tag}, ${migration.hash})`,
  );
}
