/** `@gov/steward` — blueprints, tripwires, trust debt and interventions. */
export {
  type BlueprintLookup,
  type CompiledBlueprint,
  type CompiledCheck,
  type CompiledExpression,
  type CompiledTripwire,
  compileBlueprint,
  compileExpression,
  loadBlueprints,
  parseBlueprintYaml,
  readBlueprintFile,
  resolveInheritance,
  scopeSpecificity,
  validateBlueprint,
} from "./blueprint";
export {
  AgentHalted,
  BlueprintNotFound,
  BlueprintSignatureInvalid,
  BudgetExceeded,
  EvaluationLimitExceeded,
  PolicyError,
  STEWARD_ERROR_CODES,
  StewardError,
  type StewardErrorCode,
  StewardNotStartedError,
  TripwireViolation,
} from "./errors";
export { stricter } from "./evaluation";
export {
  type GuardDecision,
  type GuardOptions,
  type GuardRule,
  guard,
  SPEND_FIELDS,
} from "./guard";
export type { StewardMetrics } from "./metrics";
export {
  type BlueprintCheck,
  type BlueprintDocument,
  type BlueprintInput,
  type BlueprintScope,
  type BlueprintTripwire,
  blueprintSchema,
  type CognitiveTrace,
  type ConformanceLevel,
  DEFAULT_SCORING,
  DEFAULT_TRUST_DEBT,
  type EvidenceRequirements,
  type GovernanceStatus,
  HOOKS,
  type Hook,
  type InterventionResult,
  InterventionType,
  RiskLevel,
  type ScoringThresholds,
  STEWARD_AUDIT_KINDS,
  STEWARD_LIMITS,
  TripwireSeverity,
  type TrustDebtConfig,
} from "./models";
export {
  StewardModule,
  type StewardModuleOptions,
  stewardMigrations,
  stewardModule,
} from "./module";
export type {
  BlueprintSource,
  EvaluateOptions,
  Scorer,
  ScorerContext,
  StewardContext,
  StewardOptions,
} from "./options";
export {
  type BlueprintRegistry,
  DirectoryBlueprintRegistry,
  fetchWithParents,
  PostgresBlueprintRegistry,
  type PostgresBlueprintRegistryOptions,
  PostgresStateStorage,
  PostgresTrustDebtStorage,
  STEWARD_SYSTEM_AGENT,
} from "./persistence";
export {
  detectPii,
  luhnValid,
  normalizeForPii,
  PII_SCAN_LIMITS,
  type PiiKind,
  type ScanFinding,
  type ScanOptions,
  scanValues,
} from "./pii";
export { type StewardSdkOptions, stewardSdkContribution } from "./sdk-options";
export {
  BLUEPRINT_LEDGER_SIGNATURE_TYPE,
  BLUEPRINT_SIGNATURE_TYPE,
  type BlueprintRejectionReason,
} from "./signature";
export { GUARD_LIMITS } from "./snapshot";
export {
  type AgentState,
  type DebtChange,
  type DebtDecay,
  InMemoryStateStorage,
  InMemoryTrustDebtStorage,
  type RecordedAction,
  type StateStorage,
  type TrustDebtStorage,
} from "./state";
export { GovernanceSteward } from "./steward";
