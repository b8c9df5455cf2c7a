import {
  type AuditEventInput,
  type AuditSink,
  defineModule,
  type HaltCheckContext,
  type HaltGuard,
  InvalidArgumentError,
  type Keyring,
  type LogFields,
  type Logger,
  type MigrationSource,
  type ModuleContext,
  requireKeyring,
  requirePort,
  type Store,
  type Subscription,
  sanitizeName,
  sql,
} from "@gov/core";
import { eq, inArray } from "drizzle-orm";
import { z } from "zod";
import { type ApiRule, isProblem, matchesApi, parseApiRequest, redactApi } from "./api-rule";
import { PolicyNotRegistered, type ScopeDenialReason, ScopeViolation } from "./errors";
import { SCOPE_LIMITS, ScopePolicy, type ScopePolicyInput } from "./models";
import { policies } from "./schema";
import {
  describeKeyId,
  type SCOPE_POLICY_SIGNATURE_TYPE,
  type ScopePolicyRejectionReason,
  type SignedPolicyFields,
  type StoredPolicyRow,
  signPolicy,
  verifyStoredPolicy,
} from "./signature";

/** The scope module's migrations: schema `gov_scope`. */
export const scopeMigrations: MigrationSource = {
  name: "scope",
  migrationsFolder: new URL("../drizzle", import.meta.url),
};

/**
 * The channel on which registrations are announced to other processes. The payload is the
 * agent id: a wake-up that says which row to re-read, never state. What is read is verified
 * (its MAC under the chain key) before it is enforced.
 */
export const SCOPE_POLICY_CHANNEL = "gov_scope_policies";

/** The audit event kind of a denial. */
export const SCOPE_VIOLATION_KIND = "scope.violation";

/** The audit event kind of a stored policy that was refused (its signature failed, or it is invalid). */
export const SCOPE_POLICY_REJECTED_KIND = "scope.policy_rejected";

/**
 * The audit event kind of a stored policy that went back: a validly signed row older than the
 * revision this process holds (`metadata.revision`, `heldRevision`), or a row that is gone
 * (`revision: null`). The process keeps the newer policy; a process that starts now does not
 * know it. Recorded once per agent and revision, per process.
 */
export const SCOPE_POLICY_ROLLED_BACK_KIND = "scope.policy_rolled_back";

/**
 * The audit event kind of a registration that was written but is not what the stored row
 * holds (a trigger, a rule or another writer on `gov_scope.policies` changed or discarded
 * it): the policy is enforced in the registering process only, and the write is retried.
 * `metadata.reason` is a {@link ScopePolicyNotPersistedReason}. Recorded once per agent until
 * a write of its policy is stored, per process.
 */
export const SCOPE_POLICY_NOT_PERSISTED_KIND = "scope.policy_not_persisted";

/**
 * Why a registration was not stored as it was signed (`scope.policy_not_persisted`):
 *
 * - `write_discarded` — the upsert of the row wrote nothing (a trigger returned NULL);
 * - `revision_not_advanced` — the stored revision is not greater than the one before the
 *   write, so processes holding it would ignore the new policy;
 * - `row_differs` — read back after commit, the row is not the signed policy (other lists,
 *   another revision, no or a broken signature, or no row).
 */
export type ScopePolicyNotPersistedReason =
  | "write_discarded"
  | "revision_not_advanced"
  | "row_differs";

/** Characters of an `api` passed to {@link ScopeModule.check}. */
const MAX_API_LENGTH = 4_096;

/**
 * Agents named by notifications and not re-read yet. A flood that names more (any role that
 * can connect can send notifications) turns into one reload of every policy instead.
 */
const MAX_PENDING_AGENTS = 1_000;
/** Agents re-read by one query. */
const AGENTS_PER_READ = 200;
/**
 * Refused rows remembered (agent → revision) so that each is reported once; beyond this
 * many agents, the one refused longest ago is forgotten (and reported again if seen again).
 */
const MAX_REMEMBERED_REJECTIONS = 10_000;
/** Rows verified between two turns of the event loop while all policies are reloaded. */
const ROWS_PER_TURN = 10;
/**
 * Refused rows reported (logged and audited one by one) per read; the rest of a read are
 * counted in one warning, and reported by a later read. A table stuffed with bad rows cannot
 * flood the audit chain faster than this per reload.
 */
