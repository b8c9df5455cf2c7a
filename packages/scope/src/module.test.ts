import {
  AgentHaltedError,
  GovernanceError,
  InvalidArgumentError,
  noopAuditSink,
  noopHaltGuard,
  type Store,
  silentLogger,
} from "@gov/core";
import { describe, expect, it } from "vitest";
import { memoryScope, recordingLogger, testKeyring, unreachableStore } from "./__fixtures__";
import { PolicyNotRegistered, SCOPE_ERROR_CODES, ScopeViolation } from "./errors";
import { ScopePolicy } from "./models";
import { ScopeModule, scopeModule } from "./module";

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error("expected a rejection");
}

const BILLING = {
  agentId: "billing-agent",
  allowedTools: ["read_invoice", "send_email", "read.*"],
  allowedApis: ["GET https://api.stripe.com/v1/*", "POST https://api.stripe.com/v1/refunds"],
  hiddenTools: ["delete_all", "admin_reset"],
};

describe("check: default deny", () => {
  it("denies every call of an agent without a policy, and records each denial", async () => {
    const { scope, audit } = memoryScope();
    for (const target of [{ tool: "read_invoice" }, { api: "GET https://api.stripe.com/v1/x" }]) {
      const error = await rejection(scope.check("ghost", target));
      expect(error).toBeInstanceOf(PolicyNotRegistered);
      expect((error as PolicyNotRegistered).code).toBe(SCOPE_ERROR_CODES.POLICY_NOT_REGISTERED);
      expect((error as PolicyNotRegistered).recoveryHint).toContain("scope.register");
    }
    expect(audit.events).toEqual([
      {
        agentId: "ghost",
        kind: "scope.violation",
        metadata: { tool: "read_invoice", reason: "no_policy", path: "scope.check" },
      },
      {
        agentId: "ghost",
        kind: "scope.violation",
        metadata: {
          api: "GET https://api.stripe.com/v1/x",
          reason: "no_policy",
          path: "scope.check",
        },
      },
    ]);
  });

  it("passes allowed tools and writes nothing", async () => {
    const { scope, audit } = memoryScope();
    scope.register(new ScopePolicy(BILLING));
    await expect(scope.check("billing-agent", { tool: "read_invoice" })).resolves.toBeUndefined();
    await expect(
      scope.check("billing-agent", { api: "GET https://api.stripe.com/v1/invoices" }),
    ).resolves.toBeUndefined();
    expect(audit.events).toEqual([]);
  });

  it("denies a tool outside the allow-list, listing what is allowed and how to fix it", async () => {
    const { scope, audit } = memoryScope();
    scope.register(BILLING);
    const error = (await rejection(
      scope.check("billing-agent", { tool: "delete_user" }),
    )) as ScopeViolation;
    expect(error).toBeInstanceOf(ScopeViolation);
    expect(ScopeViolation.isInstance(error)).toBe(true);
    expect(GovernanceError.isInstance(error)).toBe(true);
    expect(error.code).toBe("SCOPE_VIOLATION");
    expect(error.reason).toBe("not_allowed");
    expect(error.tool).toBe("delete_user");
    expect(error.message).toBe(
      'Agent "billing-agent" may not call tool "delete_user": it is not in the policy\'s allowedTools. Allowed tools: "read_invoice", "send_email", "read.*".',
    );
    expect(error.recoveryHint).toContain('add "delete_user" to allowedTools');
    expect(audit.events).toEqual([
      {
        agentId: "billing-agent",
        kind: "scope.violation",
        metadata: { tool: "delete_user", reason: "not_allowed", path: "scope.check" },
      },
    ]);
  });

  it("lists the first ten allowed names, then how many more", async () => {
    const { scope } = memoryScope();
    const tools = Array.from({ length: 25 }, (_, index) => `tool_${index}`);
    scope.register({ agentId: "many", allowedTools: tools });
    const error = (await rejection(scope.check("many", { tool: "other" }))) as ScopeViolation;
    expect(error.message).toContain('"tool_9" and 15 more.');
    expect(error.message).not.toContain("tool_10");
    expect(error.allowed).toHaveLength(25);
  });

  it("denies case variants of an allowed tool and says names are case-sensitive", async () => {
    const { scope, audit } = memoryScope();
    scope.register(BILLING);
    for (const variant of ["Read_Invoice", "READ_INVOICE", "read_invoice ", "read_invoicE"]) {
      const error = (await rejection(
        scope.check("billing-agent", { tool: variant }),
      )) as ScopeViolation;
      expect(error).toBeInstanceOf(ScopeViolation);
    }
    const error = (await rejection(
      scope.check("billing-agent", { tool: "Read_Invoice" }),
    )) as ScopeViolation;
    expect(error.message).toContain('case-sensitive: the policy allows "read_invoice"');
    expect(audit.events).toHaveLength(5);
  });

  it("treats glob-looking names literally", async () => {
    const { scope } = memoryScope();
    scope.register(BILLING);
    await expect(scope.check("billing-agent", { tool: "read.*" })).resolves.toBeUndefined();
    await expect(scope.check("billing-agent", { tool: "read.invoice" })).rejects.toBeInstanceOf(
      ScopeViolation,
    );
  });

  it("denies API calls outside the entries, including host confusion", async () => {
    const { scope, audit } = memoryScope();
    scope.register(BILLING);
    await expect(
      scope.check("billing-agent", { api: "post https://api.stripe.com/v1/refunds" }),
    ).resolves.toBeUndefined();
    const cases: [string, string, string][] = [
      ["DELETE https://api.stripe.com/v1/customers/cus_1", "not_allowed", ""],
      ["GET https://api.stripe.com.evil.io/v1/customers", "not_allowed", ""],
      [
        "GET https://api.stripe.com@evil.io/v1/customers",
        "invalid_request",
        "GET https://REDACTED@evil.io/v1/customers",
      ],
      ["GET https://api.evil.com/v1/customers", "not_allowed", ""],
      ["GET https://api.stripe.com/v2/customers", "not_allowed", ""],
      ["POST https://api.stripe.com/v1/refunds/re_1", "not_allowed", ""],
    ];
    for (const [api, reason, recorded] of cases) {
      const error = (await rejection(scope.check("billing-agent", { api }))) as ScopeViolation;
      expect(error).toBeInstanceOf(ScopeViolation);
      expect(error.reason).toBe(reason);
      expect(error.api).toBe(recorded || api);
      expect(error.message).toContain("Allowed APIs:");
    }
    expect(audit.events.map((event) => event.metadata?.api)).toEqual(
      cases.map(([api, , recorded]) => recorded || api),
    );
  });

  it("records 20 concurrent denials as 20 audit events", async () => {
    const { scope, audit } = memoryScope();
    scope.register(BILLING);
    const results = await Promise.allSettled(
      Array.from({ length: 20 }, (_, index) =>
        scope.check("billing-agent", { tool: `forbidden_${index}` }),
      ),
    );
    expect(results.every((result) => result.status === "rejected")).toBe(true);
    expect(audit.events).toHaveLength(20);
    expect(new Set(audit.events.map((event) => event.metadata?.tool)).size).toBe(20);
    expect(audit.events.every((event) => event.kind === "scope.violation")).toBe(true);
  });

  it("still denies when the audit sink fails, and says so", async () => {
    const logger = recordingLogger();
    const scope = new ScopeModule(
      {
        store: unreachableStore(),
        logger,
        audit: {
          log: async () => {
            throw new Error("sink down");
          },
        },
        halt: noopHaltGuard,
      },
      { persist: false },
    );
    scope.register(BILLING);
    await expect(scope.check("billing-agent", { tool: "delete_user" })).rejects.toBeInstanceOf(
      ScopeViolation,
    );
    expect(logger.lines.some((line) => line.level === "error")).toBe(true);
  });

  it("enforces what the policy was built with, whatever is done to its views", async () => {
    const { scope } = memoryScope();
    const policy = new ScopePolicy(BILLING);
    expect(() => Set.prototype.add.call(policy.allowedTools, "delete_user")).toThrow(TypeError);
    expect(() => Set.prototype.delete.call(policy.hiddenTools, "delete_all")).toThrow(TypeError);
    scope.register(policy);
    expect(() => Set.prototype.add.call(policy.allowedTools, "delete_user")).toThrow(TypeError);
    await expect(scope.check("billing-agent", { tool: "delete_user" })).rejects.toBeInstanceOf(
      ScopeViolation,
    );
    await expect(scope.check("billing-agent", { tool: "delete_all" })).rejects.toMatchObject({
      reason: "hidden",
    });
    expect(scope.filterTools("billing-agent", ["delete_all", "read_invoice"])).toEqual([
      "read_invoice",
    ]);
  });

  it("replaces a policy on a second register", async () => {
    const { scope } = memoryScope();
    scope.register(BILLING);
    scope.register({ agentId: "billing-agent", allowedTools: ["delete_user"] });
    await expect(scope.check("billing-agent", { tool: "delete_user" })).resolves.toBeUndefined();
    await expect(scope.check("billing-agent", { tool: "read_invoice" })).rejects.toBeInstanceOf(
      ScopeViolation,
    );
    expect(scope.getPolicy("billing-agent")?.allowedTools.has("delete_user")).toBe(true);
    expect(scope.listPolicies()).toHaveLength(1);
  });
});

