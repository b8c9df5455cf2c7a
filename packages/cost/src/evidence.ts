/**
 * The cost module's writes to the audit chain that no one operation owns: the guarded write
 * every decision goes through, and the evidence of spool files that did not prove whole or
 * were left to other hosts.
 */
import {
  type AuditEventInput,
  describeError,
  type SpoolIntegrityProblem,
  type StrandedSpoolFiles,
} from "@gov/core";
import { COST_AUDIT_KINDS } from "./audit-kinds";
import type { CostRuntime } from "./runtime";

/** The agent id of the cost module's own events (about its spool, not about one agent). */
const SYSTEM_AGENT = "gov.cost";

/** Characters of a model id in an audit event (the audit chain's limit). */
const AUDIT_MODEL_LIMIT = 128;

/**
 * Write an event to the audit chain. The sink never throws for its own failures, but it
 * refuses invalid input; that must not turn a budget decision or a sweep into a crash.
 */
export async function writeEvidence(
  runtime: Pick<CostRuntime, "audit" | "logger">,
  event: AuditEventInput,
): Promise<void> {
  try {
    await runtime.audit.log(
      event.model && event.model.length > AUDIT_MODEL_LIMIT
        ? { ...event, model: `${event.model.slice(0, AUDIT_MODEL_LIMIT - 1)}…` }
        : event,
    );
  } catch (error) {
    runtime.logger.error("A cost decision could not be written to the audit chain.", {
      kind: event.kind,
      agentId: event.agentId,
      error: describeError(error),
    });
  }
}

/** A spool file that did not prove whole (the spool logged it): evidence in the audit chain. */
export function spoolProblemEvidence(runtime: CostRuntime, problem: SpoolIntegrityProblem): void {
  // Every field of the problem but its kind (in the event's kind) and the spool's name.
  const { kind, spool: _spool, ...metadata } = problem;
  const recording = writeEvidence(runtime, {
    agentId: SYSTEM_AGENT,
    kind: `budget.spool_${kind}`,
    metadata,
  });
  runtime.alerts.track(recording);
}

/** Spool files of other hosts were left alone at start (the spool logged it): evidence. */
export function spoolStrandedEvidence(runtime: CostRuntime, stranded: StrandedSpoolFiles): void {
  const recording = writeEvidence(runtime, {
    agentId: SYSTEM_AGENT,
    kind: COST_AUDIT_KINDS.spoolStranded,
    metadata: {
      files: stranded.files,
      hosts: stranded.hosts.slice(0, 20),
      oldestAgeMs: stranded.oldestAgeMs,
    },
  });
  runtime.alerts.track(recording);
}
