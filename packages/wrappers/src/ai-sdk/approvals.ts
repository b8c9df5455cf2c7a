/**
 * The approval bridge of `governTools`: the steward's verdict on a tool call, a reviewer's
 * approval asked from `@gov/gates` when one is needed, and — before the tool runs — the gates
 * grant verified for exactly that call.
 * @module
 */
import { createHash } from "node:crypto";
import {
  AgentHaltedError,
  type ApprovalGate,
  type ApprovalRecordLike,
  canonicalJson,
  type InterventionResultLike,
  type StewardGuard,
} from "@gov/core";
import {
  InvalidWrapperOptionsError,
  ToolCallBlockedError,
  type ToolCallBlockedReason,
} from "../errors";
import { describe, type Governor } from "../governed-call";
import type { ResolvedWrapOptions } from "../options";
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

/** Why a call is refused when gates could not be read for the request made under its id. */
const LOOKUP_FAILED = "the request made for it could not be looked up in gates.";

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

/** What a request for a tool call approves: the tool and its input (JSON: `undefined` is null). */
function payloadOf(toolName: string, input: unknown): { tool: string; input: unknown } {
  return { tool: toolName, input: input === undefined ? null : input };
}

/**
 * Whether a request found under a tool call id is this call's. While it may still run, yes: an
 * input changed since is refused by gates, against the grant. Once it ran, was denied or
 * expired, only for the same input: another input under the id is another call (a provider
 * that reuses ids), to be asked anew.
 */
function isSameCall(record: ApprovalRecordLike, payload: unknown): boolean {
  const over =
    record.executedAt !== null ||
    record.status === "denied" ||
    record.status === "expired" ||
    record.expiresAt.getTime() <= Date.now();
  if (!over || record.payload === undefined) return true;
  const stored = inputKeyOf(record.payload);
  return stored !== null && stored === inputKeyOf(payload);
}

/**
 * The tool call ids that are a request's key as they are: printable ASCII without spaces, at
 * most 200 characters — the ids providers give. Any other id (longer, or with a character gates
 * refuses in a key: a control, invisible or blank one) is keyed by its hash instead.
 */
const PLAIN_CALL_ID = /^[\x21-\x7e]{1,200}$/;
/** The prefix of a hashed key; an id that starts with it is hashed too, so two ids never share a key. */
const HASHED_KEY_PREFIX = "sha256:";

/**
 * The gates key of a tool call's request: the id itself when it is plain, otherwise
 * `sha256:<hex of its UTF-16 code units>` — the same in every process, exact (no case folding,
 * no Unicode normalization: ids that differ are different calls) and always a valid key.
 */
function requestKeyOf(toolCallId: string): string {
  return PLAIN_CALL_ID.test(toolCallId) && !toolCallId.startsWith(HASHED_KEY_PREFIX)
    ? toolCallId
    : `${HASHED_KEY_PREFIX}${createHash("sha256").update(toolCallId, "utf16le").digest("hex")}`;
}

/**
 * Check a wrapper's `approval` against the ports it was given: `approval.steward` without a
 * steward port is refused (no call could be evaluated: the steward would be skipped silently);
 * without a gates port, a warning says that every call that needs approval will be refused.
 * @param wrapper The function given the options, for the warning (`governTools()`, …).
 * @throws {InvalidWrapperOptionsError} naming `options.approval.steward`.
 */
export function checkApprovalPorts(
  options: ResolvedWrapOptions,
  approval: ResolvedApprovalOptions,
  wrapper: string,
): void {
  if (approval.steward && options.ports.steward === null)
    throw new InvalidWrapperOptionsError(
      "options.approval.steward",
      "is true, but governance has no steward port: no call could be evaluated.",
      "Start the SDK with enableSteward: true, pass the steward ({ steward }) in governance, or leave approval.steward out.",
    );
  if (options.ports.gates === null)
    options.ports.logger.warn(
      `@gov/wrappers: ${wrapper} was given approval without a gates port: every tool call that needs approval will be refused.`,
      { agentId: options.agentId },
    );
}

