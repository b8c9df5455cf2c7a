export {
  CloseHaltedAgentError,
  HaltNotPersistedError,
  HaltStateUnavailableError,
  InvalidPresenceInputError,
  PRESENCE_ERROR_CODES,
  type PresenceErrorCode,
} from "./errors";
export { HALT_CHANNEL, type HaltState } from "./halt-cache";
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
  PresenceModule,
  presenceMigrations,
  presenceModule,
  type ResumeOptions,
  type ResumeResult,
} from "./module";
