import { identityForms, sameIdentity } from "@gov/core";
import { InvalidAuditEventError } from "./errors";
import { AGENT_CHAIN_PREFIX, type NormalizedEvent, normalizeEvent } from "./models";

/** The agent id of the audit module's own events (key rotations, spool and witness evidence). */
export const SYSTEM_AGENT = "gov.audit";

/** The chain of the module's own events. */
export const SYSTEM_CHAIN = `${AGENT_CHAIN_PREFIX}${SYSTEM_AGENT}`;

/** The forms in which look-alikes of {@link SYSTEM_AGENT} are recognized (core's identityForms). */
const SYSTEM_AGENT_FORMS = identityForms(SYSTEM_AGENT);

/** One of the module's own events, in the chain {@link SYSTEM_CHAIN}. */
export function systemEvent(kind: string, metadata: Record<string, unknown>): NormalizedEvent {
  return normalizeEvent({ agentId: SYSTEM_AGENT, kind, metadata });
}

/**
 * Refuse the agent id reserved for the module's own events, and any id that reads the same:
 * compared as identities (core's `sameIdentity`: case, white space, invisible and blank
 * characters, look-alike letters), not as bytes.
 */
export function refuseReservedAgent(agentId: string): void {
  if (sameIdentity(agentId.trim(), SYSTEM_AGENT_FORMS)) {
    throw new InvalidAuditEventError(
      "agentId",
      `reads as "${SYSTEM_AGENT}", which is reserved for the audit module's own events (ids are compared as they read: case, spaces, invisible characters and look-alike letters do not make another id).`,
      "Log under your agent's own id.",
    );
  }
}
