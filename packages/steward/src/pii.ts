/**
 * The `no_pii` detectors of `guard()`: e-mail addresses, phone numbers, payment card numbers
 * (Luhn-valid only) and national id numbers (US SSN, UK National Insurance number) — in text
 * normalized first ({@link normalizeForPii}), and in every value a function receives
 * ({@link scanValues}).
 */
import { types } from "node:util";
import { stripIgnorables } from "@gov/core";
import { foldNumberForms, stripControls } from "./text";

/** Which kind of personal data was found. */
export type PiiKind = "email" | "phone" | "card" | "national_id";

// Bounded parts (local ≤ 64, labels ≤ 63): linear time on long runs without an @. Letters and
// digits of any script (internationalized addresses).
// The domain's dots may be ideographic full stops (U+3002, and U+FF61, which NFKD makes one), as
// internationalized domain names allow.
const EMAIL =
  /[\p{L}\p{N}._%+-]{1,64}@[\p{L}\p{N}-]{1,63}(?:[.\u3002][\p{L}\p{N}-]{1,63})*[.\u3002]\p{L}{2,63}/u;
// Formatted phone numbers: a leading + with 8 to 15 digits, a grouped 3-3-4 number, or a
// national number with a trunk 0 in groups (UK `020 7946 0958`, `07700 900123`).
// A bare run of digits (an order number) is not a phone number.
const PHONE_INTERNATIONAL = /(?<![\w+])\+\d{1,3}(?:[\s.-]?\(?\d{1,4}\)?){2,5}(?!\w)/g;
const PHONE_GROUPED = /(?<!\d)(?:\(\d{3}\)\s?|\d{3}[\s.-])\d{3}[\s.-]\d{4}(?!\d)/;
const PHONE_NATIONAL = /(?<![\w+.-])\(?0\d{1,4}\)?[\s-]\d{3,4}(?:[\s-]?\d{3,4})?(?![\w.-])/g;
// Runs of digit groups, separated by one to three spaces, dashes or dots (in normalized text,
// where every blank is a space and every dash a "-"): each run is searched for a card number
// written as cards are ({@link CARD_GROUPINGS}).
const DIGIT_GROUPS = /\d+(?:[ .-]{1,3}\d+)*/g;
const GROUP_SEPARATOR = /[ .-]+/;
const SSN = /(?<!\d)(?!000|666|9\d\d)\d{3}([- ])(?!00)\d{2}\1(?!0000)\d{4}(?!\d)/;
// Nine bare digits are an SSN only next to a keyword.
const SSN_BARE = /(?<!\d)(?!000|666|9\d\d)\d{3}(?!00)\d{2}(?!0000)\d{4}(?!\d)/g;
const SSN_KEYWORD = /\b(?:ssn|ssns|social[\s_-]*security|soc\.?\s*sec|ss#|tin|taxpayer)\b/i;
const NINO =
  /\b(?![DFIQUV])[A-CEGHJ-PR-TW-Z](?![DFIOQUV])[A-CEGHJ-NPR-TW-Z]\s?\d{2}\s?\d{2}\s?\d{2}\s?[A-D]\b/;

/**
 * Whether a number of this length with these leading digits could be a payment card (issuer
 * identification ranges): Visa 4 (13, 16, 19), Mastercard 51–55 and 2221–2720 (16), Amex
 * 34/37 (15), Discover 6011, 644–649, 65 (16–19), JCB 3528–3589 (16–19), Diners 300–305, 36,
 * 38–39 (14–19), UnionPay 62 (16–19), Maestro 50, 56–58, 6 (12–19 here 13–19).
 */
export function plausibleCardPrefix(digits: string): boolean {
  return digits.length >= 4 && plausibleForPrefix(prefixOf(digits, 0), digits.length);
}

/**
 * How card numbers are written, as the lengths of their groups of digits: in groups of four
 * with a last group of one to four digits (13 to 19 digits: Visa, Mastercard, Discover, JCB,
 * UnionPay, Maestro), 4-6-5 (American Express) and 4-6-4 (Diners Club). A run of groups is
 * searched for these at every group boundary (a card after another number, or before its
 * expiry date); an unbroken run of 13 to 19 digits is tried whole, and for a card followed by
 * digits glued to it. A longer unbroken run is another number.
 */
const CARD_GROUPINGS: readonly (readonly number[])[] = [
  [4, 4, 4, 1],
  [4, 4, 4, 2],
  [4, 4, 4, 3],
  [4, 4, 4, 4],
  [4, 4, 4, 4, 1],
  [4, 4, 4, 4, 2],
  [4, 4, 4, 4, 3],
  [4, 6, 5],
  [4, 6, 4],
];

/**
 * Whether a run of digit groups (`4111 1111-1111.1111`, `9.4111111111111111`) holds a card
 * number written as cards are: groups that follow one of {@link CARD_GROUPINGS}, or one
 * unbroken group of 13 to 19 digits, each a plausible, Luhn-valid card number. Numbers in other
 * groupings (readings, prices, dates) are never joined into one: linear in the run's length.
 */
function groupsHoldCard(run: string): boolean {
  const groups = run.split(GROUP_SEPARATOR);
  for (let start = 0; start < groups.length; start++) {
    const group = groups[start] as string;
    if (group.length >= 13 && group.length <= 19 && unbrokenCard(group)) return true;
    if (group.length !== 4) continue;
    for (const grouping of CARD_GROUPINGS) {
      if (start + grouping.length > groups.length) continue;
      if (grouping.every((size, offset) => groups[start + offset]?.length === size)) {
        if (isCard(groups.slice(start, start + grouping.length).join(""))) return true;
      }
    }
  }
  return false;
}

/**
 * Whether an unbroken run of 13 to 19 digits is a card number, or begins with one followed by
 * digits glued to it (`4111111111111111123`: a card and its CVV).
 */
function unbrokenCard(digits: string): boolean {
  for (let size = digits.length; size >= 13; size--) {
    if (isCard(size === digits.length ? digits : digits.slice(0, size))) return true;
  }
  return false;
}

/** The first four digits of `digits` from `start`, as a number (`4111…` → 4111). */
function prefixOf(digits: string, start: number): number {
  let prefix = 0;
  for (let offset = 0; offset < 4; offset++)
    prefix = prefix * 10 + (digits.charCodeAt(start + offset) - 48);
  return prefix;
}

/** Whether a card number of `size` digits may start with these four digits (issuer ranges). */
function plausibleForPrefix(p4: number, size: number): boolean {
  const p2 = Math.floor(p4 / 100);
  const p3 = Math.floor(p4 / 10);
  if (p4 >= 4000 && p4 <= 4999) return size === 13 || size === 16 || size === 19;
  if ((p2 >= 51 && p2 <= 55) || (p4 >= 2221 && p4 <= 2720)) return size === 16;
  if (p2 === 34 || p2 === 37) return size === 15;
  if (p4 >= 3528 && p4 <= 3589) return size >= 16;
  if ((p3 >= 300 && p3 <= 305) || p2 === 36 || p2 === 38 || p2 === 39) return size >= 14;
  if (p2 === 50 || (p2 >= 56 && p2 <= 69)) return true;
  return false;
}

/** Whether a whole string of digits is a plausible, Luhn-valid card number. */
function isCard(digits: string): boolean {
  return (
    digits.length >= 13 && digits.length <= 19 && plausibleCardPrefix(digits) && luhnValid(digits)
  );
}

/** Whether a string of digits passes the Luhn checksum. */
export function luhnValid(digits: string): boolean {
  let sum = 0;
  let double = false;
  for (let index = digits.length - 1; index >= 0; index--) {
    let digit = digits.charCodeAt(index) - 48;
    if (digit < 0 || digit > 9) return false;
    if (double) {
      digit *= 2;
      if (digit > 9) digit -= 9;
    }
    sum += digit;
    double = !double;
  }
  return sum % 10 === 0;
}

function countDigits(text: string): number {
  let count = 0;
  for (let index = 0; index < text.length; index++) {
    const code = text.charCodeAt(index);
    if (code >= 48 && code <= 57) count++;
  }
  return count;
}

const PRINTABLE_ASCII = /^[\x20-\x7e]*$/;
// Every dash look-alike: dash punctuation (hyphen, en and em dashes, small and full-width
// hyphen-minus, …), the minus sign, the hyphen bullet, the modifier and heavy minus.
const DASHES = /[\p{Pd}\u2212\u2043\u02d7\u2796]/gu;
// Every blank: white space (tab, no-break, thin, ideographic, line breaks, …) and the
// characters that render blank without being white space (braille blank, Hangul fillers).
const BLANKS = /[\p{White_Space}\u2800\u3164\uffa0\u115f\u1160]+/gu;
// Horizontal-line symbols that look like a dash between digits: box-drawing and block
// horizontals, the horizontal line extension, scan lines, straightness, and the letters that
// are drawn as a line — the katakana prolonged sound mark `ー` (half-width `ｰ` after NFKD), the
// ideograph one `一` (and the Kangxi radical one) and the Hangul vowel eu `ᅳ` (and `ㅡ`).
// Letters are read as "-" only between digits (after blanks are collapsed: `4111 ー 1111`).
const LINES_BETWEEN_DIGITS =
  /(?<=\d ?)[\u2500\u2501\u2504\u2505\u2508\u2509\u254c\u254d\u2550\u2574\u2576\u2578\u257a\u257c\u257e\u23af\u23ba-\u23bd\u23e4\u2581\u2594\u30fc\u4e00\u1173\u3161]+(?= ?\d)/g;
const MARKS = /\p{M}/gu;
const OTHER_DIGITS = /(?![0-9])\p{Nd}/gu;
const DECIMAL_DIGIT = /^\p{Nd}$/u;
const digitValues = new Map<string, string>();

/**
 * The ASCII digit of a decimal digit of any script (`٤` → `4`, `४` → `4`). Unicode assigns
 * decimal digits in runs of ten from 0 to 9, so a digit's value is its distance from the start
 * of its run, modulo 10.
 */
function asciiDigit(digit: string): string {
  let value = digitValues.get(digit);
  if (value === undefined) {
    const code = digit.codePointAt(0) ?? 0;
    let start = code;
    while (start > 0 && DECIMAL_DIGIT.test(String.fromCodePoint(start - 1))) start--;
    value = String((code - start) % 10);
    if (digitValues.size < 1_024) digitValues.set(digit, value);
  }
  return value;
}

/**
 * Text as the `no_pii` detectors read it: control characters removed (NUL, U+0001, DEL, the C1
 * controls; tab and line breaks are blanks), number forms read as their digits (`➍`, `⑷`,
 * `⒋`, `⓸`), compatibility forms folded (NFKD: full-width, superscript, circled and
 * mathematical digits, full-width `＠`), format and default-ignorable characters removed
 * (zero-width characters, soft hyphens, word joiners), combining marks removed, the digits of
 * every script read as ASCII digits, every dash look-alike read as `-`, every run of blank
 * characters read as one space (spaces around a dash dropped), and a horizontal-line symbol
 * between digits (`─`, `⎯`, `ー`, `一`) read as `-`. Digits are not folded as confusables: a
 * UTS #39 skeleton would turn `0` into `O`.
 *
 * @example
 * normalizeForPii("4111\u200b1111\t\t1111\u20131111"); // "4111 1111 1111-1111"
 * normalizeForPii("➍➊➊➊\u0001ー1111"); // "4111-1111"
 */
export function normalizeForPii(input: string): string {
  let text = input;
  if (!PRINTABLE_ASCII.test(text)) {
    text = stripIgnorables(foldNumberForms(stripControls(text)).normalize("NFKD"))
      .replace(MARKS, "")
      .replace(OTHER_DIGITS, asciiDigit)
      .replace(DASHES, "-")
      .replace(BLANKS, " ")
      .replace(LINES_BETWEEN_DIGITS, "-");
  } else if (text.includes("  ")) {
    text = text.replace(/ {2,}/g, " ");
  }
  return text.includes(" -") || text.includes("- ") ? text.replace(/ ?- ?/g, "-") : text;
}

/** The kinds of personal data found in `text` (empty when none), once normalized. */
export function detectPii(input: string): PiiKind[] {
  const found: PiiKind[] = [];
  const text = normalizeForPii(input);
  if (text.includes("@") && EMAIL.test(text)) found.push("email");
  for (const match of text.matchAll(DIGIT_GROUPS)) {
    // A decimal point separates groups like any other: "9.4111111111111111" holds a card.
    if (groupsHoldCard(match[0])) {
      found.push("card");
      break;
    }
  }
  let phone = PHONE_GROUPED.test(text);
  if (!phone) {
    for (const match of text.matchAll(PHONE_INTERNATIONAL)) {
      const digits = countDigits(match[0]);
      if (digits >= 8 && digits <= 15) {
        phone = true;
        break;
      }
    }
  }
  if (!phone) {
    for (const match of text.matchAll(PHONE_NATIONAL)) {
      const digits = countDigits(match[0]);
      if (digits >= 10 && digits <= 11) {
        phone = true;
        break;
      }
    }
  }
  if (phone) found.push("phone");
  if (SSN.test(text) || NINO.test(text) || bareSsnNearKeyword(text)) found.push("national_id");
  return found;
}

function bareSsnNearKeyword(text: string): boolean {
  if (!SSN_KEYWORD.test(text)) return false;
  for (const match of text.matchAll(SSN_BARE)) {
    const index = match.index ?? 0;
    const around = text.slice(Math.max(0, index - 40), index + match[0].length + 40);
    if (SSN_KEYWORD.test(around)) return true;
  }
  return false;
}

/**
 * Most texts (strings, integers, bigints, decoded byte arrays) scanned in one value, the
 * deepest nesting, and the most values visited (texts, other numbers, objects) before a scan
 * stops and denies.
 */
export const PII_SCAN_LIMITS = { strings: 10_000, depth: 32, values: 100_000 } as const;

/** Options of {@link scanValues}. */
export interface ScanOptions {
  /**
   * Also test the strings of every array and `Set` (two or more) joined with each of these:
   * `[""]` reads `["p", "a", "s", "s"]` as `"pass"`, `[" "]` reads `["4111", "1111"]` as
   * `"4111 1111"`.
   * @default [] (lists are not joined)
   */
  listSeparators?: readonly string[];
}

/** What {@link scanValues} found: a match, or why the scan could not complete. */
export type ScanFinding = { kind: "match" } | { kind: "incomplete"; reason: string };

const UTF8 = new TextDecoder("utf-8");

/** The text held by bytes: UTF-8, and without NULs (UTF-16 text of ASCII letters). */
function bytesText(bytes: Uint8Array): string {
  const text = UTF8.decode(bytes);
  return text.includes("\u0000") ? `${text} ${text.replaceAll("\u0000", "")}` : text;
}

/** UTF-16 code units as text, in chunks (no argument-count limit). */
function unitsText(units: Uint16Array): string {
  let text = "";
  for (let index = 0; index < units.length; index += 8_192) {
    text += String.fromCharCode(...units.subarray(index, index + 8_192));
  }
  return text;
}

/**
 * Walk every value a function receives and test its texts with `test`: strings, integers and
 * bigints (a non-integer number is no card, phone or id); object keys and values — own
 * properties, enumerable or not, symbol-keyed or not, getters read — and the getters of a
 * class's prototypes; what `toJSON()` returns; array elements; `Map` keys and values; `Set`
 * members; other collections that can be iterated again (`URLSearchParams`, `Headers`, …);
 * the text held by byte arrays (`Buffer`, `Uint8Array`, `ArrayBuffer`, `DataView`: UTF-8) and
 * by `Uint16Array` (UTF-16); the elements of other typed arrays; boxed primitives. Cycles are
 * visited once. Private fields (`#x`) cannot be reached; a one-shot iterator (a generator) is
 * not consumed. With `options.listSeparators`, the strings of an array or `Set` (two or more)
 * are also tested joined with each separator, so that text split into a list (`["p", "a", …]`,
 * `["4111", "1111", …]`) is read whole.
 *
 * @example
 * scanValues([{ note: ["pass", "word"] }], (text) => text.includes("password"), {
 *   listSeparators: [""],
 * }); // { kind: "match" }
 * @returns null when every text was tested and none matched; `{ kind: "match" }`; or
 *   `{ kind: "incomplete", reason }` when the scan could not complete (past
 *   {@link PII_SCAN_LIMITS}, or a getter, `toJSON` or iterator threw) — which callers treat as
 *   a match (fail closed).
 */
export function scanValues(
  roots: readonly unknown[],
  test: (text: string) => boolean,
  options: ScanOptions = {},
): ScanFinding | null {
  const separators = options.listSeparators ?? [];
  let strings = 0;
  let values = 0;
  const seen = new WeakSet<object>();
  const MATCH: ScanFinding = { kind: "match" };
  const text = (value: string): ScanFinding | null => {
    if (++strings > PII_SCAN_LIMITS.strings) {
      return { kind: "incomplete", reason: `more than ${PII_SCAN_LIMITS.strings} texts to scan` };
    }
    return test(value) ? MATCH : null;
  };
  const visit = (value: unknown, depth: number): ScanFinding | null => {
    if (++values > PII_SCAN_LIMITS.values) {
      return { kind: "incomplete", reason: `more than ${PII_SCAN_LIMITS.values} values to scan` };
    }
    switch (typeof value) {
      case "string":
        return text(value);
      case "number":
        return Number.isInteger(value) ? text(String(value)) : null;
      case "bigint":
        return text(String(value));
      case "symbol":
        // A symbol's description is text the function can read.
        return value.description ? text(value.description) : null;
      case "object":
      case "function":
        break;
      default:
        return null;
    }
    if (value === null || seen.has(value)) return null;
    if (depth > PII_SCAN_LIMITS.depth) {
      return { kind: "incomplete", reason: `nested deeper than ${PII_SCAN_LIMITS.depth} levels` };
    }
    seen.add(value);
    const refused = unscannableKind(value);
    if (refused !== null) return { kind: "incomplete", reason: `${refused} cannot be scanned` };
    if (typeof value === "function") return ownFindings(value, depth, FUNCTION_SKIPPED);
    const children = (items: Iterable<unknown>): ScanFinding | null => {
      for (const item of items) {
        const found = visit(item, depth + 1);
        if (found) return found;
      }
      return null;
    };
    if (value instanceof ArrayBuffer || value instanceof SharedArrayBuffer) {
      return text(bytesText(new Uint8Array(value)));
    }
    if (ArrayBuffer.isView(value)) {
      if (value instanceof Uint16Array) return text(unitsText(value));
      if (
        value instanceof Uint8Array ||
        value instanceof Int8Array ||
        value instanceof Uint8ClampedArray ||
        value instanceof DataView
      ) {
        return text(bytesText(new Uint8Array(value.buffer, value.byteOffset, value.byteLength)));
      }
      return children(value as unknown as Iterable<unknown>);
    }
    if (
      value instanceof String ||
      value instanceof Number ||
      value instanceof BigInt ||
      value instanceof Boolean
    ) {
      return visit(value.valueOf(), depth + 1);
    }
    if (value instanceof Map) {
      for (const [key, item] of value) {
        const found = visit(key, depth + 1) ?? visit(item, depth + 1);
        if (found) return found;
      }
      // Its own properties too (a subclass's fields, properties set on it).
      return objectFindings(value, depth, false);
    }
    if (value instanceof Set) {
      return children(value) ?? joined(value) ?? objectFindings(value, depth, false);
    }
    if (Array.isArray(value)) {
      // The elements, their strings joined, then the other own properties (a RegExp match's
      // `input`) and fields.
      return children(value) ?? joined(value) ?? objectFindings(value, depth, false, isArrayIndex);
    }
    return objectFindings(value, depth, true);
  };
  // The strings of a list, joined with each of the separators asked for.
  const joined = (items: Iterable<unknown>): ScanFinding | null => {
    if (separators.length === 0) return null;
    const texts: string[] = [];
    for (const item of items) if (typeof item === "string") texts.push(item);
    if (texts.length < 2) return null;
    for (const separator of separators) {
      const found = text(texts.join(separator));
      if (found) return found;
    }
    return null;
  };
  // Own properties (keys too), enumerable or not, symbol-keyed or not, getters read.
  const ownFindings = (
    value: object,
    depth: number,
    skip: (key: PropertyKey) => boolean,
  ): ScanFinding | null => {
    const record = value as Record<PropertyKey, unknown>;
    for (const key of Reflect.ownKeys(value)) {
      if (skip(key)) continue;
      if (typeof key === "string") {
        const found = text(key);
        if (found) return found;
      }
      const descriptor = Object.getOwnPropertyDescriptor(value, key);
      const item = descriptor && "value" in descriptor ? descriptor.value : record[key];
      const found = visit(item, depth + 1);
      if (found) return found;
    }
    return null;
  };
  // An object: own properties, what it inherits from its prototypes up to the language's
  // (data properties other than methods, and getters), toJSON(), and what it iterates (when
  // `iterate`), if it can be iterated again without being consumed.
  const objectFindings = (
    value: object,
    depth: number,
    iterable: boolean,
    skip: (key: PropertyKey) => boolean = () => false,
  ): ScanFinding | null => {
    const record = value as Record<PropertyKey, unknown>;
    const own = ownFindings(value, depth, skip);
    if (own) return own;
    for (
      let prototype = Object.getPrototypeOf(value) as object | null;
      prototype !== null && !BUILT_IN_PROTOTYPES.has(prototype);
      prototype = Object.getPrototypeOf(prototype) as object | null
    ) {
      for (const key of Reflect.ownKeys(prototype)) {
        if (key === "constructor" || key === "__proto__" || Object.hasOwn(value, key)) continue;
        const descriptor = Object.getOwnPropertyDescriptor(prototype, key);
        if (!descriptor) continue;
        if ("value" in descriptor ? typeof descriptor.value === "function" : !descriptor.get) {
          continue; // a method, or a setter without a getter
        }
        const found = visit(record[key], depth + 1);
        if (found) return found;
      }
    }
    if (!iterable) return null;
    const toJSON = record.toJSON;
    if (typeof toJSON === "function") {
      const found = visit(toJSON.call(value, ""), depth + 1);
      if (found) return found;
    }
    const iterate = record[Symbol.iterator];
    if (typeof iterate === "function") {
      const iterator = iterate.call(value) as Iterator<unknown>;
      // An iterator that is its own iterable (a generator) would be consumed: not walked.
      if (iterator !== value && typeof iterator?.next === "function") {
        for (let step = iterator.next(); !step.done; step = iterator.next()) {
          const found = visit(step.value, depth + 1);
          if (found) return found;
        }
      }
    }
    return null;
  };
  try {
    for (const root of roots) {
      const found = visit(root, 0);
      if (found) return found;
    }
    return null;
  } catch (error) {
    const reason = error instanceof Error ? error.message.split("\n")[0] : String(error);
    return { kind: "incomplete", reason: `a value could not be read (${reason})` };
  }
}

/**
 * Whether a value holds personal data ({@link detectPii} on every text {@link scanValues}
 * finds). A value too large, too deep or unreadable to scan completely counts as holding
 * personal data: the scan fails closed.
 */
export function containsPii(value: unknown): boolean {
  return piiFinding([value]) !== null;
}

/** Prototypes whose properties are the language's, not data: not walked. */
const BUILT_IN_PROTOTYPES = new Set<object>([
  Object.prototype,
  Array.prototype,
  Map.prototype,
  Set.prototype,
  Function.prototype,
]);

const FUNCTION_SKIPPED = (key: PropertyKey): boolean =>
  key === "length" ||
  key === "name" ||
  key === "prototype" ||
  key === "caller" ||
  key === "arguments";

function isArrayIndex(key: PropertyKey): boolean {
  return key === "length" || (typeof key === "string" && /^(?:0|[1-9]\d*)$/.test(key));
}

/**
 * What kind of value cannot be scanned, in words — its content is not there to read now, or
 * its reads cannot be trusted — or null: a `Proxy`, a promise or other thenable, `WeakMap`,
 * `WeakSet`, `WeakRef`, `FinalizationRegistry`, a generator or a map or set iterator, a
 * `Blob`, a stream.
 */
export function unscannableKind(value: object): string | null {
  if (types.isProxy(value)) return "a Proxy (its reads cannot be trusted)";
  if (types.isPromise(value)) return "a Promise (its value is not known yet)";
  if (types.isWeakMap(value) || types.isWeakSet(value)) {
    return "a WeakMap or WeakSet (its content cannot be listed)";
  }
  if (typeof WeakRef !== "undefined" && value instanceof WeakRef) {
    return "a WeakRef (its target can change)";
  }
  if (typeof FinalizationRegistry !== "undefined" && value instanceof FinalizationRegistry) {
    return "a FinalizationRegistry";
  }
  if (types.isGeneratorObject(value) || types.isMapIterator(value) || types.isSetIterator(value)) {
    return "a generator or iterator (reading it would consume it)";
  }
  if (typeof Blob !== "undefined" && value instanceof Blob) {
    return "a Blob (its content is read asynchronously)";
  }
  if (typeof ReadableStream !== "undefined" && value instanceof ReadableStream) {
    return "a stream (its content is read asynchronously)";
  }
  if (typeof (value as { then?: unknown }).then === "function") {
    return "a thenable (its value is not known yet)";
  }
  return null;
}

const PII_LIST_SEPARATORS: ScanOptions = { listSeparators: [" "] };

/**
 * {@link scanValues} with {@link detectPii}: null when the values hold no personal data. The
 * strings of a list are also read joined by spaces (card groups or an SSN given as a list).
 */
export function piiFinding(roots: readonly unknown[]): ScanFinding | null {
  return scanValues(roots, (text) => detectPii(text).length > 0, PII_LIST_SEPARATORS);
}
