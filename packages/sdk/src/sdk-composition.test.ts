import {
  AgentHaltedError,
  type AuditEventInput,
  type AuditSink,
  defineModule,
  type ModuleContext,
  silentLogger,
  sql,
} from "@gov/core";
import { createTestDatabase, testEngines } from "@gov/core/testing";
import { describe, expect, it, onTestFinished } from "vitest";
import { SECRET, startOn } from "./__fixtures__";
import { ModuleDisabledError } from "./errors";
import type { SdkModuleEntry } from "./modules";
import { GovernanceSDK } from "./sdk";

/** A migrations folder of @gov/core's fixtures: module "widgets", schema gov_widgets. */
const widgetsFolder = new URL("../../core/src/__fixtures__/widgets/drizzle", import.meta.url);

class RecordingSink implements AuditSink {
  readonly events: AuditEventInput[] = [];
  async log(event: AuditEventInput) {
    this.events.push(event);
    return { eventId: String(this.events.length), isPlaceholder: false };
  }
}

function fixtureRegistry(log: string[]): SdkModuleEntry[] {
  const recorder = defineModule({
    name: "recorder",
    create: () => new RecordingSink(),
    provides: (sink: RecordingSink) => ({ audit: sink }),
    close: async () => {
      log.push("close recorder");
    },
  });
  const widgets = defineModule({
    name: "widgets",
    migrations: { name: "widgets", migrationsFolder: widgetsFolder },
    create: (context: ModuleContext, options: { greeting: string }) => ({ context, options }),
    close: async () => {
      log.push("close widgets");
    },
  });
  return [
    { definition: recorder, flag: "enableRecorder", enabledByDefault: true },
    {
      definition: widgets,
      flag: "enableWidgets",
      enabledByDefault: true,
      moduleOptions: () => ({ greeting: "hello" }),
    },
  ];
}

describe.each(testEngines())("GovernanceSDK composition on $name", (engine) => {
  it.skipIf(!engine.available)(
    "runs the enabled modules' migrations and wires the ports in order",
    async () => {
      const { databaseUrl, dispose } = await createTestDatabase(engine);
      onTestFinished(dispose);
      const log: string[] = [];
      const sdk = await GovernanceSDK.compose(
        { databaseUrl, auditSecret: SECRET, logger: silentLogger, env: {} },
        fixtureRegistry(log),
      );
      try {
        expect(sdk.migrations.modules).toEqual([
          expect.objectContaining({
            module: "widgets",
            applied: ["0000_create_widgets", "0001_add_color"],
          }),
        ]);
        const recorder = sdk.getModule<RecordingSink>("recorder");
        const widgets = sdk.getModule<{ context: ModuleContext; options: { greeting: string } }>(
          "widgets",
        );
        // The module composed after the recorder received its sink through the audit port.
        expect(widgets.context.audit).toBe(recorder);
        expect(widgets.context.store).toBe(sdk.store);
        expect(widgets.context.keyring).toBe(sdk.keyring);
        expect(widgets.options).toEqual({ greeting: "hello" });
        const tables = await sdk.store.query(
          sql`select tablename from pg_tables where schemaname = 'gov_widgets' order by 1`,
        );
        expect(tables).toEqual([{ tablename: "__migrations" }, { tablename: "widgets" }]);
      } finally {
        await sdk.close();
      }
      expect(log).toEqual(["close widgets", "close recorder"]);
    },
  );

  it.skipIf(!engine.available)(
    "leaves a disabled module out, runs none of its migrations, and names its flag on access",
    async () => {
      const { databaseUrl, dispose } = await createTestDatabase(engine);
      onTestFinished(dispose);
      const sdk = await GovernanceSDK.compose(
        {
          databaseUrl,
          auditSecret: SECRET,
          logger: silentLogger,
          env: {},
          enableWidgets: false,
        } as never,
        fixtureRegistry([]),
      );
      try {
        expect(sdk.isEnabled("widgets")).toBe(false);
        expect(sdk.migrations.modules).toEqual([]);
        const error = (() => {
          try {
            sdk.getModule("widgets");
          } catch (caught) {
            return caught;
          }
        })();
        expect(error).toBeInstanceOf(ModuleDisabledError);
        expect(error).toMatchObject({
          code: "MODULE_DISABLED",
          module: "widgets",
          flag: "enableWidgets",
        });
        expect((error as Error).message).toContain("enableWidgets: false");
        expect(
          await sdk.store.query(sql`select 1 from pg_namespace where nspname = 'gov_widgets'`),
        ).toEqual([]);
      } finally {
        await sdk.close();
      }
    },
  );

  it.skipIf(!engine.available)("closes what it opened when a module fails to start", async () => {
    const log: string[] = [];
    const failing = defineModule({
      name: "failing",
      create: () => {
        throw new Error("cannot start");
      },
    });
    const registry = [
      ...fixtureRegistry(log),
      { definition: failing, flag: "enableFailing" as const, enabledByDefault: true },
    ];
    const { databaseUrl, dispose } = await createTestDatabase(engine);
    onTestFinished(dispose);
    await expect(
      GovernanceSDK.compose(
        { databaseUrl, auditSecret: SECRET, logger: silentLogger, env: {} },
        registry,
      ),
    ).rejects.toThrow("cannot start");
    expect(log).toEqual(["close widgets", "close recorder"]);
  });
});

