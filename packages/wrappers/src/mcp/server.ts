/**
 * `governMcpServer`: an MCP server (`McpServer` of `@modelcontextprotocol/sdk` 1.x or
 * `@modelcontextprotocol/server` 2.x) that governs its callers — each tool handler registered
 * with `registerTool` runs only for an identified caller, after halt, scope, loop and any
 * approval, and is audited.
 * @module
 */
import { randomUUID } from "node:crypto";
import {
  AgentHaltedError,
  checkId,
  GovernanceError,
  type GovernancePorts,
  type HasGovernancePorts,
  InvalidArgumentError,
  typeOf,
} from "@gov/core";
import { checkApprovalPorts } from "../ai-sdk/approvals";
import { InvalidWrapperOptionsError, WRAPPERS_ERROR_CODES } from "../errors";
import { type ContentToRedact, resolveWrapOptions } from "../options";
import { isObject } from "../shapes";
import {
  type McpApprovalOptions,
  type McpToolAnnotations,
  type ResolvedMcpApproval,
  readServerName,
  resolveMcpApproval,
} from "./options";
import { McpGovernance } from "./tool-call";

/** The authenticated session of one tool call, as the MCP SDK hands it to the handler. */
export interface McpCallerContext {
  /**
   * The validated access token's information (`extra.authInfo` in 1.x, `ctx.http.authInfo` in
   * 2.x): set by your transport's authentication (`requireBearerAuth`, your middleware).
   * Undefined for a transport without authentication.
   */
  readonly authInfo: {
    readonly token?: string;
    readonly clientId?: string;
    readonly scopes?: readonly string[];
    readonly extra?: Record<string, unknown>;
  } | null;
  /** The transport's session id, when it has one. */
  readonly sessionId: string | null;
  /** The handler's `extra` (1.x) or `ctx` (2.x) as the SDK passed it. */
  readonly extra: unknown;
}

/** The options of {@link governMcpServer}. */
export interface GovernMcpServerOptions {
  /** The GovernanceSDK, or the ports you have (as every wrapper). */
  governance: GovernancePorts | HasGovernancePorts;
  /**
   * The calling agent, from the authenticated session your host supplies (never from the
   * arguments): return its id, or null / undefined when the caller is not identified — the
   * call is then refused (`McpCallerUnidentifiedError`, fail closed).
   * @example ({ authInfo }) => authInfo?.clientId
   */
  agentId: (
    caller: McpCallerContext,
  ) => string | null | undefined | PromiseLike<string | null | undefined>;
  /**
   * The session a call is budgeted and audited under. @default the transport's session id,
   * else one random id for this server
   */
  sessionId?: (caller: McpCallerContext) => string | null | undefined;
  /** This server's name in scope policies: its tools are `<serverName>/<tool>` there, as on the client side. */
  serverName: string;
  /** Calls that wait for a reviewer's approval (the annotations are this server's own). @default none */
  approval?: McpApprovalOptions;
  /** Record the arguments and results in `tool.call` / `tool.result`. @default false */
  recordContent?: boolean;
  /** With `recordContent`: `(content) => redacted copy`. */
  redact?: (content: ContentToRedact) => unknown;
}

/** The part of an `McpServer` the wrapper uses (1.x and 2.x alike). */
export interface McpServerLike {
  registerTool: (name: string, config: never, callback: never) => unknown;
}

/**
 * A tool call on a governed MCP server whose caller could not be identified: `agentId(caller)`
 * returned no id, an invalid one, or threw. The handler did not run.
 */
export class McpCallerUnidentifiedError extends GovernanceError {
  static override readonly errorIdentity = "@gov/wrappers.McpCallerUnidentifiedError";
  /** The tool that was not run, by its scope name. */
  readonly toolName: string;

  constructor(toolName: string, problem: string, cause?: unknown) {
    super({
      code: WRAPPERS_ERROR_CODES.MCP_CALLER_UNIDENTIFIED,
      message: `Tool "${toolName}" was not run: ${problem}`,
      recoveryHint:
        "Authenticate the transport (the caller's token must reach the handler as authInfo), and return the agent's id from governMcpServer's agentId option.",
      ...(cause === undefined ? {} : { cause }),
    });
    this.name = "McpCallerUnidentifiedError";
    this.toolName = toolName;
  }
}

const GOVERNED = Symbol.for("@gov/wrappers.mcp.governedServer");
/** An agent id that only stands in while the shared options are read (never used for a call). */
const PLACEHOLDER_AGENT = "mcp-server";

type Handler = (...args: unknown[]) => unknown;

/** A registered tool's name and annotations, as `update()` leaves them. */
interface ToolIdentity {
  name: string;
  annotations: McpToolAnnotations | null;
}

function annotationsOf(config: unknown): McpToolAnnotations | null {
  return isObject(config) && isObject(config.annotations)
    ? (config.annotations as McpToolAnnotations)
    : null;
}

