import Anthropic1 from "@anthropic-ai/sdk";
import { type BudgetGuard, ChainKey, Keyring, type ScopeGuard, systemClock } from "@gov/core";
import {
  createTestStore,
  gatedStore,
  recordingAuditSink,
  recordingLogger,
  type TestEngine,
} from "@gov/core/testing";
import { CostModule, costMigrations } from "@gov/cost";
import { PresenceModule, presenceMigrations } from "@gov/presence";
import { ScopeModule, scopeMigrations } from "@gov/scope";
import Anthropic0 from "anthropic-v0";
import AnthropicFetch from "anthropic-v0-fetch";
import OpenAI6 from "openai";
import OpenAI4 from "openai-v4";
import { settled } from "../governed-call";
import { type OpenAIServer, startOpenAIServer } from "./openai-server";

/** The two majors of the real client under test. */
export const CLIENTS = [
  {
    major: "openai@6",
    create: (baseURL: string) => new OpenAI6({ apiKey: "sk-test", baseURL, maxRetries: 0 }),
  },
  // Typed as the newest major so that one test body serves both; at run time it is openai@4.
  {
    major: "openai@4",
    create: (baseURL: string) =>
      new OpenAI4({ apiKey: "sk-test", baseURL, maxRetries: 0 }) as unknown as OpenAI6,
  },
] as const;

/**
 * The real Anthropic clients under test: the two majors that have the `middleware` option
 * (governed through it), and the oldest version the wrapper supports, which has not (governed
 * around its `fetch`).
 */
export const ANTHROPIC_CLIENTS = [
  {
    major: "@anthropic-ai/sdk@1",
    via: "middleware",
    create: (baseURL: string) => new Anthropic1({ apiKey: "sk-ant-test", baseURL, maxRetries: 0 }),
  },
  // Typed as the newest major so that one test body serves all; at run time it is 0.x.
  {
    major: "@anthropic-ai/sdk@0",
    via: "middleware",
    create: (baseURL: string) =>
      new Anthropic0({ apiKey: "sk-ant-test", baseURL, maxRetries: 0 }) as unknown as Anthropic1,
  },
  {
    major: "@anthropic-ai/sdk@0.50",
    via: "fetch",
    create: (baseURL: string) =>
      new AnthropicFetch({
        apiKey: "sk-ant-test",
        baseURL,
        maxRetries: 0,
      }) as unknown as Anthropic1,
  },
] as const;

export interface Harness<Server extends { close(): Promise<void> } = OpenAIServer> {
  server: Server;
  presence: PresenceModule;
  scope: ScopeModule;
  /** The scope module as the wrappers' port. */
  scopePort: ScopeGuard;
  cost: CostModule;
  /** The cost module as the wrappers' port. */
  costPort: BudgetGuard;
  /**
   * Hold the cost module's usage records at the database from now on (they are in flight in
   * the module, as a slow write would be) until the returned function is called.
   */
  holdUsageRecords(): () => void;
  audit: ReturnType<typeof recordingAuditSink>;
  logger: ReturnType<typeof recordingLogger>;
  /** The modules as a wrapper's `governance` ports: halt, scope, cost, audit and logger. */
  governance: {
    halt: PresenceModule;
    scope: ScopeGuard;
    cost: BudgetGuard;
    audit: ReturnType<typeof recordingAuditSink>;
    logger: ReturnType<typeof recordingLogger>;
  };
  close(): Promise<void>;
}

/** The modules on a fresh test store, and a loopback server (OpenAI's unless another is started). */
export async function harness<Server extends { close(): Promise<void> } = OpenAIServer>(
  engine: TestEngine,
  startServer: () => Promise<Server> = startOpenAIServer as unknown as () => Promise<Server>,
): Promise<Harness<Server>> {
  const store = await createTestStore(engine, {
    migrations: [presenceMigrations, scopeMigrations, costMigrations],
  });
  const audit = recordingAuditSink();
  const logger = recordingLogger();
  const keyring = new Keyring(new ChainKey("wrappers-test-secret-0123456789-abcdefghijklmnop"));
  const context = { store, keyring, clock: systemClock, logger, audit };
  const presence = new PresenceModule(context);
  await presence.start();
  const scope = new ScopeModule({ ...context, halt: presence });
  await scope.start();
  const costStore = gatedStore(store, /record_usage/);
  const cost = new CostModule(
    { ...context, store: costStore.store, halt: presence },
    { sweepIntervalMs: null, spoolDirectory: null },
  );
  await cost.start();
  const server = await startServer();
  const scopePort: ScopeGuard = scope;
  const costPort: BudgetGuard = cost;
  return {
    server,
    presence,
    scope,
    scopePort,
    cost,
    costPort,
    holdUsageRecords: costStore.hold,
    audit,
    logger,
    governance: { halt: presence, scope: scopePort, cost: costPort, audit, logger },
    close: async () => {
      await settled();
      await server.close();
      await cost.close();
      await scope.close();
      await presence.close();
      await store.close();
    },
  };
}

/**
 * The client versions a suite runs on `engine`: every one on PGlite, and on real Postgres the
 * newest only (each list is newest first). What differs between a client's versions is its
 * wire format and its shapes, which the engine does not change; what differs between engines
 * (the budget's SQL, the audit writes) is then tested once per engine, which keeps CI within
 * its time.
 */
export function versionsOn<T>(engine: TestEngine, versions: readonly T[]): readonly T[] {
  return engine.name === "postgres" ? versions.slice(0, 1) : versions;
}

/**
 * The newest client version only, on either engine: for suites of the provider-neutral
 * pipeline (observation, the governed call, governance applied once), where the client's
 * version changes nothing that {@link versionsOn}'s suites do not already cover.
 */
export function newestOn<T>(_engine: TestEngine, versions: readonly T[]): readonly T[] {
  return versions.slice(0, 1);
}
