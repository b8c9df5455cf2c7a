/**
 * What `guard()` checks and what it runs, built from a call's arguments in one walk, so that
 * what runs is what was checked.
 *
 * - **Plain data** (plain objects, arrays, `Map`, `Set`, `Date`, typed arrays and buffers,
 *   boxed primitives, primitives) is copied: every property read once (own properties,
 *   enumerable or not, symbol-keyed or not; a getter becomes the value it returned), and the
 *   copy of objects and arrays frozen. The rules check the copy and the function receives it.
 * - **Class instances** (and other objects with a prototype of their own: `Object.create(p)`,
 *   `Error`, `URL`, …) and **functions** cannot be copied without losing their methods: the
 *   function receives the original, and the rules check a view of it — its own properties,
 *   the data properties and getters it inherits (up to `Object.prototype`, methods left out),
 *   each read once, what `toJSON()` returns and what it iterates (when it can be iterated
 *   again). A getter that returns something else on a later read is outside what a guard can
 *   see.
 * - **Unscannable values** are refused: a `Proxy` (its reads cannot be trusted: it can answer
 *   each read differently and lie about its keys), a promise or other thenable, `WeakRef`,
 *   `WeakMap`, `WeakSet`, `FinalizationRegistry`, a generator or other one-shot iterator, a
 *   `Blob` or a stream (their content is read later, asynchronously).
 */
import { unscannableKind } from "./pii";

/** The items a class instance iterates, in its checked view (a symbol: CEL does not see it). */
export const VIEW_ITEMS: unique symbol = Symbol("items");
/** What a value's `toJSON()` returned, in its checked view. */
export const VIEW_JSON: unique symbol = Symbol("toJSON");

/**
 * Bounds of what one `guard()` call may pass: values (every level), nesting, and characters of
 * text (strings, keys, and bytes of byte arrays, all arguments together). Past them, the
 * arguments are too large to check and the call is denied: scanning text for keywords and
 * personal data costs about a second per megabyte.
 */
export const GUARD_LIMITS = { values: 100_000, depth: 64, textCharacters: 262_144 } as const;

/** What {@link snapshotArguments} built. */
export interface ArgumentsSnapshot {
  /** The arguments as the rules check them: plain data only (no functions, no instances). */
  checked: unknown[];
  /** The arguments as the function receives them. */
  runnable: unknown[];
  /** Why the arguments cannot be checked (an unscannable value, past the limits), or null. */
  problem: string | null;
  /** Whether a class instance or a function is passed as the original (see the notes). */
  instances: boolean;
}

/** The function a checked view stands for (compared by identity). */
const viewedFunctions = new WeakMap<object, unknown>();

const FUNCTION_OWN_SKIPPED = new Set<PropertyKey>([
  "length",
  "name",
  "prototype",
  "caller",
  "arguments",
]);

function isPlainPrototype(prototype: unknown): boolean {
  return prototype === Object.prototype || prototype === null;
}

/**
 * Build what `guard()` checks and what it runs from a call's arguments (see the module
 * notes). Reading a getter or `toJSON` that throws, an unscannable value, or arguments past
 * {@link GUARD_LIMITS} give a `problem` (the call is then denied).
 */