describe("the halt comes first", () => {
  it("refuses a halted agent before PolicyNotRegistered, and before the allow-list", async () => {
    const { scope, audit, halt } = memoryScope({ halted: ["ghost", "billing-agent"] });
    const unregistered = await rejection(scope.check("ghost", { tool: "read_invoice" }));
    expect(AgentHaltedError.isInstance(unregistered)).toBe(true);
    expect(GovernanceError.isInstance(unregistered)).toBe(false);
    expect((unregistered as AgentHaltedError).path).toBe("scope.check");
    scope.register(BILLING);
    const allowed = await rejection(scope.check("billing-agent", { tool: "read_invoice" }));
    expect(AgentHaltedError.isInstance(allowed)).toBe(true);
    expect(halt.calls).toEqual([
      { agentId: "ghost", context: { path: "scope.check" } },
      { agentId: "billing-agent", context: { path: "scope.check" } },
    ]);
    // The halt is presence's evidence, not a scope violation.
    expect(audit.events).toEqual([]);
    halt.halted.clear();
    await expect(scope.check("billing-agent", { tool: "read_invoice" })).resolves.toBeUndefined();
  });
});

describe("hidden tools", () => {
  const tools = [
    "read_invoice",
    { name: "delete_all", description: "Anthropic-style" },
    { type: "function", function: { name: "admin_reset", parameters: {} } },
    { type: "function", function: { name: "send_email", parameters: {} } },
    "admin_reset",
    { name: "read.*" },
  ] as const;

  it("are removed from tool lists, keeping order and the elements themselves", () => {
    const { scope } = memoryScope();
    scope.register(BILLING);
    const visible = scope.filterTools("billing-agent", tools);
    expect(visible).toEqual(["read_invoice", tools[3], { name: "read.*" }]);
    expect(visible[1]).toBe(tools[3]);
    expect(scope.filterTools("billing-agent", [])).toEqual([]);
  });

  it("are removed when any of a tool's names is hidden", () => {
    const { scope } = memoryScope();
    scope.register(BILLING);
    const sneaky = { name: "read_invoice", function: { name: "delete_all" } };
    expect(scope.filterTools("billing-agent", [sneaky])).toEqual([]);
  });

  it("are refused by check, and the refusal is recorded", async () => {
    const { scope, audit } = memoryScope();
    scope.register(BILLING);
    const error = (await rejection(
      scope.check("billing-agent", { tool: "delete_all" }),
    )) as ScopeViolation;
    expect(error).toBeInstanceOf(ScopeViolation);
    expect(error.reason).toBe("hidden");
    expect(error.message).toContain("hiddenTools");
    expect(audit.events[0]?.metadata).toEqual({
      tool: "delete_all",
      reason: "hidden",
      path: "scope.check",
    });
  });

  it("are never leaked for an agent without a policy", () => {
    const { scope } = memoryScope();
    scope.register(BILLING);
    expect(() => scope.filterTools("Billing-Agent", tools)).toThrow(PolicyNotRegistered);
    expect(() => scope.filterTools("nobody", ["delete_all"])).toThrow(PolicyNotRegistered);
  });
});

