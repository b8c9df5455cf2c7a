import {
  type AuditSink,
  checkId,
  defineModule,
  describeError,
  type HaltCheckContext,
  type HaltGuard,
  InvalidArgumentError,
  type Keyring,
  type Logger,
  type MigrationSource,
  type ModuleContext,
  parseOptions,
  requireKeyring,
  requirePort,
  type ScopeTarget,
  type ToolLike,
  typeOf,
} from "@gov/core";
import { z } from "zod";
import { isProblem, matchesApi, parseApiRequest, redactApi } from "./api-rule";
import { PolicyNotRegistered, type ScopeDenialReason, ScopeViolation } from "./errors";
import { SCOPE_LIMITS, ScopePolicy, type ScopePolicyInput } from "./models";
import { compile, type Entry, PolicySync } from "./policy-sync";
import { scopeSdkContribution } from "./sdk-options";
import type { SCOPE_POLICY_SIGNATURE_TYPE } from "./signature";

/** The scope module's migrations: schema `gov_scope`. */
export const scopeMigrations: MigrationSource = {
  name: "scope",
  migrationsFolder: new URL("../drizzle", import.meta.url),
};

/** The audit event kind of a denial. */
export const SCOPE_VIOLATION_KIND = "scope.violation";

/** Characters of an `api` passed to {@link ScopeModule.check}. */
const MAX_API_LENGTH = 4_096;

const optionsSchema = z.strictObject({
  persist: z.boolean().default(true),
  listen: z.boolean().default(true),
  pollIntervalMs: z.int().min(100).max(86_400_000).nullable().default(30_000),
});

/** How to fix each option, for core's `parseOptions`. */
const OPTION_FIXES = {
  "": "Pass { persist?: boolean, listen?: boolean, pollIntervalMs?: 100–86400000 | null }, or nothing.",
  persist: "Pass persist: true (the default) or false.",
  listen: "Pass listen: true (the default) or false.",
  pollIntervalMs:
    "Pass pollIntervalMs as a whole number of milliseconds from 100 to 86400000 (default 30000), or null to turn polling off.",
};

/** Options of the scope module. */
export interface ScopeOptions {
  /**
   * Write registered policies to Postgres (best-effort: a failure is logged and retried at the
   * next poll, never thrown), each signed with the keyring's current key, and load the
   * policies other processes registered, each only when its signature verifies. Needs
   * `context.keyring`. @default true
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

/**
 * What {@link ScopeModule.check} checks: one tool (`{ tool }`), one API call (`{ api }`) or
 * one model (`{ model }`) — never two. The same type as `@gov/core`'s `ScopeTarget`.
 */
export type ScopeCheckTarget = ScopeTarget;

const SCOPE_CHECK: HaltCheckContext = Object.freeze({ path: "scope.check" });

/** `requireTool`'s options: both read here, each checked as `check` checks it. */
const REQUIRE_TOOL_OPTIONS = z.strictObject({ agentId: z.unknown(), tool: z.unknown() });

/**
 * What each agent may call: exact tool allow-lists, API entries that never cross hosts,
 * hidden tools, model allow-lists, and default deny. An enforcement surface: `check` fails
 * closed, and every denial is written to the audit chain (`scope.violation`) before it is
 * thrown. It is `@gov/core`'s `ScopeGuard`, the port the composers (wrappers, contracts) use.
 *
 * Policies live in memory (the hot path is a Set lookup after the halt check) and are
 * persisted to `gov_scope.policies`, each row signed (HMAC-SHA256 under the keyring's current
 * key, over the agent, its lists and the revision); other processes pick registrations up by
 * LISTEN/NOTIFY, with polling as the fallback, and load a row only when its signature
 * verifies. A row that does not verify is refused, logged and written to the audit chain as
 * `scope.policy_rejected`; the process keeps what it had.
 *
 * @example
 * ```ts
 * sdk.scope.register(new ScopePolicy({
 *   agentId: "billing-agent",
 *   allowedTools: ["read_invoice", "send_email"],
 *   allowedApis: ["GET https://api.stripe.com/v1/*"],
 *   hiddenTools: ["delete_all", "admin_reset"],
 *   allowedModels: ["gpt-4o-mini"],
 * }));
 * await sdk.scope.check("billing-agent", { tool: "read_invoice" });      // passes
 * await sdk.scope.check("billing-agent", { tool: "delete_user" });       // ScopeViolation
 * await sdk.scope.check("billing-agent", { model: "gpt-4o" });           // ScopeViolation
 * const visible = sdk.scope.filterTools("billing-agent", openAiTools);   // hidden ones removed
 * ```
 */
export class ScopeModule {
  readonly #logger: Logger;
  readonly #audit: AuditSink;
  readonly #halt: HaltGuard;
  readonly #entries = new Map<string, Entry>();
  /** Writes, reads and follows the stored policies; null with `persist: false`. */
  readonly #sync: PolicySync | null;
  #started = false;
  #closed = false;

