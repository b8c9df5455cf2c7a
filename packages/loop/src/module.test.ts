import {
  type AuditSink,
  canonicalJsonHash,
  GovernanceError,
  InvalidArgumentError,
  ManualClock,
  type ModuleContext,
  noopHaltGuard,
} from "@gov/core";
import { afterEach, describe, expect, it } from "vitest";
import { closeAll, RecordingLogger, RecordingSink, setup, thrown } from "./__fixtures__";
import { LoopDetected } from "./errors";
import { LoopPolicy } from "./models";
import { LoopModule, loopModule } from "./module";

afterEach(closeAll);

const AGENT = "my-agent";
const SESSION = "3f2b8c1e-0000-4000-8000-000000000001";
const OTHER_SESSION = "3f2b8c1e-0000-4000-8000-000000000002";

/** Record `times` calls of `tool`, one per `stepMs`, and return the detections. */
function calls(
  loop: LoopModule,
  clock: ManualClock,
  times: number,
  tool = "search_web",
  stepMs = 0,
  session = SESSION,
) {
  const results = [];
  for (let index = 0; index < times; index++) {
    results.push(loop.recordCall(AGENT, session, tool));
    clock.advance(stepMs);
  }
  return results;
}

describe("the reference's rule: the same tool more than maxCalls times in the window", () => {
  it("lets exactly maxCalls calls through and refuses one more with LoopDetected", () => {
    const { loop, clock, sink } = setup();
    loop.register(new LoopPolicy({ agentId: AGENT, windowSeconds: 60, maxCalls: 5 }));
    expect(calls(loop, clock, 5)).toEqual([null, null, null, null, null]);
    expect(sink.events).toEqual([]);
    const error = thrown(() => loop.recordCall(AGENT, SESSION, "search_web"));
    expect(error).toBeInstanceOf(LoopDetected);
    expect(GovernanceError.isInstance(error)).toBe(true);
    expect(error).toMatchObject({
      code: "LOOP_DETECTED",
      agentId: AGENT,
      sessionId: SESSION,
      tool: "search_web",
      pattern: "repeat",
      count: 6,
      windowSeconds: 60,
      maxCalls: 5,
    });
    expect((error as LoopDetected).recoveryHint).toMatch(/search_web/);
    expect((error as LoopDetected).message).toMatch(/6 times in 60 s \(limit 5\)/);
  });

  it("holds at the smallest limit too (maxCalls 2: the third call trips)", () => {
    const { loop, clock } = setup();
    loop.register({ agentId: AGENT, maxCalls: 2 });
    calls(loop, clock, 2);
    expect(() => loop.recordCall(AGENT, SESSION, "search_web")).toThrow(LoopDetected);
  });

  it("keeps counting a refused call: the loop lasts until calls leave the window", () => {
    const { loop, clock, sink } = setup();
    loop.register({ agentId: AGENT, maxCalls: 2, windowSeconds: 10 });
    calls(loop, clock, 2);
    expect(() => loop.recordCall(AGENT, SESSION, "search_web")).toThrow(LoopDetected);
    expect(() => loop.recordCall(AGENT, SESSION, "search_web")).toThrow(LoopDetected);
    expect(sink.kinds()).toEqual(["loop.detected", "loop.detected"]);
    clock.advance(10_000);
    expect(loop.recordCall(AGENT, SESSION, "search_web")).toBeNull();
  });

  it("forgets calls once the window has passed (moved clock)", () => {
    const { loop, clock } = setup();
    loop.register({ agentId: AGENT, windowSeconds: 60, maxCalls: 5 });
    calls(loop, clock, 5);
    clock.advance(59_999);
    // All five are still within the window: one more trips.
    expect(() => loop.recordCall(AGENT, SESSION, "search_web")).toThrow(LoopDetected);

    const fresh = setup();
    fresh.loop.register({ agentId: AGENT, windowSeconds: 60, maxCalls: 5 });
    calls(fresh.loop, fresh.clock, 5);
    fresh.clock.advance(60_000);
    // A call counts for windowSeconds after it was made, not longer.
    expect(calls(fresh.loop, fresh.clock, 5)).toEqual([null, null, null, null, null]);
  });

  it("slides: the oldest call leaves the window while the newer ones still count", () => {
    const { loop, clock } = setup();
    loop.register({ agentId: AGENT, windowSeconds: 60, maxCalls: 5 });
    // Calls at 0, 10, 20, 30 and 40 s.
    calls(loop, clock, 5, "search_web", 10_000);
    clock.set(Date.UTC(2026, 0, 1, 0, 1, 1)); // 61 s: the call at 0 s has left
    expect(loop.recordCall(AGENT, SESSION, "search_web")).toBeNull();
    clock.advance(1_000); // 62 s: 10, 20, 30, 40, 61, 62 → six in the window
    expect(() => loop.recordCall(AGENT, SESSION, "search_web")).toThrow(LoopDetected);
  });

  it("treats tool names case-insensitively and reports them lower-cased", () => {
    const { loop, sink } = setup();
    loop.register({ agentId: AGENT, maxCalls: 2, action: "log" });
    loop.recordCall(AGENT, SESSION, "Search_Web");
    loop.recordCall(AGENT, SESSION, "SEARCH_WEB");
    const detection = loop.recordCall(AGENT, SESSION, "search_web");
    expect(detection).toMatchObject({ tool: "search_web", count: 3 });
    expect(sink.events[0]?.metadata).toMatchObject({ tool: "search_web" });
  });

  it("counts different tools apart", () => {
    const { loop, clock } = setup();
    loop.register({ agentId: AGENT, maxCalls: 2 });
    calls(loop, clock, 2, "search_web");
    calls(loop, clock, 2, "read_page");
    expect(() => loop.recordCall(AGENT, SESSION, "read_page")).toThrow(LoopDetected);
  });

  it("counts sessions apart, and agents apart even with the same session id", () => {
    const { loop, clock } = setup();
    loop.register({ agentId: AGENT, maxCalls: 3 });
    loop.register({ agentId: "other-agent", maxCalls: 3 });
    calls(loop, clock, 3, "search_web", 0, SESSION);
    calls(loop, clock, 3, "search_web", 0, OTHER_SESSION);
    for (let index = 0; index < 3; index++)
      expect(loop.recordCall("other-agent", SESSION, "search_web")).toBeNull();
    expect(() => loop.recordCall(AGENT, SESSION, "search_web")).toThrow(LoopDetected);
    expect(loop.check(AGENT, OTHER_SESSION)).toBe(false);
    expect(loop.check("other-agent", SESSION)).toBe(false);
    expect(() => loop.recordCall(AGENT, OTHER_SESSION, "search_web")).toThrow(LoopDetected);
  });

  it("does nothing for an agent without a policy", () => {
    const { loop, clock, sink } = setup();
    expect(calls(loop, clock, 50)).toEqual(Array(50).fill(null));
    expect(loop.check(AGENT, SESSION)).toBe(false);
    expect(sink.events).toEqual([]);
    expect(loop.stats()).toMatchObject({ policies: 0, sessions: 0, detections: 0 });
  });

  it('with action "log", records the loop and lets every call through', () => {
    const { loop, clock, sink } = setup();
    loop.register({ agentId: AGENT, maxCalls: 5, action: "log" });
    const results = calls(loop, clock, 8);
    expect(results.slice(0, 5)).toEqual([null, null, null, null, null]);
    expect(results.slice(5).map((detection) => detection?.count)).toEqual([6, 7, 8]);
    expect(results[5]).toMatchObject({ action: "log", pattern: "repeat", maxCalls: 5 });
    expect(sink.kinds()).toEqual(["loop.detected", "loop.detected", "loop.detected"]);
    expect(loop.stats().detections).toBe(3);
  });

  it('with action "raise" (the default), refuses the call', () => {
    const { loop, clock } = setup();
    expect(loop.register({ agentId: AGENT, maxCalls: 2 }).action).toBe("raise");
    calls(loop, clock, 2);
    expect(() => loop.recordCall(AGENT, SESSION, "search_web")).toThrow(LoopDetected);
  });

  it("writes loop.detected with the fields an auditor needs, and nothing for passing calls", async () => {
    const { loop, clock, sink } = setup();
    loop.register({ agentId: AGENT, windowSeconds: 30, maxCalls: 3 });
    calls(loop, clock, 3);
    expect(sink.events).toEqual([]);
    thrown(() => loop.recordCall(AGENT, SESSION, "Search_Web"));
    await loop.flush();
    expect(sink.events).toEqual([
      {
        agentId: AGENT,
        sessionId: SESSION,
        kind: "loop.detected",
        metadata: {
          tool: "search_web",
          pattern: "repeat",
          count: 4,
          countCapped: false,
          windowSeconds: 30,
          maxCalls: 3,
          action: "raise",
          argsHash: null,
          cycle: null,
          repetitions: null,
        },
      },
    ]);
  });
});

