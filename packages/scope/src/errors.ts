import { GovernanceError, type InvalidArgumentError, ModuleInputError } from "@gov/core";

/** The stable error codes of `@gov/scope`. A code never changes meaning once released. */
export const SCOPE_ERROR_CODES = {
  /** The agent called a tool, API or model its policy does not allow (or a tool it hides). */
  SCOPE_VIOLATION: "SCOPE_VIOLATION",
  /** The agent has no registered policy: every check is denied (default deny). */
  POLICY_NOT_REGISTERED: "POLICY_NOT_REGISTERED",
  /** A `ScopePolicy` was refused at construction; nothing was registered. */
  SCOPE_POLICY_INVALID: "SCOPE_POLICY_INVALID",
} as const;

/** One of {@link SCOPE_ERROR_CODES}. */
export type ScopeErrorCode = (typeof SCOPE_ERROR_CODES)[keyof typeof SCOPE_ERROR_CODES];

/** Why a check was denied, as written to the audit chain (`metadata.reason`). */
export type ScopeDenialReason =
  /** The tool, API or model is not in the policy's allow-list. */
  | "not_allowed"
  /** The tool is one of the policy's `hiddenTools`. */
  | "hidden"
  /**
   * The tool name, API call or model name the agent sent cannot be checked: an API call that
   * is not a canonical http(s) `"METHOD URL"` (see the README), or an empty or over-long name.
   */
  | "invalid_request"
  /** No policy is registered for the agent. */
  | "no_policy";

/** How many allowed names a {@link ScopeViolation} message lists before "and N more". */
export const LISTED_NAMES = 10;

/** `a, b, c` — the first {@link LISTED_NAMES}, then "and N more"; `(none)` when empty. */
export function listNames(names: readonly string[]): string {
  if (names.length === 0) return "(none)";
  const shown = names
    .slice(0, LISTED_NAMES)
    .map((name) => JSON.stringify(name))
    .join(", ");
  const rest = names.length - LISTED_NAMES;
  return rest > 0 ? `${shown} and ${rest} more` : shown;
}

/** What a {@link ScopeViolation} is about. */
export interface ScopeViolationDetails {
  agentId: string;
  /** The tool that was refused, or null for an API or model call. */
  tool: string | null;
  /**
   * The API call that was refused, or null for a tool or model — redacted (no user name or
   * password, query values as `REDACTED`, cut when long), never the raw text.
   */
  api: string | null;
  /**
   * The model that was refused (cut at `SCOPE_LIMITS.modelName` when over-long), or null for
   * a tool or API call; left out, null.
   */
  model?: string | null;
  reason: Exclude<ScopeDenialReason, "no_policy">;
  /** The names the policy allows for this kind of call (tools, API entries, or models). */
  allowed: readonly string[];
  /** An extra sentence for the message, e.g. a case-only near miss. */
  note?: string;
}

/** The policy's list that allows each kind of call. */
const KIND_FIELDS = { tool: "allowedTools", API: "allowedApis", model: "allowedModels" } as const;

/**
 * The agent's policy does not allow this tool, API call or model (or the tool is hidden from
 * the agent). The denial was written to the audit chain as `scope.violation` before this was
 * thrown. The message lists what the policy does allow.
 *
 * @example
 * ```ts
 * try {
 *   await sdk.scope.check("billing-agent", { tool: "delete_user" });
 * } catch (error) {
 *   if (ScopeViolation.isInstance(error)) return `refused: ${error.message}`;
 *   throw error;
 * }
 * ```
 */
export class ScopeViolation extends GovernanceError {
  static override readonly errorIdentity = "@gov/scope.ScopeViolation";

  readonly agentId: string;
  readonly tool: string | null;
  readonly api: string | null;
  /** The model that was refused, or null for a tool or API call. */
  readonly model: string | null;
  readonly reason: Exclude<ScopeDenialReason, "no_policy">;
  /** What the policy allows for this kind of call (all of it, not only the listed ten). */
  readonly allowed: readonly string[];

