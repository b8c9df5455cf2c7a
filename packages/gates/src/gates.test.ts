import { createHash } from "node:crypto";
import { inspect } from "node:util";
import {
  AgentHaltedError,
  type AuditEventInput,
  type AuditSink,
  ChainKey,
  type HaltGuard,
  noopAuditSink,
  sql,
} from "@gov/core";
import { type TestEngine, testEngines } from "@gov/core/testing";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  flakyStore,
  type GatesHarness,
  gatesHarness,
  keyringOf,
  SECRET_A,
  SECRET_B,
  SECRET_C,
  thrown,
} from "./__fixtures__";
import { gatesModule } from "./definition";
import {
  ApprovalNotRecordedError,
  ApprovalStoreError,
  ApprovalTokenError,
  GATES_ERROR_CODES,
  InvalidGatesInputError,
  SelfApprovalError,
  SelfApprovalUnverifiableError,
  TokenVersionTooOldError,
} from "./errors";
import { APPROVAL_EVENT_KINDS } from "./events";
import { mintToken } from "./token";

const sha256 = (text: string) => createHash("sha256").update(text, "utf8").digest("hex");
const PAYLOAD = { pr: 142, environment: "production" };
const macOf = (token: string) => token.slice(token.lastIndexOf(":") + 1);
/** The token with its last MAC character replaced by another hex digit. */
const flipLast = (token: string) => `${token.slice(0, -1)}${token.endsWith("0") ? "1" : "0"}`;

async function tokenRefusal(run: () => unknown): Promise<ApprovalTokenError> {
  const error = await thrown(run);
  if (!ApprovalTokenError.isInstance(error)) throw error;
  return error;
}

