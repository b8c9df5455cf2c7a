/**
 * A request's key (`request(kind, agentId, { key })`): stored and signed with the request,
 * unique per agent and kind, and what `findRequest` finds a request by from another process.
 */
import { createHash, randomUUID } from "node:crypto";
import { ChainKey, canonicalJson, type SQL, sql } from "@gov/core";
import { type TestEngine, testEngines } from "@gov/core/testing";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type GatesHarness, gatesHarness, SECRET_A, thrown, thrownAs } from "./__fixtures__";
import { ApprovalIntegrityError, ApprovalKeyInUseError } from "./errors";
import { REQUEST_MAC_DOMAIN, requestMacInput, type SignedRequest } from "./signatures";
import { mintToken, tokenDigest } from "./token";

const KIND = "tool.wire_money";
const AGENT = "billing-agent";
const KEY = "call_8f2b1c";
const PAYLOAD = { tool: "wire_money", input: { to: "acct-7", amount: 120 } };
const HOUR_MS = 3_600_000;
const sha256 = (text: string) => createHash("sha256").update(text, "utf8").digest("hex");

/** A keyless request's fields, as the request MAC signs them. */
const UNKEYED: SignedRequest = {
  requestId: "0b6f5a8e-3c1d-4f2a-9e7b-5d4c3b2a1f00",
  kind: KIND,
  agentId: AGENT,
  actionHash: "a".repeat(64),
  tokenVersion: 2,
  keyId: "0123456789abcdef",
  tokenDigest: "b".repeat(64),
  createdAt: "2026-01-01T00:00:00.000Z",
  expiresAt: "2026-01-01T01:00:00.000Z",
  operatorId: null,
  operatorLookup: "ok",
  key: null,
};

describe("the request MAC of a request without a key", () => {
  // Guards against: keys changing what every existing row's signature covers, so that
  // requests made before this version no longer verify.
  it("signs exactly what the previous version signed, spelled out here", () => {
    const { key: _none, ...fields } = UNKEYED;
    expect(requestMacInput(UNKEYED)).toBe(
      `gov.gates.request\0${canonicalJson({ type: "gov.gates.request", v: 1, ...fields })}`,
    );
    expect(requestMacInput({ ...UNKEYED, key: KEY })).not.toBe(requestMacInput(UNKEYED));
  });
});

