/**
 * `governTools`: the AI SDK tools of an agent, each `execute` halt-checked, scoped,
 * loop-counted, approved when it must be, and audited.
 * @module
 */
import { type AuditReceipt, typeOf } from "@gov/core";
import { InvalidWrapperOptionsError } from "../errors";
import { describe, Governor } from "../governed-call";
import { resolveWrapOptions, type WrapOptions } from "../options";
import { resolveApprovalOptions, type ToolApprovalOptions } from "./approval-options";
import {
  ApprovalBridge,
  checkApprovalPorts,
  type GrantedApproval,
  type NeedsApproval,
  type ToolCallOptionsLike,
} from "./approvals";
import { isObject } from "./shapes";

/**
 * The options of {@link governTools}: those of every wrapper but `onToolOutOfScope` (a tool
 * outside scope is always refused when it is executed), and `approval`.
 */
export type GovernToolsOptions = Omit<WrapOptions, "onToolOutOfScope"> & {
  /**
   * Tool calls that need a reviewer's approval (`@gov/gates`), and the steward's verdict on
   * every call: see {@link ToolApprovalOptions}. @default none: no call is held for approval
   */
  approval?: ToolApprovalOptions;
};

/** What an AI SDK tool's `execute` is handed beside the input (the fields read here). */
type ExecutionOptionsLike = ToolCallOptionsLike;

type Execute = (this: unknown, input: unknown, options?: ExecutionOptionsLike) => unknown;

const GOVERNED = Symbol.for("@gov/wrappers.ai-sdk.governedTool");
/** On a governed `execute`: its tool set's approval bridge and the tool's own `needsApproval`. */
export const APPROVALS = Symbol.for("@gov/wrappers.ai-sdk.approvals");

/** What a governed `execute` carries under {@link APPROVALS}. */
export interface GovernedApprovals {
  readonly bridge: ApprovalBridge;
  readonly own: NeedsApproval;
}

/** The approvals of a governed tool (its `execute`), or null when it has none. */
export function approvalsOf(tool: unknown): GovernedApprovals | null {
  const execute = isObject(tool) ? tool.execute : undefined;
  if (typeof execute !== "function") return null;
  const approvals = (execute as { [APPROVALS]?: GovernedApprovals })[APPROVALS];
  return approvals === undefined ? null : approvals;
}

function isAsyncIterable(value: unknown): value is AsyncIterable<unknown> {
  return (
    isObject(value) &&
    typeof (value as { [Symbol.asyncIterator]?: unknown })[Symbol.asyncIterator] === "function"
  );
}

function isAsyncGeneratorFunction(value: Execute): boolean {
  return Object.prototype.toString.call(value) === "[object AsyncGeneratorFunction]";
}

/** One tool's governed execution: the checks before it, and its audit events. */
class ToolRun {
  readonly #startedAt = performance.now();
  readonly #callEvent: Promise<AuditReceipt | null>;

  private constructor(
    readonly governor: Governor,
    readonly name: string,
    readonly toolCallId: string | null,
    callEvent: Promise<AuditReceipt | null>,
  ) {
    this.#callEvent = callEvent;
  }

  /**
   * The halt check, scope, the loop count, the approval (when the tool set has one), then
   * `tool.call` (not awaited). A refusal is audited by the module that refuses
   * (`scope.violation`, `loop.detected`, gates' `approval.*`, `tool.blocked`) and propagates.
   */
  static async start(
    governor: Governor,
    name: string,
    input: unknown,
    options: ExecutionOptionsLike | undefined,
    approvals: GovernedApprovals | null,
  ): Promise<ToolRun> {
    const { ports, agentId, sessionId } = governor.options;
    await ports.halt.assertAlive(agentId, { path: `ai-sdk.tools.${name}` });
    if (ports.scope !== null) await ports.scope.check(agentId, { tool: name });
    if (ports.loop !== null) await ports.loop.recordCall(agentId, sessionId, name, { args: input });
    let approval: GrantedApproval | null = null;
    if (approvals !== null)
      approval = await approvals.bridge.authorize(name, input, options, approvals.own);
    const toolCallId =
      isObject(options) && typeof options.toolCallId === "string" ? options.toolCallId : null;
    const recorded = governor.recordable("input", `tools.${name}.execute`, input);
    const callEvent = governor.log({
      agentId,
      kind: "tool.call",
      sessionId,
      metadata: {
        provider: governor.provider,
        tool: name,
        toolCallId,
        ...(approval === null ? {} : { approval }),
        ...(recorded === undefined ? {} : { input: recorded }),
      },
    });
    return new ToolRun(governor, name, toolCallId, callEvent);
  }

