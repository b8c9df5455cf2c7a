import { randomUUID } from "node:crypto";
import { ChainKey, Keyring, type Store, sql } from "@gov/core";
import { rejectionOf, type TestEngine, testEngines } from "@gov/core/testing";
import { describe, expect, it } from "vitest";
import {
  chainError,
  eventually,
  recordingLogger,
  SECRET_A,
  SECRET_B,
  tamper,
  useAuditHarness,
} from "./__fixtures__";
import { ChainIntegrityError } from "./errors";
import { normalizeEvent } from "./models";
import { auditModule } from "./module";
import { type PayloadFields, recordFromPayload, signRecord } from "./record";
import { KEY_HISTORY_CHAIN, KEY_ROTATION_GRACE_MS } from "./rotation-record";

const SECRET_C = "audit-key-C-abcdefghij-0123456789-KLMNOPQRSTU";
const SECRET_D = "audit-key-D-qrstuvwxyz-5432109876-ABCDEFGHIJK";
/** A key the attacker made up, to countersign a forged rotation. */
const SECRET_X = "attacker-key-X-!@#$%^&*()-lmnopqrstuvwxyz0123";
const KEY_A = new ChainKey(SECRET_A);
const KEY_B = new ChainKey(SECRET_B);
const KEY_C = new ChainKey(SECRET_C);
const KEY_X = new ChainKey(SECRET_X);

interface StoredEvent {
  eventId: string;
  seq: number;
  hmac: string;
  payload: PayloadFields;
}

async function readChain(store: Store, chain: string): Promise<StoredEvent[]> {
  const rows = await store.query<{ event_id: string; seq: string; hmac: string; payload: string }>(
    sql`select event_id::text as event_id, seq, hmac, payload from gov_audit.events where chain = ${chain} order by seq`,
  );
  return rows.map((row) => ({
    eventId: row.event_id,
    seq: Number(row.seq),
    hmac: row.hmac,
    payload: JSON.parse(row.payload) as PayloadFields,
  }));
}

const quote = (text: string | null) => (text === null ? "null" : `'${text.replaceAll("'", "''")}'`);

/** Sign `payload` again under `key`, as someone holding that key would. */
function resign(
  key: ChainKey,
  payload: PayloadFields,
  position: { prevHash: string | null; createdAt: Date },
) {
  const event = normalizeEvent(recordFromPayload(payload, ""));
  return signRecord(key, event, {
    eventId: payload.eventId,
    chain: payload.chain,
    seq: payload.seq,
    ...position,
  });
}

/**
 * Re-sign a chain from `fromSeq` to its end under `key` (each row relinked to the re-signed
 * one before it), optionally giving each row another createdAt.
 */
async function resignTail(
  store: Store,
  key: ChainKey,
  chain: string,
  fromSeq: number,
  createdAt: (row: StoredEvent) => Date = (row) => new Date(row.payload.createdAt),
): Promise<void> {
  const rows = await readChain(store, chain);
  let prevHash = rows.find((row) => row.seq === fromSeq - 1)?.hmac ?? null;
  const statements: string[] = [];
  for (const row of rows.filter((candidate) => candidate.seq >= fromSeq)) {
    const at = createdAt(row);
    const signed = resign(key, row.payload, { prevHash, createdAt: at });
    statements.push(
      `update gov_audit.events set payload = ${quote(signed.payload)}, hmac = '${signed.hmac}', key_id = '${key.id}', prev_hash = ${quote(prevHash)}, created_at = '${at.toISOString()}' where event_id = '${row.eventId}'`,
    );
    prevHash = signed.hmac;
  }
  await tamper(store, statements);
}

