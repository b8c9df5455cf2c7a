import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inspect } from "node:util";
import {
  AgentHaltedError,
  type AuditEventInput,
  type AuditSink,
  ConfigError,
  defineModule,
  EMBEDDED_IN_PRODUCTION_WARNING,
  EMBEDDED_KEY_FILE,
  type ModuleContext,
  silentLogger,
  sql,
} from "@gov/core";
import {
  createTestDatabase,
  recordingLogger,
  rejectionOf,
  type TestEngine,
  testEngines,
} from "@gov/core/testing";
import { afterEach, beforeEach, describe, expect, it, onTestFinished } from "vitest";
import { ModuleDisabledError } from "./errors";
import type { SdkModuleEntry } from "./modules";
import { GovernanceSDK, type GovernanceSDKOptions } from "./sdk";

const SECRET = "s3cr3t-0123456789-abcdefghijklmnopqrstuvwxyz";

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

describe("GovernanceSDK with core alone", () => {
  let home: string;

  beforeEach(async () => {
    home = await mkdtemp(join(tmpdir(), "gov-sdk-"));
  });

  afterEach(async () => {
    await rm(home, { recursive: true, force: true });
  });

  it("starts on the embedded database, answers a health check and closes cleanly", async () => {
    const sdk = await GovernanceSDK.start({
      databaseUrl: "memory://",
      logger: silentLogger,
      env: {},
    });
    expect(sdk.store.engine).toBe("pglite");
    expect(await sdk.health()).toMatchObject({ ok: true, engine: "pglite" });
    expect(sdk.migrations.modules.map((report) => report.module)).toEqual([
      "audit",
      "cost",
      "gates",
      "presence",
      "scope",
    ]);
    expect(sdk.config).not.toHaveProperty("auditSecret");
    await sdk.close();
    await sdk.close();
    expect(sdk.store.closed).toBe(true);
  });

  // Guards against options that are not an object being read as "no options" (the default
  // embedded database opened) or failing with a bare TypeError.
  it("refuses options that are not an object, by rejecting", async () => {
    for (const [run, field] of [
      [() => GovernanceSDK.start(42 as never), "options"],
      [() => GovernanceSDK.start("postgres://db" as never), "options"],
      [() => GovernanceSDK.compose(null as never, []), "options"],
      [() => GovernanceSDK.compose({}, null as never), "registry"],
    ] as const) {
      const error = await rejectionOf(run);
      expect(error).toMatchObject({ code: "INVALID_ARGUMENT", field });
    }
  });

  // Guards against running production on the embedded database (fsync off) without a word.
  it("warns when NODE_ENV=production runs on the embedded database", async () => {
    const logger = recordingLogger();
    const sdk = await GovernanceSDK.start({
      databaseUrl: "memory://",
      logger,
      env: { NODE_ENV: "production" },
    });
    await sdk.close();
    expect(logger.lines).toContainEqual({ level: "warn", message: EMBEDDED_IN_PRODUCTION_WARNING });
  });

  it("closes with `await using`", async () => {
    let store: GovernanceSDK["store"] | undefined;
    {
      await using sdk = await GovernanceSDK.start({
        databaseUrl: "memory://",
        logger: silentLogger,
        env: {},
      });
      store = sdk.store;
    }
    expect(store?.closed).toBe(true);
  });

  it("keeps the generated key of an embedded database, so chains verify after a restart", async () => {
    const first = await GovernanceSDK.start({ databaseUrl: home, logger: silentLogger, env: {} });
    const fingerprint = first.keyring.current.fingerprint;
    await first.close();
    expect(existsSync(join(home, EMBEDDED_KEY_FILE))).toBe(true);
    const second = await GovernanceSDK.start({ databaseUrl: home, logger: silentLogger, env: {} });
    expect(second.keyring.current.fingerprint).toBe(fingerprint);
    await second.close();
  });

  it("reads GOVERNANCE_* variables, with explicit options winning", async () => {
    const sdk = await GovernanceSDK.start({
      logger: silentLogger,
      pool: { max: 3 },
      env: {
        GOVERNANCE_DATABASE_URL: "memory://",
        GOVERNANCE_DB_POOL_SIZE: "30",
        GOVERNANCE_AUDIT_SECRET: SECRET,
      },
    });
    expect(sdk.store.engine).toBe("pglite");
    expect(sdk.config.pool.max).toBe(3);
    await sdk.close();
  });

  it("refuses bad configuration with every problem named, and opens nothing", async () => {
    const error = await GovernanceSDK.start({
      databaseUrl: home,
      logger: silentLogger,
      env: { GOVERNANCE_DB_POOL_SIZE: "lots" },
      logLevel: "chatty" as never,
    }).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).issues.map((issue) => issue.name).sort()).toEqual([
      "GOVERNANCE_DB_POOL_SIZE",
      "logLevel",
    ]);
    expect(existsSync(join(home, "pgdata"))).toBe(false);
    expect(existsSync(join(home, EMBEDDED_KEY_FILE))).toBe(false);
  });

  it("refuses a real Postgres without an audit secret before connecting to it", async () => {
    // Port 1 refuses connections: had the SDK tried to connect, this would be STORE_CONNECTION.
    await expect(
      GovernanceSDK.start({
        databaseUrl: "postgres://gov@127.0.0.1:1/gov",
        logger: silentLogger,
        env: {},
      }),
    ).rejects.toMatchObject({ code: "SECRET_REQUIRED" });
  });

  it("never puts the connection string in the error when Postgres is unreachable", async () => {
    const error = (await GovernanceSDK.start({
      databaseUrl: "postgres://gov:hunter2@127.0.0.1:1/gov",
      auditSecret: SECRET,
      logger: silentLogger,
      env: {},
    }).catch((caught: unknown) => caught)) as Error & { code: string };
    expect(error.code).toBe("STORE_CONNECTION");
    expect(error.message).toContain("127.0.0.1:1");
    expect(error.message).not.toContain("hunter2");
    expect(inspect(error, { depth: 10, showHidden: true })).not.toContain("hunter2");
  });
});

