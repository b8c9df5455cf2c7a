/**
 * Checks of the arguments of the steward's public functions (rule 6: a clear error naming the
 * field, the limit and the fix; the functions that return promises call these inside `async`
 * bodies, so that bad input rejects). Ids are checked by core's `checkId`.
 */
import { describeValue as describe, InvalidArgumentError } from "@gov/core";

/** A string of at most `max` characters (empty allowed), or undefined when `optional`. */
export function requireText(
  value: unknown,
  field: string,
  max: number,
  fix: string,
): asserts value is string | undefined {
  if (value === undefined) return;
  if (typeof value !== "string" || value.length > max) {
    throw new InvalidArgumentError(
      field,
      `must be a string of at most ${max} characters, got ${describe(value)}.`,
      fix,
    );
  }
}

/** A finite number, at least `min` when given. */
export function requireFinite(
  value: unknown,
  field: string,
  fix: string,
  min = Number.NEGATIVE_INFINITY,
): asserts value is number {
  if (typeof value !== "number" || !Number.isFinite(value) || value < min) {
    throw new InvalidArgumentError(
      field,
      `must be a finite number${min > Number.NEGATIVE_INFINITY ? ` ≥ ${min}` : ""}, got ${describe(value)}.`,
      fix,
    );
  }
}

/** A non-empty list of ids (each checked by {@link requireId}), of at most `max` items. */
export function requireIdList(
  value: unknown,
  field: string,
  fix: string,
  max = 1_000,
): asserts value is readonly string[] {
  if (!Array.isArray(value) || value.length === 0 || value.length > max) {
    throw new InvalidArgumentError(
      field,
      `must be a list of 1 to ${max} items, got ${Array.isArray(value) ? `${value.length} items` : describe(value)}.`,
      fix,
    );
  }
  for (const [index, item] of value.entries()) {
    if (typeof item !== "string" || item.length === 0 || item.length > 4_096) {
      throw new InvalidArgumentError(
        `${field}[${index}]`,
        `must be a non-empty string, got ${describe(item)}.`,
        fix,
      );
    }
  }
}

/**
 * A `Store` (an object with `query()`) given to a storage built by hand, or an error naming
 * the class to build with one.
 *
 * @throws {InvalidArgumentError} `INVALID_ARGUMENT`, field `store`.
 */
export function requireStore(value: unknown, owner: string): void {
  if (
    typeof value !== "object" ||
    value === null ||
    typeof (value as { query?: unknown }).query !== "function"
  ) {
    throw new InvalidArgumentError(
      "store",
      `must be a Store (an object with query(), from @gov/core's createStore), got ${describe(value)}.`,
      `Pass new ${owner}(store) the store the steward shares (StewardModule passes context.store), or leave the storage out to keep the state in memory.`,
    );
  }
}
