/**
 * The one way to check what callers pass in: ids, free text and options objects. Every
 * module uses these, so an id that one module accepts is accepted by all of them, and a bad
 * value is refused (never silently repaired) with an {@link InvalidArgumentError} that names
 * the field, the limit and the fix.
 *
 * Lengths are counted in UTF-16 code units (`string.length`), the cheapest count and never
 * less than the count in code points that Postgres applies to `varchar(n)`: a value that
 * passes here always fits a column of the same length. An id made of characters outside the
 * Basic Multilingual Plane (emoji, for example) holds fewer than `max` of them.
 */
import { z } from "zod";
import { codePointLabel, findBlankCharacter } from "./confusables";
import { describeValue, typeOf } from "./describe";
import {
  GovernanceError,
  type InputIssue,
  InvalidArgumentError,
  type InvalidArgumentErrorClass,
  reportInvalidAs,
} from "./errors";

/** The longest id (agent, session, tool, request id…), in UTF-16 code units. */
export const MAX_ID_LENGTH = 256;

/** A UUID in its canonical lower-case form (any version), as Postgres prints a `uuid`. */
export const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * Whether `value` is a UUID in canonical lower-case form (any version).
 *
 * @example
 * ```ts
 * isUuid("0b6c5d0e-8f3a-4c1e-9a57-2f1f0f3c9d11"); // true
 * isUuid("0B6C5D0E-8F3A-4C1E-9A57-2F1F0F3C9D11"); // false: not canonical
 * ```
 */
export function isUuid(value: unknown): value is string {
  return typeof value === "string" && UUID_PATTERN.test(value);
}

/** Options of {@link checkId} and {@link idSchema}. */
export interface IdOptions {
  /** The longest id accepted, in UTF-16 code units. @default MAX_ID_LENGTH (256) */
  max?: number;
}

/** Options of {@link checkText} and {@link textSchema}. */
export interface TextOptions {
  /** The longest text accepted, in UTF-16 code units. */
  max: number;
  /** Whether line feeds and tabs are allowed (free text over several lines). @default false */
  multiline?: boolean;
}

// An id of printable ASCII that neither starts nor ends with a space: the common case, one test.
const PLAIN_ID = /^[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?$/;
// What an id may not hold anywhere: controls (C0, DEL, C1), format characters (zero-width
// characters, the byte-order mark, bidirectional marks and overrides, tags…), the other
// default-ignorable code points (variation selectors, fillers…), and line or paragraph separators.
const ID_FORBIDDEN = /[\p{Cc}\p{Cf}\p{Default_Ignorable_Code_Point}\u2028\u2029]/u;
// White space an id may not start or end with (JavaScript's \s is Unicode's White_Space and U+FEFF);
// by the time it is looked for, only the ASCII space is left (other blanks are refused anywhere).
const EDGE_SPACE = /^\s|\s$/;
// A combining mark (nonspacing, spacing or enclosing) with no character before it to combine with.
const LEADING_MARK = /^\p{M}/u;
// Printable ASCII (and, for multiline text, tab and line feed): nothing to look for.
const PLAIN_LINE = /^[\x20-\x7e]*$/;
const PLAIN_LINES = /^[\x20-\x7e\t\n]*$/;
// What free text may not hold: controls (but tab and line feed when multiline), the
// bidirectional embeddings, overrides and isolates (which make text read other than it is),
// and, on one line, line and paragraph separators.
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding them is the point
const TEXT_FORBIDDEN_LINE = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069\u2028\u2029]/;
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding them is the point
const TEXT_FORBIDDEN_LINES = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;
// Invisible characters free text may not hold either: the soft hyphen, the zero-width space,
// the left-to-right, right-to-left and Arabic letter marks, and the interlinear annotation
// characters (which hide the text they annotate). The zero-width joiner and the variation
// selectors stay: emoji are made of them.
const TEXT_INVISIBLE = /[\u00ad\u061c\u200b\u200e\u200f\ufff9-\ufffb]/;
// Tag characters (U+E0000–U+E007F, invisible, able to smuggle a hidden message) are allowed only
// as the tail of a flag emoji: U+1F3F4 WAVING BLACK FLAG, tags, U+E007F CANCEL TAG. The first
// alternative consumes a whole flag, so the second finds the tags outside any flag.
const FLAG_OR_TAG = /\u{1f3f4}[\u{e0020}-\u{e007e}]+\u{e007f}|[\u{e0000}-\u{e007f}]/gu;

/** Why a string is not an acceptable id or text, and the limit it broke, if any. */
interface Problem {
  problem: string;
  limit?: number;
}

