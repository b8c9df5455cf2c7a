import { inspect } from "node:util";
import { agentIdSchema, describeValue, hasControlCharacters, suggestKey, typeOf } from "@gov/core";
import { z } from "zod";
import { redactWebhookUrl } from "./alerts";
import { type BudgetUnit, InvalidBudgetPolicyError } from "./errors";
import { fieldName, isPlainObject, valueAt } from "./models";
import { decimalToUnits, FEMTO_DIGITS, femtoToUsd, isDecimalProblem } from "./money";

/** Limits of a {@link BudgetPolicy}; a value beyond them is refused with the limit named. */
export const BUDGET_LIMITS = {
  /** Characters of an agent id (as in the audit chain). */
  agentId: 256,
  /** Characters of a session id. */
  sessionId: 256,
  /** A USD cap (per session or per day). */
  usd: 1_000_000_000,
  /** A token cap (per session or per day). */
  tokens: 1_000_000_000_000_000,
  /** `perSessionSeconds`: 24 hours, as in the reference. */
  sessionSeconds: 86_400,
  /** Characters of an alert webhook URL. */
  webhookUrl: 2_048,
  /** Characters of an alert secret (at least {@link BUDGET_LIMITS.minSecret}). */
  secret: 1_024,
  /** The shortest alert secret accepted. */
  minSecret: 16,
} as const;

/** The caps a {@link BudgetPolicy} can set. */
export type BudgetCap =
  | "perSessionUsd"
  | "perSessionTokens"
  | "perAgentUsdDaily"
  | "perAgentTokensDaily"
  | "perSessionSeconds";

/** The caps, in the order `checkOrRaise` checks them. */
export const BUDGET_CAPS: readonly BudgetCap[] = Object.freeze([
  "perSessionSeconds",
  "perSessionUsd",
  "perSessionTokens",
  "perAgentUsdDaily",
  "perAgentTokensDaily",
]);

/** The unit of each cap's amounts. */
export const CAP_UNITS: Readonly<Record<BudgetCap, BudgetUnit>> = Object.freeze({
  perSessionUsd: "usd",
  perAgentUsdDaily: "usd",
  perSessionTokens: "tokens",
  perAgentTokensDaily: "tokens",
  perSessionSeconds: "seconds",
});

/** The webhook of a {@link BudgetPolicy}: a signed POST when spend crosses a share of a cap. */
export interface BudgetAlertInput {
  /** Where the POST goes: an `http:` or `https:` URL (≤ 2,048 characters). */
  webhookUrl: string;
  /**
   * The key of the `X-Gov-Signature` HMAC (16 to 1,024 characters). It is never logged,
   * never put in an error, and left out of `toJSON()`.
   */
  secret: string;
  /** The share of each USD and token cap, in percent (1–100), at which the alert fires. @default 80 */
  thresholdPercent?: number;
}

/** What {@link BudgetPolicy} is built from. Leave a cap out (or `null`) for no cap. */
export interface BudgetPolicyInput {
  /** The agent the policy governs (≤ 256 characters, case-sensitive). */
  agentId: string;
  /** USD per session: a number or a decimal string (`0.50`, `"0.50"`), 0 to 1,000,000,000. */
  perSessionUsd?: number | string | null;
  /** Tokens per session, a whole number. */
  perSessionTokens?: number | null;
  /** USD per agent per UTC day, across all its sessions. */
  perAgentUsdDaily?: number | string | null;
  /** Tokens per agent per UTC day, across all its sessions. */
  perAgentTokensDaily?: number | null;
  /** Longest session, in whole seconds (0–86,400), on the database's clock. */
  perSessionSeconds?: number | null;
  /** A webhook to call when spend crosses a share of a cap. @default null */
  alert?: BudgetAlertInput | null;
}

const usdCap = z
  .union([z.number(), z.string()], {
    error: (issue) =>
      `must be a number or a decimal string of USD (e.g. 0.5 or "0.50"), got ${describeValue(issue.input)}.`,
  })
  .transform((value, context) => {
    const units = decimalToUnits(value, FEMTO_DIGITS);
    if (isDecimalProblem(units)) {
      context.issues.push({ code: "custom", message: units.problem, input: value });
      return z.NEVER;
    }
    if (units > BigInt(BUDGET_LIMITS.usd) * 10n ** BigInt(FEMTO_DIGITS)) {
      context.issues.push({
        code: "custom",
        message: `is ${value} USD; the limit is ${BUDGET_LIMITS.usd}.`,
        input: value,
      });
      return z.NEVER;
    }
    return units;
  })
  .nullable()
  .default(null);

