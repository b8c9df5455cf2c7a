import { randomUUID } from "node:crypto";
import { ChainKey, Keyring, sql } from "@gov/core";
import { type TestEngine, testEngines, thrown } from "@gov/core/testing";
import { describe, expect, it } from "vitest";
import { chainError, SECRET_A, SECRET_B, tamper, useAuditHarness } from "./__fixtures__";
import { InvalidAuditEventError } from "./errors";
import { normalizeEvent } from "./models";
import { signRecord } from "./record";

describe.each(testEngines())("the audit chain on $name", (engine: TestEngine) => {
  const h = useAuditHarness(engine);
  const session = "session-1";

  async function logFive() {
    const records = [];
    for (let index = 1; index <= 5; index++) {
      h.clock.advance(1_000);
      records.push(
        await h.audit.log({
          agentId: "billing-agent",
          kind: "tool.call",
          sessionId: session,
          metadata: { step: index },
        }),
      );
    }
    return records;
  }

  it.skipIf(!engine.available)(
    "links each session's events into a gapless chain, signed under the current key",
    async () => {
      const records = await logFive();
      expect(records.map((record) => record.seq)).toEqual([1, 2, 3, 4, 5]);
      expect(records[0]?.prevHash).toBeNull();
      for (let index = 1; index < records.length; index++)
        expect(records[index]?.prevHash).toBe(records[index - 1]?.hmac);
      expect(
        records.every(
          (record) =>
            record.status === "stored" &&
            !record.isPlaceholder &&
            record.keyId === h.keyring.current.id,
        ),
      ).toBe(true);
      expect(await h.audit.verifyChain({ sessionId: session })).toBe(true);
      expect(await h.audit.verifyChain()).toBe(true);
      const read = await h.audit.getEvents({ sessionId: session });
      expect(read).toEqual(records);
      expect(await h.audit.traceSessionChain(session)).toEqual(records);
    },
  );

  it.skipIf(!engine.available)(
    "keeps events without a session in their agent's own chain",
    async () => {
      const first = await h.audit.log({ agentId: "scheduler", kind: "tick" });
      const second = await h.audit.log({ agentId: "scheduler", kind: "tick" });
      const other = await h.audit.log({ agentId: "other", kind: "tick" });
      expect([first.chain, first.seq, second.seq, other.chain, other.seq]).toEqual([
        "agent:scheduler",
        1,
        2,
        "agent:other",
        1,
      ]);
      expect(await h.audit.verifyChain({ agentId: "scheduler" })).toBe(true);
    },
  );

  it.skipIf(!engine.available)(
    "group-commits concurrent calls: many events and sessions per transaction",
    async () => {
      const records = await Promise.all(
        Array.from({ length: 300 }, (_, index) =>
          h.audit.log({
            agentId: "a",
            kind: "k",
            sessionId: `s-${index % 12}`,
            metadata: { index },
          }),
        ),
      );
      const metrics = h.audit.metrics();
      expect(metrics.stored).toBe(300);
      expect(metrics.batches).toBeLessThanOrEqual(3);
      for (let chain = 0; chain < 12; chain++) {
        const seqs = records
          .filter((record) => record.chain === `s-${chain}`)
          .map((record) => record.seq);
        expect(seqs).toEqual(Array.from({ length: 25 }, (_, index) => index + 1));
      }
      expect(await h.audit.verifyChainDetailed()).toMatchObject({
        verified: 300,
        failed: 0,
        unverified: 0,
        chains: 12,
      });
    },
  );

  it.skipIf(!engine.available)(
    "keeps each writer's order when batches of different chains are written at once",
    async () => {
      const audit = h.another({ audit: { maxConcurrentBatches: 4, maxBatchSize: 50 } });
      // 40 writers on 10 sessions, each logging 15 events one after another.
      await Promise.all(
        Array.from({ length: 40 }, async (_, writer) => {
          for (let step = 0; step < 15; step++) {
            await audit.log({
              agentId: "a",
              kind: "step",
              sessionId: `lane-${writer % 10}`,
              metadata: { writer, step },
            });
          }
        }),
      );
      expect(audit.metrics()).toMatchObject({ stored: 600, placeholders: 0, spooled: 0 });
      for (let session = 0; session < 10; session++) {
        const events = await audit.getEvents({ sessionId: `lane-${session}` });
        expect(events.map((event) => event.seq)).toEqual(
          Array.from({ length: 60 }, (_, index) => index + 1),
        );
        for (let writer = session; writer < 40; writer += 10) {
          const steps = events
            .filter((event) => event.metadata.writer === writer)
            .map((event) => event.metadata.step);
          expect(steps).toEqual(Array.from({ length: 15 }, (_, index) => index));
        }
      }
      expect(await audit.verifyChain()).toBe(true);
    },
  );

  it.skipIf(!engine.available)(
    "appends behind another writer of the same chain whose rows it has not seen",
    async () => {
      // Two writers (as two processes would be), each remembering the heads it wrote last:
      // every append of one makes the other's memory stale.
      const other = h.another();
      for (let round = 0; round < 5; round++) {
        await h.audit.log({ agentId: "a", kind: "mine", sessionId: "shared" });
        await other.log({ agentId: "a", kind: "theirs", sessionId: "shared" });
      }
      const events = await h.audit.getEvents({ sessionId: "shared" });
      expect(events.map((event) => `${event.seq}:${event.kind}`)).toEqual(
        Array.from({ length: 10 }, (_, index) => `${index + 1}:${index % 2 ? "theirs" : "mine"}`),
      );
      expect(h.audit.metrics()).toMatchObject({ stored: 5, placeholders: 0, spooled: 0 });
      expect(other.metrics()).toMatchObject({ stored: 5, placeholders: 0, spooled: 0 });
      expect(await h.audit.verifyChain({ sessionId: "shared" })).toBe(true);
    },
  );

  it.skipIf(!engine.available)("refuses UPDATE, DELETE and TRUNCATE of the chain", async () => {
    await logFive();
    for (const statement of [
      "update gov_audit.events set kind = 'x'",
      "delete from gov_audit.events",
      "truncate gov_audit.events",
      "truncate gov_audit.checkpoints",
      "truncate gov_audit.key_rotations",
    ]) {
      const error = await h.store.query(sql.raw(statement)).catch((caught: unknown) => caught);
      expect(error, statement).toMatchObject({ sqlState: "GA001" });
    }
    expect(await h.store.query(sql`select count(*)::int as n from gov_audit.events`)).toEqual([
      { n: 5 },
    ]);
  });

  describe("catches tampering done through SQL at the right row", () => {
    it.skipIf(!engine.available)("a column changed", async () => {
      const records = await logFive();
      await tamper(h.store, [
        `update gov_audit.events set kind = 'tool.approved' where event_id = '${records[1]?.eventId}'`,
      ]);
      const error = await chainError(() => h.audit.verifyChain({ sessionId: session }));
      expect(error).toMatchObject({
        code: "CHAIN_INTEGRITY",
        chain: session,
        sessionId: session,
        seq: 2,
        eventId: records[1]?.eventId,
      });
      expect(error.reason).toContain("kind column");
    });

    it.skipIf(!engine.available)("the signed record changed", async () => {
      const records = await logFive();
      await tamper(h.store, [
        `update gov_audit.events set payload = replace(payload, '"step":3', '"step":30') where event_id = '${records[2]?.eventId}'`,
      ]);
      const error = await chainError(() => h.audit.verifyChain());
      expect(error).toMatchObject({ seq: 3, eventId: records[2]?.eventId });
      expect(error.reason).toContain("HMAC");
    });

    it.skipIf(!engine.available)("the first row deleted", async () => {
      const records = await logFive();
      await tamper(h.store, [
        `delete from gov_audit.events where event_id = '${records[0]?.eventId}'`,
      ]);
      const error = await chainError(() => h.audit.verifyChain({ sessionId: session }));
      expect(error).toMatchObject({ seq: 1, eventId: null });
      expect(error.reason).toContain("row 1 is missing");
    });

    it.skipIf(!engine.available)("a middle row deleted", async () => {
      const records = await logFive();
      await tamper(h.store, [
        `delete from gov_audit.events where event_id = '${records[2]?.eventId}'`,
      ]);
      expect(await chainError(() => h.audit.verifyChain({ sessionId: session }))).toMatchObject({
        seq: 3,
        eventId: null,
      });
    });

    it.skipIf(!engine.available)(
      "the last row deleted: invisible to the links, caught by a checkpoint",
      async () => {
        const records = await logFive();
        expect(await h.audit.checkpoint()).toBe(1);
        await tamper(h.store, [
          `delete from gov_audit.events where event_id = '${records[4]?.eventId}'`,
        ]);
        const error = await chainError(() => h.audit.verifyChain({ sessionId: session }));
        expect(error).toMatchObject({ seq: 5, eventId: null });
        expect(error.reason).toContain("checkpoint");
        // Without the checkpoint the shortened chain would look intact: that is why they exist.
        await tamper(h.store, ["delete from gov_audit.checkpoints"]);
        expect(await h.audit.verifyChain({ sessionId: session })).toBe(true);
      },
    );

    it.skipIf(!engine.available)("every row of a checkpointed chain deleted", async () => {
      await logFive();
      await h.audit.checkpoint();
      await tamper(h.store, ["delete from gov_audit.events"]);
      expect(await chainError(() => h.audit.verifyChain())).toMatchObject({
        chain: session,
        seq: 1,
      });
    });

    it.skipIf(!engine.available)("a row inserted", async () => {
      const records = await logFive();
      const forged = records[2];
      await tamper(h.store, [
        `insert into gov_audit.events select gen_random_uuid(), chain, seq, prev_hash, repeat('ab', 32), key_id, created_at, agent_id, 'tool.approved', session_id, parent_event_id, replace(payload, 'tool.call', 'tool.approved') from gov_audit.events where event_id = '${forged?.eventId}'`,
      ]);
      expect(await chainError(() => h.audit.verifyChain({ sessionId: session }))).toMatchObject({
        seq: 3,
      });
    });

    it.skipIf(!engine.available)("two rows swapped", async () => {
      const records = await logFive();
      await tamper(h.store, [
        `update gov_audit.events set seq = 300 where event_id = '${records[1]?.eventId}'`,
        `update gov_audit.events set seq = 2 where event_id = '${records[2]?.eventId}'`,
        `update gov_audit.events set seq = 3 where event_id = '${records[1]?.eventId}'`,
      ]);
      const error = await chainError(() => h.audit.verifyChain({ sessionId: session }));
      expect(error).toMatchObject({ seq: 2, eventId: records[2]?.eventId });
    });

    it.skipIf(!engine.available)("a forked second root, validly signed", async () => {
      await logFive();
      // Someone with the key writes another first row for the same session.
      const event = normalizeEvent({
        agentId: "billing-agent",
        kind: "tool.call",
        sessionId: session,
      });
      const createdAt = new Date("2026-01-01T00:00:02.000Z");
      const signed = signRecord(new ChainKey(SECRET_A), event, {
        eventId: randomUUID(),
        chain: session,
        seq: 1,
        prevHash: null,
        createdAt,
      });
      await tamper(h.store, [
        `insert into gov_audit.events values ('${signed.position.eventId}', '${session}', 1, null, '${signed.hmac}', '${signed.position.keyId}', '${createdAt.toISOString()}', 'billing-agent', 'tool.call', '${session}', null, '${signed.payload}')`,
      ]);
      const error = await chainError(() => h.audit.verifyChain({ sessionId: session }));
      expect(error.seq).toBe(1);
      expect(error.reason).toMatch(/two rows claim seq 1|second root/);
    });

    it.skipIf(!engine.available)("a row re-signed with another key", async () => {
      const records = await logFive();
      const target = records[1];
      const rows = await h.store.query<{ payload: string }>(
        sql`select payload from gov_audit.events where event_id = ${target?.eventId}::uuid`,
      );
      const other = new ChainKey(SECRET_B);
      const payload = (rows[0]?.payload ?? "").replace(
        `"keyId":"${h.keyring.current.id}"`,
        `"keyId":"${other.id}"`,
      );
      await tamper(h.store, [
        `update gov_audit.events set key_id = '${other.id}', payload = '${payload}', hmac = '${other.hmacHex(payload)}' where event_id = '${target?.eventId}'`,
      ]);
      const error = await chainError(() => h.audit.verifyChain({ sessionId: session }));
      expect(error).toMatchObject({ seq: 2, eventId: target?.eventId });
      expect(error.reason).toContain("not in the keyring");
    });
  });

  it.skipIf(!engine.available)(
    "a chain written with key A fails under key B, and counts as unverified there",
    async () => {
      await logFive();
      const underB = h.another({ keyring: new Keyring(new ChainKey(SECRET_B)) });
      const error = await chainError(() => underB.verifyChain());
      expect(error).toMatchObject({ seq: 1 });
      expect(await underB.verifyChainDetailed()).toMatchObject({
        verified: 0,
        failed: 0,
        unverified: 5,
      });
      // The real key is what makes them verifiable, not the key id they name.
      const liar = h.another({ keyring: new Keyring(Object.assign(new ChainKey(SECRET_B), {})) });
      expect((await liar.verifyChainDetailed()).unverified).toBe(5);
    },
  );

  it.skipIf(!engine.available)("verifies a window, linking it to the row before it", async () => {
    const records = await logFive();
    expect(await h.audit.verifyChain({ sessionId: session, fromSeq: 3, toSeq: 4 })).toBe(true);
    await tamper(h.store, [
      `update gov_audit.events set kind = 'x' where event_id = '${records[0]?.eventId}'`,
    ]);
    // Row 1 is outside the window; row 2 is the window's predecessor and is intact.
    expect(await h.audit.verifyChain({ sessionId: session, fromSeq: 3, toSeq: 4 })).toBe(true);
    await tamper(h.store, [
      `update gov_audit.events set kind = 'x' where event_id = '${records[3]?.eventId}'`,
    ]);
    expect(
      await chainError(() => h.audit.verifyChain({ sessionId: session, fromSeq: 3, toSeq: 4 })),
    ).toMatchObject({ seq: 4 });
    await expect(h.audit.verifyChain({ fromSeq: 2 })).rejects.toMatchObject({
      code: "INVALID_ARGUMENT",
    });
  });

  it.skipIf(!engine.available)("counts what it verified, failed and could not verify", async () => {
    const records = await logFive();
    await tamper(h.store, [
      `update gov_audit.events set kind = 'x' where event_id = '${records[1]?.eventId}'`,
    ]);
    const report = await h.audit.verifyChainDetailed();
    expect(report).toMatchObject({ verified: 4, failed: 1, unverified: 0, chains: 1 });
    expect(report.failures[0]).toMatchObject({ seq: 2, eventId: records[1]?.eventId });
  });

  it.skipIf(!engine.available)(
    "rejects invalid input with a clear error and writes nothing",
    async () => {
      const cases: [Record<string, unknown>, string, number | undefined][] = [
        [{ agentId: "a", kind: "k".repeat(129) }, "kind", 128],
        [{ agentId: "a".repeat(257), kind: "k" }, "agentId", 256],
        [{ agentId: "a", kind: "k", model: "m".repeat(129) }, "model", 128],
        [{ agentId: "", kind: "k" }, "agentId", undefined],
        [
          {
            agentId: "a",
            kind: "k",
            metadata: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`k${i}`, i])),
          },
          "metadata",
          64,
        ],
        [{ agentId: "a", kind: "k", metadata: { big: "x".repeat(9_000) } }, "metadata.big", 8_192],
        [
          {
            agentId: "a",
            kind: "k",
            metadata: Object.fromEntries(
              Array.from({ length: 10 }, (_, i) => [`k${i}`, "x".repeat(8_000)]),
            ),
          },
          "metadata",
          65_536,
        ],
        [{ agentId: "a", kind: "k", metadata: { n: Number.NaN } }, "metadata.n", undefined],
        [{ agentId: "a", kind: "k", metadata: new Map() as never }, "metadata", undefined],
        [{ agentId: "a", kind: "k", parentEventId: "not-a-uuid" }, "parentEventId", undefined],
        [{ agentId: "a", kind: "k", inputHash: "xyz" }, "inputHash", undefined],
        [{ agentId: "a", kind: "k", sessionId: "agent:spoof" }, "sessionId", undefined],
      ];
      for (const [event, field, limit] of cases) {
        const caught = await thrown(() => h.audit.log(event as never));
        expect(caught, field).toBeInstanceOf(InvalidAuditEventError);
        expect(caught).toMatchObject({ code: "AUDIT_EVENT_INVALID", field, limit });
      }
      await h.audit.flush();
      expect(await h.store.query(sql`select count(*)::int as n from gov_audit.events`)).toEqual([
        { n: 0 },
      ]);
    },
  );

  // Issue 13: ids are refused, never sanitized (the same rule as every module: core's checkId);
  // the metadata's text is still normalized before signing.
  it.skipIf(!engine.available)(
    "refuses ids with control characters; signs metadata text as sanitized: NFC, control characters neutralized",
    async () => {
      await expect(
        h.audit.log({ agentId: "bill\u0000ing\u001b[31m", kind: "tool.call", sessionId: session }),
      ).rejects.toMatchObject({ code: "AUDIT_EVENT_INVALID", field: "agentId" });
      const record = await h.audit.log({
        agentId: "billing",
        kind: "tool.call",
        sessionId: session,
        metadata: {
          note: "Cafe\u0301 \u202eevil\u202c\nline two\tcell",
          nested: { "k\u0007ey": ["a\u0000b"] },
        },
      });
      expect(record.agentId).toBe("billing");
      expect(record.metadata).toEqual({
        note: "Café \ufffdevil\ufffd\nline two\tcell",
        nested: { "k\ufffdey": ["a\ufffdb"] },
      });
      expect((await h.audit.getEvents({ sessionId: session }))[0]).toEqual(record);
      expect(await h.audit.verifyChain()).toBe(true);
    },
  );

  it.skipIf(!engine.available)(
    "calls subscribers with stored records; a failing one breaks nothing",
    async () => {
      const seen: string[] = [];
      h.audit.subscribe(() => {
        throw new Error("subscriber bug");
      });
      h.audit.subscribe(async () => {
        throw new Error("async subscriber bug");
      });
      const unsubscribe = h.audit.subscribe((record) => {
        seen.push(`${record.kind}:${record.seq}`);
      });
      await h.audit.log({ agentId: "a", kind: "one", sessionId: session });
      unsubscribe();
      await h.audit.log({ agentId: "a", kind: "two", sessionId: session });
      await new Promise((resolve) => setTimeout(resolve, 10));
      expect(seen).toEqual(["one:1"]);
      expect(h.audit.metrics().subscriberErrors).toBe(4);
      expect(await h.audit.verifyChain()).toBe(true);
    },
  );

  it.skipIf(!engine.available)("traces an event's provenance through its parents", async () => {
    const root = await h.audit.log({ agentId: "a", kind: "plan", sessionId: session });
    const child = await h.audit.log({
      agentId: "a",
      kind: "tool.call",
      sessionId: session,
      parentEventId: root.eventId,
    });
    const grandchild = await h.audit.log({
      agentId: "a",
      kind: "tool.result",
      sessionId: session,
      parentEventId: child.eventId,
    });
    expect((await h.audit.trace(grandchild.eventId)).map((record) => record.kind)).toEqual([
      "tool.result",
      "tool.call",
      "plan",
    ]);
    await expect(h.audit.trace("nope")).rejects.toMatchObject({ code: "INVALID_ARGUMENT" });
    // Guards against: trace() refusing an event id in upper case, which it has always accepted.
    expect(await h.audit.trace(grandchild.eventId.toUpperCase())).toHaveLength(3);
  });

  it.skipIf(!engine.available)(
    "tracks a function: start and end with hashes, or error, rethrown",
    async () => {
      const charge = h.audit.track(
        { kind: "charge_card", agentId: "billing-agent", sessionId: session },
        async (amount: number) => {
          if (amount < 0) throw new RangeError("negative amount");
          return { charged: amount };
        },
      );
      expect(await charge(120)).toEqual({ charged: 120 });
      await expect(charge(-1)).rejects.toThrow(RangeError);
      const events = await h.audit.getEvents({ sessionId: session });
      expect(events.map((event) => event.kind)).toEqual([
        "charge_card.start",
        "charge_card.end",
        "charge_card.start",
        "charge_card.error",
      ]);
      expect(events[0]?.inputHash).toMatch(/^[0-9a-f]{64}$/);
      expect(events[1]?.outputHash).toMatch(/^[0-9a-f]{64}$/);
      expect(events[1]?.parentEventId).toBe(events[0]?.eventId);
      expect(events[3]?.metadata).toEqual({
        error: { name: "RangeError", message: "negative amount" },
      });
      expect(() => h.audit.track({ kind: "", agentId: "a" }, async () => 1)).not.toThrow(); // ".start" is a valid kind
      expect(() => h.audit.track({ kind: "k", agentId: "" }, async () => 1)).toThrow(
        InvalidAuditEventError,
      );
    },
  );

  it.skipIf(!engine.available)(
    "rotates the key: old rows keep verifying, the rotation is signed by both keys",
    async () => {
      const before = await logFive();
      const { oldKeyId, newKeyId } = await h.audit.rotateChainKey({
        newKey: SECRET_B,
        operatorId: "alice@example.com",
        reason: "scheduled",
      });
      expect(oldKeyId).toBe(h.keyring.current.id);
      const after = await h.audit.log({
        agentId: "billing-agent",
        kind: "tool.call",
        sessionId: session,
      });
      expect(after).toMatchObject({ keyId: newKeyId, seq: 6, prevHash: before[4]?.hmac });
      expect(await h.audit.verifyChain()).toBe(true);
      const [rotation] = await h.store.query<{
        payload: string;
        hmac_old: string;
        hmac_new: string;
      }>(sql`select payload, hmac_old, hmac_new from gov_audit.key_rotations`);
      expect(
        new ChainKey(SECRET_A).verifyHex(rotation?.payload ?? "", rotation?.hmac_old ?? ""),
      ).toBe(true);
      expect(
        new ChainKey(SECRET_B).verifyHex(rotation?.payload ?? "", rotation?.hmac_new ?? ""),
      ).toBe(true);
      expect(
        (await h.audit.getEvents({ agentId: "gov.audit" })).map((event) => event.kind),
      ).toEqual(["audit.key_rotated"]);
      // A process that knows only the new key cannot vouch for the rows of the old one.
      const onlyNew = h.another({ keyring: new Keyring(new ChainKey(SECRET_B)) });
      expect(await onlyNew.verifyChainDetailed({ sessionId: session })).toMatchObject({
        verified: 1,
        unverified: 5,
        failed: 0,
      });
      await expect(
        h.audit.rotateChainKey({ newKey: SECRET_B, operatorId: "alice", reason: "again" }),
      ).rejects.toMatchObject({
        code: "KEY_ROTATION_INVALID",
      });
      await expect(
        h.audit.rotateChainKey({ newKey: "short", operatorId: "alice", reason: "x" }),
      ).rejects.toMatchObject({ code: "SECRET_INVALID" });
    },
  );
});