describe.each(testEngines())("requests and decisions on $name", (engine: TestEngine) => {
  let h: GatesHarness;

  beforeEach(async () => {
    if (engine.available) h = await gatesHarness(engine);
  });

  afterEach(async () => {
    await h?.close();
  });

  const kinds = () => h.audit.events.map((event) => event.kind);
  const statusOf = async (requestId: string) => (await h.gates.getRequest(requestId))?.status;

  it.skipIf(!engine.available)(
    "request stores a pending request bound to SHA-256 of the canonical payload, and returns a v2 token",
    async () => {
      const request = await h.gates.request("deploy.production", "deploy-agent", {
        payload: PAYLOAD,
      });
      expect(request.actionHash).toBe(sha256('{"environment":"production","pr":142}'));
      expect(request.stored).toBe(true);
      expect(request.tokenVersion).toBe(2);
      expect(request.createdAt).toEqual(new Date("2026-01-01T00:00:00.000Z"));
      expect(request.expiresAt).toEqual(new Date("2026-01-01T01:00:00.000Z"));
      expect(request.token).toBe(
        `v2:${h.keyring.current.id}:${request.requestId}:${request.actionHash}:${request.expiresAt.getTime()}:${macOf(request.token)}`,
      );
      expect(await h.gates.listPending()).toEqual([
        {
          requestId: request.requestId,
          kind: "deploy.production",
          agentId: "deploy-agent",
          actionHash: request.actionHash,
          key: null,
          payload: PAYLOAD,
          payloadIntact: true,
          requestIntact: true,
          createdAt: request.createdAt,
          expiresAt: request.expiresAt,
          tokenVersion: 2,
        },
      ]);
      expect(h.audit.events).toEqual([
        {
          agentId: "deploy-agent",
          kind: "approval.requested",
          metadata: {
            requestId: request.requestId,
            kind: "deploy.production",
            actionHash: request.actionHash,
            expiresAt: "2026-01-01T01:00:00.000Z",
            tokenVersion: 2,
            keyId: h.keyring.current.id,
          },
        },
      ]);
    },
  );

  it.skipIf(!engine.available)(
    "the token is never stored, serialized with the request, or printed by inspect",
    async () => {
      const request = await h.gates.request("deploy.production", "deploy-agent", {
        payload: PAYLOAD,
      });
      const rows = await h.store.query<{ json: string }>(
        sql`select row_to_json(r)::text as json from gov_gates.requests r`,
      );
      expect(rows).toHaveLength(1);
      expect(rows[0]?.json).not.toContain(macOf(request.token));
      expect(JSON.stringify(request)).not.toContain(macOf(request.token));
      expect(JSON.parse(JSON.stringify(request))).toEqual({
        requestId: request.requestId,
        kind: "deploy.production",
        agentId: "deploy-agent",
        actionHash: request.actionHash,
        createdAt: "2026-01-01T00:00:00.000Z",
        expiresAt: "2026-01-01T01:00:00.000Z",
        tokenVersion: 2,
        key: null,
        stored: true,
      });
      expect(inspect(request)).not.toContain(macOf(request.token));
      expect(Object.keys(request)).not.toContain("token");
      // It is still there for whoever holds the object.
      const { token } = request;
      expect(token).toBe(request.token);
    },
  );

  it.skipIf(!engine.available)(
    "grant resolves once and is recorded; a replay (grant or deny) is refused already_used and recorded",
    async () => {
      const request = await h.gates.request("deploy.production", "deploy-agent", {
        payload: PAYLOAD,
      });
      h.clock.advance(5_000);
      const decision = await h.gates.grant(request.token, {
        reviewerId: "bob@company.com",
        reason: "looks good",
      });
      expect(decision).toEqual({
        requestId: request.requestId,
        kind: "deploy.production",
        agentId: "deploy-agent",
        actionHash: request.actionHash,
        decision: "granted",
        reviewerId: "bob@company.com",
        reason: "looks good",
        resolvedAt: new Date("2026-01-01T00:00:05.000Z"),
      });
      expect(await statusOf(request.requestId)).toBe("granted");
      expect(h.audit.events[1]).toEqual({
        agentId: "deploy-agent",
        kind: "approval.granted",
        metadata: {
          requestId: request.requestId,
          kind: "deploy.production",
          actionHash: request.actionHash,
          reviewerId: "bob@company.com",
          reason: "looks good",
          resolvedAt: "2026-01-01T00:00:05.000Z",
          tokenVersion: 2,
          keyId: h.keyring.current.id,
        },
      });
      for (const replay of [
        () => h.gates.grant(request.token, { reviewerId: "bob@company.com" }),
        () => h.gates.deny(request.token, { reviewerId: "carol@company.com", reason: "no" }),
      ]) {
        const error = await tokenRefusal(replay);
        expect(error.reason).toBe("already_used");
        expect(error.code).toBe(GATES_ERROR_CODES.APPROVAL_TOKEN_INVALID);
        expect(error.requestId).toBe(request.requestId);
      }
      expect(await statusOf(request.requestId)).toBe("granted");
      expect(kinds()).toEqual([
        "approval.requested",
        "approval.granted",
        "approval.refused",
        "approval.refused",
      ]);
      expect(h.audit.events[2]?.metadata).toEqual({
        requestId: request.requestId,
        kind: "deploy.production",
        actionHash: request.actionHash,
        attempt: "grant",
        reviewerId: "bob@company.com",
        reason: "already_used",
        status: "granted",
      });
      expect(h.audit.events[3]?.metadata).toMatchObject({
        attempt: "deny",
        reason: "already_used",
      });
    },
  );

  it.skipIf(!engine.available)("deny resolves once, with its reason, and is recorded", async () => {
    const request = await h.gates.request("refund.issue", "billing-agent", {
      payload: { amountUsd: 120 },
    });
    const decision = await h.gates.deny(request.token, {
      reviewerId: "bob@company.com",
      reason: "amount too high",
    });
    expect(decision).toMatchObject({ decision: "denied", reason: "amount too high" });
    expect(await h.gates.getRequest(request.requestId)).toMatchObject({
      status: "denied",
      reviewerId: "bob@company.com",
      reason: "amount too high",
      resolvedAt: new Date("2026-01-01T00:00:00.000Z"),
      executedAt: null,
    });
    expect(h.audit.events[1]).toMatchObject({
      agentId: "billing-agent",
      kind: "approval.denied",
      metadata: {
        requestId: request.requestId,
        reviewerId: "bob@company.com",
        reason: "amount too high",
      },
    });
    expect(
      (await tokenRefusal(() => h.gates.grant(request.token, { reviewerId: "x" }))).reason,
    ).toBe("already_used");
  });

  it.skipIf(!engine.available)(
    "expiry with a moved clock: valid until the last millisecond, then refused expired; clean-up expires it once",
    async () => {
      const first = await h.gates.request("deploy.production", "deploy-agent", {
        payload: PAYLOAD,
        expiresInMs: 60_000,
      });
      const second = await h.gates.request("deploy.staging", "deploy-agent", {
        expiresInMs: 60_000,
      });
      h.clock.advance(59_999);
      await h.gates.grant(first.token, { reviewerId: "bob" });
      h.clock.advance(1);
      const error = await tokenRefusal(() => h.gates.grant(second.token, { reviewerId: "bob" }));
      expect(error.reason).toBe("expired");
      expect(error.message).toContain("2026-01-01T00:01:00.000Z");
      expect(await statusOf(second.requestId)).toBe("pending");
      expect(await h.gates.listPending()).toEqual([]);
      expect(h.audit.events.at(-1)).toMatchObject({
        kind: "approval.refused",
        metadata: { requestId: second.requestId, reason: "expired" },
      });

      expect(await h.gates.expirePending()).toEqual([second.requestId]);
      expect(await h.gates.expirePending()).toEqual([]);
      expect(await statusOf(second.requestId)).toBe("expired");
      expect(await statusOf(first.requestId)).toBe("granted");
      expect(h.audit.events.at(-1)).toEqual({
        agentId: "deploy-agent",
        kind: "approval.expired",
        metadata: {
          requestId: second.requestId,
          kind: "deploy.staging",
          actionHash: second.actionHash,
          expiresAt: "2026-01-01T00:01:00.000Z",
          expiredAt: "2026-01-01T00:01:00.000Z",
        },
      });
      // Moving the clock back does not revive an expired request.
      h.clock.advance(-30_000);
      expect(
        (
          await tokenRefusal(() =>
            h.gates.deny(second.token, { reviewerId: "bob", reason: "late" }),
          )
        ).reason,
      ).toBe("expired");
    },
  );

  it.skipIf(!engine.available)(
    "the database compare uses the module's clock: a token that is valid by its own field but past expiry in the row is refused",
    async () => {
      const request = await h.gates.request("deploy.production", "deploy-agent", {
        expiresInMs: 60_000,
      });
      // Shorten the stored expiry (a table owner, who drops the guard trigger first): the
      // conditional update compares it with clock.now().
      await h.store.query(sql`drop trigger requests_guard on gov_gates.requests`);
      await h.store.query(
        sql`update gov_gates.requests set expires_at = expires_at - interval '30 seconds' where request_id = ${request.requestId}::uuid`,
      );
      h.clock.advance(30_000);
      expect(
        (await tokenRefusal(() => h.gates.grant(request.token, { reviewerId: "bob" }))).reason,
      ).toBe("expired");
      expect(await statusOf(request.requestId)).toBe("pending");
    },
  );

  it.skipIf(!engine.available)(
    "a flipped MAC character or a forged token changes nothing, and the genuine token still works",
    async () => {
      const request = await h.gates.request("deploy.production", "deploy-agent", {
        payload: PAYLOAD,
      });
      const flipped = flipLast(request.token);
      expect((await tokenRefusal(() => h.gates.grant(flipped, { reviewerId: "bob" }))).reason).toBe(
        "signature_mismatch",
      );
      // Forged: same fields and key id, MAC under another key.
      const forged = mintToken(new ChainKey(SECRET_B), 2, {
        requestId: request.requestId,
        actionHash: request.actionHash,
        expiresAtMs: request.expiresAt.getTime(),
      }).replace(new ChainKey(SECRET_B).id, h.keyring.current.id);
      expect((await tokenRefusal(() => h.gates.grant(forged, { reviewerId: "bob" }))).reason).toBe(
        "signature_mismatch",
      );
      // A forger who swaps in another action hash fails the same way.
      const swapped = request.token.replace(request.actionHash, sha256("{}"));
      expect(
        (await tokenRefusal(() => h.gates.deny(swapped, { reviewerId: "bob", reason: "x" })))
          .reason,
      ).toBe("signature_mismatch");
      expect(await statusOf(request.requestId)).toBe("pending");
      expect(kinds()).toEqual(["approval.requested"]);
      expect(h.logger.lines.filter((line) => line.level === "warn")).toHaveLength(3);
      await h.gates.grant(request.token, { reviewerId: "bob" });
      expect(await statusOf(request.requestId)).toBe("granted");
    },
  );

  it.skipIf(!engine.available)(
    "a swapped action: the reviewer's payload must be the one the token is bound to",
    async () => {
      const request = await h.gates.request("refund.issue", "billing-agent", {
        payload: { customer: "cus_42", amountUsd: 120 },
      });
      const error = await tokenRefusal(() =>
        h.gates.grant(request.token, {
          reviewerId: "bob",
          payload: { customer: "cus_42", amountUsd: 12_000 },
        }),
      );
      expect(error.reason).toBe("action_hash_mismatch");
      expect(await statusOf(request.requestId)).toBe("pending");
      expect(h.audit.events.at(-1)?.metadata).toMatchObject({
        reason: "action_hash_mismatch",
        actionHash: request.actionHash,
        presentedActionHash: sha256('{"amountUsd":12000,"customer":"cus_42"}'),
      });
      // Key order does not matter: the hash is over the canonical form.
      await h.gates.grant(request.token, {
        reviewerId: "bob",
        payload: { amountUsd: 120, customer: "cus_42" },
      });
    },
  );

  it.skipIf(!engine.available)(
    "a row whose action hash was changed in the database no longer matches the token",
    async () => {
      const request = await h.gates.request("refund.issue", "billing-agent", {
        payload: { amountUsd: 120 },
      });
      // A table owner, who drops the guard trigger first (it refuses the edit).
      await h.store.query(sql`drop trigger requests_guard on gov_gates.requests`);
      await h.store.query(
        sql`update gov_gates.requests set action_hash = ${sha256('{"amountUsd":12000}')} where request_id = ${request.requestId}::uuid`,
      );
      expect(
        (await tokenRefusal(() => h.gates.grant(request.token, { reviewerId: "bob" }))).reason,
      ).toBe("action_hash_mismatch");
      expect(await statusOf(request.requestId)).toBe("pending");
    },
  );

  it.skipIf(!engine.available)(
    "unknown requests: never stored, or a store failure at request time",
    async () => {
      // A genuine MAC for a request id that was never stored.
      const orphan = mintToken(h.keyring.current, 2, {
        requestId: "0b6f5a8e-3c1d-4f2a-9e7b-5d4c3b2a1f00",
        actionHash: sha256("{}"),
        expiresAtMs: Date.parse("2026-01-01T01:00:00.000Z"),
      });
      const error = await tokenRefusal(() => h.gates.grant(orphan, { reviewerId: "bob" }));
      expect(error.reason).toBe("unknown_request");
      expect(error.requestId).toBe("0b6f5a8e-3c1d-4f2a-9e7b-5d4c3b2a1f00");

      const flaky = flakyStore(h.store);
      const gates = h.another({ store: flaky.store });
      flaky.setDown(true);
      const request = await gates.request("deploy.production", "deploy-agent", {
        payload: PAYLOAD,
      });
      expect(request.stored).toBe(false);
      expect(request.token.startsWith("v2:")).toBe(true);
      expect(h.audit.events.at(-1)).toMatchObject({
        agentId: "deploy-agent",
        kind: "approval.request_failed",
        metadata: {
          requestId: request.requestId,
          kind: "deploy.production",
          actionHash: request.actionHash,
          error: expect.stringContaining("ECONNREFUSED"),
        },
      });
      expect(kinds()).not.toContain("approval.requested");
      expect(
        h.logger.lines.some(
          (line) => line.level === "warn" && line.message.includes("stored: false"),
        ),
      ).toBe(true);
      flaky.setDown(false);
      expect(
        (await tokenRefusal(() => h.gates.grant(request.token, { reviewerId: "bob" }))).reason,
      ).toBe("unknown_request");
      expect(await h.gates.getRequest(request.requestId)).toBeNull();
    },
  );

  it.skipIf(!engine.available)(
    "grant fails with ApprovalStoreError when the database is down",
    async () => {
      const request = await h.gates.request("deploy.production", "deploy-agent");
      const flaky = flakyStore(h.store);
      const gates = h.another({ store: flaky.store });
      flaky.setDown(true);
      const error = await thrown(() => gates.grant(request.token, { reviewerId: "bob" }));
      expect(ApprovalStoreError.isInstance(error)).toBe(true);
      expect((error as ApprovalStoreError).operation).toBe("read");
      flaky.setDown(false);
      expect(await statusOf(request.requestId)).toBe("pending");
    },
  );

  it.skipIf(!engine.available)(
    "malformed tokens and prefixes are refused before the database is read",
    async () => {
      const request = await h.gates.request("deploy.production", "deploy-agent");
      const badPrefix = request.token.replace(`v2:${h.keyring.current.id}:`, "v2:XYZ:");
      expect(
        (await tokenRefusal(() => h.gates.grant(badPrefix, { reviewerId: "bob" }))).reason,
      ).toBe("malformed_key_prefix");
      for (const token of ["", "nonsense", `${request.token}:x`, request.token.toUpperCase()]) {
        expect((await tokenRefusal(() => h.gates.grant(token, { reviewerId: "bob" }))).reason).toBe(
          "malformed",
        );
      }
      const notString = await thrown(() => h.gates.grant(42 as never, { reviewerId: "bob" }));
      expect(InvalidGatesInputError.isInstance(notString)).toBe(true);
      expect((notString as InvalidGatesInputError).field).toBe("token");
      expect(await statusOf(request.requestId)).toBe("pending");
      expect(kinds()).toEqual(["approval.requested"]);
    },
  );

  it.skipIf(!engine.available)(
    "a v2 token still verifies after a key rotation, and fails with historical_key_unavailable without the old key",
    async () => {
      const before = await h.gates.request("deploy.production", "deploy-agent", {
        payload: PAYLOAD,
      });
      const other = await h.gates.request("deploy.staging", "deploy-agent");
      // The process restarts with a new current key and the old one as historical.
      const rotated = h.another({ keyring: keyringOf(SECRET_B, SECRET_A) });
      const after = await rotated.request("deploy.production", "deploy-agent");
      expect(after.token.startsWith(`v2:${new ChainKey(SECRET_B).id}:`)).toBe(true);
      await rotated.grant(before.token, { reviewerId: "bob" });
      expect(await statusOf(before.requestId)).toBe("granted");
      // Without the old key: refused, named, and nothing changed.
      const forgetful = h.another({ keyring: keyringOf(SECRET_B, SECRET_C) });
      const error = await tokenRefusal(() => forgetful.grant(other.token, { reviewerId: "bob" }));
      expect(error.reason).toBe("historical_key_unavailable");
      expect(error.message).toContain(new ChainKey(SECRET_A).id);
      expect(await statusOf(other.requestId)).toBe("pending");
      await forgetful.grant(after.token, { reviewerId: "bob" });
    },
  );

  it.skipIf(!engine.available)(
    "legacy v1 tokens verify before acceptV1Until (recorded as gates.legacy_token_parsed) and raise TokenVersionTooOldError after it",
    async () => {
      const legacy = h.another({
        gates: { enableV2Tokens: false, acceptV1Until: "2026-01-01T00:30:00Z" },
      });
      expect(h.logger.lines.some((line) => line.message.includes("legacy v1 tokens"))).toBe(true);
      const early = await legacy.request("deploy.production", "deploy-agent", { payload: PAYLOAD });
      const late = await legacy.request("deploy.production", "deploy-agent", { payload: PAYLOAD });
      expect(early.tokenVersion).toBe(1);
      expect(early.token.split(":")).toHaveLength(4);
      // The default module (v2) accepts v1 tokens too, until its own cut-off.
      await h.gates.grant(early.token, { reviewerId: "bob" });
      expect(h.audit.events.map((event) => event.kind)).toContain("gates.legacy_token_parsed");
      expect(
        h.audit.events.find((event) => event.kind === "gates.legacy_token_parsed")?.metadata,
      ).toEqual({
        requestId: early.requestId,
        kind: "deploy.production",
        attempt: "grant",
        acceptV1Until: "2026-07-17T00:00:00.000Z",
      });
      h.clock.advance(30 * 60_000);
      const error = await thrown(() => legacy.grant(late.token, { reviewerId: "bob" }));
      expect(TokenVersionTooOldError.isInstance(error)).toBe(true);
      expect(ApprovalTokenError.isInstance(error)).toBe(true);
      expect((error as TokenVersionTooOldError).code).toBe("TOKEN_VERSION_TOO_OLD");
      expect((error as TokenVersionTooOldError).acceptV1Until).toEqual(
        new Date("2026-01-01T00:30:00Z"),
      );
      expect(await statusOf(late.requestId)).toBe("pending");
      // acceptV1Until: null refuses v1 always.
      const strict = h.another({ gates: { acceptV1Until: null } });
      expect(
        TokenVersionTooOldError.isInstance(
          await thrown(() => strict.grant(late.token, { reviewerId: "bob" })),
        ),
      ).toBe(true);
      // v1 is bound to the current key: after a rotation it no longer verifies.
      const rotated = h.another({ keyring: keyringOf(SECRET_B, SECRET_A) });
      expect(
        (await tokenRefusal(() => rotated.grant(late.token, { reviewerId: "bob" }))).reason,
      ).toBe("signature_mismatch");
    },
  );

  it.skipIf(!engine.available)(
    "self-approval is refused: the agent itself, or the operator bound to it (case-insensitively)",
    async () => {
      const request = await h.gates.request("deploy.production", "deploy-agent", {
        payload: PAYLOAD,
      });
      const byAgent = await thrown(() =>
        h.gates.grant(request.token, { reviewerId: "deploy-agent" }),
      );
      expect(SelfApprovalError.isInstance(byAgent)).toBe(true);
      expect(byAgent).toMatchObject({
        code: "SELF_APPROVAL",
        relation: "agent",
        agentId: "deploy-agent",
      });
      const byOperator = await thrown(() =>
        h.gates.grant(request.token, { reviewerId: "Alice@Company.com" }),
      );
      expect(SelfApprovalError.isInstance(byOperator)).toBe(true);
      expect(byOperator).toMatchObject({ relation: "operator", reviewerId: "Alice@Company.com" });
      expect(h.operators.lookups).toEqual(["deploy-agent"]);
      expect(await statusOf(request.requestId)).toBe("pending");
      expect(
        h.audit.events
          .filter((event) => event.kind === "approval.refused")
          .map((event) => event.metadata),
      ).toEqual([
        {
          requestId: request.requestId,
          kind: "deploy.production",
          actionHash: request.actionHash,
          attempt: "grant",
          reviewerId: "deploy-agent",
          reason: "self_approval",
        },
        {
          requestId: request.requestId,
          kind: "deploy.production",
          actionHash: request.actionHash,
          attempt: "grant",
          reviewerId: "Alice@Company.com",
          reason: "self_approval",
        },
      ]);
      await h.gates.grant(request.token, { reviewerId: "bob@company.com" });
      expect(await statusOf(request.requestId)).toBe("granted");
    },
  );

  it.skipIf(!engine.available)(
    "when the operator cannot be looked up, a grant fails closed; a denial by the operator is allowed",
    async () => {
      const request = await h.gates.request("deploy.production", "deploy-agent");
      h.operators.fail = true;
      const error = await thrown(() =>
        h.gates.grant(request.token, { reviewerId: "bob@company.com" }),
      );
      expect(SelfApprovalUnverifiableError.isInstance(error)).toBe(true);
      expect((error as SelfApprovalUnverifiableError).code).toBe("SELF_APPROVAL_UNVERIFIABLE");
      expect((error as Error).message).toContain("presence database unreachable");
      expect(await statusOf(request.requestId)).toBe("pending");
      expect(h.audit.events.at(-1)?.metadata).toMatchObject({ reason: "operator_unknown" });
      await h.gates.deny(request.token, { reviewerId: "alice@company.com", reason: "not now" });
      expect(await statusOf(request.requestId)).toBe("denied");
    },
  );

  it.skipIf(!engine.available)(
    "the halt check comes first in request(); a request made before a halt can still be resolved",
    async () => {
      const halted = new Set<string>();
      const halt: HaltGuard = {
        async assertAlive(agentId, context) {
          if (halted.has(agentId))
            throw new AgentHaltedError({
              agentId,
              haltedBy: "alice",
              reason: "loop",
              path: context.path,
            });
        },
      };
      const gates = h.another({ halt });
      const before = await gates.request("deploy.production", "deploy-agent");
      halted.add("deploy-agent");
      const error = await thrown(() => gates.request("deploy.production", "deploy-agent"));
      expect(AgentHaltedError.isInstance(error)).toBe(true);
      expect((error as AgentHaltedError).path).toBe("gates.request");
      expect(await gates.listPending()).toHaveLength(1);
      expect(kinds()).toEqual(["approval.requested"]);
      await gates.grant(before.token, { reviewerId: "bob" });
      expect(await statusOf(before.requestId)).toBe("granted");
    },
  );

  it.skipIf(!engine.available)(
    "a decision whose audit event cannot be written is not made: the claim is released and the token works again",
    async () => {
      let failing: "placeholder" | "throw" | null = "placeholder";
      const events: AuditEventInput[] = [];
      const audit: AuditSink = {
        async log(event) {
          if (failing !== null && event.kind.startsWith("approval.granted")) {
            if (failing === "throw") throw new Error("sink rejected the event");
            return { eventId: "", isPlaceholder: true };
          }
          events.push(event);
          return { eventId: `e${events.length}`, isPlaceholder: false };
        },
      };
      const gates = h.another({ audit });
      const request = await gates.request("deploy.production", "deploy-agent");
      for (const mode of ["placeholder", "throw"] as const) {
        failing = mode;
        const error = await thrown(() => gates.grant(request.token, { reviewerId: "bob" }));
        expect(ApprovalNotRecordedError.isInstance(error)).toBe(true);
        expect(error).toMatchObject({ code: "APPROVAL_NOT_RECORDED", decision: "granted" });
        expect(await h.gates.getRequest(request.requestId)).toMatchObject({
          status: "pending",
          reviewerId: null,
          resolvedAt: null,
        });
      }
      failing = null;
      await gates.grant(request.token, { reviewerId: "bob" });
      expect(await statusOf(request.requestId)).toBe("granted");
      // Each released claim is recorded, so that an auditor can tell that a granted event
      // the sink may still have kept (a spooled placeholder) did not take effect.
      expect(events.map((event) => event.kind)).toEqual([
        "approval.requested",
        "approval.released",
        "approval.released",
        "approval.granted",
      ]);
      expect(events[1]?.metadata).toEqual({
        requestId: request.requestId,
        kind: "deploy.production",
        actionHash: request.actionHash,
        decision: "granted",
        reviewerId: "bob",
        resolvedAt: "2026-01-01T00:00:00.000Z",
        cause: "audit_failed",
        releasedAt: "2026-01-01T00:00:00.000Z",
      });
    },
  );

  it.skipIf(!engine.available)(
    "with no audit module (noopAuditSink) decisions are made; nothing is recorded",
    async () => {
      const gates = h.another({ audit: noopAuditSink });
      const request = await gates.request("deploy.production", "deploy-agent");
      await gates.grant(request.token, { reviewerId: "bob" });
      expect(await statusOf(request.requestId)).toBe("granted");
      expect(h.audit.events).toEqual([]);
    },
  );

  it.skipIf(!engine.available)(
    "no token, and no MAC of one, ever reaches a log line, an audit event or an error",
    async () => {
      const tokens: string[] = [];
      const errors: unknown[] = [];
      const attempt = async (run: () => Promise<unknown>) => {
        try {
          await run();
        } catch (error) {
          errors.push(error);
        }
      };
      const a = await h.gates.request("deploy.production", "deploy-agent", { payload: PAYLOAD });
      const b = await h.gates.request("refund.issue", "billing-agent", { expiresInMs: 1_000 });
      tokens.push(a.token, b.token);
      await attempt(() => h.gates.grant(flipLast(a.token), { reviewerId: "bob" }));
      await attempt(() => h.gates.grant(`${a.token} `, { reviewerId: "bob" }));
      await attempt(() => h.gates.grant(a.token, { reviewerId: "deploy-agent" }));
      await attempt(() => h.gates.grant(a.token, { reviewerId: "bob" }));
      await attempt(() => h.gates.grant(a.token, { reviewerId: "bob" }));
      h.clock.advance(2_000);
      await attempt(() => h.gates.deny(b.token, { reviewerId: "bob", reason: "late" }));
      await attempt(() =>
        h.another({ keyring: keyringOf(SECRET_C) }).grant(b.token, { reviewerId: "bob" }),
      );
      expect(errors).toHaveLength(6);
      const evidence = [
        h.logger.text(),
        JSON.stringify(h.audit.events),
        ...errors.map(
          (error) => `${(error as Error).message} ${JSON.stringify(error)} ${inspect(error)}`,
        ),
      ].join("\n");
      for (const token of tokens) {
        expect(evidence).not.toContain(token);
        expect(evidence).not.toContain(macOf(token));
      }
    },
  );

  it.skipIf(!engine.available)(
    "listPending filters by agent and kind, oldest first, with a limit",
    async () => {
      const a = await h.gates.request("deploy.production", "deploy-agent");
      h.clock.advance(1);
      const b = await h.gates.request("refund.issue", "billing-agent");
      h.clock.advance(1);
      const c = await h.gates.request("refund.issue", "billing-agent");
      const ids = (list: { requestId: string }[]) => list.map((entry) => entry.requestId);
      expect(ids(await h.gates.listPending())).toEqual([a.requestId, b.requestId, c.requestId]);
      expect(ids(await h.gates.listPending({ agentId: "billing-agent" }))).toEqual([
        b.requestId,
        c.requestId,
      ]);
      expect(ids(await h.gates.listPending({ kind: "deploy.production" }))).toEqual([a.requestId]);
      expect(ids(await h.gates.listPending({ limit: 1 }))).toEqual([a.requestId]);
      await h.gates.deny(b.token, { reviewerId: "bob", reason: "no" });
      expect(ids(await h.gates.listPending())).toEqual([a.requestId, c.requestId]);
      expect(await h.gates.getRequest("0b6f5a8e-3c1d-4f2a-9e7b-5d4c3b2a1f00")).toBeNull();
    },
  );

  it.skipIf(!engine.available)(
    "gatesModule creates a module from a composition's context",
    async () => {
      const gates = await gatesModule.create(
        {
          store: h.store,
          keyring: h.keyring,
          clock: h.clock,
          logger: h.logger,
          audit: h.audit,
          halt: { async assertAlive() {} },
        },
        undefined,
      );
      const request = await gates.request("deploy.production", "deploy-agent");
      await h.gates.grant(request.token, { reviewerId: "bob" });
      expect(gatesModule.name).toBe("gates");
      expect(gatesModule.migrations?.name).toBe("gates");
      await gatesModule.close?.(gates);
      expect(APPROVAL_EVENT_KINDS.granted).toBe("approval.granted");
    },
  );
});
