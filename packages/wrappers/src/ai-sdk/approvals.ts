/**
 * The approval bridge of `governTools`: the steward's verdict on a tool call, a reviewer's
 * approval asked from `@gov/gates` when one is needed, and — before the tool runs — the gates
 * grant verified for exactly that call.
 * @module
 */
import {
  AgentHaltedError,
  type ApprovalGate,
  type ApprovalRecordLike,
  canonicalJson,
  type InterventionResultLike,
  type StewardGuard,
} from "@gov/core";
import { ToolCallBlockedError, type ToolCallBlockedReason } from "../errors";
import { describe, type Governor } from "../governed-call";
import type { ApprovalCause, ResolvedApprovalOptions } from "./approval-options";
import { isObject } from "./shapes";

/** What the AI SDK hands `execute` and `needsApproval` beside the input (the fields read here). */
export interface ToolCallOptionsLike {
  toolCallId?: unknown;
  abortSignal?: unknown;
}

/** A tool's own `needsApproval`, as the AI SDK declares it. */
export type NeedsApproval =
  | boolean
  | ((input: unknown, options: never) => boolean | PromiseLike<boolean>)
  | undefined;

/** Where a tool call stands once the bridge decided about it. */
export type ApprovalDecision =
  /** Nothing to ask: run it. */
  | { readonly kind: "run" }
  /** Refused (already audited): throw the error when the tool is executed. */
  | { readonly kind: "blocked"; readonly error: ToolCallBlockedError }
  /** A reviewer was asked: the tool runs once gates granted this request for this call. */
  | {
      readonly kind: "approval";
      readonly requestId: string;
      readonly requestKind: string;
      readonly payload: { tool: string; input: unknown };
      readonly cause: ApprovalCause;
      /** The steward's ESCALATE, to commit once approved (`metadata.commitOnApproval`). */
      readonly steward: InterventionResultLike | null;
    };

/** The approval a tool ran with, for its `tool.call` event. */
export interface GrantedApproval {
  readonly requestId: string;
  readonly reviewerId: string;
}

/** How a decided request reads for the application: approved, denied (with why), or undecided (null). */
export interface ApprovalAnswer {
  readonly approved: boolean;
  readonly reason?: string;
}

/** The verdict before a request is opened. */
type Verdict =
  | { kind: "run" }
  | { kind: "blocked"; error: ToolCallBlockedError }
  | {
      kind: "approve";
      cause: ApprovalCause;
      message: string | null;
      steward: InterventionResultLike | null;
    };

interface LedgerEntry {
  readonly toolName: string;
  readonly inputKey: string | null;
  readonly decision: ApprovalDecision;
  readonly forgetAtMs: number;
  /** An approval that ran (verified and consumed): kept, so that a replay is refused by gates. */
  executed?: boolean;
}

/** How long an undecided call is remembered when no `timeoutMs` is given (the gates default). */
const DEFAULT_REMEMBER_MS = 3_600_000;
/** Slack past `timeoutMs` before a remembered call is forgotten. */
const REMEMBER_SLACK_MS = 60_000;
/** The most calls remembered at once: past it, the oldest are forgotten (refused if executed). */
const MAX_REMEMBERED = 10_000;

function inputKeyOf(input: unknown): string | null {
  try {
    return canonicalJson(input === undefined ? null : input);
  } catch {
    return null;
  }
}

/** The steward's `parameters`: the input when it is a plain object, else `{ input }`. */
function parametersOf(input: unknown): Record<string, unknown> {
  return isObject(input) && !Array.isArray(input)
    ? (input as Record<string, unknown>)
    : { input: input ?? null };
}

function toolCallIdOf(options: ToolCallOptionsLike | undefined): string | null {
  return isObject(options) && typeof options.toolCallId === "string" ? options.toolCallId : null;
}

/**
 * One governed tool set's approvals: its options, its ports, and — in framework mode — the
 * calls it decided about, by tool call id, so that `execute` runs what was decided (and
 * verified) when the AI SDK comes back to it. That memory lives in this process: a run resumed
 * in another process finds no request here, and its approved calls are refused
 * (`approval_missing`).
 */
export class ApprovalBridge {
  readonly #ledger = new Map<string, LedgerEntry>();
  readonly #gates: ApprovalGate | null;
  readonly #steward: StewardGuard | null;

  constructor(
    readonly governor: Governor,
    readonly options: ResolvedApprovalOptions,
  ) {
    this.#gates = governor.options.ports.gates;
    this.#steward = options.steward ? governor.options.ports.steward : null;
  }

  /** How the run waits for a reviewer (`approval.mode`). */
  get mode(): "framework" | "block" {
    return this.options.mode;
  }

