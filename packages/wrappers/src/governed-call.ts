/**
 * The governed-call pipeline every wrapper shares: admit (halt, model scope, tools, budget),
 * audit the call, settle or release the reservation, check the tool calls the model returned,
 * and audit the result. Provider-neutral: the adapters (`./openai`) read the provider's shapes.
 * @module
 */
import { createHash } from "node:crypto";
import {
  AgentHaltedError,
  type AuditReceipt,
  InvalidArgumentError,
  type Logger,
  type ProviderUsageLike,
  typeOf,
} from "@gov/core";
import { ToolCallOutOfScopeError } from "./errors";
import type { ContentToRedact, ResolvedWrapOptions } from "./options";

/**
 * Settlements still in flight. A call's usage is settled after its response reached the host,
 * not before (the host does not wait for the database); until then the call's reservation
 * holds its worst case, so no budget can be overrun meanwhile. The next budget check does not
 * wait for them: the cost module checks at once and, only when that check is refused, waits
 * for the settlements it has in flight and checks again, so that a refusal is never caused by
 * a worst case already known to be smaller.
 */
const settlementsInFlight = new Set<Promise<void>>();

/**
 * @internal Track a settlement (a promise that never rejects) until it is done: {@link settled}
 * waits for it. An adapter tracks here what may still settle a call after the host has its
 * answer (a prepared request not sent yet).
 */
export function trackSettlement(work: Promise<void>): void {
  settlementsInFlight.add(work);
  const done = () => settlementsInFlight.delete(work);
  void work.then(done, done);
}

/**
 * Audit events not yet taken by the audit sink (written, or spooled while the database is
 * away), and those still waiting for their parent's receipt (`llm.result` for its `llm.call`).
 */
const eventsInFlight = new Set<Promise<unknown>>();

function trackEvent(logged: Promise<unknown>): void {
  eventsInFlight.add(logged);
  const done = () => eventsInFlight.delete(logged);
  void logged.then(done, done);
}

/** The longest `settled()` waits by default, in ms. */
const SETTLED_TIMEOUT_MS = 30_000;
/** The longest wait `settled()` accepts, in ms (a day). */
const MAX_SETTLED_TIMEOUT_MS = 86_400_000;

/**
 * Resolves when every governed call of this process has settled its usage with the cost
 * module and handed its audit events (`llm.*`, and the `tool.*` of governed tools) to the
 * audit sink (written, or spooled while the database is away) — a wrapped call returns to the
 * host before that — or when `timeoutMs` has passed: an audit sink or a database that never
 * answers does not hold the process for ever. Await it before reading spend right after a
 * call, and before closing the modules yourself; `GovernanceSDK.close()` awaits it.
 *
 * @param options.timeoutMs How long to wait at most, in whole ms (0 to a day). @default 30000
 * @returns How many settlements and events were still in flight when it stopped waiting: 0
 *   when everything settled.
 * @throws {InvalidArgumentError} a `timeoutMs` that is not whole milliseconds from 0 to a day.
 *
 * @example
 * const reply = await openai.chat.completions.create({ model: "gpt-4o", messages });
 * await settled();
 * console.log(await cost.snapshot(agentId, sessionId));
 */
export async function settled(options: { timeoutMs?: number } = {}): Promise<number> {
  const timeoutMs = options?.timeoutMs ?? SETTLED_TIMEOUT_MS;
  if (!Number.isInteger(timeoutMs) || timeoutMs < 0 || timeoutMs > MAX_SETTLED_TIMEOUT_MS)
    throw new InvalidArgumentError(
      "timeoutMs",
      `must be whole milliseconds from 0 to ${MAX_SETTLED_TIMEOUT_MS}, got ${typeof timeoutMs === "number" ? timeoutMs : typeOf(timeoutMs)}.`,
      "Pass settled({ timeoutMs: 30_000 }), or leave it out.",
    );
  const pending = () => settlementsInFlight.size + eventsInFlight.size;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<"expired">((resolve) => {
    timer = setTimeout(() => resolve("expired"), timeoutMs);
    timer.unref?.();
  });
  try {
    while (pending() > 0) {
      const outcome = await Promise.race([
        Promise.all([...settlementsInFlight, ...eventsInFlight]),
        expired,
      ]);
      if (outcome === "expired") break;
    }
  } finally {
    clearTimeout(timer);
  }
  return pending();
}

