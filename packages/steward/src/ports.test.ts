import {
  AgentHaltedError,
  ChainKey,
  type CognitiveTraceLike,
  type InterventionResultLike,
  InvalidArgumentError,
  Keyring,
  ManualClock,
  resolveGovernancePorts,
  type StewardEvaluateOptions,
  type StewardGuard,
  type StewardHook,
  type StewardIntervention,
  silentLogger,
} from "@gov/core";
import {
  createTestStore,
  recordingAuditSink,
  recordingHaltGuard,
  rejectionOf,
  type TestEngine,
  type TestStore,
  testEngines,
} from "@gov/core/testing";
import { afterEach, beforeEach, describe, expect, expectTypeOf, it } from "vitest";
import type { CognitiveTrace, Hook, InterventionResult, InterventionType } from "./models";
import { StewardModule, stewardMigrations } from "./module";
import type { EvaluateOptions } from "./options";
import { GovernanceSteward } from "./steward";

describe("the steward is core's StewardGuard", () => {
  it("fits the port's type: `pnpm typecheck` fails when either drifts", () => {
    // The assignments are the proof (the module, `sdk.steward`, and the steward itself); the
    // checks below make each method's variance strict where it can be (an interface method is
    // compared bivariantly): every call the port allows, the steward takes.
    const port: StewardGuard = StewardModule.prototype;
    const steward: StewardGuard = GovernanceSteward.prototype;
    expectTypeOf<StewardModule>().toExtend<StewardGuard>();
    expectTypeOf<GovernanceSteward>().toExtend<StewardGuard>();
    expectTypeOf<Parameters<StewardGuard["evaluate"]>>().toExtend<
      Parameters<StewardModule["evaluate"]>
    >();
    expectTypeOf<Parameters<StewardGuard["evaluate"]>>().toExtend<
      Parameters<GovernanceSteward["evaluate"]>
    >();
    expectTypeOf<CognitiveTraceLike>().toExtend<CognitiveTrace>();
    expectTypeOf<StewardEvaluateOptions>().toExtend<EvaluateOptions>();
    expectTypeOf<ReturnType<StewardModule["evaluate"]>>().toExtend<
      ReturnType<StewardGuard["evaluate"]>
    >();
    expectTypeOf<InterventionResult>().toExtend<InterventionResultLike>();
    // commit takes back what evaluate returned (typed by the port as InterventionResultLike,
    // by the steward as InterventionResult): the steward reads only `metadata.commitId`, which
    // the run-time test below shows for a result the port typed. The id itself is strict:
    expectTypeOf<string>().toExtend<Parameters<StewardModule["commit"]>[0]>();
    expectTypeOf<ReturnType<StewardModule["commit"]>>().toEqualTypeOf<
      ReturnType<StewardGuard["commit"]>
    >();
    // An intervention or hook the steward adds must be one a composer knows: they are equal.
    expectTypeOf<InterventionType>().toEqualTypeOf<StewardIntervention>();
    expectTypeOf<Hook>().toEqualTypeOf<StewardHook>();
    // And at run time: core's resolver finds every method the port needs on both.
    expect(resolveGovernancePorts({ steward: port }).steward).toBe(StewardModule.prototype);
    expect(resolveGovernancePorts({ steward }).steward).toBe(GovernanceSteward.prototype);
  });
});

/** One blueprint: a daily limit that escalates (`pay`), and a tripwire per decision (`act`). */
const BLUEPRINT = {
  id: "ports@1",
  version: "1",
  tripwires: [
    {
      id: "daily",
      when: { tool: "pay" },
      condition: "state.daily_total + args.amount > 1000",
      requiresState: true,
      onFail: { decision: "ESCALATE", reason: "Daily total above 1,000." },
    },
    ...(["BLOCK", "HALT"] as const).map((decision) => ({
      id: `on-${decision.toLowerCase()}`,
      when: { tool: "act" },
      condition: `"${decision}" in args.kinds`,
      onFail: { decision, reason: `${decision} tripwire` },
    })),
  ],
  trustDebt: { enabled: false },
};

