/**
 * The `no_pii` detectors of `guard()`: e-mail addresses, phone numbers, payment card numbers
 * (Luhn-valid only) and national id numbers (US SSN, UK National Insurance number).
 */

/** Which kind of personal data was found. */
export type PiiKind = "email" | "phone" | "card" | "national_id";

const EMAIL = /[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}/;
// Formatted phone numbers: a leading + with 8 to 15 digits, or a grouped 3-3-4 number.
// A bare run of digits (an order number) is not a phone number.
const PHONE_INTERNATIONAL = /(?<![\w+])\+\d{1,3}(?:[\s.-]?\(?\d{1,4}\)?){2,5}(?!\w)/g;
const PHONE_GROUPED = /(?<!\d)(?:\(\d{3}\)\s?|\d{3}[\s.-])\d{3}[\s.-]\d{4}(?!\d)/;
// 13 to 19 digits, optionally in groups separated by single spaces or dashes.
const CARD_CANDIDATE = /(?<!\d)\d(?:[ -]?\d){12,18}(?!\d)/g;
const SSN = /(?<!\d)(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?!\d)/;
const NINO =
  /\b(?![DFIQUV])[A-CEGHJ-PR-TW-Z](?![DFIOQUV])[A-CEGHJ-NPR-TW-Z]\s?\d{2}\s?\d{2}\s?\d{2}\s?[A-D]\b/;

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
export function detectPii(text: string): PiiKind[] {
  const found: PiiKind[] = [];
  if (EMAIL.test(text)) found.push("email");
  for (const match of text.matchAll(CARD_CANDIDATE)) {
    const digits = match[0].replace(/[ -]/g, "");
    if (digits.length >= 13 && digits.length <= 19 && luhnValid(digits)) {
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
  if (phone) found.push("phone");
  if (SSN.test(text) || NINO.test(text)) found.push("national_id");
  return found;
}

/** Every string in a value (objects and arrays walked, at most 10,000 strings, depth 32). */
export function stringsOf(value: unknown, out: string[] = [], depth = 0): string[] {
  if (out.length >= 10_000 || depth > 32) return out;
  if (typeof value === "string") out.push(value);
  else if (typeof value === "number" || typeof value === "bigint") out.push(String(value));
  else if (Array.isArray(value)) for (const item of value) stringsOf(item, out, depth + 1);
  else if (typeof value === "object" && value !== null)
    for (const item of Object.values(value)) stringsOf(item, out, depth + 1);
  return out;
}
