/**
 * The `no_pii` detectors of `guard()`: e-mail addresses, phone numbers, payment card numbers
 * (Luhn-valid only) and national id numbers (US SSN, UK National Insurance number).
 */

/** Which kind of personal data was found. */
export type PiiKind = "email" | "phone" | "card" | "national_id";

// Bounded parts (local ≤ 64, labels ≤ 63): linear time on long runs without an @.
const EMAIL = /[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})*\.[A-Za-z]{2,63}/;
// Formatted phone numbers: a leading + with 8 to 15 digits, a grouped 3-3-4 number, or a
// national number with a trunk 0 in groups (UK `020 7946 0958`, `07700 900123`).
// A bare run of digits (an order number) is not a phone number.
const PHONE_INTERNATIONAL = /(?<![\w+])\+\d{1,3}(?:[\s.-]?\(?\d{1,4}\)?){2,5}(?!\w)/g;
const PHONE_GROUPED = /(?<!\d)(?:\(\d{3}\)\s?|\d{3}[\s.-])\d{3}[\s.-]\d{4}(?!\d)/;
const PHONE_NATIONAL = /(?<![\w+.-])\(?0\d{1,4}\)?[\s-]\d{3,4}(?:[\s-]?\d{3,4})?(?![\w.-])/g;
// Runs of digits, optionally separated by single spaces, dashes or dots: each run's digits
// are searched for a card number in every 13-to-19-digit window.
const DIGIT_RUN = /\d(?:[ .-]?\d){12,}/g;
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
  const length = digits.length;
  const p2 = Number(digits.slice(0, 2));
  const p3 = Number(digits.slice(0, 3));
  const p4 = Number(digits.slice(0, 4));
  if (digits[0] === "4") return length === 13 || length === 16 || length === 19;
  if ((p2 >= 51 && p2 <= 55) || (p4 >= 2221 && p4 <= 2720)) return length === 16;
  if (p2 === 34 || p2 === 37) return length === 15;
  if (p4 >= 3528 && p4 <= 3589) return length >= 16;
  if ((p3 >= 300 && p3 <= 305) || p2 === 36 || p2 === 38 || p2 === 39) return length >= 14;
  if (p2 === 50 || (p2 >= 56 && p2 <= 69)) return true;
  return false;
}

/** Whether some 13-to-19-digit window of `digits` is a plausible, Luhn-valid card number. */
function containsCard(digits: string): boolean {
  for (let start = 0; start + 13 <= digits.length; start++) {
    const first = digits[start];
    if (first !== "2" && first !== "3" && first !== "4" && first !== "5" && first !== "6") continue;
    for (let length = 13; length <= 19 && start + length <= digits.length; length++) {
      const window = digits.slice(start, start + length);
      if (plausibleCardPrefix(window) && luhnValid(window)) return true;
    }
  }
  return false;
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

/** The kinds of personal data found in `text` (empty when none). */
export function detectPii(input: string): PiiKind[] {
  const found: PiiKind[] = [];
  // Full-width and other compatibility digits and signs read as their plain forms.
  const text = /[^\p{ASCII}]/u.test(input) ? input.normalize("NFKC") : input;
  if (text.includes("@") && EMAIL.test(text)) found.push("email");
  card: for (const match of text.matchAll(DIGIT_RUN)) {
    // A single dot is a decimal point: the fraction (0.4111…) is no card.
    const pieces = match[0].split(".");
    const parts = pieces.length === 2 ? [pieces[0] ?? ""] : [match[0]];
    for (const part of parts) {
      if (containsCard(part.replace(/[ .-]/g, ""))) {
        found.push("card");
        break card;
      }
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

/** Most strings scanned in one value, and the deepest nesting, before the scan denies. */
export const PII_SCAN_LIMITS = { strings: 10_000, depth: 32 } as const;

/**
 * Whether a value holds personal data: every string, number and bigint in it — object keys
 * and values, arrays, `Map` keys and values, `Set` members — is checked. A value too large
 * or too deep to scan completely (see {@link PII_SCAN_LIMITS}) counts as holding personal
 * data: the scan fails closed.
 */
export function containsPii(value: unknown): boolean {
  let strings = 0;
  const seen = new WeakSet<object>();
  const visit = (item: unknown, depth: number): boolean => {
    if (typeof item === "string" || typeof item === "number" || typeof item === "bigint") {
      strings++;
      if (strings > PII_SCAN_LIMITS.strings) return true;
      // A fractional number is no card, phone or id (nor are NaN and the infinities).
      if (typeof item === "number" && !Number.isInteger(item)) return false;
      return detectPii(String(item)).length > 0;
    }
    if (typeof item !== "object" || item === null) return false;
    if (depth > PII_SCAN_LIMITS.depth) return true;
    if (seen.has(item)) return false;
    seen.add(item);
    if (item instanceof Map) {
      for (const [key, entry] of item) {
        if (visit(key, depth + 1) || visit(entry, depth + 1)) return true;
      }
      return false;
    }
    if (item instanceof Set || Array.isArray(item)) {
      for (const entry of item) if (visit(entry, depth + 1)) return true;
      return false;
    }
    for (const [key, entry] of Object.entries(item)) {
      if (visit(key, depth + 1) || visit(entry, depth + 1)) return true;
    }
    return false;
  };
  return visit(value, 0);
}
