import { readFile } from "node:fs/promises";
import { type AuditEventInput, ChainKey, Keyring, sql } from "@gov/core";
import { eventually, type TestEngine, testEngines } from "@gov/core/testing";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  countingReads,
  fieldLogger,
  type LoggedLine,
  randomSecret,
  recordingAudit,
  type ScopeHarness,
  scopeHarness,
  testKeyring,
} from "./__fixtures__";
import { expectProbeRefused, probed } from "./__fixtures__/probe";
import { DONOR, TAMPERS, type TamperContext, victimPolicy } from "./__fixtures__/tamper";
import { SCOPE_POLICY_REJECTED_KIND, SCOPE_POLICY_ROLLED_BACK_KIND } from "./policy-sync";
import { SCOPE_POLICY_CHANNEL, SCOPE_POLICY_NOT_PERSISTED_KIND } from "./policy-write";
import { signedPolicyPayload, signPolicy } from "./signature";

interface StoredRow extends Record<string, unknown> {
  agent_id: string;
  allowed_tools: string[];
  allowed_apis: string[];
  hidden_tools: string[];
  allowed_models: string[];
  revision: string | number;
  mac: string | null;
  key_id: string | null;
}

function rejections(events: readonly AuditEventInput[], agentId?: string): AuditEventInput[] {
  return events.filter(
    (event) =>
      event.kind === SCOPE_POLICY_REJECTED_KIND &&
      (agentId === undefined || event.agentId === agentId),
  );
}

function warningsAbout(lines: readonly LoggedLine[], agentId: string): LoggedLine[] {
  return lines.filter((line) => line.level === "warn" && line.fields?.agentId === agentId);
}