describe.each(testEngines())(
  "StewardModule through the StewardGuard port on $name",
  (engine: TestEngine) => {
    let store: TestStore;
    let module: StewardModule;
    let guard: StewardGuard;
    let halt: ReturnType<typeof recordingHaltGuard>;

    beforeEach(async () => {
      if (!engine.available) return;
      store = await createTestStore(engine, { migrations: [stewardMigrations] });
      halt = recordingHaltGuard();
      // Persisted (the default): the state an approval is committed to lives in gov_steward.
      module = await StewardModule.create(
        {
          store,
          keyring: new Keyring(new ChainKey("steward-ports-test-key-0123456789abcdefghij")),
          clock: new ManualClock(new Date("2026-03-01T10:00:00Z")),
          logger: silentLogger,
          audit: recordingAuditSink(),
          halt,
        },
        { blueprints: [BLUEPRINT] },
      );
      const steward = resolveGovernancePorts({ steward: module }).steward;
      if (steward === null) throw new Error("the steward port was not resolved");
      guard = steward;
    });

    afterEach(async () => {
      await module?.close();
      await store?.close();
    });

    const pay = (agentId: string, amount: number) =>
      guard.evaluate({ action: "pay", parameters: { amount } }, {}, { agentId });

    it.skipIf(!engine.available)(
      "an approved ESCALATE is committed once through the port, and counts against the limit",
      async () => {
        expect((await pay("payer", 900)).intervention).toBe("OK");
        const escalated = await pay("payer", 900);
        expect(escalated.intervention).toBe("ESCALATE");
        expect(escalated.message).toContain("Daily total above 1,000.");
        expect(escalated.governanceStatus.firedTripwires).toEqual(["daily"]);
        expect(escalated.metadata.commitOnApproval).toBe(true);
        // A copy typed by the port (not the steward's own object) is committed the same way.
        const copy: InterventionResultLike = { ...escalated };
        expect(await guard.commit(copy)).toBe(true);
        expect(await guard.commit(escalated)).toBe(false); // once
        // 1800 counted: a small payment now escalates too; another agent's limit is untouched.
        expect((await pay("payer", 50)).intervention).toBe("ESCALATE");
        expect((await pay("other", 50)).intervention).toBe("OK");
      },
    );

    it.skipIf(!engine.available)("an ESCALATE that is not committed is not counted", async () => {
      expect((await pay("payer", 900)).intervention).toBe("OK");
      expect((await pay("payer", 900)).intervention).toBe("ESCALATE");
      // Released like a refusal: the 900 that was not approved is not in the daily total.
      expect((await pay("payer", 100)).intervention).toBe("OK");
    });

    it.skipIf(!engine.available)(
      "BLOCK and HALT come back as verdicts, with their reasons",
      async () => {
        const act = (kinds: string[]) =>
          guard.evaluate({ action: "act", parameters: { kinds } }, {}, { agentId: "actor" });
        const blocked = await act(["BLOCK"]);
        expect([blocked.intervention, blocked.message]).toEqual([
          "BLOCK",
          expect.stringContaining("BLOCK tripwire"),
        ]);
        const halted = await act(["HALT", "BLOCK"]);
        expect(halted.intervention).toBe("HALT");
        expect(halted.governanceStatus.blueprintId).toBe("ports@1");
        expect((await act([])).intervention).toBe("OK");
      },
    );

    it.skipIf(!engine.available)(
      "the host's agent id governs: a trace claiming another is refused, a halted agent rejected",
      async () => {
        const claimed = await rejectionOf(() =>
          guard.evaluate(
            { action: "pay", parameters: { amount: 1 }, agentId: "someone-else" },
            {},
            { agentId: "payer" },
          ),
        );
        expect(InvalidArgumentError.isInstance(claimed)).toBe(true);
        halt.halted.add("payer");
        const refused = await rejectionOf(() => pay("payer", 1));
        expect(AgentHaltedError.isInstance(refused)).toBe(true);
        expect(halt.calls.at(-1)).toEqual({
          agentId: "payer",
          context: { path: "steward.evaluate" },
        });
      },
    );
  },
);
