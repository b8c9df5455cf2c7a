/**
 * The halt under attack from a table owner: someone who can insert, update and delete rows of
 * gov_presence.agents but does not hold the chain key. Every halt and resume is signed under
 * the chain key; a row whose signature fails is refused, reported, and enforced as a halt.
 */
import { ChainKey, Keyring, sql } from "@gov/core";
import { type TestEngine, testEngines } from "@gov/core/testing";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { haltedError, type PresenceHarness, presenceHarness, thrown } from "./__fixtures__";
import { HaltNotPersistedError } from "./errors";

const HALT = { haltedBy: "alice@company.com", reason: "refund loop" };
const UNVERIFIABLE = "(unverifiable halt state)";
const REJECTED = "presence.halt_state_rejected";

describe.each(testEngines())("halt rows edited in the table on $name", (engine: TestEngine) => {
  let h: PresenceHarness;

  beforeEach(async () => {
    if (engine.available) h = await presenceHarness(engine, { haltCacheTtlMs: 3_600_000 });
  });

  afterEach(async () => {
    await h?.close();
  });

  const edit = (statement: ReturnType<typeof sql>) => h.store.query(statement);

  /** The events and warnings that reported a refused row of `agentId`. */
  const reports = (agentId: string) => ({
    events: h.audit.events.filter((event) => event.kind === REJECTED && event.agentId === agentId),
    warnings: h.logger.lines.filter(
      (line) => line.level === "warn" && line.message.includes(agentId),
    ),
  });

  /** The halt is enforced as unverifiable in the process that saw it and in a fresh one. */
  async function expectFailsClosed(agentId: string): Promise<void> {
    await h.presence.forceRefreshHaltedCache();
    const fresh = h.another();
    await fresh.start();
    for (const module of [h.presence, fresh]) {
      expect(module.isHalted(agentId)).toBe(true);
      const error = await haltedError(() =>
        module.assertNotHalted(agentId, { path: "tamper.check" }),
      );
      expect(error.haltedBy).toBe(UNVERIFIABLE);
      expect(error.reason).toMatch(/failed verification/);
      expect(error.reason).not.toContain("benign");
    }
    const [listed] = (await fresh.listAgents()).filter((agent) => agent.agentId === agentId);
    expect(listed).toMatchObject({ halted: true, halt: { haltedBy: UNVERIFIABLE } });
    // Reported: a warning naming the agent and an audit event, once per row version and process.
    await h.presence.forceRefreshHaltedCache();
    await fresh.forceRefreshHaltedCache();
    const [row] = await h.store.query<{ version: string | null }>(
      sql`select halt_version::text as version from gov_presence.agents where agent_id = ${agentId}`,
    );
    const { events: all, warnings } = reports(agentId);
    const events = all.filter((event) => event.metadata?.version === Number(row?.version));
    expect(events).toHaveLength(2);
    expect(events[0]?.metadata).toMatchObject({ reason: expect.any(String) });
    expect(warnings.length).toBeGreaterThanOrEqual(2);
  }

  // Each edit a table owner can make to lift a halt or rewrite it: refused, reported, enforced.
  it.skipIf(!engine.available)(
    "a lifted, rewritten or version-bumped halt row is refused and enforced as a halt",
    async () => {
      const edits: [string, ReturnType<typeof sql>][] = [
        [
          "lifted",
          sql`update gov_presence.agents set halted_at = null, halted_by = null, halt_reason = null where agent_id = 'lifted'`,
        ],
        [
          "reworded",
          sql`update gov_presence.agents set halt_reason = 'benign' where agent_id = 'reworded'`,
        ],
        [
          "reattributed",
          sql`update gov_presence.agents set halted_by = 'benign' where agent_id = 'reattributed'`,
        ],
        [
          "backdated",
          sql`update gov_presence.agents set halted_at = halted_at - interval '1 day' where agent_id = 'backdated'`,
        ],
        [
          "bumped",
          sql`update gov_presence.agents set halt_version = halt_version + 100, halted_at = null, halted_by = null, halt_reason = null where agent_id = 'bumped'`,
        ],
        [
          "unsigned-halt",
          sql`update gov_presence.agents set halt_mac = null, halt_key_id = null, halt_reason = 'benign' where agent_id = 'unsigned-halt'`,
        ],
        [
          "foreign-key-id",
          sql`update gov_presence.agents set halt_key_id = '0123456789abcdef', halted_at = null, halted_by = null, halt_reason = null where agent_id = 'foreign-key-id'`,
        ],
      ];
      for (const [agentId] of edits) await h.presence.halt(agentId, HALT);
      for (const [agentId, statement] of edits) {
        await edit(statement);
        await expectFailsClosed(agentId);
      }
    },
  );

  // closeAgent removes the row of an agent that is not halted: a forged resume must not make
  // the row of a halted agent removable (that would lift the halt for every new process).
  it.skipIf(!engine.available)(
    "closeAgent refuses to remove a row whose halt state fails verification",
    async () => {
      await h.presence.halt("closing", HALT);
      await edit(
        sql`update gov_presence.agents set halted_at = null, halted_by = null, halt_reason = null where agent_id = 'closing'`,
      );
      const error = await thrown(() => h.presence.closeAgent("closing"));
      expect(error).toMatchObject({ code: "PRESENCE_CLOSE_REFUSED" });
      const rows = await h.store.query(
        sql`select 1 from gov_presence.agents where agent_id = 'closing'`,
      );
      expect(rows).toHaveLength(1);
    },
  );

  it.skipIf(!engine.available)(
    "a signature copied from another agent's row is refused",
    async () => {
      await h.presence.halt("victim", HALT);
      await h.presence.halt("donor", { haltedBy: "bob", reason: "short" });
      await h.presence.resume("donor", { resumedBy: "bob", reason: "done" });
      // The donor's whole signed resume, pasted onto the victim's row.
      await edit(sql`
        update gov_presence.agents as victim set
          halted_at = donor.halted_at, halted_by = donor.halted_by, halt_reason = donor.halt_reason,
          halt_version = donor.halt_version, resumed_at = donor.resumed_at,
          resumed_by = donor.resumed_by, resume_reason = donor.resume_reason,
          halt_mac = donor.halt_mac, halt_key_id = donor.halt_key_id
        from gov_presence.agents as donor
        where victim.agent_id = 'victim' and donor.agent_id = 'donor'`);
      await expectFailsClosed("victim");
      expect(h.presence.isHalted("donor")).toBe(false);
    },
  );

  it.skipIf(!engine.available)(
    "a halt signed with a key that is not in the keyring is refused",
    async () => {
      const stranger = h.another({
        keyring: new Keyring(new ChainKey("another-deployment-secret-0123456789-abcdefgh")),
      });
      await stranger.halt("foreign", { haltedBy: "mallory", reason: "signed elsewhere" });
      await stranger.resume("foreign", { resumedBy: "mallory", reason: "signed elsewhere" });
      await expectFailsClosed("foreign");
    },
  );

  it.skipIf(!engine.available)(
    "a forged halt inserted for a healthy agent halts it as unverifiable, and says so",
    async () => {
      await h.presence.heartbeat("healthy");
      await edit(sql`
        update gov_presence.agents set halted_at = now(), halted_by = 'mallory',
          halt_reason = 'forged', halt_version = nextval('gov_presence.halt_version')
        where agent_id = 'healthy'`);
      await expectFailsClosed("healthy");
    },
  );

  // What a table owner can still do, reduced: an older, validly signed row (a replay) or a
  // deleted row is never believed by a process that has seen a newer state.
  it.skipIf(!engine.available)(
    "a replayed older signed row, or a deleted row, does not lift a halt a process has seen",
    async () => {
      for (const agentId of ["replayed", "deleted"]) {
        await h.presence.halt(agentId, { haltedBy: "bob", reason: "first" });
        await h.presence.resume(agentId, { resumedBy: "bob", reason: "first done" });
      }
      await edit(
        sql`create table gov_presence.saved as select * from gov_presence.agents where agent_id = 'replayed'`,
      );
      for (const agentId of ["replayed", "deleted"]) await h.presence.halt(agentId, HALT);
      await edit(sql`delete from gov_presence.agents where agent_id in ('replayed', 'deleted')`);
      await edit(sql`insert into gov_presence.agents select * from gov_presence.saved`);
      await h.presence.forceRefreshHaltedCache();
      for (const agentId of ["replayed", "deleted"]) {
        expect(h.presence.haltOf(agentId)).toMatchObject(HALT);
        expect(reports(agentId).events).toHaveLength(1);
      }
      await h.presence.forceRefreshHaltedCache();
      expect(reports("replayed").events).toHaveLength(1);
      // The limit, written down in the README: a process that never saw the newer halt
      // believes the older signed resume, or the missing row.
      const fresh = h.another();
      await fresh.start();
      expect(fresh.isHalted("replayed")).toBe(false);
      expect(fresh.isHalted("deleted")).toBe(false);
    },
  );

  // A restarted sequence would hand the next halt a version older than the resume every
  // process has seen, and every cache would drop that halt as stale.
  it.skipIf(!engine.available)(
    "a sequence restarted in the table does not make a new halt look older than the last resume",
    async () => {
      const other = h.another();
      await other.start();
      for (let round = 0; round < 3; round++) {
        await h.presence.halt("agent", { haltedBy: "bob", reason: `round ${round}` });
        await h.presence.resume("agent", { resumedBy: "bob", reason: "go on" });
      }
      await other.forceRefreshHaltedCache();
      expect(other.isHalted("agent")).toBe(false);
      await edit(sql`alter sequence gov_presence.halt_version restart with 1`);
      await h.presence.halt("agent", HALT);
      await other.forceRefreshHaltedCache();
      expect(other.haltOf("agent")).toMatchObject(HALT);
      expect(h.presence.haltOf("agent")).toMatchObject(HALT);
    },
  );

  it.skipIf(!engine.available)(
    "the operator recovers a refused row by resuming or halting it again, which signs it anew",
    async () => {
      await h.presence.halt("resumable", HALT);
      await h.presence.halt("rehalted", HALT);
      await edit(
        sql`update gov_presence.agents set halt_reason = 'benign' where agent_id in ('resumable', 'rehalted')`,
      );
      await h.presence.forceRefreshHaltedCache();
      expect(h.presence.haltOf("resumable")?.haltedBy).toBe(UNVERIFIABLE);
      expect(
        await h.presence.resume("resumable", { resumedBy: "alice", reason: "checked" }),
      ).toMatchObject({
        changed: true,
      });
      const again = await h.presence.halt("rehalted", { haltedBy: "carol", reason: "re-signed" });
      expect(again).toMatchObject({
        changed: true,
        halt: { haltedBy: "carol", reason: "re-signed" },
      });
      const fresh = h.another();
      await fresh.start();
      for (const module of [h.presence, fresh]) {
        expect(module.isHalted("resumable")).toBe(false);
        expect(module.haltOf("rehalted")).toMatchObject({ haltedBy: "carol", reason: "re-signed" });
      }
    },
  );

  // Rows written before halts were signed (no MAC): a row that says "not halted" is an agent
  // never halted; a row that says "halted" stays halted, as unverifiable, until resumed.
  it.skipIf(!engine.available)(
    "rows written before halts were signed: no halt is lost, and no resume is believed",
    async () => {
      await edit(sql`
        insert into gov_presence.agents (agent_id, status, first_seen, halted_at, halted_by, halt_reason, halt_version)
        values ('old-halt', 'live', now(), now(), 'alice', 'before the upgrade', nextval('gov_presence.halt_version'))`);
      await edit(sql`
        insert into gov_presence.agents (agent_id, status, first_seen, halt_version, resumed_at, resumed_by, resume_reason)
        values ('old-resume', 'live', now(), nextval('gov_presence.halt_version'), now(), 'alice', 'fine')`);
      await h.presence.forceRefreshHaltedCache();
      expect(h.presence.haltOf("old-halt")?.haltedBy).toBe(UNVERIFIABLE);
      expect(h.presence.isHalted("old-resume")).toBe(false);
      expect(reports("old-resume").events).toEqual([]);
      await h.presence.resume("old-halt", { resumedBy: "alice", reason: "re-signed" });
      expect(h.presence.isHalted("old-halt")).toBe(false);
    },
  );
});

