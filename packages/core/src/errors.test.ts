import { describe, expect, it, vi } from "vitest";
import {
  AgentHaltedError,
  ConfigError,
  GovernanceError,
  hasErrorIdentity,
  InvalidArgumentError,
  ownErrorIdentity,
} from "./errors";
import * as core from "./index";
import { SecretError } from "./keys";
import { MigrationError } from "./migrations";
import { SpoolFileError } from "./spool";
import { StoreError, toStoreError } from "./store-errors";
import { assertErrorClasses, thrown } from "./testing";

describe("GovernanceError", () => {
  it("carries a stable code, a recovery hint and the cause", () => {
    const cause = new Error("root");
    const error = new GovernanceError({
      code: "SOME_CODE",
      message: "what happened",
      recoveryHint: "do this",
      cause,
    });
    expect(error).toMatchObject({
      code: "SOME_CODE",
      message: "what happened",
      recoveryHint: "do this",
      cause,
    });
    expect(error.toJSON()).toEqual({
      name: "GovernanceError",
      code: "SOME_CODE",
      message: "what happened",
      recoveryHint: "do this",
    });
  });

  // Regression: `instanceof` fails when two copies of @gov/core are installed.
  it("is recognized across two copies of the package", async () => {
    vi.resetModules();
    const specifier = "./errors?copy=2";
    const copy = (await import(/* @vite-ignore */ specifier)) as typeof import("./errors");
    expect(copy.GovernanceError).not.toBe(GovernanceError);
    const foreign = new copy.InvalidArgumentError("field", "bad", "fix");
    expect(foreign instanceof GovernanceError).toBe(false);
    expect(GovernanceError.isInstance(foreign)).toBe(true);
    expect(AgentHaltedError.isInstance(new copy.AgentHaltedError({ agentId: "a" }))).toBe(true);
  });

  it("does not recognize look-alikes", () => {
    expect(GovernanceError.isInstance({ code: "X", message: "m", recoveryHint: "h" })).toBe(false);
    expect(GovernanceError.isInstance(null)).toBe(false);
    expect(GovernanceError.isInstance(new Error("plain"))).toBe(false);
  });
});

describe("AgentHaltedError", () => {
  it("is deliberately not a GovernanceError, so a broad catch cannot swallow a halt", () => {
    const error = new AgentHaltedError({
      agentId: "billing-agent",
      haltedBy: "alice@example.com",
      haltedAt: new Date("2026-01-01T00:00:00Z"),
      reason: "runaway spend",
      path: "scope.check",
    });
    expect(GovernanceError.isInstance(error)).toBe(false);
    expect(error instanceof GovernanceError).toBe(false);
    expect(AgentHaltedError.isInstance(error)).toBe(true);
    expect(error.code).toBe("AGENT_HALTED");
    expect(error.message).toBe(
      'Agent "billing-agent" was halted by alice@example.com at 2026-01-01T00:00:00.000Z: runaway spend (refused in scope.check).',
    );
    expect(error.recoveryHint).toContain("presence.resume");
  });
});

describe("ConfigError", () => {
  it("lists every problem with where it came from and the fix", () => {
    const error = new ConfigError([
      {
        source: "env",
        name: "GOVERNANCE_DB_POOL_SIZE",
        problem: "is not an integer.",
        fix: "Use digits only.",
      },
      { source: "option", name: "logLevel", problem: "is not a level.", fix: 'Use "info".' },
    ]);
    expect(error.code).toBe("CONFIG_INVALID");
    expect(error.message).toContain(
      "environment variable GOVERNANCE_DB_POOL_SIZE: is not an integer. Fix: Use digits only.",
    );
    expect(error.message).toContain('option logLevel: is not a level. Fix: Use "info".');
    expect(error.issues).toHaveLength(2);
  });
});