describe.each(testEngines())("GovernanceSDK configuration on $name", (engine) => {
  // Regression: sdk.config carried the database URL, password included.
  it.skipIf(engine.name !== "postgres" || !engine.available)(
    "keeps the database password out of sdk.config",
    async () => {
      const { databaseUrl, dispose } = await createTestDatabase(engine);
      onTestFinished(dispose);
      const url = new URL(databaseUrl);
      url.password = "hunter2"; // trust authentication ignores it; it must still not leak
      const sdk = await GovernanceSDK.start({
        databaseUrl: url.toString(),
        auditSecret: SECRET,
        logger: silentLogger,
        env: {},
      });
      try {
        expect(JSON.stringify(sdk.config)).not.toContain("hunter2");
        expect(inspect(sdk, { depth: 6 })).not.toContain("hunter2");
        expect(inspect(sdk.store, { depth: 6 })).not.toContain("hunter2");
        // Even the driver's own objects, reached through drizzle, hold no password string.
        expect(inspect(sdk.store.db, { depth: 8 })).not.toContain("hunter2");
        expect(sdk.config.database).toMatch(/^Postgres at 127\.0\.0\.1:5432\//);
        expect(sdk.config).not.toHaveProperty("databaseUrl");
      } finally {
        await sdk.close();
      }
    },
  );
});

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

/** An SDK on a fresh database of `engine`, with `extra` options; closed when the test ends. */
async function startOn(
  engine: TestEngine,
  extra: Partial<GovernanceSDKOptions> = {},
): Promise<GovernanceSDK> {
  const { databaseUrl, dispose } = await createTestDatabase(engine);
  onTestFinished(dispose);
  const sdk = await GovernanceSDK.start({
    databaseUrl,
    auditSecret: SECRET,
    logger: silentLogger,
    env: {},
    ...extra,
  });
  onTestFinished(() => sdk.close());
  return sdk;
}

describe.each(testEngines())("GovernanceSDK with the audit module on $name", (engine) => {
  it.skipIf(!engine.available)(
    "composes sdk.audit by default: events are chained, verified, and survive a restart",
    async () => {
      const { databaseUrl: url, dispose } = await createTestDatabase(engine);
      onTestFinished(dispose);
      // The embedded engine restarts from a directory (memory:// would start empty).
      const home =
        engine.name === "pglite" ? await mkdtemp(join(tmpdir(), "gov-sdk-audit-")) : null;
      if (home) onTestFinished(() => rm(home, { recursive: true, force: true }));
      const databaseUrl = home ?? url;
      const options = { databaseUrl, auditSecret: SECRET, logger: silentLogger, env: {} };
      const first = await GovernanceSDK.start(options);
      let sessionId: string;
      try {
        expect(first.isEnabled("audit")).toBe(true);
        sessionId = "session-sdk-1";
        const record = await first.audit.log({
          agentId: "billing-agent",
          kind: "llm.call",
          sessionId,
          model: "gpt-4o-mini",
        });
        expect(record).toMatchObject({ status: "stored", seq: 1, prevHash: null });
        expect(record.keyId).toBe(first.keyring.current.id);
      } finally {
        await first.close();
      }
      const second = await GovernanceSDK.start(options);
      try {
        const next = await second.audit.log({
          agentId: "billing-agent",
          kind: "tool.call",
          sessionId,
        });
        expect(next.seq).toBe(2);
        expect(await second.audit.verifyChain({ sessionId })).toBe(true);
        expect(
          (await second.audit.traceSessionChain(sessionId)).map((event) => event.kind),
        ).toEqual(["llm.call", "tool.call"]);
      } finally {
        await second.close();
      }
    },
  );

  it.skipIf(!engine.available)(
    "verifies chains on read with verifyChainOnRead (GOVERNANCE_VERIFY_CHAIN_ON_READ)",
    async () => {
      const sdk = await startOn(engine, { env: { GOVERNANCE_VERIFY_CHAIN_ON_READ: "true" } });
      expect(sdk.config.verifyChainOnRead).toBe(true);
      await sdk.audit.log({ agentId: "a", kind: "step", sessionId: "s" });
      await sdk.audit.log({ agentId: "a", kind: "step", sessionId: "s" });
      expect(await sdk.audit.getEvents({ sessionId: "s" })).toHaveLength(2);
      // Tamper as a superuser who switched the append-only trigger off.
      await sdk.store.transaction(async (tx) => {
        await tx.execute(sql`alter table gov_audit.events disable trigger user`);
        await tx.execute(
          sql`update gov_audit.events set payload = replace(payload, '"step"', '"stop"') where seq = 2`,
        );
        await tx.execute(sql`alter table gov_audit.events enable trigger user`);
      });
      await expect(sdk.audit.getEvents({ sessionId: "s" })).rejects.toMatchObject({
        code: "CHAIN_INTEGRITY",
        sessionId: "s",
        seq: 2,
      });
    },
  );

  it.skipIf(!engine.available)(
    "leaves the audit module out with enableAudit: false, and names the flag on access",
    async () => {
      const sdk = await startOn(engine, { enableAudit: false });
      expect(sdk.migrations.modules.map((report) => report.module)).toEqual([
        "cost",
        "gates",
        "presence",
        "scope",
      ]);
      expect(
        await sdk.store.query(sql`select 1 from pg_namespace where nspname = 'gov_audit'`),
      ).toEqual([]);
      expect(() => sdk.audit).toThrow(ModuleDisabledError);
      expect(() => sdk.audit).toThrow("enableAudit");
    },
  );
});

describe("GovernanceSDK audit options", () => {
  it("refuses a bad audit option with its fix, and opens nothing", async () => {
    const error = (await GovernanceSDK.start({
      databaseUrl: "memory://",
      logger: silentLogger,
      env: { GOVERNANCE_VERIFY_CHAIN_ON_READ: "perhaps" },
      auditCheckpointIntervalMs: -5,
    }).catch((caught: unknown) => caught)) as ConfigError;
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.issues.map((issue) => issue.name).sort()).toEqual([
      "GOVERNANCE_VERIFY_CHAIN_ON_READ",
      "auditCheckpointIntervalMs",
    ]);
    expect(error.message).toContain(
      "GOVERNANCE_VERIFY_CHAIN_ON_READ: is not a boolean. Fix: Use true or false",
    );
    expect(error.message).toContain("from 0 (off) to 86400000");
  });

  it("spools to auditSpoolDirectory, resolved against cwd, when the database cannot take events", async () => {
    const home = await mkdtemp(join(tmpdir(), "gov-sdk-spool-"));
    onTestFinished(() => rm(home, { recursive: true, force: true }));
    const spool = join(home, "spool");
    const sdk = await GovernanceSDK.start({
      databaseUrl: "memory://",
      logger: silentLogger,
      cwd: home,
      env: { GOVERNANCE_AUDIT_SPOOL_DIR: "spool" },
    });
    try {
      // The events table is taken away: the writes fail as they would in an outage.
      await sdk.store.query(sql`alter table gov_audit.events rename to events_away`);
      const record = await sdk.audit.log({ agentId: "a", kind: "step", sessionId: "s" });
      expect(record.status).toBe("spooled");
      expect(sdk.audit.metrics()).toMatchObject({ spooled: 1, degraded: true, spoolDepth: 2 });
      expect(
        (await import("node:fs")).readdirSync(spool).some((name) => name.endsWith(".jsonl")),
      ).toBe(true);
    } finally {
      await sdk.close();
    }
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
    });
    expect(() => sdk.presence).toThrow("enablePresence");
    expect(() => sdk.scope).toThrow("enableScope");
    expect(() => sdk.loop).toThrow("enableLoop");
    expect(() => sdk.cost).toThrow("enableCost");
    expect(() => sdk.gates).toThrow("enableGates");
    expect(sdk.migrations.modules.map((report) => report.module)).toEqual(["audit"]);
  });
});

