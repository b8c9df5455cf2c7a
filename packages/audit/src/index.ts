export {
  type CheckpointFailure,
  type CheckpointVerificationReport,
  checkpointPayload,
  type StoredCheckpoint,
  type VerifyCheckpointsOptions,
  verifyCheckpoints,
} from "./checkpoint-signing";
export {
  AUDIT_ERROR_CODES,
  type ChainIntegrityDetails,
  ChainIntegrityError,
  InvalidAuditEventError,
  RetiredKeyError,
  StoreUnavailableError,
  WitnessUnavailableError,
} from "./errors";
export {
  InMemoryAuditStore,
  type InMemoryAuditStoreMetrics,
  type InMemoryAuditStoreOptions,
  type InMemoryAuditStoreStats,
} from "./memory-store";
export {
  AGENT_CHAIN_PREFIX,
  AUDIT_LIMITS,
  chainOf,
  type NormalizedEvent,
  normalizeEvent,
} from "./models";
export {
  type AuditMetrics,
  AuditModule,
  type AuditOptions,
  auditMigrations,
  auditModule,
  contentHash,
  type EventFilters,
  type ImportSpoolOptions,
  type RotateChainKeyOptions,
  type SpoolImportResult,
  type TrackOptions,
  type VerifyChainOptions,
} from "./module";
export {
  type AuditEventRecord,
  type AuditRecordStatus,
  PLACEHOLDER_HMAC,
  RECORD_FORMAT_VERSION,
  signedPayload,
} from "./record";
export {
  KEY_HISTORY_CHAIN,
  KEY_ROTATION_GRACE_MS,
  type KeyRotationFields,
  rotationPayload,
  type StoredRotation,
} from "./rotation-record";
export { type AuditSdkOptions, auditSdkContribution } from "./sdk-options";
export { type VerificationReport, WITNESS_CHAIN } from "./verification-report";
export {
  type CheckpointWitness,
  FileCheckpointWitness,
  isCheckpointWitness,
  type WitnessedCheckpoint,
  type WitnessFilter,
} from "./witness";