  constructor(details: ScopeViolationDetails) {
    const model = details.model ?? null;
    const kind = details.tool !== null ? "tool" : model !== null ? "model" : "API";
    const target = JSON.stringify(details.tool ?? model ?? details.api);
    const field = KIND_FIELDS[kind];
    const why =
      details.reason === "hidden"
        ? "it is one of the policy's hiddenTools"
        : details.reason === "invalid_request"
          ? `it is not a valid ${kind === "API" ? 'canonical "METHOD URL" call' : `${kind} name`}`
          : `it is not in the policy's ${field}`;
    const note = details.note ? ` ${details.note}` : "";
    // An empty allowedModels places no limit on models: "(none)" would say the opposite.
    const allowed =
      kind === "model" && details.allowed.length === 0
        ? ""
        : ` Allowed ${kind === "API" ? "APIs" : `${kind}s`}: ${listNames(details.allowed)}.`;
    super({
      code: SCOPE_ERROR_CODES.SCOPE_VIOLATION,
      message: `Agent ${JSON.stringify(details.agentId)} may not call ${kind} ${target}: ${why}.${note}${allowed}`,
      recoveryHint:
        details.reason === "hidden"
          ? `Hidden tools are never callable. If the agent needs ${target}, remove it from hiddenTools, add it to allowedTools, and register the policy again.`
          : details.reason === "invalid_request"
            ? kind === "tool"
              ? "Call a tool by its exact name (1–256 characters)."
              : kind === "model"
                ? "Call a model by its exact name (1–128 characters)."
                : 'Send the call as "METHOD scheme://host[:port]/path[?query]" exactly as a client sends it: lower-case host, no default port, no "." or ".." segments, no "\\", "@", whitespace or non-ASCII characters, no %25 or %2e.'
            : `If the agent should be able to call it, add ${target} to ${field} of its ScopePolicy and register the policy again (scope.register); otherwise stop the agent from calling it.`,
    });
    this.name = "ScopeViolation";
    this.agentId = details.agentId;
    this.tool = details.tool;
    this.api = details.api;
    this.model = model;
    this.reason = details.reason;
    this.allowed = details.allowed;
  }
}

/**
 * No scope policy is registered for this agent, so the call was denied (default deny). Also
 * thrown by `filterTools`, which never hands out an unfiltered tool list.
 */
export class PolicyNotRegistered extends GovernanceError {
  static override readonly errorIdentity = "@gov/scope.PolicyNotRegistered";

  readonly agentId: string;

  constructor(agentId: string) {
    super({
      code: SCOPE_ERROR_CODES.POLICY_NOT_REGISTERED,
      message: `No scope policy is registered for agent ${JSON.stringify(agentId)}; every tool, API and model call is denied (default deny).`,
      recoveryHint: `Register a policy at startup: scope.register(new ScopePolicy({ agentId: ${JSON.stringify(agentId)}, allowedTools: [...] })). Check the agentId for typos: ids are case-sensitive.`,
    });
    this.name = "PolicyNotRegistered";
    this.agentId = agentId;
  }
}

/**
 * A `ScopePolicy` was refused: the field at fault (inside the policy, e.g. `allowedTools[3]`),
 * the limit, and the fix. Nothing changed. It is a core `InvalidArgumentError`
 * (`InvalidArgumentError.isInstance(error)` is true, as for every module's bad input) with
 * the code of `@gov/scope`, `SCOPE_POLICY_INVALID`; every problem found is in `issues`.
 */
export class InvalidScopePolicyError extends ModuleInputError {
  static override readonly errorIdentity = "@gov/scope.InvalidScopePolicyError";

  /** Always `SCOPE_POLICY_INVALID`. */
  override readonly code: string = SCOPE_ERROR_CODES.SCOPE_POLICY_INVALID;

  constructor(
    field: string,
    problem: string,
    fix: string,
    limit?: number,
    details: { issues?: InvalidArgumentError["issues"]; cause?: unknown } = {},
  ) {
    super(field, problem, fix, limit, details);
    const others = this.issues.slice(1);
    this.message = [
      `Invalid ScopePolicy: ${field} ${problem}`,
      ...others.map((issue) => `  - also ${issue.field} ${issue.problem}`),
    ].join("\n");
  }
}