describe.each(testEngines())("GovernanceSDK with the cost module on $name", (engine) => {
  it.skipIf(!engine.available)(
    "enforces budgets with the halt from presence and the breaches in the audit chain",
    async () => {
      const sdk = await startOn(engine, { defaultMaxTokens: 1000 });
      const agentId = "billing-agent";
      sdk.cost.register({ agentId, perSessionUsd: "0.02" });
      // gpt-4o: defaultMaxTokens 1,000 output tokens projected = $0.01.
      const reservation = await sdk.cost.checkOrRaise(agentId, "s-1", { model: "gpt-4o" });
      expect(reservation).toMatchObject({ tokens: 1000, usd: 0.01 });
      await sdk.cost.trackUsage(agentId, "s-1", {
        model: "gpt-4o",
        usage: { prompt_tokens: 400, completion_tokens: 950 },
        reservationId: reservation.reservationId,
      });
      await expect(
        sdk.cost.checkOrRaise(agentId, "s-1", { model: "gpt-4o" }),
      ).rejects.toMatchObject({ code: "BUDGET_EXCEEDED", cap: "perSessionUsd", used: 0.0105 });
      await sdk.presence.halt(agentId, { haltedBy: "ops@example.com", reason: "spend" });
      const halted = await sdk.cost
        .checkOrRaise(agentId, "s-2", { model: "gpt-4o" })
        .catch((error: unknown) => error);
      expect(AgentHaltedError.isInstance(halted)).toBe(true);
      expect(halted).toMatchObject({ path: "cost.checkOrRaise" });
      const events = await sdk.audit.getEvents({ agentId, limit: 100 });
      expect(events.map((event) => event.kind)).toEqual(
        expect.arrayContaining(["budget.exceeded", "agent.halted"]),
      );
      const breach = events.find((event) => event.kind === "budget.exceeded");
      expect(breach?.metadata).toMatchObject({
        cap: "perSessionUsd",
        limit: "0.02",
        used: "0.0105",
      });
      expect(await sdk.audit.verifyChain()).toBe(true);
    },
  );

  it.skipIf(!engine.available)(
    "reads the cost options from GOVERNANCE_* variables, explicit options winning",
    async () => {
      const sdk = await startOn(engine, {
        env: {
          GOVERNANCE_COST_FAIL_OPEN: "true",
          GOVERNANCE_DEFAULT_MAX_TOKENS: "256",
          GOVERNANCE_COST_STRICT_UNKNOWN_MODELS: "false",
          GOVERNANCE_COST_UNKNOWN_MODEL_FALLBACK_USD_PER_MILLION: "40",
          GOVERNANCE_COST_SPOOL_DIR: "relative/cost-spool",
        },
        defaultMaxTokens: 128,
      });
      expect(sdk.config).toMatchObject({
        costFailOpen: true,
        defaultMaxTokens: 128,
        costStrictUnknownModels: false,
        costUnknownModelFallbackUsdPerMillion: 40,
        costSpoolDirectory: "relative/cost-spool",
      });
      sdk.cost.register({ agentId: "a", perSessionTokens: 10_000 });
      // An unknown model at the fallback: 128 tokens × $40/M.
      const reservation = await sdk.cost.checkOrRaise("a", "s", { model: "house-model" });
      expect(reservation).toMatchObject({ tokens: 128, exactUsd: "0.00512" });
    },
  );
});

