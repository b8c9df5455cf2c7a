import {
  type AuditSink,
  defineModule,
  type HaltCheckContext,
  type HaltGuard,
  InvalidArgumentError,
  type Logger,
  type MigrationSource,
  type ModuleContext,
  requirePort,
  type Store,
  type Subscription,
  sql,
} from "@gov/core";
import { eq } from "drizzle-orm";
import { z } from "zod";
import { type ApiRule, isProblem, matchesApi, parseApiRequest, redactApi } from "./api-rule";
import { PolicyNotRegistered, type ScopeDenialReason, ScopeViolation } from "./errors";
import { SCOPE_LIMITS, ScopePolicy, type ScopePolicyInput } from "./models";
import { policies } from "./schema";

/** The scope module's migrations: schema `gov_scope`. */
export const scopeMigrations: MigrationSource = {
  name: "scope",
  migrationsFolder: new URL("../drizzle", import.meta.url),
};

/** The channel on which registrations are announced to other processes (payload: the agent id). */
export const SCOPE_POLICY_CHANNEL = "gov_scope_policies";

/** The audit event kind of a denial. */
export const SCOPE_VIOLATION_KIND = "scope.violation";

/** Characters of an `api` passed to {@link ScopeModule.check}. */
const MAX_API_LENGTH = 4_096;

const optionsSchema = z.strictObject({
  persist: z.boolean().default(true),
  listen: z.boolean().default(true),
  pollIntervalMs: z.int().min(100).max(86_400_000).nullable().default(30_000),
});

/** Options of the scope module. */
export interface ScopeOptions {
  /**
   * Write registered policies to Postgres (best-effort: a failure is logged and retried at the
   * next poll, never thrown) and load the policies other processes registered. @default true
   */
  persist?: boolean;
  /**
   * Follow other processes' registrations as they happen (Postgres LISTEN/NOTIFY; all
   * policies are reloaded after the listening connection reconnects). @default true
   */
  listen?: boolean;
  /**
   * How often all policies are reloaded from Postgres, as the fallback to notifications (and
   * when failed writes are retried); `null` turns polling off. 100 ms to 1 day. @default 30000
   */
  pollIntervalMs?: number | null;
}

/** What {@link ScopeModule.check} checks: one tool, or one API call — never both. */
export type ScopeCheckTarget =
  | {
      /** An exact, case-sensitive tool name. */
      tool: string;
      api?: undefined;
    }
  | {
      /** `"METHOD URL"`, e.g. `"GET https://api.stripe.com/v1/invoices"`. */
      api: string;
      tool?: undefined;
    };

/**
 * A tool as `filterTools` accepts it: its name, an object with a `name` (Anthropic, MCP), or
 * an OpenAI tool spec with `function.name`.
 */
export type ToolLike = string | { name: string } | { function: { name: string } };

/** One policy as this process holds it, compiled for the hot path. */
interface Entry {
  readonly policy: ScopePolicy;
  /** Private copies: nothing outside the module can change what is enforced. */
  readonly tools: ReadonlySet<string>;
  readonly hidden: ReadonlySet<string>;
  readonly rules: readonly ApiRule[];
  readonly toolList: readonly string[];
  readonly apiList: readonly string[];
  /** The stored revision this policy is (or replaced), 0 when none is known. */
  revision: number;
  /** Writes of this policy in flight: a stored row does not replace it meanwhile. */
  pending: number;
  /** Its write failed; it is retried at the next poll and not replaced meanwhile. */
  unsaved: boolean;
}

function compile(policy: ScopePolicy, revision: number): Entry {
  const snapshot = policy.toJSON();
  return {
    policy,
    tools: new Set(snapshot.allowedTools),
    hidden: new Set(snapshot.hiddenTools),
    rules: policy.apiRules,
    toolList: snapshot.allowedTools,
    apiList: snapshot.allowedApis,
    revision,
    pending: 0,
    unsaved: false,
  };
}

