/**
 * The attack on stored scope policies, re-run across OS processes on real Postgres: a role
 * that owns `gov_scope.policies` (it can insert, update and delete rows, but does not hold the
 * chain key) edits rows, and a role that can only connect sends the notifications. Another
 * process, keyed with the deployment's secret, must keep every attacked agent as denied as
 * before, say why, and record it.
 */
import { randomBytes } from "node:crypto";
import { ChainKey, createStore, Keyring, type Store, silentLogger, sql } from "@gov/core";
import { createTestStore, eventually, type TestStore, testEngines } from "@gov/core/testing";
import { describe, expect, it } from "vitest";
import { randomSecret } from "./__fixtures__";
import {
  type ChildRejections,
  type ScopeChild,
  spawnScopeChild,
} from "./__fixtures__/child-process";
import { expectProbeRefused } from "./__fixtures__/probe";
import { DONOR, TAMPERS, type TamperContext, victimPolicy } from "./__fixtures__/tamper";
import { ScopeModule, scopeMigrations } from "./module";
import { SCOPE_POLICY_CHANNEL } from "./policy-write";

const postgres = testEngines().find((engine) => engine.name === "postgres");

/** Two roles of the cluster, made for one test and dropped after it. */
interface Roles {
  /** Owns gov_scope.policies: may write any row, drop triggers; holds no key. */
  owner: Store;
  /** May connect, nothing more: it can still NOTIFY any channel. */
  connector: Store;
  drop(): Promise<void>;
}

function asRole(url: string, role: string): string {
  const parsed = new URL(url);
  parsed.username = role;
  parsed.password = "";
  return parsed.toString();
}

async function makeRoles(adminUrl: string, database: TestStore): Promise<Roles> {
  const suffix = randomBytes(4).toString("hex");
  const ownerRole = `gov_scope_owner_${suffix}`;
  const connectorRole = `gov_scope_connect_${suffix}`;
  const admin = await createStore({
    databaseUrl: adminUrl,
    logger: silentLogger,
    pool: { max: 1 },
  });
  try {
    await admin.query(sql.raw(`create role "${ownerRole}" login`));
    await admin.query(sql.raw(`create role "${connectorRole}" login`));
  } finally {
    await admin.close();
  }
  await database.query(sql.raw(`grant usage on schema gov_scope to "${ownerRole}"`));
  await database.query(sql.raw(`alter table gov_scope.policies owner to "${ownerRole}"`));
  const url = database.connectionString as string;
  const owner = await createStore({
    databaseUrl: asRole(url, ownerRole),
    logger: silentLogger,
    pool: { max: 2 },
  });
  const connector = await createStore({
    databaseUrl: asRole(url, connectorRole),
    logger: silentLogger,
    pool: { max: 8 },
  });
  return {
    owner,
    connector,
    async drop() {
      await owner.close();
      await connector.close();
      await database.close(); // drops the database, and with it what the roles own there
      const cleanup = await createStore({
        databaseUrl: adminUrl,
        logger: silentLogger,
        pool: { max: 1 },
      });
      try {
        await cleanup.query(sql.raw(`drop role if exists "${ownerRole}"`));
        await cleanup.query(sql.raw(`drop role if exists "${connectorRole}"`));
      } finally {
        await cleanup.close();
      }
    },
  };
}

function rejectionsOf(report: ChildRejections, agentId: string) {
  return {
    warnings: report.warnings.filter((warning) => warning.agentId === agentId),
    audit: report.audit.filter((event) => event.agentId === agentId),
  };
}

