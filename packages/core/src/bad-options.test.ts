import { describe, expect, it } from "vitest";
import { InvalidArgumentError } from "./errors";
import { resolveKeyring, resolveSigningKey } from "./keys";
import { runMigrations } from "./migrations";
import { ensurePgliteTemplate } from "./pglite-template";
import { createStore } from "./store";
import { rejectionOf } from "./testing";

// Guards against options that are not an object being read as "no options": createStore(42)
// opened the default embedded database, and others rejected with a bare TypeError.
describe("promise-returning functions of core refuse options that are not an object", () => {
  const store = { query: async () => [], transaction: async () => undefined } as never;
  it.each([
    ["createStore(42)", () => createStore(42 as never), "options"],
    ['createStore("postgres://x")', () => createStore("postgres://x" as never), "options"],
    ["createStore([])", () => createStore([] as never), "options"],
    ["runMigrations(null, [])", () => runMigrations(null as never, []), "store"],
    ["runMigrations(store, null)", () => runMigrations(store, null as never), "sources"],
    ["runMigrations(store, [], 1)", () => runMigrations(store, [], 1 as never), "options"],
    ["resolveKeyring(null)", () => resolveKeyring(null as never), "options"],
    ["resolveSigningKey(null)", () => resolveSigningKey(null as never), "options"],
    ["ensurePgliteTemplate(42)", () => ensurePgliteTemplate(42 as never), "options"],
  ])("%s rejects naming %s", async (_, run, field) => {
    const error = await rejectionOf(run);
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect(error).toMatchObject({ code: "INVALID_ARGUMENT", field });
  });
});

// Guards against misspelt options being ignored: runMigrations(store, [m], { dryrun: true })
// applied the migrations it was asked only to list.
describe("core functions refuse unknown options, with a did-you-mean", () => {
  const store = { query: async () => [], transaction: async () => undefined } as never;
  it.each([
    [
      "runMigrations(store, [], { dryrun: true })",
      () => runMigrations(store, [], { dryrun: true } as never),
      "options.dryrun",
      "did you mean `dryRun`?",
    ],
    [
      "ensurePgliteTemplate({ cacheDir: false })",
      () => ensurePgliteTemplate({ cacheDir: false } as never),
      "options.cacheDir",
      "did you mean `cacheDirectory`?",
    ],
    [
      "runMigrations(store, [], { logger: 1 })",
      () => runMigrations(store, [], { logger: 1 } as never),
      "options.logger",
      "must be a Logger",
    ],
  ])("%s rejects naming %s", async (_, run, field, message) => {
    const error = await rejectionOf(run);
    expect(InvalidArgumentError.isInstance(error)).toBe(true);
    expect(error).toMatchObject({ code: "INVALID_ARGUMENT", field });
    expect((error as Error).message).toContain(message);
  });
});