const MAX_REPORTS_PER_READ = 100;

/** What to do about a refused row, per reason. */
const REJECTION_FIXES: Record<ScopePolicyRejectionReason, string> = {
  unsigned:
    "Rows written before @gov/scope signed its policies (or written by hand) are not loaded: register the policy again with scope.register(...) in a process that holds the chain key, which signs it.",
  unknown_key:
    "If the key was rotated out, add it to the keyring (GOVERNANCE_CHAIN_KEY_<key id> or historicalKeys) or register the policy again; otherwise the row was not written by this deployment: find out who can write gov_scope.policies.",
  bad_signature:
    "The row was changed after it was signed (or copied from another agent, or forged): find out who can write gov_scope.policies, then register the policy again with scope.register(...).",
  malformed:
    "The row is not one @gov/scope wrote: find out who can write gov_scope.policies, then register the policy again with scope.register(...).",
  invalid_policy:
    "The row is signed but not a valid policy for this version of @gov/scope: register the policy again with scope.register(...).",
};

const optionsSchema = z.strictObject({
  persist: z.boolean().default(true),
  listen: z.boolean().default(true),
  pollIntervalMs: z.int().min(100).max(86_400_000).nullable().default(30_000),
});

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
  /**
   * When this process learnt `revision` (the module's epoch then): a read that started later
   * must see a row at least that new, or the row went back.
   */
  learnedAt: number;
  /** Writes of this policy in flight: a stored row does not replace it meanwhile. */
  pending: number;
  /** Its write failed; it is retried at the next poll and not replaced meanwhile. */
  unsaved: boolean;
}

function compile(policy: ScopePolicy, revision: number, learnedAt: number): Entry {
  const snapshot = policy.toJSON();
  return {
    policy,
    tools: new Set(snapshot.allowedTools),
    hidden: new Set(snapshot.hiddenTools),
    rules: policy.apiRules,
    toolList: snapshot.allowedTools,
    apiList: snapshot.allowedApis,
    revision,
    learnedAt,
    pending: 0,
    unsaved: false,
  };
}

/**
 * A registration was written, but the stored row does not hold it (see
 * {@link ScopePolicyNotPersistedReason}): reported as an error and retried, never applied
 * as the row other processes load.
 */
class PolicyNotStored extends Error {
  constructor(
    readonly reason: ScopePolicyNotPersistedReason,
    readonly problem: string,
  ) {
    super(problem);
  }
}

/** The four lists of a policy, as signed. */
type PolicyLists = Pick<
  SignedPolicyFields,
  "allowedTools" | "allowedApis" | "hiddenTools" | "allowedModels"
>;

/** The same lists, in the same order. */
function sameLists(a: PolicyLists, b: PolicyLists): boolean {
  const same = (x: readonly string[], y: readonly string[]) =>
    x.length === y.length && x.every((item, index) => item === y[index]);
  return (
    same(a.allowedTools, b.allowedTools) &&
    same(a.allowedApis, b.allowedApis) &&
    same(a.hiddenTools, b.hiddenTools) &&
    same(a.allowedModels, b.allowedModels)
  );
}

const SCOPE_CHECK: HaltCheckContext = Object.freeze({ path: "scope.check" });

const ROW_COLUMNS = {
  agentId: policies.agentId,
  allowedTools: policies.allowedTools,
  allowedApis: policies.allowedApis,
  hiddenTools: policies.hiddenTools,
  allowedModels: policies.allowedModels,
  revision: policies.revision,
  mac: policies.mac,
  keyId: policies.keyId,
};

/**
 * What each agent may call: exact tool allow-lists, API entries that never cross hosts,
 * hidden tools, and default deny. An enforcement surface: `check` fails closed, and every
 * denial is written to the audit chain (`scope.violation`) before it is thrown.
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
 * }));
 * await sdk.scope.check("billing-agent", { tool: "read_invoice" });      // passes
 * await sdk.scope.check("billing-agent", { tool: "delete_user" });       // ScopeViolation
 * const visible = sdk.scope.filterTools("billing-agent", openAiTools);   // hidden ones removed
 * ```
 */
