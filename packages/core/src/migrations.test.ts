import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { sql } from "drizzle-orm";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { gadgetsMigrations, migrationsFolderCopy, widgetsMigrations } from "./__fixtures__";
import { silentLogger } from "./logger";
import { loadMigrations, MigrationError, runMigrations } from "./migrations";
import { createStore, type Store } from "./store";
import { createTestStore, type TestEngine, type TestStore, testEngines } from "./testing";

async function appliedTags(store: TestStore, schema: string): Promise<string[]> {
  const exists = await store.query<{ ok: boolean }>(
    sql`select to_regclass(${`"${schema}"."__migrations"`}) is not null as ok`,
  );
  if (!exists[0]?.ok) return [];
  const rows = await store.query<{ tag: string }>(
    sql.raw(`select tag from "${schema}"."__migrations" order by id`),
  );
  return rows.map((row) => row.tag);
}

async function columns(store: TestStore, schema: string, table: string): Promise<string[]> {
  const rows = await store.query<{ column_name: string }>(
    sql`select column_name from information_schema.columns where table_schema = ${schema} and table_name = ${table} order by ordinal_position`,
  );
  return rows.map((row) => row.column_name);
}

describe.each(testEngines())("migrations on $name", (engine: TestEngine) => {
  let store: TestStore;

  beforeEach(async () => {
    if (engine.available) store = await createTestStore(engine);
  });

  afterEach(async () => {
    await store?.close();
  });

  it.skipIf(!engine.available)(
    "applies each module's migrations into its own schema and migrations table",
    async () => {
      const report = await runMigrations(store, [widgetsMigrations, gadgetsMigrations]);
      expect(report.dryRun).toBe(false);
      expect(report.modules).toEqual([
        {
          module: "gadgets",
          schema: "gov_gadgets",
          alreadyApplied: [],
          applied: ["0000_create_gadgets"],
          pending: [],
        },
        {
          module: "widgets",
          schema: "gov_widgets",
          alreadyApplied: [],
          applied: ["0000_create_widgets", "0001_add_color"],
          pending: [],
        },
      ]);
      expect(await appliedTags(store, "gov_widgets")).toEqual([
        "0000_create_widgets",
        "0001_add_color",
      ]);
      expect(await appliedTags(store, "gov_gadgets")).toEqual(["0000_create_gadgets"]);
      expect(await columns(store, "gov_widgets", "widgets")).toEqual([
        "id",
        "name",
        "created_at",
        "color",
      ]);
    },
  );

  it.skipIf(!engine.available)("does nothing the second time", async () => {
    await runMigrations(store, [widgetsMigrations]);
    const again = await runMigrations(store, [widgetsMigrations]);
    expect(again.modules[0]).toMatchObject({
      alreadyApplied: ["0000_create_widgets", "0001_add_color"],
      applied: [],
    });
  });

  it.skipIf(!engine.available)("applies only what is new after an upgrade", async () => {
    const older = await migrationsFolderCopy(widgetsMigrations, 1);
    try {
      await runMigrations(store, [older.source]);
      expect(await columns(store, "gov_widgets", "widgets")).toEqual(["id", "name", "created_at"]);
      const upgrade = await runMigrations(store, [widgetsMigrations]);
      expect(upgrade.modules[0]).toMatchObject({
        alreadyApplied: ["0000_create_widgets"],
        applied: ["0001_add_color"],
      });
      expect(await columns(store, "gov_widgets", "widgets")).toContain("color");
    } finally {
      await older.remove();
    }
  });

  it.skipIf(!engine.available)("lists what a dry run would apply and changes nothing", async () => {
    const plan = await runMigrations(store, [widgetsMigrations], { dryRun: true });
    expect(plan).toEqual({
      dryRun: true,
      modules: [
        {
          module: "widgets",
          schema: "gov_widgets",
          alreadyApplied: [],
          applied: [],
          pending: ["0000_create_widgets", "0001_add_color"],
        },
      ],
    });
    const schemas = await store.query(
      sql`select 1 from pg_namespace where nspname = 'gov_widgets'`,
    );
    expect(schemas).toEqual([]);
  });

  it.skipIf(!engine.available)(
    "refuses a database that holds a migration the code does not know, changing nothing",
    async () => {
      await runMigrations(store, [widgetsMigrations]);
      const older = await migrationsFolderCopy(widgetsMigrations, 1);
      try {
        const error = await runMigrations(store, [older.source, gadgetsMigrations]).catch(
          (caught: unknown) => caught,
        );
        expect(error).toBeInstanceOf(MigrationError);
        expect(error).toMatchObject({
          code: "MIGRATION_UNKNOWN",
          module: "widgets",
          tag: "0001_add_color",
        });
        expect((error as MigrationError).message).toContain("newer release");
        expect((error as MigrationError).recoveryHint).toContain("Upgrade");
        // gadgets sorts first and had a pending migration: it was not applied either.
        expect(await appliedTags(store, "gov_gadgets")).toEqual([]);
        expect(await appliedTags(store, "gov_widgets")).toEqual([
          "0000_create_widgets",
          "0001_add_color",
        ]);
      } finally {
        await older.remove();
      }
    },
  );

  it.skipIf(!engine.available)("refuses an applied migration whose file changed", async () => {
    await runMigrations(store, [widgetsMigrations]);
    const edited = await migrationsFolderCopy(widgetsMigrations, 2, (tag, text) =>
      tag === "0001_add_color" ? text.replace("'blue'", "'red'") : text,
    );
    try {
      await expect(runMigrations(store, [edited.source])).rejects.toMatchObject({
        code: "MIGRATION_CHECKSUM_MISMATCH",
        tag: "0001_add_color",
      });
    } finally {
      await edited.remove();
    }
  });

  it.skipIf(!engine.available)("rolls every module back when a statement fails", async () => {
    const broken = await migrationsFolderCopy(widgetsMigrations, 2, (tag, text) =>
      tag === "0001_add_color"
        ? `${text}\n--> statement-breakpoint\nselect * from gov_widgets.no_such_table;`
        : text,
    );
    try {
      const error = await runMigrations(store, [gadgetsMigrations, broken.source]).catch(
        (caught: unknown) => caught,
      );
      expect(error).toMatchObject({
        code: "MIGRATION_FAILED",
        module: "widgets",
        tag: "0001_add_color",
      });
      expect((error as Error).message).toContain("Statement 2 of migration 0001_add_color");
      expect(
        await store.query(sql`select nspname from pg_namespace where nspname like 'gov_%'`),
      ).toEqual([]);
    } finally {
      await broken.remove();
    }
  });

  it.skipIf(!engine.available)(
    "refuses a schema of the same name that it did not create",
    async () => {
      await store.query(sql.raw(`create schema gov_widgets`));
      await store.query(sql.raw(`create table gov_widgets.unrelated (id int)`));
      await expect(runMigrations(store, [widgetsMigrations])).rejects.toMatchObject({
        code: "MIGRATION_UNKNOWN",
        module: "widgets",
      });
    },
  );

  it.skipIf(engine.name !== "postgres" || !engine.available)(
    "lets concurrent starts in one process agree: one applies, the others wait and find nothing to do",
    async () => {
      const url = store.connectionString as string;
      const stores = await Promise.all(
        Array.from({ length: 4 }, () =>
          createStore({ databaseUrl: url, logger: silentLogger, pool: { max: 2 } }),
        ),
      );
      try {
        const reports = await Promise.all(
          stores.map((each) => runMigrations(each, [widgetsMigrations, gadgetsMigrations])),
        );
        const appliedCounts = reports.map((report) =>
          report.modules.reduce((sum, module) => sum + module.applied.length, 0),
        );
        expect(appliedCounts.sort()).toEqual([0, 0, 0, 3]);
        expect(await appliedTags(store, "gov_widgets")).toEqual([
          "0000_create_widgets",
          "0001_add_color",
        ]);
      } finally {
        await Promise.all(stores.map((each) => each.close()));
      }
    },
  );

  // Regression: under a REPEATABLE READ default, a process that waited for the lock kept a
  // snapshot from before the winner's commit and failed with "schema already exists".
  it.skipIf(engine.name !== "postgres" || !engine.available)(
    "agrees under concurrency even when the database defaults to repeatable read",
    async () => {
      const [row] = await store.query<{ name: string }>(sql`select current_database() as name`);
      await store.query(
        sql.raw(
          `alter database "${row?.name}" set default_transaction_isolation = 'repeatable read'`,
        ),
      );
      const url = store.connectionString as string;
      const stores = await Promise.all(
        Array.from({ length: 4 }, () =>
          createStore({ databaseUrl: url, logger: silentLogger, pool: { max: 2 } }),
        ),
      );
      try {
        const [isolation] = await (stores[0] as Store).query<{ level: string }>(
          sql`select current_setting('transaction_isolation') as level`,
        );
        expect(isolation?.level).toBe("repeatable read");
        const reports = await Promise.all(
          stores.map((each) => runMigrations(each, [widgetsMigrations, gadgetsMigrations])),
        );
        const appliedCounts = reports.map((report) =>
          report.modules.reduce((sum, module) => sum + module.applied.length, 0),
        );
        expect(appliedCounts.sort()).toEqual([0, 0, 0, 3]);
      } finally {
        await Promise.all(stores.map((each) => each.close()));
      }
    },
  );

  it.skipIf(engine.name !== "postgres" || !engine.available)(
    "lets several processes migrate one database at the same moment",
    async () => {
      const url = store.connectionString as string;
      const child = fileURLToPath(new URL("./__fixtures__/migrate-child.ts", import.meta.url));
      const barrier = "4244";
      // A real barrier: the test holds an exclusive advisory lock; each child connects, then
      // waits for a shared lock on it. Once all of them wait, the test lets go, and they
      // all start migrating at the same moment.
      let openBarrier: () => void = () => undefined;
      const barrierOpen = new Promise<void>((resolve) => {
        openBarrier = resolve;
      });
      let barrierHeld: () => void = () => undefined;
      const held = new Promise<void>((resolve) => {
        barrierHeld = resolve;
      });
      const holder = store.transaction(async (tx) => {
        await tx.execute(sql`select pg_advisory_xact_lock(${barrier}::bigint)`);
        barrierHeld();
        await barrierOpen;
      });
      await held;
      const runs = Array.from(
        { length: 3 },
        () =>
          new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
            const processHandle = spawn(
              process.execPath,
              ["--import", "tsx", child, url, barrier],
              {
                cwd: fileURLToPath(new URL("..", import.meta.url)),
                stdio: ["ignore", "pipe", "pipe"],
              },
            );
            let stdout = "";
            let stderr = "";
            processHandle.stdout.on("data", (chunk: Buffer) => {
              stdout += chunk.toString();
            });
            processHandle.stderr.on("data", (chunk: Buffer) => {
              stderr += chunk.toString();
            });
            processHandle.on("close", (code) => resolve({ code, stdout, stderr }));
          }),
      );
      const waiting = async () =>
        (
          await store.query<{ n: number }>(
            sql`select count(*)::int as n from pg_locks where locktype = 'advisory' and objid = ${Number(barrier)} and not granted`,
          )
        )[0]?.n ?? 0;
      const deadline = Date.now() + 60_000;
      while ((await waiting()) < 3) {
        if (Date.now() > deadline) throw new Error("the children never reached the barrier");
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      openBarrier();
      await holder;
      const results = await Promise.all(runs);
      for (const result of results) expect(result, result.stderr).toMatchObject({ code: 0 });
      const applied = results.map(
        (result) =>
          (JSON.parse(result.stdout.trim().split("\n").at(-1) ?? "") as { applied: number })
            .applied,
      );
      expect(applied.sort()).toEqual([0, 0, 3]);
      expect(await appliedTags(store, "gov_widgets")).toEqual([
        "0000_create_widgets",
        "0001_add_color",
      ]);
      expect(await appliedTags(store, "gov_gadgets")).toEqual(["0000_create_gadgets"]);
    },
  );
});

