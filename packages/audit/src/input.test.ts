import { ChainKey, type GovernanceError, sql } from "@gov/core";
import { rejectionOf, type TestEngine, testEngines, thrown } from "@gov/core/testing";
import { describe, expect, it } from "vitest";
import { SECRET_A, tamper, useAuditHarness } from "./__fixtures__";
import { ChainIntegrityError, InvalidAuditEventError } from "./errors";
import { InMemoryAuditStore } from "./memory-store";
import { AUDIT_LIMITS } from "./models";
import type { AuditEventRecord } from "./record";

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
      const error = await rejectionOf(() =>
        store.log({ agentId: "a", kind: "k", metadata: { loop: value } as never }),
      );
      expect(error, field).toBeInstanceOf(InvalidAuditEventError);
      expect(error).toMatchObject({ code: "AUDIT_EVENT_INVALID", field, limit });
      expect((error as Error).message).toMatch(/cycle|levels/);
    }
    expect(store.metrics().size).toBe(0);
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

describe("metadata that has no faithful JSON form (InMemoryAuditStore, no database)", () => {
  class Secretive {
    visible = 1;
    #hidden = 2;
    get computed(): number {
      return this.#hidden;
    }
  }

  // Guards against: nested values that are not plain JSON data (Map, Set, class instances,
  // typed arrays…) being signed as {} or as their own fields only, so that what the chain
  // records silently differs from what was logged.
  it("refuses nested values that are not plain objects, arrays or JSON primitives", async () => {
    const store = new InMemoryAuditStore({ maxEvents: 10 });
    const values: Record<string, unknown> = {
      Map: new Map([["card", "4111 1111 1111 1111"]]),
      Set: new Set([1, 2]),
      "a class instance": new Secretive(),
      Uint8Array: new Uint8Array([1, 2, 3]),
      Buffer: Buffer.from("abc"),
      ArrayBuffer: new ArrayBuffer(4),
      DataView: new DataView(new ArrayBuffer(4)),
      RegExp: /refund/g,
      Error: new Error("boom"),
      Promise: Promise.resolve(1),
      WeakMap: new WeakMap(),
      "a boxed string": Object("text"),
      URL: new URL("https://example.com/"),
    };
    for (const [name, value] of Object.entries(values)) {
      for (const metadata of [{ a: value }, { a: { b: [value] } }]) {
        const error = await rejectionOf(() =>
          store.log({ agentId: "a", kind: "k", metadata } as never),
        );
        expect(error, name).toBeInstanceOf(InvalidAuditEventError);
        expect(error, name).toMatchObject({ code: "AUDIT_EVENT_INVALID" });
        expect((error as InvalidAuditEventError).field, name).toMatch(/^metadata\.a/);
        expect((error as Error).message, name).toContain("plain");
        expect((error as InvalidAuditEventError).recoveryHint, name).toBeTruthy();
      }
    }
    // Plain data still goes in: objects without a prototype, arrays, dates, primitives.
    const bare = Object.assign(Object.create(null) as Record<string, unknown>, { x: 1 });
    const record = await store.log({
      agentId: "a",
      kind: "k",
      metadata: { bare, list: [1, "two", null, true], at: new Date(0), nested: { ok: [{}] } },
    });
    expect(record.metadata).toEqual({
      bare: { x: 1 },
      list: [1, "two", null, true],
      at: "1970-01-01T00:00:00.000Z",
      nested: { ok: [{}] },
    });
    expect(store.metrics().size).toBe(1);
  });

  // Guards against: two keys that read the same once sanitized (control characters
  // neutralized, NFC) silently dropping one of the values.
  it("refuses keys that collide once sanitized, at any depth", async () => {
    const store = new InMemoryAuditStore({ maxEvents: 10 });
    const cases: [Record<string, unknown>, string][] = [
      [{ "x\u0007": "first", "x\u0008": "second" }, "metadata"],
      [{ a: { "x\u0007": "first", "x\u0008": "second" } }, "metadata.a"],
      [{ a: [{ "Caf\u00e9": 1, "Cafe\u0301": 2 }] }, "metadata.a"],
      [{ "Caf\u00e9": 1, "Cafe\u0301": 2 }, "metadata"],
    ];
    for (const [metadata, field] of cases) {
      const error = await rejectionOf(() => store.log({ agentId: "a", kind: "k", metadata }));
      expect(error, field).toBeInstanceOf(InvalidAuditEventError);
      expect((error as InvalidAuditEventError).field, JSON.stringify(metadata)).toMatch(
        new RegExp(`^${field.replace(".", "\\.")}`),
      );
      expect((error as Error).message).toMatch(/same key/);
    }
    expect(store.metrics().size).toBe(0);
  });

  // Guards against: a getter (or proxy) that throws surfacing as a bare Error instead of an
  // InvalidAuditEventError naming the field.
  it("refuses metadata whose properties cannot be read, naming the field", async () => {
    const store = new InMemoryAuditStore({ maxEvents: 10 });
    const throwing = {
      get boom() {
        throw new Error("getter");
      },
    };
    const hostile = new Proxy(
      {},
      {
        ownKeys() {
          throw new Error("no keys");
        },
      },
    );
    const cases: [unknown, string][] = [
      [{ a: throwing }, "metadata.a"],
      [{ a: [throwing] }, "metadata.a"],
      [throwing, "metadata"],
      [{ a: hostile }, "metadata.a"],
    ];
    for (const [metadata, field] of cases) {
      const error = await rejectionOf(() =>
        store.log({ agentId: "a", kind: "k", metadata } as never),
      );
      expect(error, field).toBeInstanceOf(InvalidAuditEventError);
      expect((error as InvalidAuditEventError).field, field).toMatch(
        new RegExp(`^${field.replace(".", "\\.")}`),
      );
      expect((error as Error).message).toContain("could not be read");
    }
    // A getter on the event itself, too.
    const event = {
      kind: "k",
      get agentId(): string {
        throw new Error("getter");
      },
    };
    const error = await rejectionOf(() => store.log(event as never));
    expect(error).toBeInstanceOf(InvalidAuditEventError);
    expect((error as Error).message).toContain("could not be read");
  });
});