/** A model call about to be made. */
export interface CallRequest {
  /** The client operation, e.g. `chat.completions.create`. */
  operation: string;
  model: string;
  /** The call's output ceiling (`max_tokens`, `max_completion_tokens`, `max_output_tokens`). */
  maxTokens?: number;
  stream: boolean;
  /**
   * The prompt as sent (messages, instructions, system): the input-token estimate is read
   * from it ({@link estimateInputTokens}), and it is recorded only with `recordContent`.
   */
  input?: unknown;
  /** The completions the call asks for (OpenAI's `n`): the output ceiling is `choices × maxTokens`. @default 1 */
  choices?: number;
}

/**
 * UTF-8 bytes of a value as a provider serializes it: strings by their UTF-8 length, binary
 * parts (`Uint8Array`, `ArrayBuffer`) by their size, numbers and booleans by their text, plus
 * the punctuation and keys of objects and arrays. An object with a `toJSON` counts as what it
 * returns (as the client serializes it); past depth 64, a value counts as its JSON. Cycles
 * count 0 (the client cannot send them either).
 */
function utf8Bytes(input: unknown, seen: Set<object> = new Set(), depth = 0, key = ""): number {
  // as JSON.stringify: a value's toJSON is applied once, not to what it returns
  const toJSON = (input as { toJSON?: unknown } | null | undefined)?.toJSON;
  const value: unknown = typeof toJSON === "function" ? toJSON.call(input, key) : input;
  if (value === null || value === undefined) return 4;
  if (typeof value === "string") return Buffer.byteLength(value, "utf8") + 2;
  if (typeof value === "number" || typeof value === "boolean" || typeof value === "bigint")
    return String(value).length;
  if (typeof value !== "object" || seen.has(value)) return 0;
  if (ArrayBuffer.isView(value) || value instanceof ArrayBuffer) return value.byteLength;
  if (depth > 64) return jsonBytes(value);
  seen.add(value);
  let bytes = 2;
  if (Array.isArray(value))
    value.forEach((item, index) => {
      bytes += utf8Bytes(item, seen, depth + 1, String(index)) + 1;
    });
  else
    for (const [name, item] of Object.entries(value))
      bytes += Buffer.byteLength(name, "utf8") + 4 + utf8Bytes(item, seen, depth + 1, name);
  seen.delete(value);
  return bytes;
}

/** UTF-8 bytes of a value's JSON; 0 for a value JSON cannot hold (nor the client send). */
function jsonBytes(value: unknown): number {
  try {
    return Buffer.byteLength(JSON.stringify(value) ?? "", "utf8");
  } catch {
    return 0;
  }
}

/** The most input tokens one estimate projects (`@gov/cost`'s limit for one count). */
const MAX_ESTIMATED_TOKENS = 10_000_000_000;

/**
 * The input-token estimate of a request: **one token per UTF-8 byte** of its prompt parts and
 * of the tools it offers, serialized. An upper bound for text: every byte-level BPE tokenizer
 * in use (OpenAI's, Anthropic's) emits tokens of at least one byte, and the serialization's
 * keys and punctuation outweigh the few tokens a provider adds per message. It is not an
 * upper bound for media passed by reference (an image URL or a file id, which the provider
 * turns into hundreds of tokens); inline media (base64, bytes) are over-counted. Typical
 * English runs about four bytes per token, so the estimate is about 4× the real count: the
 * reservation is released as soon as the real usage is known, and only a call whose usage
 * never arrives is charged it.
 */
export function estimateInputTokens(request: CallRequest, tools: readonly unknown[] = []): number {
  const bytes = utf8Bytes(request.input) + (tools.length === 0 ? 0 : utf8Bytes(tools));
  return Math.min(bytes, MAX_ESTIMATED_TOKENS);
}

/**
 * Call a logger method, swallowing what it throws: observation never breaks the host, and a
 * failing logger is the last resort, so its own failure is dropped.
 */
export function safeLog(
  logger: Logger,
  level: "debug" | "info" | "warn" | "error",
  message: string,
  context?: Record<string, unknown>,
): void {
  try {
    logger[level](message, context);
  } catch {
    // the logger is the last resort: nothing is left to report its failure to
  }
}