describe("requireTool", () => {
  it("runs the function only when the check passes, with its arguments and this", async () => {
    const { scope, halt } = memoryScope();
    scope.register(BILLING);
    const calls: unknown[][] = [];
    const send = scope.requireTool(
      { agentId: "billing-agent", tool: "send_email" },
      (to: string, body: string) => {
        calls.push([to, body]);
        return `sent to ${to}`;
      },
    );
    await expect(send("a@example.com", "hi")).resolves.toBe("sent to a@example.com");
    const remove = scope.requireTool({ agentId: "billing-agent", tool: "delete_all" }, () => {
      calls.push(["deleted"]);
    });
    await expect(remove()).rejects.toBeInstanceOf(ScopeViolation);
    halt.halted.add("billing-agent");
    await expect(send("b@example.com", "again")).rejects.toBeInstanceOf(AgentHaltedError);
    expect(calls).toEqual([["a@example.com", "hi"]]);
  });
});

describe("bad input", () => {
  const { scope, audit } = memoryScope();
  scope.register(BILLING);

  it.each([
    [undefined, { tool: "x" }, "agentId"],
    ["", { tool: "x" }, "agentId"],
    [42, { tool: "x" }, "agentId"],
    ["a".repeat(257), { tool: "x" }, "agentId"],
    ["billing-agent", undefined, "target"],
    ["billing-agent", "read_invoice", "target"],
    ["billing-agent", {}, "target"],
    ["billing-agent", { tool: "read_invoice", api: "GET https://x.com/" }, "target"],
    ["billing-agent", { tool: 7 }, "tool"],
    ["billing-agent", { tool: null }, "tool"],
    ["billing-agent", { api: 7 }, "api"],
    ["billing-agent", { api: ["GET https://x.com/"] }, "api"],
  ])("check(%j, %j) → InvalidArgumentError on %s", async (agentId, target, field) => {
    const error = await rejection(scope.check(agentId as never, target as never));
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect((error as InvalidArgumentError).field).toBe(field);
    expect((error as InvalidArgumentError).recoveryHint.length).toBeGreaterThan(10);
    expect(audit.events).toEqual([]);
  });

  it("names both and neither of tool and api", async () => {
    const both = (await rejection(
      scope.check("billing-agent", { tool: "a", api: "GET https://x.com/" } as never),
    )) as InvalidArgumentError;
    expect(both.message).toContain("both tool and api");
    const neither = (await rejection(
      scope.check("billing-agent", {} as never),
    )) as InvalidArgumentError;
    expect(neither.message).toContain("neither tool nor api");
  });

  // Guards against a promise-returning function that throws synchronously on bad input.
  it("reports bad input to every promise-returning function by rejecting, never by throwing", async () => {
    const calls: [string, () => unknown][] = [
      ["check(null)", () => scope.check(null as never, { tool: "x" })],
      ["check(id, null)", () => scope.check("billing-agent", null as never)],
      ["check(id, { tool: 1 })", () => scope.check("billing-agent", { tool: 1 } as never)],
      ["create(null)", () => scopeModule.create(null as never, undefined)],
      [
        "create(no keyring)",
        () =>
          scopeModule.create(
            {
              store: unreachableStore(),
              logger: silentLogger,
              audit: noopAuditSink,
              halt: noopHaltGuard,
            } as never,
            undefined,
          ),
      ],
      [
        "create(bad options)",
        () =>
          scopeModule.create(
            {
              store: unreachableStore(),
              keyring: testKeyring(),
              logger: silentLogger,
              audit: noopAuditSink,
              halt: noopHaltGuard,
            } as never,
            { pollIntervalMs: -1 },
          ),
      ],
    ];
    for (const [name, call] of calls) {
      let returned: unknown;
      expect(() => {
        returned = call();
      }, name).not.toThrow();
      expect(returned, name).toBeInstanceOf(Promise);
      expect(await rejection(returned as Promise<unknown>), name).toBeInstanceOf(
        InvalidArgumentError,
      );
    }
  });

  it("refuses bad input to filterTools", () => {
    expect(() => scope.filterTools("billing-agent", "read_invoice" as never)).toThrow(
      InvalidArgumentError,
    );
    expect(() => scope.filterTools("", [])).toThrow(InvalidArgumentError);
    for (const tool of [null, 3, {}, { name: 3 }, { function: null }, { function: { name: 1 } }]) {
      expect(() => scope.filterTools("billing-agent", ["read_invoice", tool] as never)).toThrow(
        /tools\[1\]/,
      );
    }
  });

  it("refuses bad input to requireTool at wrap time", () => {
    const fn = () => 1;
    expect(() => scope.requireTool(null as never, fn)).toThrow(InvalidArgumentError);
    expect(() => scope.requireTool({ agentId: "", tool: "x" }, fn)).toThrow(/agentId/);
    expect(() => scope.requireTool({ agentId: "a", tool: 1 as never }, fn)).toThrow(/tool/);
    expect(() => scope.requireTool({ agentId: "a", tool: "x" }, "fn" as never)).toThrow(/fn/);
    // A misspelt option is refused, never ignored.
    expect(() => scope.requireTool({ agentId: "a", tool: "x", toool: "y" } as never, fn)).toThrow(
      /options\.toool: is not an option; did you mean `tool`\?/,
    );
  });

  it("refuses an invalid policy at register, and keeps the old one", async () => {
    expect(() => scope.register({ agentId: "billing-agent", allowedTools: [""] })).toThrow(
      /allowedTools\[0\]/,
    );
    expect(() => scope.register(null as never)).toThrow(/policy/);
    await expect(scope.check("billing-agent", { tool: "read_invoice" })).resolves.toBeUndefined();
  });

  it("refuses a missing port or a bad option at construction", () => {
    const base = {
      store: unreachableStore(),
      keyring: testKeyring(),
      logger: silentLogger,
      audit: noopAuditSink,
      halt: noopHaltGuard,
    };
    expect(() => new ScopeModule(null as never)).toThrow(/context/);
    expect(() => new ScopeModule({ ...base, halt: undefined as never })).toThrow(/context\.halt/);
    expect(() => new ScopeModule({ ...base, audit: {} as never })).toThrow(/context\.audit/);
    expect(() => new ScopeModule({ ...base, store: null as never })).toThrow(/context\.store/);
    expect(() => new ScopeModule({ ...base, logger: undefined as never })).toThrow(
      /context\.logger/,
    );
    expect(() => new ScopeModule(base, { pollIntervalMs: 5 })).toThrow(/pollIntervalMs/);
    expect(() => new ScopeModule(base, { pollIntervalMs: 1.5 })).toThrow(/pollIntervalMs/);
    expect(() => new ScopeModule(base, { listen: "yes" as never })).toThrow(/listen/);
    expect(() => new ScopeModule(base, { poll: 100 } as never)).toThrow(/poll/);
    // A misspelt option is refused the one way (core's parseOptions), with a suggestion.
    const misspelt = (() => {
      try {
        new ScopeModule(base, { pollInterval: 100, persist: false } as never);
      } catch (error) {
        return error;
      }
    })() as InvalidArgumentError;
    expect(InvalidArgumentError.isInstance(misspelt)).toBe(true);
    expect(misspelt.field).toBe("options.pollInterval");
    expect(misspelt.message).toContain("is not an option; did you mean `pollIntervalMs`?");
    expect(misspelt.recoveryHint).toContain("pollIntervalMs");
    expect(() => new ScopeModule(base, { pollIntervalMs: null })).not.toThrow();
  });

  // Guards against a module that persists policies without a key to sign and verify them with.
  it("requires a keyring when it persists policies, and only then", () => {
    const base = {
      store: unreachableStore(),
      logger: silentLogger,
      audit: noopAuditSink,
      halt: noopHaltGuard,
    };
    for (const keyring of [undefined, null, {}, { find: () => undefined }, "secret"]) {
      const error = (() => {
        try {
          new ScopeModule({ ...base, keyring: keyring as never });
        } catch (caught) {
          return caught;
        }
        return null;
      })() as InvalidArgumentError;
      expect(error).toBeInstanceOf(InvalidArgumentError);
      expect(error.message).toContain("context.keyring");
      expect(error.recoveryHint).toContain("persist: false");
    }
    expect(() => new ScopeModule(base, { persist: false })).not.toThrow();
    expect(() => new ScopeModule({ ...base, keyring: testKeyring() })).not.toThrow();
  });
});

