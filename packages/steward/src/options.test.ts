import { ManualClock, silentLogger } from "@gov/core";
import { recordingAuditSink, thrown, unreachableStore } from "@gov/core/testing";
import { describe, expect, it } from "vitest";
import { decisionsBlueprint } from "./__fixtures__";
import { PolicyError } from "./errors";
import { StewardModule } from "./module";
import { GovernanceSteward } from "./steward";

const kinds = (...values: string[]) => ({
  agentId: "order",
  action: "x",
  parameters: { kinds: values },
});

// Issue 13: the steward accepted misspelt options silently (a `conformanceLevl: "complete"`
// ran at `standard`, unaudited).
describe("steward options", () => {
  it("refuses a misspelt option, naming the one meant", () => {
    const error = thrown(
      () =>
        new GovernanceSteward({}, {
          blueprints: [decisionsBlueprint()],
          conformanceLevl: "complete",
        } as never),
    );
    expect(PolicyError.isInstance(error)).toBe(true);
    expect(error).toMatchObject({ code: "POLICY_INVALID", path: "conformanceLevl" });
    expect((error as Error).message).toContain("did you mean `conformanceLevel`?");
  });

  it("refuses an option of the wrong type, naming it and the fix", () => {
    const error = thrown(
      () =>
        new GovernanceSteward(
          {},
          {
            blueprints: [decisionsBlueprint()],
            auditTimeoutMs: 1.5,
          },
        ),
    );
    expect(error).toMatchObject({ code: "POLICY_INVALID", path: "auditTimeoutMs" });
    expect((error as PolicyError).recoveryHint).toMatch(/integer of milliseconds/);
  });

  // Issue 13: the hint named GovernanceSteward.fromFile, which does not exist.
  it("names fromFiles (not fromFile) when no blueprint is given", () => {
    const error = thrown(() => new GovernanceSteward({}, { blueprints: [] }));
    expect(error).toMatchObject({ code: "POLICY_INVALID", path: "blueprints" });
    expect((error as PolicyError).recoveryHint).toContain("GovernanceSteward.fromFiles");
    expect((error as PolicyError).recoveryHint).not.toMatch(/fromFile\b/);
  });
});

describe("context first, options second", () => {
  it("evaluates the same with the new order and the deprecated one", async () => {
    const clock = new ManualClock(new Date("2026-01-01T00:00:00Z"));
    const newAudit = recordingAuditSink();
    const oldAudit = recordingAuditSink();
    const options = { blueprints: [decisionsBlueprint()] };
    const current = new GovernanceSteward(
      { clock, audit: newAudit, logger: silentLogger },
      options,
    );
    const legacy = new GovernanceSteward(options, { clock, audit: oldAudit, logger: silentLogger });
    const [a, b] = await Promise.all([
      current.evaluate(kinds("BLOCK")),
      legacy.evaluate(kinds("BLOCK")),
    ]);
    await Promise.all([current.flush(), legacy.flush()]);
    expect({ ...a, traceId: "" }).toEqual({ ...b, traceId: "" });
    expect(newAudit.events).toHaveLength(1);
    expect(oldAudit.events).toHaveLength(1);
    // The deprecated order without a context still works (the README's earlier example).
    expect(new GovernanceSteward(options).blueprints).toHaveLength(1);
  });

  it("refuses options passed where the context belongs, saying which comes first", async () => {
    const error = await thrown(() =>
      GovernanceSteward.fromFiles(
        [new URL("./__fixtures__/missing.yaml", import.meta.url).pathname],
        { conformanceLevel: "complete" } as never,
      ),
    );
    expect(error).toMatchObject({ code: "INVALID_ARGUMENT", field: "context.conformanceLevel" });
    expect((error as PolicyError).recoveryHint).toContain("the options come second");
  });

  it("refuses a misspelt port with a did-you-mean", () => {
    const error = thrown(
      () =>
        new GovernanceSteward({ loger: silentLogger } as never, {
          blueprints: [decisionsBlueprint()],
        }),
    );
    expect(error).toMatchObject({ code: "INVALID_ARGUMENT", field: "context.loger" });
    expect((error as Error).message).toContain("did you mean `logger`?");
  });
});

describe("steward module options", () => {
  const context = () => ({
    store: unreachableStore(),
    keyring: undefined as never,
    clock: new ManualClock(),
    logger: silentLogger,
    audit: recordingAuditSink(),
    halt: { assertAlive: async () => {} },
  });

  it("refuses a misspelt option with a did-you-mean", () => {
    const error = thrown(
      () =>
        new StewardModule(context(), {
          blueprints: [decisionsBlueprint()],
          persits: false,
        } as never),
    );
    expect(error).toMatchObject({ code: "INVALID_ARGUMENT", field: "options.persits" });
    expect((error as Error).message).toContain("did you mean `persist`?");
  });

  it("refuses a misspelt option by rejecting, through create", async () => {
    const error = await thrown(() =>
      StewardModule.create(context(), { blueprintID: ["a@1"] } as never),
    );
    expect(error).toMatchObject({ code: "INVALID_ARGUMENT", field: "options.blueprintID" });
  });
});
