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
  type AgentStatus,
  PRESENCE_LIMITS,
  type PresenceMetadata,
  type PresenceOptions,
} from "./models";
export {
  type AgentPresence,
  type HaltOptions,
  type HaltResult,
  type HeartbeatOptions,
  PRESENCE_AUDIT_KINDS,
  PresenceModule,
  presenceMigrations,
  presenceModule,
  type ResumeOptions,
  type ResumeResult,
} from "./module";
