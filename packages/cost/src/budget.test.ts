import { AgentHaltedError, sql } from "@gov/core";
import { type TestEngine, testEngines } from "@gov/core/testing";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type CostHarness, costHarness, rejection } from "./__fixtures__";
import {
  BudgetCheckFailedError,
  BudgetExceeded,
  COST_ERROR_CODES,
  UnknownModelError,
} from "./errors";
import type { CostOptions } from "./options";

const A = "billing-agent";
const S1 = "0a3c5b1e-0000-4000-8000-000000000001";
const S2 = "0a3c5b1e-0000-4000-8000-000000000002";

describe.each(testEngines())("budgets on $name", (engine: TestEngine) => {
  let h: CostHarness;
  const setup = async (options: CostOptions = {}) => {
    await h?.close();
    h = await costHarness(engine, options);
    return h;
  };

  beforeEach(async () => {
    if (engine.available) h = await costHarness(engine);
  });

  afterEach(async () => {
    await h?.close();
  });

  const exceeded = async (promise: Promise<unknown>) => {
    const error = await rejection(promise);
    expect(error).toBeInstanceOf(BudgetExceeded);
    expect((error as BudgetExceeded).code).toBe(COST_ERROR_CODES.BUDGET_EXCEEDED);
    return error as BudgetExceeded;
  };

  describe("each cap at its boundary (strict >)", () => {
    it.skipIf(!engine.available)(
      "perSessionUsd: spending exactly the cap passes, a femto-dollar more is refused",
      async () => {
        h.cost.register({ agentId: A, perSessionUsd: "0.01" });
        const first = await h.cost.checkOrRaise(A, S1, { projectedUsd: "0.006" });
        expect(first.reservationId).toMatch(/^[0-9a-f-]{36}$/);
        await h.cost.checkOrRaise(A, S1, { projectedUsd: "0.004" }); // 0.01 = cap: passes
        const error = await exceeded(
          h.cost.checkOrRaise(A, S1, { projectedUsd: "0.000000000000001" }),
        );
        expect(error).toMatchObject({
          cap: "perSessionUsd",
          unit: "usd",
          used: 0.01,
          committed: 0,
          projected: 1e-15,
          limit: 0.01,
          agentId: A,
          sessionId: S1,
        });
        expect(error.message).toContain("perSessionUsd");
        expect(h.audit.events).toEqual([
          {
            agentId: A,
            sessionId: S1,
            kind: "budget.exceeded",
            model: null,
            metadata: {
              cap: "perSessionUsd",
              unit: "usd",
              used: "0.01",
              committed: "0",
              projected: "0.000000000000001",
              limit: "0.01",
              day: "2026-11-23",
            },
          },
        ]);
        // Nothing was reserved by the refused call.
        expect(await h.sessionRow(A, S1)).toMatchObject({ reserved_usd: "0.010000000000000" });
      },
    );

    it.skipIf(!engine.available)(
      "perSessionTokens: exactly the cap passes, one more is refused",
      async () => {
        h.cost.register({ agentId: A, perSessionTokens: 1000 });
        await h.cost.checkOrRaise(A, S1, { maxTokens: 600 });
        await h.cost.checkOrRaise(A, S1, { inputTokens: 100, maxTokens: 300 });
        const error = await exceeded(h.cost.checkOrRaise(A, S1, { maxTokens: 1 }));
        expect(error).toMatchObject({
          cap: "perSessionTokens",
          unit: "tokens",
          used: 1000,
          projected: 1,
          limit: 1000,
        });
      },
    );

    it.skipIf(!engine.available)(
      "perAgentUsdDaily: counts every session of the agent that UTC day",
      async () => {
        h.cost.register({ agentId: A, perAgentUsdDaily: 1 });
        await h.cost.track(A, S1, { tokens: 10, usd: 0.7 });
        await h.cost.checkOrRaise(A, S2, { projectedUsd: 0.3 }); // 1.0 = cap
        const error = await exceeded(
          h.cost.checkOrRaise(A, "another-session", { projectedUsd: "0.000001" }),
        );
        expect(error).toMatchObject({ cap: "perAgentUsdDaily", used: 1, committed: 0.7, limit: 1 });
        // Another agent's spend is its own.
        h.cost.register({ agentId: "other-agent", perAgentUsdDaily: 1 });
        await expect(
          h.cost.checkOrRaise("other-agent", S1, { projectedUsd: 1 }),
        ).resolves.toMatchObject({ usd: 1 });
      },
    );

    it.skipIf(!engine.available)(
      "perAgentTokensDaily: across sessions, and a new UTC day starts from zero",
      async () => {
        h.cost.register({ agentId: A, perAgentTokensDaily: 500 });
        await h.cost.track(A, S1, { tokens: 300, usd: 0 });
        await h.cost.track(A, S2, { tokens: 200, usd: 0 });
        const error = await exceeded(h.cost.checkOrRaise(A, "s3", { maxTokens: 1 }));
        expect(error).toMatchObject({
          cap: "perAgentTokensDaily",
          used: 500,
          committed: 500,
          limit: 500,
        });
        h.clock.advance(11 * 3600_000 + 59 * 60_000 + 59_999); // 23:59:59.999 — still the same day
        await exceeded(h.cost.checkOrRaise(A, "s3", { maxTokens: 1 }));
        h.clock.advance(1); // 00:00:00.000 UTC on the next day
        const next = await h.cost.checkOrRaise(A, "s3", { maxTokens: 500 });
        expect(next.day).toBe("2026-11-24");
        expect((await h.cost.snapshot(A, "s3")).agentDailyTokensReserved).toBe(500);
      },
    );

    it.skipIf(!engine.available)(
      "perSessionSeconds: measured on the database's clock; the host clock does not move it",
      async () => {
        h.cost.register({ agentId: A, perSessionSeconds: 300 });
        await h.cost.checkOrRaise(A, S1); // the session starts now, on the database
        h.clock.advance(3_600_000); // an hour later on the host: the database says otherwise
        await h.cost.checkOrRaise(A, S1);
        await h.ageSession(A, S1, 290); // the session has run ~290 s
        await h.cost.checkOrRaise(A, S1);
        await h.ageSession(A, S1, 11); // ~301 s > 300
        const error = await exceeded(h.cost.checkOrRaise(A, S1));
        expect(error.cap).toBe("perSessionSeconds");
        expect(error.unit).toBe("seconds");
        expect(error.used).toBeGreaterThan(300);
        expect(error.used).toBeLessThan(330);
        expect(error.limit).toBe(300);
        expect(error.recoveryHint).toContain("new session");
        // Another session of the same agent has its own clock.
        await expect(h.cost.checkOrRaise(A, S2)).resolves.toMatchObject({ reservationId: null });
      },
    );

    it.skipIf(!engine.available)(
      "perSessionSeconds: 0 allows only the instant the session starts",
      async () => {
        h.cost.register({ agentId: A, perSessionSeconds: 0 });
        await h.cost.checkOrRaise(A, S1);
        await h.ageSession(A, S1, 1);
        expect((await exceeded(h.cost.checkOrRaise(A, S1))).cap).toBe("perSessionSeconds");
      },
    );
  });

  describe("reservations", () => {
    // Guards against: n completions projected as one (a tight budget overrun by n − 1 calls).
    it.skipIf(!engine.available)(
      "choices projects the output ceiling, or the default, once per completion",
      async () => {
        h.cost.register({ agentId: A, perSessionTokens: 100_000 });
        const given = { model: "gpt-4o", inputTokens: 100, maxTokens: 50, choices: 3 };
        expect(await h.cost.checkOrRaise(A, S1, given)).toMatchObject({ tokens: 250 });
        const defaulted = await costHarness(engine, { defaultMaxTokens: 40 });
        try {
          defaulted.cost.register({ agentId: A, perSessionTokens: 100_000 });
          const reservation = await defaulted.cost.checkOrRaise(A, S1, {
            model: "gpt-4o",
            choices: 4,
          });
          expect(reservation).toMatchObject({ tokens: 160 });
          for (const choices of [0, 1.5, 1_001, "2"])
            expect(
              await rejection(
                defaulted.cost.checkOrRaise(A, S1, { model: "gpt-4o", choices } as never),
              ),
            ).toMatchObject({ code: "INVALID_ARGUMENT", field: "choices" });
        } finally {
          await defaulted.close();
        }
      },
    );

    it.skipIf(!engine.available)(
      "a check projects model × (input + maxTokens) and reserves it; usage settles it and releases the rest",
      async () => {
        h.cost.register({ agentId: A, perSessionUsd: 1, perSessionTokens: 100_000 });
        // gpt-4o: $2.50 / M input, $10 / M output: 1,000 in + 1,000 out = $0.0125.
        const reservation = await h.cost.checkOrRaise(A, S1, {
          model: "gpt-4o",
          inputTokens: 1000,
          maxTokens: 1000,
        });
        expect(reservation).toMatchObject({
          tokens: 2000,
          usd: 0.0125,
          exactUsd: "0.0125",
          failOpen: false,
          unbudgeted: false,
        });
        expect(await h.sessionRow(A, S1)).toEqual({
          usd: "0.000000000000000",
          tokens: "0",
          reserved_usd: "0.012500000000000",
          reserved_tokens: "2000",
        });
        const receipt = await h.cost.trackUsage(A, S1, {
          model: "gpt-4o",
          usage: { prompt_tokens: 1000, completion_tokens: 100 },
          reservationId: reservation.reservationId,
        });
        expect(receipt).toMatchObject({
          recorded: true,
          queued: false,
          reservationId: reservation.reservationId,
          tokens: 1100,
          usd: 0.0035,
        });
        expect(await h.sessionRow(A, S1)).toEqual({
          usd: "0.003500000000000",
          tokens: "1100",
          reserved_usd: "0.000000000000000",
          reserved_tokens: "0",
        });
      },
    );

    it.skipIf(!engine.available)(
      "defaultMaxTokens is the projection when no maxTokens is declared",
      async () => {
        await setup({ defaultMaxTokens: 4096 });
        h.cost.register({ agentId: A, perSessionTokens: 10_000 });
        expect((await h.cost.checkOrRaise(A, S1)).tokens).toBe(4096);
        expect((await h.cost.checkOrRaise(A, S1, { maxTokens: 100 })).tokens).toBe(100);
        await h.cost.checkOrRaise(A, S1); // 8,292 reserved
        const error = await exceeded(h.cost.checkOrRaise(A, S1));
        expect(error).toMatchObject({ used: 8292, projected: 4096, limit: 10_000 });
      },
    );

    it.skipIf(!engine.available)(
      "reserved spend counts against the cap until settled: two checks cannot jointly pass",
      async () => {
        h.cost.register({ agentId: A, perSessionUsd: 0.02 });
        await h.cost.checkOrRaise(A, S1, { model: "gpt-4o", maxTokens: 1500 }); // $0.015
        const error = await exceeded(
          h.cost.checkOrRaise(A, S1, { model: "gpt-4o", maxTokens: 1000 }),
        );
        expect(error).toMatchObject({ used: 0.015, committed: 0, projected: 0.01 });
        // The first call used only 100 output tokens: settling frees the rest.
        await h.cost.trackUsage(A, S1, { model: "gpt-4o", outputTokens: 100 });
        await expect(
          h.cost.checkOrRaise(A, S1, { model: "gpt-4o", maxTokens: 1000 }),
        ).resolves.toMatchObject({ usd: 0.01 });
      },
    );

    it.skipIf(!engine.available)(
      "output is projected at the reasoning rate when it is the higher one",
      async () => {
        h.cost.prices.set("reasoner-x", {
          inputUsdPerMillion: 1,
          outputUsdPerMillion: 4,
          reasoningUsdPerMillion: 12,
        });
        h.cost.register({ agentId: A, perSessionUsd: 1 });
        const reservation = await h.cost.checkOrRaise(A, S1, {
          model: "reasoner-x",
          inputTokens: 1000,
          maxTokens: 1000,
        });
        expect(reservation.exactUsd).toBe("0.013"); // 1,000 × $1/M + 1,000 × $12/M
      },
    );

    it.skipIf(!engine.available)(
      "usage without a reservation id settles the session's oldest open reservation",
      async () => {
        h.cost.register({ agentId: A, perSessionTokens: 10_000 });
        const first = await h.cost.checkOrRaise(A, S1, { maxTokens: 1000 });
        const second = await h.cost.checkOrRaise(A, S1, { maxTokens: 2000 });
        const receipt = await h.cost.track(A, S1, { tokens: 10, usd: 0.001 });
        expect(receipt.reservationId).toBe(first.reservationId);
        expect(await h.sessionRow(A, S1)).toMatchObject({ tokens: "10", reserved_tokens: "2000" });
        expect((await h.cost.track(A, S1, { tokens: 20, usd: 0 })).reservationId).toBe(
          second.reservationId,
        );
        expect((await h.cost.track(A, S1, { tokens: 5, usd: 0 })).reservationId).toBeNull();
        expect(await h.sessionRow(A, S1)).toMatchObject({ tokens: "35", reserved_tokens: "0" });
      },
    );

    it.skipIf(!engine.available)(
      "a call that reserved nothing settles nothing: another call's reservation and spend are kept",
      async () => {
        h.cost.register({ agentId: A, perSessionUsd: 1 });
        const big = await h.cost.checkOrRaise(A, S1, { model: "gpt-4o", maxTokens: 10_000 }); // $0.10
        const small = await h.cost.checkOrRaise(A, S1, {}); // projects nothing
        expect(small.reservationId).toBeNull();
        const first = await h.cost.trackUsage(A, S1, {
          model: "gpt-4o",
          outputTokens: 100,
          reservationId: small.reservationId,
        });
        expect(first.reservationId).toBeNull();
        expect(await h.sessionRow(A, S1)).toMatchObject({ reserved_usd: "0.100000000000000" });
        const second = await h.cost.trackUsage(A, S1, {
          model: "gpt-4o",
          outputTokens: 10_000,
          reservationId: big.reservationId,
        });
        expect(second).toMatchObject({ recorded: true, reservationId: big.reservationId });
        expect(await h.sessionRow(A, S1)).toMatchObject({
          usd: "0.101000000000000",
          reserved_usd: "0.000000000000000",
        });
      },
    );

    it.skipIf(!engine.available)(
      "a named reservation that an unnamed usage settled first still records its own spend, once",
      async () => {
        h.cost.register({ agentId: A, perSessionUsd: 1 });
        const big = await h.cost.checkOrRaise(A, S1, { model: "gpt-4o", maxTokens: 10_000 });
        // Another call reports without naming any reservation: it settles the oldest (big's).
        const other = await h.cost.track(A, S1, { tokens: 1, usd: "0.001" });
        expect(other.reservationId).toBe(big.reservationId);
        const late = await h.cost.trackUsage(A, S1, {
          model: "gpt-4o",
          outputTokens: 10_000,
          reservationId: big.reservationId,
        });
        expect(late.recorded).toBe(true);
        expect(await h.sessionRow(A, S1)).toMatchObject({
          usd: "0.101000000000000",
          reserved_usd: "0.000000000000000",
        });
        const again = await h.cost.reconcile(A, S1, {
          reservationId: big.reservationId as string,
          model: "gpt-4o",
          outputTokens: 5,
          reason: "completed",
        });
        expect(again.recorded).toBe(false);
      },
    );

    it.skipIf(!engine.available)(
      "a capped agent checked with nothing projected is warned about, once",
      async () => {
        h.cost.register({ agentId: A, perSessionUsd: 1 });
        await h.cost.checkOrRaise(A, S1);
        await h.cost.checkOrRaise(A, S1);
        const warnings = h.logger.lines.filter((line) => line.message.includes("projected no USD"));
        expect(warnings).toHaveLength(1);
        expect(warnings[0]?.message).toContain("model and maxTokens");
      },
    );

    it.skipIf(!engine.available)(
      "release() frees a reservation whose call was never made",
      async () => {
        h.cost.register({ agentId: A, perSessionTokens: 1000 });
        const reservation = await h.cost.checkOrRaise(A, S1, { maxTokens: 1000 });
        await exceeded(h.cost.checkOrRaise(A, S1, { maxTokens: 1 }));
        expect(await h.cost.release(reservation.reservationId as string)).toBe(1);
        expect(await h.cost.release(reservation.reservationId as string)).toBe(0);
        await h.cost.checkOrRaise(A, S1, { maxTokens: 1000 });
        expect(await h.sessionRow(A, S1)).toMatchObject({ tokens: "0", reserved_tokens: "1000" });
      },
    );

    it.skipIf(!engine.available)(
      "a reservation whose usage never comes expires, is released and audit-logged",
      async () => {
        await setup({ reservationTtlSeconds: 1 });
        h.cost.register({ agentId: A, perSessionTokens: 1000 });
        const reservation = await h.cost.checkOrRaise(A, S1, { model: "gpt-4o", maxTokens: 1000 });
        expect(await h.cost.releaseExpired()).toBe(0);
        await h.store.query(
          sql`update gov_cost.reservations set expires_at = now() - interval '1 second'`,
        );
        expect(await h.cost.releaseExpired()).toBe(1);
        expect(await h.sessionRow(A, S1)).toMatchObject({
          reserved_tokens: "0",
          reserved_usd: "0.000000000000000",
        });
        expect(h.audit.events).toMatchObject([
          {
            agentId: A,
            sessionId: S1,
            kind: "budget.reservation_expired",
            model: "gpt-4o",
            metadata: { reservationId: reservation.reservationId, usd: "0.01", tokens: 1000 },
          },
        ]);
        // Its usage, reported late, is still recorded once (the spend happened).
        const late = await h.cost.reconcile(A, S1, {
          reservationId: reservation.reservationId as string,
          model: "gpt-4o",
          outputTokens: 10,
          reason: "completed",
        });
        expect(late.recorded).toBe(true);
        expect(await h.sessionRow(A, S1)).toMatchObject({ tokens: "10", reserved_tokens: "0" });
      },
    );
  });

  describe("reconcile", () => {
    it.skipIf(!engine.available)(
      "after a cancelled stream: 8 tokens per chunk received, the rest released; idempotent; never backwards",
      async () => {
        h.cost.register({ agentId: A, perSessionUsd: 1 });
        const reservation = await h.cost.checkOrRaise(A, S1, {
          model: "gpt-4o",
          inputTokens: 200,
          maxTokens: 4000,
        });
        expect(reservation.exactUsd).toBe("0.0405"); // 200 × 2.5/M + 4,000 × 10/M
        const options = {
          reservationId: reservation.reservationId as string,
          model: "gpt-4o",
          inputTokens: 200,
          chunks: 12,
          reason: "cancelled",
        };
        const first = await h.cost.reconcile(A, S1, options);
        // 200 × $2.50/M + 96 × $10/M = $0.0005 + $0.00096
        expect(first).toMatchObject({
          recorded: true,
          tokens: 296,
          exactUsd: "0.00146",
          reservationId: reservation.reservationId,
        });
        const after = await h.sessionRow(A, S1);
        expect(after).toEqual({
          usd: "0.001460000000000",
          tokens: "296",
          reserved_usd: "0.000000000000000",
          reserved_tokens: "0",
        });
        // A second reconcile (or a late final usage for the same reservation) changes nothing.
        expect((await h.cost.reconcile(A, S1, options)).recorded).toBe(false);
        expect(
          (
            await h.cost.reconcile(A, S1, {
              ...options,
              chunks: undefined,
              usage: { prompt_tokens: 1, completion_tokens: 1 },
              reason: "completed",
            })
          ).recorded,
        ).toBe(false);
        expect(
          (
            await h.cost.trackUsage(A, S1, {
              model: "gpt-4o",
              outputTokens: 5000,
              reservationId: reservation.reservationId,
            })
          ).recorded,
        ).toBe(false);
        expect(await h.sessionRow(A, S1)).toEqual(after);
        const rows = await h.store.query<{ kind: string; reason: string }>(
          sql`select kind, reason from gov_cost.usage`,
        );
        expect(rows).toEqual([{ kind: "reconcile", reason: "cancelled" }]);
      },
    );

    it.skipIf(!engine.available)(
      "with the final usage payload, the actual usage is recorded",
      async () => {
        h.cost.register({ agentId: A, perSessionUsd: 1 });
        const reservation = await h.cost.checkOrRaise(A, S1, {
          model: "claude-sonnet-4-6",
          maxTokens: 1000,
        });
        const receipt = await h.cost.reconcile(A, S1, {
          reservationId: reservation.reservationId as string,
          model: "claude-sonnet-4-6",
          usage: {
            input_tokens: 100,
            output_tokens: 50,
            cache_read_input_tokens: 1000,
            cache_creation_input_tokens: 0,
          },
          reason: "completed",
        });
        // 100 × $3/M + 1,000 × $0.30/M + 50 × $15/M
        expect(receipt).toMatchObject({ recorded: true, tokens: 1150, exactUsd: "0.00135" });
      },
    );

    it.skipIf(!engine.available)(
      "refuses a call with neither usage, counts nor chunks",
      async () => {
        const error = await rejection(
          h.cost.reconcile(A, S1, {
            reservationId: "0a3c5b1e-0000-4000-8000-00000000000f",
            model: "gpt-4o",
            reason: "error",
          }),
        );
        expect(error).toMatchObject({ code: "INVALID_ARGUMENT", field: "usage" });
      },
    );
  });

  describe("prices", () => {
    it.skipIf(!engine.available)(
      "cached and reasoning tokens are priced at their own rates (OpenAI), against hand-computed figures",
      async () => {
        const receipt = await h.cost.trackUsage(A, S1, {
          model: "gpt-4o-2024-08-06", // a snapshot: priced as gpt-4o
          usage: {
            prompt_tokens: 1000,
            completion_tokens: 500,
            prompt_tokens_details: { cached_tokens: 600 },
            completion_tokens_details: { reasoning_tokens: 200 },
          },
        });
        // 400 × $2.50/M + 600 × $1.25/M + 300 × $10/M + 200 × $10/M = 0.001 + 0.00075 + 0.003 + 0.002
        expect(receipt.exactUsd).toBe("0.00675");
        expect(receipt.tokens).toBe(1500);
        expect(receipt.breakdown).toMatchObject({ matched: "gpt-4o", match: "prefix" });
        expect(await h.cost.modelBreakdown(A)).toEqual({
          "gpt-4o-2024-08-06": { usd: 0.00675, tokens: 1500 },
        });
      },
    );

    it.skipIf(!engine.available)(
      "cache reads and writes at their own rates (Anthropic), against hand-computed figures",
      async () => {
        const receipt = await h.cost.trackUsage(A, S1, {
          model: "claude-sonnet-4-6",
          usage: {
            input_tokens: 1000,
            cache_creation_input_tokens: 2000,
            cache_read_input_tokens: 10_000,
            output_tokens: 500,
          },
        });
        // 1,000 × $3/M + 2,000 × $3.75/M + 10,000 × $0.30/M + 500 × $15/M
        expect(receipt.exactUsd).toBe("0.021");
        expect(receipt.tokens).toBe(13_500);
      },
    );

    it.skipIf(!engine.available)("prefix pricing never prices gpt-4o-mini as gpt-4o", async () => {
      const mini = await h.cost.trackUsage(A, S1, {
        model: "gpt-4o-mini-2024-07-18",
        inputTokens: 1_000_000,
      });
      expect(mini.exactUsd).toBe("0.15");
      expect(mini.breakdown?.matched).toBe("gpt-4o-mini");
    });

    it.skipIf(!engine.available)(
      "an unknown model is refused in strict mode, by trackUsage and by checkOrRaise, and nothing is tracked",
      async () => {
        h.cost.register({ agentId: A, perSessionUsd: 1 });
        const tracked = await rejection(
          h.cost.trackUsage(A, S1, { model: "gpt-9-turbo", inputTokens: 10 }),
        );
        expect(tracked).toBeInstanceOf(UnknownModelError);
        expect((tracked as UnknownModelError).model).toBe("gpt-9-turbo");
        const checked = await rejection(
          h.cost.checkOrRaise(A, S1, { model: "gpt-9-turbo", maxTokens: 10 }),
        );
        expect(checked).toBeInstanceOf(UnknownModelError);
        expect(await h.sessionRow(A, S1)).toBeUndefined();
        expect(await h.store.query(sql`select 1 from gov_cost.usage`)).toEqual([]);
      },
    );

    it.skipIf(!engine.available)(
      "an unknown model is priced at the fallback rate in lax mode",
      async () => {
        await setup({ strictUnknownModels: false, unknownModelFallbackUsdPerMillion: 20 });
        h.cost.register({ agentId: A, perSessionUsd: 1 });
        const reservation = await h.cost.checkOrRaise(A, S1, {
          model: "in-house-llm",
          maxTokens: 1000,
        });
        expect(reservation.exactUsd).toBe("0.02");
        const receipt = await h.cost.trackUsage(A, S1, {
          model: "in-house-llm",
          inputTokens: 500,
          outputTokens: 500,
        });
        expect(receipt).toMatchObject({ exactUsd: "0.02", recorded: true });
        expect(receipt.breakdown?.match).toBe("fallback");
      },
    );
  });

  describe("enforcement order and failure", () => {
    it.skipIf(!engine.available)(
      "the halt check comes first: a halted agent is refused before anything is read",
      async () => {
        h.cost.register({ agentId: A, perSessionUsd: 0 });
        h.halt.halted.add(A);
        const error = await rejection(
          h.cost.checkOrRaise(A, S1, { model: "gpt-9", maxTokens: 10 }),
        );
        expect(error).toBeInstanceOf(AgentHaltedError);
        expect(h.halt.calls).toEqual([{ agentId: A, context: { path: "cost.checkOrRaise" } }]);
        expect(h.audit.events).toEqual([]);
        expect(await h.sessionRow(A, S1)).toBeUndefined();
      },
    );

    it.skipIf(!engine.available)(
      "store failure: fail-closed denies with BudgetCheckFailedError and audit-logs budget.check_failed",
      async () => {
        h.cost.register({ agentId: A, perSessionUsd: 1 });
        h.setDown(true);
        const error = await rejection(h.cost.checkOrRaise(A, S1, { projectedUsd: 0.1 }));
        expect(error).toBeInstanceOf(BudgetCheckFailedError);
        expect((error as BudgetCheckFailedError).code).toBe("BUDGET_CHECK_FAILED");
        expect((error as BudgetCheckFailedError).recoveryHint).toContain("costFailOpen");
        expect(h.audit.events).toMatchObject([
          {
            agentId: A,
            sessionId: S1,
            kind: "budget.check_failed",
            metadata: { failOpen: false, decision: "denied", projectedUsd: "0.1" },
          },
        ]);
        expect(
          h.logger.lines.some((line) => line.level === "error" && line.message.includes("denied")),
        ).toBe(true);
        expect(h.cost.metrics()).toMatchObject({ checks: 1, checkFailures: 1, failOpenPasses: 0 });
      },
    );

    it.skipIf(!engine.available)(
      "store failure with failOpen: the call passes unchecked, logged and audit-logged the same way",
      async () => {
        await setup({ failOpen: true });
        h.cost.register({ agentId: A, perSessionUsd: 1 });
        h.setDown(true);
        const reservation = await h.cost.checkOrRaise(A, S1, { projectedUsd: 0.1 });
        expect(reservation).toMatchObject({ reservationId: null, failOpen: true });
        expect(h.audit.events).toMatchObject([
          { kind: "budget.check_failed", metadata: { failOpen: true, decision: "allowed" } },
        ]);
        expect(
          h.logger.lines.some(
            (line) => line.level === "error" && line.message.includes("costFailOpen"),
          ),
        ).toBe(true);
        // A breach is still a breach once the store is back.
        h.setDown(false);
        await exceeded(h.cost.checkOrRaise(A, S1, { projectedUsd: 1.5 }));
      },
    );

    it.skipIf(!engine.available)(
      "usage recorded while the store is down waits in memory and is written once it is back — nothing lost, nothing twice",
      async () => {
        h.cost.register({ agentId: A, perSessionTokens: 1000 });
        h.setDown(true);
        const queued = await h.cost.track(A, S1, { tokens: 100, usd: 0.01 });
        expect(queued).toMatchObject({ recorded: false, queued: true });
        await h.cost.trackUsage(A, S1, { model: "gpt-4o", inputTokens: 1000 });
        expect(h.cost.metrics()).toMatchObject({ usageQueued: 2, backlog: 2 });
        expect(
          h.logger.lines.some((line) => line.level === "warn" && line.message.includes("retried")),
        ).toBe(true);
        h.setDown(false);
        expect(await h.cost.flush()).toBe(0);
        expect(await h.sessionRow(A, S1)).toMatchObject({
          usd: "0.012500000000000",
          tokens: "1100",
        });
        expect(h.cost.metrics()).toMatchObject({ usageRecorded: 2, backlog: 0 });
      },
    );

    it.skipIf(!engine.available)(
      "an agent without a policy is not checked; a warning says so once",
      async () => {
        const reservation = await h.cost.checkOrRaise("free-agent", S1, { maxTokens: 100 });
        await h.cost.checkOrRaise("free-agent", S1);
        expect(reservation).toMatchObject({ reservationId: null, unbudgeted: true });
        expect(
          h.logger.lines.filter((line) => line.message.includes("no budget policy")),
        ).toHaveLength(1);
      },
    );
  });

  describe("snapshot and modelBreakdown", () => {
    it.skipIf(!engine.available)(
      "reports used, reserved, time and what remains under each cap",
      async () => {
        h.cost.register({
          agentId: A,
          perSessionUsd: 0.5,
          perSessionTokens: 10_000,
          perAgentUsdDaily: 10,
          perAgentTokensDaily: 100_000,
          perSessionSeconds: 300,
        });
        await h.cost.track(A, S1, { tokens: 1500, usd: "0.0075", model: "gpt-4o" });
        await h.cost.track(A, S2, { tokens: 500, usd: "0.5", model: "claude-sonnet-4-6" });
        await h.cost.checkOrRaise(A, S1, { maxTokens: 1000 });
        const snapshot = await h.cost.snapshot(A, S1);
        expect(snapshot).toMatchObject({
          agentId: A,
          sessionId: S1,
          day: "2026-11-23",
          sessionUsdUsed: 0.0075,
          sessionTokensUsed: 1500,
          sessionUsdReserved: 0,
          sessionTokensReserved: 1000,
          agentDailyUsdUsed: 0.5075,
          agentDailyTokensUsed: 2000,
          agentDailyTokensReserved: 1000,
          sessionUsdRemaining: 0.4925,
          sessionTokensRemaining: 7500,
          agentDailyUsdRemaining: 9.4925,
          agentDailyTokensRemaining: 97_000,
          degraded: false,
        });
        expect(snapshot.sessionSeconds).toBeGreaterThanOrEqual(0);
        expect(snapshot.sessionSecondsRemaining).toBeLessThanOrEqual(300);
        expect(await h.cost.modelBreakdown(A)).toEqual({
          "claude-sonnet-4-6": { usd: 0.5, tokens: 500 },
          "gpt-4o": { usd: 0.0075, tokens: 1500 },
        });
        expect(await h.cost.modelBreakdown("nobody")).toEqual({});
      },
    );

    it.skipIf(!engine.available)(
      "never throws for a store failure: zeros marked degraded, and {}",
      async () => {
        h.setDown(true);
        expect(await h.cost.snapshot(A, S1)).toMatchObject({
          sessionUsdUsed: 0,
          degraded: true,
          sessionSeconds: null,
        });
        expect(await h.cost.modelBreakdown(A)).toEqual({});
        expect(h.logger.lines.filter((line) => line.level === "error")).toHaveLength(2);
      },
    );
  });

  describe("bad input changes nothing", () => {
    it.skipIf(!engine.available)(
      "track refuses negative, fractional and malformed amounts",
      async () => {
        const cases: [unknown, string][] = [
          [{ tokens: -1, usd: 0 }, "tokens"],
          [{ tokens: 1.5, usd: 0 }, "tokens"],
          [{ tokens: 1, usd: -0.01 }, "usd"],
          [{ tokens: 1, usd: "abc" }, "usd"],
          [{ tokens: 1, usd: 0.1, reservationId: "not-a-uuid" }, "reservationId"],
          [{ tokens: 1, usd: 0.1, model: "bad model" }, "model"],
          [{ tokens: 1, usd: 0.1, reservation_id: "x" }, "options.reservation_id"],
          [{ tokens: 1, usd: 0.1, model: "gpt\ud800" }, "model"],
          [null, "options"],
        ];
        for (const [options, field] of cases) {
          const error = await rejection(h.cost.track(A, S1, options as never));
          expect(error, JSON.stringify(options)).toMatchObject({ code: "INVALID_ARGUMENT", field });
        }
        for (const [agentId, sessionId, field] of [
          ["", S1, "agentId"],
          [A, "", "sessionId"],
          [A, "x".repeat(257), "sessionId"],
          [A, "a\u0000b", "sessionId"],
          [A, "x\ud800", "sessionId"],
          [A, "agent:billing", "sessionId"],
          [A, "   ", "sessionId"],
          [42, S1, "agentId"],
        ] as const) {
          await expect(h.cost.checkOrRaise(agentId as string, sessionId)).rejects.toMatchObject({
            field,
          });
          await expect(h.cost.snapshot(agentId as string, sessionId)).rejects.toMatchObject({
            field,
          });
        }
        const checks: [unknown, string][] = [
          [{ maxTokens: 0 }, "maxTokens"],
          [{ maxTokens: 1.5 }, "maxTokens"],
          [{ inputTokens: -1 }, "inputTokens"],
          [{ projectedUsd: "1e-16" }, "projectedUsd"],
          [{ max_tokens: 10 }, "options.max_tokens"],
          ["gpt-4o", "options"],
        ];
        for (const [options, field] of checks) {
          await expect(h.cost.checkOrRaise(A, S1, options as never)).rejects.toMatchObject({
            code: "INVALID_ARGUMENT",
            field,
          });
        }
        const usages: [unknown, string][] = [
          [
            { model: "gpt-4o", prompt_tokens: 5000, completion_tokens: 9000 },
            "options.prompt_tokens",
          ],
          [{ model: "gpt-4o" }, "usage"],
          [{ model: "gpt-4o", usage: null }, "usage"],
        ];
        for (const [options, field] of usages) {
          await expect(h.cost.trackUsage(A, S1, options as never)).rejects.toMatchObject({
            code: "INVALID_ARGUMENT",
            field,
          });
        }
        const stream = { reservationId: S1, model: "gpt-4o", reason: "done", chunks: 1 };
        await expect(
          h.cost.reconcile(A, S1, {
            ...stream,
            reservationId: "0a3c5b1e-0000-4000-8000-00000000000a",
            reason: "done\u0007",
          }),
        ).rejects.toMatchObject({ field: "reason" });
        await expect(
          h.cost.reconcile(A, S1, { ...stream, extra: 1 } as never),
        ).rejects.toMatchObject({ field: "options.extra" });
        expect(
          await h.store.query(
            sql`select 1 from gov_cost.sessions union all select 1 from gov_cost.usage`,
          ),
        ).toEqual([]);
        expect(h.audit.events).toEqual([]);
      },
    );
  });
});
