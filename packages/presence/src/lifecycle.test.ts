import { AgentHaltedError, sql } from "@gov/core";
import { assertErrorClasses, type TestEngine, testEngines } from "@gov/core/testing";
import { getTableColumns } from "drizzle-orm";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type PresenceHarness, presenceHarness, thrown } from "./__fixtures__";
import { HaltNotPersistedError, InvalidPresenceInputError } from "./errors";
import { HALT_ROW_COLUMNS, type HaltRow } from "./halt-state";
import * as presenceExports from "./index";
import { presenceModule } from "./module";
import { agents } from "./schema";

/** The named fields of a row type, without its index signature. */
type NamedFields<T> = { [K in keyof T as string extends K ? never : K]: T[K] };

const HALT = { haltedBy: "alice@company.com", reason: "refund loop" };

describe("error identities", () => {
  it("each class declares its own identity, and isInstance tells them apart", () => {
    assertErrorClasses(presenceExports, { packageName: "@gov/presence" });
    const notPersisted = new HaltNotPersistedError("a", "halt", new Error("down"));
    // Regression: every subclass used to inherit a check that answered true for any GovernanceError.
    expect(InvalidPresenceInputError.isInstance(notPersisted)).toBe(false);
    expect(HaltNotPersistedError.isInstance(notPersisted)).toBe(true);
  });
});

describe("the SDK's configuration", () => {
  it("the definition contributes the enablePresence flag", () => {
    expect(presenceModule.sdk).toEqual({ flag: "enablePresence", enabledByDefault: true });
  });
});

describe.each(testEngines())("the one lifecycle on $name", (engine: TestEngine) => {
  let h: PresenceHarness;

  beforeEach(async () => {
    if (engine.available) h = await presenceHarness(engine, { haltCacheTtlMs: 3_600_000 });
  });

  afterEach(async () => {
    await h?.close();
  });

  it.skipIf(!engine.available)(
    "assertNotHalted(agentId) needs no context: it refuses with path presence.assertNotHalted",
    async () => {
      await h.presence.assertNotHalted("a");
      await h.presence.halt("a", HALT);
      const error = await thrown(() => h.presence.assertNotHalted("a"));
      expect(AgentHaltedError.isInstance(error)).toBe(true);
      expect(error).toMatchObject({ path: "presence.assertNotHalted", ...HALT });
      expect(
        h.audit.events.find((event) => event.kind === "agent.halt_enforced")?.metadata,
      ).toMatchObject({ path: "presence.assertNotHalted" });
    },
  );

  it.skipIf(!engine.available)(
    "start() is explicit and idempotent: the halt checks no longer start the module",
    async () => {
      await h.presence.halt("a", HALT);
      const other = h.another();
      // Not started: the cache is empty and nothing was started behind the caller's back.
      expect(other.isHalted("a")).toBe(false);
      await other.start();
      await other.start();
      expect(other.isHalted("a")).toBe(true);
      await other.close();
      await other.close();
      await other.start(); // a closed module stays closed
    },
  );

  it.skipIf(!engine.available)(
    "public async methods reject (never throw synchronously) on bad input",
    async () => {
      for (const run of [
        () => h.presence.heartbeat(""),
        () => h.presence.halt("a", null as never),
        () => h.presence.assertNotHalted(42 as never),
        () => h.presence.checkStale(-1),
      ]) {
        let result: unknown;
        expect(() => {
          result = run();
        }).not.toThrow();
        await expect(result).rejects.toBeInstanceOf(Error);
      }
    },
  );

  it.skipIf(!engine.available)(
    "the hand-written row types and column lists match the migrated table",
    async () => {
      const columns = await h.store.query<{ column_name: string; is_nullable: string }>(sql`
        select column_name, is_nullable from information_schema.columns
        where table_schema = 'gov_presence' and table_name = 'agents' order by column_name`);
      // The drizzle table (schema.ts) is the migrated table.
      expect(columns.map((column) => column.column_name)).toEqual(
        Object.values(getTableColumns(agents))
          .map((column) => column.name)
          .sort(),
      );
      // HaltRow (halt-state.ts): every field (the compiler checks the list), null where it may be.
      const haltRow: Required<NamedFields<HaltRow>> = {
        agent_id: "a",
        halted_at: null,
        halted_by: null,
        halt_reason: null,
        halt_version: null,
        resumed_at: null,
        resumed_by: null,
        resume_reason: null,
        halt_mac: null,
        halt_key_id: null,
      };
      const nullable = new Map(columns.map((column) => [column.column_name, column.is_nullable]));
      for (const [field, sample] of Object.entries(haltRow)) {
        expect(nullable.get(field), field).toBe(sample === null ? "YES" : "NO");
      }
      await h.presence.halt("a", HALT);
      const [row] = await h.store.query<HaltRow>(
        sql`select ${HALT_ROW_COLUMNS} from gov_presence.agents where agent_id = 'a'`,
      );
      expect(Object.keys(row ?? {}).sort()).toEqual(Object.keys(haltRow).sort());
    },
  );

  it.skipIf(!engine.available)("a bad agent id is refused with the field named", async () => {
    const error = await thrown(() => h.presence.assertNotHalted("a\u200b"));
    expect(error).toMatchObject({ field: "agentId" });
  });
});
