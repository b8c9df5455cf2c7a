import { systemClock } from "@gov/core";
import { createTestStore, type TestStore, testEngines } from "@gov/core/testing";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { capturingLogger, keyringOf, recordingAuditSink, SECRET_A } from "./__fixtures__";
import { type ChildLine, type GatesChild, spawnGatesChild } from "./__fixtures__/child-process";
import { gatesMigrations } from "./definition";
import { GatesModule } from "./module";

const postgres = testEngines().find((engine) => engine.name === "postgres");
const ROUNDS = 10;

/** The next line from `child` that answers command `id` (other lines are kept in order). */
async function answer(child: GatesChild, id: string): Promise<ChildLine> {
  for (;;) {
    const line = await child.next();
    if (line.id === id && line.ok !== undefined) return line;
  }
}

describe("approvals across OS processes (real Postgres)", () => {
  let store: TestStore;
  let gates: GatesModule;
  let audit: ReturnType<typeof recordingAuditSink>;
  const children: GatesChild[] = [];

  beforeEach(async () => {
    if (!postgres?.available) return;
    store = await createTestStore(postgres, { migrations: [gatesMigrations] });
    audit = recordingAuditSink();
    gates = new GatesModule({
      store,
      keyring: keyringOf(SECRET_A),
      clock: systemClock,
      logger: capturingLogger(),
      audit,
    });
    await gates.start();
  });

  afterEach(async () => {
    for (const child of children.splice(0)) child.kill();
    await gates?.close();
    await store?.close();
  });

  async function start(): Promise<GatesChild> {
    const child = spawnGatesChild(store.connectionString as string, SECRET_A);
    children.push(child);
    expect(await child.next()).toEqual({ event: "ready" });
    return child;
  }

  it.skipIf(!postgres?.available)(
    `a grant and a deny of one token from two processes at the same instant: exactly one wins (${ROUNDS} rounds)`,
    async () => {
      const [granter, denier] = await Promise.all([start(), start()]);
      if (!granter || !denier) throw new Error("unreachable");
      const winners: string[] = [];
      for (let round = 0; round < ROUNDS; round++) {
        const request = await gates.request("deploy.production", "deploy-agent", {
          payload: { round },
        });
        const at = Date.now() + 150;
        granter.send({
          id: `g${round}`,
          op: "grant",
          at,
          token: request.token,
          reviewerId: "alice",
        });
        denier.send({
          id: `d${round}`,
          op: "deny",
          at,
          token: request.token,
          reviewerId: "bob",
          reason: "no",
        });
        const [granted, denied] = await Promise.all([
          answer(granter, `g${round}`),
          answer(denier, `d${round}`),
        ]);
        const outcomes = [granted, denied];
        expect(outcomes.filter((outcome) => outcome.ok)).toHaveLength(1);
        const loser = outcomes.find((outcome) => !outcome.ok);
        // The loser is told the request is decided (already_used), or — when it looked while
        // the winner's decision was still being recorded — that it is being decided.
        expect(loser).toMatchObject({
          ok: false,
          name: "ApprovalTokenError",
          code: "APPROVAL_TOKEN_INVALID",
        });
        expect(["already_used", "in_progress"]).toContain(loser?.reason);
        const winner = granted.ok ? "granted" : "denied";
        winners.push(winner);
        const stored = await gates.getRequest(request.requestId);
        expect(stored?.status).toBe(winner);
        expect(stored?.reviewerId).toBe(winner === "granted" ? "alice" : "bob");
      }
      expect(winners).toHaveLength(ROUNDS);
      await Promise.all([granter.exit(), denier.exit()]);
    },
    120_000,
  );

  it.skipIf(!postgres?.available)(
    "waitFor in another process resolves on a grant here, and throws ApprovalDenied on a denial",
    async () => {
      const agent = await start();
      for (const decision of ["grant", "deny"] as const) {
        const request = await gates.request("deploy.production", "deploy-agent", {
          payload: { decision },
        });
        agent.send({ id: decision, op: "wait", requestId: request.requestId, timeout: 30_000 });
        expect(await agent.next()).toEqual({ id: decision, event: "waiting" });
        await new Promise((resolve) => setTimeout(resolve, 50));
        if (decision === "grant") await gates.grant(request.token, { reviewerId: "alice" });
        else await gates.deny(request.token, { reviewerId: "alice", reason: "change freeze" });
        expect(await answer(agent, decision)).toEqual(
          decision === "grant"
            ? { id: "grant", ok: true }
            : {
                id: "deny",
                ok: false,
                name: "ApprovalDenied",
                code: "APPROVAL_DENIED",
                reason: "change freeze",
              },
        );
      }
      expect(audit.events.map((event) => event.kind)).toEqual([
        "approval.requested",
        "approval.granted",
        "approval.requested",
        "approval.denied",
      ]);
      await agent.exit();
    },
    60_000,
  );

  it.skipIf(!postgres?.available)(
    "a grant made in another process wakes a waiter here",
    async () => {
      const reviewer = await start();
      const request = await gates.request("refund.issue", "billing-agent", {
        payload: { amountUsd: 120 },
      });
      const waiting = gates.waitFor(request.requestId, { timeoutMs: 30_000 });
      reviewer.send({ id: "g", op: "grant", token: request.token, reviewerId: "alice" });
      expect(await answer(reviewer, "g")).toEqual({ id: "g", ok: true });
      expect(await waiting).toBe(true);
      await reviewer.exit();
    },
    60_000,
  );
});
