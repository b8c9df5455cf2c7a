import { describe, expect, it } from "vitest";
import { describeError, describeValue, typeOf } from "./describe";

describe("typeOf and describeValue", () => {
  it("name the kind of a value without showing a string", () => {
    expect(typeOf(null)).toBe("null");
    expect(typeOf([])).toBe("an array");
    expect(typeOf(new Date(0))).toBe("a Date");
    expect(typeOf("secret")).toBe("string");
    expect(describeValue(0)).toBe("0");
    expect(describeValue(true)).toBe("true");
    expect(describeValue(undefined)).toBe("undefined");
    expect(describeValue("sk-live-123")).toBe("a string of 11 characters");
    expect(describeValue("")).toBe("an empty string");
    expect(describeValue({})).toBe("object");
  });
});

describe("describeError", () => {
  it("reads Name: message on one line, controls and bidi overrides replaced", () => {
    expect(describeError(new TypeError("bad\nthing\u202e\u0007"))).toBe(
      "TypeError: bad thing\ufffd\ufffd",
    );
    expect(describeError("plain")).toBe("plain");
  });

  it("redacts the credentials of connection strings", () => {
    const text = describeError(new Error("cannot reach postgres://admin:hunter2@db:5432/gov"));
    expect(text).not.toContain("hunter2");
  });

  it("describes drizzle's wrapper by the driver's error, never by the statement's parameters", () => {
    const driver = Object.assign(new Error("duplicate key"), { code: "23505" });
    const wrapped = new Error("Failed query: insert into t values ($1)\nparams: secret", {
      cause: driver,
    });
    expect(describeError(wrapped)).toBe("Error: duplicate key");
  });

  it("is at most maxLength characters long", () => {
    expect(describeError(new Error("x".repeat(100)), { maxLength: 20 })).toHaveLength(20);
  });

  it("never throws, whatever it is given", () => {
    const hostile = new Error("x");
    Object.defineProperty(hostile, "message", {
      get() {
        throw new Error("boom");
      },
    });
    expect(describeError(hostile)).toBe("an error that cannot be described");
    expect(describeError(Symbol("s"))).toBe("Symbol(s)");
    expect(describeError(Object.create(null))).toBe("[object Object]");
  });
});
