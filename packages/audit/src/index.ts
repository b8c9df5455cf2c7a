export {
  AUDIT_ERROR_CODES,
  type ChainIntegrityDetails,
  ChainIntegrityError,
  InvalidAuditEventError,
  StoreUnavailableError,
} from "./errors";
export {
  InMemoryAuditStore,
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
  type RotateChainKeyOptions,
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
export { checkpointPayload, type VerificationReport } from "./verify";
