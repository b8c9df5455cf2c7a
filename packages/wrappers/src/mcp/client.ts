/**
 * `governMcpClient`: an MCP client (`@modelcontextprotocol/sdk` 1.x `Client`, or
 * `@modelcontextprotocol/client` 2.x) governed in place — `listTools` filtered by scope, every
 * `callTool` halt-checked, scoped, loop-counted, approved when it must be, and audited.
 * @module
 */
import { typeOf } from "@gov/core";
import { checkApprovalPorts } from "../ai-sdk/approvals";
import { InvalidWrapperOptionsError } from "../errors";
import { resolveWrapOptions, type WrapOptions } from "../options";
import { isObject } from "../shapes";
import {
  type McpApprovalOptions,
  type McpToolAnnotations,
  readServerName,
  resolveMcpApproval,
} from "./options";
import { McpGovernance } from "./tool-call";

/** The options of {@link governMcpClient}. */
export type GovernMcpClientOptions = Omit<WrapOptions, "onToolOutOfScope"> & {
  /**
   * The name this client's server is known by in scope policies: its tools are
   * `<serverName>/<tool>` (`billing/issue_refund`). Yours, not the server's own name (a server
   * could call itself anything). Core's id rule, at most 64 characters, no `/`.
   */
  serverName: string;
  /** Calls that wait for a reviewer's approval: see {@link McpApprovalOptions}. @default none */
  approval?: McpApprovalOptions;
};

/** The part of an MCP `Client` the wrapper uses (v1 and v2 alike). */
export interface McpClientLike {
  callTool: (params: never, ...rest: never[]) => Promise<unknown>;
  listTools: (params?: never, ...rest: never[]) => Promise<unknown>;
}

/** A tool as `tools/list` returns it (the fields read here). */
interface ListedTool {
  name: string;
  annotations?: McpToolAnnotations;
}

const GOVERNED = Symbol.for("@gov/wrappers.mcp.governedClient");

/** The most pages of `tools/list` read to find a tool's annotations. */
const MAX_LIST_PAGES = 20;

function listedTools(result: unknown): ListedTool[] {
  const tools = isObject(result) ? result.tools : undefined;
  return Array.isArray(tools)
    ? tools.filter((tool): tool is ListedTool => isObject(tool) && typeof tool.name === "string")
    : [];
}

/**
 * Govern an MCP client in place, and return it: every `callTool` first checks the operator's
 * halt (`AgentHaltedError`), then the agent's scope with the tool's scope name
 * `<serverName>/<tool>` (the scope module's `ScopeViolation`), counts the call for loop
 * detection (`LoopDetected`), waits for a reviewer's approval when the `approval` policy needs
 * one (a denial is gates' `ApprovalDenied`), and audits `tool.call` (the arguments' SHA-256,
 * never the arguments unless `recordContent`); then the call, and `tool.result` (`isError`,
 * `resultBytes`) or `tool.error`. The name and arguments are read once, and the server is sent a
 * frozen copy of the arguments (through their JSON; arguments that are not JSON reject with
 * `InvalidWrapperOptionsError`): what was checked is what runs. `listTools` leaves out the tools hidden from the agent
 * (`hiddenTools`). Enforcement fails closed (a store that cannot answer refuses the call);
 * the audit never breaks it. Wrapping again for the same agent changes nothing (a warning).
 *
 * @example
 * ```ts
 * const client = new Client({ name: "billing-agent", version: "1.0.0" });
 * await client.connect(transport);
 * governMcpClient(client, { governance: sdk, agentId: "billing-agent", serverName: "billing" });
 * await client.callTool({ name: "issue_refund", arguments: { invoiceId: "INV-42" } }); // scope: "billing/issue_refund"
 * ```
 * @throws {InvalidWrapperOptionsError} not an MCP client, one already governed for another
 *   agent, or bad options (an empty agent id, a server name with `/`); nothing was wrapped.
 */
export function governMcpClient<Client extends object>(
  client: Client,
  options: GovernMcpClientOptions,
): Client {
  const target = client as unknown as McpClientLike & { [GOVERNED]?: string };
  if (
    !isObject(target) ||
    typeof target.callTool !== "function" ||
    typeof target.listTools !== "function"
  )
    throw new InvalidWrapperOptionsError(
      "client",
      `is not an MCP client: it has no callTool and listTools (got ${typeOf(client)}).`,
      "Pass the Client of @modelcontextprotocol/sdk (1.x) or @modelcontextprotocol/client (2.x): governMcpClient(client, { governance, agentId, serverName }).",
    );
  if (!isObject(options))
    throw new InvalidWrapperOptionsError(
      "options",
      `must be an object, got ${typeOf(options)}.`,
      "Pass { governance, agentId, serverName, sessionId?, approval?, recordContent?, redact? }.",
    );
  const { serverName, approval, ...rest } = options as Record<string, unknown>;
  if (Object.hasOwn(rest, "onToolOutOfScope"))
    throw new InvalidWrapperOptionsError(
      "options.onToolOutOfScope",
      "does not apply to MCP: a tool outside scope is refused when it is called.",
      "Remove onToolOutOfScope.",
    );
  const resolved = resolveWrapOptions(rest);
  const name = readServerName(serverName);
  const policy = approval === undefined ? null : resolveMcpApproval(approval);
  const governance = new McpGovernance(resolved, name, policy);
  const governedFor = target[GOVERNED];
  if (governedFor !== undefined) {
    if (governedFor !== resolved.agentId)
      throw new InvalidWrapperOptionsError(
        "client",
        `is already governed for agent "${governedFor}".`,
        "Use one MCP client per agent: connect another Client for this agent.",
      );
    resolved.ports.logger.warn(
      "@gov/wrappers: this MCP client is already governed; governMcpClient() left it as it was.",
      { agentId: resolved.agentId },
    );
    return client;
  }
  if (policy !== null) checkApprovalPorts(resolved, policy.bridge, "governMcpClient()");
  installGovernance(target, governance);
  refuseTaskCalls(target);
  Object.defineProperty(target, GOVERNED, { value: resolved.agentId });
  governance.governor.registered({ server: name, operations: ["listTools", "callTool"] });
  return client;
}