function isWellFormed(value: string): boolean {
  return (value as string & { isWellFormed(): boolean }).isWellFormed();
}

function characterProblem(value: string, index: number, what: string): Problem {
  return {
    problem: `contains ${codePointLabel(value.slice(index))} (${what}) at index ${index}.`,
  };
}

function lengthProblem(length: number, max: number): Problem {
  return { problem: `is ${length} characters long; the limit is ${max}.`, limit: max };
}

function halfCharacterProblem(value: string): Problem {
  const index = [...value].findIndex((character) => {
    const code = character.charCodeAt(0);
    return character.length === 1 && code >= 0xd800 && code <= 0xdfff;
  });
  return characterProblem(value, index, "half of a character: a lone surrogate");
}

/** What is wrong with `value` as an id of at most `max` code units; null when nothing is. */
function idProblem(value: string, max: number): Problem | null {
  const length = value.length;
  if (length === 0) return { problem: "is empty.", limit: 1 };
  if (length > max) return lengthProblem(length, max);
  if (PLAIN_ID.test(value)) return null;
  const forbidden = ID_FORBIDDEN.exec(value);
  if (forbidden) {
    return characterProblem(value, forbidden.index, "a control, invisible or formatting character");
  }
  if (!isWellFormed(value)) return halfCharacterProblem(value);
  const blank = findBlankCharacter(value);
  if (blank) {
    return characterProblem(value, blank.index, "a blank character other than the ASCII space");
  }
  if (EDGE_SPACE.test(value)) return { problem: "starts or ends with white space." };
  if (LEADING_MARK.test(value)) {
    return characterProblem(value, 0, "a combining mark with no character before it");
  }
  return null;
}

/** The index of the first tag character outside a flag emoji sequence; -1 when there is none. */
function strayTagIndex(value: string): number {
  // Every tag character is written with the high surrogate U+DB40.
  if (!value.includes("\udb40")) return -1;
  for (const match of value.matchAll(FLAG_OR_TAG)) {
    if (match[0].length === 2) return match.index;
  }
  return -1;
}

/** What is wrong with `value` as free text; null when nothing is. */
function textProblem(value: string, max: number, multiline: boolean): Problem | null {
  if (value.length > max) return lengthProblem(value.length, max);
  if ((multiline ? PLAIN_LINES : PLAIN_LINE).test(value)) return null;
  const forbidden = (multiline ? TEXT_FORBIDDEN_LINES : TEXT_FORBIDDEN_LINE).exec(value);
  if (forbidden) {
    return characterProblem(
      value,
      forbidden.index,
      multiline
        ? "a control character or a bidirectional override"
        : "a control character, a line break or a bidirectional override",
    );
  }
  if (!isWellFormed(value)) return halfCharacterProblem(value);
  const invisible = TEXT_INVISIBLE.exec(value);
  const tag = strayTagIndex(value);
  if (invisible || tag >= 0) {
    const index = invisible && (tag < 0 || invisible.index < tag) ? invisible.index : tag;
    return characterProblem(value, index, "an invisible character");
  }
  return null;
}

function idFix(max: number): string {
  return `Pass a string of 1 to ${max} characters without control, invisible or formatting characters, without blank characters other than the ASCII space, not starting with a combining mark and without white space at either end.`;
}

function textFix(max: number, multiline: boolean): string {
  return multiline
    ? `Pass a string of at most ${max} characters without control characters (tab and line feed are allowed), bidirectional overrides or invisible characters.`
    : `Pass a single line of at most ${max} characters without control characters, bidirectional overrides or invisible characters.`;
}

function checkMax(max: number, field: string): void {
  if (!Number.isSafeInteger(max) || max < 1) {
    throw new InvalidArgumentError(
      field,
      `must be a positive integer, got ${describeValue(max)}.`,
      "Pass the longest length accepted, e.g. 256.",
    );
  }
}

