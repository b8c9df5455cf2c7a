import { createHash } from "node:crypto";
import canonicalize from "canonicalize";
import { describeValue, typeOf } from "./describe";
import { InvalidArgumentError } from "./errors";

/** A value that has one canonical JSON form. */
export type JsonValue =
  | null
  | boolean
  | number
  | string
  | JsonValue[]
  | { [key: string]: JsonValue };

/** The class of an object that is not plain data, by its constructor's name ("Map"). */
function className(value: object): string {
  return value.constructor?.name ?? "object";
}

function check(value: unknown, path: string, seen: Set<object>): void {
  switch (typeof value) {
    case "string":
    case "boolean":
      return;
    case "number":
      if (!Number.isFinite(value)) {
        throw new InvalidArgumentError(
          path,
          `is ${describeValue(value)}, which JSON cannot represent.`,
          "Use a finite number, or a string.",
        );
      }
      return;
    case "object": {
      if (value === null) return;
      if (seen.has(value))
        throw new InvalidArgumentError(
          path,
          "refers to itself (a cycle).",
          "Pass a tree of plain values.",
        );
      if (value instanceof Date) {
        if (Number.isNaN(value.getTime()))
          throw new InvalidArgumentError(
            path,
            "is an invalid Date.",
            "Pass a valid Date or an ISO string.",
          );
        return;
      }
      seen.add(value);
      if (Array.isArray(value)) {
        for (const [index, item] of value.entries()) check(item, `${path}[${index}]`, seen);
      } else {
        const prototype = Object.getPrototypeOf(value);
        if (prototype !== Object.prototype && prototype !== null) {
          throw new InvalidArgumentError(
            path,
            `is a ${className(value)}, which has no single JSON form.`,
            "Convert it to a plain object, array, string or number first.",
          );
        }
        for (const [key, item] of Object.entries(value)) {
          if (item === undefined) continue;
          check(item, `${path}.${key}`, seen);
        }
      }
      seen.delete(value);
      return;
    }
    default:
      throw new InvalidArgumentError(
        path,
        `is ${typeOf(value)}, which JSON cannot represent.`,
        "Pass only JSON values.",
      );
  }
}

/**
 * The RFC 8785 (JSON Canonicalization Scheme) form of `value`: object keys sorted by UTF-16
 * code units, numbers in their shortest ECMAScript form, no whitespace. Two parties that
 * canonicalize the same data get the same bytes, so it can be hashed and signed.
 *
 * Only JSON values are accepted (plain objects, arrays, strings, finite numbers, booleans,
 * null; Dates become ISO strings; object properties that are `undefined` are left out).
 * Anything else — a `Map`, a class instance, `NaN`, a `bigint`, a cycle — is refused
 * rather than silently mangled.
 *
 * @example
 * ```ts
 * canonicalJson({ b: 1, a: [true, null] }); // '{"a":[true,null],"b":1}'
 * ```
 * @param field Name of the value in error messages. @default "value"
 * @throws {InvalidArgumentError} naming the path of the first unsupported value.
 */
export function canonicalJson(value: unknown, field = "value"): string {
  check(value, field, new Set());
  const text = canonicalize(value);
  if (text === undefined) {
    throw new InvalidArgumentError(field, "has no JSON form.", "Pass a JSON value.");
  }
  return text;
}

/** SHA-256 (hex) of the canonical JSON form of `value`. */
export function canonicalJsonHash(value: unknown, field = "value"): string {
  return createHash("sha256").update(canonicalJson(value, field), "utf8").digest("hex");
}
