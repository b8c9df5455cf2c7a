/**
 * How `guard()`'s `no_pii` and `blockedKeywords` read text before they search it, beyond what
 * `@gov/core`'s confusable folding does: control characters removed, number forms read as the
 * digits they show, and the Latin letter look-alikes that Unicode's confusables data does not
 * list read as the letters they imitate.
 */
import { matchingForms } from "@gov/core";

/** Printable ASCII needs none of the folds of this module. */
const PRINTABLE_ASCII = /^[\x20-\x7e]*$/;

/**
 * The C0 and C1 control characters that are not white space (NUL, U+0001…U+0008, U+000E…U+001F,
 * DEL, U+0080…U+009F but U+0085): invisible in most renderings, so an agent can put them inside
 * a number, an address or a word. Tab, line feed, vertical tab, form feed, carriage return and
 * U+0085 NEXT LINE are white space and read as blanks instead.
 */
const CONTROL = /(?![\t\n\v\f\r\u0085])\p{Cc}/u;
const CONTROLS = new RegExp(CONTROL.source, "gu");

/**
 * `text` without its control characters (see {@link CONTROL}).
 *
 * @example
 * stripControls("pass\u0000word"); // "password"
 */
export function stripControls(text: string): string {
  if (PRINTABLE_ASCII.test(text)) return text;
  return CONTROL.test(text) ? text.replace(CONTROLS, "") : text;
}

/**
 * Number forms that stand for digits but have no compatibility decomposition to them: runs of
 * consecutive code points, each `[first code point, count, value of the first]`.
 */
const UNDECOMPOSED_NUMBERS: readonly (readonly [number, number, number])[] = [
  [0x2776, 10, 1], // ❶…❿ dingbat negative circled digits
  [0x2780, 10, 1], // ➀…➉ dingbat circled sans-serif digits
  [0x278a, 10, 1], // ➊…➓ dingbat negative circled sans-serif digits
  [0x24eb, 10, 11], // ⓫…⓴ negative circled numbers 11 to 20
  [0x24f5, 10, 1], // ⓵…⓾ double circled digits
  [0x24ff, 1, 0], // ⓿ negative circled digit zero
  [0x1f10b, 1, 0], // 🄋 dingbat circled sans-serif digit zero
  [0x1f10c, 1, 0], // 🄌 dingbat negative circled sans-serif digit zero
  [0x1369, 9, 1], // ፩…፱ Ethiopic digits
];

const NUMBER_FORM = /\p{No}/gu;
const numberForms = new Map<string, string>();

/**
 * The digits a number form (`\p{No}`) shows, or the character itself: `⑷` (NFKD `(4)`), `⒋`
 * (`4.`), `🄁` (`0,`) and `⑩` read as their digits, the dingbat and double-circled digits
 * (`➍`, `❹`, `⓸`) from {@link UNDECOMPOSED_NUMBERS}; fractions and other numbers are kept.
 */
function numberDigits(character: string): string {
  let digits = numberForms.get(character);
  if (digits === undefined) {
    const decomposed = character.normalize("NFKD").replace(/[().,]/g, "");
    digits = /^[0-9]+$/.test(decomposed) ? decomposed : character;
    const code = character.codePointAt(0) ?? 0;
    for (const [first, count, value] of UNDECOMPOSED_NUMBERS) {
      if (code >= first && code < first + count) digits = String(value + code - first);
    }
    if (numberForms.size < 1_024) numberForms.set(character, digits);
  }
  return digits;
}

/**
 * `text` with every number form that shows digits read as those ASCII digits (see
 * {@link numberDigits}), before a compatibility decomposition would turn `⑷` into `(4)`.
 *
 * @example
 * foldNumberForms("➍➊⑴⒈"); // "4111"
 */
export function foldNumberForms(text: string): string {
  if (PRINTABLE_ASCII.test(text)) return text;
  return text.replace(NUMBER_FORM, numberDigits);
}

/**
 * Letters that imitate Latin letters without being listed in Unicode's confusables data (nor
 * folded by NFKC), with the letter each imitates: small capitals (`ᴘᴀꜱꜱᴡᴏʀᴅ`), negative
 * circled and negative squared capitals (`🅟`, `🅿`), parenthesized small and capital letters
 * (`⒫`, `🄟`: NFKC makes them `(p)`), and regional indicator symbols (`🇵`, which render as
 * flags in pairs but read as letters).
 */
const LETTER_LOOK_ALIKES: ReadonlyMap<number, string> = (() => {
  const table = new Map<number, string>();
  const smallCapitals: Record<string, number> = {
    a: 0x1d00,
    b: 0x0299,
    c: 0x1d04,
    d: 0x1d05,
    e: 0x1d07,
    f: 0xa730,
    g: 0x0262,
    h: 0x029c,
    i: 0x026a,
    j: 0x1d0a,
    k: 0x1d0b,
    l: 0x029f,
    m: 0x1d0d,
    n: 0x0274,
    o: 0x1d0f,
    p: 0x1d18,
    q: 0xa7af,
    r: 0x0280,
    s: 0xa731,
    t: 0x1d1b,
    u: 0x1d1c,
    v: 0x1d20,
    w: 0x1d21,
    y: 0x028f,
    z: 0x1d22,
  };
  for (const [letter, code] of Object.entries(smallCapitals)) table.set(code, letter);
  for (let index = 0; index < 26; index++) {
    const letter = String.fromCharCode(0x61 + index);
    table.set(0x249c + index, letter); // ⒜…⒵ parenthesized small letters
    table.set(0x1f110 + index, letter); // 🄐…🄩 parenthesized capitals
    table.set(0x1f150 + index, letter); // 🅐…🅩 negative circled capitals
    table.set(0x1f170 + index, letter); // 🅰…🆉 negative squared capitals
    table.set(0x1f1e6 + index, letter); // 🇦…🇿 regional indicator symbols
  }
  return table;
})();

const LETTER_LOOK_ALIKE = new RegExp(
  `[${[...LETTER_LOOK_ALIKES.keys()].map((code) => `\\u{${code.toString(16)}}`).join("")}]`,
  "gu",
);

/**
 * `text` with the letter look-alikes of {@link LETTER_LOOK_ALIKES} read as the Latin letters
 * they imitate: a supplement to Unicode's confusables data for keyword matching only (core's
 * confusable skeleton stays Unicode's).
 *
 * @example
 * foldLetterLookAlikes("ᴘᴀꜱꜱᴡᴏʀᴅ 🅿🅰🆂🆂"); // "password pass"
 */
export function foldLetterLookAlikes(text: string): string {
  if (PRINTABLE_ASCII.test(text)) return text;
  return text.replace(
    LETTER_LOOK_ALIKE,
    (character) => LETTER_LOOK_ALIKES.get(character.codePointAt(0) ?? 0) ?? character,
  );
}

/**
 * The forms in which `blockedKeywords` compares text (a keyword, or a text searched for
 * keywords): control characters removed, number forms read as digits, the letter look-alikes
 * Unicode does not list folded ({@link foldLetterLookAlikes}), then `@gov/core`'s
 * `matchingForms` (NFKC, invisible characters, combining marks, case and Unicode's
 * confusables). Search with core's `containsLookAlike(forms, keywordForms)`.
 *
 * @example
 * containsLookAlike(keywordForms("send the ᴘᴀꜱꜱ\u0000ᴡᴏʀᴅ"), keywordForms("password")); // true
 */
export function keywordForms(text: string): readonly string[] {
  return matchingForms(foldLetterLookAlikes(foldNumberForms(stripControls(text))));
}