function wholeCap(limit: number, unit: string) {
  return z
    .number({ error: (issue) => `must be a whole number of ${unit}, got ${typeOf(issue.input)}.` })
    .int({ error: (issue) => `must be a whole number of ${unit}, got ${String(issue.input)}.` })
    .min(0, { error: (issue) => `must not be negative, got ${String(issue.input)}.` })
    .max(limit, {
      error: (issue) => `is ${String(issue.input)} ${unit}; the limit is ${limit}.`,
    })
    .nullable()
    .default(null);
}

const alertSchema = z.strictObject(
  {
    webhookUrl: z
      .string({ error: (issue) => `must be a URL string, got ${typeOf(issue.input)}.` })
      .max(BUDGET_LIMITS.webhookUrl, {
        error: `is longer than ${BUDGET_LIMITS.webhookUrl} characters.`,
      })
      .refine(
        (value) => {
          if (!URL.canParse(value) || hasControlCharacters(value)) return false;
          const url = new URL(value);
          return (url.protocol === "https:" || url.protocol === "http:") && url.hostname !== "";
        },
        { error: "must be an absolute http: or https: URL." },
      )
      .refine(
        (value) => {
          const url = URL.canParse(value) ? new URL(value) : null;
          return url === null || (url.username === "" && url.password === "");
        },
        {
          error:
            "must not contain a user name or password (they would be sent in the clear to every log that shows the URL).",
        },
      ),
    secret: z
      .string({ error: (issue) => `must be a string, got ${typeOf(issue.input)}.` })
      .min(BUDGET_LIMITS.minSecret, {
        error: `must be at least ${BUDGET_LIMITS.minSecret} characters long.`,
      })
      .max(BUDGET_LIMITS.secret, { error: `is longer than ${BUDGET_LIMITS.secret} characters.` }),
    thresholdPercent: z
      .number({ error: (issue) => `must be a number of percent, got ${typeOf(issue.input)}.` })
      .min(1, { error: (issue) => `must be at least 1, got ${String(issue.input)}.` })
      .max(100, { error: (issue) => `must be at most 100, got ${String(issue.input)}.` })
      .default(80),
  },
  {
    error: (issue) =>
      `must be an object { webhookUrl, secret, thresholdPercent? }, got ${typeOf(issue.input)}.`,
  },
);

/**
 * The zod schema of a {@link BudgetPolicy}'s input. Unknown keys are refused, so that a typo
 * (`per_session_usd`) is not silently ignored.
 */
export const budgetPolicySchema = z.strictObject({
  agentId: agentIdSchema,
  perSessionUsd: usdCap,
  perSessionTokens: wholeCap(BUDGET_LIMITS.tokens, "tokens"),
  perAgentUsdDaily: usdCap,
  perAgentTokensDaily: wholeCap(BUDGET_LIMITS.tokens, "tokens"),
  perSessionSeconds: wholeCap(BUDGET_LIMITS.sessionSeconds, "seconds"),
  alert: alertSchema.nullable().default(null),
});

const FIXES: Record<string, string> = {
  agentId: "Pass the agent's id: a non-empty string of at most 256 characters.",
  perSessionUsd:
    'Pass USD as a number or a decimal string with at most 15 decimal places, e.g. 0.5 or "0.50", or leave it out.',
  perAgentUsdDaily:
    'Pass USD as a number or a decimal string with at most 15 decimal places, e.g. 10 or "10.00", or leave it out.',
  perSessionTokens: "Pass a whole number of tokens, or leave it out.",
  perAgentTokensDaily: "Pass a whole number of tokens, or leave it out.",
  perSessionSeconds: "Pass whole seconds from 0 to 86400 (24 hours), or leave it out.",
  alert:
    "Pass { webhookUrl: 'https://…', secret: '<at least 16 characters>', thresholdPercent: 1–100 }, or leave it out.",
};