/**
 * Bytes of one recorded metadata value, in JSON. The audit module refuses a value over 8 KiB
 * (and 64 KiB in all); this leaves room for its sanitizing and for the other keys.
 */
const RECORDED_VALUE_BYTES = 6 * 1024;

/**
 * Levels of objects and arrays in one recorded value. The audit module refuses metadata
 * nested more than 32 levels (the metadata object is the first); deeper content is recorded
 * as its JSON text instead.
 */
const RECORDED_VALUE_DEPTH = 24;

/** Levels of objects and arrays in a value (0 for a scalar), counted up to `stop`. */
function depthOf(value: unknown, stop = RECORDED_VALUE_DEPTH + 1, level = 0): number {
  if (typeof value !== "object" || value === null || level >= stop) return level;
  let deepest = level + 1;
  for (const item of Object.values(value)) {
    deepest = Math.max(deepest, depthOf(item, stop, level + 1));
    if (deepest >= stop) break;
  }
  return deepest;
}

/** A value recorded in audit metadata, cut to fit when it is too large. */
interface Fitted {
  /** The value, or (cut) the start of its JSON. */
  value: unknown;
  /** SHA-256 (hex) of the whole value's JSON. */
  sha256: string;
  /** Present when the value was cut: its full size. */
  cut?: { bytes: number; recordedBytes: number };
}

/** JSON of a value for recording; a value JSON cannot hold is described instead. */
function jsonOf(value: unknown): string {
  try {
    return JSON.stringify(value) ?? "null";
  } catch (error) {
    return JSON.stringify({ unserializable: describe(error) });
  }
}

/** The longest start of `text` whose JSON string is at most `limit` bytes. */
function prefixFitting(text: string, limit: number): string {
  let bytes = 2;
  let end = 0;
  for (const char of text) {
    const size = Buffer.byteLength(JSON.stringify(char), "utf8") - 2;
    if (bytes + size > limit) break;
    bytes += size;
    end += char.length;
  }
  return text.slice(0, end);
}

/**
 * Fit a value into one audit metadata value: kept as is when its JSON is small enough (and
 * not too deeply nested), otherwise replaced by the start of its JSON (a string), with its
 * full size. The hash is of the whole JSON either way.
 */
export function fitForAudit(value: unknown, limit = RECORDED_VALUE_BYTES): Fitted {
  const json = jsonOf(value);
  const bytes = Buffer.byteLength(json, "utf8");
  const sha256 = createHash("sha256").update(json).digest("hex");
  if (bytes <= limit && depthOf(value) <= RECORDED_VALUE_DEPTH) return { value, sha256 };
  const recorded = prefixFitting(json, limit);
  return {
    value: recorded,
    sha256,
    cut: { bytes, recordedBytes: Buffer.byteLength(recorded, "utf8") },
  };
}

/** Tool names as recorded: all of them when they fit, else the first ones and the count. */
function fitNames(names: readonly string[]): { names: string[]; cut?: Record<string, unknown> } {
  const kept: string[] = [];
  let bytes = 2;
  for (const name of names) {
    const size = Buffer.byteLength(JSON.stringify(name), "utf8") + 1;
    if (bytes + size > RECORDED_VALUE_BYTES) break;
    bytes += size;
    kept.push(name);
  }
  if (kept.length === names.length) return { names: kept };
  return {
    names: kept,
    cut: {
      total: names.length,
      recorded: kept.length,
      sha256: createHash("sha256").update(JSON.stringify(names)).digest("hex"),
    },
  };
}

/** A tool as offered to the model, with the name scope knows it by. */
export interface NamedTool<T> {
  name: string;
  tool: T;
}

/** Why a stream was reconciled, as `@gov/cost` records it. */
const RECONCILE_REASONS: Record<CallEnd, string> = {
  completed: "completed",
  abandoned: "abandoned",
  aborted: "cancelled",
  failed: "error",
  refused: "refused",
};

/** How a call ended, for its `llm.result` event. */
export type CallEnd = "completed" | "abandoned" | "aborted" | "failed" | "refused";

/** What a finished call returned. */
export interface CallOutcome {
  usage: ProviderUsageLike | null;
  finishReason: string | null;
  /** The answer, recorded only with `recordContent`. */
  output?: unknown;
  /** The tool calls the model returned that were removed (out of scope). */
  removedToolCalls?: readonly string[];
}