  #after(kind: string, metadata: Record<string, unknown>): void {
    const { agentId, sessionId } = this.governor.options;
    const durationMs = Math.round(performance.now() - this.#startedAt);
    this.governor.logAfter(this.#callEvent, (receipt) => ({
      agentId,
      kind,
      sessionId,
      parentEventId: receipt?.eventId || null,
      metadata: {
        provider: this.governor.provider,
        tool: this.name,
        toolCallId: this.toolCallId,
        durationMs,
        ...metadata,
      },
    }));
  }

  /** `tool.result` (not awaited): the output only with `recordContent`, redacted. */
  succeeded(output: unknown, extra: Record<string, unknown> = {}): void {
    const recorded = this.governor.recordable("output", `tools.${this.name}.execute`, output);
    this.#after("tool.result", {
      ...extra,
      ...(recorded === undefined ? {} : { output: recorded }),
    });
  }

  /** `tool.error` (not awaited): the error's type, never its message. */
  failed(error: unknown): void {
    this.#after("tool.error", { error: describe(error) });
  }
}

function governedExecute(
  governor: Governor,
  name: string,
  execute: Execute,
  approvals: GovernedApprovals | null,
): Execute {
  let governed: Execute;
  if (isAsyncGeneratorFunction(execute)) {
    // A streaming tool (preliminary results): stays an async generator, so that the AI SDK
    // still sees each value it yields.
    governed = async function* (this: unknown, input: unknown, options?: ExecutionOptionsLike) {
      const run = await ToolRun.start(governor, name, input, options, approvals);
      let last: unknown;
      let count = 0;
      let outcome: "done" | "failed" | "stopped" = "stopped";
      try {
        for await (const value of execute.call(this, input, options) as AsyncIterable<unknown>) {
          last = value;
          count++;
          yield value;
        }
        outcome = "done";
      } catch (error) {
        outcome = "failed";
        run.failed(error);
        throw error;
      } finally {
        if (outcome !== "failed")
          run.succeeded(last, {
            outputs: count,
            ...(outcome === "stopped" ? { stopped: true } : {}),
          });
      }
    };
  } else {
    governed = async function (this: unknown, input: unknown, options?: ExecutionOptionsLike) {
      const run = await ToolRun.start(governor, name, input, options, approvals);
      let output: unknown;
      try {
        output = await execute.call(this, input, options);
        // An iterable returned by a plain function: read to its end, its last value the result.
        if (isAsyncIterable(output)) {
          let last: unknown;
          for await (const value of output) last = value;
          output = last;
        }
      } catch (error) {
        run.failed(error);
        throw error;
      }
      run.succeeded(output);
      return output;
    };
  }
  Object.defineProperty(governed, GOVERNED, { value: governor.options.agentId });
  if (approvals !== null) Object.defineProperty(governed, APPROVALS, { value: approvals });
  return governed;
}

/**
 * AI SDK 6 and 7's `needsApproval` of a governed tool (framework mode): the bridge's decision,
 * true when a reviewer was asked. A refused call answers false, and its `execute` throws the
 * refusal (the model sees it as the tool's error).
 */
function governedNeedsApproval(name: string, approvals: GovernedApprovals) {
  return async (input: unknown, options: ExecutionOptionsLike): Promise<boolean> =>
    (await approvals.bridge.decide(name, input, options, approvals.own)).kind === "approval";
}