describe("GovernanceSDK cost options", () => {
  it("refuses bad cost options with their fix, and opens nothing", async () => {
    for (const [options, field] of [
      [{ defaultMaxTokens: 0 }, "defaultMaxTokens"],
      [{ costFailOpen: "yes" }, "costFailOpen"],
      [{ costUnknownModelFallbackUsdPerMillion: -1 }, "costUnknownModelFallbackUsdPerMillion"],
      [{ env: { GOVERNANCE_DEFAULT_MAX_TOKENS: "lots" } }, "GOVERNANCE_DEFAULT_MAX_TOKENS"],
    ] as const) {
      const error = await GovernanceSDK.start({
        databaseUrl: "memory://",
        logLevel: "silent",
        ...(options as GovernanceSDKOptions),
      }).catch((caught: unknown) => caught);
      expect(error, JSON.stringify(options)).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).message).toContain(field);
    }
  });

  it("refuses lax pricing without a fallback rate", async () => {
    const error = await GovernanceSDK.start({
      databaseUrl: "memory://",
      logLevel: "silent",
      costStrictUnknownModels: false,
    }).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).message).toContain("costUnknownModelFallbackUsdPerMillion");
  });
});

describe.each(testEngines())("GovernanceSDK with the gates module on $name", (engine) => {
  it.skipIf(!engine.available)(
    "a request waits for a human; the agent's own operator may not approve it; all in the chain",
    async () => {
      const sdk = await startOn(engine);
      const agentId = "billing-agent";
      await sdk.presence.heartbeat(agentId, { operatorId: "ops@example.com" });
      const request = await sdk.gates.request("refund.issue", agentId, {
        payload: { invoice: "INV-42", amount: 120 },
      });
      expect(request.stored).toBe(true);
      // The operator bound to the agent by its heartbeat is refused (the operators port).
      await expect(
        sdk.gates.grant(request.token, { reviewerId: "ops@example.com" }),
      ).rejects.toMatchObject({ code: "SELF_APPROVAL" });
      const waiting = sdk.gates.waitFor(request.requestId, { timeout: 10_000 });
      await sdk.gates.grant(request.token, { reviewerId: "alice@example.com" });
      await expect(waiting).resolves.toBe(true);
      await sdk.gates.verifyAction(request.requestId, { amount: 120, invoice: "INV-42" });
      const kinds = (await sdk.audit.getEvents({ agentId, limit: 100 })).map((event) => event.kind);
      expect(kinds).toEqual(expect.arrayContaining(["approval.requested", "approval.granted"]));
      expect(JSON.stringify(await sdk.audit.getEvents({ agentId, limit: 100 }))).not.toContain(
        request.token,
      );
      // The operator's halt reaches gates too.
      await sdk.presence.halt(agentId, { haltedBy: "ops@example.com", reason: "review" });
      const halted = await sdk.gates
        .request("refund.issue", agentId, { payload: {} })
        .catch((error: unknown) => error);
      expect(AgentHaltedError.isInstance(halted)).toBe(true);
    },
  );

  it.skipIf(!engine.available)("reads the gates options from GOVERNANCE_* variables", async () => {
    const sdk = await startOn(engine, {
      env: {
        GOVERNANCE_GATES_ACCEPT_V1_UNTIL: "2030-01-01T00:00:00Z",
        GOVERNANCE_GATES_ENABLE_V2_TOKENS: "false",
      },
    });
    expect(sdk.config).toMatchObject({
      enableV2Tokens: false,
      acceptV1Until: new Date("2030-01-01T00:00:00Z"),
    });
    const request = await sdk.gates.request("refund.issue", "a", { payload: {} });
    expect(request.tokenVersion).toBe(1);
    expect(request.token.startsWith("v2:")).toBe(false);
    await expect(
      GovernanceSDK.start({
        databaseUrl: "memory://",
        logLevel: "silent",
        env: { GOVERNANCE_GATES_ACCEPT_V1_UNTIL: "soon" },
      }),
    ).rejects.toThrow("GOVERNANCE_GATES_ACCEPT_V1_UNTIL");
  });
});

