export { PRESENCE_AUDIT_KINDS } from "./audit-kinds";
export {
  CloseHaltedAgentError,
  HaltNotPersistedError,
  type HaltNotPersistedFailure,
  HaltStateUnavailableError,
  InvalidPresenceInputError,
  PRESENCE_ERROR_CODES,
  type PresenceErrorCode,
} from "./errors";
export { HALT_CHANNEL, MAX_PENDING_AGENTS, NOTIFIED_RELOAD_INTERVAL_MS } from "./halt-cache";
export { type HaltState, UNVERIFIABLE_HALTED_BY } from "./halt-state";
export {
  AGENT_STATUS,
  type AgentPresence,
  type AgentStatus,
  type HaltOptions,
  type HaltResult,
  type HeartbeatOptions,
  PRESENCE_LIMITS,
  type PresenceMetadata,
  type PresenceOptions,
  type ResumeOptions,
  type ResumeResult,
} from "./models";
export { PresenceModule, presenceMigrations, presenceModule } from "./module";
export { type PresenceSdkOptions, presenceSdkContribution } from "./sdk-options";