  /**
   * @param context The store, keyring, logger, audit sink and halt guard (a
   *   `ModuleContext`, or `noopAuditSink` / `noopHaltGuard` when used alone). The keyring
   *   signs the policies this module stores and verifies the ones it loads; it may be left
   *   out only with `{ persist: false }`.
   * @throws {InvalidArgumentError} for a missing port (the keyring too, when `persist` is on)
   *   or a bad option.
   *
   * @example
   * ```ts
   * const scope = new ScopeModule({ store, keyring, logger, audit: noopAuditSink, halt: noopHaltGuard });
   * await scope.start(); // loads (and verifies) the stored policies, then follows changes
   * ```
   */
  constructor(
    context: Pick<ModuleContext, "store" | "logger" | "audit" | "halt"> &
      Partial<Pick<ModuleContext, "keyring">>,
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
    const resolved = parseOptions(optionsSchema, options ?? undefined, { fixes: OPTION_FIXES });
    if (resolved.persist)
      requireKeyring(
        context.keyring,
        "context.keyring",
        "stored policies are signed and verified with it",
        "Pass context.keyring (the deployment's Keyring; @gov/sdk wires it), or { persist: false } to keep policies in this process only.",
      );
    this.#logger = context.logger;
    this.#audit = context.audit;
    this.#halt = context.halt;
    this.#sync = resolved.persist
      ? new PolicySync({
          store: context.store,
          keyring: context.keyring as Keyring,
          logger: context.logger,
          audit: context.audit,
          listen: resolved.listen,
          pollIntervalMs: resolved.pollIntervalMs,
          entries: this.#entries,
        })
      : null;
  }