/** Append a validly signed row under `key` at the end of `chain`, past the append function. */
async function appendForged(
  store: Store,
  key: ChainKey,
  chain: string,
  createdAt: Date,
): Promise<{ eventId: string; seq: number }> {
  const head = (await readChain(store, chain)).at(-1);
  const event = normalizeEvent({
    agentId: "billing-agent",
    kind: "refund.approved",
    sessionId: chain.startsWith("agent:") ? null : chain,
    metadata: { amount: 5_000 },
  });
  const seq = (head?.seq ?? 0) + 1;
  const signed = signRecord(key, event, {
    eventId: randomUUID(),
    chain,
    seq,
    prevHash: head?.hmac ?? null,
    createdAt,
  });
  await tamper(store, [
    `insert into gov_audit.events (event_id, chain, seq, prev_hash, hmac, key_id, created_at, agent_id, kind, session_id, parent_event_id, payload)
     values ('${signed.position.eventId}', ${quote(chain)}, ${seq}, ${quote(signed.position.prevHash)}, '${signed.hmac}', '${key.id}', '${createdAt.toISOString()}', 'billing-agent', 'refund.approved', ${quote(event.sessionId)}, null, ${quote(signed.payload)})`,
  ]);
  return { eventId: signed.position.eventId, seq };
}

/** A key_rotations row with MACs made by whichever keys the forger holds (garbage otherwise). */
function forgedRotation(
  oldKeyId: string,
  newKeyId: string,
  rotatedAt: Date,
  signers: { old?: ChainKey; new?: ChainKey } = {},
): string {
  const rotationId = randomUUID();
  const payload = JSON.stringify({
    newKeyId,
    oldKeyId,
    operatorId: "mallory",
    reason: "forged",
    rotatedAt: rotatedAt.toISOString(),
    rotationId,
    type: "key_rotation",
    v: 1,
  });
  const hmacOld = signers.old?.hmacHex(payload) ?? "ab".repeat(32);
  const hmacNew = signers.new?.hmacHex(payload) ?? "cd".repeat(32);
  return `insert into gov_audit.key_rotations values ('${rotationId}', '${oldKeyId}', '${newKeyId}', '${rotatedAt.toISOString()}', ${quote(payload)}, '${hmacOld}', '${hmacNew}')`;
}

