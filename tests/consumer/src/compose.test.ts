import { createRequire } from "node:module";
import {
  type AuditEventInput,
  type AuditSink,
  noopHaltGuard,
  runMigrations,
  silentLogger,
  systemClock,
} from "@gov/core";
import { createTestDatabase, testEngines } from "@gov/core/testing";
import { describe, expect, it, onTestFinished } from "vitest";
import { openAtTheEdge } from "./edge";
import { notesModule } from "./notes/module";

describe("installing @gov/core alone", () => {
  it("resolves to the built package, as an installed user gets it", () => {
    const require = createRequire(import.meta.url);
    expect(require.resolve("@gov/core")).toMatch(/core[\\/]dist[\\/]index\.js$/);
  });
});

describe.each(testEngines())("composing core and one module by hand on $name", (engine) => {
  it.skipIf(!engine.available)(
    "reads config at the edge, opens a store, migrates and constructs the module",
    async () => {
      const { databaseUrl, dispose } = await createTestDatabase(engine);
      onTestFinished(dispose);
      // 1. Configuration read once at the edge, the keyring and the store (src/edge.ts).
      const { store, keyring } = await openAtTheEdge(databaseUrl);
      onTestFinished(() => store.close());
      // 3. The module's migrations, into its own schema.
      const migrations = notesModule.migrations;
      if (!migrations) throw new Error("the notes module has migrations");
      const report = await runMigrations(store, [migrations]);
      expect(report.modules[0]).toMatchObject({
        schema: "gov_notes",
        applied: ["0000_create_notes"],
      });
      // 4. The module, with ports of the host's choosing (here a sink that records in memory).
      const events: AuditEventInput[] = [];
      const audit: AuditSink = {
        log: async (event) => {
          events.push(event);
          return { eventId: String(events.length), isPlaceholder: false };
        },
      };
      const notes = await notesModule.create({
        store,
        keyring,
        clock: systemClock,
        logger: silentLogger,
        audit,
        halt: noopHaltGuard,
      });
      const id = await notes.add("billing-agent", "remember the invoice");
      expect(await notes.list("billing-agent")).toEqual(["remember the invoice"]);
      expect(events).toEqual([
        { agentId: "billing-agent", kind: "note.added", metadata: { noteId: id } },
      ]);
    },
  );
});