export function snapshotArguments(
  args: readonly unknown[],
  maxTextCharacters: number = GUARD_LIMITS.textCharacters,
): ArgumentsSnapshot {
  let values = 0;
  let characters = 0;
  const text = (length: number): void => {
    characters += length;
    if (characters > maxTextCharacters) {
      refuse(`they hold more than ${maxTextCharacters} characters of text`);
    }
  };
  let instances = false;
  const memo = new Map<object, [unknown, unknown]>();
  class Refused extends Error {}
  const refuse = (reason: string): never => {
    throw new Refused(reason);
  };

  // Own properties of `source` (getters read once), copied onto `checked` and `runnable`.
  const copyOwn = (
    source: object,
    checked: object,
    runnable: object | null,
    depth: number,
    skip: (key: PropertyKey) => boolean,
  ): void => {
    for (const key of Reflect.ownKeys(source)) {
      if (skip(key)) continue;
      if (typeof key === "string") text(key.length);
      const descriptor = Object.getOwnPropertyDescriptor(source, key);
      if (!descriptor) continue;
      const raw =
        "value" in descriptor ? descriptor.value : (source as Record<PropertyKey, unknown>)[key];
      const [checkedItem, runnableItem] = visit(raw, depth + 1);
      const enumerable = descriptor.enumerable ?? false;
      Object.defineProperty(checked, key, {
        value: checkedItem,
        enumerable,
        writable: true,
        configurable: true,
      });
      if (runnable) {
        Object.defineProperty(runnable, key, {
          value: runnableItem,
          enumerable,
          writable: true,
          configurable: true,
        });
      }
    }
  };

  // The checked view of an object passed as the original: own properties, inherited data
  // properties and getters (methods left out), toJSON's result, the items it iterates.
  const viewOf = (value: object, depth: number, view: Record<PropertyKey, unknown>): void => {
    const isFunction = typeof value === "function";
    copyOwn(value, view, null, depth, (key) => isFunction && FUNCTION_OWN_SKIPPED.has(key));
    for (
      let prototype = Object.getPrototypeOf(value) as object | null;
      prototype !== null && prototype !== Object.prototype && prototype !== Function.prototype;
      prototype = Object.getPrototypeOf(prototype) as object | null
    ) {
      for (const key of Reflect.ownKeys(prototype)) {
        if (key === "constructor" || key === "__proto__" || Object.hasOwn(view, key)) continue;
        const descriptor = Object.getOwnPropertyDescriptor(prototype, key);
        if (!descriptor) continue;
        if ("value" in descriptor && typeof descriptor.value === "function") continue; // a method
        if ("get" in descriptor && typeof descriptor.get !== "function") continue;
        const raw = (value as Record<PropertyKey, unknown>)[key];
        if (typeof raw === "function") continue;
        view[key] = visit(raw, depth + 1)[0];
      }
    }
    const toJSON = (value as { toJSON?: unknown }).toJSON;
    if (typeof toJSON === "function") {
      view[VIEW_JSON] = visit(toJSON.call(value, ""), depth + 1)[0];
    }
    const iterate = (value as { [Symbol.iterator]?: unknown })[Symbol.iterator];
    if (typeof iterate === "function" && !isFunction) {
      const iterator = iterate.call(value) as Iterator<unknown>;
      if (iterator === (value as unknown)) {
        refuse("an object that is its own iterator (reading it would consume it)");
      }
      if (typeof iterator?.next === "function") {
        const items: unknown[] = [];
        for (let step = iterator.next(); !step.done; step = iterator.next()) {
          if (items.length > GUARD_LIMITS.values) break;
          items.push(visit(step.value, depth + 1)[0]);
        }
        view[VIEW_ITEMS] = items;
      }
    }
  };

  const visit = (value: unknown, depth: number): [unknown, unknown] => {
    if (++values > GUARD_LIMITS.values) {
      refuse(`they hold more than ${GUARD_LIMITS.values} values`);
    }
    if ((typeof value !== "object" && typeof value !== "function") || value === null) {
      if (typeof value === "string") text(value.length);
      return [value, value];
    }
    const known = memo.get(value);
    if (known) return known;
    if (depth > GUARD_LIMITS.depth)
      refuse(`they are nested deeper than ${GUARD_LIMITS.depth} levels`);
    const problem = unscannableKind(value);
    if (problem !== null) refuse(`an argument holds ${problem}`);
    const prototype = Object.getPrototypeOf(value);

    if (typeof value === "function") {
      instances = true;
      const view: Record<PropertyKey, unknown> = {};
      memo.set(value, [view, value]);
      viewedFunctions.set(view, value);
      viewOf(value, depth, view);
      return [view, value];
    }
    if (value instanceof Date && prototype === Date.prototype) {
      const pair: [unknown, unknown] = [new Date(value.getTime()), new Date(value.getTime())];
      memo.set(value, pair);
      return pair;
    }
    if (
      ArrayBuffer.isView(value) ||
      value instanceof ArrayBuffer ||
      value instanceof SharedArrayBuffer
    ) {
      const copy = (): unknown => {
        if (Buffer.isBuffer(value)) return Buffer.from(value);
        if (value instanceof ArrayBuffer || value instanceof SharedArrayBuffer)
          return value.slice(0);
        if (value instanceof DataView) {
          return new DataView(
            value.buffer.slice(value.byteOffset, value.byteOffset + value.byteLength),
          );
        }
        return (value as unknown as { slice(): unknown }).slice();
      };
      values += Math.floor(value.byteLength / 64);
      text(value.byteLength);
      const pair: [unknown, unknown] = [copy(), copy()];
      memo.set(value, pair);
      return pair;
    }
    if (
      (value instanceof String && prototype === String.prototype) ||
      (value instanceof Number && prototype === Number.prototype) ||
      (value instanceof Boolean && prototype === Boolean.prototype) ||
      (value instanceof BigInt && prototype === BigInt.prototype)
    ) {
      const primitive = value.valueOf();
      const pair: [unknown, unknown] = [Object(primitive), Object(primitive)];
      memo.set(value, pair);
      return pair;
    }
    if (Array.isArray(value) && prototype === Array.prototype) {
      const checked: unknown[] = [];
      const runnable: unknown[] = [];
      memo.set(value, [checked, runnable]);
      for (let index = 0; index < value.length; index++) {
        const [checkedItem, runnableItem] = visit(value[index], depth + 1);
        checked.push(checkedItem);
        runnable.push(runnableItem);
      }
      // Own properties beyond the elements (a RegExp match's `input`, `index`, `groups`).
      copyOwn(value, checked, runnable, depth, (key) => key === "length" || isIndex(key));
      return [Object.freeze(checked), Object.freeze(runnable)];
    }
    if (value instanceof Map && prototype === Map.prototype) {
      const checked = new Map<unknown, unknown>();
      const runnable = new Map<unknown, unknown>();
      memo.set(value, [checked, runnable]);
      for (const [key, item] of value) {
        const [checkedKey, runnableKey] = visit(key, depth + 1);
        const [checkedItem, runnableItem] = visit(item, depth + 1);
        checked.set(checkedKey, checkedItem);
        runnable.set(runnableKey, runnableItem);
      }
      copyOwn(value, checked, runnable, depth, () => false);
      return [Object.freeze(checked), Object.freeze(runnable)];
    }
    if (value instanceof Set && prototype === Set.prototype) {
      const checked = new Set<unknown>();
      const runnable = new Set<unknown>();
      memo.set(value, [checked, runnable]);
      for (const item of value) {
        const [checkedItem, runnableItem] = visit(item, depth + 1);
        checked.add(checkedItem);
        runnable.add(runnableItem);
      }
      copyOwn(value, checked, runnable, depth, () => false);
      return [Object.freeze(checked), Object.freeze(runnable)];
    }
    if (isPlainPrototype(prototype)) {
      const checked: Record<PropertyKey, unknown> = Object.create(prototype);
      const runnable: Record<PropertyKey, unknown> = Object.create(prototype);
      memo.set(value, [checked, runnable]);
      copyOwn(value, checked, runnable, depth, () => false);
      // A toJSON function is code: its result is checked as it is now.
      const toJSON = (value as { toJSON?: unknown }).toJSON;
      if (typeof toJSON === "function") {
        checked[VIEW_JSON] = visit(toJSON.call(value, ""), depth + 1)[0];
      }
      return [Object.freeze(checked), Object.freeze(runnable)];
    }
    // A class instance: passed as the original, checked through its view.
    instances = true;
    const view: Record<PropertyKey, unknown> = {};
    memo.set(value, [view, value]);
    viewOf(value, depth, view);
    return [view, value];
  };

  try {
    const pairs = args.map((argument) => visit(argument, 0));
    return {
      checked: pairs.map(([checked]) => checked),
      runnable: pairs.map(([, runnable]) => runnable),
      problem: null,
      instances,
    };
  } catch (error) {
    const reason =
      error instanceof Refused
        ? error.message
        : `a value could not be read (${error instanceof Error ? error.message.split("\n")[0] : String(error)})`;
    return { checked: [], runnable: [], problem: reason, instances };
  }
}