/**
 * Check an id (agent, session, tool, request id…) and return it unchanged: a string of 1 to
 * `max` UTF-16 code units (default {@link MAX_ID_LENGTH}), with
 *
 * - no control, invisible or formatting characters (zero-width characters, the byte-order
 *   mark, bidirectional marks and overrides, soft hyphens, tags, variation selectors…);
 * - no lone surrogates;
 * - no blank character but the ASCII space ({@link findBlankCharacter}: no-break, em,
 *   ideographic and the other spaces, U+2800 BRAILLE PATTERN BLANK, Hangul fillers), so that
 *   an id never renders as nothing and `billing\u00a0agent` never passes for `billing agent`;
 * - no white space at either end;
 * - no combining mark at the start (a mark with no character to combine with, e.g. U+0301
 *   alone, renders as a stray accent or as nothing).
 *
 * This is the one id rule: every module checks ids with it (gates, scope, cost, loop,
 * presence, steward, audit), so an id one module accepts, all accept. A bad id is refused,
 * never repaired. Fast enough for hot paths: a printable-ASCII id costs one length check and
 * one regular expression (no zod, no allocation); {@link idSchema} is the zod form of the
 * same rule.
 *
 * Unicode normalization: an id is accepted in any normalization form and returned as it was
 * passed, not normalized and not refused when it is not NFC. Refusing non-NFC ids would
 * refuse the same id typed on another system (macOS file names and some keyboards produce
 * NFD: `Cafe\u0301`), and would break look-ups by modules that store ids in one form — audit
 * stores ids NFC and looks them up NFC, so a caller holding `Cafe\u0301` finds the session
 * logged as `Caf\u00e9`. A module that compares or stores ids normalizes them itself (audit:
 * NFC; gates compares reviewer and agent ids by their confusable skeletons); a module that
 * stores them as passed treats the two forms as two ids.
 *
 * @example
 * ```ts
 * const agentId = checkId(input.agentId, "agentId");
 * checkId("billing-agent\u200b", "agentId"); // throws: contains U+200B … at index 13.
 * ```
 * @throws {InvalidArgumentError} naming `field`, the limit and the fix.
 */
export function checkId(value: unknown, field: string, options?: IdOptions): string {
  let max = MAX_ID_LENGTH;
  if (options?.max !== undefined) {
    // Before the fast path: an Infinity, 0 or 1.5 must be reported whatever the id.
    max = options.max;
    checkMax(max, "options.max");
  }
  // The common case first: one length comparison and one regular expression.
  if (typeof value === "string" && value.length <= max && PLAIN_ID.test(value)) return value;
  if (typeof value !== "string") {
    throw new InvalidArgumentError(field, `must be a string, got ${typeOf(value)}.`, idFix(max));
  }
  const found = idProblem(value, max);
  if (found === null) return value;
  throw new InvalidArgumentError(
    field,
    found.problem,
    idFix(max),
    found.limit === undefined ? {} : { limit: found.limit },
  );
}

/**
 * Check free text (a reason, a message, a note) and return it unchanged: a string of 0 to
 * `max` UTF-16 code units, with
 *
 * - no control characters (but tab and line feed when `multiline`; carriage returns are
 *   refused: send `\n`);
 * - no bidirectional embeddings, overrides or isolates (U+202A–U+202E, U+2066–U+2069), and
 *   no bidirectional marks (U+200E LEFT-TO-RIGHT MARK, U+200F RIGHT-TO-LEFT MARK, U+061C
 *   ARABIC LETTER MARK);
 * - no invisible characters that hide or split words: U+00AD SOFT HYPHEN, U+200B ZERO WIDTH
 *   SPACE, the interlinear annotation characters U+FFF9–U+FFFB, and tag characters
 *   (U+E0000–U+E007F) except inside a flag emoji (U+1F3F4 followed by tags ending in U+E007F
 *   CANCEL TAG, e.g. the flag of England);
 * - no line or paragraph separators on a single line, and no lone surrogates.
 *
 * What emoji are made of is allowed: U+200D ZERO WIDTH JOINER (`👩‍💻`), the variation selectors
 * (`❤️`), flag tag sequences. So are U+200C ZERO WIDTH NON-JOINER (Persian and Indic scripts
 * need it) and U+2060 WORD JOINER (it keeps two words on one line).
 *
 * @example
 * ```ts
 * const reason = checkText(input.reason, "reason", { max: 2000, multiline: true });
 * ```
 * @throws {InvalidArgumentError} naming `field`, the limit and the fix.
 */
export function checkText(value: unknown, field: string, options: TextOptions): string {
  const multiline = options.multiline ?? false;
  // Before the fast path: an Infinity, 0 or 1.5 must be reported whatever the text.
  checkMax(options.max, "options.max");
  if (typeof value === "string" && value.length <= options.max) {
    if ((multiline ? PLAIN_LINES : PLAIN_LINE).test(value)) return value;
  }
  if (typeof value !== "string") {
    throw new InvalidArgumentError(
      field,
      `must be a string, got ${typeOf(value)}.`,
      textFix(options.max, multiline),
    );
  }
  const found = textProblem(value, options.max, multiline);
  if (found === null) return value;
  throw new InvalidArgumentError(
    field,
    found.problem,
    textFix(options.max, multiline),
    found.limit === undefined ? {} : { limit: found.limit },
  );
}

