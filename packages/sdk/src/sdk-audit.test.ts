import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError, silentLogger, sql } from "@gov/core";
import { createTestDatabase, testEngines } from "@gov/core/testing";
import { describe, expect, it, onTestFinished } from "vitest";
import { SECRET, startOn } from "./__fixtures__";
import { ModuleDisabledError } from "./errors";
import { GovernanceSDK } from "./sdk";

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
        "coverage",
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