describe.each(testEngines())("a request's key on $name", (engine: TestEngine) => {
  let h: GatesHarness;

  beforeEach(async () => {
    if (engine.available) h = await gatesHarness(engine);
  });

  afterEach(async () => {
    await h?.close();
  });

  const open = (key?: string, options: { kind?: string; agentId?: string } = {}) =>
    h.gates.request(options.kind ?? KIND, options.agentId ?? AGENT, {
      payload: PAYLOAD,
      ...(key === undefined ? {} : { key }),
    });
  const find = (key = KEY, options: { kind?: string; agentId?: string } = {}) =>
    h.gates.findRequest({ agentId: options.agentId ?? AGENT, kind: options.kind ?? KIND, key });
  const rowCount = async () =>
    (await h.store.query<{ n: number }>(sql`select count(*)::int as n from gov_gates.requests`))[0]
      ?.n;
  const edit = (requestId: string, set: SQL) =>
    h.store.query(sql`update gov_gates.requests set ${set} where request_id = ${requestId}::uuid`);
  /** What a table owner does first: drop the guard trigger. */
  const dropGuard = () => h.store.query(sql`drop trigger requests_guard on gov_gates.requests`);

  it.skipIf(!engine.available)(
    "is stored with the request, recorded in approval.requested, and findRequest reads the request as getRequest does",
    async () => {
      const request = await open(KEY);
      expect(request.key).toBe(KEY);
      expect(request.toJSON()).toMatchObject({ key: KEY });
      const found = await find();
      expect(found).toEqual(await h.gates.getRequest(request.requestId));
      expect(found).toMatchObject({
        requestId: request.requestId,
        kind: KIND,
        agentId: AGENT,
        key: KEY,
        status: "pending",
        payload: PAYLOAD,
        requestIntact: true,
        executedAt: null,
      });
      expect(h.audit.events.at(-1)).toMatchObject({
        kind: "approval.requested",
        metadata: { requestId: request.requestId, key: KEY },
      });
      // Another agent's, another kind's and another key's lookups find nothing.
      expect(await find(KEY, { agentId: "other-agent" })).toBeNull();
      expect(await find(KEY, { kind: "tool.other" })).toBeNull();
      expect(await find("call_other")).toBeNull();
      // Decided from any process, the lookup follows it, through to the execution.
      await h.another().grant(request.token, { reviewerId: "bob@company.com" });
      expect(await find()).toMatchObject({ status: "granted", reviewerId: "bob@company.com" });
      await h.gates.verifyAction(request.requestId, PAYLOAD, { kind: KIND, agentId: AGENT });
      expect((await find())?.executedAt).toBeInstanceOf(Date);
    },
  );

  it.skipIf(!engine.available)(
    "a request without a key has none, and is not found by one",
    async () => {
      const request = await open();
      expect(request.key).toBeNull();
      expect(await h.gates.getRequest(request.requestId)).toMatchObject({ key: null });
      expect(h.audit.events.at(-1)?.metadata).not.toHaveProperty("key");
      // Requests without a key never conflict.
      expect((await open()).stored).toBe(true);
      expect(await find()).toBeNull();
    },
  );

  // Guards against: a second request under a key in use — a second token for one key, or
  // findRequest finding one of two.
  it.skipIf(!engine.available)(
    "a key the agent already used for the kind is refused, and nothing is stored or recorded",
    async () => {
      const first = await open(KEY);
      const events = h.audit.events.length;
      const rows = await rowCount();
      const error = await thrownAs(() => open(KEY), ApprovalKeyInUseError);
      expect(error).toMatchObject({
        code: "APPROVAL_KEY_IN_USE",
        agentId: AGENT,
        kind: KIND,
        key: KEY,
      });
      expect(error.recoveryHint).toContain("findRequest");
      expect(await rowCount()).toBe(rows);
      expect(h.audit.events).toHaveLength(events);
      expect(h.logger.text()).not.toContain(first.token);
      expect(h.logger.lines.filter((line) => line.level === "warn")).toEqual([]);
      // Even once decided and executed, the key stays taken.
      await h.gates.grant(first.token, { reviewerId: "bob@company.com" });
      await h.gates.verifyAction(first.requestId, PAYLOAD, { kind: KIND, agentId: AGENT });
      await thrownAs(() => open(KEY), ApprovalKeyInUseError);
      expect((await find())?.requestId).toBe(first.requestId);
      // The same key is free for another agent, and for another kind.
      expect((await open(KEY, { agentId: "other-agent" })).stored).toBe(true);
      expect((await open(KEY, { kind: "tool.other" })).stored).toBe(true);
    },
  );

  it.skipIf(!engine.available)(
    "of concurrent requests with one key, exactly one is stored",
    async () => {
      const outcomes = await Promise.allSettled(
        Array.from({ length: 6 }, () => h.gates.request(KIND, AGENT, { key: KEY })),
      );
      const stored = outcomes.filter((outcome) => outcome.status === "fulfilled");
      expect(stored).toHaveLength(1);
      for (const outcome of outcomes)
        if (outcome.status === "rejected")
          expect(ApprovalKeyInUseError.isInstance(outcome.reason)).toBe(true);
      expect(await rowCount()).toBe(1);
      expect((await find())?.requestId).toBe(
        (stored[0] as PromiseFulfilledResult<{ requestId: string }>).value.requestId,
      );
    },
  );

  // Guards against: a table editor moving a request to another key (so that another tool
  // call finds and runs it), giving a keyless request a key, or erasing a key.
  it.skipIf(!engine.available)(
    "a key changed, added or erased in the table makes the request fail its integrity check",
    async () => {
      await dropGuard();
      const moved = await open(KEY);
      await edit(moved.requestId, sql`request_key = 'call_other'`);
      const added = await open();
      await edit(added.requestId, sql`request_key = ${KEY}`);
      const erased = await open("call_erased");
      await edit(erased.requestId, sql`request_key = null`);
      for (const request of [moved, added, erased]) {
        expect(await h.gates.getRequest(request.requestId)).toMatchObject({
          requestIntact: false,
        });
        const error = await thrownAs(
          () => h.gates.grant(request.token, { reviewerId: "bob@company.com" }),
          ApprovalIntegrityError,
        );
        expect(error.subject).toBe("request");
      }
      expect(await find("call_other")).toMatchObject({ requestIntact: false });
      // Changed after the grant: the decision no longer verifies, and nothing runs.
      const granted = await open("call_granted");
      await h.gates.grant(granted.token, { reviewerId: "bob@company.com" });
      await edit(granted.requestId, sql`request_key = 'call_elsewhere'`);
      await thrownAs(
        () => h.gates.verifyAction(granted.requestId, PAYLOAD, { kind: KIND, agentId: AGENT }),
        ApprovalIntegrityError,
      );
      expect((await h.gates.getRequest(granted.requestId))?.executedAt).toBeNull();
    },
  );

  it.skipIf(!engine.available)(
    "the trigger refuses changing a request's key, from a role that cannot drop it",
    async () => {
      const keyed = await open(KEY);
      const keyless = await open();
      for (const [requestId, set] of [
        [keyed.requestId, sql`request_key = 'call_other'`],
        [keyed.requestId, sql`request_key = null`],
        [keyless.requestId, sql`request_key = ${KEY}`],
      ] as const) {
        const error = await thrown(() => edit(requestId, set));
        expect(String((error as Error).message)).toMatch(/request_key cannot change/);
      }
      expect((await find())?.requestId).toBe(keyed.requestId);
    },
  );

  // Guards against: rows written before keys existed (no request_key, signed without it)
  // failing their integrity check after the upgrade.
  it.skipIf(!engine.available)(
    "a request row written by the previous version, without a key, still verifies and can be granted and run",
    async () => {
      const key = new ChainKey(SECRET_A);
      const requestId = randomUUID();
      const actionHash = sha256(canonicalJson(PAYLOAD));
      const createdAt = h.clock.now().toISOString();
      const expiresAtMs = h.clock.nowMs() + HOUR_MS;
      const expiresAt = new Date(expiresAtMs).toISOString();
      const token = mintToken(key, 2, { requestId, actionHash, expiresAtMs });
      const digest = tokenDigest(token);
      // The request MAC as the previous version computed it (no key field at all).
      const requestMac = key.hmacHex(
        REQUEST_MAC_DOMAIN +
          canonicalJson({
            type: "gov.gates.request",
            v: 1,
            requestId,
            kind: KIND,
            agentId: AGENT,
            actionHash,
            tokenVersion: 2,
            keyId: key.id,
            tokenDigest: digest,
            createdAt,
            expiresAt,
            operatorId: null,
            operatorLookup: "ok",
          }),
      );
      // The previous version's insert: it did not know request_key.
      await h.store.query(sql`
        insert into gov_gates.requests (request_id, kind, agent_id, action_hash, payload, token_version,
          key_id, token_digest, status, created_at, expires_at, operator_id, operator_lookup, request_mac)
        values (${requestId}::uuid, ${KIND}, ${AGENT}, ${actionHash}, ${canonicalJson(PAYLOAD)}::jsonb, 2,
          ${key.id}, ${digest}, 'pending', ${createdAt}::timestamptz, ${expiresAt}::timestamptz, null, 'ok',
          ${requestMac})`);
      expect(await h.gates.getRequest(requestId)).toMatchObject({
        key: null,
        requestIntact: true,
        payloadIntact: true,
      });
      await h.gates.grant(token, { reviewerId: "bob@company.com" });
      expect(await h.gates.waitFor(requestId, { timeoutMs: 0 })).toBe(true);
      expect(
        await h.gates.verifyAction(requestId, PAYLOAD, { kind: KIND, agentId: AGENT }),
      ).toMatchObject({ decision: "granted" });
    },
  );
});