/**
 * One wrapped client's governance: its options and ports, and the provider's name
 * (`openai`). Creates a {@link GovernedCall} per call.
 */
export class Governor {
  constructor(
    readonly options: ResolvedWrapOptions,
    readonly provider: string,
  ) {}

  /**
   * Step 1 of every call, before any byte leaves the process: the halt check, the model
   * against the agent's scope, the tools offered filtered (hidden ones removed), and the
   * budget checked and reserved. Then the `llm.call` event is handed to the audit sink
   * (not awaited: the sink makes it durable or spools it; see the README).
   *
   * @returns The call, and the tools that may be offered.
   * @throws {AgentHaltedError} · the scope module's `ScopeViolation` / `PolicyNotRegistered` ·
   *   the cost module's `BudgetExceeded`; nothing was sent.
   */
  async admit<T>(
    request: CallRequest,
    tools: readonly NamedTool<T>[] | null,
  ): Promise<{ call: GovernedCall; tools: T[] | null }> {
    const { ports, agentId } = this.options;
    await ports.halt.assertAlive(agentId, { path: `${this.provider}.${request.operation}` });
    let offered: NamedTool<T>[] | null = tools === null ? null : [...tools];
    if (ports.scope !== null) {
      await ports.scope.check(agentId, { model: request.model });
      if (offered !== null && offered.length > 0) {
        const kept = new Set(
          ports.scope.filterTools(
            agentId,
            offered.map((named) => ({ name: named.name, named })),
          ),
        );
        const hidden = offered.length - kept.size;
        offered = [...kept].map((entry) => entry.named);
        return this.#reserve(request, offered, hidden);
      }
    }
    return this.#reserve(request, offered, 0);
  }

  async #reserve<T>(
    request: CallRequest,
    offered: NamedTool<T>[] | null,
    hidden: number,
  ): Promise<{ call: GovernedCall; tools: T[] | null }> {
    const { ports, agentId, sessionId } = this.options;
    let reservationId: string | null = null;
    let reservedTokens: number | null = null;
    const inputTokens = estimateInputTokens(
      request,
      offered === null ? [] : offered.map((named) => named.tool),
    );
    const maxTokens = outputCeiling(request);
    if (ports.cost !== null) {
      const choices = choicesOf(request);
      const reservation = await ports.cost.checkOrRaise(agentId, sessionId, {
        model: request.model,
        inputTokens,
        // without a ceiling, the module's default is projected once per completion
        ...(maxTokens === undefined ? (choices > 1 ? { choices } : {}) : { maxTokens }),
      });
      reservationId = reservation.reservationId;
      // @gov/cost's reservation says how many tokens it holds; the port does not require it
      const tokens = (reservation as { tokens?: unknown }).tokens;
      if (typeof tokens === "number" && Number.isFinite(tokens)) reservedTokens = tokens;
    }
    const call = new GovernedCall(this, request, reservationId, {
      inputTokens,
      outputTokens:
        maxTokens ?? (reservedTokens === null ? null : Math.max(0, reservedTokens - inputTokens)),
    });
    this.#cover("call");
    call.logCall(offered === null ? [] : offered.map((named) => named.name), hidden);
    return { call, tools: offered === null ? null : offered.map((named) => named.tool) };
  }

  /**
   * A client was wrapped: recorded in the coverage registry (`wrapped`) and in the audit chain
   * (`wrapper.registered`, with `details` such as the operations governed). Never throws.
   */
  registered(details: Record<string, unknown> = {}): void {
    const { agentId, sessionId } = this.options;
    this.#cover("wrapped");
    void this.log({
      agentId,
      kind: "wrapper.registered",
      sessionId,
      metadata: { provider: this.provider, ...details },
    });
  }

  /** Record the client in the coverage registry; a registry that throws is logged. */
  #cover(event: "wrapped" | "call"): void {
    const { ports, agentId } = this.options;
    try {
      ports.coverage.record(agentId, this.provider, event);
    } catch (error) {
      this.report("could not record coverage.", error);
    }
  }

  /** Log a failure of observation through the logger, which may fail too (then dropped). */
  report(message: string, error: unknown, context: Record<string, unknown> = {}): void {
    safeLog(this.options.ports.logger, "error", `@gov/wrappers: ${message}`, {
      ...context,
      error: describe(error),
    });
  }

  /** `content` as the audit chain may hold it: nothing unless `recordContent`, then redacted. */
  recordable(part: ContentToRedact["part"], operation: string, content: unknown): unknown {
    const { recordContent, redact } = this.options;
    if (!recordContent || content === undefined) return undefined;
    if (redact === null) return content;
    let copy: unknown;
    try {
      // the hook gets a copy: redacting in place must not change what the model receives
      copy = copyOf(content);
    } catch (error) {
      this.report(
        `the ${part} could not be copied for the redact hook; it was not recorded.`,
        error,
      );
      return undefined;
    }
    try {
      return redact({ part, provider: this.provider, operation, content: copy });
    } catch (error) {
      this.report(`the redact hook threw; the ${part} was not recorded.`, error);
      return undefined;
    }
  }

  /** Hand an event to the audit sink without awaiting it; a failure is logged, never thrown. */
  log(
    event: Parameters<ResolvedWrapOptions["ports"]["audit"]["log"]>[0],
  ): Promise<AuditReceipt | null> {
    const { ports } = this.options;
    let logged: Promise<AuditReceipt | null>;
    try {
      logged = Promise.resolve(ports.audit.log(event)).then(
        (receipt) => receipt ?? null,
        (error: unknown) => {
          this.report(`could not audit ${event.kind}.`, error);
          return null;
        },
      );
    } catch (error) {
      this.report(`could not audit ${event.kind}.`, error);
      return Promise.resolve(null);
    }
    trackEvent(logged);
    return logged;
  }

  /**
   * Audit an event once its parent's receipt is in (e.g. `tool.result` under its `tool.call`),
   * never awaited by the caller; `settled()` waits for it.
   */
  logAfter(
    parent: Promise<AuditReceipt | null>,
    event: (receipt: AuditReceipt | null) => Parameters<Governor["log"]>[0],
  ): void {
    trackEvent(parent.then((receipt) => this.log(event(receipt))));
  }
}