/** The caps of a policy in exact units: USD in femto-dollars (10⁻¹⁵ USD). */
export interface ExactCaps {
  readonly perSessionUsd: bigint | null;
  readonly perSessionTokens: number | null;
  readonly perAgentUsdDaily: bigint | null;
  readonly perAgentTokensDaily: number | null;
  readonly perSessionSeconds: number | null;
}

/** The alert of a policy as `toJSON()` shows it: never the secret, nor the URL's path. */
export interface BudgetAlertJSON {
  /** The webhook's origin, and `/…` for its path and query (often a credential themselves). */
  readonly webhookUrl: string;
  readonly thresholdPercent: number;
}

/** A {@link BudgetPolicy} as plain data (USD as exact decimal strings), without the alert secret. */
export interface BudgetPolicyJSON {
  readonly agentId: string;
  readonly perSessionUsd: string | null;
  readonly perSessionTokens: number | null;
  readonly perAgentUsdDaily: string | null;
  readonly perAgentTokensDaily: number | null;
  readonly perSessionSeconds: number | null;
  readonly alert: BudgetAlertJSON | null;
}

/** Alert secrets and URLs, kept off the object so that no serializer or inspector can reach them. */
const targets = new WeakMap<BudgetPolicy, { url: string; secret: string }>();

/**
 * An agent's budget: caps on USD and tokens per session and per UTC day, and on session time.
 * At least one cap is required; limits are checked strictly (a call is refused when used +
 * projected **>** limit, so a session may spend exactly its cap). Immutable once built.
 *
 * @example
 * ```ts
 * sdk.cost.register(new BudgetPolicy({
 *   agentId: "billing-agent",
 *   perSessionUsd: 0.5,
 *   perSessionSeconds: 300,   // 5-minute sessions
 *   perAgentUsdDaily: 10,
 *   alert: { webhookUrl: "https://ops.example.com/hooks/budget", secret: process.env.ALERT_SECRET!, thresholdPercent: 80 },
 * }));
 * ```
 * @throws {InvalidBudgetPolicyError} naming the field, the limit and the fix; nothing is built.
 */
export class BudgetPolicy {
  /** The agent the policy governs. */
  readonly agentId: string;
  /** USD per session, as a number (see {@link BudgetPolicy.exact} for the exact amount). */
  readonly perSessionUsd: number | null;
  readonly perSessionTokens: number | null;
  /** USD per agent per UTC day, as a number. */
  readonly perAgentUsdDaily: number | null;
  readonly perAgentTokensDaily: number | null;
  readonly perSessionSeconds: number | null;
  /** The alert, without its secret. */
  readonly alert: BudgetAlertJSON | null;
  /** The caps in exact units. */
  readonly exact: ExactCaps;

