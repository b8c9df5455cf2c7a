/**
 * The guardrails `governAgent` adds to an OpenAI Agents SDK agent and its function tools: the
 * halt before the run's first model call and before the final output is handed over; halt,
 * scope, loop, the steward and a reviewer's approval before a tool runs; the tool's result
 * audited after it.
 * @module
 */

import { AgentHaltedError, type AuditReceipt, GovernanceError } from "@gov/core";
import type {
  GuardrailFunctionOutput,
  InputGuardrail,
  OutputGuardrail,
  ToolGuardrailFunctionOutput,
  ToolInputGuardrailDefinition,
  ToolOutputGuardrailDefinition,
} from "@openai/agents";
import type { ApprovalBridge, GrantedApproval, NeedsApproval } from "../ai-sdk/approvals";
import type { Governor } from "../governed-call";

/** A function tool's own `needsApproval`, as the Agents SDK declares it. */
export type OwnApproval =
  | boolean
  | ((context: never, input: never, callId?: string) => boolean | PromiseLike<boolean>)
  | undefined;

/** The tool's own `needsApproval` for one call, as the approval bridge asks it (by the input). */
function ownFor(own: OwnApproval, context: unknown, callId: string | undefined): NeedsApproval {
  if (typeof own !== "function") return own;
  return (input: unknown) => own(context as never, input as never, callId);
}

/** The names the guardrails carry in the run's results and traces. */
export const GUARDRAIL_NAMES = {
  input: "gov.halt",
  output: "gov.halt-output",
  toolInput: "gov.tool-input",
  toolOutput: "gov.tool-output",
} as const;

/** What a guardrail that refused reports in `outputInfo`: the governance error and its code. */
export interface GovernanceOutputInfo {
  /** The refusal: `AgentHaltedError`, the scope module's `ScopeViolation`, `LoopDetected`, … */
  readonly error: unknown;
  /** The error's stable code (`AGENT_HALTED` for a halt). */
  readonly code: string;
}

/** A function call as a tool guardrail receives it (the fields read here). */
interface ToolCallLike {
  name: string;
  callId: string;
  arguments: string;
}

