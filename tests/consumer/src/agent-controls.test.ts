import { createRequire } from "node:module";
import { AgentHaltedError, runMigrations, silentLogger, systemClock } from "@gov/core";
import { createTestDatabase, recordingAuditSink, testEngines } from "@gov/core/testing";
import { LoopModule } from "@gov/loop";
import { PresenceModule, presenceMigrations } from "@gov/presence";
import { ScopeModule, scopeMigrations } from "@gov/scope";
import { describe, expect, it, onTestFinished } from "vitest";
import { openAtTheEdge } from "./edge";

describe("installing @gov/presence, @gov/scope and @gov/loop with @gov/core", () => {
  it("resolves each to its built package, as an installed user gets it", () => {
    const require = createRequire(import.meta.url);
    for (const name of ["presence", "scope", "loop"])
      expect(require.resolve(`@gov/${name}`)).toMatch(
        new RegExp(`${name}[\\\\/]dist[\\\\/]index\\.js$`),
      );
  });

  it("runs loop detection alone, with no database at all", () => {
    const loop = new LoopModule({ clock: systemClock, logger: silentLogger });
    onTestFinished(() => loop.close());
    loop.register({ agentId: "a", maxCalls: 2 });
    loop.recordCall("a", "s", "search");
    loop.recordCall("a", "s", "search");
    expect(() => loop.recordCall("a", "s", "search")).toThrow(
      expect.objectContaining({ code: "LOOP_DETECTED" }),
    );
  });
});

describe.each(testEngines())("composing presence and scope by hand on $name", (engine) => {
  it.skipIf(!engine.available)(
    "wires presence in as scope's halt guard, and both write through the host's audit sink",
    async () => {
      const { databaseUrl, dispose } = await createTestDatabase(engine);
      onTestFinished(dispose);
      const { store, keyring } = await openAtTheEdge(databaseUrl);
      onTestFinished(() => store.close());
      await runMigrations(store, [presenceMigrations, scopeMigrations]);
      const audit = recordingAuditSink();
      const context = { store, keyring, clock: systemClock, logger: silentLogger, audit };
      const presence = new PresenceModule(context);
      await presence.start();
      onTestFinished(() => presence.close());
      const scope = new ScopeModule({ ...context, halt: presence });
      await scope.start();
      onTestFinished(() => scope.close());

      scope.register({ agentId: "billing-agent", allowedTools: ["lookup_invoice"] });
      await scope.check("billing-agent", { tool: "lookup_invoice" });
      await presence.halt("billing-agent", { haltedBy: "ops", reason: "review" });
      const refused = await scope
        .check("billing-agent", { tool: "lookup_invoice" })
        .catch((error: unknown) => error);
      expect(AgentHaltedError.isInstance(refused)).toBe(true);
      expect(audit.events.map((event) => event.kind)).toEqual(
        expect.arrayContaining(["agent.halted"]),
      );
    },
  );
});
