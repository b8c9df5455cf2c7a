import { ChainKey, InvalidArgumentError, Keyring, ManualClock, silentLogger } from "@gov/core";
import { recordingAuditSink, rejectionOf, thrown, unreachableStore } from "@gov/core/testing";
import { describe, expect, it } from "vitest";
import { decisionsBlueprint, makeSteward } from "./__fixtures__";
import { PolicyError } from "./errors";
import { StewardModule } from "./module";
import { PostgresBlueprintRegistry } from "./persistence";
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

  // Issue 13 (attack): only the first of core's issues was kept; a second bad option went unsaid.
  it("reports every problem, not only the first", () => {
    const error = thrown(
      () =>
        new GovernanceSteward({}, {
          blueprints: [decisionsBlueprint()],
          conformanceLevl: "complete",
          auditTimeoutMs: 0,
        } as never),
    ) as PolicyError;
    expect(error).toMatchObject({ code: "POLICY_INVALID", path: "conformanceLevl" });
    expect(error.issues.map((issue) => issue.field)).toEqual(["conformanceLevl", "auditTimeoutMs"]);
    expect(error.message).toContain("also auditTimeoutMs:");
    expect(InvalidArgumentError.isInstance(error.cause)).toBe(true);
  });

  // Issue 13: the hint named GovernanceSteward.fromFile, which does not exist.
  it("names fromFiles (not fromFile) when no blueprint is given", () => {
    const error = thrown(() => new GovernanceSteward({}, { blueprints: [] }));
    expect(error).toMatchObject({ code: "POLICY_INVALID", path: "blueprints" });
    expect((error as PolicyError).recoveryHint).toContain("GovernanceSteward.fromFiles");
    expect((error as PolicyError).recoveryHint).not.toMatch(/fromFile\b/);
  });
});

describe("evaluate's options", () => {
  // Issue 13 (attack): a misspelt `agentTier` was dropped silently, the blueprint scoped to that
  // tier was not selected, and a call the host meant to BLOCK was evaluated OK under another.
  it("refuses a misspelt option instead of evaluating without it", async () => {
    const { steward } = makeSteward({
      blueprints: [
        {
          id: "restricted@1",
          version: "1",
          scope: { agentTiers: ["restricted"] },
          tripwires: [
            { id: "deny", condition: "true", onFail: { decision: "BLOCK", reason: "restricted" } },
          ],
        },
        {
          id: "open@1",
          version: "1",
          tripwires: [
            { id: "never", condition: "false", onFail: { decision: "BLOCK", reason: "never" } },
          ],
        },
      ],
    } as never);
    const trace = { action: "refund", agentId: "agent" };
    const meant = await steward.evaluate(trace as never, {}, { agentTier: "restricted" });
    expect(meant.intervention).toBe("BLOCK");
    const error = await rejectionOf(() =>
      steward.evaluate(trace as never, {}, { agentTeir: "restricted" } as never),
    );
    expect(InvalidArgumentError.isInstance(error)).toBe(true);
    expect((error as InvalidArgumentError).field).toBe("options.agentTeir");
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

describe("Postgres blueprint registry options", () => {
  // Issue 13 (attack): the registry picked its options out by hand; a misspelt `keyring` was
  // dropped, and publishing then failed later for want of a keyring.
  it("refuses a misspelt option with a did-you-mean", () => {
    const keyring = new Keyring(new ChainKey("options-test-key-0123456789abcdefghijkl"));
    const error = thrown(
      () => new PostgresBlueprintRegistry(unreachableStore(), { keyrign: keyring } as never),
    );
    expect(error).toMatchObject({ code: "INVALID_ARGUMENT", field: "options.keyrign" });
    expect((error as Error).message).toContain("did you mean `keyring`?");
    expect(
      thrown(() => new PostgresBlueprintRegistry(unreachableStore(), [] as never)),
    ).toMatchObject({ code: "INVALID_ARGUMENT", field: "options" });
  });
});
