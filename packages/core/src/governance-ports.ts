/**
 * The ports of the composers: what a wrapper around a model client, an agent framework's
 * middleware, a contract or the CLI needs from the enforcement modules, without importing
 * them. Each port is implemented by one module (`ScopeModule` is a {@link ScopeGuard},
 * `CostModule` a {@link BudgetGuard}, …); `@gov/sdk` hands them over as `sdk.ports`, and a user
 * who composes by hand passes the modules they have. A port nobody provides is, for
 * observation, a no-op, and for enforcement, a check that passes because nothing was asked
 * for (no scope policy means no scope): see {@link resolveGovernancePorts}.
 * @module
 */
import { typeOf } from "./describe";
import { InvalidArgumentError } from "./errors";
import { type Logger, silentLogger } from "./logger";
import { type AuditSink, type HaltGuard, noopAuditSink, noopHaltGuard } from "./ports";

/** A tool as tool lists hold it: its name, an object with a `name`, or an OpenAI tool spec. */
export type ToolLike = string | { name: string } | { function: { name: string } };

/** What {@link ScopeGuard.check} is asked about: one tool, one API call, or one model — never two. */
export type ScopeTarget =
  | {
      /** An exact, case-sensitive tool name. */
      tool: string;
      api?: undefined;
      model?: undefined;
    }
  | {
      /** `"METHOD URL"`, e.g. `"GET https://api.stripe.com/v1/invoices"`. */
      api: string;
      tool?: undefined;
      model?: undefined;
    }
  | {
      /** An exact, case-sensitive model name, e.g. `"gpt-4o-mini"`. */
      model: string;
      tool?: undefined;
      api?: undefined;
    };

/**
 * The agent's scope, as enforcement sees it. Implemented by `@gov/scope`'s `ScopeModule`.
 *
 * `check` resolves when the agent may use the target and rejects with `ScopeViolation`
 * (audited as `scope.violation`) when it may not — a model outside `allowedModels` included.
 * `filterTools` returns the tools the agent may be shown (its hidden tools removed),
 * synchronously, in order.
 */
export interface ScopeGuard {
  check(agentId: string, target: ScopeTarget): Promise<void>;
  filterTools<T extends ToolLike>(agentId: string, tools: readonly T[]): T[];
}

/** What a {@link LoopGuard} is told about one tool call. */
export interface LoopCallOptions {
  /** The call's arguments, when the policy compares identical calls. */
  args?: unknown;
}

/**
 * Loop detection for tool calls. Implemented by `@gov/loop`'s `LoopModule`: `recordCall`
 * counts the call and throws `LoopDetected` when the agent's policy says to refuse a loop.
 */
export interface LoopGuard {
  recordCall(
    agentId: string,
    sessionId: string,
    toolName: string,
    options?: LoopCallOptions,
  ): unknown;
}

/** What a model call is expected to cost, for {@link BudgetGuard.checkOrRaise}. */
export interface BudgetCheckOptions {
  /** The model to be called: prices the projection. */
  model?: string;
  /** Input tokens, when known. */
  inputTokens?: number;
  /** The call's output ceiling (`max_tokens`, `maxOutputTokens`); the module's default otherwise. */
  maxTokens?: number;
}

/** What a passed budget check reserved: settle or release it by its id. */
export interface BudgetReservationLike {
  /** Null when nothing was reserved (no policy, nothing projected, fail-open). */
  readonly reservationId: string | null;
}

/**
 * A call's usage object as its provider's client returned it (OpenAI, Anthropic, AI SDK
 * shapes, typed as each client types it). Wider than `@gov/cost`'s `ProviderUsage` (the union
 * of the shapes it reads): the module checks the shape at run time and refuses one it cannot
 * read.
 */
export type ProviderUsageLike = object;

