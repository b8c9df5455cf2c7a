import { defineModule, type ModuleContext } from "@gov/core";
import { eq } from "drizzle-orm";
import { notes } from "./schema";

/** A module written the way every @gov module is: it gets a context, and owns gov_notes. */
export class NotesModule {
  readonly #context: ModuleContext;

  constructor(context: ModuleContext) {
    this.#context = context;
  }

  /** Store a note and record the decision through the audit port. */
  async add(agentId: string, body: string): Promise<number> {
    const [row] = await this.#context.store.db
      .insert(notes)
      .values({ agentId, body })
      .returning({ id: notes.id });
    if (!row) throw new Error("insert returned no row");
    await this.#context.audit.log({ agentId, kind: "note.added", metadata: { noteId: row.id } });
    return row.id;
  }

  async list(agentId: string): Promise<string[]> {
    const rows = await this.#context.store.db
      .select({ body: notes.body })
      .from(notes)
      .where(eq(notes.agentId, agentId));
    return rows.map((row) => row.body);
  }
}

export const notesModule = defineModule({
  name: "notes",
  migrations: { name: "notes", migrationsFolder: new URL("./drizzle", import.meta.url) },
  create: (context: ModuleContext) => new NotesModule(context),
});