  /**
   * Subscribe to changes, then load the stored policies (in that order, so that no
   * registration announced meanwhile is missed), and start polling. Idempotent. A database
   * that cannot be reached is logged, not thrown: polling keeps trying. Nothing to do with
   * `persist: false`. `scopeModule.create` calls it.
   *
   * @example
   * ```ts
   * const scope = new ScopeModule({ store, keyring, logger, audit, halt });
   * await scope.start();
   * ```
   */
  async start(): Promise<void> {
    if (this.#started || this.#closed) return;
    this.#started = true;
    await this.#sync?.start();
  }

  /**
   * Register (or replace) an agent's policy. It applies in this process at once; it is then
   * persisted best-effort (a store failure is logged and retried, never thrown), signed with
   * the keyring's current key (HMAC-SHA256 over the agent, its lists, the new revision and
   * the domain tag {@link SCOPE_POLICY_SIGNATURE_TYPE}), and announced, so that other
   * processes pick it up. Registering again is also how a stored row that other processes
   * refuse (written before signing, changed by hand) is replaced by a signed one.
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
    const entry = compile(built, previous?.revision ?? 0, previous?.learnedAt ?? 0);
    this.#entries.set(built.agentId, entry);
    this.#sync?.save(entry);
    return built;
  }

  /**
   * Check that the agent may call a tool, an API or a model. In order: the operator's halt
   * (`AgentHaltedError`, before anything else is looked at), then default deny (no policy →
   * `PolicyNotRegistered`), then the allow-list: tools exact and case-sensitive, hidden
   * tools always refused; APIs exact or by a trailing-`*` prefix on the same scheme, host
   * and port; models exact and case-sensitive against `allowedModels`, where an **empty**
   * `allowedModels` (the default) places no limit on models. Each denial is written to the
   * audit chain as `scope.violation` (agent, tool, api or model, reason) before it is thrown.
   *
   * What the agent sent is a denial, never an argument error: an API call that is not a
   * canonical `"METHOD scheme://host[:port]/path[?query]"` (not http(s), unparseable, not
   * normalized, `\\`, `@`, dot segments, `%25`, `%2e`, overlong UTF-8, …), an empty or
   * over-long tool name, or an empty or over-long model name (limit
   * `SCOPE_LIMITS.modelName`) is refused after the halt check as a `ScopeViolation` with
   * reason `invalid_request`, and recorded. API calls are recorded and reported redacted: no
   * user name or password, query values as `REDACTED`, cut when long.
   *
   * Caller bugs are `InvalidArgumentError`s, rejected before anything is checked or logged:
   * an agentId that breaks core's id rule (`checkId`: 1–256 characters, no control or
   * invisible characters, no white space at either end), none or more than one of `tool`,
   * `api` and `model`, a `tool`, `api` or `model` that is not a string.
   *
   * @throws {AgentHaltedError} the agent is halted.
   * @throws {PolicyNotRegistered} no policy for the agent.
   * @throws {ScopeViolation} the call is not allowed, or cannot be checked (the message lists what is allowed).
   * @throws {InvalidArgumentError} bad arguments; nothing was checked or logged.
   */
  async check(agentId: string, target: ScopeCheckTarget): Promise<void> {
    checkId(agentId, "agentId");
    if (typeof target !== "object" || target === null) throw invalidTarget(target);
    const tool: unknown = target.tool;
    const api: unknown = target.api;
    const model: unknown = target.model;
    if (tool !== undefined) {
      if (api !== undefined || model !== undefined) throw invalidTarget(target);
      if (typeof tool !== "string") throw invalidName("tool", tool, SCOPE_LIMITS.toolName);
    } else if (api !== undefined) {
      if (model !== undefined) throw invalidTarget(target);
      if (typeof api !== "string") throw invalidName("api", api, MAX_API_LENGTH);
    } else if (model === undefined) {
      throw invalidTarget(target);
    } else if (typeof model !== "string") {
      throw invalidName("model", model, SCOPE_LIMITS.modelName);
    }
    await this.#halt.assertAlive(agentId, SCOPE_CHECK);
    const entry = this.#entries.get(agentId);
    if (typeof tool === "string") {
      if (entry?.tools.has(tool)) return;
      if (tool.length === 0 || tool.length > SCOPE_LIMITS.toolName) {
        const note = lengthNote("tool", tool, SCOPE_LIMITS.toolName);
        return this.#denyInvalid(
          agentId,
          { tool: cutName(tool, SCOPE_LIMITS.toolName) },
          entry?.toolList ?? [],
          note,
        );
      }
      return this.#denyTool(agentId, tool, entry);
    }
    if (typeof api === "string") return this.#checkApi(agentId, api, entry);
    return this.#checkModel(agentId, model as string, entry);
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
    checkId(agentId, "agentId");
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
    const { agentId, tool } = parseOptions(REQUIRE_TOOL_OPTIONS, options, {
      required: true,
      fixes: {
        "": 'Pass { agentId, tool }, e.g. { agentId: "billing-agent", tool: "send_email" }.',
      },
    });
    const id = checkId(agentId, "agentId");
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
      await scope.check(id, target);
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
   * Reload every stored policy now (what polling does), after retrying failed writes; resolves
   * when a reload that started after this call has ended. Reloads never overlap: calls made
   * while one runs share the next. Each row is verified before it is loaded; a row that does
   * not verify is refused and reported (once per agent and revision), and the policy this
   * process holds stays in force. Never rejects: a failure is logged and the policies in
   * memory stay as they are.
   */
  async reload(): Promise<void> {
    if (this.#closed) return;
    await this.#sync?.reload();
  }

  /**
   * Resolve once every write of a registered policy has landed (or failed and been logged),
   * and the audit events they caused have been handed to the audit sink.
   */
  async flush(): Promise<void> {
    await this.#sync?.flush();
  }

  /**
   * Stop listening and polling, and wait for writes, the read and the audit reports in
   * flight. Idempotent. Policies stay enforced in memory.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#sync?.close();
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
      note = caseNote("Tool", tool, entry.toolList);
    }
    await this.#record(agentId, { tool }, reason);
    throw new ScopeViolation({
      agentId,
      tool,
      api: null,
      model: null,
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
      model: null,
      reason: "not_allowed",
      allowed: entry.apiList,
      ...(note ? { note } : {}),
    });
  }

  /**
   * A model call: an empty or over-long name is `invalid_request`; with a policy, an empty
   * `allowedModels` allows any model, a non-empty one only its exact names.
   */
  async #checkModel(agentId: string, model: string, entry: Entry | undefined): Promise<void> {
    if (model.length === 0 || model.length > SCOPE_LIMITS.modelName) {
      return this.#denyInvalid(
        agentId,
        { model: cutName(model, SCOPE_LIMITS.modelName) },
        entry?.modelList ?? [],
        lengthNote("model", model, SCOPE_LIMITS.modelName),
      );
    }
    if (entry === undefined) return this.#denyUnregistered(agentId, { model });
    if (entry.models.size === 0 || entry.models.has(model)) return;
    const note = caseNote("Model", model, entry.modelList);
    await this.#record(agentId, { model }, "not_allowed");
    throw new ScopeViolation({
      agentId,
      tool: null,
      api: null,
      model,
      reason: "not_allowed",
      allowed: entry.modelList,
      ...(note ? { note } : {}),
    });
  }