  /**
   * Framework mode, when the AI SDK asks whether a call needs approval (`needsApproval`, or
   * `toolApproval`): the call's decision — remembered for `execute`, and asked again when
   * the AI SDK checks an approved call once more before it runs it.
   *
   * @throws {AgentHaltedError} the agent is halted, or the steward's verdict is HALT.
   */
  async decide(
    toolName: string,
    input: unknown,
    options: ToolCallOptionsLike | undefined,
    own: NeedsApproval,
  ): Promise<ApprovalDecision> {
    const toolCallId = toolCallIdOf(options);
    const inputKey = inputKeyOf(input);
    if (toolCallId !== null) {
      // Asked again about a call a reviewer was asked about (the AI SDK checks an approved
      // call once more before running it, and a replayed history asks again): the same
      // request. Its grant is verified against the input about to run and runs once, so an
      // input changed since, or a replay, is refused by gates rather than asked anew. Once it
      // ran, only a call with another input under the same id (a provider that reuses ids)
      // is a new call.
      const known = this.#ledger.get(toolCallId);
      if (
        known !== undefined &&
        known.decision.kind === "approval" &&
        known.toolName === toolName &&
        (known.executed !== true || (known.inputKey !== null && known.inputKey === inputKey))
      )
        return known.decision;
    }
    const verdict = await this.#verdict(toolName, input, options, own, toolCallId);
    const decision =
      verdict.kind === "approve" ? await this.#open(toolName, input, toolCallId, verdict) : verdict;
    if (toolCallId !== null) this.#remember(toolCallId, { toolName, inputKey, decision });
    return decision;
  }

  /** Forget a call (the AI SDK will not execute it: denied, or answered elsewhere). */
  forget(toolCallId: string): void {
    this.#ledger.delete(toolCallId);
  }