describe("check()", () => {
  it("says whether a loop is in progress, until its calls leave the window", () => {
    const { loop, clock } = setup();
    loop.register({ agentId: AGENT, maxCalls: 2, windowSeconds: 10, action: "log" });
    expect(loop.check(AGENT, SESSION)).toBe(false);
    calls(loop, clock, 2);
    expect(loop.check(AGENT, SESSION)).toBe(false);
    loop.recordCall(AGENT, SESSION, "search_web");
    expect(loop.check(AGENT, SESSION)).toBe(true);
    expect(loop.check(AGENT, OTHER_SESSION)).toBe(false);
    clock.advance(10_000);
    expect(loop.check(AGENT, SESSION)).toBe(false);
  });

  it("is read-only: it records no call, writes no event and keeps no session alive", async () => {
    const { loop, clock, sink } = setup({ sweepIntervalSeconds: 60 });
    loop.register({ agentId: AGENT, maxCalls: 3 });
    calls(loop, clock, 3);
    for (let index = 0; index < 20; index++) expect(loop.check(AGENT, SESSION)).toBe(false);
    // Had check() counted, the loop would have been detected long ago.
    expect(loop.recordCall(AGENT, "fresh", "search_web")).toBeNull();
    await loop.flush();
    expect(sink.events).toEqual([]);
    expect(loop.check(AGENT, "never-seen")).toBe(false);
    expect(loop.stats().sessions).toBe(2);

    // Checked all day long, the session still counts as idle and is swept.
    for (let hour = 0; hour < 24; hour++) {
      clock.advance(3_600_000);
      loop.check(AGENT, SESSION);
    }
    expect(loop.prune()).toBe(2);
    expect(loop.stats().sessions).toBe(0);
  });

  it("does not throw for a loop in progress with action raise", () => {
    const { loop, clock } = setup();
    loop.register({ agentId: AGENT, maxCalls: 2 });
    calls(loop, clock, 2);
    thrown(() => loop.recordCall(AGENT, SESSION, "search_web"));
    expect(loop.check(AGENT, SESSION)).toBe(true);
  });
});

