import { describe, expect, it } from "vitest";
import { decimalToUnits, femtoToUsd, RATE_DIGITS, unitsToDecimal } from "./money";

describe("decimalToUnits", () => {
  it("reads numbers through their shortest round-trip form, exactly", () => {
    expect(decimalToUnits(0.075, RATE_DIGITS)).toBe(75_000_000n);
    expect(decimalToUnits(2.5, RATE_DIGITS)).toBe(2_500_000_000n);
    expect(decimalToUnits(0.1 + 0.2, 17)).toBe(30_000_000_000_000_004n); // the float, not 0.3
  });

  it("reads exponent forms as LiteLLM writes them", () => {
    expect(decimalToUnits(1.9e-8, 15)).toBe(19_000_000n);
    expect(decimalToUnits("2.1875e-06", 15)).toBe(2_187_500_000n);
    expect(decimalToUnits("1.5E+2", 0)).toBe(150n);
    expect(decimalToUnits("3.", 2)).toBe(300n);
  });

  it("refuses rather than rounds when there are too many decimal places", () => {
    expect(decimalToUnits("0.0000000001", RATE_DIGITS)).toEqual({
      problem: expect.stringContaining("more than 9 decimal places"),
    });
    expect(decimalToUnits("0.0000000010", RATE_DIGITS)).toBe(1n);
  });

  it("refuses negatives, non-finite numbers and text that is not a decimal", () => {
    for (const bad of [
      -1,
      Number.NaN,
      Number.POSITIVE_INFINITY,
      "-1",
      "abc",
      "",
      " 1",
      "1,5",
      "0x10",
    ]) {
      expect(typeof decimalToUnits(bad, RATE_DIGITS)).toBe("object");
    }
  });
});

describe("unitsToDecimal", () => {
  it("writes exact decimals without trailing zeros", () => {
    expect(unitsToDecimal(2_500_000_000n, 9)).toBe("2.5");
    expect(unitsToDecimal(0n, 9)).toBe("0");
    expect(femtoToUsd(75_000_000n)).toBe("0.000000075");
    expect(femtoToUsd(1n)).toBe("0.000000000000001");
    expect(unitsToDecimal(-15n, 1)).toBe("-1.5");
  });
});