describe("stored scope policies under attack, across OS processes (real Postgres)", () => {
  it.skipIf(!postgres?.available)(
    "a table owner's edits and a connect-only role's notifications never widen what another process enforces",
    async () => {
      const database = await createTestStore(postgres as never, { migrations: [scopeMigrations] });
      const roles = await makeRoles(postgres?.url as string, database);
      const secret = randomSecret();
      const keyring = new Keyring(new ChainKey(secret));
      const writer = new ScopeModule(
        {
          store: database,
          keyring,
          logger: silentLogger,
          audit: { log: async () => ({ eventId: "", isPlaceholder: true }) },
          halt: { assertAlive: async () => undefined },
        },
        { pollIntervalMs: null },
      );
      const children: ScopeChild[] = [];
      try {
        await writer.start();
        writer.register(DONOR);
        for (const tamper of TAMPERS)
          if (tamper.registered) writer.register(victimPolicy(tamper.agentId));
        await writer.flush();

        const child = spawnScopeChild(database.connectionString as string, secret);
        children.push(child);
        await child.ready();
        for (const tamper of TAMPERS) {
          if (tamper.registered)
            expect(await child.check(tamper.agentId, { tool: "read_invoice" }), tamper.name).toBe(
              "PASSED",
            );
        }

        // The connect-only role cannot write the table, but can wake every listener.
        await expect(
          roles.connector.query(sql`update gov_scope.policies set allowed_tools = '[]'::jsonb`),
        ).rejects.toMatchObject({ sqlState: "42501" });

        // The key id is stored in the table, so the owner knows it; the other-domain MAC is one
        // the real key made elsewhere.
        const context: TamperContext = {
          keyId: keyring.current.id,
          macOf: (text) => keyring.current.hmacHex(text),
        };
        for (const tamper of TAMPERS) {
          for (const statement of tamper.statements(context)) await roles.owner.query(statement);
          await roles.connector.notify(SCOPE_POLICY_CHANNEL, tamper.agentId);
          await eventually(
            async () => rejectionsOf(await child.rejections(), tamper.agentId).warnings.length > 0,
            20_000,
          );
          await expectProbeRefused(child, tamper.agentId, tamper.probe, tamper.registered);
          await child.reload();
          await expectProbeRefused(child, tamper.agentId, tamper.probe, tamper.registered);
        }
        await child.reload();
        const report = await child.rejections();
        for (const tamper of TAMPERS) {
          const { warnings, audit } = rejectionsOf(report, tamper.agentId);
          expect(
            warnings.map((warning) => warning.reason),
            tamper.name,
          ).toEqual([tamper.reason]);
          expect(
            audit.map((event) => event.metadata.reason),
            tamper.name,
          ).toEqual([tamper.reason]);
        }
        expect(JSON.stringify(report)).not.toContain(secret);

        // A flood of notifications from the connect-only role: wake-ups that change nothing.
        // Each its own transaction (Postgres folds equal notifications of one transaction).
        for (let round = 0; round < 150; round++) {
          await Promise.all(
            Array.from({ length: 10 }, (_, index) =>
              roles.connector.notify(
                SCOPE_POLICY_CHANNEL,
                index % 3 === 0
                  ? "t-widen-tools"
                  : index % 3 === 1
                    ? `ghost-${round}-${index}`
                    : "t-donor",
              ),
            ),
          );
        }
        await child.reload();
        for (const tamper of TAMPERS)
          await expectProbeRefused(child, tamper.agentId, tamper.probe, tamper.registered);
        expect(await child.check("t-donor", { tool: "refund" })).toBe("PASSED");
        expect((await child.rejections()).audit).toHaveLength(TAMPERS.length);

        // The valid path: a registration in this process is enforced in the other one.
        writer.register({ agentId: "t-widen-tools", allowedTools: ["read_invoice", "refund"] });
        await writer.flush();
        await eventually(
          async () => (await child.check("t-widen-tools", { tool: "refund" })) === "PASSED",
          20_000,
        );

        // A process that starts after the attack loads none of the tampered rows.
        const fresh = spawnScopeChild(database.connectionString as string, secret);
        children.push(fresh);
        await fresh.ready();
        await fresh.reload();
        for (const tamper of TAMPERS) {
          if (tamper.agentId === "t-widen-tools") continue;
          await expectProbeRefused(fresh, tamper.agentId, tamper.probe, false);
        }
        expect(await fresh.check("t-widen-tools", { tool: "refund" })).toBe("PASSED");
        expect(await fresh.check("t-donor", { tool: "refund" })).toBe("PASSED");
        const freshReport = await fresh.rejections();
        for (const tamper of TAMPERS) {
          if (tamper.agentId === "t-widen-tools") continue;
          const { warnings, audit } = rejectionsOf(freshReport, tamper.agentId);
          expect(
            warnings.map((warning) => warning.reason),
            tamper.name,
          ).toEqual([tamper.reason]);
          expect(audit, tamper.name).toHaveLength(1);
        }
        for (const started of children) await started.close();
      } finally {
        for (const started of children) started.kill();
        await writer.close();
        await roles.drop();
      }
    },
    300_000,
  );
});
