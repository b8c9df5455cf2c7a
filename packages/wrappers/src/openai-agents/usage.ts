/**
 * `settleRunUsage`: the usage an Agents SDK run recorded (`result.state.usage`) settled against
 * the budgets, for a run whose model calls were not governed (a model that is not an OpenAI
 * client's: `governAgent` without `client`).
 * @module
 */
import { InvalidArgumentError, typeOf } from "@gov/core";
import { Governor } from "../governed-call";
import { resolveWrapOptions, type WrapOptions } from "../options";

/** The options of {@link settleRunUsage}: the wrapper options, and the model the run used. */
export type SettleRunUsageOptions = Omit<WrapOptions, "onToolOutOfScope"> & {
  /** The model the run's calls are priced as (the price table's name, e.g. `gpt-4o`). */
  model: string;
};

/** One model call's usage as the SDK records it (`RequestUsage`), or the run's total (`Usage`). */
interface UsageLike {
  inputTokens?: number;
  outputTokens?: number;
  totalTokens?: number;
  inputTokensDetails?: Record<string, number> | Record<string, number>[];
  outputTokensDetails?: Record<string, number> | Record<string, number>[];
  requestUsageEntries?: UsageLike[];
}

/** A detail summed over the SDK's per-request details (an array) or read from one record. */
function detail(details: UsageLike["inputTokensDetails"], name: string): number {
  const records = Array.isArray(details) ? details : details === undefined ? [] : [details];
  return records.reduce((sum, record) => sum + (Number(record?.[name]) || 0), 0);
}

/** The usage in the Responses API's shape, which the cost module reads (cached and reasoning included). */
function responsesUsage(usage: UsageLike): Record<string, unknown> {
  const input = usage.inputTokens ?? 0;
  const output = usage.outputTokens ?? 0;
  return {
    input_tokens: input,
    input_tokens_details: { cached_tokens: detail(usage.inputTokensDetails, "cached_tokens") },
    output_tokens: output,
    output_tokens_details: {
      reasoning_tokens: detail(usage.outputTokensDetails, "reasoning_tokens"),
    },
    total_tokens: usage.totalTokens ?? input + output,
  };
}

/**
 * Settle the usage an Agents SDK run recorded against the agent's budgets (`cost.trackUsage`,
 * one record per model call when the SDK kept them, else one for the run), and audit it as
 * `agent.usage`. For runs whose model calls were **not** governed: nothing was reserved before
 * them, so a budget is enforced only from the next call on. A run whose model is an OpenAI
 * client's should be governed with `governAgent`'s `client` instead (each call reserved and
 * settled): settling its usage here as well would charge it twice.
 *
 * @example
 * ```ts
 * const result = await run(governed, input);
 * await settleRunUsage(result, { governance: sdk, agentId, sessionId, model: "gpt-4o" });
 * ```
 * @returns How many usage records were settled.
 * @throws {InvalidArgumentError} `result` is not a run's result (or its `RunState`), or no
 *   `model` · `InvalidWrapperOptionsError` for the other options · the cost module's errors.
 */
export async function settleRunUsage(
  result: unknown,
  options: SettleRunUsageOptions,
): Promise<number> {
  const state = (result as { state?: unknown } | null)?.state ?? result;
  const usage = (state as { usage?: UsageLike } | null)?.usage;
  if (typeof usage !== "object" || usage === null)
    throw new InvalidArgumentError(
      "result",
      `must be a run's result (or its RunState), got ${typeOf(result)}.`,
      "Pass what run(agent, input) returned: settleRunUsage(result, options).",
    );
  const { model, ...rest } = options ?? ({} as SettleRunUsageOptions);
  if (typeof model !== "string" || model.length === 0)
    throw new InvalidArgumentError(
      "options.model",
      `must be the model the run used, got ${typeOf(model)}.`,
      'Pass the price table\'s name of the model: { model: "gpt-4o" }.',
    );
  const governor = new Governor(resolveWrapOptions(rest), "openai-agents");
  const { ports, agentId, sessionId } = governor.options;
  const calls = usage.requestUsageEntries?.length ? usage.requestUsageEntries : [usage];
  if (ports.cost !== null)
    for (const call of calls)
      await ports.cost.trackUsage(agentId, sessionId, {
        model,
        usage: responsesUsage(call),
        reservationId: null,
      });
  await governor.log({
    agentId,
    kind: "agent.usage",
    sessionId,
    model,
    metadata: { provider: governor.provider, calls: calls.length, usage: responsesUsage(usage) },
  });
  return ports.cost === null ? 0 : calls.length;
}