const SCOPE_CHECK: HaltCheckContext = Object.freeze({ path: "scope.check" });

interface PolicyRow {
  agentId: string;
  allowedTools: string[];
  allowedApis: string[];
  hiddenTools: string[];
  allowedModels: string[];
  revision: number;
}

const ROW_COLUMNS = {
  agentId: policies.agentId,
  allowedTools: policies.allowedTools,
  allowedApis: policies.allowedApis,
  hiddenTools: policies.hiddenTools,
  allowedModels: policies.allowedModels,
  revision: policies.revision,
};

/**
 * What each agent may call: exact tool allow-lists, API entries that never cross hosts,
 * hidden tools, and default deny. An enforcement surface: `check` fails closed, and every
 * denial is written to the audit chain (`scope.violation`) before it is thrown.
 *
 * Policies live in memory (the hot path is a Set lookup after the halt check) and are
 * persisted to `gov_scope.policies`; other processes pick registrations up by
 * LISTEN/NOTIFY, with polling as the fallback.
 *
 * @example
 * ```ts
 * sdk.scope.register(new ScopePolicy({
 *   agentId: "billing-agent",
 *   allowedTools: ["read_invoice", "send_email"],
 *   allowedApis: ["GET https://api.stripe.com/v1/*"],
 *   hiddenTools: ["delete_all", "admin_reset"],
 * }));
 * await sdk.scope.check("billing-agent", { tool: "read_invoice" });      // passes
 * await sdk.scope.check("billing-agent", { tool: "delete_user" });       // ScopeViolation
 * const visible = sdk.scope.filterTools("billing-agent", openAiTools);   // hidden ones removed
 * ```
 */
export class ScopeModule {
  readonly #store: Store;
  readonly #logger: Logger;
  readonly #audit: AuditSink;
  readonly #halt: HaltGuard;
  readonly #persist: boolean;
  readonly #listen: boolean;
  readonly #pollIntervalMs: number | null;
  readonly #entries = new Map<string, Entry>();
  /** The last write of each agent's policy, so that one agent's writes land in order. */
  readonly #writes = new Map<string, Promise<void>>();
  #subscription: Subscription | null = null;
  #timer: NodeJS.Timeout | null = null;
  #closed = false;

