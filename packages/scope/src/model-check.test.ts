import { AgentHaltedError, InvalidArgumentError, sql } from "@gov/core";
import { rejectionOf, type TestEngine, testEngines } from "@gov/core/testing";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { fakeHalt, type ScopeHarness, scopeHarness } from "./__fixtures__";
import { PolicyNotRegistered, SCOPE_ERROR_CODES, ScopeViolation } from "./errors";
import type { ScopeModule } from "./module";

const BILLING = {
  agentId: "billing-agent",
  allowedTools: ["read_invoice"],
  allowedModels: ["gpt-4o-mini", "claude-sonnet-4-5"],
};
/** A policy that leaves allowedModels empty (the default): no limit on models. */
const OPEN = { agentId: "open-agent", allowedTools: ["read_invoice"] };

/** The event a denial writes to the audit chain. */
function denial(agentId: string, metadata: Record<string, unknown>) {
  return { agentId, kind: "scope.violation", metadata: { ...metadata, path: "scope.check" } };
}

/** The stored rows, to check that a check writes nothing to the database. */
interface Row extends Record<string, unknown> {
  agent_id: string;
  allowed_models: unknown;
  revision: string | number;
}

describe.each(testEngines())("check(agentId, { model }) on $name", (engine: TestEngine) => {
  let h: ScopeHarness;
  let halt: ReturnType<typeof fakeHalt>;
  /** A module that loaded the policies from the database (registered by another one). */
  let scope: ScopeModule;

  beforeEach(async () => {
    if (!engine.available) return;
    h = await scopeHarness(engine);
    const writer = await h.make();
    writer.register(BILLING);
    writer.register(OPEN);
    await writer.flush();
    halt = fakeHalt();
    scope = await h.make({}, { halt });
    expect(scope.getPolicy("billing-agent")?.toJSON().allowedModels).toEqual(BILLING.allowedModels);
    h.audit.events.length = 0;
  });

  afterEach(async () => {
    await h?.close();
  });

  async function rows(): Promise<Row[]> {
    return h.store.query<Row>(
      sql`select agent_id, allowed_models, revision from gov_scope.policies order by agent_id`,
    );
  }

  it.skipIf(!engine.available)("passes a model in allowedModels and writes nothing", async () => {
    await expect(scope.check("billing-agent", { model: "gpt-4o-mini" })).resolves.toBeUndefined();
    await expect(
      scope.check("billing-agent", { model: "claude-sonnet-4-5" }),
    ).resolves.toBeUndefined();
    expect(h.audit.events).toEqual([]);
    expect(halt.calls).toEqual([
      { agentId: "billing-agent", context: { path: "scope.check" } },
      { agentId: "billing-agent", context: { path: "scope.check" } },
    ]);
  });

  it.skipIf(!engine.available)(
    "refuses a model outside allowedModels: ScopeViolation with the model, audited first, nothing else written",
    async () => {
      const before = await rows();
      const error = await rejectionOf(() => scope.check("billing-agent", { model: "gpt-4o" }));
      expect(ScopeViolation.isInstance(error)).toBe(true);
      const violation = error as ScopeViolation;
      expect(violation.code).toBe(SCOPE_ERROR_CODES.SCOPE_VIOLATION);
      expect(violation.reason).toBe("not_allowed");
      expect(violation.model).toBe("gpt-4o");
      expect(violation.tool).toBeNull();
      expect(violation.api).toBeNull();
      expect(violation.allowed).toEqual(BILLING.allowedModels);
      expect(violation.message).toBe(
        'Agent "billing-agent" may not call model "gpt-4o": it is not in the policy\'s allowedModels. Allowed models: "gpt-4o-mini", "claude-sonnet-4-5".',
      );
      expect(violation.recoveryHint).toContain('add "gpt-4o" to allowedModels');
      expect(h.audit.events).toEqual([
        denial("billing-agent", { model: "gpt-4o", reason: "not_allowed" }),
      ]);
      expect(await rows()).toEqual(before);
    },
  );

  it.skipIf(!engine.available)(
    "compares model names exactly and case-sensitively, and points out a case-only near miss",
    async () => {
      for (const variant of ["GPT-4o-mini", "gpt-4o-mini ", "gpt-4o-mini-2024-07-18", "gpt-4o-*"]) {
        const error = await rejectionOf(() => scope.check("billing-agent", { model: variant }));
        expect(ScopeViolation.isInstance(error), variant).toBe(true);
        expect((error as ScopeViolation).model).toBe(variant);
      }
      const error = (await rejectionOf(() =>
        scope.check("billing-agent", { model: "GPT-4o-mini" }),
      )) as ScopeViolation;
      expect(error.message).toContain(
        'Model names are case-sensitive: the policy allows "gpt-4o-mini", not "GPT-4o-mini".',
      );
      expect(h.audit.kinds()).toEqual(Array(5).fill("scope.violation"));
    },
  );

  it.skipIf(!engine.available)("an empty allowedModels places no limit on models", async () => {
    expect(scope.getPolicy("open-agent")?.allowedModels.size).toBe(0);
    for (const model of ["gpt-4o", "claude-opus-4-1", "some/provider:model@v2"]) {
      await expect(scope.check("open-agent", { model })).resolves.toBeUndefined();
    }
    // Tools are still default deny for it.
    await expect(scope.check("open-agent", { tool: "send_email" })).rejects.toBeInstanceOf(
      ScopeViolation,
    );
    expect(h.audit.events).toEqual([
      denial("open-agent", { tool: "send_email", reason: "not_allowed" }),
    ]);
  });

  it.skipIf(!engine.available)(
    "refuses any model of an agent without a policy (default deny), and records it",
    async () => {
      const error = await rejectionOf(() => scope.check("ghost", { model: "gpt-4o-mini" }));
      expect(PolicyNotRegistered.isInstance(error)).toBe(true);
      expect((error as PolicyNotRegistered).message).toContain(
        "every tool, API and model call is denied",
      );
      expect(h.audit.events).toEqual([
        denial("ghost", { model: "gpt-4o-mini", reason: "no_policy" }),
      ]);
    },
  );

  it.skipIf(!engine.available)(
    "refuses an empty or over-long model name as invalid_request, even where any model is allowed",
    async () => {
      const long = "m".repeat(129);
      const cases: [string, string, string][] = [
        ["open-agent", "", "The model name is empty."],
        ["billing-agent", long, "The model name is 129 characters long; the limit is 128."],
        ["ghost", "", "The model name is empty."],
      ];
      for (const [agentId, model, note] of cases) {
        const error = (await rejectionOf(() => scope.check(agentId, { model }))) as ScopeViolation;
        expect(ScopeViolation.isInstance(error), agentId).toBe(true);
        expect(error.reason).toBe("invalid_request");
        expect(error.message).toContain(`it is not a valid model name. ${note}`);
        expect(error.recoveryHint).toBe("Call a model by its exact name (1–128 characters).");
      }
      const listed = (await rejectionOf(() =>
        scope.check("billing-agent", { model: "" }),
      )) as ScopeViolation;
      expect(listed.message).toContain('Allowed models: "gpt-4o-mini", "claude-sonnet-4-5".');
      // Where any model is allowed, no "(none)" list contradicts it.
      const open = (await rejectionOf(() =>
        scope.check("open-agent", { model: "" }),
      )) as ScopeViolation;
      expect(open.message).not.toContain("Allowed models");
      // Recorded cut at the limit, so that an over-long name cannot flood the chain.
      expect(h.audit.events.map((event) => event.metadata)).toEqual([
        { model: "", reason: "invalid_request", path: "scope.check" },
        { model: `${"m".repeat(128)}…`, reason: "invalid_request", path: "scope.check" },
        { model: "", reason: "invalid_request", path: "scope.check" },
        { model: "", reason: "invalid_request", path: "scope.check" },
        { model: "", reason: "invalid_request", path: "scope.check" },
      ]);
    },
  );

  it.skipIf(!engine.available)("refuses a halted agent before the model is looked at", async () => {
    halt.halted.add("billing-agent");
    halt.halted.add("ghost");
    const targets: [string, string][] = [
      ["billing-agent", "gpt-4o-mini"], // allowed
      ["billing-agent", "gpt-4o"], // not allowed
      ["billing-agent", ""], // invalid
      ["ghost", "gpt-4o-mini"], // no policy
    ];
    for (const [agentId, model] of targets) {
      const error = await rejectionOf(() => scope.check(agentId, { model }));
      expect(AgentHaltedError.isInstance(error), `${agentId} ${model}`).toBe(true);
      expect((error as AgentHaltedError).path).toBe("scope.check");
    }
    // The halt is presence's evidence, not a scope violation.
    expect(h.audit.events).toEqual([]);
    halt.halted.clear();
    await expect(scope.check("billing-agent", { model: "gpt-4o-mini" })).resolves.toBeUndefined();
  });

  it.skipIf(!engine.available)(
    "refuses bad input with an InvalidArgumentError that changes nothing",
    async () => {
      const before = await rows();
      const cases: [unknown, string, string | null][] = [
        [{ model: 7 }, "model", null],
        [{ model: null }, "model", null],
        [{ model: ["gpt-4o-mini"] }, "model", null],
        [{ tool: "read_invoice", model: "gpt-4o-mini" }, "target", "has both tool and model."],
        [{ api: "GET https://x.com/", model: "gpt-4o-mini" }, "target", "has both api and model."],
        [
          { tool: "a", api: "GET https://x.com/", model: "m" },
          "target",
          "has tool, api and model.",
        ],
        [{}, "target", "has neither tool nor api nor model."],
      ];
      for (const [target, field, problem] of cases) {
        const error = await rejectionOf(() => scope.check("billing-agent", target as never));
        expect(InvalidArgumentError.isInstance(error), JSON.stringify(target)).toBe(true);
        expect((error as InvalidArgumentError).field).toBe(field);
        if (problem) expect((error as InvalidArgumentError).message).toContain(problem);
        expect((error as InvalidArgumentError).recoveryHint).toContain("model");
      }
      // Rejected before the halt check, the policy lookup and the audit chain.
      expect(halt.calls).toEqual([]);
      expect(h.audit.events).toEqual([]);
      expect(await rows()).toEqual(before);
      await expect(scope.check("billing-agent", { model: "gpt-4o-mini" })).resolves.toBeUndefined();
    },
  );
});
