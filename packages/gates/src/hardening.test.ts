/**
 * Binding, single use and recovery: an approval runs only the action, kind and agent it was
 * made for, once, before its expiry; invisible characters and a changed operator do not
 * open a way to self-approval; a claim left behind by a dead or slow process is recovered.
 */
import { createHash } from "node:crypto";
import {
  type AuditEventInput,
  type AuditSink,
  ChainKey,
  canonicalJson,
  type OperatorDirectory,
  type Store,
  sql,
} from "@gov/core";
import { type TestEngine, testEngines } from "@gov/core/testing";
import { PgDialect } from "drizzle-orm/pg-core";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  eventually,
  type GatesHarness,
  gatesHarness,
  keyringOf,
  operatorsOf,
  SECRET_A,
  SECRET_B,
  thrown,
  wrapQuery,
} from "./__fixtures__";
import {
  ApprovalIntegrityError,
  ApprovalNotRecordedError,
  type ApprovalPending,
  ApprovalStoreError,
  ApprovalTimeout,
  ApprovalTokenError,
  InvalidGatesInputError,
  SelfApprovalError,
  SelfApprovalUnverifiableError,
} from "./errors";
import type { ApprovalRequest } from "./request";

const PAYLOAD = { pr: 142, environment: "production" };
const DAY_MS = 86_400_000;
const dialect = new PgDialect();
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function tokenRefusal(run: () => unknown): Promise<ApprovalTokenError> {
  const error = await thrown(run);
  if (!ApprovalTokenError.isInstance(error)) throw error;
  return error;
}

async function inputError(run: () => unknown): Promise<InvalidGatesInputError> {
  const error = await thrown(run);
  if (!InvalidGatesInputError.isInstance(error)) throw error;
  return error;
}

/** A promise settled from outside. */
function deferred(): { promise: Promise<void>; resolve(): void; reject(error: Error): void } {
  let resolve: () => void = () => undefined;
  let reject: (error: Error) => void = () => undefined;
  const promise = new Promise<void>((yes, no) => {
    resolve = yes;
    reject = no;
  });
  promise.catch(() => undefined);
  return { promise, resolve, reject };
}

/**
 * An audit sink that records every event, and holds the events of `kind` until `gate`
 * settles (a rejection makes the write fail).
 */
function heldSink(kind: string): AuditSink & {
  events: AuditEventInput[];
  gate: ReturnType<typeof deferred>;
} {
  const events: AuditEventInput[] = [];
  const gate = deferred();
  return {
    events,
    gate,
    async log(event) {
      if (event.kind === kind) await gate.promise;
      events.push(event);
      return { eventId: `e${events.length}`, isPlaceholder: false };
    },
  };
}

/** A store that calls `before(text)` before each statement runs, and `after(text)` once it has. */
function hookedStore(
  store: Store,
  hooks: {
    before?: (text: string) => Promise<void> | void;
    after?: (text: string) => Promise<void> | void;
  },
): Store {
  return wrapQuery(store, async (query, next) => {
    const text = dialect.sqlToQuery(query).sql;
    await hooks.before?.(text);
    const rows = await next(query);
    await hooks.after?.(text);
    return rows;
  });
}

