export {
  InvalidLoopPolicyError,
  LOOP_ERROR_CODES,
  LoopDetected,
  type LoopDetection,
  type LoopErrorCode,
  type LoopPattern,
} from "./errors";
export {
  type IdenticalCallsInput,
  type IdenticalCallsRule,
  LOOP_DEFAULTS,
  LOOP_LIMITS,
  type LoopOptions,
  LoopPolicy,
  type LoopPolicyInput,
  loopOptionsSchema,
  loopPolicySchema,
  type OscillationInput,
  type OscillationRule,
  type ResolvedLoopOptions,
} from "./models";
export {
  type LoopMetrics,
  LoopModule,
  type LoopStats,
  loopModule,
  type RecordCallOptions,
} from "./module";
export { type LoopSdkOptions, loopSdkContribution } from "./sdk-options";