describe("memory: idle sessions are swept", () => {
  it("forgets a session idle for a day on the next call after the sweep interval", () => {
    const { loop, clock } = setup();
    loop.register({ agentId: AGENT, maxCalls: 5 });
    calls(loop, clock, 1, "search_web", 0, "idle");
    calls(loop, clock, 1, "search_web", 0, "busy");
    expect(loop.stats().sessions).toBe(2);
    for (let hour = 0; hour < 24; hour++) {
      clock.advance(3_600_000);
      calls(loop, clock, 1, "read_page", 0, "busy");
    }
    // The sweep ran on the last call: "idle" was 24 h old then, "busy" seconds.
    expect(loop.stats().sessions).toBe(1);
    expect(loop.resetSession(AGENT, "idle")).toBe(false);
    expect(loop.resetSession(AGENT, "busy")).toBe(true);
    expect(loop.stats().sessions).toBe(0);
  });

  it("keeps a session in use, however old it is", () => {
    // Idle after an hour; no sweep on its own during the test.
    const { loop, clock } = setup({ sessionIdleSeconds: 3_600, sweepIntervalSeconds: 86_400 });
    loop.register({ agentId: AGENT, maxCalls: 5 });
    calls(loop, clock, 1, "search_web", 0, "idle");
    for (let step = 0; step < 10; step++) {
      clock.advance(1_800_000);
      calls(loop, clock, 1, "read_page", 0, "busy");
    }
    expect(loop.prune()).toBe(1);
    expect(loop.resetSession(AGENT, "busy")).toBe(true);
  });

  it("keeps a session while a call is in the window, and forgets it once none is (not a day later)", () => {
    const { loop, clock } = setup();
    loop.register({ agentId: AGENT, maxCalls: 5, windowSeconds: 3_600 });
    calls(loop, clock, 1);
    clock.advance(3_600_000 - 1);
    expect(loop.prune()).toBe(0);
    expect(loop.stats().sessions).toBe(1);
    clock.advance(1);
    expect(loop.prune()).toBe(1);
    expect(loop.stats().sessions).toBe(0);
  });

  it("honours sessionIdleSeconds (shorter than the window)", () => {
    const { loop, clock } = setup({ sessionIdleSeconds: 600 });
    loop.register({ agentId: AGENT, maxCalls: 5, windowSeconds: 3_600 });
    calls(loop, clock, 1);
    clock.advance(600_000 - 1);
    expect(loop.prune()).toBe(0);
    clock.advance(1);
    expect(loop.prune()).toBe(1);
  });

  it("stays bounded with a new session id per request: empty sessions are swept", () => {
    const { loop, clock } = setup({ sweepIntervalSeconds: 1 });
    loop.register({ agentId: AGENT, maxCalls: 5, windowSeconds: 10 });
    // 3000 one-call sessions, one every 100 ms (5 minutes), as with a UUID per request.
    let most = 0;
    for (let index = 0; index < 3_000; index++) {
      loop.recordCall(AGENT, `request-${index}`, "search_web");
      most = Math.max(most, loop.stats().sessions);
      clock.advance(100);
    }
    // At most the window's (10 s) and one sweep interval's worth: 110 sessions.
    expect(most).toBeLessThanOrEqual(111);
    clock.advance(10_000);
    loop.prune();
    expect(loop.stats()).toMatchObject({ sessions: 0, evictedSessions: 0 });
  });

  it("keeps a session whose identical-call window is still live (longer than the tool window)", () => {
    const { loop, clock } = setup();
    loop.register({
      agentId: AGENT,
      maxCalls: 5,
      windowSeconds: 10,
      identicalCalls: { maxCalls: 1, windowSeconds: 60 },
    });
    loop.recordCall(AGENT, SESSION, "search_web", { args: { q: 1 } });
    clock.advance(30_000);
    // The tool's 10 s window is empty, the identical call's 60 s window is not.
    expect(loop.prune()).toBe(0);
    expect(() => loop.recordCall(AGENT, SESSION, "search_web", { args: { q: 1 } })).toThrow(
      LoopDetected,
    );
    clock.advance(60_000);
    expect(loop.prune()).toBe(1);
  });

  it("holds at most maxSessions, evicting the least recently used session", () => {
    const { loop, clock, logger } = setup({ maxSessions: 3 });
    loop.register({ agentId: AGENT, maxCalls: 2 });
    loop.register({ agentId: "other-agent", maxCalls: 2 });
    calls(loop, clock, 1, "search_web", 1_000, "a");
    loop.recordCall("other-agent", "b", "search_web");
    clock.advance(1_000);
    calls(loop, clock, 1, "search_web", 1_000, "c");
    expect(loop.stats()).toMatchObject({ sessions: 3, evictedSessions: 0 });
    expect(logger.warnings).toEqual([]);

    calls(loop, clock, 1, "search_web", 1_000, "d");
    expect(loop.stats()).toMatchObject({ sessions: 3, evictedSessions: 1 });
    expect(loop.resetSession(AGENT, "a")).toBe(false); // the oldest: evicted
    expect(logger.warnings).toHaveLength(1);
    expect(logger.warnings[0]?.message).toMatch(/maxSessions/);
    expect(logger.warnings[0]?.fields).toMatchObject({ maxSessions: 3, sessionId: "a" });

    // The next oldest is the other agent's; later evictions are not logged again.
    calls(loop, clock, 1, "search_web", 1_000, "e");
    calls(loop, clock, 1, "search_web", 1_000, "f");
    expect(loop.stats()).toMatchObject({ sessions: 3, evictedSessions: 3 });
    expect(loop.resetSession("other-agent", "b")).toBe(false);
    expect(loop.resetSession(AGENT, "c")).toBe(false);
    expect(logger.warnings).toHaveLength(1);
  });

  it("does not evict a session in use: a call makes it the most recently used", () => {
    const { loop, clock } = setup({ maxSessions: 2 });
    loop.register({ agentId: AGENT, maxCalls: 2 });
    calls(loop, clock, 1, "search_web", 1_000, "live");
    calls(loop, clock, 1, "search_web", 1_000, "quiet");
    calls(loop, clock, 1, "search_web", 1_000, "live"); // live is now newer than quiet
    calls(loop, clock, 1, "search_web", 1_000, "new");
    expect(loop.resetSession(AGENT, "quiet")).toBe(false);
    // The live session kept its counters: its third call is a loop.
    expect(() => loop.recordCall(AGENT, "live", "search_web")).toThrow(LoopDetected);
  });

  it("drops the counters of tools whose calls have left the window, and keeps live ones", () => {
    const { loop, clock } = setup();
    loop.register({ agentId: AGENT, maxCalls: 2, windowSeconds: 10 });
    calls(loop, clock, 2, "old_tool");
    clock.advance(10_000);
    calls(loop, clock, 2, "new_tool");
    expect(loop.prune()).toBe(0);
    // Still counted after the sweep.
    expect(() => loop.recordCall(AGENT, SESSION, "new_tool")).toThrow(LoopDetected);
    expect(loop.recordCall(AGENT, SESSION, "old_tool")).toBeNull();
  });
});