  /** A tool name, API call or model name that cannot be checked: a denial, recorded like any other. */
  async #denyInvalid(
    agentId: string,
    target: ScopeTarget,
    allowed: readonly string[],
    note: string,
  ): Promise<never> {
    await this.#record(agentId, target, "invalid_request");
    throw new ScopeViolation({
      agentId,
      tool: target.tool ?? null,
      api: target.api ?? null,
      model: target.model ?? null,
      reason: "invalid_request",
      allowed,
      note,
    });
  }

  async #denyUnregistered(agentId: string, target: ScopeTarget): Promise<never> {
    await this.#record(agentId, target, "no_policy");
    throw new PolicyNotRegistered(agentId);
  }

  /** Write a denial to the audit chain; never lets a logging failure turn a denial into a pass. */
  async #record(agentId: string, target: ScopeTarget, reason: ScopeDenialReason): Promise<void> {
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
          error: describeError(error),
        },
      );
    }
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

/** A tool or model name as recorded: cut at the limit, so that an over-long one cannot flood the chain. */
function cutName(name: string, limit: number): string {
  return name.length > limit ? `${name.slice(0, limit)}…` : name;
}

/** Why an empty or over-long name cannot be checked, for the message. */
function lengthNote(what: "tool" | "model", name: string, limit: number): string {
  return name.length === 0
    ? `The ${what} name is empty.`
    : `The ${what} name is ${name.length} characters long; the limit is ${limit}.`;
}

/** The sentence about a case-only near miss of an allowed name, if there is one. */
function caseNote(what: "Tool" | "Model", name: string, allowed: readonly string[]) {
  const lower = name.toLowerCase();
  const nearMiss = allowed.find((candidate) => candidate.toLowerCase() === lower);
  return nearMiss === undefined
    ? undefined
    : `${what} names are case-sensitive: the policy allows ${JSON.stringify(nearMiss)}, not ${JSON.stringify(name)}.`;
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
    'Pass exactly one of them: check(agentId, { tool: "read_invoice" }), check(agentId, { api: "GET https://api.x.com/v1/invoices" }) or check(agentId, { model: "gpt-4o-mini" }).';
  if (typeof target !== "object" || target === null) {
    return new InvalidArgumentError(
      "target",
      `must be an object with tool, api or model, got ${typeOf(target)}.`,
      fix,
    );
  }
  const given = (["tool", "api", "model"] as const).filter(
    (key) => (target as Record<string, unknown>)[key] !== undefined,
  );
  const problem =
    given.length === 0
      ? "has neither tool nor api nor model."
      : given.length === 2
        ? `has both ${given[0]} and ${given[1]}.`
        : "has tool, api and model.";
  return new InvalidArgumentError("target", problem, fix);
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
  sdk: scopeSdkContribution,
});
