/**
 * The ports of the composers: what a wrapper around a model client, an agent framework's
 * middleware, a contract or the CLI needs from the enforcement modules, without importing
 * them. Each port is implemented by one module (`ScopeModule` is a {@link ScopeGuard},
 * `CostModule` a {@link BudgetGuard}, `GatesModule` an {@link ApprovalGate}, `StewardModule` a
 * {@link StewardGuard}, …); `@gov/sdk` hands them over as `sdk.ports`, and a user who composes
 * by hand passes the modules they have. A port nobody provides is, for observation, a no-op,
 * and for enforcement, a check that passes because nothing was asked for (no scope policy
 * means no scope) — except an approval, which nobody can give without gates: a composer
 * refuses it. See {@link GovernancePorts} and {@link resolveGovernancePorts}.
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
  /**
   * The completions the call asks for (OpenAI's `n`): the output ceiling — given, or the
   * module's default — is projected once per completion. @default 1
   */
  choices?: number;
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

/** Options of {@link ApprovalGate.request}. */
export interface ApprovalRequestOptions {
  /**
   * The action to approve, as JSON: the token is bound to its hash, and
   * {@link ApprovalGate.verifyAction} refuses any other payload. @default {}
   */
  payload?: unknown;
  /** How long the request stays open, in ms. @default the module's (one hour for `@gov/gates`) */
  expiresInMs?: number;
  /**
   * The caller's name for the request (1–256 characters, e.g. the AI SDK's tool call id), by
   * which {@link ApprovalGate.findRequest} finds it from any process. Unique per agent and
   * kind: a key already in use is refused (the request rejects, nothing is stored). Pass it
   * only to a gate that has `findRequest` (a gate without it may not know the option).
   * @default none
   */
  key?: string;
}

/** What {@link ApprovalGate.findRequest} looks a request up by. */
export interface ApprovalLookup {
  /** The agent that made the request. */
  agentId: string;
  /** The kind it was made as, e.g. `tool.transfer_funds`. */
  kind: string;
  /** The {@link ApprovalRequestOptions.key} it was made with. */
  key: string;
}

/** What {@link ApprovalGate.request} returns: `@gov/gates`' `ApprovalRequest`. */
export interface ApprovalRequestLike {
  /** The request's id: what `waitFor`, `getRequest` and `verifyAction` take. */
  readonly requestId: string;
  /** What is being approved, e.g. `tool.transfer_funds`. */
  readonly kind: string;
  /** The agent that asked. */
  readonly agentId: string;
  /** When the request expires: undecided by then, it is refused. */
  readonly expiresAt: Date;
  /**
   * False when the request could not be stored (`request` is an observation surface and does
   * not throw for that): no reviewer can ever grant it, so a composer refuses the action.
   */
  readonly stored: boolean;
  /**
   * The signed, single-use token a reviewer decides the request with: deliver it to reviewers
   * only, and never log it (whoever holds it can decide the request).
   */
  readonly token: string;
}

/** Options of {@link ApprovalGate.waitFor}. */
export interface ApprovalWaitOptions {
  /** How long to wait, in ms (0 reads once). @default until the request expires */
  timeoutMs?: number;
  /** Stop waiting when aborted (rejects with the signal's reason). */
  signal?: AbortSignal;
}

/** Options of {@link ApprovalGate.verifyAction}: what the action about to run must have been requested as. */
export interface ApprovalVerifyOptions {
  /** The kind the request was made as: an approval of another kind of action is refused. */
  kind: string;
  /** The agent about to run the action: an approval made for another agent is refused. */
  agentId: string;
  /**
   * true: mark the approval executed, so that it runs once. false: only check (a consuming
   * call is still needed before running). @default true
   */
  consume?: boolean;
}

/** A verified decision, as {@link ApprovalGate.verifyAction} returns it (`@gov/gates`' `ApprovalDecision`). */
export interface ApprovalDecisionLike {
  readonly requestId: string;
  readonly decision: "granted" | "denied";
  /** Who decided. */
  readonly reviewerId: string;
  /** Why, when the reviewer said. */
  readonly reason: string | null;
  readonly resolvedAt: Date;
}

/**
 * Where a request stands: `pending` (no decision yet), `resolving` (a decision is being
 * recorded), `granted`, `denied` or `expired` (no decision before `expiresAt`).
 */
export type ApprovalRecordStatus = "pending" | "resolving" | "granted" | "denied" | "expired";

/** One request and where it stands, as {@link ApprovalGate.getRequest} reads it (`@gov/gates`' `ApprovalRecord`). */
export interface ApprovalRecordLike {
  readonly requestId: string;
  readonly kind: string;
  readonly agentId: string;
  /**
   * The payload it was made for, as stored (`@gov/gates` withholds it, as null, when it no
   * longer matches the hash the token is bound to). Optional: a gate may not return it.
   */
  readonly payload?: unknown;
  /**
   * As stored, not verified: only `waitFor` and `verifyAction` check the signed decision. A
   * request still `pending` past `expiresAt` is expired in effect (it is marked so by a clean-up).
   */
  readonly status: ApprovalRecordStatus;
  /** Who decided, once decided. */
  readonly reviewerId: string | null;
  /** The reviewer's reason (a denial's is what the agent is told). */
  readonly reason: string | null;
  readonly expiresAt: Date;
  readonly resolvedAt: Date | null;
  /** When the approved action ran (`verifyAction` consumed it); it runs once. */
  readonly executedAt: Date | null;
  /** False when the request no longer matches what was signed when it was made: it cannot be granted. */
  readonly requestIntact: boolean;
}

