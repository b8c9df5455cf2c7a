/**
 * A check refused while a usage record of the same agent is on its way waits for it and
 * checks again: a sequential agent's next check sees its last call's real usage, not the
 * worst case still reserved, and only a real breach is refused (and audited).
 */
import { gatedStore, type TestEngine, testEngines } from "@gov/core/testing";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type CostHarness, costHarness, rejection, testKeyring } from "./__fixtures__";
import { BudgetExceeded } from "./errors";
import { CostModule } from "./module";

const A = "billing-agent";
const S = "session-1";
const USAGE = { model: "gpt-4o", inputTokens: 100, outputTokens: 50 };
const WORST = { model: "gpt-4o", inputTokens: 100, maxTokens: 1000 };

describe.each(testEngines())(
  "checks refused while usage is settling on $name",
  (engine: TestEngine) => {
    let h: CostHarness;
    let cost: CostModule;
    let open: () => void;
    let held: () => number;

    beforeEach(async () => {
      if (!engine.available) return;
      h = await costHarness(engine);
      // The same database, but every usage record waits at the gate until it is opened.
      const gated = gatedStore(h.store, /record_usage/);
      open = gated.hold();
      held = gated.held;
      const store = gated.store;
      cost = new CostModule(
        {
          store,
          audit: h.audit,
          logger: h.logger,
          halt: h.halt,
          clock: h.clock,
          keyring: testKeyring,
        },
        { sweepIntervalMs: null, spoolDirectory: null },
      );
    });
    afterEach(async () => {
      if (!engine.available) return;
      open();
      await cost.close();
      await h.close();
    });

    const breaches = () => h.audit.events.filter((event) => event.kind === "budget.exceeded");

    // Guards against: a check refused on the worst case of a call whose usage is being recorded
    // (a spurious BudgetExceeded, audited as a breach that never happened).
    it.skipIf(!engine.available)(
      "waits for the usage record in flight and passes on the real usage, auditing no breach",
      async () => {
        cost.register({ agentId: A, perSessionTokens: 1_500 });
        const first = await cost.checkOrRaise(A, S, WORST); // 1,100 held
        const recorded = cost.trackUsage(A, S, { ...USAGE, reservationId: first.reservationId });
        let passed = false;
        const next = cost.checkOrRaise(A, S, WORST).then((reservation) => {
          passed = true;
          return reservation;
        });
        for (let turn = 0; turn < 20 && held() === 0; turn++)
          await new Promise((r) => setImmediate(r));
        await new Promise((r) => setTimeout(r, 50));
        expect(held()).toBe(1);
        expect(passed).toBe(false); // refused on 1,100 + 1,100, and waiting for the record
        open();
        expect((await next).reservationId).not.toBeNull();
        await recorded;
        expect(breaches()).toHaveLength(0);
        expect(await h.sessionRow(A, S)).toMatchObject({ tokens: "150", reserved_tokens: "1100" });
      },
    );

    // Guards against: waiting hides a real breach, or a check that passes waits for a record.
    it.skipIf(!engine.available)(
      "still refuses a real breach after waiting, and a check that passes does not wait",
      async () => {
        cost.register({ agentId: A, perSessionTokens: 2_300 });
        const first = await cost.checkOrRaise(A, S, WORST);
        void cost.trackUsage(A, S, { ...USAGE, reservationId: first.reservationId });
        // 1,100 held + 1,100 fits under 2,300 although the record is held at the gate
        await cost.checkOrRaise(A, S, WORST);
        expect(held()).toBe(1);
        const third = rejection(cost.checkOrRaise(A, S, WORST)); // 150 + 1,100 + 1,100 > 2,300
        await new Promise((r) => setTimeout(r, 50));
        expect(breaches()).toHaveLength(0); // not refused yet: waiting for the record
        open();
        const error = await third;
        expect(error).toBeInstanceOf(BudgetExceeded);
        expect(error).toMatchObject({ cap: "perSessionTokens", used: 1250 });
        expect(breaches()).toHaveLength(1);
      },
    );
  },
);