export class ScopeModule {
  readonly #store: Store;
  /** Signs and verifies stored policies; null when nothing is persisted. */
  readonly #keyring: Keyring | null;
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
  /** Agents named by notifications, waiting to be re-read (at most {@link MAX_PENDING_AGENTS}). */
  readonly #pendingAgents = new Set<string>();
  /** Every policy is to be re-read (a poll, a reconnect, `reload()`, or a notification flood). */
  #reloadAllDue = false;
  /** Callers of `reload()` waiting for the next reload of every policy to end. */
  readonly #reloadWaiters: (() => void)[] = [];
  /** The one loop that reads policies; never more than one read in flight. */
  #reading: Promise<void> | null = null;
  /** The last row reported per agent (refused, or gone back), so that each is reported once. */
  readonly #rejected = new Map<string, string>();
  /** Counts what this process learnt (see {@link Entry.learnedAt}). */
  #epoch = 0;
  /**
   * Agents whose stored row was read while this process's own write of them was in flight (or
   * had failed), and not applied: re-read once that write settles, lest a newer registration
   * from another process be lost until the next poll.
   */
  readonly #skippedWhileWriting = new Set<string>();
  /** Agents whose registration was reported as not stored, until a write of theirs is stored. */
  readonly #reportedNotStored = new Set<string>();
  /** Refused rows reported by the current read, and those left for a later one. */
  #reportsThisRead = 0;
  #unreportedThisRead = 0;
  /** `scope.policy_rejected` events handed to the audit sink and not settled yet. */
  readonly #reports = new Set<Promise<void>>();

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
    if (parsed.data.persist)
      requireKeyring(
        context.keyring,
        "context.keyring",
        "stored policies are signed and verified with it",
        "Pass context.keyring (the deployment's Keyring; @gov/sdk wires it), or { persist: false } to keep policies in this process only.",
      );
    this.#store = context.store;
    this.#keyring = parsed.data.persist ? (context.keyring as Keyring) : null;
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
    if (!this.#persist || this.#closed) return;
    if (this.#listen) {
      try {
        this.#subscription = await this.#store.listen(
          SCOPE_POLICY_CHANNEL,
          (agentId) => {
            this.#wake(agentId);
          },
          {
            onReconnect: () => {
              this.#reloadAllSoon();
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
        this.#reloadAllSoon();
      }, this.#pollIntervalMs);
      this.#timer.unref();
    }
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
   * Reload every stored policy now (what polling does), after retrying failed writes; resolves
   * when a reload that started after this call has ended. Reloads never overlap: calls made
   * while one runs share the next. Each row is verified before it is loaded; a row that does
   * not verify is refused and reported (once per agent and revision), and the policy this
   * process holds stays in force. Never rejects: a failure is logged and the policies in
   * memory stay as they are.
   */
  async reload(): Promise<void> {
    if (!this.#persist || this.#closed) return;
    await new Promise<void>((resolve) => {
      this.#reloadWaiters.push(resolve);
      this.#reloadAllDue = true;
      this.#read();
    });
  }

  /**
   * Resolve once every write of a registered policy has landed (or failed and been logged),
   * and the audit events they caused have been handed to the audit sink.
   */
  async flush(): Promise<void> {
    while (this.#writes.size > 0) await Promise.all(this.#writes.values());
    while (this.#reports.size > 0) await Promise.all(this.#reports);
  }

  /**
   * Stop listening and polling, and wait for writes, the read and the audit reports in
   * flight. Policies stay enforced in memory.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    await this.flush();
    await this.#reading;
    for (const wake of this.#reloadWaiters.splice(0)) wake();
    const subscription = this.#subscription;
    this.#subscription = null;
    await subscription?.unsubscribe().catch(() => undefined);
    while (this.#reports.size > 0) await Promise.all(this.#reports);
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
          if (revision > entry.revision) {
            entry.revision = revision;
            entry.learnedAt = ++this.#epoch;
          }
          this.#reportedNotStored.delete(agentId);
          this.#writeSettled(agentId);
        },
        (error: unknown) => {
          entry.pending--;
          entry.unsaved = true;
          if (error instanceof PolicyNotStored) this.#reportNotStored(agentId, error);
          else
            this.#logger.warn(
              "Could not persist a scope policy; it is enforced in this process and the write is retried at the next poll.",
              { agentId, error: describe(error) },
            );
          this.#writeSettled(agentId);
        },
      )
      .finally(() => {
        if (this.#writes.get(agentId) === write) this.#writes.delete(agentId);
      });
    this.#writes.set(agentId, write);
  }

  /**
   * Upsert the policy, sign the stored row (its revision is known only once the row is
   * locked, so the MAC is written by a second statement of the same transaction: no other
   * process ever sees the row unsigned) and announce it on commit; then read the row back.
   *
   * The revision is the next value of `gov_scope.policy_revision`, and never less than one past
   * the row's own: a row deleted and written again does not start over below what running
   * processes hold. A trigger, a rule or another writer on the table can make every statement
   * succeed while the row holds something else; so the revision must have advanced past the
   * one locked before the write, and the row read back after commit must be the signed policy
   * (or a newer verified one: another process registered since, and its notification brings
   * it here).
   *
   * @throws {PolicyNotStored} when the row does not hold the policy; any other error when the
   *   write or the read-back failed (both: retried).
   */
  async #write(entry: Entry): Promise<number> {
    const keyring = this.#keyring as Keyring;
    const key = keyring.current;
    // The snapshot frozen at construction: exactly what was validated and is enforced.
    const data = entry.policy.toJSON();
    const agentId = data.agentId;
    const values = {
      allowedTools: [...data.allowedTools],
      allowedApis: [...data.allowedApis],
      hiddenTools: [...data.hiddenTools],
      allowedModels: [...data.allowedModels],
    };
    const revision = await this.#store.transaction(async (tx) => {
      // The revision stored before, under the row's lock (when there is a row).
      const locked = await tx
        .select({ revision: policies.revision })
        .from(policies)
        .where(eq(policies.agentId, agentId))
        .for("update");
      const before = Number(locked[0]?.revision ?? 0);
      const rows = await tx
        .insert(policies)
        .values({
          agentId,
          ...values,
          revision: sql`nextval('gov_scope.policy_revision')`,
          mac: null,
          keyId: null,
        })
        .onConflictDoUpdate({
          target: policies.agentId,
          set: {
            ...values,
            // The value drawn for the insert, taken while this transaction holds the lock.
            revision: sql`greatest(excluded.revision, ${policies.revision} + 1)`,
            mac: null,
            keyId: null,
            updatedAt: sql`now()`,
          },
        })
        .returning({ revision: policies.revision });
      if (rows.length === 0) {
        throw new PolicyNotStored(
          "write_discarded",
          "the upsert of its row wrote nothing: a trigger or a rule on gov_scope.policies discarded it",
        );
      }
      const stored = rows[0]?.revision;
      if (typeof stored !== "number" || !Number.isSafeInteger(stored)) {
        throw new Error(
          `the stored revision of agent ${JSON.stringify(agentId)} is beyond 2^53 - 1; delete the row and register the policy again.`,
        );
      }
      if (stored <= before) {
        throw new PolicyNotStored(
          "revision_not_advanced",
          `its stored revision did not advance (it was ${before}, and is ${stored} after the write), so processes that hold revision ${before} would ignore it: a trigger, a rule or another writer on gov_scope.policies kept it`,
        );
      }
      const signature = signPolicy(key, { agentId, ...values, revision: stored });
      await tx.update(policies).set(signature).where(eq(policies.agentId, agentId));
      await tx.execute(sql`select pg_notify(${SCOPE_POLICY_CHANNEL}, ${agentId})`);
      return stored;
    });
    // Read back once committed (constraint triggers run at commit).
    const [row] = await this.#store.db
      .select(ROW_COLUMNS)
      .from(policies)
      .where(eq(policies.agentId, agentId));
    const checked = row ? verifyStoredPolicy(keyring, row) : null;
    if (checked?.ok) {
      if (checked.fields.revision > revision) return revision;
      if (checked.fields.revision === revision && sameLists(checked.fields, values))
        return revision;
    }
    const holds =
      checked === null
        ? "no row"
        : !checked.ok
          ? `a row that fails verification (${checked.problem})`
          : checked.fields.revision === revision
            ? `other lists at revision ${revision}`
            : `revision ${checked.fields.revision}`;
    throw new PolicyNotStored(
      "row_differs",
      `the stored row does not hold the signed policy (revision ${revision}): it holds ${holds}. A trigger, a rule or another writer on gov_scope.policies changed or discarded it`,
    );
  }

  /**
   * A write of the agent's policy settled. Once none is in flight, re-read the agent if its
   * row was read and skipped meanwhile: that row may be another process's newer registration.
   */
  #writeSettled(agentId: string): void {
    const current = this.#entries.get(agentId);
    if (current !== undefined && current.pending > 0) return;
    if (this.#skippedWhileWriting.delete(agentId)) this.#wake(agentId);
  }

  /**
   * A registration that the stored row does not hold: an error every time (it is retried at
   * each poll and `reload()`), and `scope.policy_not_persisted` once until a write is stored.
   */
  #reportNotStored(agentId: string, error: PolicyNotStored): void {
    this.#logger.error(
      `The scope policy of agent ${JSON.stringify(agentId)} was not stored as registered: ${error.problem}. It is enforced in this process only; other processes keep what they had, and a process that starts now loads the stored row. The write is retried at the next poll or reload(): find out who can change gov_scope.policies and remove the trigger or rule.`,
      { agentId, reason: error.reason },
    );
    if (this.#reportedNotStored.has(agentId)) return;
    this.#reportedNotStored.add(agentId);
    this.#recordEvent({
      agentId,
      kind: SCOPE_POLICY_NOT_PERSISTED_KIND,
      metadata: { reason: error.reason, problem: error.problem, path: "scope.register" },
    });
  }

