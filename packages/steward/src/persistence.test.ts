import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  ChainKey,
  canonicalJsonHash,
  createStore,
  Keyring,
  ManualClock,
  type Store,
  silentLogger,
  sql,
} from "@gov/core";
import {
  createTestStore,
  recordingAuditSink,
  recordingHaltGuard,
  recordingLogger,
  type TestEngine,
  type TestStore,
  testEngines,
} from "@gov/core/testing";
import { afterAll, afterEach, beforeEach, describe, expect, it } from "vitest";
import { validateBlueprint } from "./blueprint";
import { BlueprintNotFound, BlueprintSignatureInvalid, PolicyError } from "./errors";
import { StewardModule, type StewardModuleOptions, stewardMigrations } from "./module";
import {
  DirectoryBlueprintRegistry,
  fetchWithParents,
  PostgresBlueprintRegistry,
} from "./persistence";
import { signBlueprint } from "./signature";
import { GovernanceSteward } from "./steward";

const DAY_MS = 86_400_000;
const KEY_A = new ChainKey("steward-registry-test-key-A-0123456789abcdef");
const KEY_B = new ChainKey("steward-registry-test-key-B-fedcba9876543210");
const KEYRING = new Keyring(KEY_A);

/** A stored blueprint's content, as a table owner would edit it. */
interface StoredContent {
  id: string;
  version: string;
  scope?: unknown;
  tripwires: { condition: string; onFail: { decision: string } }[];
}

function first(content: StoredContent): StoredContent["tripwires"][number] {
  const [tripwire] = content.tripwires;
  if (!tripwire) throw new Error("no tripwire to edit");
  return tripwire;
}

const STATEFUL = {
  id: "stateful@1",
  version: "1",
  tripwires: [
    {
      id: "daily",
      condition: "state.daily_total + args.amount > 1000",
      requiresState: true,
      onFail: { decision: "BLOCK" },
    },
    {
      id: "rate",
      condition: "state.actions_last_hour >= 50",
      requiresState: true,
      onFail: { decision: "ESCALATE" },
    },
  ],
  trustDebt: { enabled: false },
};

