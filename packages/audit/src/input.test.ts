import { ChainKey, sql } from "@gov/core";
import { type TestEngine, testEngines } from "@gov/core/testing";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type AuditHarness, auditHarness, SECRET_A, tamper } from "./__fixtures__";
import { ChainIntegrityError, InvalidAuditEventError } from "./errors";
import { InMemoryAuditStore } from "./memory-store";
import { AUDIT_LIMITS } from "./models";

/** Call `run`; it must not throw synchronously, and its promise must reject. */
async function rejection(run: () => Promise<unknown>): Promise<unknown> {
  let promise: Promise<unknown> | undefined;
  expect(() => {
    promise = run();
  }).not.toThrow();
  expect(promise).toBeInstanceOf(Promise);
  return (promise as Promise<unknown>).then(
    () => {
      throw new Error("expected a rejection");
    },
    (error: unknown) => error,
  );
}

function nested(depth: number): Record<string, unknown> {
  let value: Record<string, unknown> = { leaf: true };
  for (let level = 1; level < depth; level++) value = { next: value };
  return value;
}

function cyclic(): Record<string, unknown> {
  const value: Record<string, unknown> = { name: "loop" };
  value.self = value;
  return value;
}

function cyclicThroughArray(): unknown[] {
  const list: unknown[] = [1];
  list.push({ back: list });
  return list;
}

describe("metadata depth and cycles (InMemoryAuditStore, no database)", () => {
  // Guards against: cyclic or very deep metadata surfacing as a RangeError (stack overflow).
  it("refuses cyclic and too deep metadata with InvalidAuditEventError, naming the field and the limit", async () => {
    const store = new InMemoryAuditStore({ maxEvents: 10, key: new ChainKey(SECRET_A) });
    const cases: [unknown, string, number | undefined][] = [
      [cyclic(), "metadata.loop", undefined],
      [cyclicThroughArray(), "metadata.loop", undefined],
      [{ deeper: cyclic() }, "metadata.loop", undefined],
      [nested(AUDIT_LIMITS.metadataDepth), "metadata.loop", AUDIT_LIMITS.metadataDepth],
      [nested(100_000), "metadata.loop", AUDIT_LIMITS.metadataDepth],
      [
        JSON.parse(`${"[".repeat(50_000)}${"]".repeat(50_000)}`),
        "metadata.loop",
        AUDIT_LIMITS.metadataDepth,
      ],
    ];
    for (const [value, field, limit] of cases) {
      const error = await rejection(() =>
        store.log({ agentId: "a", kind: "k", metadata: { loop: value } as never }),
      );
      expect(error, field).toBeInstanceOf(InvalidAuditEventError);
      expect(error).toMatchObject({ code: "AUDIT_EVENT_INVALID", field, limit });
      expect((error as Error).message).toMatch(/cycle|levels/);
    }
    expect(store.stats().size).toBe(0);
  });

  it("accepts metadata up to the depth limit, and a value shared (not cyclic) twice", async () => {
    const store = new InMemoryAuditStore({ maxEvents: 10 });
    // The metadata object is the first level: `loop` holds the remaining levels.
    await store.log({
      agentId: "a",
      kind: "k",
      metadata: { loop: nested(AUDIT_LIMITS.metadataDepth - 1) } as never,
    });
    const shared = { price: 5 };
    const record = await store.log({
      agentId: "a",
      kind: "k",
      metadata: { first: shared, second: [shared, shared] },
    });
    expect(record.metadata).toEqual({ first: shared, second: [shared, shared] });
  });

  // Guards against: a verifier that says "verified" when it verified nothing.
  it("says false when it holds nothing, true once a row verified", async () => {
    const store = new InMemoryAuditStore({ maxEvents: 10 });
    expect(store.verifyChain()).toBe(false);
    await store.log({ agentId: "a", kind: "k" });
    expect(store.verifyChain()).toBe(true);
  });
});