  /**
   * When the tool is executed (after the halt check, scope and the loop count): what lets it
   * run. Framework mode: the decision made for this call (a grant verified with gates, for
   * exactly this input, once). Block mode: the verdict, then a request, the reviewer's
   * decision awaited (`waitFor`, `timeoutMs`, the call's `abortSignal`), and the grant verified.
   *
   * @returns The approval it runs with, or null when none was needed.
   * @throws {ToolCallBlockedError} · {@link AgentHaltedError} · the gates module's refusals
   *   (`ApprovalDenied`, `ApprovalTimeout`, `ApprovalPending`, `ApprovalTokenError`, …) · the
   *   signal's reason when the run was aborted while waiting.
   */
  async authorize(
    toolName: string,
    input: unknown,
    options: ToolCallOptionsLike | undefined,
    own: NeedsApproval,
  ): Promise<GrantedApproval | null> {
    const toolCallId = toolCallIdOf(options);
    if (this.options.mode === "framework") {
      const entry = toolCallId === null ? undefined : this.#ledger.get(toolCallId);
      if (entry !== undefined && entry.toolName === toolName) {
        const decision = entry.decision;
        if (decision.kind === "approval") {
          // Verified against the input about to run (another input is refused by gates), once.
          const granted = await this.#verify(toolName, input, decision);
          entry.executed = true;
          return granted;
        }
        this.#ledger.delete(toolCallId as string);
        if (decision.kind === "run" && entry.inputKey === inputKeyOf(input)) return null;
        if (decision.kind === "blocked") throw decision.error;
      }
      // Not decided here (executed directly, an AI SDK that does not ask needsApproval, a run
      // resumed in another process, or an input that changed): decide now, without asking.
      const verdict = await this.#verdict(toolName, input, options, own, toolCallId);
      if (verdict.kind === "run") return null;
      if (verdict.kind === "blocked") throw verdict.error;
      throw this.#blocked(
        toolName,
        toolCallId,
        "approval_missing",
        "it needs a reviewer's approval, and no approval request was made for this call in this process.",
        { traceId: verdict.steward?.traceId ?? null },
      );
    }
    const verdict = await this.#verdict(toolName, input, options, own, toolCallId);
    if (verdict.kind === "run") return null;
    if (verdict.kind === "blocked") throw verdict.error;
    const decision = await this.#open(toolName, input, toolCallId, verdict);
    if (decision.kind === "blocked") throw decision.error;
    if (decision.kind === "run") return null;
    const gates = this.#gates as ApprovalGate;
    const signal =
      isObject(options) && options.abortSignal instanceof AbortSignal
        ? options.abortSignal
        : undefined;
    await gates.waitFor(decision.requestId, {
      ...(this.options.timeoutMs === null ? {} : { timeoutMs: this.options.timeoutMs }),
      ...(signal === undefined ? {} : { signal }),
    });
    return this.#verify(toolName, input, decision);
  }

  /**
   * Framework mode: the reviewer's answer to the request opened for a tool call, as the
   * application hands it back to the AI SDK — approved once gates reads it granted (the tool
   * still runs only after `verifyAction`), denied when denied, expired or tampered with, and
   * null while undecided, or when this bridge opened no request for the call.
   */
  async answer(
    toolCallId: string,
    wait: { timeoutMs: number; signal?: AbortSignal },
  ): Promise<ApprovalAnswer | null> {
    const entry = this.#ledger.get(toolCallId);
    if (entry === undefined || entry.decision.kind !== "approval" || this.#gates === null)
      return null;
    const { requestId } = entry.decision;
    if (wait.timeoutMs > 0)
      await this.#gates
        .waitFor(requestId, {
          timeoutMs: wait.timeoutMs,
          ...(wait.signal === undefined ? {} : { signal: wait.signal }),
        })
        .catch(() => undefined);
    wait.signal?.throwIfAborted();
    const record = await this.#gates.getRequest(requestId);
    const answer = answerOf(record);
    if (answer !== null && !answer.approved) this.#ledger.delete(toolCallId);
    return answer;
  }

  /** The steward, the listed tools, then the tool's own `needsApproval`. */
  async #verdict(
    toolName: string,
    input: unknown,
    options: ToolCallOptionsLike | undefined,
    own: NeedsApproval,
    toolCallId: string | null,
  ): Promise<Verdict> {
    const { agentId } = this.governor.options;
    let steward: InterventionResultLike | null = null;
    if (this.#steward !== null) {
      try {
        steward = await this.#steward.evaluate(
          { action: toolName, parameters: parametersOf(input) },
          {},
          { agentId, hook: "pre_action" },
        );
      } catch (error) {
        if (AgentHaltedError.isInstance(error)) throw error;
        return {
          kind: "blocked",
          error: this.#blocked(
            toolName,
            toolCallId,
            "steward_error",
            "the steward could not evaluate it.",
            { cause: error },
          ),
        };
      }
      const details = {
        traceId: steward.traceId,
        firedTripwires: steward.governanceStatus.firedTripwires,
      };
      switch (steward.intervention) {
        case "HALT":
          this.#audit("tool.blocked", toolName, toolCallId, {
            reason: "steward_halt",
            ...details,
          });
          throw new AgentHaltedError({
            agentId,
            haltedBy: "steward",
            reason: steward.message,
            path: `ai-sdk.tools.${toolName}`,
          });
        case "BLOCK":
          return {
            kind: "blocked",
            error: this.#blocked(
              toolName,
              toolCallId,
              "steward_block",
              steward.message || "the steward blocked it.",
              details,
            ),
          };
        case "ESCALATE":
          return { kind: "approve", cause: "steward", message: steward.message, steward };
        default:
          break;
      }
    }
    if (this.options.listed !== null && (await this.options.listed(toolName, input)))
      return { kind: "approve", cause: "listed", message: null, steward: null };
    if (own === true) return { kind: "approve", cause: "tool", message: null, steward: null };
    if (typeof own === "function" && (await own(input, (options ?? {}) as never)) === true)
      return { kind: "approve", cause: "tool", message: null, steward: null };
    return { kind: "run" };
  }

  /** Ask gates for a reviewer's approval, and hand the request to `onRequest`. */
  async #open(
    toolName: string,
    input: unknown,
    toolCallId: string | null,
    verdict: Extract<Verdict, { kind: "approve" }>,
  ): Promise<ApprovalDecision> {
    const { agentId, ports } = this.governor.options;
    const traceId = verdict.steward?.traceId ?? null;
    if (this.#gates === null)
      return {
        kind: "blocked",
        error: this.#blocked(
          toolName,
          toolCallId,
          "approval_unavailable",
          "it needs a reviewer's approval, and no gates port was given to ask for one.",
          { traceId },
        ),
      };
    const requestKind = `tool.${toolName}`;
    const payload = { tool: toolName, input: input === undefined ? null : input };
    let request: Awaited<ReturnType<ApprovalGate["request"]>>;
    try {
      request = await this.#gates.request(requestKind, agentId, {
        payload,
        ...(this.options.timeoutMs === null ? {} : { expiresInMs: this.options.timeoutMs }),
      });
    } catch (error) {
      if (AgentHaltedError.isInstance(error)) throw error;
      return {
        kind: "blocked",
        error: this.#blocked(
          toolName,
          toolCallId,
          "approval_unavailable",
          "it needs a reviewer's approval, and the approval could not be requested.",
          { traceId, cause: error },
        ),
      };
    }
    if (!request.stored)
      return {
        kind: "blocked",
        error: this.#blocked(
          toolName,
          toolCallId,
          "approval_unavailable",
          "it needs a reviewer's approval, and the approval request could not be stored.",
          { traceId, requestId: request.requestId },
        ),
      };
    try {
      await this.options.onRequest({
        request,
        toolName,
        input,
        toolCallId,
        cause: verdict.cause,
        message: verdict.message,
      });
    } catch (error) {
      // Never the error's message: it may quote what the hook was sending (the token).
      ports.logger.error("@gov/wrappers: approval.onRequest threw; the tool call is refused.", {
        agentId,
        tool: toolName,
        requestId: request.requestId,
        error: describe(error),
      });
      return {
        kind: "blocked",
        error: this.#blocked(
          toolName,
          toolCallId,
          "approval_unavailable",
          "it needs a reviewer's approval, and the request could not be delivered (approval.onRequest threw).",
          { traceId, requestId: request.requestId, cause: error },
        ),
      };
    }
    return {
      kind: "approval",
      requestId: request.requestId,
      requestKind,
      payload,
      cause: verdict.cause,
      steward: verdict.steward,
    };
  }

  /** The grant, checked by gates for this kind, agent and payload, and consumed; then the steward's commit. */
  async #verify(
    toolName: string,
    input: unknown,
    decision: Extract<ApprovalDecision, { kind: "approval" }>,
  ): Promise<GrantedApproval> {
    const { agentId } = this.governor.options;
    const gates = this.#gates as ApprovalGate;
    const granted = await gates.verifyAction(
      decision.requestId,
      { tool: toolName, input: input === undefined ? null : input },
      { kind: decision.requestKind, agentId },
    );
    const steward = decision.steward;
    if (steward !== null && steward.metadata.commitOnApproval === true) {
      const counted = await (this.#steward as StewardGuard).commit(steward);
      if (!counted)
        throw this.#blocked(
          toolName,
          null,
          "steward_commit_refused",
          "its approval could no longer be counted against the steward's limits.",
          { traceId: steward.traceId, requestId: decision.requestId },
        );
    }
    return { requestId: granted.requestId, reviewerId: granted.reviewerId };
  }

  /** A refusal, audited as `tool.blocked` (not awaited). */
  #blocked(
    toolName: string,
    toolCallId: string | null,
    reason: ToolCallBlockedReason,
    message: string,
    details: {
      traceId?: string | null;
      firedTripwires?: readonly string[];
      requestId?: string;
      cause?: unknown;
    } = {},
  ): ToolCallBlockedError {
    const { cause, ...metadata } = details;
    this.#audit("tool.blocked", toolName, toolCallId, {
      reason,
      ...metadata,
      ...(cause === undefined ? {} : { error: describe(cause) }),
    });
    return new ToolCallBlockedError({
      agentId: this.governor.options.agentId,
      toolName,
      reason,
      message,
      traceId: details.traceId ?? null,
      ...(cause === undefined ? {} : { cause }),
    });
  }

  #audit(
    kind: string,
    toolName: string,
    toolCallId: string | null,
    metadata: Record<string, unknown>,
  ): void {
    const { agentId, sessionId } = this.governor.options;
    void this.governor.log({
      agentId,
      kind,
      sessionId,
      metadata: { provider: this.governor.provider, tool: toolName, toolCallId, ...metadata },
    });
  }

  #remember(toolCallId: string, entry: Omit<LedgerEntry, "forgetAtMs">): void {
    const now = Date.now();
    for (const [id, known] of this.#ledger) {
      if (known.forgetAtMs <= now || this.#ledger.size >= MAX_REMEMBERED) this.#ledger.delete(id);
      else break;
    }
    this.#ledger.delete(toolCallId);
    this.#ledger.set(toolCallId, {
      ...entry,
      forgetAtMs: now + (this.options.timeoutMs ?? DEFAULT_REMEMBER_MS) + REMEMBER_SLACK_MS,
    });
  }
}

/** A request as the application's approval response reads it. */
function answerOf(record: ApprovalRecordLike | null): ApprovalAnswer | null {
  if (record === null)
    return { approved: false, reason: "The approval request is no longer stored." };
  if (!record.requestIntact)
    return { approved: false, reason: "The approval request was changed after it was made." };
  switch (record.status) {
    case "granted":
      return record.reason === null
        ? { approved: true }
        : { approved: true, reason: record.reason };
    case "denied":
      return { approved: false, reason: record.reason ?? "A reviewer denied the call." };
    case "expired":
      return { approved: false, reason: "No reviewer decided before the request expired." };
    default:
      return record.expiresAt.getTime() <= Date.now()
        ? { approved: false, reason: "No reviewer decided before the request expired." }
        : null;
  }
}