  /**
   * @param context The store, logger, audit sink and halt guard (from the composition, or
   *   `noopAuditSink` / `noopHaltGuard` when used alone).
   * @throws {InvalidArgumentError} for a missing port or a bad option.
   */
  constructor(
    context: Pick<ModuleContext, "store" | "logger" | "audit" | "halt">,
    options: ScopeOptions = {},
  ) {
    if (typeof context !== "object" || context === null) {
      throw new InvalidArgumentError(
        "context",
        "must be an object.",
        "Pass { store, logger, audit, halt } (a ModuleContext).",
      );
    }
    requirePort(context.store, "store", ["query", "transaction", "listen"], "a @gov/core Store");
    requirePort(context.logger, "logger", ["warn", "error"], "a Logger (e.g. silentLogger)");
    requirePort(context.audit, "audit", ["log"], "an AuditSink (noopAuditSink records nothing)");
    requirePort(
      context.halt,
      "halt",
      ["assertAlive"],
      "a HaltGuard (noopHaltGuard when there is no presence module)",
    );
    const parsed = optionsSchema.safeParse(options ?? {});
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const field =
        issue?.code === "unrecognized_keys"
          ? issue.keys.join(", ")
          : String(issue?.path[0] ?? "options");
      throw new InvalidArgumentError(
        field,
        issue?.message ?? "is invalid.",
        "Pass { persist?: boolean, listen?: boolean, pollIntervalMs?: 100–86400000 | null }.",
      );
    }
    this.#store = context.store;
    this.#logger = context.logger;
    this.#audit = context.audit;
    this.#halt = context.halt;
    this.#persist = parsed.data.persist;
    this.#listen = parsed.data.persist && parsed.data.listen;
    this.#pollIntervalMs = parsed.data.persist ? parsed.data.pollIntervalMs : null;
  }

  /**
   * @internal Subscribe to changes, then load the stored policies (in that order, so that no
   * registration announced meanwhile is missed), and start polling. A database that cannot
   * be reached is logged, not thrown: polling keeps trying.
   */
  async start(): Promise<void> {
    if (!this.#persist) return;
    if (this.#listen) {
      try {
        this.#subscription = await this.#store.listen(
          SCOPE_POLICY_CHANNEL,
          (agentId) => {
            this.#reloadOne(agentId);
          },
          {
            onReconnect: () => {
              void this.reload();
            },
          },
        );
      } catch (error) {
        this.#logger.warn(
          "Could not listen for scope policy changes; other processes' registrations arrive by polling only.",
          { error: describe(error) },
        );
      }
    }
    await this.reload();
    if (this.#pollIntervalMs !== null && !this.#closed) {
      this.#timer = setInterval(() => {
        void this.reload();
      }, this.#pollIntervalMs);
      this.#timer.unref();
    }
  }

  /**
   * Register (or replace) an agent's policy. It applies in this process at once; it is then
   * persisted best-effort (a store failure is logged and retried, never thrown) and
   * announced, so that other processes pick it up.
   *
   * @param policy A {@link ScopePolicy}, or the input to build one.
   * @returns The registered (immutable) policy.
   * @throws {InvalidScopePolicyError} for an invalid policy; nothing is registered then.
   */
  register(policy: ScopePolicy | ScopePolicyInput): ScopePolicy {
    const built =
      policy instanceof ScopePolicy
        ? policy
        : new ScopePolicy(ScopePolicy.isInstance(policy) ? policy.toJSON() : policy);
    const previous = this.#entries.get(built.agentId);
    const entry = compile(built, previous?.revision ?? 0);
    this.#entries.set(built.agentId, entry);
    if (this.#persist) this.#save(entry);
    return built;
  }

  /**
   * Check that the agent may call a tool or an API. In order: the operator's halt
   * (`AgentHaltedError`, before anything else is looked at), then default deny (no policy →
   * `PolicyNotRegistered`), then the allow-list: tools exact and case-sensitive, hidden
   * tools always refused; APIs exact or by a trailing-`*` prefix on the same scheme, host
   * and port. Each denial is written to the audit chain as `scope.violation` (agent, tool or
   * api, reason) before it is thrown.
   *
   * What the agent sent is a denial, never an argument error: an API call that is not a
   * canonical `"METHOD scheme://host[:port]/path[?query]"` (not http(s), unparseable, not
   * normalized, `\\`, `@`, dot segments, `%25`, `%2e`, overlong UTF-8, …) or an empty or
   * over-long tool name is refused after the halt check as a `ScopeViolation` with reason
   * `invalid_request`, and recorded. API calls are recorded and reported redacted: no user
   * name or password, query values as `REDACTED`, cut when long.
   *
   * Caller bugs are `InvalidArgumentError`s, thrown before anything is checked or logged: an
   * agentId that is not a non-empty string of ≤ 256 characters, neither or both of `tool`
   * and `api`, a `tool` or `api` that is not a string.
   *
   * @throws {AgentHaltedError} the agent is halted.
   * @throws {PolicyNotRegistered} no policy for the agent.
   * @throws {ScopeViolation} the call is not allowed, or cannot be checked (the message lists what is allowed).
   * @throws {InvalidArgumentError} bad arguments; nothing was checked or logged.
   */
  async check(agentId: string, target: ScopeCheckTarget): Promise<void> {
    if (
      typeof agentId !== "string" ||
      agentId.length === 0 ||
      agentId.length > SCOPE_LIMITS.agentId
    )
      throw invalidAgentId(agentId);
    if (typeof target !== "object" || target === null) throw invalidTarget(target);
    const tool: unknown = target.tool;
    const api: unknown = target.api;
    if (tool !== undefined) {
      if (api !== undefined) throw invalidTarget(target);
      if (typeof tool !== "string") throw invalidName("tool", tool, SCOPE_LIMITS.toolName);
    } else if (api === undefined) {
      throw invalidTarget(target);
    } else if (typeof api !== "string") {
      throw invalidName("api", api, MAX_API_LENGTH);
    }
    await this.#halt.assertAlive(agentId, SCOPE_CHECK);
    const entry = this.#entries.get(agentId);
    if (typeof tool === "string") {
      if (entry?.tools.has(tool)) return;
      if (tool.length === 0 || tool.length > SCOPE_LIMITS.toolName) {
        const note =
          tool.length === 0
            ? "The tool name is empty."
            : `The tool name is ${tool.length} characters long; the limit is ${SCOPE_LIMITS.toolName}.`;
        return this.#denyInvalid(agentId, { tool: cutName(tool) }, entry?.toolList ?? [], note);
      }
      return this.#denyTool(agentId, tool, entry);
    }
    return this.#checkApi(agentId, api as string, entry);
  }

  /**
   * Remove the agent's hidden tools from a tool list before it is given to the model. Keeps
   * the order and the elements as they are (strings, `{ name }` objects, OpenAI specs with
   * `function.name`); a tool is removed when any of its names is hidden. Synchronous.
   *
   * @example
   * ```ts
   * const tools = sdk.scope.filterTools("billing-agent", [
   *   { type: "function", function: { name: "read_invoice", parameters: {} } },
   *   { type: "function", function: { name: "delete_all", parameters: {} } },
   * ]); // only read_invoice
   * ```
   * @throws {PolicyNotRegistered} for an agent without a policy (never returns the list unfiltered).
   * @throws {InvalidArgumentError} for a list that is not an array, or a tool without a name.
   */
  filterTools<T extends ToolLike>(agentId: string, tools: readonly T[]): T[] {
    if (
      typeof agentId !== "string" ||
      agentId.length === 0 ||
      agentId.length > SCOPE_LIMITS.agentId
    )
      throw invalidAgentId(agentId);
    if (!Array.isArray(tools)) {
      throw new InvalidArgumentError(
        "tools",
        `must be an array, got ${typeOf(tools)}.`,
        "Pass the tool list you are about to give the model (names, or tool objects).",
      );
    }
    const entry = this.#entries.get(agentId);
    if (entry === undefined) throw new PolicyNotRegistered(agentId);
    const hidden = entry.hidden;
    const out: T[] = [];
    for (let index = 0; index < tools.length; index++) {
      const tool = tools[index] as T;
      if (!isHidden(tool, index, hidden)) out.push(tool);
    }
    return out;
  }

  /**
   * Wrap a function so that every call is checked first (`check(agentId, { tool })`); the
   * function runs only when the check passes.
   *
   * @example
   * ```ts
   * const sendEmail = sdk.scope.requireTool({ agentId: "billing-agent", tool: "send_email" }, send);
   * await sendEmail(to, body); // throws ScopeViolation / AgentHaltedError instead of sending
   * ```
   * @throws {InvalidArgumentError} at wrap time, for a bad agent id, tool or function.
   */
  requireTool<Args extends unknown[], Result>(
    options: { agentId: string; tool: string },
    fn: (...args: Args) => Result,
  ): (...args: Args) => Promise<Awaited<Result>> {
    if (typeof options !== "object" || options === null) {
      throw new InvalidArgumentError(
        "options",
        `must be an object, got ${typeOf(options)}.`,
        "Pass { agentId, tool }.",
      );
    }
    const { agentId, tool } = options;
    if (
      typeof agentId !== "string" ||
      agentId.length === 0 ||
      agentId.length > SCOPE_LIMITS.agentId
    )
      throw invalidAgentId(agentId);
    if (typeof tool !== "string" || tool.length === 0 || tool.length > SCOPE_LIMITS.toolName)
      throw invalidName("tool", tool, SCOPE_LIMITS.toolName);
    if (typeof fn !== "function") {
      throw new InvalidArgumentError(
        "fn",
        `must be a function, got ${typeOf(fn)}.`,
        "Pass the function that performs the tool call.",
      );
    }
    const target = Object.freeze({ tool });
    const scope = this;
    return async function (this: unknown, ...args: Args): Promise<Awaited<Result>> {
      await scope.check(agentId, target);
      return await fn.apply(this, args);
    };
  }

  /** The policy this process enforces for the agent, if any. */
  getPolicy(agentId: string): ScopePolicy | undefined {
    return this.#entries.get(agentId)?.policy;
  }

  /** Every policy this process enforces. */
  listPolicies(): ScopePolicy[] {
    return [...this.#entries.values()].map((entry) => entry.policy);
  }

  /**
   * Reload every stored policy now (what polling does), after retrying failed writes. Never
   * throws: a failure is logged and the policies in memory stay as they are.
   */
  async reload(): Promise<void> {
    if (!this.#persist || this.#closed) return;
    for (const entry of this.#entries.values()) {
      if (entry.unsaved && entry.pending === 0) this.#save(entry);
    }
    try {
      const rows: PolicyRow[] = await this.#store.db.select(ROW_COLUMNS).from(policies);
      for (const row of rows) this.#apply(row);
    } catch (error) {
      this.#logger.warn("Could not reload scope policies; the ones in memory stay in force.", {
        error: describe(error),
      });
    }
  }

  /** Resolve once every write of a registered policy has landed (or failed and been logged). */
  async flush(): Promise<void> {
    while (this.#writes.size > 0) await Promise.all(this.#writes.values());
  }

  /** Stop listening and polling, and wait for writes in flight. Policies stay enforced in memory. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    await this.flush();
    const subscription = this.#subscription;
    this.#subscription = null;
    await subscription?.unsubscribe().catch(() => undefined);
  }

  /** Closes the module (`await using scope = …`). */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  // Denials.

  async #denyTool(agentId: string, tool: string, entry: Entry | undefined): Promise<never> {
    if (entry === undefined) return this.#denyUnregistered(agentId, { tool });
    const reason: ScopeDenialReason = entry.hidden.has(tool) ? "hidden" : "not_allowed";
    let note: string | undefined;
    if (reason === "not_allowed") {
      const lower = tool.toLowerCase();
      const nearMiss = entry.toolList.find((name) => name.toLowerCase() === lower);
      if (nearMiss !== undefined) {
        note = `Tool names are case-sensitive: the policy allows ${JSON.stringify(nearMiss)}, not ${JSON.stringify(tool)}.`;
      }
    }
    await this.#record(agentId, { tool }, reason);
    throw new ScopeViolation({
      agentId,
      tool,
      api: null,
      reason,
      allowed: entry.toolList,
      ...(note ? { note } : {}),
    });
  }

  async #checkApi(agentId: string, api: string, entry: Entry | undefined): Promise<void> {
    const request =
      api.length > MAX_API_LENGTH
        ? { problem: `is ${api.length} characters long; the limit is ${MAX_API_LENGTH}.`, fix: "" }
        : parseApiRequest(api);
    if (isProblem(request)) {
      return this.#denyInvalid(
        agentId,
        { api: redactApi(api) },
        entry?.apiList ?? [],
        `The call ${request.problem}`,
      );
    }
    if (entry === undefined) return this.#denyUnregistered(agentId, { api: redactApi(api) });
    for (const rule of entry.rules) if (matchesApi(rule, request)) return;
    let note: string | undefined;
    if (/%2f|%5c/i.test(request.path))
      note = "A path with a percent-encoded / or \\ never matches a prefix entry.";
    const redacted = redactApi(api);
    await this.#record(agentId, { api: redacted }, "not_allowed");
    throw new ScopeViolation({
      agentId,
      tool: null,
      api: redacted,
      reason: "not_allowed",
      allowed: entry.apiList,
      ...(note ? { note } : {}),
    });
  }

  /** A tool name or API call that cannot be checked: a denial, recorded like any other. */
  async #denyInvalid(
    agentId: string,
    target: { tool: string; api?: undefined } | { api: string; tool?: undefined },
    allowed: readonly string[],
    note: string,
  ): Promise<never> {
    await this.#record(agentId, target, "invalid_request");
    throw new ScopeViolation({
      agentId,
      tool: target.tool ?? null,
      api: target.api ?? null,
      reason: "invalid_request",
      allowed,
      note,
    });
  }

  async #denyUnregistered(
    agentId: string,
    target: { tool: string } | { api: string },
  ): Promise<never> {
    await this.#record(agentId, target, "no_policy");
    throw new PolicyNotRegistered(agentId);
  }

  /** Write a denial to the audit chain; never lets a logging failure turn a denial into a pass. */
  async #record(
    agentId: string,
    target: { tool: string } | { api: string },
    reason: ScopeDenialReason,
  ): Promise<void> {
    try {
      await this.#audit.log({
        agentId,
        kind: SCOPE_VIOLATION_KIND,
        metadata: { ...target, reason, path: SCOPE_CHECK.path },
      });
    } catch (error) {
      this.#logger.error(
        "Could not write a scope denial to the audit chain; the call is still denied.",
        {
          agentId,
          reason,
          error: describe(error),
        },
      );
    }
  }

  // Persistence.

  #save(entry: Entry): void {
    const agentId = entry.policy.agentId;
    if (this.#closed) {
      entry.unsaved = true;
      this.#logger.warn("The scope module is closed; a policy was registered in memory only.", {
        agentId,
      });
      return;
    }
    entry.pending++;
    entry.unsaved = false;
    const previous = this.#writes.get(agentId) ?? Promise.resolve();
    const write: Promise<void> = previous
      .then(() => this.#write(entry))
      .then(
        (revision) => {
          entry.pending--;
          if (revision > entry.revision) entry.revision = revision;
        },
        (error: unknown) => {
          entry.pending--;
          entry.unsaved = true;
          this.#logger.warn(
            "Could not persist a scope policy; it is enforced in this process and the write is retried at the next poll.",
            { agentId, error: describe(error) },
          );
        },
      )
      .finally(() => {
        if (this.#writes.get(agentId) === write) this.#writes.delete(agentId);
      });
    this.#writes.set(agentId, write);
  }

  /** Upsert the policy and announce it on commit; resolves with the stored revision. */
  async #write(entry: Entry): Promise<number> {
    // The snapshot frozen at construction: exactly what was validated and is enforced.
    const data = entry.policy.toJSON();
    const values = {
      allowedTools: [...data.allowedTools],
      allowedApis: [...data.allowedApis],
      hiddenTools: [...data.hiddenTools],
      allowedModels: [...data.allowedModels],
    };
    return this.#store.transaction(async (tx) => {
      const rows = await tx
        .insert(policies)
        .values({ agentId: data.agentId, ...values })
        .onConflictDoUpdate({
          target: policies.agentId,
          set: { ...values, revision: sql`${policies.revision} + 1`, updatedAt: sql`now()` },
        })
        .returning({ revision: policies.revision });
      await tx.execute(sql`select pg_notify(${SCOPE_POLICY_CHANNEL}, ${data.agentId})`);
      return rows[0]?.revision ?? 0;
    });
  }

  #reloadOne(agentId: string): void {
    if (this.#closed || agentId.length === 0) return;
    this.#store.db
      .select(ROW_COLUMNS)
      .from(policies)
      .where(eq(policies.agentId, agentId))
      .then(
        (rows) => {
          for (const row of rows) this.#apply(row);
        },
        (error: unknown) => {
          this.#logger.warn("Could not load a changed scope policy; the next poll retries.", {
            agentId,
            error: describe(error),
          });
        },
      );
  }

  /** Adopt a stored policy when it is newer than what this process holds. */
  #apply(row: PolicyRow): void {
    const current = this.#entries.get(row.agentId);
    if (current && (current.pending > 0 || current.unsaved || current.revision >= row.revision))
      return;
    let policy: ScopePolicy;
    try {
      policy = new ScopePolicy({
        agentId: row.agentId,
        allowedTools: row.allowedTools,
        allowedApis: row.allowedApis,
        hiddenTools: row.hiddenTools,
        allowedModels: row.allowedModels,
      });
    } catch (error) {
      this.#logger.warn("A stored scope policy is invalid and was not loaded.", {
        agentId: row.agentId,
        error: describe(error),
      });
      return;
    }
    this.#entries.set(row.agentId, compile(policy, row.revision));
  }
}