/** A call's parsed arguments: their JSON, or the text itself when it is not JSON. */
function argumentsOf(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function infoOf(error: unknown): GovernanceOutputInfo {
  const code = (error as { code?: unknown } | null)?.code;
  if (AgentHaltedError.isInstance(error)) return { error, code: "AGENT_HALTED" };
  return { error, code: typeof code === "string" ? code : UNEXPECTED_CODE };
}

/** The code in `outputInfo` of a check that failed with an error that has none (a store down, …). */
const UNEXPECTED_CODE = "UNEXPECTED_ERROR";

/**
 * What the model reads of a refusal: a governance error's message (it names the tool and the
 * rule); of any other failure (a store that cannot answer: fail closed) only that a check failed
 * — its message may carry what the model must not read (a connection string, a path).
 */
function refusalMessage(name: string, error: unknown): string {
  if (GovernanceError.isInstance(error)) return error.message;
  return `Tool "${name}" was not run: a governance check could not be completed (the operator's logs say why).`;
}

/** A started tool call: when it began, and its `tool.call` receipt (the parent of its result). */
interface Started {
  readonly at: number;
  readonly event: Promise<AuditReceipt | null>;
}

/** The guardrails of one governed agent, sharing its governor and its approval bridge. */
export class AgentGuardrails {
  /** Tool calls admitted and not yet answered, by call id. */
  readonly #started = new Map<string, Started>();

  constructor(
    readonly governor: Governor,
    readonly bridge: ApprovalBridge | null,
  ) {}

  /** The halt check as a tripwire: `outputInfo` holds the `AgentHaltedError`. */
  async #halted(path: string): Promise<GuardrailFunctionOutput> {
    const { ports, agentId } = this.governor.options;
    try {
      await ports.halt.assertAlive(agentId, { path });
      return { tripwireTriggered: false, outputInfo: null };
    } catch (error) {
      if (!AgentHaltedError.isInstance(error)) throw error;
      return { tripwireTriggered: true, outputInfo: infoOf(error) };
    }
  }

  /** Before the run's first model call (blocking: `runInParallel: false`): the halt. */
  input(): InputGuardrail {
    return {
      name: GUARDRAIL_NAMES.input,
      runInParallel: false,
      execute: () => this.#halted("openai-agents.input"),
    };
  }

  /** Before the final output is handed over: the halt (an agent halted meanwhile answers nothing). */
  output(): OutputGuardrail {
    return {
      name: GUARDRAIL_NAMES.output,
      execute: () => this.#halted("openai-agents.output"),
    };
  }

  /**
   * Before a function tool runs: halt (`throwException`: the run stops), then scope, the loop
   * count and — with `approval` — the steward and the reviewer's grant verified for exactly
   * these arguments, once (a refusal is `rejectContent`: the model reads why). Then `tool.call`.
   */
  toolInput(own: OwnApproval): ToolInputGuardrailDefinition {
    return {
      type: "tool_input",
      name: GUARDRAIL_NAMES.toolInput,
      run: async ({ toolCall, context }) => {
        const call = toolCall as ToolCallLike;
        return this.#admit(call, ownFor(own, context, call.callId));
      },
    };
  }

  async #admit(toolCall: ToolCallLike, own: NeedsApproval): Promise<ToolGuardrailFunctionOutput> {
    const { ports, agentId, sessionId } = this.governor.options;
    const { name, callId } = toolCall;
    const input = argumentsOf(toolCall.arguments);
    let approval: GrantedApproval | null = null;
    try {
      await ports.halt.assertAlive(agentId, { path: `openai-agents.tools.${name}` });
      if (ports.scope !== null) await ports.scope.check(agentId, { tool: name });
      if (ports.loop !== null)
        await ports.loop.recordCall(agentId, sessionId, name, { args: input });
      if (this.bridge !== null)
        approval = await this.bridge.authorize(name, input, { toolCallId: callId }, own);
    } catch (error) {
      if (AgentHaltedError.isInstance(error))
        return { behavior: { type: "throwException" }, outputInfo: infoOf(error) };
      if (!GovernanceError.isInstance(error))
        this.governor.report(
          "a governance check of a tool call failed; the call is refused.",
          error,
          {
            tool: name,
          },
        );
      const message = refusalMessage(name, error);
      return { behavior: { type: "rejectContent", message }, outputInfo: infoOf(error) };
    }
    const recorded = this.governor.recordable("input", `tools.${name}.invoke`, input);
    const event = this.governor.log({
      agentId,
      kind: "tool.call",
      sessionId,
      metadata: {
        provider: this.governor.provider,
        tool: name,
        toolCallId: callId,
        ...(approval === null ? {} : { approval }),
        ...(recorded === undefined ? {} : { input: recorded }),
      },
    });
    this.#started.set(callId, { at: performance.now(), event });
    return { behavior: { type: "allow" }, outputInfo: { toolCallId: callId } };
  }

  /** After a function tool ran: `tool.result` (the output only with `recordContent`). */
  toolOutput(): ToolOutputGuardrailDefinition {
    return {
      type: "tool_output",
      name: GUARDRAIL_NAMES.toolOutput,
      run: async ({ toolCall, output }) => {
        const { name, callId } = toolCall as ToolCallLike;
        const started = this.#started.get(callId);
        this.#started.delete(callId);
        const { agentId, sessionId } = this.governor.options;
        const recorded = this.governor.recordable("output", `tools.${name}.invoke`, output);
        const durationMs =
          started === undefined ? null : Math.round(performance.now() - started.at);
        // after its tool.call (its parent); settled() waits for it
        this.governor.logAfter(started?.event ?? Promise.resolve(null), (receipt) => ({
          agentId,
          kind: "tool.result",
          sessionId,
          parentEventId: receipt?.eventId || null,
          metadata: {
            provider: this.governor.provider,
            tool: name,
            toolCallId: callId,
            durationMs,
            ...(recorded === undefined ? {} : { output: recorded }),
          },
        }));
        return { behavior: { type: "allow" } };
      },
    };
  }

  /**
   * The governed `needsApproval` (framework mode): the bridge's decision — true when a reviewer
   * was asked (a gates request keyed by the call id). A refused call answers false, and the
   * tool input guardrail refuses it.
   */
  needsApproval(name: string, own: OwnApproval) {
    const bridge = this.bridge as ApprovalBridge;
    return async (context: unknown, input: unknown, callId?: string): Promise<boolean> => {
      try {
        const options = { toolCallId: callId };
        const decision = await bridge.decide(name, input, options, ownFor(own, context, callId));
        return decision.kind === "approval";
      } catch (error) {
        // the steward's HALT: the tool input guardrail asks again and stops the run
        this.governor.report("the approval of a tool call could not be decided.", error, {
          tool: name,
        });
        return false;
      }
    };
  }
}