describe.each(testEngines())("binding, single use and recovery on $name", (engine: TestEngine) => {
  let h: GatesHarness;

  beforeEach(async () => {
    if (engine.available) h = await gatesHarness(engine);
  });

  afterEach(async () => {
    await h?.close();
  });

  const statusOf = async (requestId: string) => (await h.gates.getRequest(requestId))?.status;
  const open = (options: { payload?: unknown; expiresInMs?: number } = {}) =>
    h.gates.request("deploy.production", "deploy-agent", { payload: PAYLOAD, ...options });
  /** What a process that claimed the request and then died leaves behind. */
  const claimAndDie = (requestId: string) =>
    h.store.query(sql`
      update gov_gates.requests set status = 'granting', reviewer_id = 'ghost@company.com',
        resolved_at = ${h.clock.now().toISOString()}::timestamptz,
        decision_key_id = ${h.keyring.current.id}, decision_mac = ${"a".repeat(64)}
      where request_id = ${requestId}::uuid`);
  const released = () =>
    h.audit.events
      .filter((event) => event.kind === "approval.released")
      .map((event) => event.metadata ?? {});

  // -------------------------------------------------------------------------------------
  // 1. An approval is bound to its kind and agent.

  it.skipIf(!engine.available)(
    "resume refuses a request made by another gated function (another kind, or another agent)",
    async () => {
      const ran: string[] = [];
      const tokens = new Map<string, string>();
      const staging = h.gates.requireApproval(
        {
          kind: "deploy.staging",
          agentId: "deploy-agent",
          blocking: false,
          onRequest: (request) => {
            tokens.set(request.requestId, request.token);
          },
        },
        async (pr: number) => {
          ran.push(`staging ${pr}`);
        },
      );
      const production = h.gates.requireApproval(
        { kind: "deploy.production", agentId: "other-agent", blocking: false },
        async (pr: number) => {
          ran.push(`production ${pr}`);
        },
      );
      const sameAgent = h.gates.requireApproval(
        { kind: "deploy.production", agentId: "deploy-agent", blocking: false },
        async (pr: number) => {
          ran.push(`production (same agent) ${pr}`);
        },
      );
      const otherAgent = h.gates.requireApproval(
        { kind: "deploy.staging", agentId: "other-agent", blocking: false },
        async (pr: number) => {
          ran.push(`staging (other agent) ${pr}`);
        },
      );
      const pending = await thrown(() => staging(142));
      const requestId = (pending as ApprovalPending).requestId;
      await h.gates.grant(tokens.get(requestId) as string, { reviewerId: "bob@company.com" });
      for (const gated of [production, sameAgent, otherAgent]) {
        const error = await tokenRefusal(() => gated.resume(requestId, 142));
        expect(error.reason).toBe("request_mismatch");
        expect(error.requestId).toBe(requestId);
      }
      expect(ran).toEqual([]);
      expect(h.audit.events.at(-3)).toMatchObject({
        kind: "approval.refused",
        metadata: {
          requestId,
          attempt: "execute",
          reason: "request_mismatch",
          expectedKind: "deploy.production",
          expectedAgentId: "other-agent",
        },
      });
      expect((await h.gates.getRequest(requestId))?.executedAt).toBeNull();
      // The function it was made for still runs it, once.
      await staging.resume(requestId, 142);
      expect(ran).toEqual(["staging 142"]);
    },
  );

  it.skipIf(!engine.available)(
    "verifyAction enforces the kind and agent it is given (exactly)",
    async () => {
      const request = await h.gates.request("deploy.staging", "deploy-agent", {
        payload: { pr: 142 },
      });
      await h.gates.grant(request.token, { reviewerId: "bob@company.com" });
      for (const expected of [
        { kind: "deploy.production" },
        { agentId: "other-agent" },
        { kind: "deploy.staging", agentId: "Deploy-Agent" },
      ]) {
        const error = await tokenRefusal(() =>
          h.gates.verifyAction(request.requestId, { pr: 142 }, expected),
        );
        expect(error.reason).toBe("request_mismatch");
      }
      expect(
        await h.gates.verifyAction(
          request.requestId,
          { pr: 142 },
          { kind: "deploy.staging", agentId: "deploy-agent" },
        ),
      ).toMatchObject({ decision: "granted", kind: "deploy.staging", agentId: "deploy-agent" });
    },
  );

  // -------------------------------------------------------------------------------------
  // 2. Execution is single-use and bounded by the request's expiry.

  it.skipIf(!engine.available)(
    "verifyAction consumes the approval: a second execution is refused already_executed; consume: false only inspects",
    async () => {
      const request = await open();
      await h.gates.grant(request.token, { reviewerId: "bob@company.com" });
      for (let round = 0; round < 2; round++) {
        expect(
          await h.gates.verifyAction(request.requestId, PAYLOAD, { consume: false }),
        ).toMatchObject({ decision: "granted" });
      }
      expect((await h.gates.getRequest(request.requestId))?.executedAt).toBeNull();
      h.clock.advance(1_000);
      expect(await h.gates.verifyAction(request.requestId, PAYLOAD)).toMatchObject({
        decision: "granted",
        reviewerId: "bob@company.com",
      });
      expect((await h.gates.getRequest(request.requestId))?.executedAt).toEqual(
        new Date("2026-01-01T00:00:01.000Z"),
      );
      for (const options of [{}, { consume: false }, { consume: true }]) {
        const error = await tokenRefusal(() =>
          h.gates.verifyAction(request.requestId, PAYLOAD, options),
        );
        expect(error.reason).toBe("already_executed");
      }
      expect(h.audit.events.at(-1)).toMatchObject({
        kind: "approval.refused",
        metadata: { requestId: request.requestId, attempt: "execute", reason: "already_executed" },
      });
    },
  );

  it.skipIf(!engine.available)(
    "after requireApproval ran the action, verifyAction refuses it, even 40 days later",
    async () => {
      const reviewer = h.another();
      const delivered: ApprovalRequest[] = [];
      let runs = 0;
      const guarded = h.gates.requireApproval(
        {
          kind: "refund.issue",
          agentId: "billing-agent",
          timeoutMs: 30_000,
          onRequest: (request) => {
            delivered.push(request);
            setTimeout(() => void reviewer.grant(request.token, { reviewerId: "bob" }), 20);
          },
        },
        async (_customer: string, _amount: number) => {
          runs++;
        },
      );
      await guarded("cus_42", 120);
      const requestId = delivered[0]?.requestId as string;
      const payload = { args: ["cus_42", 120] };
      expect((await tokenRefusal(() => h.gates.verifyAction(requestId, payload))).reason).toBe(
        "already_executed",
      );
      h.clock.advance(40 * DAY_MS);
      expect(
        (await tokenRefusal(() => h.gates.verifyAction(requestId, payload, { consume: false })))
          .reason,
      ).toMatch(/^(already_executed|expired)$/);
      expect(runs).toBe(1);
    },
  );

  it.skipIf(!engine.available)(
    "an approval cannot be executed after the request's expiry, however it is asked",
    async () => {
      const tokens = new Map<string, string>();
      let runs = 0;
      const later = h.gates.requireApproval(
        {
          kind: "deploy.production",
          agentId: "deploy-agent",
          blocking: false,
          expiresInMs: 60_000,
          payload: (pr: number) => ({ pr }),
          onRequest: (request) => {
            tokens.set(request.requestId, request.token);
          },
        },
        async (_pr: number) => {
          runs++;
        },
      );
      const requestId = ((await thrown(() => later(142))) as ApprovalPending).requestId;
      await h.gates.grant(tokens.get(requestId) as string, { reviewerId: "bob" });
      const request = await open({ expiresInMs: 60_000 });
      await h.gates.grant(request.token, { reviewerId: "bob" });
      h.clock.advance(59_999);
      expect(
        await h.gates.verifyAction(request.requestId, PAYLOAD, { consume: false }),
      ).toMatchObject({ decision: "granted" });
      h.clock.advance(1);
      for (const clock of [0, 40 * DAY_MS]) {
        h.clock.advance(clock);
        for (const options of [{}, { consume: false }]) {
          const error = await tokenRefusal(() =>
            h.gates.verifyAction(request.requestId, PAYLOAD, options),
          );
          expect(error.reason).toBe("expired");
        }
        expect((await tokenRefusal(() => later.resume(requestId, 142))).reason).toBe("expired");
      }
      expect(runs).toBe(0);
      expect((await h.gates.getRequest(request.requestId))?.executedAt).toBeNull();
      expect(h.audit.events.at(-1)).toMatchObject({
        kind: "approval.refused",
        metadata: { attempt: "execute", reason: "expired" },
      });
    },
  );

  it.skipIf(!engine.available)(
    "of concurrent executions of one approval, exactly one runs",
    async () => {
      const request = await open();
      await h.gates.grant(request.token, { reviewerId: "bob" });
      const others = [h.another(), h.another(), h.another()];
      const outcomes = await Promise.allSettled(
        [h.gates, ...others].map((gates) => gates.verifyAction(request.requestId, PAYLOAD)),
      );
      expect(outcomes.filter((outcome) => outcome.status === "fulfilled")).toHaveLength(1);
      for (const outcome of outcomes) {
        if (outcome.status === "rejected")
          expect((outcome.reason as ApprovalTokenError).reason).toBe("already_executed");
      }
    },
  );

  // -------------------------------------------------------------------------------------
  // 3. Self-approval: invisible characters, case folding, white space, a changed operator.

  it.skipIf(!engine.available)(
    "reviewer and agent ids with invisible characters are refused at the boundary",
    async () => {
      const request = await open();
      for (const reviewerId of [
        "deploy\u00adagent",
        "deploy-agent\u200b",
        "deploy\u2060-agent",
        "deploy-agent\u200d",
        "\ufeffdeploy-agent",
        "deploy-agent\ufe0f",
        "deploy\u200c-agent",
        "deploy-agent\u180e",
        "alice@company.com\u200d",
      ]) {
        const error = await inputError(() => h.gates.grant(request.token, { reviewerId }));
        expect(error.field).toBe("options.reviewerId");
        expect(error.message).toContain("invisible");
      }
      expect(await statusOf(request.requestId)).toBe("pending");
      for (const agentId of ["deploy-agent\u200b", "deploy\u00adagent"]) {
        const error = await inputError(() => h.gates.request("deploy.production", agentId));
        expect(error.field).toBe("agentId");
      }
      expect(
        (await inputError(() => h.gates.listPending({ agentId: "deploy-agent\u2060" }))).field,
      ).toBe("options.agentId");
      await h.gates.grant(request.token, { reviewerId: "bob@company.com" });
    },
  );

  it.skipIf(!engine.available)(
    "ids are compared with Unicode case folding and collapsed white space",
    async () => {
      const cases: [agentId: string, reviewerId: string][] = [
        ["straße-bot", "STRASSE-BOT"],
        ["deploy agent", "deploy   agent"],
        ["deploy agent", "Deploy  Agent"],
        ["ΟΔΥΣΣΕΥΣ", "οδυσσευς"],
        ["ﬁnance-bot", "FINANCE-BOT"],
      ];
      for (const [agentId, reviewerId] of cases) {
        const request = await h.gates.request("deploy.production", agentId);
        const error = await thrown(() => h.gates.grant(request.token, { reviewerId }));
        expect(SelfApprovalError.isInstance(error)).toBe(true);
        expect((error as SelfApprovalError).relation).toBe("agent");
      }
      // White space at either end of an id is refused on input (core's id rule).
      const request = await h.gates.request("deploy.production", "deploy agent");
      const padded = await inputError(() =>
        h.gates.grant(request.token, { reviewerId: " Deploy  Agent " }),
      );
      expect(padded.field).toBe("options.reviewerId");
      expect(await statusOf(request.requestId)).toBe("pending");
    },
  );

  // Guards against: self-approval under a reviewer id that looks like the agent's or its
  // operator's (issue 12, break 6: "billing-agent" + U+2800 granted its own request).
  it.skipIf(!engine.available)(
    "look-alike reviewer ids are refused on input or as self-approval; different reviewers are allowed",
    async () => {
      const gates = h.another({ operators: operatorsOf({ "billing-agent": "alice@company.com" }) });
      const open = () =>
        gates.request("refund.issue", "billing-agent", { payload: { amountUsd: 120 } });
      const onInput: [name: string, reviewerId: string, codePoint: string][] = [
        ["a Braille pattern blank after the id", "billing-agent\u2800", "U+2800"],
        ["a Braille pattern blank inside the id", "billing\u2800agent", "U+2800"],
        ["a no-break space", "billing-agent\u00a0", "U+00A0"],
        ["a no-break space for the hyphen", "billing\u00a0agent", "U+00A0"],
        ["an ideographic space", "billing-agent\u3000", "U+3000"],
        ["an em space", "\u2003billing-agent", "U+2003"],
        ["a narrow no-break space", "billing\u202fagent", "U+202F"],
        ["a Hangul filler", "billing-agent\u3164", "U+3164"],
        ["a half-width Hangul filler", "billing-agent\uffa0", "U+FFA0"],
        ["a soft hyphen", "billing\u00ad-agent", "U+00AD"],
        ["a zero-width joiner", "billing-\u200dagent", "U+200D"],
        ["a zero-width space", "billing-agent\u200b", "U+200B"],
        ["a combining grapheme joiner", "billing-agent\u034f", "U+034F"],
        ["a Braille blank after the operator's id", "alice@company.com\u2800", "U+2800"],
      ];
      const request = await open();
      for (const [name, reviewerId, codePoint] of onInput) {
        const error = await thrown(() => gates.grant(request.token, { reviewerId }));
        if (!InvalidGatesInputError.isInstance(error)) throw new Error(`${name}: ${String(error)}`);
        expect(error.field).toBe("options.reviewerId");
        expect(error.message).toContain(codePoint);
        expect(error.message).toContain(`index ${reviewerId.search(/[^ -~]/u)}`);
        // Agent ids are refused on input the same way.
        expect(
          InvalidGatesInputError.isInstance(
            await thrown(() => gates.request("refund.issue", reviewerId)),
          ),
        ).toBe(true);
      }
      expect(await statusOf(request.requestId)).toBe("pending");
      const selfApproval: [name: string, reviewerId: string, relation: "agent" | "operator"][] = [
        ["a hyphen (U+2010)", "billing\u2010agent", "agent"],
        ["a non-breaking hyphen (U+2011)", "billing\u2011agent", "agent"],
        ["a minus sign (U+2212)", "billing\u2212agent", "agent"],
        ["a Cyrillic a", "billing-\u0430gent", "agent"],
        ["a Cyrillic i", "b\u0456lling-agent", "agent"],
        ["a Cyrillic o in the operator's id", "alice@c\u043empany.com", "operator"],
        ["a Greek omicron in the operator's id", "alice@c\u03bfmpany.com", "operator"],
        ["a Cyrillic a in the operator's id", "\u0430lice@company.com", "operator"],
        ["a Cherokee A in the operator's id", "\u13aalice@company.com", "operator"],
        ["a Greek capital beta", "\u0392illing-agent", "agent"],
        ["Cyrillic capitals", "\u0412ILLING-\u0410GENT", "agent"],
        ["a Greek capital iota for the I", "B\u0399LLING-AGENT", "agent"],
        [
          "full-width letters",
          "\uff42\uff49\uff4c\uff4c\uff49\uff4e\uff47-\uff41\uff47\uff45\uff4e\uff54",
          "agent",
        ],
        ["mixed case", "Billing-Agent", "agent"],
        ["upper case", "BILLING-AGENT", "agent"],
        ["the digit one for an l", "bi11ing-agent", "agent"],
        ["a combining acute accent", "billing-agent\u0301", "agent"],
        ["a combining dot above an i", "bi\u0307lling-agent", "agent"],
        ["a combining stroke overlay", "billing-a\u0335gent", "agent"],
        ["stacked combining marks", "b\u0323\u0307illing-agent", "agent"],
      ];
      for (const [name, reviewerId, relation] of selfApproval) {
        const error = await thrown(() => gates.grant(request.token, { reviewerId }));
        if (!SelfApprovalError.isInstance(error)) throw new Error(`${name}: ${String(error)}`);
        expect(error.relation).toBe(relation);
      }
      // ASCII spaces around the id: refused on input (core's id rule), before any comparison.
      const padded = await thrown(() =>
        gates.grant(request.token, { reviewerId: "  billing-agent " }),
      );
      if (!InvalidGatesInputError.isInstance(padded)) throw padded;
      expect(padded.field).toBe("options.reviewerId");
      expect(await statusOf(request.requestId)).toBe("pending");
      // Genuinely different reviewers are still allowed.
      for (const reviewerId of [
        "bob@company.com",
        "billing-agent-2",
        "billing.agent",
        "billingagent",
        "billing agent",
        "alice@company.org",
        "aline@company.com",
        "José García",
      ]) {
        const other = await open();
        await gates.grant(other.token, { reviewerId });
        expect(await statusOf(other.requestId)).toBe("granted");
      }
    },
  );

  it.skipIf(!engine.available)(
    "the operator bound at request time may not approve after the agent re-heartbeats with another operator; nor may the new one",
    async () => {
      const bindings: Record<string, string> = { "deploy-agent": "alice@company.com" };
      const operators: OperatorDirectory = {
        async operatorOf(agentId) {
          return bindings[agentId] ?? null;
        },
      };
      const gates = h.another({ operators });
      const request = await gates.request("deploy.production", "deploy-agent");
      bindings["deploy-agent"] = "mallory@company.com";
      for (const reviewerId of ["alice@company.com", "ALICE@company.com", "mallory@company.com"]) {
        const error = await thrown(() => gates.grant(request.token, { reviewerId }));
        expect(SelfApprovalError.isInstance(error)).toBe(true);
        expect((error as SelfApprovalError).relation).toBe("operator");
      }
      expect(await statusOf(request.requestId)).toBe("pending");
      await gates.grant(request.token, { reviewerId: "bob@company.com" });
      expect(await statusOf(request.requestId)).toBe("granted");
    },
  );

  it.skipIf(!engine.available)(
    "when the operator could not be looked up at request time, the request cannot be granted (it can be denied)",
    async () => {
      let failing = true;
      const operators: OperatorDirectory = {
        async operatorOf() {
          if (failing) throw new Error("presence database unreachable");
          return null;
        },
      };
      const gates = h.another({ operators });
      const request = await gates.request("deploy.production", "deploy-agent");
      expect(request.stored).toBe(true);
      failing = false;
      const error = await thrown(() =>
        gates.grant(request.token, { reviewerId: "bob@company.com" }),
      );
      expect(SelfApprovalUnverifiableError.isInstance(error)).toBe(true);
      expect((error as SelfApprovalUnverifiableError).atRequest).toBe(true);
      expect(await statusOf(request.requestId)).toBe("pending");
      await gates.deny(request.token, { reviewerId: "bob@company.com", reason: "unverifiable" });
      expect(await statusOf(request.requestId)).toBe("denied");
    },
  );

  // -------------------------------------------------------------------------------------
  // 4 and 5. Claims: close() waits, the audit write is bounded, stale claims are recovered,
  // and a loser is told `in_progress`, not `already_used`, while the winner is unrecorded.

  it.skipIf(!engine.available)(
    "close() waits for a decision in flight, which is then published, and refuses new ones",
    async () => {
      const audit = heldSink("approval.granted");
      const reviewer = h.another({ audit });
      const request = await open();
      const other = await open();
      const granting = reviewer.grant(request.token, { reviewerId: "bob" });
      await eventually(async () => (await statusOf(request.requestId)) === "resolving");
      let closed = false;
      const closing = reviewer.close().then(() => {
        closed = true;
      });
      await sleep(50);
      expect(closed).toBe(false);
      audit.gate.resolve();
      await closing;
      expect(await statusOf(request.requestId)).toBe("granted");
      await granting;
      const error = await thrown(() => reviewer.grant(other.token, { reviewerId: "bob" }));
      expect(ApprovalStoreError.isInstance(error)).toBe(true);
      expect(await statusOf(other.requestId)).toBe("pending");
    },
    15_000,
  );

  it.skipIf(!engine.available)(
    "an audit write that hangs is abandoned after auditTimeoutMs: the claim is released and recorded, and close() is bounded",
    async () => {
      let hang = true;
      let hangStarted: () => void = () => undefined;
      const events: AuditEventInput[] = [];
      const audit: AuditSink = {
        log(event) {
          if (hang && event.kind === "approval.granted") {
            hangStarted();
            return new Promise(() => undefined);
          }
          events.push(event);
          return Promise.resolve({ eventId: `e${events.length}`, isPlaceholder: false });
        },
      };
      const reviewer = h.another({ audit, gates: { auditTimeoutMs: 50 } });
      const request = await reviewer.request("deploy.production", "deploy-agent");
      const error = await thrown(() => reviewer.grant(request.token, { reviewerId: "bob" }));
      expect(ApprovalNotRecordedError.isInstance(error)).toBe(true);
      expect((error as Error).message).toContain("50 ms");
      expect(await h.gates.getRequest(request.requestId)).toMatchObject({
        status: "pending",
        reviewerId: null,
      });
      expect(events.at(-1)).toMatchObject({
        kind: "approval.released",
        metadata: {
          requestId: request.requestId,
          decision: "granted",
          reviewerId: "bob",
          resolvedAt: "2026-01-01T00:00:00.000Z",
          cause: "audit_timeout",
        },
      });
      // close() does not wait forever for a grant whose audit write hangs.
      const stuck = await reviewer.request("deploy.production", "deploy-agent");
      // Close while the grant's audit write hangs — its claim is held ("resolving") from before
      // that write until the timeout — rather than polling for a state that lasts only 50 ms.
      const hanging = new Promise<void>((resolve) => {
        hangStarted = resolve;
      });
      const granting = thrown(() => reviewer.grant(stuck.token, { reviewerId: "bob" }));
      await hanging;
      await reviewer.close();
      expect(ApprovalNotRecordedError.isInstance(await granting)).toBe(true);
      expect(await statusOf(stuck.requestId)).toBe("pending");
      hang = false;
      await h.another({ audit }).grant(request.token, { reviewerId: "bob" });
      expect(await statusOf(request.requestId)).toBe("granted");
    },
    15_000,
  );

  it.skipIf(!engine.available)(
    "a claim abandoned by a dead process is recovered after staleClaimMs, by grant, waitFor and expirePending",
    async () => {
      const a = await open();
      const b = await open();
      const c = await open();
      const d = await open({ expiresInMs: 30_000 });
      for (const request of [a, b, c, d]) await claimAndDie(request.requestId);
      // A fresh claim is someone's decision in progress: left alone.
      expect((await tokenRefusal(() => h.gates.grant(a.token, { reviewerId: "bob" }))).reason).toBe(
        "in_progress",
      );
      expect(await h.gates.expirePending()).toEqual([]);
      expect(await h.gates.listPending()).toEqual([]);
      h.clock.advance(60_000);
      // Stale claims are shown to reviewers again.
      expect((await h.gates.listPending()).map((entry) => entry.requestId).sort()).toEqual(
        [a.requestId, b.requestId, c.requestId].sort(),
      );
      // grant recovers it and decides.
      await h.gates.grant(a.token, { reviewerId: "bob" });
      expect(await h.gates.getRequest(a.requestId)).toMatchObject({
        status: "granted",
        reviewerId: "bob",
      });
      // waitFor recovers it (never deciding it) and keeps waiting.
      const waited = await thrown(() => h.gates.waitFor(c.requestId, { timeoutMs: 0 }));
      expect(ApprovalTimeout.isInstance(waited)).toBe(true);
      expect((waited as ApprovalTimeout).expired).toBe(false);
      expect(await statusOf(c.requestId)).toBe("pending");
      // expirePending recovers the rest: back to pending, or expired when past expiry.
      expect(await h.gates.expirePending()).toEqual([d.requestId]);
      expect(await statusOf(b.requestId)).toBe("pending");
      expect(await statusOf(d.requestId)).toBe("expired");
      expect(
        released()
          .map((metadata) => [metadata.requestId, metadata.cause, metadata.reviewerId])
          .sort(),
      ).toEqual(
        [a, b, c, d]
          .map((request) => [request.requestId, "stale_claim", "ghost@company.com"])
          .sort(),
      );
      await h.gates.deny(b.token, { reviewerId: "bob", reason: "no" });
      await h.gates.grant(c.token, { reviewerId: "bob" });
    },
  );

  it.skipIf(!engine.available)(
    "stale claims are released once when many processes recover them at once",
    async () => {
      const requests = await Promise.all(Array.from({ length: 8 }, () => open()));
      for (const request of requests) await claimAndDie(request.requestId);
      h.clock.advance(60_000);
      const modules = [h.gates, h.another(), h.another(), h.another()];
      await Promise.all(modules.map((gates) => gates.expirePending()));
      expect(released()).toHaveLength(8);
      for (const request of requests) expect(await statusOf(request.requestId)).toBe("pending");
    },
  );

  it.skipIf(!engine.available)(
    "a slow process whose claim was recovered cannot publish afterwards, nor publish another reviewer's claim",
    async () => {
      const request = await open();
      const slowSink = heldSink("approval.granted");
      const slow = h.another({ audit: slowSink });
      const slowGrant = thrown(() => slow.grant(request.token, { reviewerId: "bob" }));
      await eventually(async () => (await statusOf(request.requestId)) === "resolving");
      // The slow process stalls past staleClaimMs; carol recovers its claim and claims it.
      h.clock.advance(60_000);
      const carolSink = heldSink("approval.granted");
      const carol = h.another({ audit: carolSink });
      const carolGrant = thrown(() => carol.grant(request.token, { reviewerId: "carol" }));
      await eventually(
        async () => (await h.gates.getRequest(request.requestId))?.reviewerId === "carol",
      );
      // The slow process wakes up: its publish must not touch carol's claim.
      slowSink.gate.resolve();
      const slowError = await slowGrant;
      expect(ApprovalStoreError.isInstance(slowError)).toBe(true);
      expect((slowError as ApprovalStoreError).operation).toBe("publish");
      expect(await h.gates.getRequest(request.requestId)).toMatchObject({
        status: "resolving",
        reviewerId: "carol",
      });
      // Carol's audit write fails: her claim is released, not left published.
      carolSink.gate.reject(new Error("audit database unreachable"));
      expect(ApprovalNotRecordedError.isInstance(await carolGrant)).toBe(true);
      expect(await statusOf(request.requestId)).toBe("pending");
      // The evidence: bob's grant event was written, and a release with the same resolvedAt
      // says that it did not take effect.
      const bobEvent = slowSink.events.find((event) => event.kind === "approval.granted");
      const releases = carolSink.events
        .filter((event) => event.kind === "approval.released")
        .map((event) => event.metadata ?? {});
      expect(releases.map((metadata) => [metadata.reviewerId, metadata.cause])).toEqual([
        ["bob", "stale_claim"],
        ["carol", "audit_failed"],
      ]);
      const stale = releases.find((metadata) => metadata.cause === "stale_claim");
      expect(stale).toMatchObject({
        reviewerId: "bob",
        resolvedAt: bobEvent?.metadata?.resolvedAt,
      });
      await h.gates.grant(request.token, { reviewerId: "dave" });
      expect(await statusOf(request.requestId)).toBe("granted");
    },
    15_000,
  );

  it.skipIf(!engine.available)(
    "a loser is told in_progress while the winner's audit write is pending, and can decide once the winner's claim is released",
    async () => {
      const request = await open();
      const winnerSink = heldSink("approval.granted");
      const winner = h.another({ audit: winnerSink });
      const granting = thrown(() => winner.grant(request.token, { reviewerId: "bob" }));
      await eventually(async () => (await statusOf(request.requestId)) === "resolving");
      const loser = await tokenRefusal(() =>
        h.gates.deny(request.token, { reviewerId: "carol", reason: "no" }),
      );
      expect(loser.reason).toBe("in_progress");
      expect(loser.recoveryHint).toContain("again");
      expect(h.audit.events.at(-1)).toMatchObject({
        kind: "approval.refused",
        metadata: { reason: "in_progress", attempt: "deny" },
      });
      winnerSink.gate.reject(new Error("audit database unreachable"));
      expect(ApprovalNotRecordedError.isInstance(await granting)).toBe(true);
      await h.gates.deny(request.token, { reviewerId: "carol", reason: "no" });
      expect(await statusOf(request.requestId)).toBe("denied");
    },
    15_000,
  );

  it.skipIf(!engine.available)(
    "a claim lost to a claim that was then released is reported in_progress, not expired",
    async () => {
      const request = await open();
      const winnerSink = heldSink("approval.granted");
      const winner = h.another({ audit: winnerSink });
      let granting: Promise<unknown> | null = null;
      const isClaim = (text: string) => /^\s*update\b/i.test(text) && text.includes("token_digest");
      const loserStore = hookedStore(h.store, {
        async before(text) {
          if (!isClaim(text) || granting) return;
          // Between the loser's read and its claim, the winner claims…
          granting = thrown(() => winner.grant(request.token, { reviewerId: "bob" }));
          await eventually(async () => (await statusOf(request.requestId)) === "resolving");
        },
        async after(text) {
          if (!isClaim(text)) return;
          // …and after the loser's claim failed, the winner's claim is released.
          winnerSink.gate.reject(new Error("audit database unreachable"));
          await granting;
        },
      });
      const loser = h.another({ store: loserStore });
      const error = await tokenRefusal(() =>
        loser.deny(request.token, { reviewerId: "carol", reason: "no" }),
      );
      expect(error.reason).toBe("in_progress");
      expect(await statusOf(request.requestId)).toBe("pending");
      await h.gates.deny(request.token, { reviewerId: "carol", reason: "no" });
    },
    15_000,
  );

  // -------------------------------------------------------------------------------------
  // 6. A stored payload that does not match its action hash is flagged, not shown.

  it.skipIf(!engine.available)(
    "listPending and getRequest withhold a payload that was changed in the database",
    async () => {
      const honest = await h.gates.request("refund.issue", "billing-agent", {
        payload: { amountUsd: 12_000 },
      });
      const edited = await h.gates.request("refund.issue", "billing-agent", {
        payload: { amountUsd: 12_000 },
      });
      const editPayload = () =>
        h.store.query(
          sql`update gov_gates.requests set payload = '{"amountUsd":12}'::jsonb where request_id = ${edited.requestId}::uuid`,
        );
      // The trigger refuses it; a table owner drops the trigger first.
      expect(String(((await thrown(editPayload)) as Error).message)).toContain("payload");
      await h.store.query(sql`drop trigger requests_guard on gov_gates.requests`);
      await editPayload();
      const listed = await h.gates.listPending();
      expect(listed.find((entry) => entry.requestId === honest.requestId)).toMatchObject({
        payload: { amountUsd: 12_000 },
        payloadIntact: true,
      });
      expect(listed.find((entry) => entry.requestId === edited.requestId)).toMatchObject({
        payload: null,
        payloadIntact: false,
      });
      expect(await h.gates.getRequest(edited.requestId)).toMatchObject({
        payload: null,
        payloadIntact: false,
      });
      expect(
        h.logger.lines.some(
          (line) => line.level === "error" && line.fields.includes(edited.requestId),
        ),
      ).toBe(true);
      // The reviewer who was shown 12 and says so is refused; the action hash still rules.
      expect(
        (
          await tokenRefusal(() =>
            h.gates.grant(edited.token, { reviewerId: "bob", payload: { amountUsd: 12 } }),
          )
        ).reason,
      ).toBe("action_hash_mismatch");
    },
  );

  it.skipIf(!engine.available)(
    "an honest payload is intact after its round trip through jsonb, whatever its numbers and strings",
    async () => {
      const payload = {
        big: 1e21,
        tiny: 5e-324,
        tenth: 0.1,
        negativeZero: -0,
        maxSafe: 2 ** 53 - 1,
        beyondSafe: 2 ** 60,
        text: 'quote " backslash \\ line\u2028separator \u00e9 \ud83d\ude80',
        "\u00e9t\u00e9": [true, null, { z: 1, a: [] }],
        "10": "numeric-looking key",
        "": "empty key",
      };
      const request = await h.gates.request("x", "a", { payload });
      expect(await h.gates.getRequest(request.requestId)).toMatchObject({ payloadIntact: true });
      const [listed] = await h.gates.listPending();
      expect(listed?.payloadIntact).toBe(true);
      expect(canonicalJson(listed?.payload)).toBe(canonicalJson(payload));
      await h.gates.grant(request.token, { reviewerId: "bob", payload: listed?.payload });
    },
  );

  // -------------------------------------------------------------------------------------
  // 7. Execution cannot be undone in the table; a decision verifies under its request's key.

  it.skipIf(!engine.available)(
    "executed_at cannot be reset, and a request cannot be inserted already decided",
    async () => {
      const tokens = new Map<string, string>();
      let runs = 0;
      const later = h.gates.requireApproval(
        {
          kind: "deploy.production",
          agentId: "deploy-agent",
          blocking: false,
          onRequest: (request) => {
            tokens.set(request.requestId, request.token);
          },
        },
        async () => {
          runs++;
        },
      );
      const requestId = ((await thrown(() => later())) as ApprovalPending).requestId;
      await h.gates.grant(tokens.get(requestId) as string, { reviewerId: "bob" });
      await later.resume(requestId);
      const reset = await thrown(() =>
        h.store.query(
          sql`update gov_gates.requests set executed_at = null where request_id = ${requestId}::uuid`,
        ),
      );
      expect(String((reset as Error).message)).toContain("executed");
      expect((await tokenRefusal(() => later.resume(requestId))).reason).toBe("already_executed");
      expect(runs).toBe(1);
      // Deleted and re-inserted as it was: refused too.
      const copy = await thrown(() =>
        h.store.query(sql`
          with gone as (delete from gov_gates.requests where request_id = ${requestId}::uuid returning *)
          insert into gov_gates.requests select * from gone`),
      );
      expect(copy).toBeInstanceOf(Error);
      const granted = await h.gates.getRequest(requestId);
      expect(granted?.executedAt).not.toBeNull();
    },
  );

  it.skipIf(!engine.available)(
    "a decision signed by another key of the keyring than the request's is refused",
    async () => {
      // SECRET_B is a retired key still in the keyring (historical): whoever holds it must
      // not be able to approve requests issued under SECRET_A by writing a row.
      const gates = h.another({ keyring: keyringOf(SECRET_A, SECRET_B) });
      const request = await gates.request("deploy.production", "deploy-agent", {
        payload: PAYLOAD,
      });
      const retired = new ChainKey(SECRET_B);
      const resolvedAt = "2026-01-01T00:00:00.000Z";
      const mac = retired.hmacHex(
        canonicalJson({
          type: "gov.gates.decision",
          v: 1,
          requestId: request.requestId,
          kind: "deploy.production",
          agentId: "deploy-agent",
          actionHash: request.actionHash,
          decision: "granted",
          reviewerId: "mallory",
          reason: null,
          resolvedAt,
        }),
      );
      // A table owner (who can drop the guard trigger) writes the forged decision.
      await h.store.query(sql`drop trigger requests_guard on gov_gates.requests`);
      await h.store.query(sql`
        update gov_gates.requests set status = 'granted', reviewer_id = 'mallory',
          resolved_at = ${resolvedAt}::timestamptz, decision_key_id = ${retired.id}, decision_mac = ${mac}
        where request_id = ${request.requestId}::uuid`);
      for (const run of [
        () => gates.waitFor(request.requestId, { timeoutMs: 0 }),
        () => gates.verifyAction(request.requestId, PAYLOAD),
      ]) {
        const error = await thrown(run);
        expect(ApprovalIntegrityError.isInstance(error)).toBe(true);
      }
      // A genuine grant after a rotation still verifies everywhere the request's key is held.
      const before = await h.gates.request("deploy.production", "deploy-agent");
      const rotated = h.another({ keyring: keyringOf(SECRET_B, SECRET_A) });
      await rotated.grant(before.token, { reviewerId: "bob" });
      expect(await h.gates.waitFor(before.requestId, { timeoutMs: 0 })).toBe(true);
      expect(await rotated.waitFor(before.requestId, { timeoutMs: 0 })).toBe(true);
    },
  );

  // -------------------------------------------------------------------------------------
  // 8. Strings Postgres cannot store are refused at the boundary, naming the path.

  it.skipIf(!engine.available)(
    "a payload with U+0000 or a lone surrogate is refused as bad input, not reported as a store failure",
    async () => {
      const cases: [payload: unknown, path: string][] = [
        [{ note: "a\u0000b" }, "payload.note"],
        [{ steps: [{ memo: "x\ud800y" }] }, "payload.steps[0].memo"],
        [{ "key\u0000": 1 }, "payload"],
        [["\udc00"], "payload[0]"],
      ];
      for (const [payload, path] of cases) {
        const error = await inputError(() =>
          h.gates.request("deploy.production", "deploy-agent", { payload }),
        );
        expect(error.field).toBe("options.payload");
        expect(error.message).toContain(path);
      }
      expect(await h.gates.listPending()).toEqual([]);
      expect(h.audit.events).toEqual([]);
      const request = await open();
      expect(
        (
          await inputError(() =>
            h.gates.grant(request.token, { reviewerId: "bob", payload: { pr: "\u0000" } }),
          )
        ).field,
      ).toBe("options.payload");
      expect(
        (await inputError(() => h.gates.verifyAction(request.requestId, ["\ud83d"]))).field,
      ).toBe("payload");
    },
  );
});

describe("the action hash is SHA-256 of the RFC 8785 payload", () => {
  it("is unchanged", async () => {
    const h = await gatesHarness(testEngines()[0] as TestEngine);
    try {
      const request = await h.gates.request("x", "a", { payload: { b: [1, 2], a: "é" } });
      expect(request.actionHash).toBe(
        createHash("sha256").update('{"a":"é","b":[1,2]}', "utf8").digest("hex"),
      );
    } finally {
      await h.close();
    }
  });
});