describe("identical calls (opt-in)", () => {
  const args = { query: "weather in Paris", page: 1 };

  it("is off by default: identical arguments count only as calls of the tool", () => {
    const { loop, clock } = setup();
    loop.register({ agentId: AGENT, maxCalls: 5 });
    for (let index = 0; index < 5; index++)
      expect(loop.recordCall(AGENT, SESSION, "search", { args })).toBeNull();
    clock.advance(1);
    expect(() => loop.recordCall(AGENT, SESSION, "search", { args })).toThrow(
      expect.objectContaining({ pattern: "repeat" }),
    );
  });

  it("trips on one identical call more than identicalCalls.maxCalls, before the step count", async () => {
    const { loop, sink } = setup();
    loop.register({ agentId: AGENT, maxCalls: 5, identicalCalls: { maxCalls: 2 } });
    loop.recordCall(AGENT, SESSION, "search", { args });
    // Same arguments, keys in another order: identical.
    loop.recordCall(AGENT, SESSION, "SEARCH", { args: { page: 1, query: "weather in Paris" } });
    const error = thrown(() => loop.recordCall(AGENT, SESSION, "search", { args }));
    expect(error).toMatchObject({
      code: "LOOP_DETECTED",
      pattern: "identical",
      count: 3,
      maxCalls: 2,
      windowSeconds: 60,
    });
    const hash = canonicalJsonHash(args);
    expect((error as LoopDetected).detection.argsHash).toBe(hash);
    await loop.flush();
    expect(sink.events[0]?.metadata).toMatchObject({ pattern: "identical", argsHash: hash });
  });

  it("lets the same tool with different arguments through (up to maxCalls)", () => {
    const { loop } = setup();
    loop.register({ agentId: AGENT, maxCalls: 5, identicalCalls: true });
    for (let page = 0; page < 5; page++)
      expect(loop.recordCall(AGENT, SESSION, "search", { args: { ...args, page } })).toBeNull();
  });

  it("counts the same arguments to different tools apart", () => {
    const { loop } = setup();
    loop.register({ agentId: AGENT, maxCalls: 5, identicalCalls: { maxCalls: 2 } });
    loop.recordCall(AGENT, SESSION, "search", { args });
    loop.recordCall(AGENT, SESSION, "search", { args });
    expect(loop.recordCall(AGENT, SESSION, "fetch", { args })).toBeNull();
    expect(loop.recordCall(AGENT, SESSION, "fetch", { args })).toBeNull();
  });

  it("ignores calls recorded without args", () => {
    const { loop } = setup();
    loop.register({ agentId: AGENT, maxCalls: 5, identicalCalls: { maxCalls: 1 } });
    for (let index = 0; index < 5; index++)
      expect(loop.recordCall(AGENT, SESSION, "search")).toBeNull();
  });

  it("has its own window", () => {
    const { loop, clock } = setup();
    loop.register({
      agentId: AGENT,
      maxCalls: 100,
      windowSeconds: 60,
      identicalCalls: { maxCalls: 1, windowSeconds: 5 },
    });
    loop.recordCall(AGENT, SESSION, "search", { args });
    clock.advance(5_000);
    expect(loop.recordCall(AGENT, SESSION, "search", { args })).toBeNull();
    clock.advance(4_999);
    expect(() => loop.recordCall(AGENT, SESSION, "search", { args })).toThrow(LoopDetected);
    expect(loop.check(AGENT, SESSION)).toBe(true);
    clock.advance(5_000);
    expect(loop.check(AGENT, SESSION)).toBe(false);
  });

  it("refuses arguments without a JSON form and records nothing then", () => {
    const { loop } = setup();
    loop.register({ agentId: AGENT, maxCalls: 2, identicalCalls: true });
    for (const bad of [{ n: Number.NaN }, { f: () => 1 }, new Map(), 10n]) {
      expect(() => loop.recordCall(AGENT, SESSION, "search", { args: bad })).toThrow(
        InvalidArgumentError,
      );
    }
    // Nothing was counted: two calls still pass.
    expect(loop.recordCall(AGENT, SESSION, "search")).toBeNull();
    expect(loop.recordCall(AGENT, SESSION, "search")).toBeNull();
  });

  it("does not read args when the rule is off", () => {
    const { loop } = setup();
    loop.register({ agentId: AGENT, maxCalls: 2 });
    expect(loop.recordCall(AGENT, SESSION, "search", { args: { f: () => 1 } })).toBeNull();
  });
});