  // Loading.

  /**
   * A notification named an agent: re-read its row (the payload is never believed). Reads
   * are coalesced — an agent named many times is read once, at most
   * {@link MAX_PENDING_AGENTS} wait (a flood beyond that becomes one reload of every
   * policy) and one read runs at a time — so that notifications, which any role that can
   * connect can send, cannot make the process hammer the database or grow without bound.
   */
  #wake(agentId: string): void {
    if (this.#closed) return;
    if (!this.#reloadAllDue) {
      // A payload that cannot be an agent's id names no row.
      if (agentId.length === 0 || agentId.length > SCOPE_LIMITS.agentId) return;
      if (this.#pendingAgents.size >= MAX_PENDING_AGENTS && !this.#pendingAgents.has(agentId)) {
        this.#pendingAgents.clear();
        this.#reloadAllDue = true;
      } else {
        this.#pendingAgents.add(agentId);
      }
    }
    this.#read();
  }

  /** Reload every policy when the read loop gets to it (polling, a reconnect); nobody waits. */
  #reloadAllSoon(): void {
    if (this.#closed) return;
    this.#reloadAllDue = true;
    this.#read();
  }

  /** Start the read loop unless it runs. */
  #read(): void {
    if (this.#reading !== null || this.#closed) return;
    this.#reading = this.#readLoop()
      .catch(() => undefined) // only a throwing logger gets here; the loop must not die unhandled
      .finally(() => {
        this.#reading = null;
        // Work that arrived while the loop was ending.
        if (this.#reloadAllDue || this.#pendingAgents.size > 0) this.#read();
      });
  }

  async #readLoop(): Promise<void> {
    try {
      while (!this.#closed) {
        this.#reportsThisRead = 0;
        this.#unreportedThisRead = 0;
        if (this.#reloadAllDue) {
          this.#reloadAllDue = false;
          this.#pendingAgents.clear();
          const waiters = this.#reloadWaiters.splice(0);
          try {
            await this.#loadAll();
          } finally {
            for (const wake of waiters) wake();
          }
        } else if (this.#pendingAgents.size > 0) {
          const batch: string[] = [];
          for (const agentId of this.#pendingAgents) {
            batch.push(agentId);
            if (batch.length === AGENTS_PER_READ) break;
          }
          for (const agentId of batch) this.#pendingAgents.delete(agentId);
          await this.#loadAgents(batch);
        } else {
          return;
        }
        if (this.#unreportedThisRead > 0) {
          this.#logger.warn(
            `Refused (or found gone back) ${this.#unreportedThisRead} more stored scope policies in one read; they are reported by later reloads (at most ${MAX_REPORTS_PER_READ} per read). Find out who can write gov_scope.policies.`,
            { refused: this.#unreportedThisRead },
          );
        }
      }
    } finally {
      if (this.#closed) for (const wake of this.#reloadWaiters.splice(0)) wake();
    }
  }

  /** Read every stored policy (after retrying failed writes). Never throws. */
  async #loadAll(): Promise<void> {
    for (const entry of this.#entries.values()) {
      if (entry.unsaved && entry.pending === 0) this.#save(entry);
    }
    let rows: StoredPolicyRow[];
    const since = this.#epoch;
    try {
      rows = await this.#store.db.select(ROW_COLUMNS).from(policies);
    } catch (error) {
      this.#logger.warn("Could not reload scope policies; the ones in memory stay in force.", {
        error: describe(error),
      });
      return;
    }
    const found = new Set<string>();
    for (let index = 0; index < rows.length; index++) {
      // Verifying is CPU work: let checks run between slices of a large table.
      if (index > 0 && index % ROWS_PER_TURN === 0) await turn();
      if (this.#closed) return;
      const row = rows[index] as StoredPolicyRow;
      found.add(row.agentId);
      this.#apply(row, since);
    }
    for (const [agentId, entry] of this.#entries)
      if (!found.has(agentId)) this.#checkGone(agentId, entry, since);
  }

  /** Read the rows of the named agents. Never throws. */
  async #loadAgents(agentIds: string[]): Promise<void> {
    let rows: StoredPolicyRow[];
    const since = this.#epoch;
    try {
      rows = await this.#store.db
        .select(ROW_COLUMNS)
        .from(policies)
        .where(inArray(policies.agentId, agentIds));
    } catch (error) {
      this.#logger.warn("Could not load a changed scope policy; the next poll retries.", {
        agentIds: agentIds.slice(0, 10).map(shownAgentId),
        error: describe(error),
      });
      return;
    }
    const found = new Set<string>();
    for (const row of rows) {
      found.add(row.agentId);
      this.#apply(row, since);
    }
    for (const agentId of agentIds) {
      const entry = this.#entries.get(agentId);
      if (entry !== undefined && !found.has(agentId)) this.#checkGone(agentId, entry, since);
    }
  }

  /**
   * Adopt a stored policy when its signature verifies and it is newer than what this process
   * holds; refuse (and report) it when it does not verify, whatever its revision; report it
   * when it is older than what this process held before the read started (it went back).
   * `since`: the epoch at which the read started.
   */
  #apply(row: StoredPolicyRow, since: number): void {
    const checked = verifyStoredPolicy(this.#keyring as Keyring, row);
    if (!checked.ok) {
      this.#reject(row, checked.reason, checked.problem);
      return;
    }
    const { fields } = checked;
    const current = this.#entries.get(fields.agentId);
    if (current) {
      if (current.pending > 0 || current.unsaved) {
        // Our own write decides for now; the row is read again once it settles.
        this.#skippedWhileWriting.add(fields.agentId);
        return;
      }
      if (current.revision >= fields.revision) {
        if (current.revision > fields.revision && current.learnedAt <= since)
          this.#wentBack(fields.agentId, fields.revision, current.revision);
        return;
      }
    }
    let policy: ScopePolicy;
    try {
      policy = new ScopePolicy({
        agentId: fields.agentId,
        allowedTools: fields.allowedTools,
        allowedApis: fields.allowedApis,
        hiddenTools: fields.hiddenTools,
        allowedModels: fields.allowedModels,
      });
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      this.#reject(
        row,
        "invalid_policy",
        `it is not a valid policy (${message.length > 500 ? `${message.slice(0, 499)}…` : message})`,
      );
      return;
    }
    this.#entries.set(fields.agentId, compile(policy, fields.revision, ++this.#epoch));
    this.#rejected.delete(shownAgentId(fields.agentId));
  }

  /** No row for an agent whose policy this process holds: reported when it was stored before the read. */
  #checkGone(agentId: string, entry: Entry, since: number): void {
    if (entry.pending > 0 || entry.unsaved || entry.revision === 0 || entry.learnedAt > since)
      return;
    this.#wentBack(agentId, null, entry.revision);
  }

  /**
   * A verified row older than the policy this process holds (`revision`), or no row at all
   * (`null`): the newer policy stays in force here — a rollback is never applied — but a
   * process that starts now would load what the table holds. Logged and recorded as
   * `scope.policy_rolled_back`, once per agent and revision.
   */
  #wentBack(agentId: string, revision: number | null, heldRevision: number): void {
    const problem =
      revision === null
        ? `its row (revision ${heldRevision}) is gone from gov_scope.policies (deleted)`
        : `its row went back to revision ${revision}, older than revision ${heldRevision} that this process holds (an older signed row was written back, or the row was deleted and written again by a process of an earlier version)`;
    const then =
      revision === null
        ? "a process that starts now has no policy for the agent (default deny)"
        : "a process that starts now loads the older one";
    this.#report(
      agentId,
      `went-back:${revision ?? "gone"}:${heldRevision}`,
      `The stored scope policy of agent ${JSON.stringify(shownAgentId(agentId))} was not applied: ${problem}. The newer policy stays in force in this process; ${then}. Find out who can write gov_scope.policies, then register the policy again with scope.register(...).`,
      { agentId: shownAgentId(agentId), revision, heldRevision },
      {
        agentId: shownAgentId(agentId),
        kind: SCOPE_POLICY_ROLLED_BACK_KIND,
        metadata: { revision, heldRevision, problem, path: "scope.load" },
      },
    );
  }

  /**
   * A stored row was refused: it is not loaded, the process keeps what it had. Logged and
   * written to the audit chain once per (agent, revision), so that polling does not repeat it.
   */
  #reject(row: StoredPolicyRow, reason: ScopePolicyRejectionReason, problem: string): void {
    const revision =
      typeof row.revision === "number" && Number.isSafeInteger(row.revision)
        ? row.revision
        : String(row.revision);
    // Remembered by the id as shown (cut): a stuffed table cannot make the memory grow with it.
    const agentId = shownAgentId(row.agentId);
    const keyId = describeKeyId(row.keyId);
    const held = this.#entries.has(row.agentId)
      ? "the policy this process loaded before stays in force"
      : "the agent has no policy in this process (default deny)";
    this.#report(
      row.agentId,
      `refused:${revision}`,
      `Refused the stored scope policy of agent ${JSON.stringify(agentId)} (revision ${revision}): ${problem}; ${held}. ${REJECTION_FIXES[reason]}`,
      { agentId, revision, reason, keyId },
      {
        agentId,
        kind: SCOPE_POLICY_REJECTED_KIND,
        metadata: { reason, revision, keyId, problem, path: "scope.load" },
      },
    );
  }

  /**
   * Report a stored row that was not applied (a warning and an audit event), once per agent
   * and `seen` (what was found), and at most {@link MAX_REPORTS_PER_READ} per read.
   */
  #report(
    rowAgentId: string,
    seen: string,
    warning: string,
    fields: LogFields,
    event: AuditEventInput,
  ): void {
    const agentId = shownAgentId(rowAgentId);
    if (this.#rejected.get(agentId) === seen) return;
    if (this.#reportsThisRead >= MAX_REPORTS_PER_READ) {
      this.#unreportedThisRead++;
      return;
    }
    this.#reportsThisRead++;
    this.#rejected.delete(agentId);
    this.#rejected.set(agentId, seen);
    if (this.#rejected.size > MAX_REMEMBERED_REJECTIONS) {
      const oldest = this.#rejected.keys().next();
      if (!oldest.done) this.#rejected.delete(oldest.value);
    }
    this.#logger.warn(warning, fields);
    this.#recordEvent(event);
  }

  /** Hand an event to the audit sink; a failure is logged, never thrown. Waited for by `close()`. */
  #recordEvent(event: AuditEventInput): void {
    const report: Promise<void> = Promise.resolve()
      .then(() => this.#audit.log(event))
      .then(
        () => undefined,
        (error: unknown) => {
          this.#logger.error(
            `Could not write a ${event.kind} event to the audit chain; what it reports stands all the same.`,
            { agentId: event.agentId, error: describe(error) },
          );
        },
      )
      .catch(() => undefined) // a throwing logger
      .finally(() => {
        this.#reports.delete(report);
      });
    this.#reports.add(report);
  }
}

/** Let the event loop turn (timers, I/O, other checks) before going on. */
function turn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** An agent id from the table as it may be logged and recorded: cut, control characters neutralized. */
function shownAgentId(agentId: string): string {
  const cut =
    agentId.length > SCOPE_LIMITS.agentId
      ? `${agentId.slice(0, SCOPE_LIMITS.agentId - 1)}…`
      : agentId;
  return cut.length === 0 ? "(empty)" : sanitizeName(cut);
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