describe.each(testEngines())("key rotation held to its history on $name", (engine: TestEngine) => {
  const h = useAuditHarness(engine);

  const log = (sessionId: string, kind = "tool.call") => {
    h.clock.advance(1_000);
    return h.audit.log({ agentId: "billing-agent", kind, sessionId });
  };

  /**
   * Session "s": rows 1–3 under key A, the rotation to B, rows 4–5 under B. Session "quiet":
   * rows 1–2 under A, nothing after the rotation.
   */
  async function rotateAmidTraffic(): Promise<{ rotatedAt: Date }> {
    for (let index = 0; index < 3; index++) await log("s");
    for (let index = 0; index < 2; index++) await log("quiet");
    h.clock.advance(10 * 60_000);
    const rotatedAt = h.clock.now();
    await h.audit.rotateChainKey({ newKey: SECRET_B, operatorId: "ops", reason: "key leaked" });
    // The next rows come well after the rotation (past the grace for clocks and in-flight rows).
    h.clock.advance(KEY_ROTATION_GRACE_MS + 60_000);
    await log("s");
    await log("s");
    expect(await h.audit.verifyChain()).toBe(true);
    return { rotatedAt };
  }

  // Guards against: rows signed with a retired key after its rotation (fresh rows, any chain).
  it.skipIf(!engine.available)(
    "refuses fresh rows signed with the retired key after the rotation, at the end of any chain",
    async () => {
      await rotateAmidTraffic();
      h.clock.advance(10 * 60_000);
      const now = h.clock.now();
      const variants = [
        { chain: "s", why: /key .* after .* which replaced it|rotated out/ }, // after rows under B
        { chain: "quiet", why: /rotated out/ }, // a chain that never saw B
        { chain: "fresh", why: /rotated out/ }, // a chain of its own
        { chain: "agent:billing-agent", why: /rotated out/ }, // an agent's chain
      ];
      for (const variant of variants) {
        const forged = await appendForged(h.store, KEY_A, variant.chain, now);
        const filter = variant.chain.startsWith("agent:")
          ? { agentId: variant.chain.slice("agent:".length) }
          : { sessionId: variant.chain };
        const error = await chainError(() => h.audit.verifyChain(filter));
        expect(error, variant.chain).toMatchObject({
          chain: variant.chain,
          seq: forged.seq,
          eventId: forged.eventId,
        });
        expect(error.reason, variant.chain).toMatch(variant.why);
        expect(error.reason).toContain(KEY_A.id);
      }
      const report = await h.audit.verifyChainDetailed();
      expect(report).toMatchObject({ failed: 4 });
      expect(report.failures.map((failure) => failure.chain).sort()).toEqual(
        ["agent:billing-agent", "fresh", "quiet", "s"].sort(),
      );
    },
  );

  // Guards against: a retired-key row back-dated to before the rotation, after rows under the new key.
  it.skipIf(!engine.available)(
    "refuses a retired-key row after rows of the new key even when it is back-dated",
    async () => {
      const { rotatedAt } = await rotateAmidTraffic();
      const forged = await appendForged(h.store, KEY_A, "s", new Date(rotatedAt.getTime() - 5_000));
      const error = await chainError(() => h.audit.verifyChain({ sessionId: "s" }));
      expect(error).toMatchObject({ seq: forged.seq, eventId: forged.eventId });
      expect(error.reason).toContain(`after rows of its chain signed with key ${KEY_B.id}`);
    },
  );

  // Guards against: the post-rotation tail re-signed with the retired key (dates kept).
  it.skipIf(!engine.available)(
    "refuses the post-rotation tail re-signed with the retired key",
    async () => {
      await rotateAmidTraffic();
      // The whole tail under B, re-signed and relinked under A.
      await resignTail(h.store, KEY_A, "s", 4);
      const error = await chainError(() => h.audit.verifyChain({ sessionId: "s" }));
      expect(error).toMatchObject({ seq: 4 });
      expect(error.reason).toMatch(/rotated out/);
      expect((await h.audit.verifyChainDetailed({ sessionId: "s" })).failed).toBe(2);
    },
  );

  it.skipIf(!engine.available)(
    "refuses a single post-rotation row re-signed with the retired key",
    async () => {
      await rotateAmidTraffic();
      await resignTail(h.store, KEY_A, "s", 5);
      const error = await chainError(() => h.audit.verifyChain({ sessionId: "s" }));
      expect(error).toMatchObject({ seq: 5 });
      expect(error.reason).toContain(KEY_A.id);
    },
  );

  // Guards against: the post-rotation tail re-signed with the retired key and back-dated.
  it.skipIf(!engine.available)(
    "catches a back-dated re-signed tail with a checkpoint taken after the rotation",
    async () => {
      const { rotatedAt } = await rotateAmidTraffic();
      const backDated = (row: StoredEvent) => new Date(rotatedAt.getTime() - 30_000 + row.seq);
      // Honestly: rows re-signed under A and dated before the rotation say nothing that
      // contradicts them — they look like rows A signed while it was current, in a chain that
      // never saw B. What catches them is a checkpoint of the chain signed after the rotation
      // (checkpoints are being made Ed25519-signed and witnessed outside the database, so that
      // the holder of A cannot forge or remove them either).
      h.clock.advance(KEY_ROTATION_GRACE_MS + 60_000);
      expect(await h.audit.checkpoint()).toBeGreaterThan(0);
      await resignTail(h.store, KEY_A, "s", 4, backDated);
      const error = await chainError(() => h.audit.verifyChain({ sessionId: "s" }));
      expect(error.seq).toBeGreaterThanOrEqual(4);
      expect(error.reason).toContain("checkpoint");
    },
  );

  // Guards against: a back-dated retired-key row appended to a chain that never saw the new key.
  it.skipIf(!engine.available)(
    "catches a back-dated retired-key row beyond a checkpoint taken after the rotation",
    async () => {
      const { rotatedAt } = await rotateAmidTraffic();
      const backDated = new Date(rotatedAt.getTime() - 10_000);
      // Without a later checkpoint, such a row is indistinguishable from one A signed before
      // the rotation: this is the documented limit (FORMAT.md, "Key rotation").
      await appendForged(h.store, KEY_A, "quiet", backDated);
      expect(await h.audit.verifyChain({ sessionId: "quiet" })).toBe(true);
      // A checkpoint signed well after the rotation pins the head of every chain: rows under
      // the retired key beyond it were written after the key was retired.
      h.clock.advance(KEY_ROTATION_GRACE_MS + 60_000);
      await h.audit.checkpoint();
      const forged = await appendForged(h.store, KEY_A, "quiet", backDated);
      const error = await chainError(() => h.audit.verifyChain({ sessionId: "quiet" }));
      expect(error).toMatchObject({ seq: forged.seq, eventId: forged.eventId });
      expect(error.reason).toContain("after a checkpoint");
    },
  );

  // Guards against: a checkpoint forged with the retired key after the rotation.
  it.skipIf(!engine.available)(
    "refuses a checkpoint signed with the retired key after the rotation",
    async () => {
      await rotateAmidTraffic();
      h.clock.advance(10 * 60_000);
      const stale = h.another({ keyring: new Keyring(KEY_A) });
      // The database refuses it from a process that still holds the retired key…
      await expect(stale.checkpoint({ sessionIds: ["s"] })).rejects.toMatchObject({
        code: "AUDIT_KEY_RETIRED",
        keyId: KEY_A.id,
      });
      // …and a table owner holding the key who writes it anyway is caught.
      const [head] = await readChain(h.store, "s").then((rows) => rows.slice(-1));
      const checkpoint = {
        v: 1,
        type: "checkpoint",
        checkpointId: randomUUID(),
        chain: "s",
        seq: head?.seq,
        hash: head?.hmac,
        createdAt: h.clock.now().toISOString(),
        keyId: KEY_A.id,
      };
      const payload = JSON.stringify(
        Object.fromEntries(Object.entries(checkpoint).sort(([a], [b]) => (a < b ? -1 : 1))),
      );
      await tamper(h.store, [
        `insert into gov_audit.checkpoints (checkpoint_id, chain, seq, hash, created_at, key_id, hmac, payload) values ('${checkpoint.checkpointId}', 's', ${head?.seq}, '${head?.hmac}', '${checkpoint.createdAt}', '${KEY_A.id}', '${KEY_A.hmacHex(payload)}', ${quote(payload)})`,
      ]);
      const error = await chainError(() => h.audit.verifyChain({ sessionId: "s" }));
      expect(error.reason).toContain(checkpoint.checkpointId);
      expect(error.reason).toMatch(/rotated out/);
    },
  );

  it.skipIf(!engine.available)(
    "accepts rows of a process that signed just before it learned of the rotation (within the grace)",
    async () => {
      const { rotatedAt } = await rotateAmidTraffic();
      await appendForged(
        h.store,
        KEY_A,
        "in-flight",
        new Date(rotatedAt.getTime() + KEY_ROTATION_GRACE_MS - 1_000),
      );
      expect(await h.audit.verifyChain({ sessionId: "in-flight" })).toBe(true);
      await appendForged(
        h.store,
        KEY_A,
        "late",
        new Date(rotatedAt.getTime() + KEY_ROTATION_GRACE_MS + 1_000),
      );
      await expect(h.audit.verifyChain({ sessionId: "late" })).rejects.toBeInstanceOf(
        ChainIntegrityError,
      );
    },
  );

  // Guards against: the history re-signed with the new key (rows dated before the key existed).
  it.skipIf(!engine.available)(
    "refuses rows under the new key dated before it was rotated in",
    async () => {
      await rotateAmidTraffic();
      await resignTail(h.store, KEY_B, "quiet", 1);
      const error = await chainError(() => h.audit.verifyChain({ sessionId: "quiet" }));
      expect(error).toMatchObject({ seq: 1 });
      expect(error.reason).toContain(`before key ${KEY_B.id} was rotated in`);
    },
  );

  // Guards against: a process that never learned of the rotation writing on with the retired key.
  it.skipIf(!engine.available)(
    "keeps a process still on the retired key from writing: its events wait in its spool",
    async () => {
      await rotateAmidTraffic();
      const logger = recordingLogger();
      const stale = h.another({ keyring: new Keyring(KEY_A), logger });
      const record = await stale.log({
        agentId: "billing-agent",
        kind: "tool.call",
        sessionId: "s",
      });
      expect(record.status).toBe("spooled");
      expect(stale.metrics()).toMatchObject({ degraded: true, spooled: 1 });
      expect(stale.metrics().lastError?.message).toContain(KEY_A.id);
      expect(stale.metrics()).toMatchObject({
        lastError: { code: "AUDIT_KEY_RETIRED" },
        forgedKeyRotations: 0,
      });
      await expect(stale.checkpoint()).rejects.toMatchObject({ code: "AUDIT_KEY_RETIRED" });
      expect(
        logger.lines.some((line) => line.level === "error" && /restart/i.test(line.message)),
      ).toBe(true);
      const underA = await h.store.query<{ n: number }>(
        sql`select count(*)::int as n from gov_audit.events where key_id = ${KEY_A.id} and seq > 3 and chain = 's'`,
      );
      expect(underA).toEqual([{ n: 0 }]);
      expect(await h.audit.verifyChain()).toBe(true);
      // Restarted with the new key (and the old one to verify with), it writes again.
      const restarted = h.another({ keyring: new Keyring(KEY_B, [KEY_A]) });
      await restarted.start();
      expect(
        await restarted.log({ agentId: "billing-agent", kind: "tool.call", sessionId: "s" }),
      ).toMatchObject({ status: "stored", keyId: KEY_B.id });
      expect(await restarted.verifyChain()).toBe(true);
    },
  );

  // Guards against: rotating back to a retired key (or to the current one).
  it.skipIf(!engine.available)("never makes a retired key current again", async () => {
    await rotateAmidTraffic();
    await h.audit.rotateChainKey({ newKey: SECRET_C, operatorId: "ops", reason: "again" });
    for (const [secret, id] of [
      [SECRET_A, KEY_A.id],
      [SECRET_B, KEY_B.id],
      [SECRET_C, KEY_C.id],
    ] as const) {
      const error = await h.audit
        .rotateChainKey({ newKey: secret, operatorId: "ops", reason: "back" })
        .then(
          () => null,
          (caught: unknown) => caught as Error & { code: string; recoveryHint: string },
        );
      expect(error, id).toMatchObject({ code: "KEY_ROTATION_INVALID" });
      expect(error?.message).toContain(id);
      expect(`${error?.message} ${error?.recoveryHint}`).not.toContain(secret);
    }
    // A process still on a retired key cannot rotate either (it would fork the history).
    const stale = h.another({ keyring: new Keyring(KEY_A) });
    await expect(
      stale.rotateChainKey({ newKey: SECRET_D, operatorId: "ops", reason: "fork" }),
    ).rejects.toMatchObject({ code: "AUDIT_KEY_RETIRED" });
    expect(
      await h.store.query(sql`select count(*)::int as n from gov_audit.key_rotations`),
    ).toEqual([{ n: 2 }]);
    expect(await h.audit.verifyChain()).toBe(true);
  });

  // Guards against: starting with a retired key as the current one (and so signing with it).
  it.skipIf(!engine.available)(
    "refuses to start with a retired key as the current key",
    async () => {
      await rotateAmidTraffic();
      await h.audit.rotateChainKey({ newKey: SECRET_C, operatorId: "ops", reason: "again" });
      for (const [key, secret] of [
        [KEY_A, SECRET_A],
        [KEY_B, SECRET_B],
      ] as const) {
        const stale = h.another({ keyring: new Keyring(key, [KEY_C]) });
        const error = await stale.start().then(
          () => null,
          (caught: unknown) => caught as Error & { code: string; recoveryHint: string },
        );
        expect(error, key.id).toMatchObject({ code: "AUDIT_KEY_RETIRED" });
        expect(error?.message).toContain(key.id);
        expect(error?.recoveryHint).toContain("GOVERNANCE_AUDIT_SECRET");
        expect(`${error?.message} ${error?.recoveryHint}`).not.toContain(secret);
      }
      // The module definition the SDK starts refuses it the same way.
      await expect(
        auditModule.create(
          {
            store: h.store,
            keyring: new Keyring(KEY_A),
            clock: h.clock,
            logger: recordingLogger(),
          } as never,
          { spoolDirectory: null },
        ),
      ).rejects.toMatchObject({ code: "AUDIT_KEY_RETIRED" });
      // The newest key starts.
      await expect(
        h.another({ keyring: new Keyring(KEY_C, [KEY_A, KEY_B]) }).start(),
      ).resolves.toBe(undefined);
    },
  );

  // Guards against: a table owner blocking every start with a forged rotation of the current key.
  it.skipIf(!engine.available)(
    "is not stopped from starting by a forged rotation record, but reports it",
    async () => {
      await log("s");
      await tamper(h.store, [forgedRotation(KEY_A.id, KEY_X.id, h.clock.now())]);
      await expect(h.another().start()).resolves.toBe(undefined);
      const error = await chainError(() => h.audit.verifyChain({ sessionId: "s" }));
      expect(error).toMatchObject({ chain: KEY_HISTORY_CHAIN, sessionId: null });
      expect(error.reason).toMatch(/not signed/);
    },
  );

  // Guards against: a forged rotation record that names the current key (a table owner's
  // insert) stopping every write while the log tells the operator to restart with a key that
  // does not exist: the refusal is explained as a forgery, named, and counted.
  it.skipIf(!engine.available)(
    "names a forged rotation record as the reason the database refuses this key's rows",
    async () => {
      await log("s");
      const forgeries: Record<string, (at: Date) => string> = {
        "garbage MACs": (at) => forgedRotation(KEY_A.id, "ffffffffffffffff", at),
        "countersigned by the forger's own key": (at) =>
          forgedRotation(KEY_A.id, KEY_X.id, at, { new: KEY_X }),
        "a MAC of another record": (at) =>
          forgedRotation(KEY_A.id, KEY_X.id, at).replace(
            /'[0-9a-f]{64}', '[0-9a-f]{64}'\)$/,
            `'${KEY_A.hmacHex("another record")}', '${"cd".repeat(32)}')`,
          ),
      };
      for (const [name, forge] of Object.entries(forgeries)) {
        await tamper(h.store, ["delete from gov_audit.key_rotations", forge(h.clock.now())]);
        const [{ rotation_id: rotationId } = { rotation_id: "" }] = await h.store.query<{
          rotation_id: string;
        }>(sql`select rotation_id::text as rotation_id from gov_audit.key_rotations`);
        // Found at start…
        const logger = recordingLogger();
        const started = h.another({ logger });
        await started.start();
        expect(started.metrics().forgedKeyRotations, name).toBe(1);
        const atStart = logger.lines.filter((line) => line.level === "error");
        expect(
          atStart.some((line) => line.message.includes(rotationId)),
          name,
        ).toBe(true);
        expect(
          atStart.some((line) => /forged/.test(line.message)),
          name,
        ).toBe(true);
        const record = await started.log({ agentId: "billing-agent", kind: "k", sessionId: "s" });
        expect(record.status, name).toBe("spooled");
        expect(started.metrics().lastError?.code, name).toBe("AUDIT_KEY_ROTATION_FORGED");
        const refused = await rejectionOf(() => started.checkpoint());
        expect(refused, name).toMatchObject({ code: "AUDIT_KEY_ROTATION_FORGED" });
        expect((refused as Error).message, name).toContain(rotationId);
        // …and by a process that was running when the record was inserted.
        const runningLogger = recordingLogger();
        const running = h.another({ logger: runningLogger, keyring: new Keyring(KEY_A) });
        await tamper(h.store, ["delete from gov_audit.key_rotations"]);
        await running.start();
        expect(running.metrics().forgedKeyRotations, name).toBe(0);
        await tamper(h.store, [forge(h.clock.now())]);
        expect(
          (await running.log({ agentId: "billing-agent", kind: "k", sessionId: "s" })).status,
          name,
        ).toBe("spooled");
        await eventually(() => running.metrics().forgedKeyRotations === 1);
        expect(running.metrics().lastError?.code, name).toBe("AUDIT_KEY_ROTATION_FORGED");
        const errors = runningLogger.lines.filter((line) => line.level === "error");
        expect(
          errors.some((line) => /forged/.test(line.message)),
          name,
        ).toBe(true);
        // Never the advice to restart with another key: this key was not rotated out.
        for (const line of [...atStart, ...errors])
          expect(line.message, name).not.toContain("GOVERNANCE_CHAIN_KEY_");
      }
    },
  );

  // Guards against: edited or forged rotation records moving a key's validity.
  it.skipIf(!engine.available)("refuses an edited or forged rotation record", async () => {
    const { rotatedAt } = await rotateAmidTraffic();
    const later = new Date(rotatedAt.getTime() + 3_600_000);
    const [rotation] = await h.store.query<{ rotation_id: string; payload: string }>(
      sql`select rotation_id::text as rotation_id, payload from gov_audit.key_rotations`,
    );
    const id = rotation?.rotation_id ?? "";
    const cases: { name: string; statements: string[]; why: RegExp }[] = [
      {
        name: "rotated_at column moved",
        statements: [
          `update gov_audit.key_rotations set rotated_at = '${later.toISOString()}' where rotation_id = '${id}'`,
        ],
        why: /rotated_at column differs/,
      },
      {
        name: "payload moved, re-MACed by the holder of the old key only",
        statements: (() => {
          const payload = (rotation?.payload ?? "").replace(
            rotatedAt.toISOString(),
            later.toISOString(),
          );
          return [
            `update gov_audit.key_rotations set payload = ${quote(payload)}, rotated_at = '${later.toISOString()}', hmac_old = '${KEY_A.hmacHex(payload)}' where rotation_id = '${id}'`,
          ];
        })(),
        why: /not signed by key .*new/,
      },
      {
        name: "a rotation back to the retired key, unsigned",
        statements: [forgedRotation(KEY_B.id, KEY_A.id, later)],
        why: /not signed/,
      },
      {
        name: "a fork from the retired key, signed by its holder and a key of theirs",
        statements: [
          forgedRotation(KEY_A.id, KEY_X.id, new Date(rotatedAt.getTime() + 1_000), {
            old: KEY_A,
            new: KEY_X,
          }),
        ],
        why: /fork|not part of the key history/,
      },
    ];
    for (const { name, statements, why } of cases) {
      // Each case on the untouched history: undo the previous one.
      await tamper(h.store, statements);
      const error = await chainError(() => h.audit.verifyChain({ sessionId: "s" }));
      expect(error.chain, name).toBe(KEY_HISTORY_CHAIN);
      expect(error.reason, name).toMatch(why);
      await tamper(h.store, [
        `delete from gov_audit.key_rotations where rotation_id <> '${id}'`,
        `update gov_audit.key_rotations set rotated_at = '${rotatedAt.toISOString()}', payload = ${quote(rotation?.payload ?? "")}, hmac_old = '${KEY_A.hmacHex(rotation?.payload ?? "")}' where rotation_id = '${id}'`,
      ]);
      expect(await h.audit.verifyChain({ sessionId: "s" }), name).toBe(true);
    }
  });

  // Guards against: deleting the rotation record so that the retired key looks current.
  it.skipIf(!engine.available)("notices a deleted rotation record", async () => {
    await rotateAmidTraffic();
    await log("only-b");
    await tamper(h.store, ["delete from gov_audit.key_rotations"]);
    // The rotation is also an event in the chain agent:gov.audit: the record is missed.
    const error = await chainError(() => h.audit.verifyChain({ sessionId: "only-b" }));
    expect(error).toMatchObject({ chain: "agent:gov.audit", seq: 1 });
    expect(error.reason).toContain("key_rotations record is missing");
    // Deleting that event too (it is the tail of its chain): the checkpoint the rotation took
    // of agent:gov.audit reports the missing row…
    await tamper(h.store, ["delete from gov_audit.events where chain = 'agent:gov.audit'"]);
    expect(await chainError(() => h.audit.verifyChain({ agentId: "gov.audit" }))).toMatchObject({
      chain: "agent:gov.audit",
      seq: 1,
    });
    // …and a chain whose rows changed key has no rotation to show for it.
    expect((await chainError(() => h.audit.verifyChain({ sessionId: "s" }))).reason).toContain(
      "no recorded rotation",
    );
    // With the checkpoint deleted as well, a chain written under one key only proves nothing
    // about the rotation (documented): only a witness outside the database still shows it.
    await tamper(h.store, ["delete from gov_audit.checkpoints"]);
    expect(await h.audit.verifyChain({ sessionId: "only-b" })).toBe(true);
  });

  it.skipIf(!engine.available)(
    "keeps verifying what was signed before a rotation while the old key is in the keyring",
    async () => {
      await rotateAmidTraffic();
      const restarted = h.another({ keyring: new Keyring(KEY_B, [KEY_A]) });
      expect(await restarted.verifyChainDetailed()).toMatchObject({
        verified: 8,
        failed: 0,
        unverified: 0,
      });
      // Only the new key: the old rows are unverified, not failed, and the history still holds.
      const onlyNew = h.another({ keyring: new Keyring(KEY_B) });
      expect(await onlyNew.verifyChainDetailed()).toMatchObject({
        verified: 3,
        failed: 0,
        unverified: 5,
      });
    },
  );
});