describe("oscillation (opt-in)", () => {
  function alternate(loop: LoopModule, tools: string[], times: number) {
    const results = [];
    for (let index = 0; index < times; index++)
      results.push(loop.recordCall(AGENT, SESSION, tools[index % tools.length] as string));
    return results;
  }

  it("is off by default: A→B→A→B goes on until one tool alone passes maxCalls", () => {
    const { loop } = setup();
    loop.register({ agentId: AGENT, maxCalls: 5 });
    expect(alternate(loop, ["search", "read"], 10)).toEqual(Array(10).fill(null));
    expect(() => loop.recordCall(AGENT, SESSION, "search")).toThrow(
      expect.objectContaining({ pattern: "repeat", count: 6 }),
    );
  });

  it("detects A→B repeated minRepetitions times, long before the step count", async () => {
    const { loop, sink } = setup();
    loop.register({ agentId: AGENT, maxCalls: 5, oscillation: { minRepetitions: 3 } });
    expect(alternate(loop, ["search", "Read"], 5)).toEqual(Array(5).fill(null));
    const error = thrown(() => loop.recordCall(AGENT, SESSION, "read"));
    expect(error).toMatchObject({ code: "LOOP_DETECTED", pattern: "oscillation", count: 6 });
    expect((error as LoopDetected).detection).toMatchObject({
      cycle: ["search", "read"],
      repetitions: 3,
    });
    expect(loop.check(AGENT, SESSION)).toBe(true);
    await loop.flush();
    expect(sink.events[0]?.metadata).toMatchObject({
      pattern: "oscillation",
      cycle: ["search", "read"],
      repetitions: 3,
    });
  });

  it("uses the defaults with true (minRepetitions 3, cycles of 2)", () => {
    const { loop } = setup();
    const policy = loop.register({ agentId: AGENT, maxCalls: 50, oscillation: true });
    expect(policy.oscillation).toEqual({ minRepetitions: 3, maxPeriod: 2 });
    expect(alternate(loop, ["a", "b"], 5)).toEqual(Array(5).fill(null));
    expect(() => loop.recordCall(AGENT, SESSION, "b")).toThrow(LoopDetected);
  });

  it("does not mistake other sequences for a cycle", () => {
    const { loop } = setup();
    loop.register({ agentId: AGENT, maxCalls: 50, oscillation: { minRepetitions: 2 } });
    // A A B B A A B B: no A→B→A→B run of two cycles.
    expect(alternate(loop, ["a", "a", "b", "b"], 8)).toEqual(Array(8).fill(null));
    loop.resetSession(AGENT, SESSION);
    // A B A C A B A C: broken by C.
    expect(alternate(loop, ["a", "b", "a", "c"], 3)).toEqual(Array(3).fill(null));
    expect(alternate(loop, ["c", "a", "b", "a"], 1)).toEqual([null]);
    // The same tool again and again is the step count's business.
    loop.resetSession(AGENT, SESSION);
    expect(alternate(loop, ["a"], 10)).toEqual(Array(10).fill(null));
  });

  it("finds longer cycles up to maxPeriod, and not beyond", () => {
    const three = ["plan", "search", "read"];
    const short = setup();
    short.loop.register({ agentId: AGENT, maxCalls: 50, oscillation: { minRepetitions: 3 } });
    expect(alternate(short.loop, three, 12)).toEqual(Array(12).fill(null));

    const long = setup();
    long.loop.register({
      agentId: AGENT,
      maxCalls: 50,
      oscillation: { minRepetitions: 3, maxPeriod: 3 },
    });
    expect(alternate(long.loop, three, 8)).toEqual(Array(8).fill(null));
    expect(() => long.loop.recordCall(AGENT, SESSION, "read")).toThrow(
      expect.objectContaining({ pattern: "oscillation", count: 9 }),
    );
  });

  it("only counts cycles within the window", () => {
    const { loop, clock } = setup();
    loop.register({
      agentId: AGENT,
      maxCalls: 50,
      windowSeconds: 10,
      oscillation: { minRepetitions: 2 },
    });
    for (let index = 0; index < 8; index++) {
      // One call every 4 s: a whole A→B→A→B takes 12 s, longer than the window.
      expect(loop.recordCall(AGENT, SESSION, index % 2 === 0 ? "a" : "b")).toBeNull();
      clock.advance(4_000);
    }
  });

  it('with action "log", reports the cycle and lets the calls through', () => {
    const { loop, sink } = setup();
    loop.register({
      agentId: AGENT,
      maxCalls: 50,
      action: "log",
      oscillation: { minRepetitions: 2 },
    });
    const results = alternate(loop, ["a", "b"], 6);
    expect(results.slice(0, 3)).toEqual([null, null, null]);
    expect(results.slice(3).map((detection) => detection?.repetitions)).toEqual([2, 2, 3]);
    expect(sink.kinds()).toEqual(["loop.detected", "loop.detected", "loop.detected"]);
  });
});