/** A short, secret-free description of an error for logs and audit metadata. */
export function describe(error: unknown): Record<string, unknown> {
  if (typeof error !== "object" || error === null) return { type: typeof error };
  const record = error as Record<string, unknown>;
  return {
    type: (error as Error).constructor?.name ?? "Error",
    ...(typeof record.name === "string" ? { name: record.name } : {}),
    ...(typeof record.code === "string" ? { code: record.code } : {}),
    ...(typeof record.status === "number" ? { status: record.status } : {}),
  };
}

/**
 * A deep copy of content for the redact hook: a structured clone, or, for content a clone
 * refuses (a `URL` part of an AI SDK prompt), its JSON form. Throws when neither works.
 */
function copyOf(content: unknown): unknown {
  try {
    return structuredClone(content);
  } catch {
    return JSON.parse(JSON.stringify(content) ?? "null");
  }
}

/** What settling a call returned, as recorded in `llm.result`. */
interface SettleReceipt {
  usd?: unknown;
  tokens?: unknown;
  /** Present when the call was charged its worst case (no usage, or an unreadable one). */
  charged?: Record<string, unknown>;
}

/** How a call is settled: its usage, its worst case, or a stream's reconciliation. */
type SettlePlan =
  | { usage: ProviderUsageLike }
  | { worstCase: string }
  | {
      reconcile: {
        chunks: number;
        reason: string;
        usage?: ProviderUsageLike;
        inputTokens?: number;
      };
    };

/** What `llm.result` records, read when the call returns; the settlement adds its receipt. */
interface ResultMetadata {
  outputHash: string | undefined;
  metadata: { end: CallEnd; usage: unknown } & Record<string, unknown>;
}

/** The cost module's receipt, as far as `llm.result` records it. */
function receiptOf(receipt: unknown): SettleReceipt | null {
  return typeof receipt === "object" && receipt !== null ? (receipt as SettleReceipt) : null;
}

/** True for an abort the caller asked for (an `AbortSignal`, the client's user abort). */
export function isAbort(error: unknown): boolean {
  const name = (error as { name?: unknown } | null)?.name;
  return name === "AbortError" || name === "APIUserAbortError";
}

/** The completions a request asks for: its `choices` when a whole number above 1 (at most 1,000), else 1. */
function choicesOf(request: CallRequest): number {
  const choices = request.choices;
  return typeof choices === "number" && Number.isInteger(choices) && choices > 1
    ? Math.min(choices, 1_000)
    : 1;
}

