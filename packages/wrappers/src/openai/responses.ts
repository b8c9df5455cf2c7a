/** Responses: function calls, usage and status, whole and streamed. */
import type { ProviderUsageLike } from "@gov/core";
import type { GovernedCall } from "../governed-call";
import type { StreamHooks } from "../governed-stream";
import { isObject, type Json } from "../shapes";
import { hostCallName } from "./shapes";

/**
 * Check and remove, in place, the out-of-scope calls of a whole response that the host runs:
 * function and custom tool calls by their name, `local_shell_call`, `shell_call`,
 * `apply_patch_call` and `computer_call` by their tool's (see `toolName`).
 */
export async function filterResponse(call: GovernedCall, response: Json): Promise<string[]> {
  const removed: string[] = [];
  if (!Array.isArray(response.output)) return removed;
  const kept: unknown[] = [];
  for (const item of response.output) {
    const name = hostCallName(item);
    if (name !== null && !(await call.allowToolCall(name))) removed.push(name);
    else kept.push(item);
  }
  if (kept.length !== response.output.length) response.output = kept;
  return removed;
}

/** Why a response ended: `incomplete_details.reason`, else its `status`. */
export function responseFinishReason(response: Json): string | null {
  const details = response.incomplete_details;
  if (isObject(details) && typeof details.reason === "string") return details.reason;
  return typeof response.status === "string" ? response.status : null;
}

/** A response's `usage`, as the cost module reads it; null when it has none. */
export function responseUsage(response: Json): ProviderUsageLike | null {
  return isObject(response.usage) ? response.usage : null;
}

/**
 * The hooks of a Responses stream: a call the host runs is checked when its item is added, and
 * again whenever a later event (`output_item.done`, the final response) names it otherwise; an
 * out-of-scope one is dropped with every event about it, later items renumbered; usage and
 * status are read from the final `response.*` event, whose output is filtered too.
 */
export function responseStreamHooks(call: GovernedCall): StreamHooks<Json> {
  let usage: ProviderUsageLike | null = null;
  let finish: string | null = null;
  const removed: string[] = [];
  const blockedIndexes: number[] = [];
  const blockedIds = new Set<string>();
  // per item (its id, else its output index): the name checked, and whether it may be shown
  const decisions = new Map<string, { name: string; allowed: boolean }>();
  const shift = (index: number) =>
    index - blockedIndexes.filter((blocked) => blocked < index).length;
  /** Check a call the host runs, once per item and name; a refused item stays refused. */
  const allowed = async (item: Json, index: number, name: string): Promise<boolean> => {
    const key = typeof item.id === "string" ? item.id : `#${index}`;
    const known = decisions.get(key);
    if (known !== undefined && (known.name === name || !known.allowed)) return known.allowed;
    const allow = await call.allowToolCall(name);
    decisions.set(key, { name, allowed: allow });
    if (!allow) {
      removed.push(name);
      blockedIndexes.push(index);
      if (typeof item.id === "string") blockedIds.add(item.id);
    }
    return allow;
  };
  return {
    async onChunk(event) {
      if (!isObject(event)) return event;
      const index = typeof event.output_index === "number" ? event.output_index : null;
      if (index !== null && blockedIndexes.includes(index)) return null;
      if (typeof event.item_id === "string" && blockedIds.has(event.item_id)) return null;
      const name = hostCallName(event.item);
      if (name !== null && index !== null && isObject(event.item)) {
        if (!(await allowed(event.item, index, name))) return null;
      }
      if (index !== null && blockedIndexes.length > 0) event.output_index = shift(index);
      if (isObject(event.response)) {
        const response = event.response;
        if (isObject(response.usage)) usage = response.usage;
        finish = responseFinishReason(response);
        if (Array.isArray(response.output)) {
          const kept: unknown[] = [];
          for (const [position, item] of response.output.entries()) {
            if (isObject(item) && typeof item.id === "string" && blockedIds.has(item.id)) continue;
            const itemName = hostCallName(item);
            if (itemName !== null && isObject(item) && !(await allowed(item, position, itemName)))
              continue;
            kept.push(item);
          }
          if (kept.length !== response.output.length) response.output = kept;
        }
      }
      return event;
    },
    usage: () => usage,
    finishReason: () => finish,
    removedToolCalls: () => removed,
  };
}