describe("toStoreError", () => {
  const cases: [string, Record<string, unknown>, string, boolean][] = [
    [
      "connection failure (08006)",
      { code: "08006", message: "connection failure" },
      "STORE_CONNECTION",
      true,
    ],
    [
      "admin shutdown (57P01)",
      { code: "57P01", message: "terminating connection" },
      "STORE_CONNECTION",
      true,
    ],
    [
      "unique violation (23505)",
      { code: "23505", message: "duplicate key", constraint: "t_pkey" },
      "STORE_UNIQUE_VIOLATION",
      false,
    ],
    [
      "serialization failure (40001)",
      { code: "40001", message: "could not serialize" },
      "STORE_SERIALIZATION_FAILURE",
      true,
    ],
    ["deadlock (40P01)", { code: "40P01", message: "deadlock detected" }, "STORE_DEADLOCK", true],
    [
      "statement timeout (57014)",
      { code: "57014", message: "canceling statement" },
      "STORE_TIMEOUT",
      true,
    ],
    [
      "lock not available (55P03)",
      { code: "55P03", message: "could not obtain lock" },
      "STORE_TIMEOUT",
      true,
    ],
    [
      "bad password (28P01)",
      { code: "28P01", message: "password authentication failed" },
      "STORE_ACCESS_DENIED",
      false,
    ],
    [
      "missing database (3D000)",
      { code: "3D000", message: 'database "x" does not exist' },
      "STORE_ACCESS_DENIED",
      false,
    ],
    [
      "undefined table (42P01)",
      { code: "42P01", message: "relation does not exist" },
      "STORE_QUERY_FAILED",
      false,
    ],
    [
      "refused socket",
      { code: "ECONNREFUSED", message: "connect ECONNREFUSED 127.0.0.1:1" },
      "STORE_CONNECTION",
      true,
    ],
    [
      "lost connection",
      { message: "Connection terminated unexpectedly" },
      "STORE_CONNECTION",
      true,
    ],
    [
      "ended pool",
      { message: "Cannot use a pool after calling end on the pool" },
      "STORE_CLOSED",
      false,
    ],
  ];

  it.each(cases)("classifies %s", (_label, raw, code, retryable) => {
    const error = toStoreError(Object.assign(new Error(String(raw.message)), raw));
    expect(StoreError.isInstance(error)).toBe(true);
    expect((error as StoreError).code).toBe(code);
    expect((error as StoreError).isRetryable).toBe(retryable);
  });

  it("finds the driver error inside drizzle's wrapper, without copying the query or its parameters", () => {
    const driver = Object.assign(new Error("duplicate key value"), { code: "23505" });
    const wrapped = new Error("Failed query: insert into t values ($1)\nparams: secret-value", {
      cause: driver,
    });
    const error = toStoreError(wrapped) as StoreError;
    expect(error.code).toBe("STORE_UNIQUE_VIOLATION");
    expect(error.message).not.toContain("secret-value");
    expect(error.cause).toBe(driver); // the wrapper, which lists the parameters, is dropped
  });

  it("leaves errors that are not database errors alone", () => {
    const bug = new TypeError("x is not a function");
    expect(toStoreError(bug)).toBe(bug);
    const governance = new InvalidArgumentError("f", "p", "x");
    expect(toStoreError(governance)).toBe(governance);
  });

  it("never puts credentials of a connection string into its message", () => {
    const error = toStoreError(
      Object.assign(
        new Error(
          "could not connect to postgres://admin:hunter2@db.internal:5432/gov?password=hunter2",
        ),
        {
          code: "08001",
        },
      ),
    ) as StoreError;
    expect(error.message).not.toContain("hunter2");
    expect(error.message).not.toContain("admin:");
  });
});

describe("requirePort", () => {
  it("refuses a port that is missing, not an object, or lacks a method, naming the field", async () => {
    const { requirePort } = await import("./module");
    expect(() => requirePort(undefined, "clock", ["now"], "a Clock")).toThrow(
      expect.objectContaining({ code: "INVALID_ARGUMENT", field: "context.clock" }),
    );
    expect(() => requirePort(1, "clock", ["now"], "a Clock")).toThrow("got number");
    expect(() => requirePort({ now: 1 }, "clock", ["now", "nowMs"], "a Clock")).toThrow(
      "it has no now, nowMs methods",
    );
    expect(() => requirePort({ now: () => 0 }, "clock", ["now"], "a Clock")).not.toThrow();
    expect(() =>
      requirePort(undefined, "clock", ["now"], "a Clock", { optional: true }),
    ).not.toThrow();
  });
});