/** The zod form of a rule: a string schema that reports `problem(value)` with its limit and fix. */
function ruleSchema(problemOf: (value: string) => Problem | null, fix: string) {
  return z
    .string({ error: (issue) => `must be a string, got ${typeOf(issue.input)}.` })
    .superRefine((value, context) => {
      const found = problemOf(value);
      if (found !== null) {
        context.addIssue({
          code: "custom",
          message: found.problem,
          params: { fix, ...(found.limit === undefined ? {} : { limit: found.limit }) },
        });
      }
    });
}

/**
 * The zod form of {@link checkId}: the same rule and the same messages, for options and
 * request schemas (read by {@link parseOptions}, the limit and fix are kept).
 *
 * @example
 * ```ts
 * const requestSchema = z.object({ agentId: agentIdSchema, sessionId: idSchema().optional() });
 * ```
 */
export function idSchema(options: IdOptions = {}) {
  const max = options.max ?? MAX_ID_LENGTH;
  checkMax(max, "options.max");
  return ruleSchema((value) => idProblem(value, max), idFix(max));
}

/** An agent id: {@link idSchema} with the default limit, {@link MAX_ID_LENGTH}. */
export const agentIdSchema = idSchema();

/**
 * The zod form of {@link checkText}: the same rule and the same messages.
 *
 * @example
 * ```ts
 * const haltSchema = z.object({ reason: textSchema({ max: 2000, multiline: true }) });
 * ```
 */
export function textSchema(options: TextOptions) {
  checkMax(options.max, "options.max");
  const multiline = options.multiline ?? false;
  return ruleSchema(
    (value) => textProblem(value, options.max, multiline),
    textFix(options.max, multiline),
  );
}

/** Options of {@link parseOptions}. */
export interface ParseOptionsOptions {
  /** The name of the argument in messages; issue paths are appended (`options.maxBatchSize`). @default "options" */
  field?: string;
  /**
   * How to fix each option, by its dotted path inside the argument (`maxBatchSize`,
   * `pool.max`); used instead of the generic fix derived from the issue.
   */
  fixes?: Readonly<Record<string, string>>;
  /**
   * Refuse `undefined` instead of reading it as `{}` (for an options object a call cannot do
   * without). The fix is `fixes[""]` when given.
   * @default false
   */
  required?: boolean;
  /**
   * Report a refusal as this module's own subclass of {@link InvalidArgumentError} (through
   * {@link reportInvalidAs}: same field, problem, fix, limit and issues; core's error as its
   * cause), so that a module's bad input carries the module's code.
   * @default InvalidArgumentError
   */
  errorClass?: InvalidArgumentErrorClass;
}

/** The edit distance between `a` and `b` (insertions, deletions, substitutions, transpositions). */
function editDistance(a: string, b: string): number {
  const rows = a.length + 1;
  const columns = b.length + 1;
  const table: number[] = new Array(rows * columns).fill(0);
  for (let i = 0; i < rows; i++) table[i * columns] = i;
  for (let j = 0; j < columns; j++) table[j] = j;
  for (let i = 1; i < rows; i++) {
    for (let j = 1; j < columns; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(
        (table[(i - 1) * columns + j] as number) + 1,
        (table[i * columns + j - 1] as number) + 1,
        (table[(i - 1) * columns + j - 1] as number) + cost,
      );
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        best = Math.min(best, (table[(i - 2) * columns + j - 2] as number) + 1);
      }
      table[i * columns + j] = best;
    }
  }
  return table[rows * columns - 1] as number;
}

function commonPrefixLength(a: string, b: string): number {
  let length = 0;
  while (length < a.length && length < b.length && a[length] === b[length]) length++;
  return length;
}

/**
 * The known key `unknown` most likely stands for: the closest by edit distance (case
 * ignored) within a third of its length (at least 2), or the one sharing the longest
 * prefix covering most of it (`maxBatch` → `maxBatchSize`, `sweepIntervalSeconds` →
 * `sweepIntervalMs`). Undefined when none is close.
 *
 * @example
 * ```ts
 * suggestKey("maxBatchSzie", ["maxBatchSize", "timeoutMs"]); // "maxBatchSize"
 * ```
 */