/**
 * One governed tool set's approvals: its options, its ports, and — in framework mode — the
 * calls it decided about, by tool call id, so that `execute` runs what was decided (and
 * verified) when the AI SDK comes back to it. That memory lives in this process; gates holds
 * the rest: each request is made with the tool call id as its key (when the gates port has
 * `findRequest`), so that a run resumed after a restart or in another process finds the
 * request its calls were asked under — and the steward, asked again there, has its say.
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
   * the AI SDK checks an approved call once more before it runs it. A call that needs a
   * reviewer and was asked about before — by this process before a restart, or by another —
   * gets the request found in gates under its tool call id, not a second one.
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
      verdict.kind === "approve" ? await this.#ask(toolName, input, toolCallId, verdict) : verdict;
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
      // resumed after a restart or in another process, or an input that changed): decide now,
      // without asking — a request made for this call by then is the one that lets it run.
      const verdict = await this.#verdict(toolName, input, options, own, toolCallId);
      if (verdict.kind === "run") return null;
      if (verdict.kind === "blocked") throw verdict.error;
      const found = await this.#lookUp(toolName, toolCallId, verdict);
      if (found.kind === "blocked") throw found.error;
      const { stored } = found;
      if (stored !== null && isSameCall(stored, payloadOf(toolName, input)))
        return this.#verify(
          toolName,
          input,
          this.#approval(stored.requestId, toolName, input, verdict),
        );
      throw this.#blocked(
        toolName,
        toolCallId,
        "approval_missing",
        "it needs a reviewer's approval, and no approval request was made for this call.",
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
   * null while undecided, or when no request was made for the call: neither by this bridge
   * nor — looked up in gates by the tool call id, when `toolName` is known — by another
   * process, or this one before a restart.
   * @throws the gates module's read errors (`ApprovalStoreError`).
   */
  async answer(
    toolCallId: string,
    toolName: string | null,
    wait: { timeoutMs: number; signal?: AbortSignal },
  ): Promise<ApprovalAnswer | null> {
    if (this.#gates === null) return null;
    const entry = this.#ledger.get(toolCallId);
    let requestId: string | null = null;
    if (entry !== undefined)
      requestId = entry.decision.kind === "approval" ? entry.decision.requestId : null;
    else if (toolName !== null)
      requestId = (await this.#stored(toolName, toolCallId))?.requestId ?? null;
    if (requestId === null) return null;
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
            // the wrapper the call came through: ai-sdk, mcp, openai-agents
            path: `${this.governor.provider}.tools.${toolName}`,
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

  /**
   * The request for a call that needs a reviewer: the one already made for it — under its tool
   * call id, before a restart or by another process — or a new one.
   */
  async #ask(
    toolName: string,
    input: unknown,
    toolCallId: string | null,
    verdict: Extract<Verdict, { kind: "approve" }>,
  ): Promise<ApprovalDecision> {
    const found = await this.#lookUp(toolName, toolCallId, verdict);
    if (found.kind === "blocked") return found;
    const { stored } = found;
    if (stored === null) return this.#open(toolName, input, toolCallId, verdict);
    // A row under the key that does not verify was not made by gates (written into the table
    // by someone without the keys, to take the key first): never this call's request. Asked
    // anew, without the key, so only this process finds the new request.
    if (!stored.requestIntact) {
      this.#keyTaken(toolName, toolCallId, stored.requestId);
      return this.#open(toolName, input, toolCallId, verdict, null);
    }
    // Asked already: the same request. Its grant is verified for the input about to run, once.
    if (isSameCall(stored, payloadOf(toolName, input)))
      return this.#approval(stored.requestId, toolName, input, verdict);
    // Another call under a reused id whose request is over: asked anew, without the key (it is
    // taken), so only this process finds the new request.
    return this.#open(toolName, input, toolCallId, verdict, null);
  }

  /**
   * {@link #stored} for a call that needs a reviewer: gates that cannot be read refuse the call
   * (`approval_unavailable`, audited) — it fails closed.
   */
  async #lookUp(
    toolName: string,
    toolCallId: string | null,
    verdict: Extract<Verdict, { kind: "approve" }>,
  ): Promise<
    | { kind: "found"; stored: ApprovalRecordLike | null }
    | Extract<ApprovalDecision, { kind: "blocked" }>
  > {
    try {
      return { kind: "found", stored: await this.#stored(toolName, toolCallId) };
    } catch (error) {
      return this.#unavailable(toolName, toolCallId, LOOKUP_FAILED, {
        traceId: verdict.steward?.traceId ?? null,
        cause: error,
      });
    }
  }

  /**
   * The request made under a tool call id (its key) by this tool set's agent for the tool, or
   * null — null too when there is no id, in block mode, or when the gates port cannot look
   * requests up (no `findRequest`).
   * @throws the gates module's read errors.
   */
  async #stored(toolName: string, toolCallId: string | null): Promise<ApprovalRecordLike | null> {
    const key = this.#keyOf(toolCallId);
    if (key === null) return null;
    const { agentId } = this.governor.options;
    const gates = this.#gates as Required<ApprovalGate>;
    return gates.findRequest({ agentId, kind: `tool.${toolName}`, key });
  }

  /**
   * The key a call's request is made with — its tool call id ({@link requestKeyOf}) — when gates
   * can find it by that: framework mode, and a gates port with `findRequest`.
   */
  #keyOf(toolCallId: string | null): string | null {
    return toolCallId !== null &&
      this.options.mode === "framework" &&
      typeof this.#gates?.findRequest === "function"
      ? requestKeyOf(toolCallId)
      : null;
  }

  /** A row that does not verify holds a call's key (gates logged it as changed): what it costs, logged. */
  #keyTaken(toolName: string, toolCallId: string | null, requestId: string): void {
    this.governor.options.ports.logger.warn(
      "@gov/wrappers: a request that does not verify holds this tool call's key in gates (the requests table was written by hand); the call is asked anew under no key, and only this process can resume it.",
      { tool: toolName, toolCallId, requestId },
    );
  }

  /** The decision that a call runs once gates granted request `requestId` for it. */
  #approval(
    requestId: string,
    toolName: string,
    input: unknown,
    verdict: Extract<Verdict, { kind: "approve" }>,
  ): Extract<ApprovalDecision, { kind: "approval" }> {
    return {
      kind: "approval",
      requestId,
      requestKind: `tool.${toolName}`,
      payload: payloadOf(toolName, input),
      cause: verdict.cause,
      steward: verdict.steward,
    };
  }

  /**
   * Ask gates for a reviewer's approval, and hand the request to `onRequest`. The request's key
   * is the tool call id unless `key` says otherwise; a key already taken by the same call (two
   * processes asking at once) means it was asked already.
   */
  async #open(
    toolName: string,
    input: unknown,
    toolCallId: string | null,
    verdict: Extract<Verdict, { kind: "approve" }>,
    key: string | null = this.#keyOf(toolCallId),
  ): Promise<ApprovalDecision> {
    const { agentId, ports } = this.governor.options;
    const traceId = verdict.steward?.traceId ?? null;
    if (this.#gates === null)
      return this.#unavailable(toolName, toolCallId, "no gates port was given to ask for one.", {
        traceId,
      });
    let request: Awaited<ReturnType<ApprovalGate["request"]>>;
    try {
      request = await this.#gates.request(`tool.${toolName}`, agentId, {
        payload: payloadOf(toolName, input),
        ...(this.options.timeoutMs === null ? {} : { expiresInMs: this.options.timeoutMs }),
        ...(key === null ? {} : { key }),
      });
    } catch (error) {
      if (AgentHaltedError.isInstance(error)) throw error;
      // The key is taken: by this very call, asked at the same moment by another process?
      const stored =
        key === null ? null : await this.#stored(toolName, toolCallId).catch(() => null);
      if (stored?.requestIntact === true && isSameCall(stored, payloadOf(toolName, input)))
        return this.#approval(stored.requestId, toolName, input, verdict);
      return this.#unavailable(toolName, toolCallId, "the approval could not be requested.", {
        traceId,
        cause: error,
      });
    }
    if (!request.stored)
      return this.#unavailable(toolName, toolCallId, "the approval request could not be stored.", {
        traceId,
        requestId: request.requestId,
      });
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
      return this.#unavailable(
        toolName,
        toolCallId,
        "the request could not be delivered (approval.onRequest threw).",
        { traceId, requestId: request.requestId, cause: error },
      );
    }
    return this.#approval(request.requestId, toolName, input, verdict);
  }

  /** The grant, checked by gates for this kind, agent and payload, and consumed; then the steward's commit. */
  async #verify(
    toolName: string,
    input: unknown,
    decision: Extract<ApprovalDecision, { kind: "approval" }>,
  ): Promise<GrantedApproval> {
    const { agentId } = this.governor.options;
    const gates = this.#gates as ApprovalGate;
    const granted = await gates.verifyAction(decision.requestId, payloadOf(toolName, input), {
      kind: decision.requestKind,
      agentId,
    });
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

  /** A call refused because no reviewer can be asked about it (`approval_unavailable`), as its decision. */
  #unavailable(
    toolName: string,
    toolCallId: string | null,
    why: string,
    details: { traceId: string | null; requestId?: string; cause?: unknown },
  ): Extract<ApprovalDecision, { kind: "blocked" }> {
    const message = `it needs a reviewer's approval, and ${why}`;
    return {
      kind: "blocked",
      error: this.#blocked(toolName, toolCallId, "approval_unavailable", message, details),
    };
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