describe("error identities", () => {
  it("tell sibling classes apart: isInstance is implemented once, by each class's own identity", () => {
    const config = new ConfigError([{ source: "option", name: "x", problem: "p", fix: "f" }]);
    const store = new StoreError({ kind: "connection", message: "down" });
    expect(StoreError.isInstance(config)).toBe(false);
    expect(ConfigError.isInstance(store)).toBe(false);
    expect(InvalidArgumentError.isInstance(config)).toBe(false);
    expect(MigrationError.isInstance(store)).toBe(false);
    expect(SecretError.isInstance(new InvalidArgumentError("f", "p", "x"))).toBe(false);
    expect(SpoolFileError.isInstance(config)).toBe(false);
    expect(GovernanceError.isInstance(config)).toBe(true);
    expect(GovernanceError.isInstance(store)).toBe(true);
    expect(StoreError.isInstance(store)).toBe(true);
  });

  it("recognize a subclass as its parent", () => {
    class PoolExhausted extends StoreError {
      static override readonly errorIdentity = "@gov/core.PoolExhausted";
    }
    const error = new PoolExhausted({ kind: "connection", message: "no connection left" });
    expect(StoreError.isInstance(error)).toBe(true);
    expect(GovernanceError.isInstance(error)).toBe(true);
    expect(PoolExhausted.isInstance(error)).toBe(true);
    expect(PoolExhausted.isInstance(new StoreError({ kind: "connection", message: "x" }))).toBe(
      false,
    );
    expect(ConfigError.isInstance(error)).toBe(false);
  });

  it("recognize the same class from another copy of the package (same identity)", () => {
    // A second copy of @gov/core declares a different class with the same identity.
    class CopiedStoreError extends GovernanceError {
      static override readonly errorIdentity = "@gov/core.StoreError";
    }
    const foreign = new CopiedStoreError({
      code: "STORE_CONNECTION",
      message: "m",
      recoveryHint: "h",
    });
    expect(foreign instanceof StoreError).toBe(false);
    expect(StoreError.isInstance(foreign)).toBe(true);
    expect(ConfigError.isInstance(foreign)).toBe(false);
    expect(CopiedStoreError.isInstance(new StoreError({ kind: "closed", message: "x" }))).toBe(
      true,
    );
  });

  it("give a class without an identity of its own instanceof, never its parent's answer", () => {
    class Undeclared extends ConfigError {}
    const plain = new ConfigError([{ source: "env", name: "X", problem: "p", fix: "f" }]);
    expect(Undeclared.isInstance(plain)).toBe(false);
    expect(Undeclared.isInstance(new Undeclared([]))).toBe(true);
    expect(ConfigError.isInstance(new Undeclared([]))).toBe(true);
    expect(ownErrorIdentity(Undeclared)).toBeUndefined();
  });

  // Guards against: a wrapper or middleware handed the error deleting or overwriting its
  // marker, so that a halt stops looking like one and a broad catch swallows it (issue 13 review).
  it.each([
    [
      "AgentHaltedError",
      () => new AgentHaltedError({ agentId: "a" }),
      AgentHaltedError.errorIdentity,
      (value: unknown) => AgentHaltedError.isInstance(value),
    ],
    [
      "a GovernanceError",
      () => new StoreError({ kind: "closed", message: "The store is closed." }),
      StoreError.errorIdentity,
      (value: unknown) => StoreError.isInstance(value) && GovernanceError.isInstance(value),
    ],
  ] as const)("cannot be deleted or overwritten on %s", (_name, make, identity, isInstance) => {
    const error: Error = make();
    const markers = Object.getOwnPropertySymbols(error);
    expect(markers).toContain(Symbol.for(identity));
    for (const marker of markers) {
      // Test files are modules (strict mode): both throw a TypeError.
      expect(() => delete (error as unknown as Record<symbol, unknown>)[marker]).toThrow(TypeError);
      expect(() => {
        (error as unknown as Record<symbol, unknown>)[marker] = false;
      }).toThrow(TypeError);
      expect(() => Object.defineProperty(error, marker, { value: false })).toThrow(TypeError);
    }
    expect(isInstance(error)).toBe(true);
  });

  it("keep the markers out of what is logged or serialized", () => {
    const error = new StoreError({ kind: "closed", message: "The store is closed." });
    expect(Object.keys(error)).not.toContain(Symbol.for("@gov/core.StoreError"));
    expect(JSON.stringify(error)).not.toContain("@gov/core");
    expect(hasErrorIdentity(error, "@gov/core.StoreError")).toBe(true);
    expect(hasErrorIdentity(error, "@gov/core.ConfigError")).toBe(false);
  });

  it("are declared by every error class core exports", () => {
    const checked = assertErrorClasses(core, { packageName: "@gov/core" });
    expect(checked.map((entry) => entry.name).sort()).toEqual([
      "AgentHaltedError",
      "ConfigError",
      "GovernanceError",
      "InvalidArgumentError",
      "MigrationError",
      "ModuleInputError",
      "SecretError",
      "SpoolFileError",
      "StoreError",
    ]);
  });

  it("assertErrorClasses reports a missing, misnamed or shared identity and an isInstance override", () => {
    class Forgot extends GovernanceError {}
    class Misnamed extends GovernanceError {
      static override readonly errorIdentity = "@gov/demo.SomethingElse";
    }
    class Twin extends GovernanceError {
      static override readonly errorIdentity = "@gov/core.StoreError";
    }
    class Overrides extends GovernanceError {
      static override readonly errorIdentity = "@gov/demo.Overrides";
    }
    // TypeScript refuses an override of isInstance; plain JavaScript can still write one.
    Object.defineProperty(Overrides, "isInstance", {
      value: (value: unknown) => value instanceof GovernanceError,
    });
    const message = String(
      (thrown(() => assertErrorClasses({ Forgot, Misnamed, Twin, Overrides, StoreError })) as Error)
        .message,
    );
    expect(message).toContain("Forgot declares no errorIdentity of its own");
    expect(message).toContain(
      'Misnamed\'s errorIdentity "@gov/demo.SomethingElse" names another class',
    );
    expect(message).toContain("share the errorIdentity");
    expect(message).toContain("Overrides overrides isInstance");
    expect(message).toContain(
      "Overrides.isInstance(an instance of Misnamed) is true; expected false.",
    );
    expect(() =>
      assertErrorClasses({ Misnamed: StoreError }, { packageName: "@gov/demo" }),
    ).toThrow("is not in @gov/demo");
    expect(
      assertErrorClasses({ StoreError }, { packageName: "@gov/demo", reexports: [StoreError] }),
    ).toEqual([{ name: "StoreError", identity: "@gov/core.StoreError" }]);
  });
});