/**
 * A deep, frozen copy of a call's arguments through their JSON (what MCP sends): the value
 * checked, approved, hashed and sent, which no one holding the caller's object can change.
 * @throws {InvalidWrapperOptionsError} arguments that are not JSON (cyclic, a BigInt, a getter
 *   that throws); nothing was sent.
 */
function frozenCopy(value: unknown): unknown {
  if (value === undefined) return undefined;
  try {
    const text = JSON.stringify(value);
    return text === undefined ? undefined : deepFreeze(JSON.parse(text));
  } catch (error) {
    throw new InvalidWrapperOptionsError(
      "params.arguments",
      `must be JSON, got a value JSON.stringify refuses (${error instanceof Error ? error.name : typeOf(error)}).`,
      "Pass plain data as arguments: no cycles, BigInts or getters that throw.",
    );
  }
}

function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null) {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}

/**
 * 1.x's experimental `client.experimental.tasks.callToolStream` sends `tools/call` itself, past
 * the governed `callTool`: on a governed client it is refused (its stream rejects; fail closed).
 */
function refuseTaskCalls(target: object): void {
  let experimental: unknown;
  try {
    experimental = (target as { experimental?: unknown }).experimental;
  } catch {
    return;
  }
  const tasks = isObject(experimental) ? experimental.tasks : undefined;
  if (!isObject(tasks) || typeof tasks.callToolStream !== "function") return;
  Object.defineProperty(tasks, "callToolStream", {
    configurable: true,
    writable: true,
    // biome-ignore lint/correctness/useYield: it only refuses, when the stream is read
    value: async function* refusedCallToolStream(params: unknown): AsyncGenerator<never> {
      const name = isObject(params) ? params.name : params;
      throw new InvalidWrapperOptionsError(
        "client.experimental.tasks.callToolStream",
        `cannot call ${JSON.stringify(String(name).slice(0, 64))} on a governed client: task calls are not governed.`,
        "Call the tool with client.callTool(params), which is governed.",
      );
    },
  });
}

/** Replace the client's `listTools` and `callTool` with governed ones (own properties). */
function installGovernance(target: McpClientLike, governance: McpGovernance): void {
  const listTools = target.listTools;
  const callTool = target.callTool;
  const annotations = new Map<string, McpToolAnnotations | null>();
  const remember = (tools: readonly ListedTool[]) => {
    for (const tool of tools) annotations.set(tool.name, tool.annotations ?? null);
  };
  /** A tool's annotations: as last listed, or read from the server (unfiltered) now. */
  const annotationsOf = async (name: string): Promise<McpToolAnnotations | null> => {
    if (!annotations.has(name)) {
      let cursor: string | undefined;
      for (let page = 0; page < MAX_LIST_PAGES && !annotations.has(name); page++) {
        const result = await listTools.call(
          target,
          (cursor === undefined ? undefined : { cursor }) as never,
        );
        remember(listedTools(result));
        cursor = isObject(result) && typeof result.nextCursor === "string" ? result.nextCursor : "";
        if (cursor === "") break;
      }
    }
    return annotations.get(name) ?? null;
  };
  const { ports, agentId } = governance.governor.options;

  Object.defineProperty(target, "listTools", {
    configurable: true,
    writable: true,
    value: async function governedListTools(this: unknown, ...args: never[]) {
      await ports.halt.assertAlive(agentId, { path: `mcp.${governance.serverName}.tools/list` });
      const result = await listTools.apply(this, args);
      const tools = listedTools(result);
      remember(tools);
      if (ports.scope === null || !isObject(result) || !Array.isArray(result.tools)) return result;
      const kept = new Set(
        ports.scope.filterTools(
          agentId,
          tools.map((tool) => ({ name: governance.scopedName(tool.name), tool })),
        ),
      );
      const visible = new Set([...kept].map((entry) => entry.tool));
      return { ...result, tools: result.tools.filter((tool) => visible.has(tool as ListedTool)) };
    },
  });

  Object.defineProperty(target, "callTool", {
    configurable: true,
    writable: true,
    value: async function governedCallTool(this: unknown, params: unknown, ...rest: never[]) {
      // Read once: what is checked, approved and audited is what is sent — a name or arguments
      // changed (or a getter answering differently) while the checks run cannot reach the server.
      const name: unknown = isObject(params) ? params.name : undefined;
      if (!isObject(params) || typeof name !== "string")
        throw new InvalidWrapperOptionsError(
          "params.name",
          `must be the tool's name, got ${typeOf(isObject(params) ? name : params)}.`,
          'Call callTool({ name: "issue_refund", arguments: { … } }).',
        );
      const input = frozenCopy(params.arguments);
      const sent = { ...params, name, arguments: input };
      if (input === undefined) delete (sent as { arguments?: unknown }).arguments;
      // v1: callTool(params, resultSchema?, options?); v2: callTool(params, options?)
      const requestOptions = rest.find(
        (value) => isObject(value) && (value as { signal?: unknown }).signal !== undefined,
      ) as { signal?: unknown } | undefined;
      const signal =
        requestOptions?.signal instanceof AbortSignal ? requestOptions.signal : undefined;
      return governance.run(
        { name, input, annotations: () => annotationsOf(name), signal, side: "client" },
        () => callTool.call(this, sent as never, ...rest),
      );
    },
  });
}
