/**
 * A tool as `filterTools` accepts it: its name, an object with a `name` (Anthropic, MCP), or
 * an OpenAI tool spec with `function.name`. The same type as `@gov/core`'s `ToolLike`.
 */
export type { ToolLike } from "@gov/core";
export {
  type ApiParseProblem,
  type ApiRequest,
  type ApiRule,
  matchesApi,
  parseApiRequest,
  parseApiRule,
  redactApi,
} from "./api-rule";
export {
  InvalidScopePolicyError,
  PolicyNotRegistered,
  SCOPE_ERROR_CODES,
  type ScopeDenialReason,
  type ScopeErrorCode,
  ScopeViolation,
  type ScopeViolationDetails,
} from "./errors";
export {
  ReadonlyNameSet,
  SCOPE_LIMITS,
  ScopePolicy,
  type ScopePolicyData,
  type ScopePolicyInput,
  type ScopePolicySnapshot,
  scopePolicySchema,
} from "./models";
export {
  SCOPE_VIOLATION_KIND,
  type ScopeCheckTarget,
  ScopeModule,
  type ScopeOptions,
  scopeMigrations,
  scopeModule,
} from "./module";
export { SCOPE_POLICY_REJECTED_KIND, SCOPE_POLICY_ROLLED_BACK_KIND } from "./policy-sync";
export {
  SCOPE_POLICY_CHANNEL,
  SCOPE_POLICY_NOT_PERSISTED_KIND,
  type ScopePolicyNotPersistedReason,
} from "./policy-write";
export { type ScopeSdkOptions, scopeSdkContribution } from "./sdk-options";
export { SCOPE_POLICY_SIGNATURE_TYPE, type ScopePolicyRejectionReason } from "./signature";