/** Token counts of a call, for a {@link BudgetGuard} given no usage object (each ≥ 0, whole). */
export interface UsageCounts {
  inputTokens?: number;
  outputTokens?: number;
  cachedInputTokens?: number;
  cacheWriteTokens?: number;
  reasoningTokens?: number;
}

/**
 * Budgets, as a model call meets them. Implemented by `@gov/cost`'s `CostModule`.
 *
 * `checkOrRaise` reserves the worst case before the call (throws `BudgetExceeded`);
 * `trackUsage` settles the reservation with the usage the provider returned; `reconcile`
 * settles a stream's reservation once it ended (from its usage, or from the chunks received
 * when it ended without usage); `release` gives a reservation back when the call was never
 * made or failed.
 */
export interface BudgetGuard {
  checkOrRaise(
    agentId: string,
    sessionId: string,
    options?: BudgetCheckOptions,
  ): Promise<BudgetReservationLike>;
  trackUsage(
    agentId: string,
    sessionId: string,
    options: UsageCounts & {
      model: string;
      /** The usage the provider returned; without it, the counts are used. */
      usage?: ProviderUsageLike | null;
      /** The reservation to settle (from `checkOrRaise`); null settles none. */
      reservationId?: string | null;
    },
  ): Promise<unknown>;
  reconcile(
    agentId: string,
    sessionId: string,
    options: UsageCounts & {
      /** The reservation of the stream (from `checkOrRaise`); reconcile is idempotent per reservation. */
      reservationId: string;
      model: string;
      /** Why the stream ended: `completed`, `cancelled`, `error`, `abandoned`, … (≤ 64 characters). */
      reason: string;
      /** The final usage, when the stream delivered one. */
      usage?: ProviderUsageLike | null;
      /** Chunks received, when the stream ended without usage: the output is estimated from them. */
      chunks?: number;
    },
  ): Promise<unknown>;
  release(...reservationIds: string[]): Promise<number>;
}

/**
 * Where a wrapped client is recorded, so that an operator can see which agents make governed
 * calls and through which clients. Implemented by `@gov/wrappers`' coverage registry. An
 * observation surface: `record` never throws and is not awaited on the call's path.
 */
export interface CoverageRecorder {
  record(agentId: string, client: string): void;
}

/** A coverage recorder that records nothing (no registry composed). */
export const noopCoverageRecorder: CoverageRecorder = {
  record() {},
};

/**
 * The modules a composer may use. Every port is optional: pass the modules you have.
 *
 * @example
 * ```ts
 * // By hand, with only scope and cost:
 * const ports: GovernancePorts = { scope, cost, audit: auditModule, halt: presence };
 * // With the SDK: sdk.ports
 * ```
 */
export interface GovernancePorts {
  /** The operator's halt (`@gov/presence`). Missing: nothing is ever halted. */
  halt?: HaltGuard;
  /** Tool, API and model scope (`@gov/scope`). Missing: nothing is out of scope, no tool hidden. */
  scope?: ScopeGuard;
  /** Loop detection (`@gov/loop`). Missing: calls are not counted. */
  loop?: LoopGuard;
  /** Budgets (`@gov/cost`). Missing: nothing is reserved or priced. */
  cost?: BudgetGuard;
  /** The audit chain (`@gov/audit`). Missing: nothing is recorded. */
  audit?: AuditSink;
  /** The wrapped-client registry (`@gov/wrappers`). Missing: coverage is not recorded. */
  coverage?: CoverageRecorder;
  /** Where composers log warnings. Missing: nothing is logged. */
  logger?: Logger;
}

/** {@link GovernancePorts} with every port present: the no-op ones where none was given. */
export interface ResolvedGovernancePorts {
  readonly halt: HaltGuard;
  readonly scope: ScopeGuard | null;
  readonly loop: LoopGuard | null;
  readonly cost: BudgetGuard | null;
  readonly audit: AuditSink;
  readonly coverage: CoverageRecorder;
  readonly logger: Logger;
}