function callerOf(extra: unknown): McpCallerContext {
  const record = isObject(extra) ? extra : {};
  const http = isObject(record.http) ? record.http : {};
  const authInfo = isObject(record.authInfo)
    ? record.authInfo
    : isObject(http.authInfo)
      ? http.authInfo
      : null;
  return {
    authInfo: authInfo as McpCallerContext["authInfo"],
    sessionId: typeof record.sessionId === "string" ? record.sessionId : null,
    extra,
  };
}

function signalOf(extra: unknown): AbortSignal | undefined {
  if (!isObject(extra)) return undefined;
  const signal = isObject(extra.mcpReq) ? extra.mcpReq.signal : extra.signal;
  return signal instanceof AbortSignal ? signal : undefined;
}

/**
 * Govern the tools of an MCP server: returns the same server, whose `registerTool` governs
 * every handler registered from now on (register the tools after this call; a server that
 * already has tools is refused). Each call is refused unless `agentId(caller)` names the
 * calling agent from the authenticated session (`McpCallerUnidentifiedError`); then, as on
 * the client side: halt, scope (`<serverName>/<tool>`), loop, the approval when the policy
 * needs one, `tool.call` (arguments hashed), the handler, `tool.result` / `tool.error`. A
 * refusal reaches the caller as the tool's error result (`isError: true`, the refusal's
 * message), as the SDK reports what a handler throws; the handler never ran.
 *
 * @example
 * ```ts
 * const server = governMcpServer(new McpServer({ name: "billing", version: "1.0.0" }), {
 *   governance: sdk,
 *   serverName: "billing",
 *   agentId: ({ authInfo }) => authInfo?.clientId,
 * });
 * server.registerTool("issue_refund", { inputSchema }, refund); // governed
 * ```
 * @throws {InvalidWrapperOptionsError} not an `McpServer`, one with tools registered already,
 *   or bad options; nothing was changed.
 */
export function governMcpServer<Server extends object>(
  server: Server,
  options: GovernMcpServerOptions,
): Server {
  const target = server as unknown as McpServerLike & { [GOVERNED]?: true };
  if (!isObject(target) || typeof target.registerTool !== "function")
    throw new InvalidWrapperOptionsError(
      "server",
      `is not an MCP server: it has no registerTool (got ${typeOf(server)}).`,
      "Pass the McpServer of @modelcontextprotocol/sdk (1.x) or @modelcontextprotocol/server (2.x).",
    );
  if (!isObject(options))
    throw new InvalidWrapperOptionsError(
      "options",
      `must be an object, got ${typeOf(options)}.`,
      "Pass { governance, serverName, agentId: (caller) => id, sessionId?, approval?, recordContent?, redact? }.",
    );
  const { agentId, sessionId, serverName, approval, ...rest } = options as unknown as Record<
    string,
    unknown
  >;
  if (typeof agentId !== "function")
    throw new InvalidWrapperOptionsError(
      "options.agentId",
      `must be a function of the caller's authenticated session, got ${typeOf(agentId)}.`,
      "Pass agentId: ({ authInfo }) => authInfo?.clientId — the agent id from the token your transport validated.",
    );
  if (sessionId !== undefined && typeof sessionId !== "function")
    throw new InvalidWrapperOptionsError(
      "options.sessionId",
      `must be a function of the caller's session, got ${typeOf(sessionId)}.`,
      "Pass sessionId: ({ sessionId }) => sessionId, or leave it out.",
    );
  const base = resolveWrapOptions({ ...rest, agentId: PLACEHOLDER_AGENT });
  const name = readServerName(serverName);
  const policy = approval === undefined ? null : resolveMcpApproval(approval);
  if (target[GOVERNED] === true) {
    base.ports.logger.warn(
      "@gov/wrappers: this MCP server is already governed; governMcpServer() left it as it was.",
      { serverName: name },
    );
    return server;
  }
  if (policy !== null) checkApprovalPorts(base, policy.bridge, "governMcpServer()");
  const registered = (target as { _registeredTools?: unknown })._registeredTools;
  if (isObject(registered) && Object.keys(registered).length > 0)
    throw new InvalidWrapperOptionsError(
      "server",
      `already has tools (${Object.keys(registered).slice(0, 5).join(", ")}): their handlers would not be governed.`,
      "Call governMcpServer(server, options) before registerTool.",
    );
  const serverSession = randomUUID();
  const governed = new Governed(
    base,
    name,
    policy,
    agentId as GovernMcpServerOptions["agentId"],
    (sessionId as GovernMcpServerOptions["sessionId"]) ?? ((caller) => caller.sessionId),
    serverSession,
  );
  const registerTool = target.registerTool;
  Object.defineProperty(target, "registerTool", {
    configurable: true,
    writable: true,
    value: function governedRegisterTool(
      this: unknown,
      tool: string,
      config: unknown,
      callback: unknown,
    ) {
      if (typeof callback !== "function")
        return registerTool.call(this, tool, config as never, callback as never);
      // What the tool is now: update({ name, annotations }) changes it for the calls after.
      const current: ToolIdentity = {
        name: tool,
        annotations: annotationsOf(config),
      };
      const handle = governed.handler(current, callback as Handler);
      const entry = registerTool.call(this, tool, config as never, handle as never);
      // update({ callback }) replaces the handler: the new one is governed too; a new name or
      // new annotations are the ones the calls after it are scoped, approved and audited by
      if (isObject(entry) && typeof entry.update === "function") {
        const update = entry.update as (updates: unknown) => unknown;
        entry.update = (updates: unknown) => {
          const result = update.call(
            entry,
            isObject(updates) && typeof updates.callback === "function"
              ? { ...updates, callback: governed.handler(current, updates.callback as Handler) }
              : updates,
          );
          if (isObject(updates)) {
            if (typeof updates.name === "string" && updates.name !== "")
              current.name = updates.name;
            if (updates.annotations !== undefined) current.annotations = annotationsOf(updates);
          }
          return result;
        };
      }
      return entry;
    },
  });
  // 1.x's deprecated tool(…) would register an ungoverned handler: refused (fail closed)
  if (typeof (target as { tool?: unknown }).tool === "function")
    Object.defineProperty(target, "tool", {
      configurable: true,
      writable: true,
      value: (tool: unknown) => {
        throw new InvalidWrapperOptionsError(
          "server.tool",
          `cannot register ${JSON.stringify(String(tool).slice(0, 64))} on a governed server: its handler would not be governed.`,
          "Register it with server.registerTool(name, { description, inputSchema, annotations }, callback).",
        );
      },
    });
  // 1.x's experimental task tools (registerToolTask) would run ungoverned handlers: refused too
  const tasks = experimentalTasksOf(target);
  if (tasks !== null)
    Object.defineProperty(tasks, "registerToolTask", {
      configurable: true,
      writable: true,
      value: (tool: unknown) => {
        throw new InvalidWrapperOptionsError(
          "server.experimental.tasks.registerToolTask",
          `cannot register ${JSON.stringify(String(tool).slice(0, 64))} on a governed server: task tools are not governed.`,
          "Register it with server.registerTool(name, config, callback), or serve task tools from a server that is not governed.",
        );
      },
    });
  Object.defineProperty(target, GOVERNED, { value: true });
  return server;
}