describe("a database that is down", () => {
  it("never makes register throw: the policy applies in memory and the failure is logged", async () => {
    const logger = recordingLogger();
    const scope = new ScopeModule(
      {
        store: unreachableStore(),
        keyring: testKeyring(),
        logger,
        audit: noopAuditSink,
        halt: noopHaltGuard,
      },
      { pollIntervalMs: null },
    );
    await scope.start();
    expect(() => scope.register(BILLING)).not.toThrow();
    await expect(scope.check("billing-agent", { tool: "read_invoice" })).resolves.toBeUndefined();
    await scope.flush();
    expect(logger.lines.some((line) => line.message.includes("Could not persist"))).toBe(true);
    await scope.close();
  });
});

describe("what the agent sent is a denial, not an argument error", () => {
  const INVALID: [string, { tool: string } | { api: string }][] = [
    ["file URL", { api: "GET file:///etc/passwd" }],
    ["malformed URL", { api: "GET not a url" }],
    ["no method", { api: "https://api.stripe.com/v1" }],
    ["no scheme", { api: "GET api.stripe.com/v1" }],
    ["empty api", { api: "" }],
    ["dot segment", { api: "GET https://api.stripe.com/v1/../admin" }],
    ["over-long api", { api: `GET https://api.stripe.com/v1/${"a".repeat(4_100)}` }],
    ["empty tool", { tool: "" }],
    ["over-long tool", { tool: "t".repeat(300) }],
  ];

  it.each(INVALID)("%s: ScopeViolation invalid_request, recorded", async (_, target) => {
    const { scope, audit } = memoryScope();
    scope.register(BILLING);
    const error = (await rejection(scope.check("billing-agent", target))) as ScopeViolation;
    expect(error).toBeInstanceOf(ScopeViolation);
    expect(error.reason).toBe("invalid_request");
    expect(error.recoveryHint.length).toBeGreaterThan(10);
    expect(audit.events).toHaveLength(1);
    const event = audit.events[0];
    expect(event?.kind).toBe("scope.violation");
    expect(event?.metadata?.reason).toBe("invalid_request");
    const recorded = String(event?.metadata?.tool ?? event?.metadata?.api);
    expect(recorded.length).toBeLessThanOrEqual(600);
    expect(recorded).toBe("tool" in target ? error.tool : error.api);
  });

  it("denies them for an agent without a policy too, and only after the halt check", async () => {
    const { scope, audit } = memoryScope({ halted: ["halted-agent"] });
    const error = (await rejection(
      scope.check("ghost", { api: "GET file:///etc/passwd" }),
    )) as ScopeViolation;
    expect(error).toBeInstanceOf(ScopeViolation);
    expect(error.reason).toBe("invalid_request");
    expect(error.allowed).toEqual([]);
    const halted = await rejection(scope.check("halted-agent", { api: "GET file:///etc/passwd" }));
    expect(AgentHaltedError.isInstance(halted)).toBe(true);
    expect(audit.events.map((event) => [event.agentId, event.metadata?.reason])).toEqual([
      ["ghost", "invalid_request"],
    ]);
  });
});

