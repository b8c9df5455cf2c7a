/**
 * One governed MCP tool call, shared by the client and the server side: halt, scope, loop,
 * the approval when one is needed, `tool.call` (arguments hashed), the call, then
 * `tool.result` or `tool.error`.
 * @module
 */
import { createHash } from "node:crypto";
import { type AuditReceipt, canonicalJsonHash } from "@gov/core";
import { ApprovalBridge, type GrantedApproval } from "../ai-sdk/approvals";
import { describe, Governor } from "../governed-call";
import type { ResolvedWrapOptions } from "../options";
import type { McpToolAnnotations, ResolvedMcpApproval } from "./options";

/** The provider (and coverage client) name of every MCP event. */
export const MCP_PROVIDER = "mcp";

/** What a tool call is: its server, its name there, its arguments, and how to run it. */
export interface McpToolCall {
  /** The tool's name on its server. */
  readonly name: string;
  readonly input: unknown;
  /** The tool's annotations; null when unknown. Read only when an approval may be needed. */
  readonly annotations: () => Promise<McpToolAnnotations | null>;
  readonly signal?: AbortSignal | undefined;
  /** Where the call came from, recorded in `tool.call` (`client` or `server`). */
  readonly side: "client" | "server";
}

/** The SHA-256 of the arguments' canonical JSON (of their JSON text when they have none). */
export function argumentsHash(input: unknown): string {
  try {
    return canonicalJsonHash(input === undefined ? null : input);
  } catch {
    let text: string;
    try {
      text = JSON.stringify(input) ?? "null";
    } catch {
      text = "unserializable";
    }
    return createHash("sha256").update(text, "utf8").digest("hex");
  }
}

/** UTF-8 bytes of a result's JSON (0 when it has none). */
function resultBytes(result: unknown): number {
  try {
    return Buffer.byteLength(JSON.stringify(result) ?? "", "utf8");
  } catch {
    return 0;
  }
}

/**
 * The governance of one MCP server's tools for one agent (client side) or one caller (server
 * side): its resolved options, the server's name, and the approval policy.
 */
export class McpGovernance {
  readonly governor: Governor;

  constructor(
    options: ResolvedWrapOptions,
    readonly serverName: string,
    readonly approval: ResolvedMcpApproval | null,
  ) {
    this.governor = new Governor(options, MCP_PROVIDER);
  }

  /** The name scope, loop, gates and the audit chain know a tool by: `<serverName>/<tool>`. */
  scopedName(name: string): string {
    return `${this.serverName}/${name}`;
  }

  /**
   * Run a tool call governed. Refusals (`AgentHaltedError`, `ScopeViolation`, `LoopDetected`,
   * `ToolCallBlockedError`, gates' `ApprovalDenied` / `ApprovalTimeout`) reject before `invoke`
   * runs; what `invoke` throws is audited (`tool.error`) and rethrown as it is.
   */
  async run<R>(call: McpToolCall, invoke: () => Promise<R>): Promise<R> {
    const startedAt = performance.now();
    const { ports, agentId, sessionId } = this.governor.options;
    const tool = this.scopedName(call.name);
    await ports.halt.assertAlive(agentId, { path: `mcp.${tool}` });
    if (ports.scope !== null) await ports.scope.check(agentId, { tool });
    if (ports.loop !== null)
      await ports.loop.recordCall(agentId, sessionId, tool, { args: call.input });
    const approval = await this.#authorize(tool, call);
    this.#cover();
    const recorded = this.governor.recordable("input", `tools/call ${tool}`, call.input);
    const context = { provider: MCP_PROVIDER, side: call.side, server: this.serverName, tool };
    const event = (kind: string, parent: AuditReceipt | null, metadata: object) => ({
      agentId,
      sessionId,
      kind,
      parentEventId: parent?.eventId || null,
      metadata: { ...context, ...metadata },
    });
    const callEvent = this.governor.log(
      event("tool.call", null, {
        argumentsHash: argumentsHash(call.input),
        ...(approval === null ? {} : { approval }),
        ...(recorded === undefined ? {} : { input: recorded }),
      }),
    );
    const after = (kind: string, metadata: object) => {
      const durationMs = Math.round(performance.now() - startedAt);
      this.governor.logAfter(callEvent, (receipt) =>
        event(kind, receipt, { durationMs, ...metadata }),
      );
    };
    let result: R;
    try {
      result = await invoke();
    } catch (error) {
      after("tool.error", { error: describe(error) });
      throw error;
    }
    const output = this.governor.recordable("output", `tools/call ${tool}`, result);
    after("tool.result", {
      isError: (result as { isError?: unknown } | null)?.isError === true,
      resultBytes: resultBytes(result),
      ...(output === undefined ? {} : { output }),
    });
    return result;
  }

  /** The approval the call runs with, when the policy needs one (the bridge of `governTools`, block mode). */
  async #authorize(tool: string, call: McpToolCall): Promise<GrantedApproval | null> {
    if (this.approval === null) return null;
    const destructive =
      this.approval.destructive && (await call.annotations())?.destructiveHint === true;
    const bridge = new ApprovalBridge(this.governor, this.approval.bridge);
    return bridge.authorize(
      tool,
      call.input,
      call.signal === undefined ? {} : { abortSignal: call.signal },
      destructive ? true : undefined,
    );
  }

  /** A governed call, in the coverage registry; a registry that throws is logged. */
  #cover(): void {
    const { ports, agentId } = this.governor.options;
    try {
      ports.coverage.record(agentId, MCP_PROVIDER, "call");
    } catch (error) {
      this.governor.report("could not record coverage.", error);
    }
  }
}
