import { describeError, GovernanceError } from "@gov/core";
import type { BudgetCap } from "./budget-policy";

/** The stable error codes of `@gov/cost`. A code never changes meaning once released. */
export const COST_ERROR_CODES = {
  /** No price is known for the model, and strict mode (the default) refuses to guess. */
  UNKNOWN_MODEL: "UNKNOWN_MODEL",
  /** A price (rates, a price-table entry or an imported price file) was refused; nothing changed. */
  PRICE_INVALID: "PRICE_INVALID",
  /** A usage object could not be read; nothing was priced. */
  USAGE_INVALID: "USAGE_INVALID",
  /** A call would take a cap past its limit; nothing was reserved. */
  BUDGET_EXCEEDED: "BUDGET_EXCEEDED",
  /** The budget could not be checked (the store is unreachable); the call is denied. */
  BUDGET_CHECK_FAILED: "BUDGET_CHECK_FAILED",
  /** A budget policy was refused; nothing was registered. */
  BUDGET_POLICY_INVALID: "BUDGET_POLICY_INVALID",
} as const;

/** One of {@link COST_ERROR_CODES}. */
export type CostErrorCode = (typeof COST_ERROR_CODES)[keyof typeof COST_ERROR_CODES];

/**
 * No price is known for the model: there is no entry for its id, no alias, and no entry that
 * it extends with a date or version suffix (see the README for the lookup rule). Thrown in
 * strict mode (the default), where a missing price must never count as $0 — a misspelled
 * or unreleased model id would otherwise spend for free. Nothing was priced.
 *
 * @example
 * ```ts
 * try {
 *   prices.priceUsage("gpt-9", usage);
 * } catch (error) {
 *   if (UnknownModelError.isInstance(error)) prices.set(error.model, { inputUsdPerMillion: 1, outputUsdPerMillion: 4 });
 *   else throw error;
 * }
 * ```
 */
export class UnknownModelError extends GovernanceError {
  static override readonly errorIdentity = "@gov/cost.UnknownModelError";

  /** The model id that has no price, as given. */
  readonly model: string;

  constructor(model: string) {
    const quoted = JSON.stringify(model);
    super({
      code: COST_ERROR_CODES.UNKNOWN_MODEL,
      message: `No price is known for model ${quoted}: the price table has no entry for it, no alias, and no entry that it extends with a date or version suffix. Nothing was priced (strict mode).`,
      recoveryHint: `Check the model id for typos; or add its price with priceTable.set(${quoted}, { inputUsdPerMillion, outputUsdPerMillion, cachedInputUsdPerMillion, cacheWriteUsdPerMillion }), or import a current LiteLLM price file with priceTable.importLiteLLM(json). For observe-only use you may instead pass strict: false with fallbackUsdPerMillion (GOVERNANCE_COST_STRICT_UNKNOWN_MODELS=false and GOVERNANCE_COST_UNKNOWN_MODEL_FALLBACK_USD_PER_MILLION).`,
    });
    this.name = "UnknownModelError";
    this.model = model;
  }
}

/** A price was refused: the field at fault, the limit, and the fix. Nothing changed. */
export class InvalidPriceError extends GovernanceError {
  static override readonly errorIdentity = "@gov/cost.InvalidPriceError";

  /** The field at fault, e.g. `inputUsdPerMillion` or `json`. */
  readonly field: string;
  /** The limit that was exceeded, if the problem is a limit. */
  readonly limit: number | undefined;

  constructor(field: string, problem: string, fix: string, limit?: number) {
    super({
      code: COST_ERROR_CODES.PRICE_INVALID,
      message: `Invalid price: ${field} ${problem}`,
      recoveryHint: fix,
    });
    this.name = "InvalidPriceError";
    this.field = field;
    this.limit = limit;
  }
}

/** A usage object was refused: the field at fault, the limit, and the fix. Nothing was priced. */
export class InvalidUsageError extends GovernanceError {
  static override readonly errorIdentity = "@gov/cost.InvalidUsageError";

  /** The field at fault, e.g. `usage.prompt_tokens_details.cached_tokens`. */
  readonly field: string;
  /** The limit that was exceeded, if the problem is a limit. */
  readonly limit: number | undefined;

  constructor(field: string, problem: string, fix: string, limit?: number) {
    super({
      code: COST_ERROR_CODES.USAGE_INVALID,
      message: `Invalid usage: ${field} ${problem}`,
      recoveryHint: fix,
    });
    this.name = "InvalidUsageError";
    this.field = field;
    this.limit = limit;
  }
}

/** The unit of a cap's amounts. */
export type BudgetUnit = "usd" | "tokens" | "seconds";