export function suggestKey(unknown: string, known: readonly string[]): string | undefined {
  const lower = unknown.toLowerCase();
  const limit = Math.max(2, Math.floor(unknown.length / 3));
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const candidate of known) {
    // The distance is at least the difference in length: skip what cannot be within the
    // limit (a megabyte-long key costs no quadratic table).
    if (Math.abs(lower.length - candidate.length) > limit) continue;
    const distance = editDistance(lower, candidate.toLowerCase());
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  if (best !== undefined && bestDistance <= limit) {
    return best;
  }
  let bestPrefix = 0;
  best = undefined;
  for (const candidate of known) {
    const prefix = commonPrefixLength(lower, candidate.toLowerCase());
    if (prefix > bestPrefix) {
      best = candidate;
      bestPrefix = prefix;
    }
  }
  return bestPrefix >= 4 && bestPrefix >= unknown.length * 0.6 ? best : undefined;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null) return false;
  const prototype = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}

/** What a getter or a proxy trap threw while the options were read, and where. */
class Unreadable {
  constructor(
    readonly path: readonly PropertyKey[],
    readonly cause: unknown,
  ) {}
}

/** `run()`, with anything it throws (a getter, a proxy trap) reported as unreadable at `path`. */
function reading<T>(path: readonly PropertyKey[], run: () => T): T {
  try {
    return run();
  } catch (error) {
    throw error instanceof Unreadable ? error : new Unreadable(path, error);
  }
}

// Deeper than this, keys are left to zod (a recursive schema over a cyclic value ends here).
const MAX_WALK_DEPTH = 64;

/** The schema inside optional, nullable, default, readonly, catch, pipe and lazy wrappers. */
function unwrap(schema: z.ZodType): z.ZodType {
  let current: z.ZodType = schema;
  for (let depth = 0; depth < 16; depth++) {
    if (
      current instanceof z.ZodOptional ||
      current instanceof z.ZodNullable ||
      current instanceof z.ZodDefault ||
      current instanceof z.ZodPrefault ||
      current instanceof z.ZodReadonly ||
      current instanceof z.ZodNonOptional ||
      current instanceof z.ZodCatch
    ) {
      current = current.def.innerType as z.ZodType;
    } else if (current instanceof z.ZodPipe) {
      current = current.def.in as z.ZodType;
    } else if (current instanceof z.ZodLazy) {
      current = current.def.getter() as z.ZodType;
    } else {
      return current;
    }
  }
  return current;
}

/**
 * The keys an object schema (or an intersection of object schemas) names, and whether it
 * accepts others (a catchall or loose object); undefined when the schema is not an object.
 */
function objectShape(
  schema: z.ZodType,
): { shape: Record<string, z.ZodType>; open: boolean } | undefined {
  const inner = unwrap(schema);
  if (inner instanceof z.ZodObject) {
    const catchall = inner.def.catchall;
    return {
      shape: inner.shape as Record<string, z.ZodType>,
      open: catchall !== undefined && !(catchall instanceof z.ZodNever),
    };
  }
  if (inner instanceof z.ZodIntersection) {
    // Each side parses the whole value and drops what it does not name: a key is unknown
    // when neither side names it.
    const left = objectShape(inner.def.left as z.ZodType);
    const right = objectShape(inner.def.right as z.ZodType);
    if (left === undefined || right === undefined) return undefined;
    return { shape: { ...right.shape, ...left.shape }, open: left.open || right.open };
  }
  return undefined;
}

/** What walking the options found: the unknown keys, reported as issues. */
interface Walk {
  field: string;
  fixes: Readonly<Record<string, string>>;
  issues: InputIssue[];
}

function unknownKeyIssue(
  walk: Walk,
  path: readonly PropertyKey[],
  key: string,
  known: readonly string[],
): InputIssue {
  const suggestion = suggestKey(key, known);
  const keyPath = [...path, key];
  return {
    field: joinPath(walk.field, keyPath),
    problem:
      suggestion === undefined
        ? "is not an option."
        : `is not an option; did you mean \`${suggestion}\`?`,
    fix:
      walk.fixes[fixKey(keyPath)] ??
      (suggestion === undefined
        ? `Remove it; the options are ${known.map((name) => `\`${name}\``).join(", ")}.`
        : `Rename it to \`${suggestion}\`.`),
  };
}

/** Walk `items` of an array-like value, each with the schema `schemaAt(index)` gives. */
function walkItems(
  value: unknown,
  schemaAt: (index: number) => z.ZodType | undefined,
  path: readonly PropertyKey[],
  walk: Walk,
): void {
  if (!reading(path, () => Array.isArray(value))) return;
  const items = value as readonly unknown[];
  const length = reading(path, () => items.length);
  for (let index = 0; index < length; index++) {
    const itemSchema = schemaAt(index);
    if (itemSchema === undefined) return;
    const itemPath = [...path, index];
    walkKeys(
      itemSchema,
      reading(itemPath, () => items[index]),
      itemPath,
      walk,
    );
  }
}