describe.each(testEngines())("bad input and empty chains on $name", (engine: TestEngine) => {
  let h: AuditHarness;

  beforeEach(async () => {
    if (engine.available) h = await auditHarness(engine);
  });

  afterEach(async () => {
    await h?.close();
  });

  // Guards against: promise-returning functions that throw synchronously on bad input.
  it.skipIf(!engine.available)(
    "rejects bad input from every promise-returning function, never throwing synchronously",
    async () => {
      const audit = h.audit;
      const calls: [string, () => Promise<unknown>, string, string][] = [
        ["log(null)", () => audit.log(null as never), "AUDIT_EVENT_INVALID", "event"],
        [
          "log(agentId 5)",
          () => audit.log({ agentId: 5, kind: "k" } as never),
          "AUDIT_EVENT_INVALID",
          "agentId",
        ],
        [
          "log(kind too long)",
          () => audit.log({ agentId: "a", kind: "k".repeat(129) }),
          "AUDIT_EVENT_INVALID",
          "kind",
        ],
        [
          "log(cyclic)",
          () => audit.log({ agentId: "a", kind: "k", metadata: { c: cyclic() } as never }),
          "AUDIT_EVENT_INVALID",
          "metadata.c",
        ],
        [
          "log(reserved agent)",
          () => audit.log({ agentId: "gov.audit", kind: "audit.key_rotated" }),
          "AUDIT_EVENT_INVALID",
          "agentId",
        ],
        ["getEvents(limit 0)", () => audit.getEvents({ limit: 0 }), "INVALID_ARGUMENT", "limit"],
        ["getEvents(null)", () => audit.getEvents(null as never), "INVALID_ARGUMENT", "filters"],
        [
          "getEvents(sessionId 5)",
          () => audit.getEvents({ sessionId: 5 } as never),
          "INVALID_ARGUMENT",
          "sessionId",
        ],
        [
          "getEvents(since)",
          () => audit.getEvents({ since: "yesterday" } as never),
          "INVALID_ARGUMENT",
          "since",
        ],
        ["trace(5)", () => audit.trace(5 as never), "INVALID_ARGUMENT", "eventId"],
        [
          "traceSessionChain(5)",
          () => audit.traceSessionChain(5 as never),
          "INVALID_ARGUMENT",
          "sessionId",
        ],
        [
          "traceSessionChain('')",
          () => audit.traceSessionChain(""),
          "INVALID_ARGUMENT",
          "sessionId",
        ],
        ["verifyChain('s')", () => audit.verifyChain("s" as never), "INVALID_ARGUMENT", "options"],
        [
          "verifyChain(sessionId 5)",
          () => audit.verifyChain({ sessionId: 5 } as never),
          "INVALID_ARGUMENT",
          "sessionId",
        ],
        [
          "verifyChain(sessionId '')",
          () => audit.verifyChain({ sessionId: "" }),
          "INVALID_ARGUMENT",
          "sessionId",
        ],
        [
          "verifyChain(sessionId null)",
          () => audit.verifyChain({ sessionId: null } as never),
          "INVALID_ARGUMENT",
          "sessionId",
        ],
        [
          "verifyChain(sessionId too long)",
          () => audit.verifyChain({ sessionId: "s".repeat(257) }),
          "INVALID_ARGUMENT",
          "sessionId",
        ],
        [
          "verifyChain(agentId [])",
          () => audit.verifyChain({ agentId: [] } as never),
          "INVALID_ARGUMENT",
          "agentId",
        ],
        [
          "verifyChain(both)",
          () => audit.verifyChain({ sessionId: "s", agentId: "a" }),
          "INVALID_ARGUMENT",
          "agentId",
        ],
        [
          "verifyChain(fromSeq 0)",
          () => audit.verifyChain({ sessionId: "s", fromSeq: 0 }),
          "INVALID_ARGUMENT",
          "fromSeq",
        ],
        [
          "verifyChain(toSeq 1.5)",
          () => audit.verifyChain({ sessionId: "s", toSeq: 1.5 }),
          "INVALID_ARGUMENT",
          "toSeq",
        ],
        [
          "verifyChain(from > to)",
          () => audit.verifyChain({ sessionId: "s", fromSeq: 5, toSeq: 2 }),
          "INVALID_ARGUMENT",
          "toSeq",
        ],
        [
          "verifyChain(window, no chain)",
          () => audit.verifyChain({ fromSeq: 2 }),
          "INVALID_ARGUMENT",
          "fromSeq",
        ],
        [
          "verifyChainDetailed(sessionId 5)",
          () => audit.verifyChainDetailed({ sessionId: 5 } as never),
          "INVALID_ARGUMENT",
          "sessionId",
        ],
        ["checkpoint('x')", () => audit.checkpoint("x" as never), "INVALID_ARGUMENT", "options"],
        [
          "checkpoint(sessionIds 'x')",
          () => audit.checkpoint({ sessionIds: "x" } as never),
          "INVALID_ARGUMENT",
          "sessionIds",
        ],
        [
          "checkpoint(sessionIds [null])",
          () => audit.checkpoint({ sessionIds: [null] } as never),
          "INVALID_ARGUMENT",
          "sessionIds[0]",
        ],
        [
          "checkpoint(sessionIds ['s', ''])",
          () => audit.checkpoint({ sessionIds: ["s", ""] }),
          "INVALID_ARGUMENT",
          "sessionIds[1]",
        ],
        [
          "rotateChainKey(null)",
          () => audit.rotateChainKey(null as never),
          "INVALID_ARGUMENT",
          "options",
        ],
        [
          "rotateChainKey(newKey 5)",
          () => audit.rotateChainKey({ newKey: 5, operatorId: "o", reason: "r" } as never),
          "INVALID_ARGUMENT",
          "newKey",
        ],
        [
          "rotateChainKey(no reason)",
          () => audit.rotateChainKey({ newKey: "x".repeat(40), operatorId: "o" } as never),
          "INVALID_ARGUMENT",
          "reason",
        ],
        [
          "rotateChainKey(reason too long)",
          () =>
            audit.rotateChainKey({
              newKey: "x".repeat(40),
              operatorId: "o",
              reason: "r".repeat(1_025),
            }),
          "INVALID_ARGUMENT",
          "reason",
        ],
      ];
      for (const [name, call, code, field] of calls) {
        const error = await rejection(call);
        expect(error, name).toMatchObject({ code, field });
      }
      await audit.flush();
      for (const table of ["events", "checkpoints", "key_rotations"]) {
        expect(
          await h.store.query(sql.raw(`select count(*)::int as n from gov_audit.${table}`)),
          table,
        ).toEqual([{ n: 0 }]);
      }
    },
  );

  // Guards against: "verified" reported for a session that has no events (or a typo in its id).
  it.skipIf(!engine.available)(
    "resolves false when there is nothing to verify, and says so in the report",
    async () => {
      expect(await h.audit.verifyChain()).toBe(false);
      expect(await h.audit.verifyChain({ sessionId: "no-such-session" })).toBe(false);
      expect(await h.audit.verifyChain({ agentId: "no-such-agent" })).toBe(false);
      expect(await h.audit.verifyChainDetailed({ sessionId: "no-such-session" })).toMatchObject({
        verified: 0,
        failed: 0,
        unverified: 0,
        empty: true,
      });
      await h.audit.log({ agentId: "a", kind: "k", sessionId: "s" });
      await h.audit.log({ agentId: "a", kind: "k", sessionId: "s" });
      expect(await h.audit.verifyChain({ sessionId: "s" })).toBe(true);
      expect(await h.audit.verifyChain()).toBe(true);
      expect(await h.audit.verifyChainDetailed({ sessionId: "s" })).toMatchObject({
        verified: 2,
        empty: false,
      });
      // A window past the chain's end holds nothing to verify.
      expect(await h.audit.verifyChain({ sessionId: "s", fromSeq: 3 })).toBe(false);
      expect(await h.audit.verifyChain({ sessionId: "s", fromSeq: 2, toSeq: 2 })).toBe(true);
      // The session id is looked up as it was stored (NFC), as log() stored it.
      await h.audit.log({ agentId: "a", kind: "k", sessionId: "Caf\u00e9" });
      expect(await h.audit.verifyChain({ sessionId: "Cafe\u0301" })).toBe(true);
    },
  );

  // Guards against: a session whose rows were all deleted (its checkpoint kept) passing as empty.
  it.skipIf(!engine.available)("fails a session that has a checkpoint but no rows", async () => {
    await h.audit.log({ agentId: "a", kind: "k", sessionId: "s" });
    expect(await h.audit.checkpoint({ sessionIds: ["s"] })).toBe(1);
    await tamper(h.store, ["delete from gov_audit.events where chain = 's'"]);
    await expect(h.audit.verifyChain({ sessionId: "s" })).rejects.toBeInstanceOf(
      ChainIntegrityError,
    );
    expect(await h.audit.verifyChainDetailed({ sessionId: "s" })).toMatchObject({
      verified: 0,
      failed: 1,
      empty: false,
    });
  });

  it.skipIf(!engine.available)(
    "checkpoints the sessions named, agent chains by their chain name, and nothing for none",
    async () => {
      await h.audit.log({ agentId: "a", kind: "k", sessionId: "s" });
      await h.audit.log({ agentId: "worker", kind: "tick" });
      expect(await h.audit.checkpoint({ sessionIds: [] })).toBe(0);
      expect(await h.audit.checkpoint({ sessionIds: ["s", "agent:worker", "unknown"] })).toBe(2);
    },
  );
});