describe.each(testEngines())("stored scope policies are signed, on $name", (engine: TestEngine) => {
  let h: ScopeHarness;

  beforeEach(async () => {
    if (engine.available) h = await scopeHarness(engine);
  });

  afterEach(async () => {
    await h?.close();
  });

  function tamperContext(): TamperContext {
    return { keyId: h.keyring.current.id, macOf: (text) => h.keyring.current.hmacHex(text) };
  }

  async function row(agentId: string): Promise<StoredRow | undefined> {
    const [found] = await h.store.query<StoredRow>(
      sql`select * from gov_scope.policies where agent_id = ${agentId}`,
    );
    return found;
  }

  /** A writer that registers every victim and the donor; returns once the rows are stored. */
  async function registerVictims() {
    const writer = await h.make();
    writer.register(DONOR);
    for (const tamper of TAMPERS)
      if (tamper.registered) writer.register(victimPolicy(tamper.agentId));
    await writer.flush();
    return writer;
  }

  // Guards against policies stored without a signature, or one that misses a field a check relies on.
  it.skipIf(!engine.available)(
    "stores a MAC under the current key over the agent, every list, the revision and the domain tag",
    async () => {
      const scope = await h.make();
      scope.register(victimPolicy("signed"));
      scope.register({ ...victimPolicy("signed"), allowedTools: ["refund"] });
      await scope.flush();
      const stored = await row("signed");
      expect(stored?.key_id).toBe(h.keyring.current.id);
      expect(Number(stored?.revision)).toBe(2);
      const fields = {
        agentId: "signed",
        allowedTools: ["refund"],
        allowedApis: ["GET https://api.stripe.com/v1/*"],
        hiddenTools: ["delete_all"],
        allowedModels: ["gpt-4o-mini"],
        revision: 2,
      };
      expect(stored?.mac).toBe(signPolicy(h.keyring.current, fields).mac);
      expect(signedPolicyPayload(fields)).toContain('"type":"gov.scope.policy.v1"');
    },
  );

  // Guards against a row edited in the table (or a NOTIFY that names it) changing what a process enforces.
  it.skipIf(!engine.available)(
    "refuses every tampered row in a process that holds the policies, after NOTIFY and after reload, and reports each once",
    async () => {
      await registerVictims();
      const logger = fieldLogger();
      const audit = recordingAudit();
      const reader = await h.make({}, { logger, audit });
      for (const tamper of TAMPERS)
        if (tamper.registered) expect(reader.getPolicy(tamper.agentId), tamper.name).toBeDefined();

      for (const tamper of TAMPERS) {
        for (const statement of tamper.statements(tamperContext())) await h.store.query(statement);
        await h.store.notify(SCOPE_POLICY_CHANNEL, tamper.agentId);
        await eventually(() => warningsAbout(logger.lines, tamper.agentId).length > 0);
        await expectProbeRefused(probed(reader), tamper.agentId, tamper.probe, tamper.registered);
        await reader.reload();
        await expectProbeRefused(probed(reader), tamper.agentId, tamper.probe, tamper.registered);
      }
      await reader.reload();
      await eventually(() => rejections(audit.events).length >= TAMPERS.length);
      for (const tamper of TAMPERS) {
        const events = rejections(audit.events, tamper.agentId);
        expect(events, tamper.name).toHaveLength(1);
        expect(events[0]?.metadata?.reason, tamper.name).toBe(tamper.reason);
        expect(warningsAbout(logger.lines, tamper.agentId), tamper.name).toHaveLength(1);
        expect(warningsAbout(logger.lines, tamper.agentId)[0]?.fields?.reason).toBe(tamper.reason);
      }
      expect(rejections(audit.events)).toHaveLength(TAMPERS.length);
      // The donor's own row is intact and stays in force.
      expect(await probed(reader).check("t-donor", { tool: "refund" })).toBe("PASSED");
      // The secret never reaches a log line or the audit chain.
      const everything = JSON.stringify([logger.lines, audit.events]);
      expect(everything).not.toContain(h.secret);
    },
  );

  // Guards against a process that starts after the attack loading a tampered row.
  it.skipIf(!engine.available)(
    "a process that starts after the attack loads none of the tampered rows, and reports each once",
    async () => {
      await registerVictims();
      for (const tamper of TAMPERS)
        for (const statement of tamper.statements(tamperContext())) await h.store.query(statement);
      const logger = fieldLogger();
      const audit = recordingAudit();
      const fresh = await h.make({}, { logger, audit });
      await fresh.reload();
      await fresh.reload();
      for (const tamper of TAMPERS)
        await expectProbeRefused(probed(fresh), tamper.agentId, tamper.probe, false);
      await eventually(() => rejections(audit.events).length >= TAMPERS.length);
      for (const tamper of TAMPERS) {
        const events = rejections(audit.events, tamper.agentId);
        expect(events, tamper.name).toHaveLength(1);
        expect(events[0]?.metadata?.reason, tamper.name).toBe(tamper.reason);
      }
      expect(await probed(fresh).check("t-donor", { tool: "refund" })).toBe("PASSED");
    },
  );

  // Guards against a row whose MAC is valid under a key this process does not hold being trusted.
  it.skipIf(!engine.available)(
    "refuses rows signed by a key that is not in its keyring, and loads them once the key is",
    async () => {
      const writer = await h.make();
      writer.register(victimPolicy("other-key"));
      await writer.flush();
      const audit = recordingAudit();
      const stranger = await h.make({}, { keyring: testKeyring(), audit });
      expect(stranger.getPolicy("other-key")).toBeUndefined();
      await eventually(() => rejections(audit.events, "other-key").length === 1);
      expect(rejections(audit.events)[0]?.metadata?.reason).toBe("unknown_key");
      // After a rotation, the old key stays in the keyring as a historical key: its rows load.
      const rotated = new Keyring(new ChainKey(randomSecret()), [h.keyring.current]);
      const successor = await h.make({}, { keyring: rotated });
      expect(await probed(successor).check("other-key", { tool: "read_invoice" })).toBe("PASSED");
    },
  );

  // Guards against rows written before signing staying in force (and against an unhelpful refusal).
  it.skipIf(!engine.available)(
    "refuses a row written before signing with the fix, and registering the policy again signs it",
    async () => {
      await h.store.query(
        sql`insert into gov_scope.policies (agent_id, allowed_tools, allowed_apis, hidden_tools, allowed_models)
            values ('legacy', '["read_invoice"]'::jsonb, '[]'::jsonb, '[]'::jsonb, '[]'::jsonb)`,
      );
      const logger = fieldLogger();
      const reader = await h.make({}, { logger });
      expect(reader.getPolicy("legacy")).toBeUndefined();
      const [warning] = warningsAbout(logger.lines, "legacy");
      expect(warning?.fields?.reason).toBe("unsigned");
      expect(warning?.message).toContain("scope.register");
      expect(await probed(reader).check("legacy", { tool: "read_invoice" })).toBe(
        "POLICY_NOT_REGISTERED",
      );
      const writer = await h.make();
      writer.register({ agentId: "legacy", allowedTools: ["read_invoice"] });
      await writer.flush();
      await eventually(() => reader.getPolicy("legacy") !== undefined);
      expect(await probed(reader).check("legacy", { tool: "read_invoice" })).toBe("PASSED");
      expect((await row("legacy"))?.mac).toMatch(/^[0-9a-f]{64}$/);
    },
  );

  // Guards against a signed but invalid row (limits tightened since it was written) being loaded unreported.
  it.skipIf(!engine.available)(
    "refuses a signed row that is not a valid policy, and reports it",
    async () => {
      const fields = {
        agentId: "invalid",
        allowedTools: ["read_invoice", ""],
        allowedApis: [],
        hiddenTools: [],
        allowedModels: [],
        revision: 1,
      };
      const { mac, keyId } = signPolicy(h.keyring.current, fields);
      await h.store.query(
        sql`insert into gov_scope.policies (agent_id, allowed_tools, allowed_apis, hidden_tools, allowed_models, revision, mac, key_id)
            values ('invalid', '["read_invoice", ""]'::jsonb, '[]'::jsonb, '[]'::jsonb, '[]'::jsonb, 1, ${mac}, ${keyId})`,
      );
      const audit = recordingAudit();
      const reader = await h.make({}, { audit });
      expect(reader.getPolicy("invalid")).toBeUndefined();
      await eventually(() => rejections(audit.events, "invalid").length === 1);
      expect(rejections(audit.events)[0]?.metadata?.reason).toBe("invalid_policy");
    },
  );

  // Guards against a rollback: an older, validly signed row put back in the table replacing a newer policy.
  it.skipIf(!engine.available)(
    "never applies a validly signed row older than the one it holds",
    async () => {
      const writer = await h.make();
      writer.register({ agentId: "rollback", allowedTools: ["wide_tool"] });
      await writer.flush();
      const old = await row("rollback");
      writer.register({ agentId: "rollback", allowedTools: ["narrow_tool"] });
      await writer.flush();
      const audit = recordingAudit();
      const reader = await h.make({}, { audit });
      expect(await probed(reader).check("rollback", { tool: "narrow_tool" })).toBe("PASSED");
      await h.store.query(
        sql`update gov_scope.policies
            set allowed_tools = ${JSON.stringify(old?.allowed_tools)}::jsonb, revision = ${Number(old?.revision)},
                mac = ${old?.mac ?? null}, key_id = ${old?.key_id ?? null}
            where agent_id = 'rollback'`,
      );
      await h.store.notify(SCOPE_POLICY_CHANNEL, "rollback");
      await reader.reload();
      expect(await probed(reader).check("rollback", { tool: "wide_tool" })).toBe("SCOPE_VIOLATION");
      expect(await probed(reader).check("rollback", { tool: "narrow_tool" })).toBe("PASSED");
      expect(rejections(audit.events)).toEqual([]);
    },
  );

  // Guards against a notification flood making a process run unbounded concurrent reads, or
  // against a payload being believed as state.
  it.skipIf(!engine.available)(
    "treats notifications as wake-ups only: a flood runs one read at a time and changes nothing",
    async () => {
      const writer = await h.make();
      writer.register(victimPolicy("flooded"));
      await writer.flush();
      const { store: counted, reads } = countingReads(h.store);
      const reader = await h.make({}, { store: counted });
      const payloads = [
        "",
        "x".repeat(300),
        JSON.stringify({ agentId: "flooded", allowedTools: ["delete_user"] }),
        "flooded ",
      ];
      // More distinct names than wait to be read (1,000): the rest become one reload of all.
      for (let index = 0; index < 1_100; index++) payloads.push("flooded", `ghost-${index}`);
      // One statement sends the whole flood (2,000 parallel notify calls would exhaust the
      // test's own connection pool on a loaded machine).
      await h.store.query(
        sql`select pg_notify(${SCOPE_POLICY_CHANNEL}, payload) from jsonb_array_elements_text(${JSON.stringify(payloads)}::jsonb) as payload`,
      );
      await reader.reload();
      await eventually(() => reads.inFlight === 0);
      expect(reads.maxInFlight).toBe(1);
      expect(await probed(reader).check("flooded", { tool: "delete_user" })).toBe(
        "SCOPE_VIOLATION",
      );
      expect(await probed(reader).check("flooded", { tool: "read_invoice" })).toBe("PASSED");
      expect(reader.listPolicies().map((policy) => policy.agentId)).toEqual(["flooded"]);
    },
  );

  // Guards against a table stuffed with bad rows flooding the audit chain at every reload.
  it.skipIf(!engine.available)(
    "reports at most 100 refused rows per read, and the rest by later reads, each once",
    async () => {
      await h.store.query(
        sql`insert into gov_scope.policies (agent_id, allowed_tools, allowed_apis, hidden_tools, allowed_models)
            select 'stuffed-' || n, '["delete_user"]'::jsonb, '[]'::jsonb, '[]'::jsonb, '[]'::jsonb
            from generate_series(1, 150) as n`,
      );
      const logger = fieldLogger();
      const audit = recordingAudit();
      const reader = await h.make({}, { logger, audit });
      await eventually(() => rejections(audit.events).length === 100);
      expect(logger.lines.some((line) => line.fields?.refused === 50)).toBe(true);
      await reader.reload();
      await eventually(() => rejections(audit.events).length === 150);
      await reader.reload();
      await reader.close();
      expect(new Set(rejections(audit.events).map((event) => event.agentId)).size).toBe(150);
      expect(reader.listPolicies()).toEqual([]);
    },
  );

  // Guards against a throwing logger killing the read loop (an unhandled rejection, a reload that never resolves).
  it.skipIf(!engine.available)("keeps reading when the logger throws", async () => {
    await h.store.query(
      sql`insert into gov_scope.policies (agent_id, allowed_tools, allowed_apis, hidden_tools, allowed_models)
          values ('unsigned', '["delete_user"]'::jsonb, '[]'::jsonb, '[]'::jsonb, '[]'::jsonb)`,
    );
    const throwing = {
      ...fieldLogger(),
      warn: () => {
        throw new Error("logger down");
      },
    };
    const reader = await h.make({}, { logger: throwing });
    await reader.reload();
    const writer = await h.make();
    writer.register(victimPolicy("after"));
    await writer.flush();
    await reader.reload();
    expect(await probed(reader).check("after", { tool: "read_invoice" })).toBe("PASSED");
    expect(reader.getPolicy("unsigned")).toBeUndefined();
  });
});