/**
 * Human approval of an action, as a composer asks for it. Implemented by `@gov/gates`'
 * `GatesModule`.
 *
 * The protocol, for a tool call that needs approval:
 * 1. `request(kind, agentId, { payload })` opens a request (the halt check first:
 *    `AgentHaltedError`). An observation surface: a store failure resolves with
 *    `stored: false` — refuse the action then, since nobody can grant it.
 * 2. Deliver `token` to a reviewer (never log it); the reviewer grants or denies with it.
 * 3. Blocking: `waitFor(requestId, { timeoutMs, signal })` resolves `true` when granted and
 *    rejects when denied (`ApprovalDenied`), undecided in time (`ApprovalTimeout`) or
 *    tampered with (`ApprovalIntegrityError`). Non-blocking: `getRequest(requestId)` says
 *    whether it is decided yet (an unverified read: `granted` only means "go to step 4").
 * 4. Before running, `verifyAction(requestId, payload, { kind, agentId })` checks the signed
 *    decision, the payload and the expiry, and consumes the approval (it runs once); run the
 *    action only once it resolved. It rejects (`ApprovalTokenError`, `ApprovalPending`,
 *    `ApprovalDenied`, …) otherwise.
 *
 * Enforcement fails closed: any rejection of `waitFor` or `verifyAction` refuses the action.
 *
 * @example
 * ```ts
 * const request = await gate.request("tool.transfer_funds", "billing-agent", { payload: args });
 * if (!request.stored) throw new Error("approval could not be requested");
 * await sendToReviewer(request.token);
 * await gate.waitFor(request.requestId, { timeoutMs: 600_000 });
 * await gate.verifyAction(request.requestId, args, { kind: "tool.transfer_funds", agentId: "billing-agent" });
 * await transferFunds(args); // approved, once
 * ```
 */
export interface ApprovalGate {
  request(
    kind: string,
    agentId: string,
    options?: ApprovalRequestOptions,
  ): Promise<ApprovalRequestLike>;
  waitFor(requestId: string, options?: ApprovalWaitOptions): Promise<true>;
  verifyAction(
    requestId: string,
    payload: unknown,
    options: ApprovalVerifyOptions,
  ): Promise<ApprovalDecisionLike>;
  /** The request and where it stands, or null when no such request is stored. */
  getRequest(requestId: string): Promise<ApprovalRecordLike | null>;
  /**
   * The request an agent made with a {@link ApprovalRequestOptions.key} for a kind of action,
   * and where it stands (as {@link getRequest} reads it), or null when there is none: how a
   * process that did not make the request — the agent restarted, another instance resumes its
   * run — finds it. An unverified read: `verifyAction` still decides whether the action runs.
   * Optional: a gate without it has no keys, and a composer then finds only the requests it
   * made itself (`@gov/gates` has it).
   *
   * @example
   * ```ts
   * const asked = await gate.findRequest?.({ agentId: "billing-agent", kind: "tool.transfer_funds", key: toolCallId });
   * if (asked) await gate.verifyAction(asked.requestId, args, { kind: "tool.transfer_funds", agentId: "billing-agent" });
   * ```
   */
  findRequest?(lookup: ApprovalLookup): Promise<ApprovalRecordLike | null>;
}

/** The steward's interventions: OK < NUDGE < ESCALATE < BLOCK < HALT in strictness; FLAG is a flagged OK. */
export type StewardIntervention = "OK" | "NUDGE" | "FLAG" | "ESCALATE" | "BLOCK" | "HALT";

/** The hooks at which the host evaluates a trace. */
export type StewardHook = "pre_action" | "post_action" | "on_reasoning";

/**
 * What an agent plans, as {@link StewardGuard.evaluate} reads it (a subset of `@gov/steward`'s
 * `CognitiveTrace`: the host's fields — tier, hook — are the options' business).
 */
export interface CognitiveTraceLike {
  /** The tool or action the agent plans (≤ 256 characters). */
  action: string;
  /** Its arguments. @default {} */
  parameters?: Record<string, unknown>;
  /** The agent's reasoning, when the composer has it. */
  reasoning?: string | null;
  /** The agent's confidence, 0 to 1. */
  confidence?: number | null;
  /** Citations or evidence the agent offers. */
  evidence?: readonly string[];
  /** @default a random UUID */
  traceId?: string;
  /** When given, must equal the options' `agentId`. */
  agentId?: string;
}

/** The host's side of {@link StewardGuard.evaluate}: never the agent's to choose. */
export interface StewardEvaluateOptions {
  /** The agent the host evaluates for: selects the blueprint, keys trust debt and state. */
  agentId: string;
  /** @default "pre_action" */
  hook?: StewardHook;
  /** The agent's tier, as the host knows it. @default the steward's `agentTiers` */
  agentTier?: string;
}

