/**
 * `@gov/wrappers/mcp`: govern the Model Context Protocol — an MCP client an agent already uses
 * (`governMcpClient`), or the tool handlers of an MCP server, for its callers
 * (`governMcpServer`). Works with `@modelcontextprotocol/sdk` 1.x and
 * `@modelcontextprotocol/client` / `@modelcontextprotocol/server` 2.x.
 * @module
 */
export type { ApprovalRequestNotice } from "../ai-sdk/approval-options";
export {
  type GovernMcpClientOptions,
  governMcpClient,
  type McpClientLike,
} from "./client";
export type { McpApprovalOptions, McpToolAnnotations } from "./options";
export {
  type GovernMcpServerOptions,
  governMcpServer,
  type McpCallerContext,
  McpCallerUnidentifiedError,
  type McpServerLike,
} from "./server";
export { argumentsHash, MCP_PROVIDER } from "./tool-call";
