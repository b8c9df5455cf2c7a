/**
 * FORMAT.md is a contract: an auditor must be able to re-verify a chain with nothing but
 * the spec and the key. This verifier is written from FORMAT.md alone — node:crypto, plain
 * SQL and a small RFC 8785 serializer, none of the module's code — and run against chains
 * the module wrote. If the module and the document drift apart, this fails.
 */
import { createHash, createHmac, timingSafeEqual } from "node:crypto";
import { sql } from "@gov/core";
import { type TestEngine, testEngines } from "@gov/core/testing";
import { describe, expect, it } from "vitest";
import { SECRET_A, SECRET_B, tamper, useAuditHarness } from "./__fixtures__";

/** RFC 8785 for the JSON the format allows (integers, strings, booleans, null, arrays, objects). */
function jcs(value: unknown): string {
  if (value === null || typeof value === "boolean") return JSON.stringify(value);
  if (typeof value === "number") {
    if (!Number.isFinite(value)) throw new Error("not JSON");
    return Object.is(value, -0) ? "0" : JSON.stringify(value);
  }
  if (typeof value === "string") return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(jcs).join(",")}]`;
  const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) =>
    a < b ? -1 : a > b ? 1 : 0,
  );
  return `{${entries.map(([key, item]) => `${JSON.stringify(key)}:${jcs(item)}`).join(",")}}`;
}

const keyIdOf = (secret: string) =>
  createHash("sha256")
    .update("gov.key-fingerprint.v1\0")
    .update(Buffer.from(secret, "utf8"))
    .digest("hex")
    .slice(0, 16);

const hmacOf = (secret: string, payload: string) =>
  createHmac("sha256", Buffer.from(secret, "utf8")).update(payload, "utf8").digest();

interface Row extends Record<string, unknown> {
  event_id: string;
  chain: string;
  seq: string | number;
  prev_hash: string | null;
  hmac: string;
  key_id: string;
  payload: string;
}

/** Verify every chain per FORMAT.md; returns the first failure as "chain@seq", or null. */
function verifyPerSpec(rows: readonly Row[], secrets: readonly string[]): string | null {
  const keys = new Map(secrets.map((secret) => [keyIdOf(secret), secret]));
  let previous: { chain: string; seq: number; hmac: string } | null = null;
  for (const row of rows) {
    const secret = keys.get(row.key_id);
    const record = JSON.parse(row.payload) as Record<string, unknown>;
    const samePrevious: typeof previous = previous?.chain === row.chain ? previous : null;
    const ok =
      secret !== undefined &&
      timingSafeEqual(hmacOf(secret, row.payload), Buffer.from(row.hmac, "hex")) &&
      jcs(record) === row.payload &&
      record.v === 1 &&
      record.keyId === row.key_id &&
      record.eventId === row.event_id &&
      record.chain === row.chain &&
      record.seq === Number(row.seq) &&
      record.prevHash === row.prev_hash &&
      record.seq === (samePrevious ? samePrevious.seq + 1 : 1) &&
      record.prevHash === (samePrevious ? samePrevious.hmac : null) &&
      (record.sessionId === null
        ? row.chain === `agent:${String(record.agentId)}`
        : row.chain === record.sessionId);
    if (!ok) return `${row.chain}@${row.seq}`;
    previous = { chain: row.chain, seq: Number(row.seq), hmac: row.hmac };
  }
  return null;
}

describe.each(testEngines())("the record format (FORMAT.md) on $name", (engine: TestEngine) => {
  const h = useAuditHarness(engine);

  const readAll = () =>
    h.store.query<Row>(
      sql`select event_id::text as event_id, chain, seq, prev_hash, hmac, key_id, payload from gov_audit.events order by chain, seq, event_id`,
    );

  it.skipIf(!engine.available)(
    "lets a verifier written from the spec alone re-verify chains the module wrote, across a key rotation",
    async () => {
      for (let index = 0; index < 3; index++) {
        await h.audit.log({
          agentId: "billing-agent",
          kind: "tool.call",
          sessionId: "s-1",
          model: "gpt-4o-mini",
          inputHash: "ab".repeat(32),
          metadata: {
            step: index,
            note: "e\u0301 caf\u00e9\u0007",
            nested: { z: [1, "two", null] },
          },
        });
        await h.audit.log({ agentId: "ops-agent", kind: "heartbeat", metadata: { index } });
      }
      await h.audit.rotateChainKey({ newKey: SECRET_B, operatorId: "ops", reason: "test" });
      await h.audit.log({ agentId: "billing-agent", kind: "tool.call", sessionId: "s-1" });
      await h.audit.flush();
      const rows = await readAll();
      expect(rows.length).toBe(8);
      expect(verifyPerSpec(rows, [SECRET_A, SECRET_B])).toBeNull();
      // Text was normalized (NFC) and the control character neutralized before signing.
      const first = JSON.parse(rows.find((row) => row.chain === "s-1")?.payload ?? "{}");
      expect(first.metadata.note).toBe("\u00e9 caf\u00e9\ufffd");
      // The rotation marker is MACed by both keys over its canonical payload.
      const [rotation] = await h.store.query<{
        payload: string;
        hmac_old: string;
        hmac_new: string;
      }>(sql`select payload, hmac_old, hmac_new from gov_audit.key_rotations`);
      expect(rotation).toBeDefined();
      const marker = JSON.parse(rotation?.payload ?? "{}");
      expect(jcs(marker)).toBe(rotation?.payload);
      expect(marker).toMatchObject({
        v: 1,
        type: "key_rotation",
        oldKeyId: keyIdOf(SECRET_A),
        newKeyId: keyIdOf(SECRET_B),
      });
      expect(hmacOf(SECRET_A, rotation?.payload ?? "").toString("hex")).toBe(rotation?.hmac_old);
      expect(hmacOf(SECRET_B, rotation?.payload ?? "").toString("hex")).toBe(rotation?.hmac_new);
    },
  );

  it.skipIf(!engine.available)("signs checkpoints as the spec says", async () => {
    await h.audit.log({ agentId: "a", kind: "step", sessionId: "s-2" });
    await h.audit.log({ agentId: "a", kind: "step", sessionId: "s-2" });
    expect(await h.audit.checkpoint({ sessionIds: ["s-2"] })).toBe(1);
    const [checkpoint] = await h.store.query<{ payload: string; hmac: string }>(
      sql`select payload, hmac from gov_audit.checkpoints`,
    );
    const [head] = await h.store.query<{ hmac: string }>(
      sql`select hmac from gov_audit.events where chain = 's-2' and seq = 2`,
    );
    const parsed = JSON.parse(checkpoint?.payload ?? "{}");
    expect(jcs(parsed)).toBe(checkpoint?.payload);
    expect(parsed).toMatchObject({
      v: 1,
      type: "checkpoint",
      chain: "s-2",
      seq: 2,
      hash: head?.hmac,
      keyId: keyIdOf(SECRET_A),
    });
    expect(hmacOf(SECRET_A, checkpoint?.payload ?? "").toString("hex")).toBe(checkpoint?.hmac);
  });

  it.skipIf(!engine.available)(
    "makes the spec's verifier fail where the module's does, on a tampered row",
    async () => {
      for (let index = 0; index < 4; index++)
        await h.audit.log({ agentId: "a", kind: "step", sessionId: "s-3", metadata: { index } });
      await tamper(h.store, [
        `update gov_audit.events set payload = replace(payload, '"index":2', '"index":9') where chain = 's-3' and seq = 3`,
      ]);
      expect(verifyPerSpec(await readAll(), [SECRET_A])).toBe("s-3@3");
      await expect(h.audit.verifyChain({ sessionId: "s-3" })).rejects.toMatchObject({ seq: 3 });
    },
  );
});
