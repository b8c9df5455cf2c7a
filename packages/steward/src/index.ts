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
  BudgetExceeded,
  PolicyError,
  STEWARD_ERROR_CODES,
  StewardError,
  type StewardErrorCode,
  TripwireViolation,
} from "./errors";
export { type GuardDecision, type GuardOptions, type GuardRule, guard } from "./guard";
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
export {
  type BlueprintRegistry,
  DirectoryBlueprintRegistry,
  fetchWithParents,
  PostgresBlueprintRegistry,
  PostgresStateStorage,
  PostgresTrustDebtStorage,
} from "./persistence";
export { detectPii, luhnValid, type PiiKind } from "./pii";
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
export {
  type BlueprintSource,
  type EvaluateOptions,
  GovernanceSteward,
  type Scorer,
  type ScorerContext,
  STEWARD_AUDIT_KINDS,
  type StewardContext,
  type StewardMetrics,
  type StewardOptions,
  stricter,
} from "./steward";
