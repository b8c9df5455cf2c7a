import { ManualClock, silentLogger } from "@gov/core";
import {
  recordingAuditSink,
  recordingHaltGuard,
  rejectionOf,
  unreachableStore,
} from "@gov/core/testing";
import { describe, expect, it } from "vitest";
import { decisionsBlueprint } from "./__fixtures__";
import { PolicyError, StewardNotStartedError } from "./errors";
import { StewardModule, stewardModule } from "./module";

function context(audit = recordingAuditSink()) {
  return {
    store: unreachableStore(),
    keyring: undefined as never,
    clock: new ManualClock(),
    logger: silentLogger,
    audit,
    halt: recordingHaltGuard(["halted-agent"]),
  };
}

describe("steward module", () => {
  it("works without a database with persist: false, and audits through the context", async () => {
    const audit = recordingAuditSink();
    const module = await stewardModule.create(context(audit), {
      blueprints: [decisionsBlueprint()],
      persist: false,
    });
    const result = await module.evaluate({
      agentId: "a",
      action: "x",
      parameters: { kinds: ["BLOCK"] },
    });
    expect(result.intervention).toBe("BLOCK");
    expect(result.governanceStatus.trustDebtAfter).toBe(2);
    await stewardModule.close?.(module);
    expect(audit.events.map((event) => event.kind)).toEqual(["steward.intervention"]);
  });

  it("checks the halt guard before evaluating", async () => {
    const module = await StewardModule.create(context(), {
      blueprints: [decisionsBlueprint()],
      persist: false,
    });
    await expect(module.evaluate({ agentId: "halted-agent", action: "x" })).rejects.toMatchObject({
      code: "AGENT_HALTED",
    });
  });

  it("fails closed when the persisted state is unreachable", async () => {
    const module = await StewardModule.create(context(), {
      blueprints: [
        {
          id: "s@1",
          version: "1",
          tripwires: [
            {
              id: "daily",
              condition: "state.daily_total > 10.0",
              requiresState: true,
              onFail: { decision: "BLOCK" },
            },
          ],
        },
      ],
    });
    const result = await module.evaluate({ agentId: "a", action: "x" });
    // The state could not be read (BLOCK), and the debt neither (at least ESCALATE).
    expect(result.intervention).toBe("BLOCK");
    expect(result.metadata.trustDebtError).toContain("ECONNREFUSED");
  });

  it("guards with the module's steward", async () => {
    const module = await StewardModule.create(context(), {
      blueprints: [decisionsBlueprint()],
      persist: false,
    });
    const run = module.guard({ agentId: "g" }, async (_: { kinds: string[] }) => "ran");
    await expect(run({ kinds: [] })).resolves.toBe("ran");
    await expect(run({ kinds: ["BLOCK"] })).rejects.toMatchObject({ code: "TRIPWIRE_VIOLATION" });
  });

  it("refuses to start without blueprints", async () => {
    await expect(StewardModule.create(context(), { persist: false })).rejects.toSatisfy((error) =>
      PolicyError.isInstance(error),
    );
  });
});

// Issue 13: every module is constructed, started and closed the same way; the steward module
// had a private constructor and did its I/O in `create`.
describe("steward module lifecycle", () => {
  it("is constructed without I/O, started once, and closed idempotently", async () => {
    let fetches = 0;
    const registry = {
      async get(id: string) {
        fetches++;
        return { ...decisionsBlueprint(), id } as never;
      },
      async list() {
        return ["decisions@1.0"];
      },
    };
    const module = new StewardModule(context(), {
      blueprintIds: ["decisions@1.0"],
      registry,
      persist: false,
    });
    expect(fetches).toBe(0);
    const early = await rejectionOf(() => module.evaluate({ agentId: "a", action: "x" }));
    expect(StewardNotStartedError.isInstance(early)).toBe(true);
    expect(early).toMatchObject({ code: "STEWARD_NOT_STARTED" });
    await Promise.all([module.start(), module.start()]);
    await module.start();
    expect(fetches).toBe(1);
    const result = await module.evaluate({
      agentId: "a",
      action: "x",
      parameters: { kinds: ["BLOCK"] },
    });
    expect(result.intervention).toBe("BLOCK");
    await module.close();
    await module.close();
    await module[Symbol.asyncDispose]();
  });

  it("is what stewardModule.create builds", async () => {
    const module = await stewardModule.create(context(), {
      blueprints: [decisionsBlueprint()],
      persist: false,
    });
    expect(module).toBeInstanceOf(StewardModule);
    expect(module.steward.blueprints.map((blueprint) => blueprint.id)).toEqual(["decisions@1.0"]);
    await module.close();
  });
});