describe.each(testEngines())("bad input and empty chains on $name", (engine: TestEngine) => {
  const h = useAuditHarness(engine);

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
        const error = await rejectionOf(call);
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

  // Guards against: the reserved agent id gov.audit accepted in disguise (a zero-width or
  // blank character, another case, spaces, look-alike letters), so that anyone could write
  // events that read as the audit module's own.
  it.skipIf(!engine.available)(
    "refuses the reserved agent id gov.audit in any disguise, in log() and track()",
    async () => {
      const disguises = [
        "gov.audit",
        "gov.audit\u200b",
        "GOV.AUDIT",
        "gov.audit ",
        " gov.audit",
        "Gov.Audit",
        "gov\u2024audit",
        "g\u043ev.audit",
        "gov.audit\u2800",
        "gov.\u0430udit",
      ];
      for (const agentId of disguises) {
        const error = await rejectionOf(() => h.audit.log({ agentId, kind: "audit.key_rotated" }));
        expect(error, JSON.stringify(agentId)).toMatchObject({
          code: "AUDIT_EVENT_INVALID",
          field: "agentId",
        });
        expect(() => h.audit.track({ kind: "k", agentId }, async () => 1)).toThrow(
          InvalidAuditEventError,
        );
      }
      // Ids that merely resemble it are ordinary agents.
      for (const agentId of ["gov_audit", "gov-audit", "gov.audits", "audit"])
        expect((await h.audit.log({ agentId, kind: "k" })).status, agentId).toBe("stored");
      await h.audit.flush();
      const [row] = await h.store.query<{ n: number }>(
        sql`select count(*)::int as n from gov_audit.events where chain like 'agent:%' and agent_id not in ('gov_audit', 'gov-audit', 'gov.audits', 'audit')`,
      );
      expect(row?.n).toBe(0);
    },
  );

  // Guards against: track() with bad arguments failing with a TypeError from inside (it
  // returns a function, so it throws, synchronously, a clear error naming the argument).
  it.skipIf(!engine.available)("refuses bad track() arguments with a clear error", () => {
    const fn = async () => 1;
    const cases: [() => unknown, string, string][] = [
      [() => h.audit.track(null as never, fn), "INVALID_ARGUMENT", "options"],
      [() => h.audit.track("k" as never, fn), "INVALID_ARGUMENT", "options"],
      [() => h.audit.track([] as never, fn), "INVALID_ARGUMENT", "options"],
      [() => h.audit.track({ kind: "k", agentId: "a" }, null as never), "INVALID_ARGUMENT", "fn"],
      [() => h.audit.track({ kind: "k", agentId: "a" }, "f" as never), "INVALID_ARGUMENT", "fn"],
      [() => h.audit.track({ kind: "k" } as never, fn), "AUDIT_EVENT_INVALID", "agentId"],
      [() => h.audit.track({ agentId: "a" } as never, fn), "AUDIT_EVENT_INVALID", "kind"],
    ];
    for (const [call, code, field] of cases) {
      const error = thrown(call);
      expect(error, field).toMatchObject({ code, field });
      expect((error as GovernanceError).recoveryHint, field).toBeTruthy();
    }
  });

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

  // Guards against: a window past the end of an intact chain throwing "row N (before the
  // window) is missing" instead of saying that there is nothing to verify.
  it.skipIf(!engine.available)(
    "resolves false for a window past the end of an intact chain, checkpointed or not",
    async () => {
      for (let index = 0; index < 3; index++)
        await h.audit.log({ agentId: "a", kind: "k", sessionId: "s" });
      const pastTheEnd = async () => {
        for (const fromSeq of [4, 5, 6, 100, Number.MAX_SAFE_INTEGER]) {
          for (const toSeq of [undefined, fromSeq, Number.MAX_SAFE_INTEGER]) {
            const window = { sessionId: "s", fromSeq, ...(toSeq ? { toSeq } : {}) };
            expect(await h.audit.verifyChain(window), JSON.stringify(window)).toBe(false);
            expect(await h.audit.verifyChainDetailed(window), JSON.stringify(window)).toMatchObject(
              { verified: 0, failed: 0, empty: true },
            );
          }
        }
      };
      await pastTheEnd();
      await h.audit.checkpoint({ sessionIds: ["s"] });
      await pastTheEnd();
      expect(await h.audit.verifyChain({ sessionId: "s", fromSeq: 3 })).toBe(true);
    },
  );

  // Guards against: rows deleted inside or at the start of a window passing as "nothing to
  // verify" when the window holds no rows but the chain goes on after it, or a checkpoint
  // recorded them.
  it.skipIf(!engine.available)(
    "fails a window whose rows were deleted, when later rows or a checkpoint show they existed",
    async () => {
      const records: AuditEventRecord[] = [];
      for (let index = 0; index < 6; index++)
        records.push(await h.audit.log({ agentId: "a", kind: "k", sessionId: "s" }));
      await h.audit.checkpoint({ sessionIds: ["s"] });
      const ids = (from: number, to: number) =>
        records
          .slice(from - 1, to)
          .map((record) => `'${record.eventId}'`)
          .join(", ");
      // Rows 2 and 3 deleted: later rows remain.
      await tamper(h.store, [`delete from gov_audit.events where event_id in (${ids(2, 3)})`]);
      for (const [fromSeq, toSeq, seq] of [
        [2, 3, 2],
        [3, 3, 2], // the row before the window is missing too
        [2, 2, 2],
      ] as const) {
        const error = await rejectionOf(() =>
          h.audit.verifyChain({ sessionId: "s", fromSeq, toSeq }),
        );
        expect(error, `${fromSeq}-${toSeq}`).toBeInstanceOf(ChainIntegrityError);
        expect(error, `${fromSeq}-${toSeq}`).toMatchObject({ chain: "s", seq });
        expect(
          await h.audit.verifyChainDetailed({ sessionId: "s", fromSeq, toSeq }),
          `${fromSeq}-${toSeq}`,
        ).toMatchObject({ verified: 0, empty: false });
      }
      // The tail deleted: the checkpoint recorded seq 6.
      await tamper(h.store, [`delete from gov_audit.events where event_id in (${ids(4, 6)})`]);
      for (const fromSeq of [2, 5, 6, 7]) {
        const error = await rejectionOf(() => h.audit.verifyChain({ sessionId: "s", fromSeq }));
        expect(error, `from ${fromSeq}`).toBeInstanceOf(ChainIntegrityError);
      }
      // Past everything the chain and its checkpoint knew: nothing to verify.
      expect(await h.audit.verifyChain({ sessionId: "s", fromSeq: 8 })).toBe(false);
    },
  );

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