/** What {@link StewardGuard.evaluate} returns (`@gov/steward`'s `InterventionResult`). */
export interface InterventionResultLike {
  readonly intervention: StewardIntervention;
  /** Why: the reason of the tripwire or check that decided, for the agent and the audit. */
  readonly message: string;
  readonly traceId: string;
  readonly governanceStatus: {
    /** Ids of the tripwires that fired. */
    readonly firedTripwires: readonly string[];
    /** Whether FLAG accompanies the intervention. */
    readonly flagged: boolean;
    /** The blueprint that decided; null when none applied (then the intervention is BLOCK). */
    readonly blueprintId: string | null;
  };
  /**
   * Details; `commitOnApproval: true` on an ESCALATE means an approval must be committed
   * ({@link StewardGuard.commit}) before the action runs.
   */
  readonly metadata: Readonly<Record<string, unknown>>;
}

/**
 * The steward's verdict on a planned action, as a composer asks for it. Implemented by
 * `@gov/steward`'s `StewardModule` (`sdk.steward`) and `GovernanceSteward`.
 *
 * The protocol: `evaluate(trace, context, { agentId })` before the action (the halt check
 * first: `AgentHaltedError`), then, by `intervention`:
 * - `OK`, `NUDGE`, `FLAG`: run the action (a NUDGE's `message` is advice for the agent).
 * - `ESCALATE`: a human decides (an {@link ApprovalGate}, or the framework's own approval;
 *   with neither, refuse). Once approved and before running, when
 *   `metadata.commitOnApproval === true`, `commit(result)` must resolve `true` so that the
 *   steward's stateful limits count the action; `false` (unknown, already committed,
 *   forgotten) means refuse and evaluate again.
 * - `BLOCK`: refuse, with `message` as the reason.
 * - `HALT`: stop the agent — throw `AgentHaltedError` (`haltedBy: "steward"`). The steward does
 *   not halt the agent by itself.
 *
 * Enforcement fails closed: an `evaluate` that rejects refuses the action.
 *
 * @example
 * ```ts
 * const verdict = await steward.evaluate({ action: "refund", parameters: args }, {}, { agentId });
 * if (verdict.intervention === "BLOCK") throw new Error(verdict.message);
 * ```
 */
export interface StewardGuard {
  evaluate(
    trace: CognitiveTraceLike,
    context: Record<string, unknown>,
    options: StewardEvaluateOptions,
  ): Promise<InterventionResultLike>;
  /**
   * Count an approved ESCALATE: pass the result `evaluate` returned (or its
   * `metadata.commitId`). Idempotent: `true` once, then `false`.
   */
  commit(result: InterventionResultLike | string): Promise<boolean>;
}

/**
 * Where a wrapped client is recorded, so that an operator can see which agents make governed
 * calls and through which clients. Implemented by `@gov/wrappers`' `CoverageRegistry`. An
 * observation surface: `record` never throws and is not awaited on the call's path.
 */
export interface CoverageRecorder {
  /**
   * Record that `agentId`'s `client` (`openai`, `anthropic`, `ai-sdk`, …) is governed:
   * `"wrapped"` when a wrapper wraps it, `"call"` (the default) for each call it governs.
   */
  record(agentId: string, client: string, event?: "wrapped" | "call"): void;
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
  /**
   * Human approvals (`@gov/gates`). Missing: nothing can be approved by a reviewer, so a
   * composer refuses an action that needs approval (fails closed) unless another approver
   * (the framework's own) answers it.
   */
  gates?: ApprovalGate;
  /**
   * The steward's blueprints (`@gov/steward`). Missing: actions are not evaluated (no
   * blueprint, no verdict); a composer told to use the steward refuses instead.
   */
  steward?: StewardGuard;
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
  readonly gates: ApprovalGate | null;
  readonly steward: StewardGuard | null;
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
    gates: [["request", "waitFor", "verifyAction", "getRequest"], "an ApprovalGate (@gov/gates)"],
    steward: [["evaluate", "commit"], "a StewardGuard (@gov/steward)"],
    audit: [["log"], "an AuditSink (@gov/audit)"],
    coverage: [["record"], "a CoverageRecorder (@gov/wrappers)"],
    logger: [["debug", "info", "warn", "error"], "a Logger"],
  };

const PORTS_FIX =
  "Pass the GovernanceSDK (it carries sdk.ports), or an object of the modules you have, e.g. { scope, cost, audit, halt: presence }.";

/**
 * The ports a composer was given — a {@link GovernancePorts} object or something that carries
 * one (`GovernanceSDK`) — with no-ops where a port is missing. Scope, loop, cost, gates and
 * the steward stay null when missing: a composer skips their work, or — for an approval that
 * nobody can give — refuses (see {@link GovernancePorts} for each).
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
    gates: ports.gates ?? null,
    steward: ports.steward ?? null,
    audit: ports.audit ?? noopAuditSink,
    coverage: ports.coverage ?? noopCoverageRecorder,
    logger: ports.logger ?? silentLogger,
  });
}
