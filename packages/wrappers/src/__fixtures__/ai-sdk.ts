/**
 * The Vercel AI SDK versions under test, each with its OpenAI provider pointed at the
 * loopback OpenAI server (`openai.chat(model)`: the Chat Completions API).
 */
import { createOpenAI } from "@ai-sdk/openai";
import { ChainKey, Keyring, systemClock } from "@gov/core";
import {
  createTestStore,
  recordingAuditSink,
  recordingLogger,
  type TestEngine,
} from "@gov/core/testing";
import { PriceTable } from "@gov/cost";
import { GatesModule, gatesMigrations } from "@gov/gates";
import { PresenceModule, presenceMigrations } from "@gov/presence";
import { ScopeModule, scopeMigrations } from "@gov/scope";
import { StewardModule, stewardMigrations } from "@gov/steward";
import * as ai6 from "ai";
import { createOpenAI as createOpenAIV2 } from "ai-sdk-openai-v2";
import { createOpenAI as createOpenAIV4 } from "ai-sdk-openai-v4";
import * as ai5 from "ai-v5";
import * as ai7 from "ai-v7";
import { chatCompletion, type OpenAIServer, startOpenAIServer } from "./openai-server";

/** A chat model of the provider of one AI SDK version, typed as AI SDK 6's. */
export type ChatModel = ReturnType<ReturnType<typeof createOpenAI>["chat"]>;

export interface AiSdkUnderTest {
  /** `ai@7`, `ai@6` or `ai@5`. */
  readonly version: string;
  /** The major: 7, 6 or 5. */
  readonly major: 5 | 6 | 7;
  /** The model's specification version (`v4` for AI SDK 7, `v3` for 6, `v2` for 5). */
  readonly specification: string;
  /** The `ai` package, typed as AI SDK 6's so that one test body serves all. */
  readonly ai: typeof ai6;
  chat(baseURL: string, modelId?: string): ChatModel;
}

export const AI_SDKS: readonly AiSdkUnderTest[] = [
  {
    version: "ai@7",
    major: 7,
    specification: "v4",
    ai: ai7 as unknown as typeof ai6,
    chat: (baseURL, modelId = "gpt-4o") =>
      createOpenAIV4({ baseURL, apiKey: "sk-test" }).chat(modelId) as unknown as ChatModel,
  },
  {
    version: "ai@6",
    major: 6,
    specification: "v3",
    ai: ai6,
    chat: (baseURL, modelId = "gpt-4o") =>
      createOpenAI({ baseURL, apiKey: "sk-test" }).chat(modelId),
  },
  {
    version: "ai@5",
    major: 5,
    specification: "v2",
    ai: ai5 as unknown as typeof ai6,
    chat: (baseURL, modelId = "gpt-4o") =>
      createOpenAIV2({ baseURL, apiKey: "sk-test" }).chat(modelId) as unknown as ChatModel,
  },
];

/**
 * What the fixtures' usage costs on gpt-4o, each part at its own rate: 1200 input tokens of
 * which 1000 cached, 300 output tokens of which 200 reasoning.
 */
export function expectedUsd(): number {
  const price = new PriceTable().lookup("gpt-4o")?.price;
  if (!price) throw new Error("gpt-4o is not in the price table");
  const rate = (value: string | null, fallback: string) => Number(value ?? fallback) / 1e6;
  return (
    200 * rate(price.inputUsdPerMillion, "0") +
    1000 * rate(price.cachedInputUsdPerMillion, price.inputUsdPerMillion) +
    100 * rate(price.outputUsdPerMillion, "0") +
    200 * rate(price.reasoningUsdPerMillion, price.outputUsdPerMillion)
  );
}

/**
 * A chat completion whose message calls tools with the given arguments (the public
 * `chatCompletion` fixture sends `{}`): ids `call_<index>` unless given.
 */
export function toolCallCompletion(
  calls: readonly { name: string; input: unknown; id?: string }[],
): Record<string, unknown> {
  const completion = chatCompletion({ content: null, toolCalls: calls.map((call) => call.name) });
  const [choice] = completion.choices as { message: { tool_calls: Record<string, unknown>[] } }[];
  choice?.message.tool_calls.forEach((toolCall, index) => {
    const call = calls[index];
    if (call === undefined) return;
    if (call.id !== undefined) toolCall.id = call.id;
    (toolCall.function as Record<string, unknown>).arguments = JSON.stringify(call.input);
  });
  return completion;
}

/**
 * The steward's blueprint of the approval tests, for the tool `pay`: a daily limit of 1,000
 * that escalates (and is committed once approved), a BLOCK for `to: "blocked-account"` and a
 * HALT for `to: "halt-account"`.
 */