/** What a {@link BudgetExceeded} reports. Amounts are numbers of the cap's unit. */
export interface BudgetExceededDetails {
  agentId: string;
  sessionId: string;
  /** The cap that would be exceeded. */
  cap: BudgetCap;
  unit: BudgetUnit;
  /** Spent so far plus reserved by calls in flight (for time: seconds since the session started). */
  used: number;
  /** Of `used`, what is spent (settled). */
  committed: number;
  /** What this call would add. */
  projected: number;
  /** The cap's limit. */
  limit: number;
}

/**
 * The call would take a cap past its limit (used + projected > limit), or the session has run
 * longer than `perSessionSeconds`. Nothing was reserved, and the breach was written to the
 * audit chain (`budget.exceeded`) before this was thrown.
 *
 * @example
 * ```ts
 * try {
 *   await sdk.cost.checkOrRaise("billing-agent", sessionId, { model: "gpt-4o", maxTokens: 1024 });
 * } catch (error) {
 *   if (BudgetExceeded.isInstance(error)) return `Out of budget: ${error.cap} ${error.used}/${error.limit}`;
 *   throw error;
 * }
 * ```
 */
export class BudgetExceeded extends GovernanceError {
  static override readonly errorIdentity = "@gov/cost.BudgetExceeded";

  readonly agentId: string;
  readonly sessionId: string;
  readonly cap: BudgetCap;
  readonly unit: BudgetUnit;
  readonly used: number;
  readonly committed: number;
  readonly projected: number;
  readonly limit: number;

  constructor(details: BudgetExceededDetails) {
    const amount = (value: number) =>
      details.unit === "usd" ? `$${value}` : `${value} ${details.unit}`;
    const what =
      details.cap === "perSessionSeconds"
        ? `the session has run ${details.used.toFixed(3)} s, longer than its limit of ${details.limit} s`
        : `${amount(details.used)} used${details.used === details.committed ? "" : ` (${amount(details.committed)} spent, the rest reserved by calls in flight)`} + ${amount(details.projected)} projected > ${amount(details.limit)} limit`;
    super({
      code: COST_ERROR_CODES.BUDGET_EXCEEDED,
      message: `Budget exceeded for agent ${JSON.stringify(details.agentId)}, session ${JSON.stringify(details.sessionId)}: ${details.cap}: ${what}. Nothing was reserved.`,
      recoveryHint:
        details.cap === "perSessionSeconds"
          ? "Start a new session, or raise perSessionSeconds in the agent's BudgetPolicy."
          : details.cap === "perAgentUsdDaily" || details.cap === "perAgentTokensDaily"
            ? "Wait for the next UTC day, declare a smaller maxTokens, or raise the daily cap in the agent's BudgetPolicy."
            : "Declare a smaller maxTokens, start a new session, or raise the cap in the agent's BudgetPolicy.",
    });
    this.name = "BudgetExceeded";
    this.agentId = details.agentId;
    this.sessionId = details.sessionId;
    this.cap = details.cap;
    this.unit = details.unit;
    this.used = details.used;
    this.committed = details.committed;
    this.projected = details.projected;
    this.limit = details.limit;
  }
}

/**
 * The budget could not be checked — the store could not be read or written — so the call is
 * denied (fail-closed; `costFailOpen` lets it through instead). The failure was logged and
 * written to the audit chain (`budget.check_failed`). `cause` is the store's error.
 */
export class BudgetCheckFailedError extends GovernanceError {
  static override readonly errorIdentity = "@gov/cost.BudgetCheckFailedError";

  readonly agentId: string;
  readonly sessionId: string;

  constructor(agentId: string, sessionId: string, cause: unknown) {
    super({
      code: COST_ERROR_CODES.BUDGET_CHECK_FAILED,
      message: `The budget of agent ${JSON.stringify(agentId)}, session ${JSON.stringify(sessionId)} could not be checked (${describeError(cause)}); the call is denied (fail-closed).`,
      recoveryHint:
        "Check that the database is reachable (store.health()). To let calls through while it is not, choose availability over safety with costFailOpen: true (GOVERNANCE_COST_FAIL_OPEN=true).",
      cause,
    });
    this.name = "BudgetCheckFailedError";
    this.agentId = agentId;
    this.sessionId = sessionId;
  }
}

/** A budget policy was refused: the field at fault, the limit, and the fix. Nothing was registered. */
export class InvalidBudgetPolicyError extends GovernanceError {
  static override readonly errorIdentity = "@gov/cost.InvalidBudgetPolicyError";

  /** The field at fault, e.g. `perSessionSeconds` or `alert.webhookUrl`. */
  readonly field: string;
  /** The limit that was exceeded, if the problem is a limit. */
  readonly limit: number | undefined;

  constructor(field: string, problem: string, fix: string, limit?: number) {
    super({
      code: COST_ERROR_CODES.BUDGET_POLICY_INVALID,
      message: `Invalid budget policy: ${field} ${problem}`,
      recoveryHint: fix,
    });
    this.name = "InvalidBudgetPolicyError";
    this.field = field;
    this.limit = limit;
  }
}