describe("audit writes are observation", () => {
  const failing: AuditSink = {
    log: () => Promise.reject(new Error("database away")),
  };
  const throwing: AuditSink = {
    log: () => {
      throw new Error("sink broken");
    },
  };

  for (const [name, sink] of [
    ["rejects", failing],
    ["throws", throwing],
  ] as const) {
    it(`a sink that ${name} never changes what recordCall does, and is logged`, async () => {
      const { loop, clock, logger } = setup({}, sink);
      loop.register({ agentId: AGENT, maxCalls: 2 });
      calls(loop, clock, 2);
      expect(() => loop.recordCall(AGENT, SESSION, "search_web")).toThrow(LoopDetected);
      loop.register({ agentId: AGENT, maxCalls: 2, action: "log" });
      expect(loop.recordCall(AGENT, SESSION, "search_web")).toMatchObject({ count: 4 });
      await loop.flush();
      expect(loop.stats()).toMatchObject({ detections: 2, auditFailures: 2 });
      expect(logger.warnings).toHaveLength(2);
      expect(logger.warnings[0]?.message).toMatch(/loop\.detected/);
      expect(logger.warnings[0]?.fields).toMatchObject({
        agentId: AGENT,
        sessionId: SESSION,
        tool: "search_web",
        count: 3,
      });
    });
  }

  it("does not wait for the audit write, and flush() does", async () => {
    let release: () => void = () => {};
    const slow: AuditSink = {
      log: () =>
        new Promise((resolve) => {
          release = () => resolve({ eventId: "e", isPlaceholder: false });
        }),
    };
    const { loop, clock } = setup({}, slow);
    loop.register({ agentId: AGENT, maxCalls: 2, action: "log" });
    calls(loop, clock, 3);
    expect(loop.stats().pendingAuditWrites).toBe(1);
    let flushed = false;
    const flushing = loop.flush().then(() => {
      flushed = true;
    });
    await Promise.resolve();
    expect(flushed).toBe(false);
    release();
    await flushing;
    expect(loop.stats().pendingAuditWrites).toBe(0);
  });
});

describe("policies", () => {
  it("register() takes a LoopPolicy or a plain object, and replaces the agent's policy", () => {
    const { loop, clock } = setup();
    const policy = new LoopPolicy({ agentId: AGENT, maxCalls: 10 });
    expect(loop.register(policy)).toBe(policy);
    calls(loop, clock, 3);
    loop.register({ agentId: AGENT, maxCalls: 3 });
    expect(loop.getPolicy(AGENT)?.maxCalls).toBe(3);
    // Counters stay; the new limit applies from the next call.
    expect(() => loop.recordCall(AGENT, SESSION, "search_web")).toThrow(LoopDetected);
  });

  it("unregister() stops tracking the agent and forgets its sessions", () => {
    const { loop, clock } = setup();
    loop.register({ agentId: AGENT, maxCalls: 2 });
    calls(loop, clock, 2);
    expect(loop.unregister(AGENT)).toBe(true);
    expect(loop.unregister(AGENT)).toBe(false);
    expect(loop.getPolicy(AGENT)).toBeUndefined();
    expect(loop.stats()).toMatchObject({ policies: 0, sessions: 0 });
    expect(loop.recordCall(AGENT, SESSION, "search_web")).toBeNull();
  });

  it("resetSession() clears one session's counters", () => {
    const { loop, clock } = setup();
    loop.register({ agentId: AGENT, maxCalls: 2 });
    calls(loop, clock, 2);
    calls(loop, clock, 2, "search_web", 0, OTHER_SESSION);
    expect(loop.resetSession(AGENT, SESSION)).toBe(true);
    expect(calls(loop, clock, 2)).toEqual([null, null]);
    expect(() => loop.recordCall(AGENT, OTHER_SESSION, "search_web")).toThrow(LoopDetected);
  });

  it("a refused register() changes nothing", () => {
    const { loop } = setup();
    loop.register({ agentId: AGENT, maxCalls: 4 });
    expect(() => loop.register({ agentId: AGENT, maxCalls: 1 })).toThrow(
      expect.objectContaining({ code: "LOOP_POLICY_INVALID", field: "maxCalls", limit: 2 }),
    );
    expect(loop.getPolicy(AGENT)?.maxCalls).toBe(4);
  });
});

