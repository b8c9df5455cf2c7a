/**
 * `@gov/wrappers`: the governed-call pipeline shared by the client wrappers, their options
 * and errors, and the coverage registry. Each client has its own subpath
 * (`@gov/wrappers/openai`).
 * @module
 */
export {
  type CoverageSdkOptions,
  coverageMigrations,
  coverageModule,
  coverageSdkContribution,
} from "./coverage/definition";
export {
  COVERAGE_LIMITS,
  type CoverageContext,
  type CoverageEntry,
  type CoverageOptions,
  CoverageRegistry,
  type CoverageReport,
  NO_WRAPPERS_WARNING,
} from "./coverage/registry";
export {
  InvalidWrapperOptionsError,
  ToolCallBlockedError,
  ToolCallOutOfScopeError,
  WRAPPERS_ERROR_CODES,
  type WrappersErrorCode,
} from "./errors";
export {
  type CallEnd,
  type CallOutcome,
  type CallRequest,
  GovernedCall,
  Governor,
  type NamedTool,
  settled,
} from "./governed-call";
export { GovernedPromise, type GovernedSource } from "./governed-promise";
export { governStream, type StreamHooks } from "./governed-stream";
export {
  type ContentToRedact,
  type ResolvedWrapOptions,
  resolveWrapOptions,
  type WrapOptions,
} from "./options";