/**
 * Govern the tools of an AI SDK agent: returns a new tool set (the given one is not changed)
 * in which each tool's `execute` first checks the operator's halt (`AgentHaltedError`), then
 * the agent's scope (`scope.check(agentId, { tool: name })`: the scope module's
 * `ScopeViolation`), then counts the call for loop detection (`loop.recordCall`:
 * `LoopDetected`), and audits `tool.call`, then `tool.result` or `tool.error` (their
 * arguments and results only with `recordContent`, through `redact`).
 *
 * Every tool stays in the set, with its name and type: a tool the agent may not use is
 * refused when it is executed, and the tools hidden from the agent are removed from what the
 * model is offered by `governanceMiddleware` (use both, with one `sessionId`). Tools
 * without `execute` (executed by the client, or by the provider) are kept as they are.
 *
 * The AI SDK turns an error thrown by `execute` into a `tool-error` result the model sees;
 * the run stops at the next model call, which the middleware refuses for a halted agent.
 *
 * With `approval` ({@link ToolApprovalOptions}), after the loop count: the steward's verdict
 * (`steward: true`), and a reviewer's approval through `@gov/gates` for the calls that need
 * one — the AI SDK's approval flow (`needsApproval`, `toolApproval`: see
 * {@link governedToolApproval} and {@link toolApprovalResponses}) or, in block mode, `execute`
 * waiting. A tool runs only once gates verified the grant for exactly its input.
 *
 * @example
 * ```ts
 * const tools = governTools(
 *   { lookupInvoice: tool({ description, inputSchema, execute: lookupInvoice }) },
 *   { governance: sdk, agentId: "billing-agent", sessionId },
 * );
 * await generateText({ model, tools, prompt: "Find invoice 42." });
 * ```
 * @throws {InvalidWrapperOptionsError} `tools` is not an object of tools, or bad options
 *   (`approval.steward` without a steward port included).
 */
export function governTools<Tools extends Record<string, object>>(
  tools: Tools,
  options: GovernToolsOptions,
): Tools {
  if (!isObject(tools) || Array.isArray(tools))
    throw new InvalidWrapperOptionsError(
      "tools",
      `must be an object of AI SDK tools ({ name: tool({ … }) }), got ${typeOf(tools)}.`,
      "Pass the tool set you give generateText / streamText: governTools({ lookupInvoice: tool({ … }) }, options).",
    );
  if (isObject(options) && Object.hasOwn(options, "onToolOutOfScope"))
    throw new InvalidWrapperOptionsError(
      "options.onToolOutOfScope",
      "does not apply to governTools: a tool outside scope is refused when it is executed.",
      "Remove onToolOutOfScope here; pass it to governanceMiddleware, which checks the tool calls the model returns.",
    );
  let wrapOptions: unknown = options;
  let bridge: ApprovalBridge | null = null;
  let approvalOption: unknown;
  if (isObject(options) && Object.hasOwn(options, "approval")) {
    const { approval, ...rest } = options;
    approvalOption = approval;
    wrapOptions = rest;
  }
  const resolved = resolveWrapOptions(wrapOptions);
  const governor = new Governor(resolved, "ai-sdk");
  if (approvalOption !== undefined) {
    const approval = resolveApprovalOptions(approvalOption);
    checkApprovalPorts(resolved, approval, "governTools()");
    bridge = new ApprovalBridge(governor, approval);
  }
  const governed: Record<string, unknown> = {};
  for (const [name, tool] of Object.entries(tools)) {
    const execute = isObject(tool) ? tool.execute : undefined;
    if (typeof execute !== "function") {
      governed[name] = tool;
      continue;
    }
    if (Object.hasOwn(execute, GOVERNED)) {
      resolved.ports.logger.warn(
        `@gov/wrappers: tool ${JSON.stringify(name.slice(0, 64))} is already governed; governTools() left it as it was.`,
        { agentId: resolved.agentId },
      );
      governed[name] = tool;
      continue;
    }
    if (bridge === null) {
      governed[name] = {
        ...tool,
        execute: governedExecute(governor, name, execute as Execute, null),
      };
      continue;
    }
    const { needsApproval, ...rest } = tool as { needsApproval?: NeedsApproval };
    const approvals: GovernedApprovals = { bridge, own: needsApproval };
    const governedTool: Record<string, unknown> = {
      ...rest,
      execute: governedExecute(governor, name, execute as Execute, approvals),
    };
    // Block mode: execute asks and waits, so the AI SDK must not ask as well.
    if (bridge.mode === "framework")
      governedTool.needsApproval = governedNeedsApproval(name, approvals);
    governed[name] = governedTool;
  }
  return governed as Tools;
}