export const APPROVAL_BLUEPRINT = {
  id: "approvals@1",
  version: "1",
  tripwires: [
    {
      id: "daily",
      when: { tool: "pay" },
      condition: "state.daily_total + args.amount > 1000",
      requiresState: true,
      onFail: { decision: "ESCALATE", reason: "Daily total above 1,000." },
    },
    {
      id: "blocked-account",
      when: { tool: "pay" },
      condition: 'args.to == "blocked-account"',
      onFail: { decision: "BLOCK", reason: "Payments to this account are blocked." },
    },
    {
      id: "halt-account",
      when: { tool: "pay" },
      condition: 'args.to == "halt-account"',
      onFail: { decision: "HALT", reason: "Payment to a sanctioned account." },
    },
  ],
  trustDebt: { enabled: false },
};

/** The agent's modules for the approval tests, a reviewer's gates in "another process", and the server. */
export interface ApprovalHarness {
  server: OpenAIServer;
  presence: PresenceModule;
  scope: ScopeModule;
  /** The agent's gates module. */
  gates: GatesModule;
  /** A second gates module on the same store: the reviewer's process. */
  reviewer: GatesModule;
  /**
   * The agent's gates module and steward in another process on the same store (started;
   * closed with the harness): the agent after a restart, or another instance resuming its run.
   * Nothing in memory is shared with {@link gates} and {@link steward}.
   */
  restarted(): Promise<{ gates: GatesModule; steward: StewardModule }>;
  steward: StewardModule;
  audit: ReturnType<typeof recordingAuditSink>;
  logger: ReturnType<typeof recordingLogger>;
  close(): Promise<void>;
}

/** A fresh store with presence, scope, gates and the steward, and a loopback OpenAI server. */
export async function approvalHarness(engine: TestEngine): Promise<ApprovalHarness> {
  const store = await createTestStore(engine, {
    migrations: [presenceMigrations, scopeMigrations, gatesMigrations, stewardMigrations],
  });
  const audit = recordingAuditSink();
  const logger = recordingLogger();
  const keyring = new Keyring(new ChainKey("wrappers-approvals-secret-0123456789-abcdefghijk"));
  const context = { store, keyring, clock: systemClock, logger, audit };
  const presence = new PresenceModule(context);
  await presence.start();
  const scope = new ScopeModule({ ...context, halt: presence });
  await scope.start();
  const gates = new GatesModule({ ...context, halt: presence, operators: presence });
  await gates.start();
  const reviewer = new GatesModule({ ...context, halt: presence, operators: presence });
  await reviewer.start();
  const others: { close(): Promise<void> }[] = [];
  const steward = await StewardModule.create(
    { ...context, halt: presence },
    { blueprints: [APPROVAL_BLUEPRINT] },
  );
  const server = await startOpenAIServer();
  return {
    server,
    presence,
    scope,
    gates,
    reviewer,
    restarted: async () => {
      const gates = new GatesModule({ ...context, halt: presence, operators: presence });
      others.push(gates);
      await gates.start();
      const steward = await StewardModule.create(
        { ...context, halt: presence },
        { blueprints: [APPROVAL_BLUEPRINT] },
      );
      others.push(steward);
      return { gates, steward };
    },
    steward,
    audit,
    logger,
    close: async () => {
      await server.close();
      await steward.close();
      for (const other of others) await other.close();
      await reviewer.close();
      await gates.close();
      await scope.close();
      await presence.close();
      await store.close();
    },
  };
}

/** The error of the first `tool-error` part of a run's first step; throws when there is none. */
export function firstToolError(result: {
  steps: readonly { content: readonly unknown[] }[];
}): unknown {
  for (const part of result.steps[0]?.content ?? []) {
    const candidate = part as { type?: unknown; error?: unknown };
    if (candidate.type === "tool-error") return candidate.error;
  }
  throw new Error("the run's first step has no tool-error part");
}

/**
 * The outputs of the tool calls a resumed run executed before its first step (the approved
 * ones), as the AI SDK records them in its messages: `response.messages` (AI SDK 6), or
 * `initialResponseMessages` (AI SDK 7).
 */
export function approvedOutputs(
  result: object,
): { toolName: string; type: string; value: unknown }[] {
  const record = result as { response: { messages: unknown[] }; initialResponseMessages?: unknown };
  const messages = [
    ...(Array.isArray(record.initialResponseMessages) ? record.initialResponseMessages : []),
    ...record.response.messages,
  ] as { role: string; content: unknown }[];
  return messages
    .filter((message) => message.role === "tool" && Array.isArray(message.content))
    .flatMap((message) => message.content as Record<string, unknown>[])
    .filter((part) => part.type === "tool-result")
    .map((part) => {
      const output = part.output as { type: string; value: unknown };
      return { toolName: part.toolName as string, type: output.type, value: output.value };
    });
}