/** A module refusing the same arguments a third time (identical-call detection on). */
function watchedForIdenticalCalls() {
  const { loop } = setup();
  loop.register({
    agentId: "agent",
    maxCalls: 100,
    windowSeconds: 60,
    identicalCalls: { maxCalls: 2 },
  });
  return loop;
}

describe("bad input to every method", () => {
  const bad: [unknown, RegExp][] = [
    [undefined, /must be a string, got undefined/],
    [null, /must be a string, got null/],
    [42, /must be a string, got number/],
    ["", /is empty/],
    ["   ", /starts or ends with white space/],
    ["x".repeat(257), /257 characters long; the limit is 256/],
  ];

  it("recordCall refuses bad ids, tool names and options, and records nothing", () => {
    const { loop, sink } = setup();
    loop.register({ agentId: AGENT, maxCalls: 2 });
    for (const [value, message] of bad) {
      for (const [field, call] of [
        ["agentId", () => loop.recordCall(value as string, SESSION, "t")],
        ["sessionId", () => loop.recordCall(AGENT, value as string, "t")],
        ["toolName", () => loop.recordCall(AGENT, SESSION, value as string)],
      ] as const) {
        const error = thrown(call);
        expect(error).toBeInstanceOf(InvalidArgumentError);
        expect(error).toMatchObject({ code: "INVALID_ARGUMENT", field });
        expect((error as Error).message).toMatch(message);
        expect((error as InvalidArgumentError).recoveryHint).toMatch(/1 to 256 characters/);
      }
    }
    expect(() => loop.recordCall(AGENT, SESSION, "t", null as never)).toThrow(
      expect.objectContaining({ field: "options" }),
    );
    expect(() => loop.recordCall(AGENT, SESSION, "t", "args" as never)).toThrow(
      InvalidArgumentError,
    );
    expect(loop.stats().sessions).toBe(0);
    expect(sink.events).toEqual([]);
  });

  // Issue 13 (attack): a misspelt `args` was accepted silently, and identical-call detection
  // (an enforcement surface: action "raise") was then off for every such call.
  it("recordCall refuses a misspelt option instead of ignoring it", async () => {
    const loop = watchedForIdenticalCalls();
    const error = await thrown(() =>
      loop.recordCall("agent", "session", "refund", { argz: { id: 1 } } as never),
    );
    expect(InvalidArgumentError.isInstance(error)).toBe(true);
    expect((error as InvalidArgumentError).field).toBe("options.argz");
    expect((error as InvalidArgumentError).message).toMatch(/did you mean `args`/);
  });

  // Issue 13 (attack): an array is an object to `typeof`; it was taken as options (no `args`).
  it("recordCall refuses options that are not a plain object", async () => {
    const loop = watchedForIdenticalCalls();
    const error = await thrown(() => loop.recordCall("agent", "session", "refund", [1] as never));
    expect(InvalidArgumentError.isInstance(error)).toBe(true);
  });

  // The fast path reads `args` itself: a getter that throws must not escape raw.
  it("recordCall reports options that cannot be read, and records nothing", () => {
    const loop = watchedForIdenticalCalls();
    const options = {
      get args(): unknown {
        throw new Error("getter boom");
      },
    };
    const error = thrown(() => loop.recordCall("agent", "session", "refund", options));
    expect(error).toMatchObject({ code: "INVALID_ARGUMENT", field: "options.args" });
    expect((error as Error).message).toMatch(/could not be read/);
    expect(loop.stats().sessions).toBe(0);
  });

  it("check, resetSession, unregister and getPolicy refuse bad ids", () => {
    const { loop } = setup();
    for (const [value] of bad) {
      expect(() => loop.check(value as string, SESSION)).toThrow(InvalidArgumentError);
      expect(() => loop.check(AGENT, value as string)).toThrow(InvalidArgumentError);
      expect(() => loop.resetSession(value as string, SESSION)).toThrow(InvalidArgumentError);
      expect(() => loop.resetSession(AGENT, value as string)).toThrow(InvalidArgumentError);
      expect(() => loop.unregister(value as string)).toThrow(InvalidArgumentError);
      expect(() => loop.getPolicy(value as string)).toThrow(InvalidArgumentError);
    }
  });

  it("register refuses what is not a valid policy", () => {
    const { loop } = setup();
    for (const value of [null, undefined, "my-agent", 5, [], { agentId: "" }]) {
      expect(() => loop.register(value as never)).toThrow(
        expect.objectContaining({ code: "LOOP_POLICY_INVALID" }),
      );
    }
    expect(loop.stats().policies).toBe(0);
  });

  it("the constructor refuses bad options", () => {
    for (const [options, field, limit] of [
      [{ sessionIdleSeconds: 59 }, "options.sessionIdleSeconds", 60],
      [{ sessionIdleSeconds: 604_801 }, "options.sessionIdleSeconds", 604_800],
      [{ sweepIntervalSeconds: 0 }, "options.sweepIntervalSeconds", 1],
      [{ sweepIntervalSeconds: 1.5 }, "options.sweepIntervalSeconds", undefined],
      [{ maxSessions: 0 }, "options.maxSessions", 1],
      [{ maxSessions: 10_000_001 }, "options.maxSessions", 10_000_000],
      [{ sessionIdleMs: 59_999 }, "options.sessionIdleMs", 60_000],
      [{ sessionIdleMs: 604_800_001 }, "options.sessionIdleMs", 604_800_000],
      [{ sweepIntervalMs: 999 }, "options.sweepIntervalMs", 1_000],
      [{ sweepIntervalMs: 86_400_001 }, "options.sweepIntervalMs", 86_400_000],
    ] as const) {
      const error = thrown(() => new LoopModule({}, options));
      expect(error).toMatchObject({ code: "LOOP_POLICY_INVALID", field, limit });
    }
    expect(() => new LoopModule({}, { sweepInterval: 5 } as never)).toThrow(
      /is not an option; did you mean `sweepIntervalMs`\?/,
    );
    expect(() => new LoopModule({}, "fast" as never)).toThrow(/must be a plain object/);
  });

  it("the constructor refuses a context that is not an object, naming it and the fix", () => {
    for (const [context, got] of [
      [null, "null"],
      [42, "number"],
      ["ctx", "string"],
      [[], "an array"],
    ] as const) {
      const error = thrown(() => new LoopModule(context as never));
      expect(error).toBeInstanceOf(InvalidArgumentError);
      expect(error).toMatchObject({ code: "INVALID_ARGUMENT", field: "context" });
      expect((error as Error).message).toMatch(`must be an object, got ${got}`);
      expect((error as InvalidArgumentError).recoveryHint).toMatch(/\{ clock, logger, audit \}/);
    }
  });

  it("the constructor refuses a clock, logger or audit sink without the methods it calls", () => {
    const logger = new RecordingLogger();
    const clock = new ManualClock(0);
    for (const [context, field, fix] of [
      [{ clock: 1 }, "context.clock", /now\(\), nowMs\(\)/],
      [{ clock: null }, "context.clock", /now\(\), nowMs\(\)/],
      [{ clock: { nowMs: () => 0 } }, "context.clock", /now\(\)/],
      [{ logger: "console" }, "context.logger", /debug\(\), info\(\), warn\(\), error\(\)/],
      [{ logger: { warn() {}, error() {} } }, "context.logger", /debug\(\)/],
      [{ audit: {} }, "context.audit", /log\(\)/],
      [{ audit: () => undefined }, "context.audit", /log\(\)/],
      [{ clock, logger, audit: { log: "yes" } }, "context.audit", /log\(\)/],
    ] as const) {
      const error = thrown(() => new LoopModule(context as never));
      expect(error).toBeInstanceOf(InvalidArgumentError);
      expect(error).toMatchObject({ code: "INVALID_ARGUMENT", field });
      expect((error as Error).message).toMatch(/must be an? /);
      expect((error as InvalidArgumentError).recoveryHint).toMatch(fix);
      expect((error as InvalidArgumentError).recoveryHint).toMatch(/leave it out/);
    }
  });

  it("the constructor takes each context field as optional (undefined is the default)", async () => {
    await using loop = new LoopModule({ clock: undefined, logger: undefined, audit: undefined });
    loop.register({ agentId: AGENT, maxCalls: 2 });
    expect(loop.recordCall(AGENT, SESSION, "t")).toBeNull();
  });
});

describe("loopModule (the definition @gov/sdk composes)", () => {
  it("is named loop, has no migrations, and writes through the context's audit sink", async () => {
    expect(loopModule.name).toBe("loop");
    expect(loopModule.migrations).toBeUndefined();
    const sink = new RecordingSink();
    const clock = new ManualClock(0);
    const context = {
      clock,
      logger: new RecordingLogger(),
      audit: sink,
      halt: noopHaltGuard,
    } as unknown as ModuleContext;
    const loop = await loopModule.create(context, undefined);
    expect(loop).toBeInstanceOf(LoopModule);
    loop.register({ agentId: AGENT, maxCalls: 2, action: "log" });
    calls(loop, clock, 3);
    await loopModule.close?.(loop);
    expect(sink.kinds()).toEqual(["loop.detected"]);
  });

  it("works alone with the defaults (system clock, no audit)", async () => {
    await using loop = new LoopModule();
    loop.register({ agentId: AGENT, maxCalls: 2 });
    loop.recordCall(AGENT, SESSION, "t");
    loop.recordCall(AGENT, SESSION, "t");
    expect(() => loop.recordCall(AGENT, SESSION, "t")).toThrow(LoopDetected);
  });
});