/** The output ceiling of a request: `choices × maxTokens` (undefined without `maxTokens`). */
function outputCeiling(request: CallRequest): number | undefined {
  if (request.maxTokens === undefined) return undefined;
  return Math.min(request.maxTokens * choicesOf(request), MAX_ESTIMATED_TOKENS);
}

/** What a call was admitted with: its worst case, charged when its usage is never known. */
export interface WorstCase {
  /** The input-token estimate ({@link estimateInputTokens}). */
  inputTokens: number;
  /** The output ceiling (`choices × maxTokens`, or what the reservation holds beyond the input); null when unknown. */
  outputTokens: number | null;
}

/**
 * One admitted call: it settles its reservation exactly once (usage, reconcile or release),
 * checks the tool calls the model returned, and writes `llm.result` / `llm.error`.
 */
export class GovernedCall {
  #settled = false;
  #callEvent: Promise<AuditReceipt | null> = Promise.resolve(null);
  // performance.now() measures the call's duration (not an instant): no injected clock needed.
  readonly #startedAt = performance.now();

  constructor(
    readonly governor: Governor,
    readonly request: CallRequest,
    readonly reservationId: string | null,
    readonly worstCase: WorstCase = {
      inputTokens: estimateInputTokens(request),
      outputTokens: outputCeiling(request) ?? null,
    },
  ) {}