describe.each(testEngines())("GovernanceSDK wiring the modules together on $name", (engine) => {
  it.skipIf(!engine.available)(
    "halts through presence, refuses in scope and loop, and keeps every decision in the chain",
    async () => {
      const sdk = await startOn(engine);
      const agentId = "billing-agent";
      sdk.scope.register({
        agentId,
        allowedTools: ["lookup_invoice"],
        hiddenTools: ["admin_reset"],
      });
      sdk.loop.register({ agentId, maxCalls: 2, windowSeconds: 60 });
      await sdk.presence.heartbeat(agentId, { operatorId: "ops@example.com" });

      await sdk.scope.check(agentId, { tool: "lookup_invoice" });
      await expect(sdk.scope.check(agentId, { tool: "admin_reset" })).rejects.toMatchObject({
        code: "SCOPE_VIOLATION",
      });
      sdk.loop.recordCall(agentId, "s-1", "lookup_invoice");
      sdk.loop.recordCall(agentId, "s-1", "lookup_invoice");
      expect(() => sdk.loop.recordCall(agentId, "s-1", "lookup_invoice")).toThrow(
        expect.objectContaining({ code: "LOOP_DETECTED" }),
      );

      // The operator's halt reaches scope through the halt port, before anything else.
      await sdk.presence.halt(agentId, { haltedBy: "ops@example.com", reason: "refund spree" });
      const halted = await sdk.scope
        .check(agentId, { tool: "lookup_invoice" })
        .catch((error: unknown) => error);
      expect(AgentHaltedError.isInstance(halted)).toBe(true);
      expect(halted).toMatchObject({ haltedBy: "ops@example.com", reason: "refund spree" });
      await sdk.presence.resume(agentId, { resumedBy: "ops@example.com", reason: "checked" });
      await sdk.scope.check(agentId, { tool: "lookup_invoice" });

      await sdk.loop.flush();
      const kinds = (await sdk.audit.getEvents({ agentId, limit: 100 })).map((event) => event.kind);
      expect(kinds).toEqual(
        expect.arrayContaining([
          "scope.violation",
          "loop.detected",
          "agent.halted",
          "agent.resumed",
        ]),
      );
      expect(await sdk.audit.verifyChain()).toBe(true);
    },
  );

  it.skipIf(!engine.available)("leaves each of them out with its flag", async () => {
    const sdk = await startOn(engine, {
      enablePresence: false,
      enableScope: false,
      enableLoop: false,
      enableCost: false,
      enableGates: false,
      enableCoverage: false,
    });
    expect(() => sdk.presence).toThrow("enablePresence");
    expect(() => sdk.scope).toThrow("enableScope");
    expect(() => sdk.loop).toThrow("enableLoop");
    expect(() => sdk.cost).toThrow("enableCost");
    expect(() => sdk.gates).toThrow("enableGates");
    expect(() => sdk.coverage).toThrow("enableCoverage");
    expect(sdk.migrations.modules.map((report) => report.module)).toEqual(["audit"]);
  });
});
