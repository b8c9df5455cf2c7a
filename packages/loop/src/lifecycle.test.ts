import { InvalidArgumentError, ManualClock, type ModuleContext, noopHaltGuard } from "@gov/core";
import { assertErrorClasses, thrown } from "@gov/core/testing";
import { afterEach, describe, expect, it } from "vitest";
import { closeAll, RecordingLogger, RecordingSink, START, setup } from "./__fixtures__";
import { InvalidLoopPolicyError, LoopDetected } from "./errors";
import * as loopExports from "./index";
import { LoopModule, loopModule } from "./module";

afterEach(closeAll);

const AGENT = "my-agent";
const SESSION = "session-1";

describe("error identities", () => {
  it("each class declares its own identity, and isInstance tells them apart", () => {
    assertErrorClasses(loopExports, { packageName: "@gov/loop" });
    const policyError = thrown(() => new loopExports.LoopPolicy({ agentId: "" }));
    expect(InvalidLoopPolicyError.isInstance(policyError)).toBe(true);
    // Regression: every subclass used to inherit a check that answered true for any GovernanceError.
    expect(LoopDetected.isInstance(policyError)).toBe(false);
  });
});

describe("the one lifecycle: construct, start, close", () => {
  it("start() and close() are public, idempotent, and close() works without start()", async () => {
    const { loop } = setup();
    await loop.start();
    await loop.start();
    await loop.close();
    await loop.close();
    await loop.start(); // a closed module stays closed: no timer is left behind
    const unstarted = new LoopModule({ logger: new RecordingLogger() });
    await unstarted.close();
  });

  it("the definition starts what it creates and carries the SDK's enableLoop flag", async () => {
    const context = {
      clock: new ManualClock(START),
      logger: new RecordingLogger(),
      audit: new RecordingSink(),
      halt: noopHaltGuard,
    } as unknown as ModuleContext;
    const loop = await loopModule.create(context, undefined);
    expect(loop).toBeInstanceOf(LoopModule);
    await loopModule.close?.(loop);
    expect(loopModule.sdk).toEqual({ flag: "enableLoop", enabledByDefault: true });
  });
});

describe("durations in milliseconds", () => {
  it("sessionIdleMs forgets an idle session", () => {
    const { loop, clock } = setup({ sessionIdleMs: 600_000, sweepIntervalMs: 1_000 });
    loop.register({ agentId: AGENT, maxCalls: 2, windowSeconds: 3_600 });
    loop.recordCall(AGENT, SESSION, "t");
    clock.advance(599_000);
    loop.prune();
    expect(loop.metrics().sessions).toBe(1);
    clock.advance(2_000);
    loop.prune();
    expect(loop.metrics().sessions).toBe(0);
  });

  it("refuses a duration given both ways", () => {
    const error = thrown(
      () => new LoopModule({}, { sessionIdleMs: 600_000, sessionIdleSeconds: 600 }),
    );
    expect(error).toMatchObject({
      code: "LOOP_POLICY_INVALID",
      field: "options.sessionIdleSeconds",
    });
    expect((error as Error).message).toMatch(/cannot be given with sessionIdleMs/);
  });

  it("suggests the option a misspelt one stands for", () => {
    const error = thrown(() => new LoopModule({}, { sweepInterval: 5 } as never));
    expect((error as Error).message).toMatch(/did you mean `sweepIntervalMs`\?/);
    const policyError = thrown(
      () => new loopExports.LoopPolicy({ agentId: AGENT, maxCall: 3 } as never),
    );
    expect((policyError as Error).message).toMatch(/did you mean `maxCalls`\?/);
  });

  it("refuses a misspelt option the one way (core's parseOptions), starting nothing", () => {
    const logger = new RecordingLogger();
    const sink = new RecordingSink();
    const error = thrown(
      () =>
        new LoopModule({ logger, audit: sink }, {
          sweepInterval: 5,
          maxSessions: 10,
        } as never),
    );
    if (!InvalidLoopPolicyError.isInstance(error)) throw error;
    expect(InvalidArgumentError.isInstance(error)).toBe(true);
    expect(error.code).toBe("LOOP_POLICY_INVALID");
    expect(error.field).toBe("options.sweepInterval");
    expect(error.message).toContain("is not an option; did you mean `sweepIntervalMs`?");
    expect(error.recoveryHint).toContain("sweepIntervalMs");
    expect(error.issues.map((issue) => issue.field)).toEqual(["options.sweepInterval"]);
    expect(InvalidArgumentError.isInstance(error.cause)).toBe(true);
    expect(logger.warnings).toEqual([]);
    expect(sink.events).toEqual([]);
  });

  it("metrics() is what the deprecated stats() returns", () => {
    const { loop } = setup();
    loop.register({ agentId: AGENT });
    expect(loop.metrics()).toEqual(loop.stats());
    expect(loop.metrics().policies).toBe(1);
  });
});

describe("the one id rule", () => {
  it("refuses invisible and control characters in ids, as every module does", () => {
    const { loop } = setup();
    for (const value of ["my-agent\u200b", "my\u0000agent", "\u202emy-agent"]) {
      const error = thrown(() => loop.recordCall(value, SESSION, "t"));
      expect(error).toBeInstanceOf(InvalidArgumentError);
      expect(error).toMatchObject({ code: "INVALID_ARGUMENT", field: "agentId" });
    }
  });
});
