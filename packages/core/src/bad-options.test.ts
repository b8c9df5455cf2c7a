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