describe("secrets never reach the audit chain or errors", () => {
  const SECRET = "sk_live_5ecr3t";
  const CALLS = [
    // Denied as not allowed (v2 is not in the entries).
    `GET https://api.stripe.com/v2/customers?api_key=${SECRET}&limit=3`,
    // Denied as invalid (userinfo), under every parser's reading.
    `GET https://user:${SECRET}@api.stripe.com/v1/customers`,
    `GET https://${SECRET}@api.stripe.com/v1/customers`,
    `GET https://api.stripe.com\\@${SECRET}@evil.io/v1`,
    `GET https://api.stripe.com/v1/customers?token=${SECRET}#x`,
    // Invalid for another reason, with a secret in the query.
    `GET https://API.stripe.com/v1/customers?token=${SECRET}`,
    `GET https://api.stripe.com/v1/customers?tok%25en=${SECRET}`,
  ];

  function leaks(error: unknown, events: unknown[]): string[] {
    const e = error as ScopeViolation & PolicyNotRegistered;
    const texts = [
      e.message,
      e.recoveryHint,
      String(e.api),
      JSON.stringify(e),
      JSON.stringify(Object.values(e)),
      JSON.stringify(events),
    ];
    return texts.filter((text) => text.includes(SECRET));
  }

  it.each(CALLS)("%s", async (api) => {
    const { scope, audit } = memoryScope();
    scope.register(BILLING);
    const error = await rejection(scope.check("billing-agent", { api }));
    expect(ScopeViolation.isInstance(error)).toBe(true);
    expect(audit.events).toHaveLength(1);
    expect(leaks(error, audit.events)).toEqual([]);
    const unregistered = await rejection(scope.check("ghost", { api }));
    expect(GovernanceError.isInstance(unregistered)).toBe(true);
    expect(audit.events).toHaveLength(2);
    expect(leaks(unregistered, audit.events)).toEqual([]);
  });

  it("records the method, origin and path, with query names kept and values redacted", async () => {
    const { scope, audit } = memoryScope();
    scope.register(BILLING);
    const error = (await rejection(
      scope.check("billing-agent", { api: CALLS[0] as string }),
    )) as ScopeViolation;
    expect(error.api).toBe(
      "GET https://api.stripe.com/v2/customers?api_key=REDACTED&limit=REDACTED",
    );
    expect(audit.events[0]?.metadata?.api).toBe(error.api);
  });
});

describe("start", () => {
  it("subscribes to notifications before it loads the stored policies", async () => {
    const calls: string[] = [];
    const db = new Proxy(
      {},
      {
        get: (_, property) => () => {
          calls.push(`db.${String(property)}`);
          throw new Error("connect ECONNREFUSED 127.0.0.1:5432");
        },
      },
    );
    const store = {
      ...unreachableStore(),
      db,
      listen: async (channel: string) => {
        calls.push(`listen ${channel}`);
        return { unsubscribe: async () => {} };
      },
    } as unknown as Store;
    const scope = new ScopeModule(
      {
        store,
        keyring: testKeyring(),
        logger: silentLogger,
        audit: noopAuditSink,
        halt: noopHaltGuard,
      },
      { pollIntervalMs: null },
    );
    await scope.start();
    expect(calls).toEqual(["listen gov_scope_policies", "db.select"]);
    await scope.close();
  });
});