/**
 * Issues for keys that no schema names, wherever the schema is an object: at the top, in
 * nested objects, array elements and tuple items, record values, intersections of objects,
 * and the branch of a union that the value matches (the branch zod keeps). Reads each value
 * once, as zod does, so a getter or proxy trap that throws is reported with its path.
 */
function walkKeys(
  schema: z.ZodType,
  value: unknown,
  path: readonly PropertyKey[],
  walk: Walk,
): void {
  if (value === undefined || value === null || typeof value !== "object") return;
  if (path.length > MAX_WALK_DEPTH) return;
  const inner = unwrap(schema);
  const object = objectShape(inner);
  if (object !== undefined) {
    if (!reading(path, () => isPlainObject(value))) return;
    const { shape, open } = object;
    const known = Object.keys(shape);
    if (!open) {
      for (const key of reading(path, () => Object.keys(value))) {
        if (!Object.hasOwn(shape, key)) walk.issues.push(unknownKeyIssue(walk, path, key, known));
      }
    }
    for (const key of known) {
      const keyPath = [...path, key];
      const child = reading(keyPath, () => (value as Record<string, unknown>)[key]);
      walkKeys(shape[key] as z.ZodType, child, keyPath, walk);
    }
    return;
  }
  if (inner instanceof z.ZodArray) {
    walkItems(value, () => inner.def.element as z.ZodType, path, walk);
  } else if (inner instanceof z.ZodTuple) {
    const items = inner.def.items as readonly z.ZodType[];
    const rest = (inner.def.rest ?? undefined) as z.ZodType | undefined;
    walkItems(value, (index) => items[index] ?? rest, path, walk);
  } else if (inner instanceof z.ZodRecord) {
    if (!reading(path, () => isPlainObject(value))) return;
    for (const key of reading(path, () => Object.keys(value))) {
      const keyPath = [...path, key];
      const child = reading(keyPath, () => (value as Record<string, unknown>)[key]);
      walkKeys(inner.def.valueType as z.ZodType, child, keyPath, walk);
    }
  } else if (inner instanceof z.ZodUnion) {
    // The first branch that accepts the value is the one zod keeps: its keys are the known
    // ones. When none accepts it, zod reports the union itself.
    const options = inner.def.options as readonly z.ZodType[];
    const branch = options.find((option) => reading(path, () => option.safeParse(value).success));
    if (branch !== undefined) walkKeys(branch, value, path, walk);
  }
}

// A key shown as it is in a path (`options.maxBatchSize`); any other is quoted and escaped.
const PLAIN_KEY = /^[A-Za-z0-9_$-]{1,64}$/;
// The longest part of a key repeated in a message, in UTF-16 code units.
const MAX_KEY_SHOWN = 64;

/**
 * A key as a message may show it: a plain name as it is, anything else quoted with every
 * character but printable ASCII escaped (`\n`, `\u202e`: no forged log line, no reordered
 * text) and cut at {@link MAX_KEY_SHOWN} code units (`…`). Keys are the caller's data too.
 */
function keyLabel(key: string): string {
  if (PLAIN_KEY.test(key)) return `.${key}`;
  let shown = key;
  if (key.length > MAX_KEY_SHOWN) {
    const cut = /[\ud800-\udbff]/.test(key[MAX_KEY_SHOWN - 1] ?? "")
      ? MAX_KEY_SHOWN - 1
      : MAX_KEY_SHOWN;
    shown = key.slice(0, cut);
  }
  const escaped = JSON.stringify(shown)
    .slice(1, -1)
    .replace(
      /[^\x20-\x7e]/g,
      (character) => `\\u${character.charCodeAt(0).toString(16).padStart(4, "0")}`,
    );
  return `["${escaped}${shown.length < key.length ? "…" : ""}"]`;
}

function joinPath(field: string, path: readonly PropertyKey[]): string {
  let joined = field;
  for (const part of path) {
    joined += typeof part === "number" ? `[${part}]` : keyLabel(String(part));
  }
  return joined;
}

/** The path inside the argument as {@link ParseOptionsOptions.fixes} names it: `pool.max`. */
function fixKey(path: readonly PropertyKey[]): string {
  return path.filter((part) => typeof part === "string").join(".");
}

