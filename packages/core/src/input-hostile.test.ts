// parseOptions with required and errorClass against hostile and forged input (found by an attack
// on issue 13; each test failed before the fix).
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { InvalidArgumentError, ModuleInputError } from "./errors";
import { parseOptions } from "./input";

class InvalidWidgetError extends ModuleInputError {
  static override readonly errorIdentity = "@gov/test.InvalidWidgetError";
  override readonly code: string = "WIDGET_INPUT_INVALID";
}

function refusal(run: () => unknown): unknown {
  try {
    run();
  } catch (error) {
    return error;
  }
  throw new Error("expected a refusal");
}

/** A value whose every property read throws: what a hostile or broken proxy throws. */
const hostile = new Proxy(
  {},
  {
    get() {
      throw new Error("hostile get trap");
    },
  },
);

describe("parseOptions with required and errorClass, against hostile input", () => {
  // Was: with `required: true`, a null (or any non-object) is refused with core's generic fix
  // "…, or nothing." — but nothing (undefined) is exactly what `required` refuses. Reached by
  // presence.halt(agentId, null): "Pass an object of options, e.g. { timeoutMs: 5000 }, or nothing."
  it("does not tell a caller of a required options object to pass nothing", () => {
    const schema = z.strictObject({ reviewerId: z.string() });
    const error = refusal(() =>
      parseOptions(schema, null, { required: true }),
    ) as InvalidArgumentError;
    expect(InvalidArgumentError.isInstance(error)).toBe(true);
    expect(error.recoveryHint).not.toMatch(/or nothing/);
  });

  // Was: "a getter or proxy that throws becomes an InvalidArgumentError … never a raw error".
  // A value zod reads that walkKeys does not (a catchall/loose object's extra keys, documented as
  // "not followed" for unknown keys only) whose getter throws a value that cannot be inspected
  // escapes raw: readOptions' `GovernanceError.isInstance(error)` reads the thrown value and its
  // trap throws — with and without errorClass, so the module's code is lost too.
  it("reports a getter that throws an uninspectable value as an InvalidArgumentError", () => {
    const schema = z.object({}).catchall(z.number());
    const value = {
      get extra(): number {
        throw hostile;
      },
    };
    const plain = refusal(() => parseOptions(schema, value));
    expect(InvalidArgumentError.isInstance(plain)).toBe(true);
    const reported = refusal(() =>
      parseOptions(schema, value, { errorClass: InvalidWidgetError }),
    ) as InvalidArgumentError;
    expect(InvalidWidgetError.isInstance(reported)).toBe(true);
    expect(reported.code).toBe("WIDGET_INPUT_INVALID");
  });

  // Was: a getter read by zod that throws an object carrying InvalidArgumentError's public
  // marker (Symbol.for("@gov/core.InvalidArgumentError"), anyone can set it) but no `issues`
  // is re-thrown by readOptions as "a governance error of its own", and reportInvalidAs then
  // reads `error.issues[0]`: a TypeError replaces the module's error.
  it("never turns a forged refusal from a getter into a TypeError", () => {
    const schema = z.object({}).catchall(z.number());
    const forged = {
      [Symbol.for("@gov/core.GovernanceError")]: true,
      [Symbol.for("@gov/core.InvalidArgumentError")]: true,
      message: "forged",
    };
    const value = {
      get extra(): number {
        throw forged;
      },
    };
    const error = refusal(() => parseOptions(schema, value, { errorClass: InvalidWidgetError }));
    expect(error).not.toBeInstanceOf(TypeError);
    expect(InvalidWidgetError.isInstance(error)).toBe(true);
  });
});
