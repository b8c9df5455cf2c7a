import { describe, expect, it } from "vitest";
import { canonicalJson, canonicalJsonHash } from "./canonical-json";
import { InvalidArgumentError } from "./errors";

describe("canonicalJson (RFC 8785)", () => {
  it("sorts keys by UTF-16 code units and drops whitespace", () => {
    // The ordering example of RFC 8785 section 3.2.3.
    const value = {
      "\u20ac": "Euro Sign",
      "\r": "Carriage Return",
      "\ufb33": "Hebrew Letter Dalet With Dagesh",
      "1": "One",
      "\ud83d\ude00": "Emoji: Grinning Face",
      "\u0080": "Control",
      "\u00f6": "Latin Small Letter O With Diaeresis",
    };
    // Read the keys from the text: JSON.parse would move the integer-like key "1" first.
    const keys = [...canonicalJson(value).matchAll(/"((?:[^"\\]|\\.)*)":/g)].map((match) =>
      JSON.parse(`"${match[1]}"`),
    );
    expect(keys).toEqual(["\r", "1", "\u0080", "\u00f6", "\u20ac", "\ud83d\ude00", "\ufb33"]);
    expect(canonicalJson(value)).not.toMatch(/\s(?=["{}[\],:])/);
  });

  it("serializes numbers in their shortest ECMAScript form", () => {
    // Values from RFC 8785 appendix B; the first is written with more digits than a double holds.
    // biome-ignore lint/correctness/noPrecisionLoss: the RFC's test vector, on purpose
    expect(canonicalJson([333333333.33333329, 1e30, 4.5, 0.002, 1e-27, -0])).toBe(
      "[333333333.3333333,1e+30,4.5,0.002,1e-27,0]",
    );
  });

  it("is the same for the same data whatever the key order, and hashes accordingly", () => {
    expect(canonicalJson({ b: 1, a: [true, null, "x"] })).toBe('{"a":[true,null,"x"],"b":1}');
    expect(canonicalJsonHash({ b: 1, a: 2 })).toBe(canonicalJsonHash({ a: 2, b: 1 }));
    expect(canonicalJsonHash({ a: 1 })).not.toBe(canonicalJsonHash({ a: 2 }));
  });

  it("leaves out undefined properties and writes Dates as ISO strings", () => {
    expect(canonicalJson({ a: undefined, d: new Date("2026-01-01T00:00:00Z") })).toBe(
      '{"d":"2026-01-01T00:00:00.000Z"}',
    );
  });

  it.each([
    ["NaN", { amount: Number.NaN }, "payload.amount"],
    ["Infinity", [1, Number.POSITIVE_INFINITY], "payload[1]"],
    ["a bigint", { n: 10n }, "payload.n"],
    ["a Map", { m: new Map() }, "payload.m"],
    ["a function", { f: () => 1 }, "payload.f"],
  ])("refuses %s, naming where it is", (_label, value, field) => {
    let caught: unknown;
    try {
      canonicalJson(value, "payload");
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(InvalidArgumentError);
    expect((caught as InvalidArgumentError).field).toBe(field);
  });

  it("refuses a cycle", () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(() => canonicalJson(cyclic)).toThrow(/cycle/);
  });
});
