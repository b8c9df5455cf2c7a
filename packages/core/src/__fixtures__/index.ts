import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { MigrationSource } from "../migrations";

/** Fixture module with two migrations: 0000_create_widgets, 0001_add_color. */
export const widgetsMigrations: MigrationSource = {
  name: "widgets",
  migrationsFolder: new URL("./widgets/drizzle", import.meta.url),
};

/** Fixture module with one migration. */
export const gadgetsMigrations: MigrationSource = {
  name: "gadgets",
  migrationsFolder: new URL("./gadgets/drizzle", import.meta.url),
};

/**
 * A copy of a fixture's migrations folder, cut to its first `count` migrations and
 * optionally edited: what an older (or tampered) release of the module would ship.
 */
export async function migrationsFolderCopy(
  source: MigrationSource,
  count: number,
  edit?: (tag: string, sqlText: string) => string,
): Promise<{ source: MigrationSource; remove(): Promise<void> }> {
  const directory = await mkdtemp(join(tmpdir(), `gov-${source.name}-`));
  const from = fileURLToPath(source.migrationsFolder as URL);
  await cp(from, directory, { recursive: true });
  const journalPath = join(directory, "meta", "_journal.json");
  const journal = JSON.parse(await readFile(journalPath, "utf8")) as { entries: { tag: string }[] };
  const kept = journal.entries.slice(0, count);
  for (const entry of journal.entries.slice(count)) await rm(join(directory, `${entry.tag}.sql`));
  await writeFile(journalPath, JSON.stringify({ ...journal, entries: kept }));
  if (edit) {
    for (const entry of kept) {
      const file = join(directory, `${entry.tag}.sql`);
      await writeFile(file, edit(entry.tag, await readFile(file, "utf8")));
    }
  }
  return {
    source: { name: source.name, migrationsFolder: directory },
    remove: () => rm(directory, { recursive: true, force: true }),
  };
}