function bound(issue: { maximum?: unknown; minimum?: unknown }): number | undefined {
  const limit = issue.maximum ?? issue.minimum;
  if (typeof limit === "number") return limit;
  if (typeof limit === "bigint") return Number(limit);
  return undefined;
}

function sizeOf(origin: unknown, input: unknown): string {
  if (typeof input === "string") return `${input.length} characters long`;
  if (Array.isArray(input)) return `a list of ${input.length} items`;
  if (input instanceof Date) return "a Date";
  if (input instanceof Set || input instanceof Map) return `${input.size} entries`;
  return origin === "number" || origin === "bigint" ? describeValue(input) : typeOf(input);
}

/** The problem zod found, as the end of a sentence that starts with the field. */
const problemMessages: z.core.$ZodErrorMap = (issue) => {
  switch (issue.code) {
    case "invalid_type":
      return `must be ${issue.expected === "int" ? "an integer" : `a ${issue.expected}`}, got ${
        typeof issue.input === "number" ? describeValue(issue.input) : typeOf(issue.input)
      }.`;
    case "too_big":
      return `is ${sizeOf(issue.origin, issue.input)}; the ${
        issue.origin === "string" || issue.origin === "array" ? "limit" : "maximum"
      } is ${String(issue.maximum)}${issue.inclusive === false ? " (exclusive)" : ""}.`;
    case "too_small":
      return `is ${sizeOf(issue.origin, issue.input)}; the minimum is ${String(issue.minimum)}${
        issue.inclusive === false ? " (exclusive)" : ""
      }.`;
    case "invalid_value":
      return `is not one of ${issue.values.map((value) => JSON.stringify(String(value))).join(", ")}.`;
    case "not_multiple_of":
      return `must be a multiple of ${String(issue.divisor)}.`;
    case "invalid_format":
      return `is not a valid ${issue.format}.`;
    case "invalid_union":
      return "matches none of the accepted forms.";
    default:
      return undefined;
  }
};

function defaultFix(issue: z.core.$ZodIssue): string {
  switch (issue.code) {
    case "too_big":
      return `Use a value of at most ${String(issue.maximum)}${issue.origin === "string" ? " characters" : ""}.`;
    case "too_small":
      return `Use a value of at least ${String(issue.minimum)}${issue.origin === "string" ? " characters" : ""}.`;
    case "invalid_value":
      return `Use one of ${issue.values.map((value) => JSON.stringify(String(value))).join(", ")}.`;
    case "invalid_type":
      return `Pass ${issue.expected === "int" ? "an integer" : `a ${issue.expected}`}.`;
    default:
      return "Correct the value; see the options table in the README.";
  }
}

function inputIssue(
  issue: z.core.$ZodIssue,
  field: string,
  fixes: Readonly<Record<string, string>>,
): InputIssue {
  const params = issue.code === "custom" ? (issue.params as Record<string, unknown>) : undefined;
  const paramLimit = typeof params?.limit === "number" ? params.limit : undefined;
  const limit = issue.code === "too_big" || issue.code === "too_small" ? bound(issue) : paramLimit;
  const fix =
    fixes[fixKey(issue.path)] ??
    (typeof params?.fix === "string" ? params.fix : undefined) ??
    defaultFix(issue);
  const problem = /[.?!]$/.test(issue.message) ? issue.message : `${issue.message}.`;
  return {
    field: joinPath(field, issue.path),
    problem,
    fix,
    ...(limit === undefined ? {} : { limit }),
  };
}

/**
 * Parse an options object with its zod schema — the one way every public function and
 * constructor reads its options. `undefined` reads as `{}` (no options); anything else
 * but a plain object is refused; zod's issues become one {@link InvalidArgumentError} naming
 * the first (`options.maxBatchSize`), its limit and fix, with every issue in `.issues` and
 * listed in the message. Values are never repeated in a message (a string shows only its
 * length).
 *
 * Keys the schema does not name are refused with a "did you mean", wherever the schema is
 * an object: at the top, in nested objects, in array elements and tuple items
 * (`options.sinks[1].timeotMs`), in record values, in intersections of objects (a key neither
 * side names), and in the branch of a union (or discriminated union) that the value matches —
 * the first branch that accepts it, the one whose output zod keeps. Not followed: a union no
 * branch accepts (zod's own "matches none of the accepted forms" is reported), loose and
 * catchall objects (any key is accepted), the inside of `z.preprocess`, `z.custom`, maps and
 * sets, and values nested deeper than 64 levels. A key the caller passed is shown as it is
 * when it is a plain name (`options.max-batch`); any other is quoted, escaped to printable
 * ASCII and cut at 64 characters (`options["x\nlevel=error"]`), so a key never forges a log
 * line or reorders a message.
 *
 * A getter or proxy trap that throws while the options are read becomes an
 * {@link InvalidArgumentError} naming the property ("could not be read"), with what was thrown
 * as its `cause` — never a raw error.
 *
 * @example
 * ```ts
 * const options = parseOptions(writerOptionsSchema, input, {
 *   fixes: { maxBatchSize: "Use an integer from 1 to 10000 (default 500)." },
 * });
 * parseOptions(writerOptionsSchema, { maxBatch: 10 });
 * // throws: Invalid options.maxBatch: is not an option; did you mean `maxBatchSize`?
 * ```
 * @throws {InvalidArgumentError} `INVALID_ARGUMENT`
 */
