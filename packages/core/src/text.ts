/**
 * Text that is signed, stored and shown must read as what it is: no control characters, no
 * bidirectional overrides that make text read other than it is, no half characters.
 */

/** A character class of the given code point ranges (written as escapes, not literals). */
function characters(ranges: readonly (readonly [number, number])[], flags = ""): RegExp {
  const hex = (code: number) => `\\u${code.toString(16).padStart(4, "0")}`;
  return new RegExp(`[${ranges.map(([from, to]) => `${hex(from)}-${hex(to)}`).join("")}]`, flags);
}

// C0 and C1 controls, and the bidirectional overrides.
const BIDI: readonly (readonly [number, number])[] = [
  [0x202a, 0x202e],
  [0x2066, 0x2069],
];
const IN_NAMES: readonly (readonly [number, number])[] = [[0x00, 0x1f], [0x7f, 0x9f], ...BIDI];
// In free text, tab, line feed and carriage return are kept.
const IN_TEXT: readonly (readonly [number, number])[] = [
  [0x00, 0x08],
  [0x0b, 0x0c],
  [0x0e, 0x1f],
  [0x7f, 0x9f],
  ...BIDI,
];
const REPLACE_IN_NAMES = characters(IN_NAMES, "g");
const REPLACE_IN_TEXT = characters(IN_TEXT, "g");
const FIND_IN_NAMES = characters(IN_NAMES);
const FIND_IN_TEXT = characters(IN_TEXT);
const REPLACEMENT = "\ufffd";

/** Printable ASCII: already NFC, nothing to neutralize (the common case, made cheap). */
const PRINTABLE_ASCII = /^[\x20-\x7e]*$/;

/** Lone surrogates (half of a character) become U+FFFD. */
function wellFormed(value: string): string {
  return (value as string & { toWellFormed(): string }).toWellFormed();
}

/** NFC, with control and bidi-override characters (and lone surrogates) replaced by U+FFFD. */
export function sanitizeName(value: string): string {
  if (PRINTABLE_ASCII.test(value)) return value;
  return wellFormed(value).normalize("NFC").replace(REPLACE_IN_NAMES, REPLACEMENT);
}

/** NFC, with control characters (but tab and line breaks) and lone surrogates replaced by U+FFFD. */
export function sanitizeText(value: string): string {
  if (PRINTABLE_ASCII.test(value)) return value;
  return wellFormed(value).normalize("NFC").replace(REPLACE_IN_TEXT, REPLACEMENT);
}

/**
 * Whether `value` holds a control or bidi-override character — in a name, or with
 * `multiline`, in free text (where tab and line breaks are allowed).
 */
export function hasControlCharacters(
  value: string,
  options: { multiline?: boolean } = {},
): boolean {
  return (options.multiline ? FIND_IN_TEXT : FIND_IN_NAMES).test(value);
}
