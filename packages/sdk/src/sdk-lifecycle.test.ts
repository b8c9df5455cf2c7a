import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inspect } from "node:util";
import {
  ConfigError,
  EMBEDDED_IN_PRODUCTION_WARNING,
  EMBEDDED_KEY_FILE,
  silentLogger,
} from "@gov/core";
import { createTestDatabase, recordingLogger, rejectionOf, testEngines } from "@gov/core/testing";
import { afterEach, beforeEach, describe, expect, it, onTestFinished } from "vitest";
import { SECRET } from "./__fixtures__";
import { GovernanceSDK } from "./sdk";

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
      "coverage",
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
