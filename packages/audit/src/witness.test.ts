import { randomUUID } from "node:crypto";
import {
  appendFile,
  copyFile,
  link,
  mkdir,
  mkdtemp,
  open,
  readFile,
  rm,
  stat,
  symlink,
  writeFile,
} from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ChainKey, type GovernanceError, InvalidArgumentError, SigningKey, sql } from "@gov/core";
import { rejectionOf, spawnJsonLinesChild, type TestEngine, testEngines } from "@gov/core/testing";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import {
  type AuditHarness,
  auditHarness,
  chainError,
  recordingLogger,
  SECRET_A,
  tamper,
} from "./__fixtures__";
import { checkpointPayload, verifyCheckpoints } from "./checkpoint-signing";
import { ChainIntegrityError } from "./errors";
import type { AuditModule } from "./module";
import { type CheckpointWitness, FileCheckpointWitness, type WitnessedCheckpoint } from "./witness";

const SESSION = "session-w";
const OTHER = "session-x";

describe.each(testEngines())("the checkpoint witness on $name", (engine: TestEngine) => {
  let h: AuditHarness;
  let directory: string;
  let witnessPath: string;
  let signingKey: SigningKey;
  let audit: AuditModule;
  let logger: ReturnType<typeof recordingLogger>;

  beforeEach(async () => {
    directory = await mkdtemp(join(tmpdir(), "gov-witness-"));
    witnessPath = join(directory, "evidence", "checkpoints.jsonl");
    signingKey = SigningKey.generate();
    logger = recordingLogger();
    if (engine.available) {
      h = await auditHarness(engine, { logger });
      audit = h.another({ audit: { signingKey, witness: witnessPath } });
    }
  });

  afterEach(async () => {
    await h?.close();
    await rm(directory, { recursive: true, force: true });
  });

  async function logEvents(sessionId: string, count: number) {
    const records = [];
    for (let index = 1; index <= count; index++) {
      h.clock.advance(1_000);
      records.push(
        await audit.log({ agentId: "agent", kind: "step", sessionId, metadata: { index } }),
      );
    }
    return records;
  }

  const witnessLines = async () =>
    (await readFile(witnessPath, "utf8"))
      .split("\n")
      .filter((line) => line !== "")
      .map((line) => JSON.parse(line) as WitnessedCheckpoint);

  it.skipIf(!engine.available)(
    "writes every head to the database and to the witness, signed with Ed25519 and the HMAC",
    async () => {
      await logEvents(SESSION, 3);
      await logEvents(OTHER, 2);
      expect(await audit.checkpoint()).toBe(2);
      const lines = await witnessLines();
      expect(lines.map((line) => [line.chain, line.seq]).sort()).toEqual([
        [SESSION, 3],
        [OTHER, 2],
      ]);
      for (const line of lines) {
        expect(line).toMatchObject({
          v: 1,
          keyId: h.keyring.current.id,
          signingKeyId: signingKey.id,
          signature: expect.stringMatching(/^[0-9a-f]{128}$/),
          hmac: expect.stringMatching(/^[0-9a-f]{64}$/),
        });
        expect(signingKey.publicKey.verify(line.payload, line.signature as string)).toBe(true);
        expect(JSON.parse(line.payload)).toMatchObject({ signingKeyId: signingKey.id });
      }
      expect((await stat(witnessPath)).mode & 0o777).toBe(0o600);
      const rows = await h.store.query<{ signature: string; signing_key_id: string }>(
        sql`select signature, signing_key_id from gov_audit.checkpoints`,
      );
      expect(rows.map((row) => row.signing_key_id)).toEqual([signingKey.id, signingKey.id]);
      expect(rows.map((row) => row.signature).sort()).toEqual(
        lines.map((line) => line.signature).sort(),
      );
      expect(audit.signingPublicKey?.id).toBe(signingKey.id);
      expect(await audit.verifyChain({ witness: witnessPath })).toBe(true);
      expect(await audit.verifyChainDetailed({ witness: witnessPath })).toMatchObject({
        verified: 5,
        failed: 0,
        hmacOnlyCheckpoints: 0,
      });
      // Another checkpoint appends, one line per checkpoint.
      await logEvents(SESSION, 1);
      await audit.checkpoint({ sessionIds: [SESSION] });
      expect((await witnessLines()).map((line) => line.seq)).toEqual(
        expect.arrayContaining([3, 2, 4]),
      );
      expect(await audit.verifyChain({ witness: witnessPath })).toBe(true);
    },
  );

  // What a table owner can do in the database that the chain and its checkpoints alone miss,
  // and that the witness must catch: each case deletes rows and the checkpoints that knew them.
  const deletions: {
    name: string;
    statements: (records: { eventId: string }[]) => string[];
    seq: number;
    reason: string;
  }[] = [
    {
      name: "the tail rows and the session's checkpoints",
      statements: (records) => [
        `delete from gov_audit.events where event_id in ('${records[3]?.eventId}', '${records[4]?.eventId}')`,
        `delete from gov_audit.checkpoints where chain = '${SESSION}'`,
      ],
      seq: 4,
      reason: "rows 4 to 5 are missing",
    },
    {
      name: "only the last row and its checkpoint",
      statements: (records) => [
        `delete from gov_audit.events where event_id = '${records[4]?.eventId}'`,
        "delete from gov_audit.checkpoints",
      ],
      seq: 5,
      reason: "kept by the witness",
    },
    {
      name: "the whole session, rows and checkpoints",
      statements: () => [
        `delete from gov_audit.events where chain = '${SESSION}'`,
        `delete from gov_audit.checkpoints where chain = '${SESSION}'`,
      ],
      seq: 1,
      reason: "rows 1 to 5 are missing",
    },
    {
      name: "every row and checkpoint of every chain, and the heads",
      statements: () => [
        "delete from gov_audit.events",
        "delete from gov_audit.checkpoints",
        "delete from gov_audit.heads",
      ],
      seq: 1,
      reason: "rows 1 to 5 are missing",
    },
    {
      name: "only the checkpoints (the rows untouched)",
      statements: () => [`delete from gov_audit.checkpoints where chain = '${SESSION}'`],
      seq: 5,
      reason: "missing from the database",
    },
  ];

  it.skipIf(!engine.available).each(deletions)(
    "catches $name, which passes without the witness",
    async ({ statements, seq, reason }) => {
      const records = await logEvents(SESSION, 5);
      await audit.checkpoint();
      await tamper(h.store, statements(records));
      // The hole the witness closes: the database alone looks intact.
      expect(
        (await audit.verifyChainDetailed({ sessionId: SESSION })).failed +
          (await audit.verifyChainDetailed()).failed,
      ).toBe(0);
      for (const options of [{ sessionId: SESSION }, {}]) {
        const error = await chainError(() =>
          audit.verifyChain({ ...options, witness: witnessPath }),
        );
        expect(error).toMatchObject({ chain: SESSION, sessionId: SESSION, seq });
        expect(error.reason).toContain(reason);
      }
      const report = await audit.verifyChainDetailed({ witness: witnessPath });
      expect(report.failed).toBeGreaterThan(0);
      expect(report.failures[0]).toMatchObject({ chain: SESSION });
    },
  );

  // A holder of the HMAC secret rewrites the chain from seq 3 (consistently, every link and
  // HMAC valid) and replaces the checkpoints with one MACed under the secret: without the
  // Ed25519 private key, the signed witness still knows the true row.
  it.skipIf(!engine.available)(
    "catches a chain rewritten with the HMAC secret, with its checkpoints forged to match",
    async () => {
      await logEvents(SESSION, 5);
      await audit.checkpoint();
      const key = new ChainKey(SECRET_A);
      const rows = await h.store.query<{ event_id: string; seq: string; payload: string }>(
        sql`select event_id::text as event_id, seq, payload from gov_audit.events where chain = ${SESSION} order by seq`,
      );
      const statements: string[] = [`delete from gov_audit.checkpoints where chain = '${SESSION}'`];
      let previous: string | null = null;
      let last = "";
      for (const row of rows) {
        const record = JSON.parse(row.payload) as Record<string, unknown>;
        if (Number(row.seq) >= 3) {
          record.prevHash = previous;
          if (Number(row.seq) === 3) record.metadata = { index: 30 };
        }
        const payload = JSON.stringify(Object.fromEntries(Object.entries(record).sort()));
        const hmac = key.hmacHex(payload);
        statements.push(
          `update gov_audit.events set payload = '${payload}', hmac = '${hmac}', prev_hash = ${previous === null ? "null" : `'${previous}'`} where event_id = '${row.event_id}'`,
        );
        previous = hmac;
        last = hmac;
      }
      const forged = {
        checkpointId: randomUUID(),
        chain: SESSION,
        seq: 5,
        hash: last,
        createdAt: "2026-01-01T00:10:00.000Z",
        keyId: key.id,
      };
      const payload = checkpointPayload(forged);
      statements.push(
        `insert into gov_audit.checkpoints (checkpoint_id, chain, seq, hash, created_at, key_id, hmac, payload) values ('${forged.checkpointId}', '${SESSION}', 5, '${last}', '${forged.createdAt}', '${key.id}', '${key.hmacHex(payload)}', '${payload}')`,
      );
      await tamper(h.store, statements);
      // The database alone, with its forged HMAC-only checkpoint, verifies.
      expect(await audit.verifyChain({ sessionId: SESSION })).toBe(true);
      // A verifier that demands Ed25519 refuses the forged checkpoint…
      const unsigned = await chainError(() =>
        audit.verifyChain({ sessionId: SESSION, requireSignedCheckpoints: true }),
      );
      expect(unsigned.reason).toContain("HMAC only");
      // …and the witness knows the true rows.
      const error = await chainError(() =>
        audit.verifyChain({ sessionId: SESSION, witness: witnessPath }),
      );
      expect(error.seq).toBe(5);
      expect(error.reason).toMatch(/disagree|differs from the row/);
    },
  );

  // A checkpoint forged by someone who holds the database and the HMAC secret, but not the
  // Ed25519 private key, in each form it can take: none passes a verifier with the public key.
  it.skipIf(!engine.available)(
    "refuses checkpoints forged with the HMAC secret but without the private key",
    async () => {
      const records = await logEvents(SESSION, 5);
      await audit.checkpoint();
      const key = new ChainKey(SECRET_A);
      const attacker = SigningKey.generate();
      const [genuine] = await h.store.query<{ signature: string }>(
        sql`select signature from gov_audit.checkpoints`,
      );
      const forge = (signingKeyId: string | null, sign: (payload: string) => string | null) => {
        const checkpoint = {
          checkpointId: randomUUID(),
          chain: SESSION,
          seq: 3,
          hash: records[2]?.hmac as string,
          createdAt: "2026-01-01T00:20:00.000Z",
          keyId: key.id,
          signingKeyId,
        };
        const payload = checkpointPayload(checkpoint);
        return { ...checkpoint, payload, hmac: key.hmacHex(payload), signature: sign(payload) };
      };
      const forgeries = {
        "HMAC only": forge(null, () => null),
        "the real key's id, a made-up signature": forge(signingKey.id, () => "ab".repeat(64)),
        "the real key's id, another checkpoint's signature": forge(
          signingKey.id,
          () => genuine?.signature as string,
        ),
        "signed by the attacker's own key": forge(attacker.id, (payload) => attacker.sign(payload)),
      };
      const insert = (forged: ReturnType<typeof forge>) =>
        `insert into gov_audit.checkpoints (checkpoint_id, chain, seq, hash, created_at, key_id, hmac, payload, signature, signing_key_id) values ('${forged.checkpointId}', '${forged.chain}', ${forged.seq}, '${forged.hash}', '${forged.createdAt}', '${forged.keyId}', '${forged.hmac}', '${forged.payload}', ${forged.signature === null ? "null" : `'${forged.signature}'`}, ${forged.signingKeyId === null ? "null" : `'${forged.signingKeyId}'`})`;
      await tamper(h.store, Object.values(forgeries).map(insert));

      // With the public key alone (no HMAC secret, no database code).
      const dbRows = await h.store.query(sql`select * from gov_audit.checkpoints`);
      const publicOnly = await verifyCheckpoints(dbRows, {
        publicKeys: [signingKey.publicKey.pem],
      });
      expect(publicOnly).toMatchObject({ verified: 1, hmacOnly: 1, failed: 3 });
      expect(publicOnly.failures.map((failure) => failure.reason).sort()).toEqual(
        [
          "its Ed25519 signature does not verify",
          "its Ed25519 signature does not verify",
          `it is signed with Ed25519 key ${attacker.id}, which is not a trusted signing key`,
        ].sort(),
      );
      const strict = await verifyCheckpoints(dbRows, {
        publicKeys: [signingKey.publicKey.pem],
        requireSignature: true,
      });
      expect(strict).toMatchObject({ verified: 1, hmacOnly: 0, failed: 4 });

      // The module holds the HMAC key too, and still refuses the three signed forgeries.
      const report = await audit.verifyChainDetailed({ sessionId: SESSION });
      expect(report.failed).toBe(3);
      expect(report.hmacOnlyCheckpoints).toBe(1);
      const demanding = await audit.verifyChainDetailed({
        sessionId: SESSION,
        requireSignedCheckpoints: true,
      });
      expect(demanding.failed).toBe(4);
    },
  );

  // An edited witness is never believed: each change of a line is a failure, not a new truth.
  it.skipIf(!engine.available)(
    "refuses edited witness lines, whichever part was changed",
    async () => {
      await logEvents(SESSION, 5);
      await audit.checkpoint();
      const [line] = await witnessLines();
      const original = line as WitnessedCheckpoint;
      const edits: Record<string, unknown> = {
        "a higher seq in the line": { ...original, seq: 9 },
        "a higher seq in the line and its payload": {
          ...original,
          seq: 9,
          payload: original.payload.replace('"seq":5', '"seq":9'),
        },
        "another hash": {
          ...original,
          hash: "0".repeat(64),
          payload: original.payload.replace(original.hash, "0".repeat(64)),
        },
        "the signature removed": {
          ...original,
          signature: null,
          signingKeyId: null,
          payload: original.payload.replace(`,"signingKeyId":"${signingKey.id}"`, ""),
        },
        "not a checkpoint": { hello: "world" },
      };
      for (const [name, edited] of Object.entries(edits)) {
        await writeFile(
          witnessPath,
          `${typeof edited === "string" ? edited : JSON.stringify(edited)}\n`,
        );
        const report = await audit.verifyChainDetailed({ witness: witnessPath });
        expect({ name, failed: report.failed > 0 }).toEqual({ name, failed: true });
        expect(report.failures[0]?.reason).toMatch(/not validly signed|not a checkpoint/);
        expect(report.damagedWitnessLines).toBe(0);
        await expect(audit.verifyChain({ witness: witnessPath })).rejects.toBeInstanceOf(
          ChainIntegrityError,
        );
      }
      // The untouched line verifies again.
      await writeFile(witnessPath, `${JSON.stringify(original)}\n`);
      expect(await audit.verifyChain({ witness: witnessPath })).toBe(true);
    },
  );

  it.skipIf(!engine.available)(
    "lets an auditor check the witness with the public key alone",
    async () => {
      await logEvents(SESSION, 5);
      await logEvents(OTHER, 2);
      await audit.checkpoint();
      const pem = audit.signingPublicKey?.pem as string;
      const report = await verifyCheckpoints(new FileCheckpointWitness(witnessPath).read(), {
        publicKeys: [pem],
      });
      expect(report).toMatchObject({ verified: 2, hmacOnly: 0, failed: 0 });
      expect(report.heads.map((head) => [head.chain, head.seq])).toEqual([
        [SESSION, 5],
        [OTHER, 2],
      ]);
      // Compare with the database with plain SQL: no secret needed.
      const [head] = await h.store.query<{ hmac: string }>(
        sql`select hmac from gov_audit.events where chain = ${SESSION} and seq = 5`,
      );
      expect(report.heads[0]?.hash).toBe(head?.hmac);
      // An edited line fails, and names its position.
      const lines = (await readFile(witnessPath, "utf8")).split("\n");
      lines[1] = (lines[1] as string).replace('"seq":2', '"seq":7');
      await writeFile(witnessPath, lines.join("\n"));
      const edited = await verifyCheckpoints(new FileCheckpointWitness(witnessPath).read(), {
        publicKeys: [pem],
      });
      expect(edited).toMatchObject({ verified: 1, failed: 1, failures: [{ index: 2 }] });
      // Another key proves nothing.
      const wrongKey = await verifyCheckpoints(new FileCheckpointWitness(witnessPath).read(), {
        publicKeys: [SigningKey.generate().publicKey],
      });
      expect(wrongKey.verified).toBe(0);
    },
  );

  // Writing to the witness is observation: its failure must never break checkpoint().
  it.skipIf(!engine.available)(
    "never fails checkpoint() for a failing witness: warns, records it, and retries",
    async () => {
      const blocked = join(directory, "a-file");
      await writeFile(blocked, "not a directory");
      const unwritable = h.another({
        audit: { signingKey, witness: join(blocked, "checkpoints.jsonl") },
        logger,
      });
      await unwritable.log({ agentId: "agent", kind: "step", sessionId: SESSION });
      expect(await unwritable.checkpoint()).toBe(1);
      expect(unwritable.metrics()).toMatchObject({ witnessPending: 1, witnessFailures: 1 });
      expect(
        logger.lines.some(
          (line) => line.level === "warn" && line.message.includes("witness could not be written"),
        ),
      ).toBe(true);
      const [failed] = await unwritable.getEvents({ kind: "audit.witness_failed" });
      expect(failed?.metadata).toMatchObject({ checkpoints: 1, pending: 1 });
      expect(String(failed?.metadata.error)).toMatch(/EEXIST|ENOTDIR/);
      // The checkpoint itself is in the database.
      expect(
        await h.store.query(sql`select count(*)::int as n from gov_audit.checkpoints`),
      ).toEqual([{ n: 1 }]);

      // A witness that comes back gets what waited, in order, at the next checkpoint.
      let down = true;
      const kept: WitnessedCheckpoint[] = [];
      const flaky: CheckpointWitness = {
        async append(checkpoints) {
          if (down) throw new Error("the evidence bucket is unreachable");
          kept.push(...checkpoints);
        },
        async *read() {
          yield* kept;
        },
      };
      const retrying = h.another({ audit: { signingKey, witness: flaky } });
      await retrying.log({ agentId: "agent", kind: "step", sessionId: OTHER });
      // Three chains now: the two sessions, and the module's own that records the failures.
      expect(await retrying.checkpoint()).toBe(3);
      expect(await retrying.checkpoint()).toBe(3);
      expect(retrying.metrics()).toMatchObject({ witnessPending: 6, witnessFailures: 2 });
      down = false;
      await retrying.checkpoint();
      expect(retrying.metrics()).toMatchObject({ witnessPending: 0 });
      expect(kept).toHaveLength(9);
      expect(await retrying.verifyChain({ witness: flaky })).toBe(true);
    },
  );

  it.skipIf(!engine.available)(
    "reports checkpoints written before signing keys as HMAC-only, not as failures",
    async () => {
      const older = h.another({ audit: { signingKey: null } });
      await older.log({ agentId: "agent", kind: "step", sessionId: SESSION });
      await older.checkpoint();
      const report = await audit.verifyChainDetailed();
      expect(report).toMatchObject({ failed: 0, hmacOnlyCheckpoints: 1 });
      expect(await audit.verifyChain()).toBe(true);
      const error = await chainError(() => audit.verifyChain({ requireSignedCheckpoints: true }));
      expect(error.reason).toContain("HMAC only");
    },
  );

  it.skipIf(!engine.available)(
    "believes another signing key's checkpoints only when its public key is trusted",
    async () => {
      const previous = SigningKey.generate();
      const before = h.another({ audit: { signingKey: previous } });
      await before.log({ agentId: "agent", kind: "step", sessionId: SESSION });
      await before.checkpoint();
      const error = await chainError(() => audit.verifyChain());
      expect(error.reason).toContain("not a trusted signing key");
      const trusting = h.another({
        audit: { signingKey, trustedSigningKeys: [previous.publicKey.pem] },
      });
      expect(await trusting.verifyChain()).toBe(true);
    },
  );

  // Guards against: one torn line (a crash or a full disk mid-append) failing every later
  // verification: a line that is not JSON hides nothing deleting it would not, so it is
  // counted and warned about, never a failure.
  it.skipIf(!engine.available)(
    "reports torn and overwritten witness lines as damaged, wherever they are, and verifies on",
    async () => {
      await logEvents(SESSION, 2);
      await audit.checkpoint();
      const [whole] = (await readFile(witnessPath, "utf8")).split("\n");
      const damages: Record<string, string> = {
        "a line torn at 200 characters": (whole as string).slice(0, 200),
        "a line torn after its first field": '{"v":1,"checkpointId":"tor',
        "bytes that are not text": "\u0000\u00ff\ufffd{",
        "a lone brace": "{",
      };
      for (const [name, damage] of Object.entries(damages)) {
        await writeFile(witnessPath, `${whole}\n`);
        // The process dies in the middle of an append…
        await appendFile(witnessPath, damage);
        expect(await audit.verifyChain({ witness: witnessPath }), name).toBe(true);
        // …and the next one appends after it: the torn line is now in the middle.
        await logEvents(SESSION, 1);
        await audit.checkpoint();
        const lines = (await readFile(witnessPath, "utf8")).split("\n");
        expect(lines[1], name).toBe(damage);
        logger.lines.length = 0;
        expect(await audit.verifyChain({ witness: witnessPath }), name).toBe(true);
        const report = await audit.verifyChainDetailed({ witness: witnessPath });
        expect(report, name).toMatchObject({
          failed: 0,
          damagedWitnessLines: 1,
          witnessEntries: 3,
          failures: [],
        });
        expect(
          logger.lines.some(
            (line) => line.level === "warn" && line.message.includes("1 damaged line"),
          ),
          name,
        ).toBe(true);
      }
      // A line that is JSON but not a validly signed checkpoint is still a failure.
      await appendFile(witnessPath, '{"hello":"world"}\n');
      expect(await audit.verifyChainDetailed({ witness: witnessPath })).toMatchObject({
        failed: 1,
        damagedWitnessLines: 1,
      });
    },
  );

  // Guards against: a checkpoint line glued to a torn one (an append racing a crash of another
  // process) being lost: the complete line after the torn bytes is still read and believed.
  it.skipIf(!engine.available)(
    "still reads a complete checkpoint glued to the end of a torn line",
    async () => {
      const records = await logEvents(SESSION, 5);
      await audit.checkpoint();
      const [whole] = (await readFile(witnessPath, "utf8")).split("\n");
      for (const torn of [(whole as string).slice(0, 120), '{"v":1,"chec', "{"]) {
        await writeFile(witnessPath, `${torn}${whole}\n`);
        expect(await audit.verifyChainDetailed({ witness: witnessPath }), torn).toMatchObject({
          failed: 0,
          damagedWitnessLines: 1,
          witnessEntries: 2,
        });
      }
      // The glued checkpoint still pins the head: rows and checkpoints deleted are caught.
      await tamper(h.store, [
        `delete from gov_audit.events where event_id in ('${records[3]?.eventId}', '${records[4]?.eventId}')`,
        "delete from gov_audit.checkpoints",
      ]);
      const error = await chainError(() =>
        audit.verifyChain({ sessionId: SESSION, witness: witnessPath }),
      );
      expect(error).toMatchObject({ seq: 4 });
      expect(error.reason).toContain("rows 4 to 5 are missing");
    },
  );

  // Guards against: a missing or unusable witness verifying as true (a deleted witness file, a
  // mistyped path), and a directory given as the witness rejecting with a bare EISDIR.
  it.skipIf(!engine.available)(
    "rejects a witness to verify against that is missing or not a file, naming the path",
    async () => {
      await logEvents(SESSION, 2);
      await audit.checkpoint();
      const missing = join(directory, "no-such-witness.jsonl");
      const cases: [string, string][] = [
        [missing, "does not exist"],
        [join(directory, "no-such-directory", "w.jsonl"), "does not exist"],
        [directory, "not a regular file"],
      ];
      for (const [path, problem] of cases) {
        for (const verify of [
          () => audit.verifyChain({ witness: path }),
          () => audit.verifyChainDetailed({ witness: path }),
          () => audit.verifyChain({ sessionId: SESSION, witness: path }),
        ]) {
          const error = await rejectionOf(verify);
          expect(error, path).toMatchObject({ code: "AUDIT_WITNESS_UNAVAILABLE", path });
          expect((error as Error).message, path).toContain(path);
          expect((error as Error).message, path).toContain(problem);
          expect((error as GovernanceError).recoveryHint, path).toBeTruthy();
        }
      }
      // The report says how many entries the witness gave.
      expect(await audit.verifyChainDetailed({ witness: witnessPath })).toMatchObject({
        witnessEntries: 1,
        damagedWitnessLines: 0,
      });
      expect(await audit.verifyChainDetailed()).toMatchObject({
        witnessEntries: 0,
        damagedWitnessLines: 0,
      });
    },
  );

  // Guards against: the witness path pointed at another file (the HMAC key file, a config)
  // through a symbolic or hard link, or at a file that is not a witness, and appended to.
  it.skipIf(!engine.available)(
    "never appends through a link or to a file that is not a witness, and never reads one",
    async () => {
      await logEvents(SESSION, 1);
      const target = join(directory, "audit-secret.key");
      const secret = "c2VjcmV0LWtleS1tYXRlcmlhbC1vZi00OC1ieXRlcy1sb25nLWxvbmctbG9uZw\n";
      await writeFile(target, secret, { mode: 0o600 });
      // [what is planted, how, why appending is refused, why reading is refused]
      const links: [string, (path: string) => Promise<void>, string, string][] = [
        ["a symbolic link", (path) => symlink(target, path), "symbolic link", "symbolic link"],
        ["a hard link", (path) => link(target, path), "hard link", "not a witness"],
        [
          "a copy of a non-witness file",
          (path) => copyFile(target, path),
          "not a witness",
          "not a witness",
        ],
        [
          "a symbolic link to a directory",
          (path) => symlink(directory, path),
          "symbolic link",
          "symbolic link",
        ],
      ];
      for (const [name, plant, problem, readProblem] of links) {
        const path = join(directory, "evidence", `${name.replaceAll(" ", "-")}.jsonl`);
        await mkdir(join(directory, "evidence"), { recursive: true });
        await plant(path);
        const victim = h.another({ audit: { signingKey, witness: path }, logger });
        logger.lines.length = 0;
        // The session's chain, and from the second case on the module's own chain.
        const taken = await victim.checkpoint();
        expect(taken, name).toBeGreaterThan(0);
        expect(victim.metrics(), name).toMatchObject({
          witnessFailures: 1,
          witnessPending: taken,
        });
        expect(await readFile(target, "utf8"), name).toBe(secret);
        expect(
          logger.lines.some((line) => line.message.includes("witness could not be written")),
          name,
        ).toBe(true);
        const recorded = (await victim.getEvents({ kind: "audit.witness_failed" })).at(-1);
        expect(String(recorded?.metadata.error), name).toContain(problem);
        expect(String(recorded?.metadata.error), name).not.toContain(secret.trim());
        const error = await rejectionOf(() => victim.verifyChain({ witness: path }));
        expect(error, name).toMatchObject({ code: "AUDIT_WITNESS_UNAVAILABLE", path });
        expect((error as Error).message, name).toContain(readProblem);
        expect((error as Error).message, name).not.toContain(secret.trim());
      }
    },
  );

  it.skipIf(!engine.available)("refuses bad options by rejecting, and writes nothing", async () => {
    await logEvents(SESSION, 1);
    for (const sessionIds of ["x", [null], [""], [42], {}]) {
      await expect(audit.checkpoint({ sessionIds } as never)).rejects.toBeInstanceOf(
        InvalidArgumentError,
      );
    }
    await expect(audit.checkpoint(null as never)).rejects.toBeInstanceOf(InvalidArgumentError);
    expect(await h.store.query(sql`select count(*)::int as n from gov_audit.checkpoints`)).toEqual([
      { n: 0 },
    ]);
    const promise = audit.verifyChain({ witness: 42 as never });
    await expect(promise).rejects.toMatchObject({ code: "INVALID_ARGUMENT", field: "witness" });
    await expect(
      audit.verifyChain({ requireSignedCheckpoints: "yes" as never }),
    ).rejects.toMatchObject({ field: "requireSignedCheckpoints" });
    await expect(verifyCheckpoints([], { publicKeys: [] })).rejects.toMatchObject({
      field: "publicKeys",
    });
    await expect(
      verifyCheckpoints(42 as never, { publicKeys: [signingKey.publicKey] }),
    ).rejects.toMatchObject({
      field: "checkpoints",
    });
    expect(() => h.another({ audit: { witness: 42 as never } })).toThrow(InvalidArgumentError);
  });
});

