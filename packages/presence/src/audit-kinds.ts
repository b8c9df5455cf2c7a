/** Audit event kinds written by the presence module. */
export const PRESENCE_AUDIT_KINDS = {
  /** An operator halted an agent. */
  halted: "agent.halted",
  /** An operator lifted a halt. */
  resumed: "agent.resumed",
  /** An enforcement check refused a halted agent. */
  haltEnforced: "agent.halt_enforced",
  /**
   * A stored halt state was not believed: its signature failed (the agent is then enforced as
   * halted), or its row went back to an older version or lost a halt this process had seen
   * (the newer state is kept). Written at most once per row version and problem, per process.
   */
  haltStateRejected: "presence.halt_state_rejected",
  /**
   * A halt or resume was written, but the stored row does not hold what it signed (a trigger,
   * a rule or another writer on `gov_presence.agents` changed or discarded it), or could not be
   * read back to check: `halt()` and `resume()` threw `HaltNotPersistedError`
   * (`failure: "not_stored"`). Metadata: `operation`, `version`, `problem`, who and why, and
   * `enforcedInThisProcess` (true for a halt: this process enforces it; other processes may not).
   */
  haltNotPersisted: "presence.halt_not_persisted",
} as const;
