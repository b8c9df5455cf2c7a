/**
 * What an evaluation returns and what it writes to the audit chain: the intervention, its
 * message, the governance status, and the `steward.intervention` event.
 */
import { type AuditEventInput, canonicalJsonHash } from "@gov/core";
import type { CompiledBlueprint } from "./blueprint";
import type { Fired, StepsOutcome } from "./evaluation";
import {
  type CognitiveTrace,
  type ConformanceLevel,
  type GovernanceStatus,
  type InterventionResult,
  type InterventionType,
  type RiskLevel,
  STEWARD_AUDIT_KINDS,
} from "./models";

/** Most fired tripwires detailed in one audit event (the chain limits a value to 8 KiB). */
const AUDITED_TRIPWIRES = 20;
/** Most fired tripwire ids listed in one audit event. */
const AUDITED_TRIPWIRE_IDS = 100;
const AUDITED_TEXT = 256;

/** Who and what a result is about. */
export interface ResultSubject {
  trace: CognitiveTrace;
  traceId: string;
  agentId: string;
  agentTier: string;
  blueprint: CompiledBlueprint | null;
  conformance: ConformanceLevel;
}

/**
 * The result of an evaluation and the audit event to write for it: every evaluation at
 * `complete`, every one that is not OK otherwise (`null` when none is due). `metadata` is what
 * the steps wrote; the result's metadata is a copy with the subject's fields added.
 */
export function resultOf(
  subject: ResultSubject,
  outcome: StepsOutcome,
  message: string,
  stepMetadata: Record<string, unknown>,
  timestamp: Date,
): { result: InterventionResult; event: AuditEventInput | null } {
  const { trace, traceId, agentId, agentTier, blueprint, conformance } = subject;
  const { decision, flagged, fired, quality, risk, debt } = outcome;
  const intervention: InterventionType = decision === "OK" && flagged ? "FLAG" : decision;
  const status: GovernanceStatus = {
    riskLevel: riskLevelOf(decision, risk, blueprint),
    riskScore: risk,
    qualityScore: quality,
    firedTripwires: fired.map((item) => item.id),
    flagged,
    trustDebtBefore: debt.before,
    trustDebtAfter: debt.after,
    trustDebtLevels: debt.levels,
    blueprintId: blueprint?.id ?? null,
    blueprintHash: blueprint?.hash ?? null,
  };
  const metadata: Record<string, unknown> = {
    ...stepMetadata,
    conformanceLevel: conformance,
    action: trace.action,
    agentId,
    agentTier,
  };
  if (trace.agentTier !== undefined && trace.agentTier !== agentTier)
    metadata.ignoredTraceAgentTier = trace.agentTier;
  if (fired.length > 0) metadata.tripwires = fired;
  const result: InterventionResult = {
    intervention,
    message,
    traceId,
    timestamp,
    governanceStatus: status,
    metadata,
  };
  if (conformance !== "complete" && intervention === "OK") return { result, event: null };
  const event: AuditEventInput = {
    agentId,
    kind: STEWARD_AUDIT_KINDS.intervention,
    inputHash: inputHash(trace),
    metadata: {
      intervention,
      message,
      traceId,
      action: trace.action,
      agentTier,
      blueprintId: status.blueprintId,
      blueprintHash: status.blueprintHash,
      riskLevel: status.riskLevel,
      riskScore: risk,
      qualityScore: quality,
      flagged,
      firedTripwires: auditedTripwires(fired),
      ...(stepMetadata.checkLimitsExceeded === undefined
        ? {}
        : { checkLimitsExceeded: stepMetadata.checkLimitsExceeded }),
      trustDebtBefore: debt.before,
      trustDebtAfter: debt.after,
      conformanceLevel: conformance,
    },
  };
  return { result, event };
}

function auditedTripwires(fired: readonly Fired[]): {
  count: number;
  ids: string[];
  details: Fired[];
} {
  return {
    count: fired.length,
    ids: fired.slice(0, AUDITED_TRIPWIRE_IDS).map((item) => item.id),
    details: fired.slice(0, AUDITED_TRIPWIRES).map((item) => ({
      ...item,
      reason: item.reason.slice(0, AUDITED_TEXT),
      ...(item.error === undefined ? {} : { error: item.error.slice(0, AUDITED_TEXT) }),
    })),
  };
}

function riskLevelOf(
  decision: InterventionType,
  risk: number,
  blueprint: CompiledBlueprint | null,
): RiskLevel {
  if (decision === "BLOCK" || decision === "HALT") return "critical_risk";
  if (decision === "ESCALATE") return "elevated_risk";
  const ok = blueprint?.scoring.ok ?? 0.25;
  return risk <= ok ? "low_risk" : "elevated_risk";
}

function inputHash(trace: CognitiveTrace): string | null {
  try {
    return canonicalJsonHash(
      {
        action: trace.action,
        parameters: trace.parameters ?? {},
        reasoning: trace.reasoning ?? null,
        confidence: trace.confidence ?? null,
      },
      "trace",
    );
  } catch {
    return null;
  }
}

/** The message of an evaluation's result, from its decisive tripwire or its scores. */
export function messageFor(
  decision: InterventionType,
  flagged: boolean,
  fired: readonly Fired[],
  risk: number,
  blueprint: CompiledBlueprint,
  metadata: Record<string, unknown>,
): string {
  const decisive = fired.find((item) => item.decision === decision);
  const flag = flagged ? " (flagged for review)" : "";
  if (decisive?.exceeded)
    return `${decision}: tripwire "${decisive.id}" could not be evaluated within its bounds (${decisive.error ?? decisive.exceeded}); fail closed${flag}.`;
  if (decisive) return `${decision}: ${decisive.reason}${flag}`;
  if (metadata.checkLimitsExceeded && decision === "BLOCK")
    return `BLOCK: a check's rule could not be evaluated within its bounds; fail closed${flag}.`;
  if (metadata.scorerFailures && decision === "BLOCK")
    return `BLOCK: a tier-1 check failed or exceeded its latency budget (fallback deny)${flag}.`;
  if (metadata.trustDebtError && decision === "ESCALATE")
    return `ESCALATE: the trust debt could not be read (fail closed)${flag}.`;
  if (decision === "OK") {
    const flagReason = fired.find((item) => item.decision === "FLAG");
    return flagged
      ? `FLAG: ${flagReason?.reason ?? "trust debt at elevated monitoring"}`
      : `OK: risk ${risk.toFixed(2)} within blueprint ${blueprint.id}.`;
  }
  return `${decision}: risk ${risk.toFixed(2)} under blueprint ${blueprint.id}${metadata.missingEvidence ? ", evidence missing" : ""}${flag}.`;
}