describe("loadMigrations", () => {
  it("reads drizzle-kit's journal and splits statements at breakpoints", async () => {
    const migrations = await loadMigrations(widgetsMigrations);
    expect(migrations.map((migration) => migration.tag)).toEqual([
      "0000_create_widgets",
      "0001_add_color",
    ]);
    expect(migrations[0]?.statements[0]).toBe('CREATE SCHEMA "gov_widgets";');
    expect(migrations[0]?.statements).toHaveLength(2);
    expect(migrations[0]?.hash).toMatch(/^[0-9a-f]{64}$/);
  });

  it("refuses a missing folder and a bad module name", async () => {
    await expect(
      loadMigrations({ name: "widgets", migrationsFolder: "/nonexistent/folder" }),
    ).rejects.toMatchObject({
      code: "MIGRATION_SOURCE_INVALID",
    });
    await expect(
      loadMigrations({ name: "Bad Name", migrationsFolder: "/x" }),
    ).rejects.toMatchObject({
      code: "MIGRATION_SOURCE_INVALID",
    });
  });

  it("refuses a module listed twice", async () => {
    await expect(
      runMigrations({ query: async () => [], transaction: async () => undefined } as never, [
        widgetsMigrations,
        widgetsMigrations,
      ]),
    ).rejects.toMatchObject({
      code: "MIGRATION_SOURCE_INVALID",
    });
  });
});
