/**
 * drizzle's `sql` template tag, re-exported so that raw queries (`store.query(sql\`…\`)`)
 * use the same drizzle as the store. Interpolated values are always sent as parameters.
 */
export { type SQL, sql } from "drizzle-orm";
export { canonicalJson, canonicalJsonHash, type JsonValue } from "./canonical-json";
export { type Clock, ManualClock, systemClock } from "./clock";
export {
  CORE_ENV_BINDINGS,
  CORE_FIELD_FIXES,
  type CoreConfig,
  type CoreOptionsInput,
  coreOptionsSchema,
  type EnvBinding,
  type EnvValueKind,
  type FieldFixes,
  type ReadConfigInput,
  readConfig,
  readCoreConfig,
  readHistoricalKeyEnv,
  type StoreConfig,
  type StoreOptionsInput,
  storeOptionsSchema,
} from "./config";
export {
  type BlankCharacter,
  codePointLabel,
  confusableSkeleton,
  containsLookAlike,
  findBlankCharacter,
  identityForms,
  matchingForms,
  sameIdentity,
  stripIgnorables,
} from "./confusables";
export {
  type DatabaseTarget,
  DEFAULT_EMBEDDED_DIRECTORY,
  parseDatabaseUrl,
  redactConnectionStrings,
} from "./database-url";
export {
  type DescribeErrorOptions,
  describeError,
  describeValue,
  typeOf,
} from "./describe";
export {
  type AgentHaltedDetails,
  AgentHaltedError,
  CORE_ERROR_CODES,
  ConfigError,
  type ConfigIssue,
  type CoreErrorCode,
  ERROR_IDENTITY_PATTERN,
  GovernanceError,
  type GovernanceErrorOptions,
  hasErrorIdentity,
  type InputIssue,
  type InvalidArgumentDetails,
  InvalidArgumentError,
  type InvalidArgumentErrorClass,
  ModuleInputError,
  reportInvalidAs,
  requireOptionsObject,
} from "./errors";
export {
  agentIdSchema,
  checkId,
  checkText,
  type IdOptions,
  idSchema,
  isUuid,
  MAX_ID_LENGTH,
  type ParseOptionsOptions,
  parseOptions,
  suggestKey,
  type TextOptions,
  textSchema,
  UUID_PATTERN,
} from "./input";
export {
  CHAIN_KEY_ENV_PREFIX,
  ChainKey,
  constantTimeEqualHex,
  EMBEDDED_KEY_FILE,
  EMBEDDED_SIGNING_KEY_FILE,
  historicalKeysFromEnv,
  isPrivateKeyMaterial,
  KEY_ID_LENGTH,
  Keyring,
  keyFingerprint,
  loadOrCreateKeyFile,
  loadOrCreateSigningKeyFile,
  MIN_SECRET_BYTES,
  MIN_SECRET_DISTINCT_BYTES,
  type ResolveKeyringOptions,
  type ResolveSigningKeyOptions,
  resolveKeyring,
  resolveSigningKey,
  SecretError,
  SigningKey,
  signingKeyFingerprint,
  VerifyingKey,
  validateSecret,
} from "./keys";
export {
  createConsoleLogger,
  type LogFields,
  type Logger,
  type LogLevel,
  silentLogger,
} from "./logger";
export {
  loadMigrations,
  MIGRATIONS_TABLE,
  type Migration,
  MigrationError,
  type MigrationReport,
  type MigrationSource,
  type ModuleMigrationReport,
  moduleSchema,
  type RunMigrationsOptions,
  runMigrations,
} from "./migrations";
export {
  defineModule,
  type ModuleContext,
  type ModuleDefinition,
  type ProvidedPorts,
  requireKeyring,
  requirePort,
  type SdkContribution,
} from "./module";
export {
  defaultTemplateCacheDirectory,
  ensurePgliteTemplate,
  type PgliteTemplateOptions,
} from "./pglite-template";
export {
  type AuditEventInput,
  type AuditMetadata,
  type AuditReceipt,
  type AuditSink,
  type HaltCheckContext,
  type HaltGuard,
  noopAuditSink,
  noopHaltGuard,
  noopOperatorDirectory,
  type OperatorDirectory,
} from "./ports";
export {
  DurableSpool,
  type DurableSpoolNames,
  type DurableSpoolOptions,
  type ReadSpoolFileOptions,
  readSpoolFile,
  type SpoolFileContents,
  SpoolFileError,
  type SpoolIntegrityProblem,
  type StrandedSpoolFiles,
  spoolHostNames,
} from "./spool";
export {
  acquireTransactionLock,
  advisoryLockKey,
  type CreateStoreOptions,
  createStore,
  EMBEDDED_IN_PRODUCTION_WARNING,
  type GovDatabase,
  type GovQueryResult,
  type GovQueryResultHKT,
  type GovTransaction,
  type HealthReport,
  type IsolationLevel,
  type ListenOptions,
  MAX_NOTIFY_PAYLOAD_BYTES,
  resolveTarget,
  type Store,
  type Subscription,
  type TransactionOptions,
  tryAcquireTransactionLock,
} from "./store";
export {
  StoreError,
  type StoreErrorDetails,
  type StoreErrorKind,
  toStoreError,
} from "./store-errors";
export { hasControlCharacters, sanitizeName, sanitizeText } from "./text";
