import { generateKeyPairSync } from "node:crypto";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { readConfig, readCoreConfig } from "./config";
import { parseDatabaseUrl, redactConnectionStrings } from "./database-url";
import { ConfigError } from "./errors";
import { keyFingerprint } from "./keys";

const SECRET = "s3cr3t-0123456789-abcdefghijklmnopqrstuvwxyz";
const OTHER_SECRET = "another-secret-ABCDEFGHIJKLMNOPQRSTUVWXYZ-987654321";

function configError(run: () => unknown): ConfigError {
  try {
    run();
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error("expected a ConfigError");
}

describe("readCoreConfig", () => {
  it("applies defaults", () => {
    const config = readCoreConfig({ options: {}, env: {} });
    expect(config.databaseUrl).toBeUndefined();
    expect(config).toMatchObject({
      pool: { max: 10, connectionTimeoutMs: 5_000, idleTimeoutMs: 30_000, statementTimeoutMs: 0 },
      pglite: { relaxedDurability: false },
      applicationName: "gov",
      historicalKeys: [],
      logLevel: "info",
    });
  });

  it("reads the reference's environment variables", () => {
    const config = readCoreConfig({
      options: {},
      env: {
        GOVERNANCE_DATABASE_URL: "postgres://gov@db:5432/gov",
        GOVERNANCE_AUDIT_SECRET: SECRET,
        GOVERNANCE_DB_POOL_SIZE: "25",
        GOVERNANCE_LOG_LEVEL: "warn",
      },
    });
    expect(config).toMatchObject({
      databaseUrl: "postgres://gov@db:5432/gov",
      auditSecret: SECRET,
      pool: { max: 25 },
      logLevel: "warn",
    });
  });

  it("lets an explicit option win over the environment", () => {
    const config = readCoreConfig({
      options: { pool: { max: 3 } },
      env: { GOVERNANCE_DB_POOL_SIZE: "25" },
    });
    expect(config.pool.max).toBe(3);
  });

  it("names the environment variable, the problem and the fix for a bad variable", () => {
    const error = configError(() =>
      readCoreConfig({ options: {}, env: { GOVERNANCE_DB_POOL_SIZE: "ten" } }),
    );
    expect(error.code).toBe("CONFIG_INVALID");
    expect(error.issues).toEqual([
      {
        source: "env",
        name: "GOVERNANCE_DB_POOL_SIZE",
        problem: "is not an integer.",
        fix: "Use digits only, e.g. 10.",
      },
    ]);
  });

  it("names the variable when a value read from it is out of range", () => {
    const error = configError(() =>
      readCoreConfig({ options: {}, env: { GOVERNANCE_DB_POOL_SIZE: "0" } }),
    );
    expect(error.issues[0]).toMatchObject({
      source: "env",
      name: "GOVERNANCE_DB_POOL_SIZE",
      fix: "Use an integer from 1 to 1000.",
    });
    expect(error.issues[0]?.problem).toMatch(/>=\s*1/);
  });

  it("names the option path for a bad option, and reports every problem at once", () => {
    const error = configError(() =>
      readCoreConfig({
        options: { pool: { max: 5000 }, logLevel: "loud", colour: "blue" },
        env: {},
      }),
    );
    const names = error.issues.map((issue) => issue.name).sort();
    expect(names).toEqual(["logLevel", "options", "pool.max"]);
    expect(error.issues.find((issue) => issue.name === "options")?.problem).toContain('"colour"');
    expect(error.message).toContain("3 problems");
  });

  it("refuses a weak secret without repeating it", () => {
    const weak = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const error = configError(() =>
      readCoreConfig({ options: {}, env: { GOVERNANCE_AUDIT_SECRET: weak } }),
    );
    expect(error.issues[0]).toMatchObject({ source: "env", name: "GOVERNANCE_AUDIT_SECRET" });
    expect(error.issues[0]?.problem).toContain("distinct byte values");
    expect(error.issues[0]?.fix).toContain("openssl rand");
    expect(error.message).not.toContain(weak);
  });

  it("refuses a malformed database URL without repeating it (it may hold a password)", () => {
    const url = "mysql://root:hunter2@db/gov";
    const error = configError(() => readCoreConfig({ options: { databaseUrl: url }, env: {} }));
    expect(error.issues[0]?.name).toBe("databaseUrl");
    expect(error.message).not.toContain("hunter2");
    expect(error.issues[0]?.fix).toContain("postgres://");
  });

  it("reads the checkpoint signing key from GOVERNANCE_AUDIT_SIGNING_KEY, and refuses a bad one without repeating it", () => {
    const { privateKey } = generateKeyPairSync("ed25519");
    const pem = privateKey.export({ type: "pkcs8", format: "pem" }).toString();
    expect(
      readCoreConfig({ options: {}, env: { GOVERNANCE_AUDIT_SIGNING_KEY: pem } }).auditSigningKey,
    ).toBe(pem.trim());
    const bad = pem.replace("PRIVATE KEY-----\n", "PRIVATE KEY-----\nAAAA");
    const error = configError(() =>
      readCoreConfig({ options: {}, env: { GOVERNANCE_AUDIT_SIGNING_KEY: bad } }),
    );
    expect(error.issues[0]).toMatchObject({ source: "env", name: "GOVERNANCE_AUDIT_SIGNING_KEY" });
    expect(error.issues[0]?.problem).toContain("not an Ed25519 private key");
    expect(error.issues[0]?.fix).toContain("openssl genpkey");
    expect(error.message).not.toContain(pem.split("\n")[1]?.slice(4, 40));
  });

  it("collects historical keys from GOVERNANCE_CHAIN_KEY_<fingerprint prefix>", () => {
    const prefix = keyFingerprint(OTHER_SECRET).slice(0, 16).toUpperCase();
    const config = readCoreConfig({
      options: {},
      env: { [`GOVERNANCE_CHAIN_KEY_${prefix}`]: OTHER_SECRET },
    });
    expect(config.historicalKeys).toEqual([OTHER_SECRET]);
  });

  it("refuses a historical key filed under another key's fingerprint", () => {
    const error = configError(() =>
      readCoreConfig({ options: {}, env: { GOVERNANCE_CHAIN_KEY_0123456789ABCDEF: OTHER_SECRET } }),
    );
    expect(error.issues[0]).toMatchObject({
      source: "env",
      name: "GOVERNANCE_CHAIN_KEY_0123456789ABCDEF",
    });
    expect(error.issues[0]?.fix).toContain(keyFingerprint(OTHER_SECRET).slice(0, 16).toUpperCase());
    expect(error.message).not.toContain(OTHER_SECRET);
  });
});

describe("readConfig date variables", () => {
  const schema = z.object({ cutoff: z.date().nullable().default(null) });
  const bindings = [{ env: "GOVERNANCE_CUTOFF", path: ["cutoff"], kind: "date" as const }];
  const read = (value: string) =>
    readConfig(
      schema,
      bindings,
      { cutoff: "Use a timestamp." },
      {
        options: {},
        env: { GOVERNANCE_CUTOFF: value },
      },
    );

  it("reads dates, and times with a zone", () => {
    expect(read("2026-07-17").cutoff).toEqual(new Date("2026-07-17T00:00:00Z"));
    expect(read("2026-07-17T00:00:00Z").cutoff).toEqual(new Date("2026-07-17T00:00:00Z"));
    expect(read("2026-07-17T02:00:00+02:00").cutoff).toEqual(new Date("2026-07-17T00:00:00Z"));
  });

  it("refuses a time without a zone, which each host would read in its own", () => {
    for (const value of ["2026-07-17T00:00", "2026-07-17 00:00:00", "2026-07-17T00:00:00.000"]) {
      expect(() => read(value), value).toThrow(/GOVERNANCE_CUTOFF.*without a zone/s);
    }
  });
});

describe("parseDatabaseUrl", () => {
  it("defaults to an embedded database in ./.governance", () => {
    expect(parseDatabaseUrl(undefined, "/srv/app")).toEqual({
      engine: "pglite",
      directory: "/srv/app/.governance",
      description: "embedded PGlite in /srv/app/.governance",
      isDefault: true,
    });
  });

  it("understands postgres URLs, memory:// and directories", () => {
    expect(parseDatabaseUrl("postgresql://u:p@db.internal:6543/gov")).toMatchObject({
      engine: "postgres",
      description: "Postgres at db.internal:6543/gov",
    });
    expect(parseDatabaseUrl("memory://")).toMatchObject({ engine: "pglite", directory: null });
    expect(parseDatabaseUrl("./data/gov", "/srv")).toMatchObject({
      engine: "pglite",
      directory: "/srv/data/gov",
    });
    expect(parseDatabaseUrl("file:///var/lib/gov")).toMatchObject({
      engine: "pglite",
      directory: "/var/lib/gov",
    });
  });

  it("rejects what it does not understand", () => {
    expect(parseDatabaseUrl("mysql://db/gov")).toBeUndefined();
    expect(parseDatabaseUrl("postgres://")).toBeUndefined();
  });

  it("describes a Postgres target without its credentials", () => {
    const target = parseDatabaseUrl("postgres://admin:hunter2@db:5432/gov");
    expect(target?.description).toBe("Postgres at db:5432/gov");
    expect(
      redactConnectionStrings("failed for postgres://admin:hunter2@db:5432/gov password=hunter2"),
    ).toBe("failed for postgres://***@db:5432/gov password=***");
    // Regression: a password with an unencoded "@" leaked its tail.
    expect(redactConnectionStrings("at postgres://u:p@ss@host/db")).toBe(
      "at postgres://***@host/db",
    );
  });
});