export function parseOptions<Schema extends z.ZodType>(
  schema: Schema,
  value: unknown,
  options: ParseOptionsOptions = {},
): z.output<Schema> {
  const errorClass = options.errorClass;
  if (errorClass === undefined) return readOptions(schema, value, options);
  try {
    return readOptions(schema, value, options);
  } catch (error) {
    if (isGovernanceError(error) && InvalidArgumentError.isInstance(error))
      throw reportInvalidAs(errorClass, error);
    throw error;
  }
}

/** True for a real governance error; false for anything else, including what throws when looked at. */
function isGovernanceError(value: unknown): value is GovernanceError {
  try {
    return value instanceof Error && GovernanceError.isInstance(value);
  } catch {
    return false;
  }
}

function readOptions<Schema extends z.ZodType>(
  schema: Schema,
  value: unknown,
  options: ParseOptionsOptions,
): z.output<Schema> {
  const field = options.field ?? "options";
  const fixes = options.fixes ?? {};
  if (value === undefined && options.required) {
    throw new InvalidArgumentError(
      field,
      "must be an object, got undefined.",
      fixes[""] ?? "Pass an object of options.",
    );
  }
  const input = value === undefined ? {} : value;
  // The fix says why it could not be read, whatever `fixes` says about the option's value.
  const unreadable = (path: readonly PropertyKey[], cause: unknown) =>
    new InvalidArgumentError(
      joinPath(field, path),
      "could not be read.",
      "Pass plain data: an object whose properties are values, not getters or proxies that throw.",
      { cause },
    );
  let plain: boolean;
  try {
    plain = isPlainObject(input);
  } catch (error) {
    throw unreadable([], error);
  }
  if (!plain) {
    throw new InvalidArgumentError(
      field,
      `must be a plain object, got ${typeOf(input)}.`,
      fixes[""] ??
        (options.required
          ? "Pass an object of options."
          : "Pass an object of options, e.g. { timeoutMs: 5000 }, or nothing."),
    );
  }
  const issues: InputIssue[] = [];
  let result: ReturnType<Schema["safeParse"]>;
  try {
    walkKeys(schema, input, [], { field, fixes, issues });
    result = schema.safeParse(input, { reportInput: true, error: problemMessages }) as ReturnType<
      Schema["safeParse"]
    >;
  } catch (error) {
    if (error instanceof Unreadable) throw unreadable(error.path, error.cause);
    // A refinement of the schema may refuse with a governance error of its own: keep it (a
    // real one: an Error with the marker, not a thrown object that forges it or whose traps
    // throw when looked at).
    if (isGovernanceError(error)) throw error;
    // Anything else was thrown while zod read the value again (a getter that throws on its
    // second read) or by the schema itself: never a raw error.
    throw unreadable([], error);
  }
  if (!result.success) {
    for (const issue of result.error.issues) {
      if (issue.code === "unrecognized_keys") {
        // A strict schema reports what walkKeys already did, without the suggestion.
        const already = new Set(issues.map((found) => found.field));
        for (const key of issue.keys) {
          const keyField = joinPath(field, [...issue.path, key]);
          if (!already.has(keyField)) {
            issues.push({
              field: keyField,
              problem: "is not an option.",
              fix: fixes[fixKey([...issue.path, key])] ?? "Remove it.",
            });
          }
        }
        continue;
      }
      issues.push(inputIssue(issue, field, fixes));
    }
  }
  const first = issues[0];
  if (first !== undefined) {
    throw new InvalidArgumentError(first.field, first.problem, first.fix, {
      issues,
      ...(first.limit === undefined ? {} : { limit: first.limit }),
    });
  }
  return (result as { data: z.output<Schema> }).data;
}
