/**
 * `@gov/wrappers`: what every client wrapper shares — their options, their errors,
 * `settled()`, and the coverage registry. Each client has its own subpath
 * (`@gov/wrappers/openai`, `@gov/wrappers/anthropic`, `@gov/wrappers/ai-sdk`); the pipeline
 * they are built on is internal.
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
export { settled } from "./governed-call";
export type { ContentToRedact, WrapOptions } from "./options";