describe.each(testEngines())("steward persistence on $name", (engine: TestEngine) => {
  let store: TestStore;
  let clock: ManualClock;

  beforeEach(async () => {
    if (!engine.available) return;
    store = await createTestStore(engine, { migrations: [stewardMigrations] });
    clock = new ManualClock(new Date("2026-03-01T10:00:00Z"));
  });

  afterEach(async () => {
    await store?.close();
  });

  /** Another pool on the same database (real Postgres), or the same store (PGlite). */
  async function secondStore(): Promise<Store> {
    return store.connectionString
      ? createStore({ databaseUrl: store.connectionString, logger: silentLogger })
      : store;
  }

  function make(
    options: StewardModuleOptions = {},
    on: Store = store,
    ports: Partial<{
      keyring: Keyring;
      audit: ReturnType<typeof recordingAuditSink>;
      logger: ReturnType<typeof recordingLogger>;
    }> = {},
  ) {
    return StewardModule.create(
      {
        store: on,
        keyring: ports.keyring ?? KEYRING,
        clock,
        logger: ports.logger ?? silentLogger,
        audit: ports.audit ?? recordingAuditSink(),
        halt: recordingHaltGuard(),
      },
      { blueprints: [STATEFUL], ...options },
    );
  }

  it.skipIf(!engine.available)(
    "shares stateful counters between two stewards on one database",
    async () => {
      const first = await make();
      const second = await make();
      const pay = (module: StewardModule, amount: number) =>
        module.evaluate({ agentId: "payer", action: "pay", parameters: { amount } });
      expect((await pay(first, 600)).intervention).toBe("OK");
      // The second process sees the first's 600.
      expect((await pay(second, 500)).intervention).toBe("BLOCK");
      expect((await pay(second, 400)).intervention).toBe("OK");
      expect((await pay(first, 1)).intervention).toBe("BLOCK");
      clock.advance(DAY_MS);
      expect((await pay(second, 900)).intervention).toBe("OK");
    },
  );

  it.skipIf(!engine.available)(
    "never lets a negative amount lower the daily total; counts bigint amounts",
    async () => {
      const steward = await make();
      const pay = (amount: number | bigint) =>
        steward.evaluate({ agentId: "neg", action: "pay", parameters: { amount } });
      expect((await pay(900)).intervention).toBe("OK");
      expect((await pay(-5000)).intervention).toBe("OK"); // allowed by this blueprint, counts 0
      expect((await pay(200)).intervention).toBe("BLOCK");
      const other = await make();
      const payBig = (amount: bigint) =>
        other.evaluate({ agentId: "big", action: "pay", parameters: { amount } });
      expect((await payBig(900n)).intervention).toBe("OK");
      expect((await payBig(200n)).intervention).toBe("BLOCK");
    },
  );

  it.skipIf(!engine.available)("counts an approved ESCALATE once it is committed", async () => {
    const steward = await make({
      blueprints: [
        {
          ...STATEFUL,
          id: "escalating@1",
          tripwires: [{ ...STATEFUL.tripwires[0], onFail: { decision: "ESCALATE" } }],
        },
      ],
    });
    const pay = (amount: number) =>
      steward.evaluate({ agentId: "esc", action: "pay", parameters: { amount } });
    expect((await pay(900)).intervention).toBe("OK");
    const escalated = await pay(900);
    expect(escalated.intervention).toBe("ESCALATE");
    expect(await steward.commit(escalated)).toBe(true);
    expect((await pay(50)).intervention).toBe("ESCALATE");
  });

  it.skipIf(!engine.available)(
    "never moves a day bucket backwards when a clock lags at midnight",
    async () => {
      const steward = await make();
      const pay = (amount: number) =>
        steward.evaluate({ agentId: "late", action: "pay", parameters: { amount } });
      clock.set(new Date("2026-03-02T00:00:01Z"));
      expect((await pay(600)).intervention).toBe("OK");
      clock.set(new Date("2026-03-01T23:59:59Z")); // another process, 2 s behind
      expect((await pay(100)).intervention).toBe("OK"); // counted into the new day
      clock.set(new Date("2026-03-02T00:00:02Z"));
      expect((await pay(500)).intervention).toBe("BLOCK"); // 600 + 100 + 500 > 1000
    },
  );

  it.skipIf(!engine.available)(
    "counts concurrent updates from two stewards atomically",
    async () => {
      // On real Postgres the second steward has a pool of its own, as another process would.
      const other = await secondStore();
      const first = await make();
      const second = await make({}, other);
      const calls = Array.from({ length: 40 }, (_, index) =>
        (index % 2 === 0 ? first : second).evaluate({
          agentId: "busy",
          action: "pay",
          parameters: { amount: 1.5 },
        }),
      );
      const results = await Promise.all(calls);
      expect(results.every((result) => result.intervention === "OK")).toBe(true);
      const [row] = await store.query<{ day_count: number; day_amount: number; total: string }>(
        sql`select day_count, day_amount, total from gov_steward.agent_state where agent_id = 'busy'`,
      );
      expect(row).toMatchObject({ day_count: 40, day_amount: 60 });
      expect(Number(row?.total)).toBe(40);
      // The hour's count reaches the rate tripwire.
      for (let index = 0; index < 10; index++)
        await first.evaluate({ agentId: "busy", action: "pay", parameters: { amount: 0 } });
      const limited = await second.evaluate({
        agentId: "busy",
        action: "pay",
        parameters: { amount: 0 },
      });
      expect(limited.intervention).toBe("ESCALATE");
      if (other !== store) await other.close();
    },
  );

  it.skipIf(!engine.available)(
    "checks and counts a limit atomically: concurrent evaluations never overshoot it",
    async () => {
      const other = await secondStore();
      const first = await make();
      const second = await make({}, other);
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, index) =>
          (index % 2 === 0 ? first : second).evaluate({
            agentId: "racer",
            action: "pay",
            parameters: { amount: 100 },
          }),
        ),
      );
      const allowed = results.filter((result) => result.intervention === "OK");
      expect(allowed).toHaveLength(10);
      // The refused ones were released: the day holds exactly the allowed 1000.
      const [row] = await store.query<{ day_count: number; day_amount: number }>(
        sql`select day_count, day_amount from gov_steward.agent_state where agent_id = 'racer'`,
      );
      expect(row).toEqual({ day_count: 10, day_amount: 1000 });
      if (other !== store) await other.close();
    },
  );

  it.skipIf(!engine.available)(
    "persists trust debt, adds atomically from two stewards, and decays it",
    async () => {
      const blocking = {
        id: "blocking@1",
        version: "1",
        tripwires: [{ id: "no", condition: "true", onFail: { decision: "BLOCK" } }],
        trustDebt: {
          thresholds: { elevatedMonitoring: 1000, restrictedMode: 1000, retieringReview: 1000 },
        },
      };
      const other = await secondStore();
      const first = await make({ blueprints: [blocking] });
      const second = await make({ blueprints: [blocking] }, other);
      await Promise.all(
        Array.from({ length: 10 }, (_, index) =>
          (index % 2 === 0 ? first : second).evaluate({ agentId: "debtor", action: "x" }),
        ),
      );
      expect(await second.steward.getTrustDebt("debtor")).toBeCloseTo(20, 9);
      clock.advance(2 * DAY_MS);
      expect(await first.steward.getTrustDebt("debtor")).toBeCloseTo(20 * 0.81, 9);
      const result = await first.evaluate({ agentId: "debtor", action: "x" });
      expect(result.governanceStatus.trustDebtBefore).toBeCloseTo(16.2, 9);
      expect(result.governanceStatus.trustDebtAfter).toBeCloseTo(18.2, 9);
      if (other !== store) await other.close();
    },
  );

  it.skipIf(!engine.available)(
    "publishes immutable blueprint versions and loads them with their parents",
    async () => {
      const module = await make();
      const base = {
        id: "base@1",
        version: "1",
        tripwires: [{ id: "big", condition: "args.amount > 100", onFail: { decision: "BLOCK" } }],
      };
      const child = { id: "child@1", version: "1", inherits: "base@1" };
      const published = await module.registry.publish(base);
      expect(published.contentHash).toMatch(/^[0-9a-f]{64}$/);
      await expect(module.registry.publish(base)).resolves.toEqual(published);
      await expect(module.registry.publish({ ...base, description: "changed" })).rejects.toSatisfy(
        (error) => PolicyError.isInstance(error) && /immutable/.test(error.message),
      );
      await module.registry.publish(child);
      expect(await module.registry.list()).toEqual(["base@1", "child@1"]);
      await expect(module.registry.get("missing@1")).rejects.toSatisfy((error) =>
        BlueprintNotFound.isInstance(error),
      );
      const loaded = await make({ blueprints: [], blueprintIds: ["child@1"] });
      expect(
        (await loaded.evaluate({ action: "pay", parameters: { amount: 500 } })).intervention,
      ).toBe("BLOCK");
      expect(loaded.steward.blueprints.map((blueprint) => blueprint.id).sort()).toEqual([
        "base@1",
        "child@1",
      ]);
    },
  );

  it.skipIf(!engine.available)("refuses a registry row altered in the database", async () => {
    const module = await make();
    await module.registry.publish({ id: "t@1", version: "1", description: "original" });
    await store.query(
      sql`update gov_steward.blueprints set content = jsonb_set(content, '{description}', '"altered"') where id = 't@1'`,
    );
    await expect(module.registry.get("t@1")).rejects.toThrow(/does not match its content hash/);
  });

  const GUARDED = {
    id: "payments@1",
    version: "1",
    scope: { tools: ["transfer"] },
    tripwires: [
      { id: "large", condition: "args.amount > 1000", onFail: { decision: "BLOCK" } },
      { id: "night", condition: "context.hour < 6", onFail: { decision: "ESCALATE" } },
    ],
  };

  /**
   * A refused row was written to the audit chain (once, as the steward's own event), and
   * nothing is loaded from it: a steward built from the registry refuses to start.
   */
  async function expectAuditedRefusal(
    audit: ReturnType<typeof recordingAuditSink>,
    id: string,
    reason: string,
  ) {
    expect(audit.events).toEqual([
      expect.objectContaining({
        agentId: "gov.steward",
        kind: "steward.blueprint_rejected",
        metadata: expect.objectContaining({ blueprintId: id, reason }),
      }),
    ]);
    await expect(make({ blueprints: [], blueprintIds: [id] }, store, { audit })).rejects.toSatisfy(
      (error) => BlueprintSignatureInvalid.isInstance(error),
    );
  }

  /** A row without key id or signature, as written before signatures (or by hand). */
  async function insertUnsigned(document: { id: string; version: string }) {
    await store.query(sql`
      insert into gov_steward.blueprints (id, name, version, content, content_hash)
      values (${document.id}, 'x', ${document.version}, ${JSON.stringify(document)}::jsonb, ${canonicalJsonHash(document, "blueprint")})`);
  }

  /** Overwrite a stored row's content, edited by `edit`, with a recomputed content hash. */
  async function tamper(id: string, edit: (content: StoredContent) => void) {
    const [row] = await store.query<{ content: StoredContent }>(
      sql`select content from gov_steward.blueprints where id = ${id}`,
    );
    const content = structuredClone(row?.content) as StoredContent;
    edit(content);
    const hash = canonicalJsonHash(validateBlueprint(content), "blueprint");
    await store.query(sql`
      update gov_steward.blueprints set content = ${JSON.stringify(content)}::jsonb, content_hash = ${hash}
      where id = ${id}`);
  }

  // Rule 8: a table owner could edit a published blueprint and recompute its content hash, and
  // every process loading it would enforce the edited policy. Rows are signed under the chain
  // key now, and one whose signature fails is refused, logged and audited.
  it.skipIf(!engine.available).each([
    [
      "loosen a condition",
      (c: StoredContent) => {
        first(c).condition = "args.amount > 1e12";
      },
    ],
    [
      "delete a tripwire",
      (c: StoredContent) => {
        c.tripwires = c.tripwires.slice(1);
      },
    ],
    [
      "soften a decision",
      (c: StoredContent) => {
        first(c).onFail.decision = "NUDGE";
      },
    ],
    [
      "narrow the scope",
      (c: StoredContent) => {
        c.scope = { tools: ["nothing"] };
      },
    ],
    [
      "swap the version",
      (c: StoredContent) => {
        c.id = "payments@2";
        c.version = "2";
      },
    ],
  ])(
    "refuses a row whose content was edited with its hash recomputed: %s",
    async (_label, edit) => {
      const audit = recordingAuditSink();
      const logger = recordingLogger();
      const module = await make({}, store, { audit, logger });
      await module.registry.publish(GUARDED);
      await tamper("payments@1", edit);
      let caught: unknown;
      try {
        await module.registry.get("payments@1");
      } catch (error) {
        caught = error;
      }
      expect(BlueprintSignatureInvalid.isInstance(caught)).toBe(true);
      expect(caught).toMatchObject({
        code: "BLUEPRINT_SIGNATURE_INVALID",
        blueprintId: "payments@1",
        reason: "bad_signature",
      });
      expect(
        logger.lines.some(
          (line) => line.level === "warn" && /Refused blueprint/.test(line.message),
        ),
      ).toBe(true);
      await expectAuditedRefusal(audit, "payments@1", "bad_signature");
    },
  );

  it.skipIf(!engine.available)(
    "refuses inserted, forged, copied, foreign-key and hash-edited rows",
    async () => {
      const module = await make();
      await module.registry.publish(GUARDED);
      const document = validateBlueprint(GUARDED);
      const insert = async (
        id: string,
        content: unknown,
        fields: { hash?: string; keyId?: string | null; signature?: string | null },
      ) => {
        const hash = fields.hash ?? canonicalJsonHash(validateBlueprint(content), "blueprint");
        await store.query(sql`
          insert into gov_steward.blueprints (id, name, version, content, content_hash, key_id, signature)
          values (${id}, 'x', '1', ${JSON.stringify(content)}::jsonb, ${hash}, ${fields.keyId ?? null}, ${fields.signature ?? null})`);
      };
      const open = { id: "open@1", version: "1", tripwires: [] };
      await insert("open@1", open, {});
      const forged = { ...open, id: "forged@1" };
      await insert("forged@1", forged, { keyId: KEY_A.id, signature: "ab".repeat(32) });
      const foreign = { ...open, id: "foreign@1" };
      await insert("foreign@1", foreign, signBlueprint(KEY_B, validateBlueprint(foreign)));
      // The signed row of payments@1, copied under another id.
      const [row] = await store.query<{ key_id: string; signature: string; content_hash: string }>(
        sql`select key_id, signature, content_hash from gov_steward.blueprints where id = 'payments@1'`,
      );
      await insert("copy@1", document, {
        hash: row?.content_hash ?? "",
        keyId: row?.key_id ?? null,
        signature: row?.signature ?? null,
      });
      await store.query(
        sql`update gov_steward.blueprints set content_hash = ${"0".repeat(64)} where id = 'payments@1'`,
      );
      for (const [id, reason] of [
        ["open@1", "unsigned"],
        ["forged@1", "bad_signature"],
        ["foreign@1", "unknown_key"],
        ["copy@1", "bad_signature"],
        ["payments@1", "hash_mismatch"],
      ] as const) {
        await expect(module.registry.get(id), id).rejects.toMatchObject({
          code: "BLUEPRINT_SIGNATURE_INVALID",
          reason,
        });
      }
    },
  );

  it.skipIf(!engine.available)(
    "refuses a row written before signatures until the same content is published again",
    async () => {
      const module = await make();
      const document = validateBlueprint(GUARDED);
      // As the row was written by the previous version: no key id, no signature.
      await insertUnsigned(document);
      await expect(module.registry.get("payments@1")).rejects.toMatchObject({
        reason: "unsigned",
        recoveryHint: expect.stringMatching(/Publish the same blueprint again/),
      });
      await expect(
        module.registry.publish({ ...GUARDED, description: "other content" }),
      ).rejects.toSatisfy(
        (error) =>
          PolicyError.isInstance(error) && /unsigned row with other content/.test(error.message),
      );
      await module.registry.publish(GUARDED);
      expect(await module.registry.get("payments@1")).toEqual(document);
    },
  );

  it.skipIf(!engine.available)(
    "verifies rows signed before a key rotation while the old key is in the keyring",
    async () => {
      const before = await make();
      await before.registry.publish(GUARDED);
      const rotated = await make({}, store, { keyring: new Keyring(KEY_B, [KEY_A]) });
      expect((await rotated.registry.get("payments@1")).id).toBe("payments@1");
      await rotated.registry.publish({ ...GUARDED, id: "payments@2", version: "2" });
      const onlyNew = await make({}, store, { keyring: new Keyring(KEY_B) });
      await expect(onlyNew.registry.get("payments@1")).rejects.toMatchObject({
        reason: "unknown_key",
      });
      expect((await onlyNew.registry.get("payments@2")).version).toBe("2");
      // Publishing again what is stored, under a process that cannot verify it, is refused.
      await expect(onlyNew.registry.publish(GUARDED)).rejects.toMatchObject({
        reason: "unknown_key",
      });
    },
  );

  /** A registry row as a table owner saves it, to put it back later. */
  async function savedRow(id: string) {
    const [row] = await store.query<{
      content: unknown;
      content_hash: string;
      key_id: string | null;
      signature: string | null;
    }>(
      sql`select content, content_hash, key_id, signature from gov_steward.blueprints where id = ${id}`,
    );
    if (!row) throw new Error(`no row ${id}`);
    return row;
  }

  async function putBack(id: string, row: Awaited<ReturnType<typeof savedRow>>) {
    await store.query(sql`delete from gov_steward.blueprints where id = ${id}`);
    await store.query(sql`
      insert into gov_steward.blueprints (id, name, version, content, content_hash, key_id, signature)
      values (${id}, 'x', '1', ${JSON.stringify(row.content)}::jsonb, ${row.content_hash}, ${row.key_id}, ${row.signature})`);
  }

  const LAX = {
    id: "limits@1",
    version: "1",
    tripwires: [{ id: "big", condition: "args.amount > 1e12", onFail: { decision: "BLOCK" } }],
  };
  const STRICT = {
    ...LAX,
    tripwires: [{ id: "big", condition: "args.amount > 10", onFail: { decision: "BLOCK" } }],
  };

  // Registry attack: a version deleted and published again with other content let a saved
  // copy of its old signed row verify again when a table owner put it back. What was ever
  // published under an id is kept in a signed ledger; other content is refused for good.
  it.skipIf(!engine.available)(
    "refuses to publish a version again with other content, even after its row was deleted",
    async () => {
      const module = await make();
      const published = await module.registry.publish(LAX);
      const old = await savedRow("limits@1");
      await store.query(sql`delete from gov_steward.blueprints where id = 'limits@1'`);
      await expect(module.registry.publish(STRICT)).rejects.toSatisfy(
        (error) =>
          PolicyError.isInstance(error) &&
          /was published before with other content/.test(error.message) &&
          /immutable/.test(error.message),
      );
      // The same content can be published again (the row restored), and the saved row is it.
      await expect(module.registry.publish(LAX)).resolves.toEqual(published);
      await putBack("limits@1", old);
      expect((await module.registry.get("limits@1")).tripwires[0]?.condition).toBe(
        "args.amount > 1e12",
      );
      // Nothing was written for the refused content.
      const [entry] = await store.query<{ content_hash: string }>(
        sql`select content_hash from gov_steward.blueprint_ledger where id = 'limits@1'`,
      );
      expect(entry?.content_hash).toBe(published.contentHash);
    },
  );

  it.skipIf(!engine.available)(
    "refuses a saved signed row put back after its version was published again with other content",
    async () => {
      const audit = recordingAuditSink();
      const module = await make({}, store, { audit });
      await module.registry.publish(LAX);
      const old = await savedRow("limits@1");
      // A table owner deletes the row and its ledger entry; someone publishes other content
      // under the same version; the owner puts the old signed row back.
      await store.query(sql`delete from gov_steward.blueprints where id = 'limits@1'`);
      await store.query(sql`delete from gov_steward.blueprint_ledger where id = 'limits@1'`);
      await module.registry.publish(STRICT);
      await putBack("limits@1", old);
      await expect(module.registry.get("limits@1")).rejects.toMatchObject({
        code: "BLUEPRINT_SIGNATURE_INVALID",
        reason: "ledger_mismatch",
      });
      await expectAuditedRefusal(audit, "limits@1", "ledger_mismatch");
    },
  );

  // Guards against versions stored before the ledger existed being published again with other
  // content after their row is deleted: the migration records them (unsigned, as SQL cannot
  // sign), and publishing the same content signs their entries.
  it.skipIf(!engine.available)(
    "the migration records the versions already stored; publishing them again signs the entries",
    async () => {
      const module = await make();
      await module.registry.publish(LAX);
      await insertUnsigned(validateBlueprint(GUARDED));
      // As before migration 0002: no ledger.
      await store.query(sql`delete from gov_steward.blueprint_ledger`);
      const migration = await readFile(
        new URL("../drizzle/0003_record_published_blueprints.sql", import.meta.url),
        "utf8",
      );
      await store.query(sql.raw(migration));
      const ledger = async () =>
        store.query<{ id: string; signed: boolean }>(
          sql`select id, signature is not null as signed from gov_steward.blueprint_ledger order by id`,
        );
      expect(await ledger()).toEqual([
        { id: "limits@1", signed: false },
        { id: "payments@1", signed: false },
      ]);
      await store.query(sql`delete from gov_steward.blueprints where id = 'limits@1'`);
      await expect(module.registry.publish(STRICT)).rejects.toThrow(
        /published before with other content.*not signed by this deployment/,
      );
      await module.registry.publish(LAX);
      await module.registry.publish(GUARDED);
      expect(await ledger()).toEqual([
        { id: "limits@1", signed: true },
        { id: "payments@1", signed: true },
      ]);
      expect((await module.registry.get("payments@1")).id).toBe("payments@1");
    },
  );

  // Registry attack: a row planted unsigned with other content was reported as "already
  // published with other content", as if someone holding the chain key had published it.
  it.skipIf(!engine.available)(
    "says that an unsigned row with other content was not published, and refuses forged ones",
    async () => {
      const module = await make();
      await insertUnsigned(validateBlueprint(LAX));
      let caught: unknown;
      try {
        await module.registry.publish(STRICT);
      } catch (error) {
        caught = error;
      }
      expect(PolicyError.isInstance(caught)).toBe(true);
      const message = (caught as Error).message;
      expect(message).toMatch(/unsigned row with other content/);
      expect(message).not.toMatch(/already published/);
      // A signed-looking row with a forged signature is a signature failure, not a publication.
      await store.query(sql`
        update gov_steward.blueprints set key_id = ${KEY_A.id}, signature = ${"ab".repeat(32)}
        where id = 'limits@1'`);
      await expect(module.registry.publish(STRICT)).rejects.toMatchObject({
        code: "BLUEPRINT_SIGNATURE_INVALID",
        reason: "bad_signature",
      });
      // A ledger entry written by hand (unsigned, or with a forged signature) is named as such.
      await store.query(sql`delete from gov_steward.blueprints where id = 'limits@1'`);
      await store.query(sql`
        insert into gov_steward.blueprint_ledger (id, content_hash, key_id, signature)
        values ('other@1', ${"0".repeat(64)}, ${KEY_A.id}, ${"cd".repeat(32)})`);
      await expect(module.registry.publish({ ...STRICT, id: "other@1" })).rejects.toThrow(
        /not signed by this deployment/,
      );
    },
  );

  it.skipIf(!engine.available)("needs a keyring to publish or read", async () => {
    const registry = new PostgresBlueprintRegistry(store);
    await expect(registry.publish(GUARDED)).rejects.toMatchObject({ code: "INVALID_ARGUMENT" });
    await expect(registry.get("payments@1")).rejects.toMatchObject({ code: "INVALID_ARGUMENT" });
  });
});