  get #o() {
    return this.governor.options;
  }

  /**
   * @internal Step 2: the `llm.call` event (not awaited). Content and long tool lists are cut
   * to fit the audit module's limits (`inputCut` / `toolsCut` say what was cut), and the
   * input's SHA-256 goes in `inputHash`, so that the event is always written.
   */
  logCall(tools: string[], hidden: number): void {
    const input = this.governor.recordable("input", this.request.operation, this.request.input);
    const fittedInput = input === undefined ? null : fitForAudit(input);
    const fittedTools = fitNames(tools);
    this.#callEvent = this.governor.log({
      agentId: this.#o.agentId,
      kind: "llm.call",
      sessionId: this.#o.sessionId,
      model: this.request.model,
      ...(fittedInput === null ? {} : { inputHash: fittedInput.sha256 }),
      metadata: {
        provider: this.governor.provider,
        operation: this.request.operation,
        stream: this.request.stream,
        tools: fittedTools.names,
        ...(fittedTools.cut === undefined ? {} : { toolsCut: fittedTools.cut }),
        ...(hidden > 0 ? { hiddenToolsRemoved: hidden } : {}),
        ...(this.request.maxTokens === undefined ? {} : { maxTokens: this.request.maxTokens }),
        ...(this.request.choices === undefined ? {} : { choices: this.request.choices }),
        estimatedInputTokens: this.worstCase.inputTokens,
        reservationId: this.reservationId,
        ...(fittedInput === null ? {} : { input: fittedInput.value }),
        ...(fittedInput?.cut === undefined ? {} : { inputCut: fittedInput.cut }),
      },
    });
  }

  #elapsedMs(): number {
    return Math.round(performance.now() - this.#startedAt);
  }

  #logAfterCall(kind: string, metadata: Record<string, unknown>, outputHash?: string): void {
    const { agentId, sessionId } = this.#o;
    // Written once llm.call has its receipt (its id is the parent); settled() waits for it.
    const logged = this.#callEvent.then((receipt) =>
      this.governor.log({
        agentId,
        kind,
        sessionId,
        model: this.request.model,
        parentEventId: receipt?.eventId || null,
        ...(outputHash === undefined ? {} : { outputHash }),
        metadata: {
          provider: this.governor.provider,
          operation: this.request.operation,
          stream: this.request.stream,
          durationMs: this.#elapsedMs(),
          ...metadata,
        },
      }),
    );
    trackEvent(logged);
  }

  /** Run a settlement after the call returned, tracked for {@link settled}; never rejects. */
  #inBackground(work: () => Promise<void>): void {
    const running = work().catch((error: unknown) =>
      this.governor.report("could not settle a model call.", error),
    );
    trackSettlement(running);
  }

  /**
   * Step 3, on error: `llm.error` and the reservation released, both after the caller has
   * the error back (tracked for {@link settled}). Never throws: the caller rethrows the
   * original error.
   */
  failed(error: unknown): void {
    this.#logAfterCall("llm.error", { error: describe(error) });
    if (this.#settled) return;
    this.#settled = true;
    const { cost } = this.#o.ports;
    const reservationId = this.reservationId;
    if (cost === null || reservationId === null) return;
    this.#inBackground(async () => {
      try {
        await cost.release(reservationId);
      } catch (error) {
        this.governor.report(
          "could not release a failed call's reservation (it expires by itself).",
          error,
        );
      }
    });
  }

  /**
   * Step 4: settle the usage and write `llm.result`, after the host has the response (tracked
   * for {@link settled}; a budget check it would refuse waits for it in the cost module). A
   * response without usage is charged the call's worst case (the input estimate and the
   * output ceiling). What is recorded is read now: the host may change the response later.
   * Never throws.
   */
  succeeded(outcome: CallOutcome, end: CallEnd = "completed"): void {
    const result = this.#resultMetadata(outcome, end);
    const plan = this.#plan(() =>
      outcome.usage === null ? { worstCase: "no_usage" } : { usage: outcome.usage },
    );
    this.#inBackground(async () => {
      const receipt = await this.#settle(plan);
      this.#logResult(result, receipt);
    });
  }

  /**
   * Step 5: a stream that ended without usage, or was cut: reconcile from what was received
   * (the input estimate, and 8 output tokens per chunk); a stream that completed without
   * usage is charged the call's worst case. In the background, as {@link succeeded}. Never
   * throws.
   */
  reconciled(outcome: CallOutcome, end: CallEnd, chunks: number, error?: unknown): void {
    const result = end === "failed" ? null : this.#resultMetadata(outcome, end, chunks);
    const plan = this.#plan(() =>
      outcome.usage !== null && end === "completed"
        ? { usage: outcome.usage }
        : outcome.usage === null && end === "completed"
          ? { worstCase: "no_usage" }
          : {
              reconcile: {
                chunks,
                reason: RECONCILE_REASONS[end],
                ...(outcome.usage === null
                  ? { inputTokens: this.worstCase.inputTokens }
                  : { usage: outcome.usage }),
              },
            },
    );
    const failure = end === "failed" ? describe(error) : null;
    this.#inBackground(async () => {
      const receipt = await this.#settle(plan);
      if (result === null)
        this.#logAfterCall("llm.error", { error: failure, chunks, usd: receipt?.usd ?? null });
      else this.#logResult(result, receipt);
    });
  }

  /** What `llm.result` records of a call's outcome, read when the call returns. */
  #resultMetadata(outcome: CallOutcome, end: CallEnd, chunks?: number): ResultMetadata {
    const output = this.governor.recordable("output", this.request.operation, outcome.output);
    const fittedOutput = output === undefined ? null : fitForAudit(output);
    const removed = outcome.removedToolCalls ? fitNames(outcome.removedToolCalls) : null;
    return {
      outputHash: fittedOutput?.sha256,
      metadata: {
        end,
        usage: outcome.usage === null ? null : fitForAudit(outcome.usage, 2048).value,
        finishReason: outcome.finishReason,
        ...(chunks === undefined ? {} : { chunks }),
        ...(removed !== null && removed.names.length > 0
          ? { removedToolCalls: removed.names }
          : {}),
        ...(removed?.cut === undefined ? {} : { removedToolCallsCut: removed.cut }),
        ...(fittedOutput === null ? {} : { output: fittedOutput.value }),
        ...(fittedOutput?.cut === undefined ? {} : { outputCut: fittedOutput.cut }),
      },
    };
  }

  #logResult(result: ResultMetadata, receipt: SettleReceipt | null): void {
    const { end, usage, ...rest } = result.metadata;
    this.#logAfterCall(
      "llm.result",
      {
        end,
        usage,
        ...(typeof receipt?.usd === "number" ? { usd: receipt.usd } : {}),
        ...(receipt?.charged === undefined ? {} : { charged: receipt.charged }),
        ...rest,
      },
      result.outputHash,
    );
  }

  /** The worst case as token counts for `trackUsage` / `reconcile`. */
  #worstCounts(): { inputTokens: number; outputTokens?: number } {
    const { inputTokens, outputTokens } = this.worstCase;
    return outputTokens === null ? { inputTokens } : { inputTokens, outputTokens };
  }

  /**
   * Charge the worst case (a usage that is missing or that the cost module refused): the
   * reservation is reconciled with it, or, without a reservation, it is tracked.
   */
  async #chargeWorstCase(reason: string): Promise<SettleReceipt | null> {
    const { cost } = this.#o.ports;
    if (cost === null) return null;
    const { agentId, sessionId } = this.#o;
    const counts = this.#worstCounts();
    const receipt =
      this.reservationId === null
        ? await cost.trackUsage(agentId, sessionId, {
            model: this.request.model,
            ...counts,
            reservationId: null,
          })
        : await cost.reconcile(agentId, sessionId, {
            model: this.request.model,
            ...counts,
            reservationId: this.reservationId,
            reason,
          });
    return { ...receiptOf(receipt), charged: { worstCase: reason, ...counts } };
  }

  /**
   * How the call is settled, decided (and the call marked settled) when it returns; null when
   * it was settled already or there is no cost module.
   */
  #plan(how: () => SettlePlan): SettlePlan | null {
    if (this.#settled) return null;
    this.#settled = true;
    if (this.#o.ports.cost === null) return null;
    return how();
  }

  async #settle(plan: SettlePlan | null): Promise<SettleReceipt | null> {
    const { cost } = this.#o.ports;
    if (plan === null || cost === null) return null;
    const { agentId, sessionId } = this.#o;
    const reservationId = this.reservationId;
    try {
      if ("worstCase" in plan) return await this.#chargeWorstCase(plan.worstCase);
      if ("usage" in plan)
        return receiptOf(
          await cost.trackUsage(agentId, sessionId, {
            model: this.request.model,
            usage: plan.usage,
            reservationId,
          }),
        );
      // reconcile settles a reservation: without one (no budget), the counts are tracked
      if (reservationId === null)
        return receiptOf(
          await cost.trackUsage(agentId, sessionId, {
            model: this.request.model,
            ...(plan.reconcile.usage === undefined
              ? {
                  inputTokens: plan.reconcile.inputTokens ?? 0,
                  outputTokens: plan.reconcile.chunks * 8,
                }
              : { usage: plan.reconcile.usage }),
            reservationId: null,
          }),
        );
      return receiptOf(
        await cost.reconcile(agentId, sessionId, {
          model: this.request.model,
          ...plan.reconcile,
          reservationId,
        }),
      );
    } catch (error) {
      // The usage could not be read or priced: charge the worst case the call was admitted
      // with, never zero. If that fails too, the reservation stays held until it expires.
      this.governor.report(
        "could not record a model call's usage; charging its worst case.",
        error,
        {
          agentId,
          model: this.request.model,
        },
      );
      if ("worstCase" in plan) return null;
      try {
        return await this.#chargeWorstCase("unreadable_usage");
      } catch (again) {
        this.governor.report(
          "could not charge a model call's worst case; its reservation is held until it expires.",
          again,
          { agentId, model: this.request.model },
        );
        return null;
      }
    }
  }

  /**
   * Check a tool call the model returned against the agent's scope. Resolves true when it may
   * be shown to the host, false when it must be removed (audited); throws
   * {@link ToolCallOutOfScopeError} with `onToolOutOfScope: "throw"`, and `AgentHaltedError`
   * when the agent was halted meanwhile.
   */
  async allowToolCall(name: string): Promise<boolean> {
    const { ports, agentId, sessionId, onToolOutOfScope } = this.#o;
    if (ports.scope === null) return true;
    try {
      await ports.scope.check(agentId, { tool: name });
      return true;
    } catch (error) {
      if (AgentHaltedError.isInstance(error)) throw error;
      // evidence of the refusal: settled() (and so close()) waits for it, as for llm.result
      trackEvent(
        this.governor.log({
          agentId,
          kind: "llm.tool_call_blocked",
          sessionId,
          model: this.request.model,
          metadata: {
            provider: this.governor.provider,
            operation: this.request.operation,
            tool: name,
            action: onToolOutOfScope === "throw" ? "refused" : "removed",
            reason: describe(error),
          },
        }),
      );
      if (onToolOutOfScope === "throw") throw new ToolCallOutOfScopeError(agentId, name, error);
      return false;
    }
  }
}