function isIndex(key: PropertyKey): boolean {
  return typeof key === "string" && /^(?:0|[1-9]\d*)$/.test(key);
}

/**
 * Whether two checked snapshots hold the same values: primitives (`Object.is`), symbols and
 * functions by identity, dates by time, bytes by content, lists, maps and sets in order,
 * objects by their own keys (in order, symbol-keyed included) and values.
 */
export function sameSnapshot(a: unknown, b: unknown): boolean {
  const pairs = new Map<object, object>();
  const same = (x: unknown, y: unknown): boolean => {
    if (Object.is(x, y)) return true;
    if (typeof x !== "object" || typeof y !== "object" || x === null || y === null) return false;
    if (Object.getPrototypeOf(x) !== Object.getPrototypeOf(y)) return false;
    const seen = pairs.get(x);
    if (seen !== undefined) return seen === y;
    pairs.set(x, y);
    if (viewedFunctions.get(x) !== viewedFunctions.get(y)) return false;
    if (x instanceof Date) return x.getTime() === (y as Date).getTime();
    if (ArrayBuffer.isView(x) || x instanceof ArrayBuffer || x instanceof SharedArrayBuffer) {
      const left = bytesOf(x);
      const right = bytesOf(y as ArrayBufferView | ArrayBuffer);
      if (left.length !== right.length) return false;
      for (let index = 0; index < left.length; index++)
        if (left[index] !== right[index]) return false;
      return true;
    }
    if (x instanceof String || x instanceof Number || x instanceof Boolean || x instanceof BigInt) {
      if (!Object.is(x.valueOf(), (y as { valueOf(): unknown }).valueOf())) return false;
    }
    if (x instanceof Map) {
      const other = y as Map<unknown, unknown>;
      if (x.size !== other.size) return false;
      const right = [...other];
      let index = 0;
      for (const [key, item] of x) {
        const entry = right[index++];
        if (!entry || !same(key, entry[0]) || !same(item, entry[1])) return false;
      }
    } else if (x instanceof Set) {
      const other = y as Set<unknown>;
      if (x.size !== other.size) return false;
      const right = [...other];
      let index = 0;
      for (const item of x) if (!same(item, right[index++])) return false;
    }
    const keys = Reflect.ownKeys(x);
    const otherKeys = Reflect.ownKeys(y);
    if (keys.length !== otherKeys.length) return false;
    for (let index = 0; index < keys.length; index++) {
      const key = keys[index] as PropertyKey;
      if (key !== otherKeys[index]) return false;
      if (
        !same((x as Record<PropertyKey, unknown>)[key], (y as Record<PropertyKey, unknown>)[key])
      ) {
        return false;
      }
    }
    return true;
  };
  return same(a, b);
}

function bytesOf(value: ArrayBufferView | ArrayBuffer | SharedArrayBuffer): Uint8Array {
  return ArrayBuffer.isView(value)
    ? new Uint8Array(value.buffer, value.byteOffset, value.byteLength)
    : new Uint8Array(value);
}