/** The `experimental.tasks` of a 1.x `McpServer` when it can register task tools, else null. */
function experimentalTasksOf(server: object): Record<string, unknown> | null {
  let experimental: unknown;
  try {
    experimental = (server as { experimental?: unknown }).experimental;
  } catch {
    return null;
  }
  const tasks = isObject(experimental) ? experimental.tasks : undefined;
  return isObject(tasks) && typeof tasks.registerToolTask === "function"
    ? (tasks as Record<string, unknown>)
    : null;
}

/** The server's governance: one {@link McpGovernance} per call, for the caller it names. */
class Governed {
  constructor(
    readonly base: ReturnType<typeof resolveWrapOptions>,
    readonly serverName: string,
    readonly policy: ResolvedMcpApproval | null,
    readonly agentIdOf: GovernMcpServerOptions["agentId"],
    readonly sessionIdOf: NonNullable<GovernMcpServerOptions["sessionId"]>,
    readonly serverSession: string,
  ) {}

  /**
   * The governed handler of one tool: `(args, extra)` or `(extra)`, as the SDK calls it, under
   * the tool's name and annotations at the time of the call.
   */
  handler(tool: ToolIdentity, callback: Handler): Handler {
    const governed = this;
    return async function governedHandler(this: unknown, ...args: unknown[]) {
      const extra = args.at(-1);
      const input = args.length > 1 ? args[0] : undefined;
      const { name, annotations } = tool;
      const governance = await governed.#governance(name, callerOf(extra));
      return governance.run(
        {
          name,
          input,
          annotations: async () => annotations,
          signal: signalOf(extra),
          side: "server",
        },
        async () => callback.apply(this, args),
      );
    };
  }

  /** The caller's governance; refused (fail closed) when the caller is not identified. */
  async #governance(tool: string, caller: McpCallerContext): Promise<McpGovernance> {
    const scoped = `${this.serverName}/${tool}`;
    let id: unknown;
    try {
      id = await this.agentIdOf(caller);
    } catch (error) {
      if (AgentHaltedError.isInstance(error)) throw error;
      throw new McpCallerUnidentifiedError(scoped, "the agentId option threw.", error);
    }
    if (id === null || id === undefined || id === "")
      throw new McpCallerUnidentifiedError(scoped, "the caller's session names no agent.");
    let agentId: string;
    let sessionId: string;
    try {
      agentId = checkId(id, "agentId");
      const session = this.sessionIdOf(caller);
      sessionId =
        session === null || session === undefined || session === ""
          ? this.serverSession
          : checkId(session, "sessionId");
    } catch (error) {
      if (InvalidArgumentError.isInstance(error))
        throw new McpCallerUnidentifiedError(scoped, `the caller's ${error.message}`, error);
      throw error;
    }
    const options = Object.freeze({ ...this.base, agentId, sessionId });
    return new McpGovernance(options, this.serverName, this.policy);
  }
}
