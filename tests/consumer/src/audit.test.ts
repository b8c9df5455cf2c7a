import { createRequire } from "node:module";
import { AuditModule, auditMigrations } from "@gov/audit";
import { noopHaltGuard, runMigrations, silentLogger, systemClock } from "@gov/core";
import { createTestDatabase, testEngines } from "@gov/core/testing";
import { describe, expect, it, onTestFinished } from "vitest";
import { openAtTheEdge } from "./edge";
import { notesModule } from "./notes/module";

describe("installing @gov/audit with @gov/core", () => {
  it("resolves to the built package, as an installed user gets it", () => {
    const require = createRequire(import.meta.url);
    expect(require.resolve("@gov/audit")).toMatch(/audit[\\/]dist[\\/]index\.js$/);
  });
});

describe.each(testEngines())("composing core and @gov/audit by hand on $name", (engine) => {
  it.skipIf(!engine.available)(
    "migrates the audit schema, chains a module's events through the audit port, and verifies them",
    async () => {
      const { databaseUrl, dispose } = await createTestDatabase(engine);
      onTestFinished(dispose);
      const { store, keyring } = await openAtTheEdge(databaseUrl);
      onTestFinished(() => store.close());
      const notesMigrations = notesModule.migrations;
      if (!notesMigrations) throw new Error("the notes module has migrations");
      const report = await runMigrations(store, [auditMigrations, notesMigrations]);
      expect(report.modules.map((module) => module.schema)).toEqual(["gov_audit", "gov_notes"]);
      // The audit module is the sink every other module writes its decisions through.
      const audit = new AuditModule(
        { store, keyring, clock: systemClock, logger: silentLogger },
        { spoolDirectory: null },
      );
      onTestFinished(() => audit.close());
      const notes = await notesModule.create({
        store,
        keyring,
        clock: systemClock,
        logger: silentLogger,
        audit,
        halt: noopHaltGuard,
      });
      const id = await notes.add("billing-agent", "remember the invoice");
      const events = await audit.getEvents({ agentId: "billing-agent" });
      expect(events).toEqual([
        expect.objectContaining({
          kind: "note.added",
          metadata: { noteId: id },
          seq: 1,
          prevHash: null,
          keyId: keyring.current.id,
          isPlaceholder: false,
        }),
      ]);
      expect(await audit.verifyChain({ agentId: "billing-agent" })).toBe(true);
    },
  );
});