function isHidden(tool: unknown, index: number, hidden: ReadonlySet<string>): boolean {
  if (typeof tool === "string") return hidden.has(tool);
  if (typeof tool === "object" && tool !== null) {
    const own = (tool as { name?: unknown }).name;
    const fn = (tool as { function?: { name?: unknown } | null }).function;
    const nested = typeof fn === "object" && fn !== null ? fn.name : undefined;
    const hasOwn = typeof own === "string";
    const hasNested = typeof nested === "string";
    if (hasOwn || hasNested) {
      return (hasOwn && hidden.has(own)) || (hasNested && hidden.has(nested));
    }
  }
  throw new InvalidArgumentError(
    `tools[${index}]`,
    `has no name (got ${typeOf(tool)}).`,
    "Pass each tool as its name, an object with a string name, or an OpenAI tool spec with function.name.",
  );
}

/** A tool name as recorded: cut at the limit, so that an over-long one cannot flood the chain. */
function cutName(tool: string): string {
  return tool.length > SCOPE_LIMITS.toolName ? `${tool.slice(0, SCOPE_LIMITS.toolName)}…` : tool;
}

function invalidAgentId(agentId: unknown): InvalidArgumentError {
  return invalidName("agentId", agentId, SCOPE_LIMITS.agentId);
}