/**
 * A table owner can also delete rows and add triggers: a revocation must not be made to
 * vanish silently — it reaches every process, or the writer and the readers say that it did not.
 */
describe.each(testEngines())(
  "revocations a table owner tries to stop, on $name",
  (engine: TestEngine) => {
    let h: ScopeHarness;

    beforeEach(async () => {
      if (engine.available) h = await scopeHarness(engine);
    });

    afterEach(async () => {
      await h?.close();
    });

    const WIDE = ["read_invoice", "refund"];
    const NARROW = ["read_invoice"];

    async function revision(agentId: string): Promise<number> {
      const [found] = await h.store.query<{ revision: string }>(
        sql`select revision::text as revision from gov_scope.policies where agent_id = ${agentId}`,
      );
      return Number(found?.revision);
    }

    async function row(agentId: string): Promise<StoredRow | undefined> {
      const [found] = await h.store.query<StoredRow>(
        sql`select * from gov_scope.policies where agent_id = ${agentId}`,
      );
      return found;
    }

    const eventsOf = (events: readonly AuditEventInput[], kind: string, agentId: string) =>
      events.filter((event) => event.kind === kind && event.agentId === agentId);

    // Guards against a deleted row restarting the revision at 1, so that the next registration
    // (a revocation) is ignored by every process that held the deleted revision.
    it.skipIf(!engine.available)(
      "a row deleted in the table does not restart the revision: the next registration reaches every process",
      async () => {
        const admin = await h.make();
        const other = await h.make();
        for (let round = 0; round < 3; round++) {
          admin.register({ agentId: "deleted", allowedTools: WIDE });
          await admin.flush();
        }
        await other.reload();
        const held = await revision("deleted");
        expect(await probed(other).check("deleted", { tool: "refund" })).toBe("PASSED");
        await h.store.query(sql`delete from gov_scope.policies where agent_id = 'deleted'`);
        await other.reload();
        admin.register({ agentId: "deleted", allowedTools: NARROW });
        await admin.flush();
        await other.reload();
        expect(await revision("deleted")).toBeGreaterThan(held);
        expect(await probed(other).check("deleted", { tool: "refund" })).toBe("SCOPE_VIOLATION");
        const fresh = await h.make();
        expect(await probed(fresh).check("deleted", { tool: "refund" })).toBe("SCOPE_VIOLATION");
      },
    );

    // Guards against rows written before the sequence existed: the migration must start it past
    // them, or the next registration after a delete would again be older than what is held.
    it.skipIf(!engine.available)(
      "the migration starts the revision sequence past the revisions already stored",
      async () => {
        const admin = await h.make();
        admin.register({ agentId: "upgraded", allowedTools: WIDE });
        await admin.flush();
        // As an earlier version numbered it: the row's revision plus one, per registration.
        await h.store.query(
          sql`update gov_scope.policies set revision = 41 where agent_id = 'upgraded'`,
        );
        const migration = await readFile(
          new URL("../drizzle/0003_revision_sequence_start.sql", import.meta.url),
          "utf8",
        );
        await h.store.query(sql.raw(migration));
        await h.store.query(sql`delete from gov_scope.policies where agent_id = 'upgraded'`);
        admin.register({ agentId: "upgraded", allowedTools: NARROW });
        await admin.flush();
        expect(await revision("upgraded")).toBeGreaterThan(41);
      },
    );

    // Guards against a rolled-back or deleted row being ignored in silence by the processes that
    // held a newer policy (it was only never applied, not reported).
    it.skipIf(!engine.available)(
      "a validly signed older row, or a deleted row, is reported once as scope.policy_rolled_back; the newer policy stays",
      async () => {
        const writer = await h.make();
        writer.register({ agentId: "rolled-back", allowedTools: WIDE });
        writer.register({ agentId: "gone", allowedTools: NARROW });
        await writer.flush();
        const old = await row("rolled-back");
        writer.register({ agentId: "rolled-back", allowedTools: NARROW });
        await writer.flush();
        const newer = await revision("rolled-back");
        const logger = fieldLogger();
        const audit = recordingAudit();
        const reader = await h.make({}, { logger, audit });
        await h.store.query(
          sql`update gov_scope.policies
              set allowed_tools = ${JSON.stringify(old?.allowed_tools)}::jsonb, revision = ${Number(old?.revision)},
                  mac = ${old?.mac ?? null}, key_id = ${old?.key_id ?? null}
              where agent_id = 'rolled-back'`,
        );
        await h.store.query(sql`delete from gov_scope.policies where agent_id = 'gone'`);
        await h.store.notify(SCOPE_POLICY_CHANNEL, "rolled-back");
        await h.store.notify(SCOPE_POLICY_CHANNEL, "gone");
        await reader.reload();
        await reader.reload();
        await eventually(
          () => eventsOf(audit.events, SCOPE_POLICY_ROLLED_BACK_KIND, "gone").length > 0,
        );
        for (const scope of [reader, writer]) {
          expect(await probed(scope).check("rolled-back", { tool: "refund" })).toBe(
            "SCOPE_VIOLATION",
          );
          expect(await probed(scope).check("gone", { tool: "read_invoice" })).toBe("PASSED");
        }
        const rolledBack = eventsOf(audit.events, SCOPE_POLICY_ROLLED_BACK_KIND, "rolled-back");
        expect(rolledBack).toHaveLength(1);
        expect(rolledBack[0]?.metadata).toMatchObject({
          revision: Number(old?.revision),
          heldRevision: newer,
        });
        const gone = eventsOf(audit.events, SCOPE_POLICY_ROLLED_BACK_KIND, "gone");
        expect(gone).toHaveLength(1);
        expect(gone[0]?.metadata).toMatchObject({ revision: null });
        for (const agentId of ["rolled-back", "gone"])
          expect(warningsAbout(logger.lines, agentId), agentId).toHaveLength(1);
        expect(rejections(audit.events)).toEqual([]);
      },
    );

    // Guards against register() leaving a revocation unstored in silence: a trigger or rule on
    // the table that keeps the old row, keeps the old revision, strips or breaks the signature.
    it.skipIf(!engine.available)(
      "a registration the stored row does not hold is logged as an error, recorded once, kept in force here and retried",
      async () => {
        const run = (statement: string) => h.store.query(sql.raw(statement));
        const beforeUpdate = (when: string, body: string) => [
          `create function gov_scope.trap() returns trigger language plpgsql as $$ begin ${body} end $$`,
          `create trigger trap before update on gov_scope.policies for each row when (${when}) execute function gov_scope.trap()`,
        ];
        const traps: [string, string[]][] = [
          ["frozen", beforeUpdate("true", "return old;")],
          ["revision-kept", beforeUpdate("true", "new.revision := old.revision; return new;")],
          ["update-discarded", beforeUpdate("true", "return null;")],
          [
            "signature-stripped",
            beforeUpdate("new.mac is not null", "new.mac := null; new.key_id := null; return new;"),
          ],
          [
            "tools-kept",
            beforeUpdate("true", "new.allowed_tools := old.allowed_tools; return new;"),
          ],
          [
            "signature-stripped-at-commit",
            [
              `create function gov_scope.trap() returns trigger language plpgsql as $$ begin
                 update gov_scope.policies set mac = null, key_id = null
                 where agent_id = new.agent_id and mac is not null;
                 return null; end $$`,
              `create constraint trigger trap after update on gov_scope.policies
                 deferrable initially deferred for each row execute function gov_scope.trap()`,
            ],
          ],
        ];
        const logger = fieldLogger();
        const audit = recordingAudit();
        const admin = await h.make({}, { logger, audit });
        for (const [agentId] of traps) admin.register({ agentId, allowedTools: WIDE });
        await admin.flush();
        const other = await h.make();
        for (const [agentId, trap] of traps) {
          for (const statement of trap) await run(statement);
          try {
            admin.register({ agentId, allowedTools: NARROW });
            await admin.flush();
            // A retry (each reload retries unsaved writes) is logged again, not recorded again.
            await admin.reload();
            await admin.flush();
          } finally {
            await run("drop trigger if exists trap on gov_scope.policies");
            await run("drop function if exists gov_scope.trap()");
          }
          const events = eventsOf(audit.events, SCOPE_POLICY_NOT_PERSISTED_KIND, agentId);
          expect(events, agentId).toHaveLength(1);
          expect(events[0]?.metadata, agentId).toMatchObject({
            reason: expect.any(String),
            problem: expect.stringMatching(/gov_scope\.policies/),
          });
          const errors = logger.lines.filter(
            (line) => line.level === "error" && line.fields?.agentId === agentId,
          );
          expect(errors.length, agentId).toBeGreaterThanOrEqual(2);
          // Kept in force where it was registered, never replaced by the row it did not write.
          expect(await probed(admin).check(agentId, { tool: "refund" }), agentId).toBe(
            "SCOPE_VIOLATION",
          );
          // With the trap gone, the next retry stores the revocation, and it reaches the others.
          await admin.reload();
          await admin.flush();
          await other.reload();
          expect(await probed(other).check(agentId, { tool: "refund" }), agentId).toBe(
            "SCOPE_VIOLATION",
          );
        }
        for (const [agentId] of traps)
          expect(
            eventsOf(audit.events, SCOPE_POLICY_NOT_PERSISTED_KIND, agentId),
            agentId,
          ).toHaveLength(1);
        expect(JSON.stringify([logger.lines, audit.events])).not.toContain(h.secret);
      },
    );

    // Guards against the first write of a new agent's policy being stored unsigned in silence.
    it.skipIf(!engine.available)(
      "a first registration whose signature a trigger discards is reported too",
      async () => {
        await h.store.query(
          sql.raw(
            "create function gov_scope.trap() returns trigger language plpgsql as $$ begin return old; end $$",
          ),
        );
        await h.store.query(
          sql.raw(
            "create trigger trap before update on gov_scope.policies for each row execute function gov_scope.trap()",
          ),
        );
        const audit = recordingAudit();
        const admin = await h.make({}, { audit });
        admin.register({ agentId: "first", allowedTools: NARROW });
        await admin.flush();
        expect(eventsOf(audit.events, SCOPE_POLICY_NOT_PERSISTED_KIND, "first")).toHaveLength(1);
        expect(await probed(admin).check("first", { tool: "read_invoice" })).toBe("PASSED");
      },
    );
  },
);