const REFUNDS_BLUEPRINT = `
id: refunds@1.0
version: "1.0"
scope:
  tools: [issue_refund]
tripwires:
  - id: large-refund
    when: { tool: issue_refund }
    condition: "args.amount > 500"
    onFail: { decision: BLOCK, reason: "Refunds above 500 need a human." }
`;

describe.each(testEngines())("GovernanceSDK with the steward on $name", (engine) => {
  it.skipIf(!engine.available)(
    "evaluates traces against its blueprints and writes interventions to the chain",
    async () => {
      const sdk = await startOn(engine, {
        enableSteward: true,
        stewardBlueprints: [REFUNDS_BLUEPRINT],
      });
      const ok = await sdk.steward.evaluate({
        agentId: "billing-agent",
        action: "issue_refund",
        parameters: { amount: 120 },
        reasoning: "The invoice INV-42 was paid twice; the customer asked for the duplicate back.",
        confidence: 0.9,
        evidence: ["INV-42"],
      });
      expect(ok.intervention).not.toBe("BLOCK");
      const blocked = await sdk.steward.evaluate({
        agentId: "billing-agent",
        action: "issue_refund",
        parameters: { amount: 5000 },
        reasoning: "The customer asked.",
      });
      expect(blocked.intervention).toBe("BLOCK");
      expect(blocked.governanceStatus.firedTripwires).toEqual(["large-refund"]);
      await sdk.steward.flush();
      const kinds = (await sdk.audit.getEvents({ agentId: "billing-agent", limit: 50 })).map(
        (event) => event.kind,
      );
      expect(kinds).toContain("steward.intervention");
    },
  );

  it.skipIf(!engine.available)(
    "is off unless asked for, and refuses to start without blueprints",
    async () => {
      const sdk = await startOn(engine);
      expect(() => sdk.steward).toThrow("enableSteward");
      // The steward is off by default: the hint must not claim the opposite.
      const disabled = (() => {
        try {
          return sdk.steward;
        } catch (error) {
          return error as ModuleDisabledError;
        }
      })() as ModuleDisabledError;
      expect(disabled.recoveryHint).toContain("Pass enableSteward: true");
      expect(disabled.recoveryHint).toContain("off by default");
      expect(disabled.recoveryHint).not.toContain("on by default");
      await expect(
        GovernanceSDK.start({
          databaseUrl: "memory://",
          logLevel: "silent",
          env: {},
          enableSteward: true,
        }),
      ).rejects.toMatchObject({ code: "POLICY_INVALID" });
      await expect(
        GovernanceSDK.start({
          databaseUrl: "memory://",
          logLevel: "silent",
          env: { GOVERNANCE_STEWARD_BLUEPRINT_DIR: "does/not/exist" },
          enableSteward: true,
        }),
      ).rejects.toThrow("stewardBlueprintDirectory");
    },
  );
});