/** Checkpoint-shaped witness lines (not signed: these tests are about the file). */
function fakeCheckpoints(count: number, tag: string): WitnessedCheckpoint[] {
  return Array.from({ length: count }, (_, index) => ({
    v: 1,
    checkpointId: randomUUID(),
    chain: `${tag}-${index}`,
    seq: 1,
    hash: "a".repeat(64),
    createdAt: "2026-01-01T00:00:00.000Z",
    keyId: "0123456789abcdef",
    signingKeyId: "fedcba9876543210",
    payload: "x".repeat(300),
    hmac: "b".repeat(64),
    signature: "c".repeat(128),
  }));
}

async function parsedLines(path: string): Promise<{ lines: number; unparsable: number }> {
  const lines = (await readFile(path, "utf8")).split("\n").filter((line) => line !== "");
  let unparsable = 0;
  for (const line of lines) {
    try {
      JSON.parse(line);
    } catch {
      unparsable++;
    }
  }
  return { lines: lines.length, unparsable };
}

describe("the witness file", () => {
  let directory: string;
  let path: string;

  beforeEach(async () => {
    directory = await mkdtemp(join(tmpdir(), "gov-witness-file-"));
    path = join(directory, "checkpoints.jsonl");
  });

  afterEach(async () => {
    vi.restoreAllMocks();
    await rm(directory, { recursive: true, force: true });
  });

  /** The prototype of node's FileHandle, whose write() a test makes fail. */
  async function fileHandlePrototype(): Promise<{
    write: (...args: unknown[]) => Promise<{ bytesWritten: number }>;
  }> {
    const handle = await open(join(directory, "probe"), "w");
    await handle.close();
    return Object.getPrototypeOf(handle);
  }

  // Guards against: the appends of several processes interleaving inside a line (a write of
  // more than 512 KiB is split by node into pieces that other processes' pieces come between).
  it("writes whole lines only, in writes of at most 512 KiB", async () => {
    const prototype = await fileHandlePrototype();
    const original = prototype.write;
    const writes: Buffer[] = [];
    vi.spyOn(prototype, "write").mockImplementation(function (this: unknown, ...args) {
      writes.push(Buffer.from((args[0] as Buffer).subarray(0, args[2] as number)));
      return original.apply(this, args);
    });
    const witness = new FileCheckpointWitness(path);
    await witness.append(fakeCheckpoints(1, "first"));
    await witness.append(fakeCheckpoints(4_000, "big"));
    expect(writes.length).toBeGreaterThan(4);
    for (const written of writes) {
      expect(written.length).toBeLessThanOrEqual(512 * 1024);
      expect(written.at(-1)).toBe(0x0a);
    }
    expect(Buffer.concat(writes).toString("utf8")).toBe(await readFile(path, "utf8"));
    expect(await parsedLines(path)).toEqual({ lines: 4_001, unparsable: 0 });
  });

  // Guards against: a failed append (a full disk) leaving a partial line in the file, which
  // the next append then buries in the middle.
  it("cuts a failed append back to where it started, whichever write fails", async () => {
    const witness = new FileCheckpointWitness(path);
    await witness.append(fakeCheckpoints(3, "before"));
    const before = await readFile(path, "utf8");
    const prototype = await fileHandlePrototype();
    const original = prototype.write;
    const noSpace = () =>
      Object.assign(new Error("ENOSPC: no space left on device, write"), {
        code: "ENOSPC",
      });
    // Each failure: which write fails, and how.
    const failures: Record<string, (call: number, args: unknown[], self: unknown) => unknown> = {
      "the first write is cut short": (call, args, self) =>
        call === 1
          ? original
              .apply(self, [args[0], args[1], Math.floor((args[2] as number) / 2), args[3]])
              .then((result) => result)
          : original.apply(self, args),
      "the first write fails": (call, args, self) =>
        call === 1 ? Promise.reject(noSpace()) : original.apply(self, args),
      "the third write fails, after two whole ones": (call, args, self) =>
        call === 3 ? Promise.reject(noSpace()) : original.apply(self, args),
      "the second write is cut short": (call, args, self) =>
        call === 2
          ? original.apply(self, [args[0], args[1], 1_000, args[3]])
          : original.apply(self, args),
    };
    for (const [name, fail] of Object.entries(failures)) {
      let call = 0;
      const spy = vi.spyOn(prototype, "write").mockImplementation(function (
        this: unknown,
        ...args
      ) {
        call++;
        return fail(call, args, this) as Promise<{ bytesWritten: number }>;
      });
      await expect(witness.append(fakeCheckpoints(3_000, "lost")), name).rejects.toThrow();
      spy.mockRestore();
      expect(await readFile(path, "utf8"), name).toBe(before);
    }
    // The disk has room again: the next append is whole, and nothing is damaged.
    await witness.append(fakeCheckpoints(2, "after"));
    expect(await parsedLines(path)).toEqual({ lines: 5, unparsable: 0 });
  });

  // Guards against: appends of several OS processes to one file interleaving (219 unparsable
  // lines of 320,000 were seen with 4 processes appending 2,000 lines at a time).
  it("keeps every line whole when several processes append large batches at once", async () => {
    const processes = 3;
    const batches = 6;
    const lines = 2_000;
    const children = Array.from({ length: processes }, (_, worker) =>
      spawnJsonLinesChild(
        new URL("./__fixtures__/witness-append-child.ts", import.meta.url),
        [path, String(batches), String(lines), String(worker)],
        { cwd: new URL("..", import.meta.url) },
      ),
    );
    for (const child of children) expect(await child.next()).toEqual({ ready: true });
    for (const child of children) child.send({ go: true });
    for (const child of children) {
      expect(await child.next()).toEqual({ appended: batches * lines });
      await child.exited();
    }
    expect(await parsedLines(path)).toEqual({
      lines: processes * batches * lines,
      unparsable: 0,
    });
  }, 120_000);
});