describe("directory registry", () => {
  const directory = mkdtempSync(join(tmpdir(), "steward-registry-"));
  afterAll(() => rmSync(directory, { recursive: true, force: true }));

  it("loads a blueprint and its parent from YAML files", async () => {
    writeFileSync(
      join(directory, "base.yaml"),
      'id: base@1\nversion: "1"\ntripwires:\n  - id: big\n    condition: "args.amount > 10"\n    onFail: { decision: ESCALATE }\n',
    );
    writeFileSync(join(directory, "child.yml"), 'id: child@1\nversion: "1"\ninherits: base@1\n');
    writeFileSync(join(directory, "notes.txt"), "ignored");
    const registry = new DirectoryBlueprintRegistry(directory);
    expect((await registry.list()).sort()).toEqual(["base@1", "child@1"]);
    expect((await fetchWithParents(registry, ["child@1"])).map((document) => document.id)).toEqual([
      "child@1",
      "base@1",
    ]);
    const steward = await GovernanceSteward.fromRegistry(registry, ["child@1"], {
      logger: silentLogger,
    });
    expect((await steward.evaluate({ action: "a", parameters: { amount: 11 } })).intervention).toBe(
      "ESCALATE",
    );
    await expect(registry.get("nope@1")).rejects.toSatisfy((error) =>
      BlueprintNotFound.isInstance(error),
    );
  });
});
