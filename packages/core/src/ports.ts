/**
 * Ports: the small interfaces through which one module uses another without importing it.
 * A module asks for a port; the umbrella (`@gov/sdk`) wires in the real module; used alone,
 * a module gets the no-op default, or refuses clearly where the port is needed for safety.
 */

/** JSON-compatible metadata of an audit event. */
export type AuditMetadata = Record<string, unknown>;

/**
 * An event to be written to the audit chain. The audit module validates and sanitizes it
 * (limits as in the reference) and signs it.
 */
export interface AuditEventInput {
  /** The agent the event is about (≤ 256 characters). */
  agentId: string;
  /** Dotted event kind, e.g. `scope.violation` (≤ 128 characters). */
  kind: string;
  /** The session (chain) the event belongs to. */
  sessionId?: string | null;
  /** The event this one follows from, e.g. a tool call's request. */
  parentEventId?: string | null;
  /** The model involved, if any (≤ 128 characters). */
  model?: string | null;
  /** SHA-256 (hex) of the input, if any. */
  inputHash?: string | null;
  /** SHA-256 (hex) of the output, if any. */
  outputHash?: string | null;
  /** Fields an auditor needs (≤ 64 keys, ≤ 8 KiB per value, ≤ 64 KiB in all). */
  metadata?: AuditMetadata;
}

/** What an {@link AuditSink} returns for a logged event. */
export interface AuditReceipt {
  /** The event's id in the chain. */
  eventId: string;
  /** True when the event could not be stored and a placeholder was returned. */
  isPlaceholder: boolean;
}

/**
 * Where modules write their decisions (denials, breaches, approvals, halts…).
 *
 * `log` is an observation surface: it **never throws** on an internal failure. It resolves
 * once the event is durable (or has been spooled, or, as a last resort, replaced by a
 * visible placeholder). It may reject only for invalid input, which is a caller's bug.
 */
export interface AuditSink {
  log(event: AuditEventInput): Promise<AuditReceipt>;
}

/**
 * The sink of a module used without `@gov/audit`: it records nothing. Compose the audit
 * module (or use `@gov/sdk`) to keep evidence.
 */
export const noopAuditSink: AuditSink = {
  async log() {
    return { eventId: "", isPlaceholder: true };
  },
};

/** Where an enforcement check is being made, for the halt error and its audit event. */
export interface HaltCheckContext {
  /** The enforcement path, e.g. `scope.check` or `cost.checkOrRaise`. */
  path: string;
}

/**
 * The operator's halt, as seen by enforcement surfaces. Implemented by `@gov/presence`.
 *
 * `assertAlive` throws `AgentHaltedError` when the agent is halted; it is the first thing
 * every enforcement check does. It fails closed: when the halt state cannot be read and
 * nothing is cached, it throws rather than let a halted agent through.
 */
export interface HaltGuard {
  assertAlive(agentId: string, context: HaltCheckContext): Promise<void>;
}

/**
 * The guard of a module used without `@gov/presence`: nothing can be halted, so nothing is
 * refused.
 */
export const noopHaltGuard: HaltGuard = {
  async assertAlive() {},
};

/**
 * Who answers for an agent: the operator bound to it by its heartbeat. Implemented by
 * `@gov/presence`; used by `@gov/gates` to refuse self-approval (the reviewer of a request
 * may be neither the agent nor its operator).
 */
export interface OperatorDirectory {
  /**
   * The operator bound to the agent by its latest heartbeat, or `null` when none is known.
   * Throws when the binding cannot be read, so that a caller enforcing a rule with it can
   * fail closed.
   */
  operatorOf(agentId: string): Promise<string | null>;
}

/** The directory of a composition without `@gov/presence`: no agent has a known operator. */
export const noopOperatorDirectory: OperatorDirectory = {
  async operatorOf() {
    return null;
  },
};
