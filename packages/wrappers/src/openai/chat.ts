/** Chat Completions: tool calls, usage and finish reasons, whole and streamed. */
import type { ProviderUsageLike } from "@gov/core";
import type { GovernedCall } from "../governed-call";
import type { StreamHooks } from "../governed-stream";
import { isObject, type Json } from "../shapes";

function callName(call: unknown): string {
  if (!isObject(call)) return "";
  const fn = isObject(call.function) ? call.function : isObject(call.custom) ? call.custom : null;
  return fn !== null && typeof fn.name === "string" ? fn.name : "";
}

/**
 * Check and remove the out-of-scope tool calls of a whole completion, in place. A message left
 * without any tool call has no `tool_calls` at all, and its `finish_reason` ("tool_calls" or
 * "function_call") becomes "stop": the host's loop does not wait for results it will never have.
 */
export async function filterChatCompletion(
  call: GovernedCall,
  completion: Json,
): Promise<string[]> {
  const removed: string[] = [];
  const choices = Array.isArray(completion.choices) ? completion.choices : [];
  for (const choice of choices) {
    const message = isObject(choice) && isObject(choice.message) ? choice.message : null;
    if (message === null) continue;
    const before = removed.length;
    if (Array.isArray(message.tool_calls)) {
      const kept: unknown[] = [];
      for (const toolCall of message.tool_calls) {
        const name = callName(toolCall);
        if (await call.allowToolCall(name)) kept.push(toolCall);
        else removed.push(name);
      }
      if (kept.length === 0) delete message.tool_calls;
      else if (kept.length !== message.tool_calls.length) message.tool_calls = kept;
    }
    if (isObject(message.function_call) && typeof message.function_call.name === "string") {
      const name = message.function_call.name;
      if (!(await call.allowToolCall(name))) {
        removed.push(name);
        delete message.function_call;
      }
    }
    const calls = message.tool_calls;
    const left = (Array.isArray(calls) && calls.length > 0) || isObject(message.function_call);
    if (
      !left &&
      removed.length > before &&
      (choice.finish_reason === "tool_calls" || choice.finish_reason === "function_call")
    )
      choice.finish_reason = "stop";
  }
  return removed;
}

/** The first choice's `finish_reason` of a whole completion (what `llm.result` records). */
export function chatFinishReason(completion: Json): string | null {
  const first = Array.isArray(completion.choices) ? completion.choices[0] : undefined;
  return isObject(first) && typeof first.finish_reason === "string" ? first.finish_reason : null;
}

/** A completion's `usage`, as the cost module reads it; null when it has none. */
export function chatUsage(value: Json): ProviderUsageLike | null {
  return isObject(value.usage) ? value.usage : null;
}

/** True when a choice's stream named tool calls and every one of them was removed. */
function allRemoved(
  map: Map<number, number | null> | undefined,
  functionCall: string | null | undefined,
): boolean {
  const calls = map === undefined ? [] : [...map.values()];
  if (calls.some((value) => value !== null) || typeof functionCall === "string") return false;
  return calls.length > 0 || functionCall === null;
}

/**
 * The hooks of a chat stream: usage read from the final chunk (and that chunk dropped when the
 * host did not ask for usage), tool-call deltas checked when their name arrives and dropped
 * when out of scope, the remaining tool calls renumbered so that accumulators see no holes; a
 * choice whose every tool call was removed finishes with "stop", not "tool_calls".
 */
export function chatStreamHooks(call: GovernedCall, hostAskedUsage: boolean): StreamHooks<Json> {
  let usage: ProviderUsageLike | null = null;
  let finish: string | null = null;
  const removed: string[] = [];
  // per choice index: original tool-call index → new index, or null when removed
  const indexes = new Map<number, Map<number, number | null>>();
  // per choice index, per original tool-call index: the name that was checked
  const names = new Map<number, Map<number, string>>();
  // per choice index: the legacy function_call's checked name, or null when it was removed
  const functionCalls = new Map<number, string | null>();
  return {
    async onChunk(chunk) {
      if (!isObject(chunk)) return chunk;
      if (isObject(chunk.usage)) usage = chunk.usage;
      const choices = Array.isArray(chunk.choices) ? chunk.choices : [];
      if (!hostAskedUsage) {
        if (choices.length === 0 && isObject(chunk.usage)) return null;
        if ("usage" in chunk) delete chunk.usage;
      }
      for (const choice of choices) {
        if (!isObject(choice)) continue;
        const choiceIndex = typeof choice.index === "number" ? choice.index : 0;
        const delta = isObject(choice.delta) ? choice.delta : null;
        if (delta !== null && Array.isArray(delta.tool_calls)) {
          let map = indexes.get(choiceIndex);
          if (map === undefined) {
            map = new Map();
            indexes.set(choiceIndex, map);
          }
          let checked = names.get(choiceIndex);
          if (checked === undefined) {
            checked = new Map();
            names.set(choiceIndex, checked);
          }
          const kept: unknown[] = [];
          for (const part of delta.tool_calls) {
            if (!isObject(part)) continue;
            const index = typeof part.index === "number" ? part.index : 0;
            let mapped = map.get(index);
            if (mapped === undefined) {
              const name = callName(part);
              if (await call.allowToolCall(name)) {
                mapped = [...map.values()].filter((value) => value !== null).length;
              } else {
                mapped = null;
                removed.push(name);
              }
              map.set(index, mapped);
              checked.set(index, name);
            } else if (mapped !== null) {
              // a later delta that names the call again: a new name is checked too, and a refused
              // one is taken out (the host's accumulator keeps the last name it sees)
              const name = callName(part);
              if (name !== "" && name !== checked.get(index) && !(await call.allowToolCall(name))) {
                removed.push(name);
                const fn = isObject(part.function) ? part.function : part.custom;
                if (isObject(fn)) delete fn.name;
              }
            }
            if (mapped === null) continue;
            part.index = mapped;
            kept.push(part);
          }
          if (kept.length !== delta.tool_calls.length) {
            if (kept.length === 0) delete delta.tool_calls;
            else delta.tool_calls = kept;
          }
        }
        if (delta !== null && isObject(delta.function_call)) {
          // the legacy function_call of a `functions` request: checked when (re)named
          const named = delta.function_call.name;
          let state = functionCalls.get(choiceIndex);
          if (typeof named === "string" && named !== "" && state !== null && named !== state) {
            if (await call.allowToolCall(named)) state = named;
            else {
              removed.push(named);
              state = null;
            }
            functionCalls.set(choiceIndex, state);
          }
          if (state === null) delete delta.function_call;
        }
        if (
          (choice.finish_reason === "tool_calls" || choice.finish_reason === "function_call") &&
          allRemoved(indexes.get(choiceIndex), functionCalls.get(choiceIndex))
        )
          choice.finish_reason = "stop";
        if (typeof choice.finish_reason === "string") finish = choice.finish_reason;
      }
      return chunk;
    },
    usage: () => usage,
    finishReason: () => finish,
    removedToolCalls: () => removed,
  };
}
