/**
 * Exact money. Rates and amounts are held as integers of femto-dollars (10⁻¹⁵ USD), so that
 * sums and products are exact: a rate in USD per million tokens with up to 9 decimal places
 * is a whole number of femto-dollars per token, and tokens × rate is exact in bigint.
 */

/** Decimal places of a femto-dollar. */
export const FEMTO_DIGITS = 15;

/** Decimal places a rate in USD per million tokens may have (10⁻⁹ USD/M = 1 femto-dollar per token). */
export const RATE_DIGITS = 9;

const DECIMAL = /^(\d+)(?:\.(\d*))?(?:e([+-]?\d+))?$/i;

/** Why a decimal could not be read exactly. */
export type DecimalProblem = { problem: string };

/**
 * Read a non-negative decimal (a number, read through its shortest round-trip form, or a
 * string such as `"2.5"` or `"1.9e-08"`) as an integer number of `10^-digits` units.
 * Returns a problem instead of rounding: a value with more decimal places is refused.
 */
export function decimalToUnits(value: number | string, digits: number): bigint | DecimalProblem {
  let text: string;
  if (typeof value === "number") {
    if (!Number.isFinite(value)) return { problem: `must be a finite number, got ${value}.` };
    if (value < 0) return { problem: `must not be negative, got ${value}.` };
    text = String(value);
  } else {
    text = value.trim();
    if (text !== value || text === "") {
      return { problem: `must be a decimal number such as "2.5", got ${JSON.stringify(value)}.` };
    }
  }
  const match = DECIMAL.exec(text);
  if (!match) {
    return {
      problem: text.startsWith("-")
        ? `must not be negative, got ${text}.`
        : `must be a decimal number such as "2.5", got ${JSON.stringify(value)}.`,
    };
  }
  const whole = match[1] ?? "0";
  const fraction = match[2] ?? "";
  const exponent = Number(match[3] ?? "0");
  if (!Number.isSafeInteger(exponent) || Math.abs(exponent) > 400) {
    return { problem: `is out of range, got ${text}.` };
  }
  const digitsText = `${whole}${fraction}`.replace(/^0+(?=\d)/, "");
  const shift = exponent - fraction.length + digits;
  if (shift >= 0) return BigInt(digitsText) * 10n ** BigInt(shift);
  const cut = -shift;
  const kept = digitsText.length > cut ? digitsText.slice(0, digitsText.length - cut) : "0";
  const dropped = digitsText.slice(Math.max(0, digitsText.length - cut)).padStart(cut, "0");
  if (/[^0]/.test(dropped)) {
    return {
      problem: `has more than ${digits} decimal places (${text}); it cannot be held exactly.`,
    };
  }
  return BigInt(kept);
}

/** True when {@link decimalToUnits} returned a problem. */
export function isDecimalProblem(value: bigint | DecimalProblem): value is DecimalProblem {
  return typeof value !== "bigint";
}

/** An integer of `10^-digits` units as an exact decimal string, without trailing zeros (`2.5`, `0.000000075`). */
export function unitsToDecimal(units: bigint, digits: number): string {
  const negative = units < 0n;
  const text = (negative ? -units : units).toString().padStart(digits + 1, "0");
  const whole = text.slice(0, text.length - digits);
  const fraction = text.slice(text.length - digits).replace(/0+$/, "");
  return `${negative ? "-" : ""}${whole}${fraction ? `.${fraction}` : ""}`;
}

/** Femto-dollars as an exact decimal USD string. */
export function femtoToUsd(femto: bigint): string {
  return unitsToDecimal(femto, FEMTO_DIGITS);
}

/** A rate (femto-dollars per token) as an exact decimal string of USD per million tokens. */
export function rateToUsdPerMillion(femtoPerToken: bigint): string {
  return unitsToDecimal(femtoPerToken, RATE_DIGITS);
}

/** A decimal string without trailing zeros, as events and alerts show it: `0.500000000000000` → `0.5`. */
export function trimDecimal(value: string | undefined): string {
  if (value === undefined) return "0";
  if (!value.includes(".")) return value;
  const trimmed = value.replace(/0+$/, "").replace(/\.$/, "");
  return trimmed === "" ? "0" : trimmed;
}