/**
 * A table owner can also add triggers and rules to gov_presence.agents: the row then holds
 * something other than what halt() or resume() signed, though the statements succeeded.
 */
describe.each(testEngines())(
  "halts and resumes that the stored row does not hold, on $name",
  (engine: TestEngine) => {
    let h: PresenceHarness;

    beforeEach(async () => {
      if (engine.available) h = await presenceHarness(engine, { haltCacheTtlMs: 3_600_000 });
    });

    afterEach(async () => {
      await h?.close();
    });

    const run = (statement: string) => h.store.query(sql.raw(statement));

    /** Install `trap` (a list of statements), run `act`, then remove every trigger and rule again. */
    async function withTrap<T>(trap: string[], act: () => Promise<T>): Promise<T> {
      for (const statement of trap) await run(statement);
      try {
        return await act();
      } finally {
        await run("drop trigger if exists trap on gov_presence.agents");
        await run("drop rule if exists trap on gov_presence.agents");
        await run("drop function if exists gov_presence.trap()");
      }
    }

    /** A BEFORE UPDATE row trigger `trap` on the agents table, running `body` (plpgsql) when `when`. */
    const beforeUpdate = (when: string, body: string) => [
      `create function gov_presence.trap() returns trigger language plpgsql as $$ begin ${body} end $$`,
      `create trigger trap before update on gov_presence.agents for each row when (${when}) execute function gov_presence.trap()`,
    ];

    /** A trigger body that keeps every halt column of the row as it was. */
    const KEEP_OLD_HALT = `new.halted_at := old.halted_at; new.halted_by := old.halted_by;
      new.halt_reason := old.halt_reason; new.halt_version := old.halt_version;
      new.halt_mac := old.halt_mac; new.halt_key_id := old.halt_key_id; return new;`;

    const notPersisted = (agentId: string) =>
      h.audit.events.filter(
        (event) => event.kind === "presence.halt_not_persisted" && event.agentId === agentId,
      );

    // Guards against halt() reporting success while a trigger or rule kept the halt out of the
    // row (the attack: other processes never enforce it, and the operator is not told).
    it.skipIf(!engine.available)(
      "a halt the stored row does not hold throws HaltNotPersistedError, and is enforced here",
      async () => {
        const traps: [string, string[]][] = [
          ["kept-old-columns", beforeUpdate("new.halted_at is not null", KEEP_OLD_HALT)],
          ["update-discarded", beforeUpdate("new.halted_at is not null", "return null;")],
          [
            "signature-stripped",
            beforeUpdate(
              "new.halt_mac is not null",
              "new.halt_mac := null; new.halt_key_id := null; return new;",
            ),
          ],
          [
            "reason-reworded",
            beforeUpdate("new.halt_mac is not null", "new.halt_reason := 'benign'; return new;"),
          ],
          [
            "cleared-at-commit",
            [
              `create function gov_presence.trap() returns trigger language plpgsql as $$ begin
                 update gov_presence.agents set halted_at = null, halted_by = null, halt_reason = null
                 where agent_id = new.agent_id and halted_at is not null;
                 return null; end $$`,
              `create constraint trigger trap after update on gov_presence.agents
                 deferrable initially deferred for each row execute function gov_presence.trap()`,
            ],
          ],
        ];
        for (const [agentId, trap] of traps) {
          await h.presence.heartbeat(agentId); // the agent runs: its row exists
          const error = await withTrap(trap, () => thrown(() => h.presence.halt(agentId, HALT)));
          expect(error, agentId).toBeInstanceOf(HaltNotPersistedError);
          expect(error, agentId).toMatchObject({
            code: "HALT_NOT_PERSISTED",
            agentId,
            operation: "halt",
            failure: "not_stored",
          });
          expect((error as Error).message, agentId).toMatch(/does not hold/);
          // Fail closed where it can: this process enforces the halt the operator asked for —
          // as the operator's halt until it reads the row back, then, where the row holds a
          // halt that fails verification, as the unverifiable halt that row is (a refresh that
          // a notification starts may come first: both are checked, in that order).
          const refusal = await haltedError(() =>
            h.presence.assertNotHalted(agentId, { path: "tamper.check" }),
          );
          expect([HALT.haltedBy, UNVERIFIABLE], agentId).toContain(refusal.haltedBy);
          await h.presence.forceRefreshHaltedCache();
          expect(h.presence.isHalted(agentId), agentId).toBe(true);
          const refreshed = await haltedError(() =>
            h.presence.assertNotHalted(agentId, { path: "tamper.check" }),
          );
          expect(refreshed.haltedBy, agentId).toBe(
            // rows that hold a changed or unsigned halt fail verification; rows that hold
            // no new halt at all leave this process's own
            agentId === "kept-old-columns" || agentId === "update-discarded"
              ? HALT.haltedBy
              : UNVERIFIABLE,
          );
          // Loud: an error line and an event, and no agent.halted for a halt that did not take.
          expect(notPersisted(agentId), agentId).toHaveLength(1);
          expect(notPersisted(agentId)[0]?.metadata, agentId).toMatchObject({
            operation: "halt",
            haltedBy: HALT.haltedBy,
            problem: expect.stringMatching(/does not hold/),
          });
          expect(
            h.audit.events.some((e) => e.kind === "agent.halted" && e.agentId === agentId),
            agentId,
          ).toBe(false);
          expect(
            h.logger.lines.some(
              (line) => line.level === "error" && line.message.includes(JSON.stringify(agentId)),
            ),
            agentId,
          ).toBe(true);
        }
        // With the traps gone, halting again writes a signed halt every process enforces.
        const fresh = h.another();
        await fresh.start();
        for (const [agentId] of traps) {
          expect(await h.presence.halt(agentId, HALT), agentId).toMatchObject({ changed: true });
          await fresh.forceRefreshHaltedCache();
          expect(fresh.haltOf(agentId), agentId).toMatchObject(HALT);
        }
      },
    );

    // Guards against resume() reporting success (or "not halted") while a trigger or rule kept
    // the halt in the row; the resume must not be applied in this process either.
    it.skipIf(!engine.available)(
      "a resume the stored row does not hold throws HaltNotPersistedError, and the agent stays halted",
      async () => {
        const traps: [string, string[]][] = [
          [
            "kept-halt",
            beforeUpdate("new.halted_at is null and old.halted_at is not null", KEEP_OLD_HALT),
          ],
          [
            "resume-discarded",
            beforeUpdate("new.halted_at is null and old.halted_at is not null", "return null;"),
          ],
          ["every-update-discarded", beforeUpdate("old.halted_at is not null", "return null;")],
          // A rule makes every statement with RETURNING on the table fail: the write fails.
          [
            "rule-instead-nothing",
            [
              "create rule trap as on update to gov_presence.agents where old.halted_at is not null do instead nothing",
            ],
          ],
        ];
        for (const [agentId] of traps) await h.presence.halt(agentId, HALT);
        for (const [agentId, trap] of traps) {
          const error = await withTrap(trap, () =>
            thrown(() => h.presence.resume(agentId, { resumedBy: "bob", reason: "fixed" })),
          );
          const failure = agentId.startsWith("rule-") ? "write_failed" : "not_stored";
          expect(error, agentId).toBeInstanceOf(HaltNotPersistedError);
          expect(error, agentId).toMatchObject({
            code: "HALT_NOT_PERSISTED",
            agentId,
            operation: "resume",
            failure,
          });
          expect(h.presence.haltOf(agentId), agentId).toMatchObject(HALT);
          await h.presence.forceRefreshHaltedCache();
          expect(h.presence.haltOf(agentId), agentId).toMatchObject(HALT);
          if (failure === "write_failed") continue;
          expect(notPersisted(agentId), agentId).toHaveLength(1);
          expect(notPersisted(agentId)[0]?.metadata, agentId).toMatchObject({
            operation: "resume",
            resumedBy: "bob",
          });
          expect(
            h.audit.events.some((e) => e.kind === "agent.resumed" && e.agentId === agentId),
            agentId,
          ).toBe(false);
        }
        // With the traps gone, the resume goes through.
        for (const [agentId] of traps) {
          await h.presence.resume(agentId, { resumedBy: "bob", reason: "fixed" });
          expect(h.presence.isHalted(agentId), agentId).toBe(false);
        }
      },
    );
  },
);