function invalidName(field: string, value: unknown, limit: number): InvalidArgumentError {
  if (typeof value !== "string") {
    return new InvalidArgumentError(
      field,
      `must be a string, got ${typeOf(value)}.`,
      `Pass ${field} as a non-empty string.`,
    );
  }
  if (value.length === 0)
    return new InvalidArgumentError(field, "must not be empty.", `Pass a non-empty ${field}.`);
  return new InvalidArgumentError(
    field,
    `is ${value.length} characters long; the limit is ${limit}.`,
    `Shorten ${field} to at most ${limit} characters.`,
  );
}

function invalidTarget(target: unknown): InvalidArgumentError {
  const fix =
    'Pass exactly one of them: check(agentId, { tool: "read_invoice" }) or check(agentId, { api: "GET https://api.x.com/v1/invoices" }).';
  if (typeof target !== "object" || target === null) {
    return new InvalidArgumentError(
      "target",
      `must be an object with tool or api, got ${typeOf(target)}.`,
      fix,
    );
  }
  const both =
    (target as { tool?: unknown }).tool !== undefined &&
    (target as { api?: unknown }).api !== undefined;
  return new InvalidArgumentError(
    "target",
    both ? "has both tool and api." : "has neither tool nor api.",
    fix,
  );
}

function typeOf(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return typeof value;
}

function describe(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

/** The scope module's definition, for `@gov/sdk` and for composing it by hand. */
export const scopeModule = defineModule({
  name: "scope",
  migrations: scopeMigrations,
  create: async (context: ModuleContext, options: ScopeOptions | undefined) => {
    const scope = new ScopeModule(context, options ?? {});
    await scope.start();
    return scope;
  },
  close: (scope: ScopeModule) => scope.close(),
});
