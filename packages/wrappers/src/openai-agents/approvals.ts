/**
 * `resolveApprovals`: the interruptions of a governed run answered from `@gov/gates` — in the
 * process that ran the agent, or in any other, from a `RunState` restored with
 * `RunState.fromString`.
 * @module
 */
import { InvalidArgumentError, typeOf } from "@gov/core";
import { bridgeOf } from "./govern-agent";

/** What {@link resolveApprovals} reads and changes of a `RunState` (or of a run's result: its `state`). */
export interface RunStateLike {
  getInterruptions(): readonly ApprovalItemLike[];
  approve(item: never, options?: { alwaysApprove?: boolean }): void;
  reject(item: never, options?: { alwaysReject?: boolean; message?: string }): void;
}

/** A `RunToolApprovalItem` (the fields read here). */
export interface ApprovalItemLike {
  readonly agent: unknown;
  readonly name?: string | undefined;
  readonly rawItem: unknown;
}

/** How one interruption was answered. */
export interface ApprovalResolution {
  /** The tool the model called. */
  readonly toolName: string | null;
  /** The call's id: the key of its gates request. */
  readonly callId: string | null;
  /**
   * `approved`: gates reads it granted (`state.approve`; the tool still runs only once its
   * guardrail verified the grant for exactly its arguments); `rejected`: denied, expired or
   * changed (`state.reject`, with the reason as the model's message); `pending`: no decision yet
   * (left as it is: resolve again later); `ungoverned`: not a call of a governed agent with
   * `approval` (left as it is).
   */
  readonly status: "approved" | "rejected" | "pending" | "ungoverned";
  /** The reviewer's reason, or why it was rejected. */
  readonly reason?: string;
}

/** The options of {@link resolveApprovals}. */
export interface ResolveApprovalsOptions {
  /** How long to wait for each undecided request, in ms (0: do not wait). @default 0 */
  timeoutMs?: number;
  /** Stops waiting (rejects with the signal's reason). */
  signal?: AbortSignal;
}

function callIdOf(rawItem: unknown): string | null {
  const callId = (rawItem as { callId?: unknown } | null)?.callId;
  return typeof callId === "string" ? callId : null;
}

function stateOf(value: unknown): RunStateLike {
  const candidate = (value as { state?: unknown } | null)?.state ?? value;
  if (typeof (candidate as RunStateLike | null)?.getInterruptions !== "function")
    throw new InvalidArgumentError(
      "state",
      `must be a RunState of @openai/agents (or a run's result), got ${typeOf(value)}.`,
      "Pass result.state, or the state restored with RunState.fromString(governedAgent, saved).",
    );
  return candidate as RunStateLike;
}

/**
 * Answer a governed run's interruptions from gates: each tool call a governed agent held for a
 * reviewer is looked up — in this process's memory, or in gates by its call id (the request's
 * key), so that any process that restored the `RunState` (`RunState.fromString(agent, saved)`
 * with the agent governed again, with `approval`) reads the reviewer's decision — and approved
 * (`state.approve(item)`) or rejected (`state.reject(item, { message })`). Run the agent again
 * with the state to go on: an approved call runs once its tool input guardrail verified the grant
 * with gates, for exactly its arguments, once.
 *
 * @example
 * ```ts
 * const state = await RunState.fromString(governed, saved);
 * const answers = await resolveApprovals(state);
 * if (answers.every((answer) => answer.status !== "pending")) await run(governed, state);
 * ```
 * @returns One resolution per interruption, in order.
 * @throws {InvalidArgumentError} `state` is not a `RunState` or a run's result · the gates
 *   module's read errors.
 */
export async function resolveApprovals(
  state: unknown,
  options: ResolveApprovalsOptions = {},
): Promise<ApprovalResolution[]> {
  const runState = stateOf(state);
  const timeoutMs = options.timeoutMs ?? 0;
  if (!Number.isInteger(timeoutMs) || timeoutMs < 0)
    throw new InvalidArgumentError(
      "options.timeoutMs",
      `must be whole milliseconds of 0 or more, got ${String(timeoutMs)}.`,
      "Pass resolveApprovals(state, { timeoutMs: 60_000 }), or leave it out not to wait.",
    );
  const resolutions: ApprovalResolution[] = [];
  for (const item of runState.getInterruptions()) {
    const toolName = typeof item.name === "string" ? item.name : null;
    const callId = callIdOf(item.rawItem);
    const bridge = bridgeOf(item.agent);
    if (bridge === null || callId === null) {
      resolutions.push({ toolName, callId, status: "ungoverned" });
      continue;
    }
    const answer = await bridge.answer(callId, toolName, {
      timeoutMs,
      ...(options.signal === undefined ? {} : { signal: options.signal }),
    });
    if (answer === null) resolutions.push({ toolName, callId, status: "pending" });
    else if (answer.approved) {
      runState.approve(item as never);
      resolutions.push({
        toolName,
        callId,
        status: "approved",
        ...(answer.reason === undefined ? {} : { reason: answer.reason }),
      });
    } else {
      const reason = answer.reason ?? "A reviewer denied the call.";
      runState.reject(item as never, { message: reason });
      resolutions.push({ toolName, callId, status: "rejected", reason });
    }
  }
  return resolutions;
}
