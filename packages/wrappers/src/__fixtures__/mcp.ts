/**
 * The MCP test bed: a real MCP server and client of each SDK major (1.x `@modelcontextprotocol/sdk`,
 * 2.x `@modelcontextprotocol/client` + `server`) linked by the SDK's in-memory transport, and
 * the governance modules on a fresh test store.
 */
import { ChainKey, Keyring, systemClock } from "@gov/core";
import {
  createTestStore,
  recordingAuditSink,
  recordingLogger,
  type TestEngine,
} from "@gov/core/testing";
import { GatesModule, gatesMigrations } from "@gov/gates";
import { LoopModule } from "@gov/loop";
import { PresenceModule, presenceMigrations } from "@gov/presence";
import { ScopeModule, scopeMigrations } from "@gov/scope";
import { Client as Client2, InMemoryTransport as Transport2 } from "@modelcontextprotocol/client";
import { Client as Client1 } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport as Transport1 } from "@modelcontextprotocol/sdk/inMemory.js";
import { McpServer as Server1 } from "@modelcontextprotocol/sdk/server/mcp.js";
import { McpServer as Server2 } from "@modelcontextprotocol/server";
import { z } from "zod";
import { settled } from "../governed-call";

/** What a test's MCP client is (typed as 1.x; both majors have callTool and listTools). */
export type TestClient = Client1;
/** What a test's MCP server is (typed as 1.x; both majors have registerTool). */
export type TestServer = Server1;

/** The caller's token info a client's transport attaches to every message (as an authenticated HTTP transport would). */
export interface TestAuthInfo {
  token: string;
  clientId: string;
  scopes: string[];
}

/** One SDK major: a server, and a client connected to it in memory. */
export interface McpSdk {
  major: "@modelcontextprotocol/sdk@1" | "@modelcontextprotocol/client@2";
  server(): TestServer;
  connect(server: TestServer, authInfo?: TestAuthInfo): Promise<TestClient>;
}

/** Attach `authInfo` to every message a transport sends (what an authenticated transport hands the server). */
function authenticated<T extends { send: (message: never, options?: never) => Promise<void> }>(
  transport: T,
  authInfo: TestAuthInfo | undefined,
): T {
  if (authInfo === undefined) return transport;
  const send = transport.send.bind(transport);
  transport.send = ((message: never, options?: object) =>
    send(message, { ...options, authInfo } as never)) as T["send"];
  return transport;
}

/** The SDK majors under test, each run on both engines (an MCP test is fast). */
export const MCP_SDKS: readonly McpSdk[] = [
  {
    major: "@modelcontextprotocol/sdk@1",
    server: () => new Server1({ name: "billing-server", version: "1.0.0" }),
    connect: async (server, authInfo) => {
      const [clientSide, serverSide] = Transport1.createLinkedPair();
      await server.connect(serverSide);
      const client = new Client1({ name: "billing-agent", version: "1.0.0" });
      await client.connect(authenticated(clientSide, authInfo));
      return client;
    },
  },
  {
    major: "@modelcontextprotocol/client@2",
    server: () => new Server2({ name: "billing-server", version: "1.0.0" }) as unknown as Server1,
    connect: async (server, authInfo) => {
      const [clientSide, serverSide] = Transport2.createLinkedPair();
      await (server as unknown as Server2).connect(serverSide);
      const client = new Client2({ name: "billing-agent", version: "1.0.0" });
      await client.connect(authenticated(clientSide, authInfo));
      return client as unknown as Client1;
    },
  },
];

/** The arguments each tool handler of the test server was called with, by tool. */
export type Ran = { tool: string; args: unknown }[];

/**
 * Register the test tools: `lookup_invoice` (read-only), `issue_refund` (annotated
 * `destructiveHint: true`), `delete_all` (hidden by the test policy) and `fail` (returns an
 * error result). Each handler records its call in `ran`.
 */
export function registerTools(server: TestServer, ran: Ran): void {
  const inputSchema = z.object({ invoiceId: z.string(), amount: z.number().optional() });
  const tool = (name: string, annotations: Record<string, boolean>, isError = false) =>
    server.registerTool(
      name,
      { description: `The ${name} tool`, inputSchema, annotations } as never,
      (async (args: unknown) => {
        ran.push({ tool: name, args });
        return {
          content: [{ type: "text", text: `${name} done: private-result` }],
          ...(isError ? { isError: true } : {}),
        };
      }) as never,
    );
  tool("lookup_invoice", { readOnlyHint: true });
  tool("issue_refund", { destructiveHint: true });
  tool("delete_all", { destructiveHint: true });
  tool("fail", { readOnlyHint: true }, true);
}

/** The modules of the test bed. */
interface McpModules {
  presence: PresenceModule;
  scope: ScopeModule;
  loop: LoopModule;
  gates: GatesModule;
  audit: ReturnType<typeof recordingAuditSink>;
  logger: ReturnType<typeof recordingLogger>;
}

/** The governance modules on a fresh store, and a second gates module: the reviewer's process. */
export interface McpHarness extends McpModules {
  reviewer: GatesModule;
  /** The modules as a wrapper's `governance` ports (presence as `halt`). */
  governance: Omit<McpModules, "presence"> & { halt: PresenceModule };
  close(): Promise<void>;
}

/** Presence, scope, loop and two gates modules on a fresh store of `engine`, with a recording audit sink. */
export async function mcpHarness(engine: TestEngine): Promise<McpHarness> {
  const store = await createTestStore(engine, {
    migrations: [presenceMigrations, scopeMigrations, gatesMigrations],
  });
  const audit = recordingAuditSink();
  const logger = recordingLogger();
  const keyring = new Keyring(new ChainKey("wrappers-mcp-secret-0123456789-abcdefghijklmnopq"));
  const context = { store, keyring, clock: systemClock, logger, audit };
  const presence = new PresenceModule(context);
  await presence.start();
  const scope = new ScopeModule({ ...context, halt: presence });
  await scope.start();
  const loop = new LoopModule({ audit, logger });
  const gates = new GatesModule({ ...context, halt: presence, operators: presence });
  await gates.start();
  const reviewer = new GatesModule({ ...context, halt: presence, operators: presence });
  await reviewer.start();
  return {
    presence,
    scope,
    loop,
    gates,
    reviewer,
    audit,
    logger,
    governance: { halt: presence, scope, loop, gates, audit, logger },
    close: async () => {
      await settled();
      await loop.close();
      await reviewer.close();
      await gates.close();
      await scope.close();
      await presence.close();
      await store.close();
    },
  };
}