  constructor(input: BudgetPolicyInput) {
    for (const [field, value] of [
      ["policy", input],
      ["alert", (input as { alert?: unknown } | null | undefined)?.alert],
    ] as const) {
      if (typeof value === "object" && value !== null && !isPlainObject(value)) {
        throw new InvalidBudgetPolicyError(
          field,
          `must be a plain object, got ${typeOf(value)}.`,
          field === "policy"
            ? "Pass { agentId, perSessionUsd?, … } as an object literal (its own fields are what is read)."
            : "Pass alert as { webhookUrl, secret, thresholdPercent? }.",
        );
      }
    }
    const parsed = budgetPolicySchema.safeParse(input);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      if (issue?.code === "unrecognized_keys") {
        const key = issue.keys[0] ?? "";
        const known = Object.keys(
          issue.path.length === 0 ? budgetPolicySchema.shape : alertSchema.shape,
        );
        const suggestion = suggestKey(key, known);
        throw new InvalidBudgetPolicyError(
          fieldName("", [...issue.path, key]),
          `is not a budget policy field (${issue.keys.join(", ")})${suggestion === undefined ? "." : `; did you mean \`${suggestion}\`?`}`,
          "Use agentId, perSessionUsd, perSessionTokens, perAgentUsdDaily, perAgentTokensDaily, perSessionSeconds and alert (camelCase).",
        );
      }
      const path = issue?.path ?? [];
      const field = path.length > 0 ? fieldName("", path) : "policy";
      const top = String(path[0] ?? "");
      const value = valueAt(input, path);
      const fix =
        FIXES[top] ??
        "Pass { agentId, perSessionUsd?, perSessionTokens?, perAgentUsdDaily?, perAgentTokensDaily?, perSessionSeconds?, alert? }.";
      const message =
        typeof input !== "object" || input === null
          ? `must be an object, got ${typeOf(input)}.`
          : value === undefined && path.length > 0 && issue?.code === "invalid_type"
            ? "is required."
            : (issue?.message ?? "is invalid.");
      throw new InvalidBudgetPolicyError(field, message, fix, limitOf(top));
    }
    const data = parsed.data;
    if (
      data.perSessionUsd === null &&
      data.perSessionTokens === null &&
      data.perAgentUsdDaily === null &&
      data.perAgentTokensDaily === null &&
      data.perSessionSeconds === null
    ) {
      throw new InvalidBudgetPolicyError(
        "policy",
        "sets no cap.",
        "Set at least one of perSessionUsd, perSessionTokens, perAgentUsdDaily, perAgentTokensDaily and perSessionSeconds.",
      );
    }
    this.agentId = data.agentId;
    this.exact = Object.freeze({
      perSessionUsd: data.perSessionUsd,
      perSessionTokens: data.perSessionTokens,
      perAgentUsdDaily: data.perAgentUsdDaily,
      perAgentTokensDaily: data.perAgentTokensDaily,
      perSessionSeconds: data.perSessionSeconds,
    });
    this.perSessionUsd =
      data.perSessionUsd === null ? null : Number(femtoToUsd(data.perSessionUsd));
    this.perSessionTokens = data.perSessionTokens;
    this.perAgentUsdDaily =
      data.perAgentUsdDaily === null ? null : Number(femtoToUsd(data.perAgentUsdDaily));
    this.perAgentTokensDaily = data.perAgentTokensDaily;
    this.perSessionSeconds = data.perSessionSeconds;
    this.alert =
      data.alert === null
        ? null
        : Object.freeze({
            webhookUrl: redactWebhookUrl(data.alert.webhookUrl),
            thresholdPercent: data.alert.thresholdPercent,
          });
    if (data.alert) targets.set(this, { url: data.alert.webhookUrl, secret: data.alert.secret });
    Object.freeze(this);
  }

  /** True for a `BudgetPolicy` from any copy of `@gov/cost`. */
  static isInstance(value: unknown): value is BudgetPolicy {
    return (
      typeof value === "object" &&
      value !== null &&
      (value as { [Symbol.toStringTag]?: unknown })[Symbol.toStringTag] === "BudgetPolicy"
    );
  }

  get [Symbol.toStringTag](): string {
    return "BudgetPolicy";
  }

  /** The policy as plain data: USD as exact decimal strings; the alert without its secret. */
  toJSON(): BudgetPolicyJSON {
    return {
      agentId: this.agentId,
      perSessionUsd:
        this.exact.perSessionUsd === null ? null : femtoToUsd(this.exact.perSessionUsd),
      perSessionTokens: this.perSessionTokens,
      perAgentUsdDaily:
        this.exact.perAgentUsdDaily === null ? null : femtoToUsd(this.exact.perAgentUsdDaily),
      perAgentTokensDaily: this.perAgentTokensDaily,
      perSessionSeconds: this.perSessionSeconds,
      alert: this.alert,
    };
  }

  [inspect.custom](): string {
    return `BudgetPolicy ${inspect(this.toJSON(), { depth: 3 })}`;
  }
}

/** @internal Where a policy's alerts go and the key that signs them; null without an alert. */
export function alertTarget(policy: BudgetPolicy): { url: string; secret: string } | null {
  return targets.get(policy) ?? null;
}

function limitOf(field: string): number | undefined {
  switch (field) {
    case "perSessionUsd":
    case "perAgentUsdDaily":
      return BUDGET_LIMITS.usd;
    case "perSessionTokens":
    case "perAgentTokensDaily":
      return BUDGET_LIMITS.tokens;
    case "perSessionSeconds":
      return BUDGET_LIMITS.sessionSeconds;
    case "agentId":
      return BUDGET_LIMITS.agentId;
    default:
      return undefined;
  }
}