/** Something that carries ports: `@gov/sdk`'s `GovernanceSDK` (`sdk.ports`). */
export interface HasGovernancePorts {
  readonly ports: GovernancePorts;
}

/** The methods each port must have, and what provides it, for the refusal's message. */
const PORT_METHODS: Readonly<Record<keyof GovernancePorts, readonly [readonly string[], string]>> =
  {
    halt: [["assertAlive"], "a HaltGuard (@gov/presence)"],
    scope: [["check", "filterTools"], "a ScopeGuard (@gov/scope)"],
    loop: [["recordCall"], "a LoopGuard (@gov/loop)"],
    cost: [["checkOrRaise", "trackUsage", "reconcile", "release"], "a BudgetGuard (@gov/cost)"],
    audit: [["log"], "an AuditSink (@gov/audit)"],
    coverage: [["record"], "a CoverageRecorder (@gov/wrappers)"],
    logger: [["debug", "info", "warn", "error"], "a Logger"],
  };

const PORTS_FIX =
  "Pass the GovernanceSDK (it carries sdk.ports), or an object of the modules you have, e.g. { scope, cost, audit, halt: presence }.";

/**
 * The ports a composer was given — a {@link GovernancePorts} object or something that carries
 * one (`GovernanceSDK`) — with no-ops where a port is missing. Scope, loop and cost stay null
 * when missing, so that a composer can skip their work entirely.
 *
 * @throws {InvalidArgumentError} `governance` is not an object, names a port that does not
 *   exist, or a port lacks a method (`governance.cost` without `reconcile`).
 */
export function resolveGovernancePorts(
  governance: GovernancePorts | HasGovernancePorts,
): ResolvedGovernancePorts {
  if (typeof governance !== "object" || governance === null || Array.isArray(governance))
    throw new InvalidArgumentError(
      "governance",
      `must be the GovernanceSDK or an object of ports, got ${typeOf(governance)}.`,
      PORTS_FIX,
    );
  const carried = (governance as Partial<HasGovernancePorts>).ports;
  const field = carried === undefined ? "governance" : "governance.ports";
  // `{ ports: null }` is refused as such, not read as a ports object holding `ports`.
  const ports = (carried === undefined ? governance : carried) as GovernancePorts;
  if (typeof ports !== "object" || ports === null || Array.isArray(ports))
    throw new InvalidArgumentError(
      field,
      `must be an object of ports, got ${typeOf(ports)}.`,
      PORTS_FIX,
    );
  for (const key of Object.keys(ports)) {
    const rule = PORT_METHODS[key as keyof GovernancePorts];
    if (rule === undefined)
      throw new InvalidArgumentError(
        `${field}.${key.length > 64 ? `${key.slice(0, 64)}…` : key}`,
        `is not a port; the ports are ${Object.keys(PORT_METHODS).join(", ")}.`,
        PORTS_FIX,
      );
    const value = ports[key as keyof GovernancePorts] as unknown;
    if (value === undefined) continue;
    const [methods, what] = rule;
    const missing =
      typeof value === "object" && value !== null
        ? methods.filter(
            (method) => typeof (value as Record<string, unknown>)[method] !== "function",
          )
        : methods;
    if (missing.length > 0)
      throw new InvalidArgumentError(
        `${field}.${key}`,
        typeof value === "object" && value !== null
          ? `must be ${what}, but it has no ${missing.join(", ")} method${missing.length > 1 ? "s" : ""}.`
          : `must be ${what}, got ${typeOf(value)}.`,
        PORTS_FIX,
      );
  }
  return Object.freeze({
    halt: ports.halt ?? noopHaltGuard,
    scope: ports.scope ?? null,
    loop: ports.loop ?? null,
    cost: ports.cost ?? null,
    audit: ports.audit ?? noopAuditSink,
    coverage: ports.coverage ?? noopCoverageRecorder,
    logger: ports.logger ?? silentLogger,
  });
}
