/** Audit event kinds written by the cost module. */
export const COST_AUDIT_KINDS = {
  /** A check was refused: a cap would be exceeded. */
  exceeded: "budget.exceeded",
  /** A check could not read the store; denied, or let through with `failOpen`. */
  checkFailed: "budget.check_failed",
  /** Spend crossed an alert threshold (the webhook is being sent). */
  thresholdCrossed: "budget.threshold_crossed",
  /** An alert webhook could not be delivered after every attempt. */
  alertFailed: "budget.alert_failed",
  /** A reservation ran out of time before its usage was reported, and was released. */
  reservationExpired: "budget.reservation_expired",
  /** Usage could not be recorded after every retry and was dropped (the backlog was full). */
  usageDropped: "budget.usage_dropped",
  /**
   * A spool file failed its signature check (edited, reordered, truncated, replaced by another
   * spool file, signed by an unknown key): it was kept aside, and only its proven records are
   * replayed (none of a file that replaced one this process held).
   */
  spoolRejected: "budget.spool_rejected",
  /** A spool file ended in a torn line (a crash mid-append); the records before it are replayed. */
  spoolTorn: "budget.spool_torn",
  /** A spool file of an earlier process had no end marker (it did not close cleanly). */
  spoolUnclosed: "budget.spool_unclosed",
  /**
   * Spool files of other hosts were found at start and left alone (their writers may run):
   * their usage waits until those hosts adopt it, or `spoolAdoptHosts` names them as gone.
   */
  spoolStranded: "budget.spool_stranded",
} as const;
