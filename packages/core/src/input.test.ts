import { describe, expect, it } from "vitest";
import { z } from "zod";
import { InvalidArgumentError, ModuleInputError, reportInvalidAs } from "./errors";
import {
  agentIdSchema,
  checkId,
  checkText,
  idSchema,
  isUuid,
  MAX_ID_LENGTH,
  parseOptions,
  suggestKey,
  textSchema,
  UUID_PATTERN,
} from "./input";

function refusal(run: () => unknown): InvalidArgumentError {
  try {
    run();
  } catch (error) {
    expect(InvalidArgumentError.isInstance(error)).toBe(true);
    return error as InvalidArgumentError;
  }
  throw new Error("expected the call to throw an InvalidArgumentError");
}

describe("checkId", () => {
  it("returns a good id unchanged", () => {
    for (const id of ["billing-agent", "a", "agent 7", "agent_7:eu/west@host", "x".repeat(256)]) {
      expect(checkId(id, "agentId")).toBe(id);
    }
    expect(checkId("agent-ü-é-日本", "agentId")).toBe("agent-ü-é-日本");
    expect(checkId("robot-🤖", "agentId")).toBe("robot-🤖");
  });

  it("counts UTF-16 code units: 256 is accepted, 257 is refused with the limit", () => {
    expect(MAX_ID_LENGTH).toBe(256);
    expect(checkId("a".repeat(MAX_ID_LENGTH), "agentId")).toHaveLength(256);
    const error = refusal(() => checkId("a".repeat(257), "agentId"));
    expect(error.field).toBe("agentId");
    expect(error.limit).toBe(256);
    expect(error.message).toBe("Invalid agentId: is 257 characters long; the limit is 256.");
    expect(error.recoveryHint).toMatch(/1 to 256 characters/);
    // An astral character is two code units: 128 emoji fill 256.
    expect(checkId("🤖".repeat(128), "agentId")).toHaveLength(256);
    expect(refusal(() => checkId(`${"🤖".repeat(128)}a`, "agentId")).limit).toBe(256);
  });

  it("applies a custom max at the limit and one over", () => {
    expect(checkId("a".repeat(64), "toolName", { max: 64 })).toHaveLength(64);
    const error = refusal(() => checkId("a".repeat(65), "toolName", { max: 64 }));
    expect(error.limit).toBe(64);
    expect(error.recoveryHint).toMatch(/1 to 64 characters/);
    expect(refusal(() => checkId("a", "toolName", { max: 0 })).field).toBe("options.max");
  });

  it("refuses a value that is not a string, naming its type but not its value", () => {
    expect(refusal(() => checkId(42, "agentId")).message).toBe(
      "Invalid agentId: must be a string, got number.",
    );
    expect(refusal(() => checkId(undefined, "agentId")).message).toMatch(/got undefined/);
    expect(refusal(() => checkId(null, "agentId")).message).toMatch(/got null/);
    expect(refusal(() => checkId(["a"], "agentId")).message).toMatch(/got an array/);
  });

  it("refuses an empty id", () => {
    const error = refusal(() => checkId("", "sessionId"));
    expect(error.message).toBe("Invalid sessionId: is empty.");
    expect(error.limit).toBe(1);
  });

  it.each([
    ["zero-width space", "billing\u200bagent", "U+200B", 7],
    ["word joiner", "billing\u2060agent", "U+2060", 7],
    ["byte-order mark", "\ufeffbilling", "U+FEFF", 0],
    ["right-to-left override", "billing\u202eagent", "U+202E", 7],
    ["left-to-right isolate", "billing\u2066agent", "U+2066", 7],
    ["soft hyphen", "bill\u00ading", "U+00AD", 4],
    ["variation selector", "agent\ufe0f", "U+FE0F", 5],
    ["tag character", "agent\u{e0041}", "U+E0041", 5],
    ["NUL", "agent\u0000", "U+0000", 5],
    ["line feed", "agent\nx", "U+000A", 5],
    ["tab", "agent\tx", "U+0009", 5],
    ["DEL", "agent\u007f", "U+007F", 5],
    ["C1 control", "agent\u0085", "U+0085", 5],
    ["line separator", "agent\u2028x", "U+2028", 5],
  ])("refuses a %s, naming the code point and where", (_name, id, codePoint, index) => {
    const error = refusal(() => checkId(id, "agentId"));
    expect(error.message).toBe(
      `Invalid agentId: contains ${codePoint} (a control, invisible or formatting character) at index ${index}.`,
    );
    expect(error.field).toBe("agentId");
  });

  it("refuses lone surrogates, leading and trailing", () => {
    expect(refusal(() => checkId("agent\ud83e", "agentId")).message).toBe(
      "Invalid agentId: contains U+D83E (half of a character: a lone surrogate) at index 5.",
    );
    expect(refusal(() => checkId("\udd16agent", "agentId")).message).toMatch(/U\+DD16 .* index 0/);
  });

  it("refuses white space at either end, ASCII or not, but allows the ASCII space inside", () => {
    for (const id of [" agent", "agent ", "  "]) {
      expect(refusal(() => checkId(id, "agentId")).message).toBe(
        "Invalid agentId: starts or ends with white space.",
      );
    }
    // Any other space is refused wherever it is, by its code point (see the next test).
    for (const [id, codePoint, index] of [
      ["\u00a0agent", "U+00A0", 0],
      ["agent\u3000", "U+3000", 5],
      ["\u2003agent", "U+2003", 0],
    ] as const) {
      expect(refusal(() => checkId(id, "agentId")).message).toBe(
        `Invalid agentId: contains ${codePoint} (a blank character other than the ASCII space) at index ${index}.`,
      );
    }
    expect(checkId("billing agent", "agentId")).toBe("billing agent");
  });

  // Guards against: ids that render as nothing or look like another id passing core's rule
  // while gates refused them — one id rule for every module (issue 13 review, break 1).
  it.each([
    ["U+2800 BRAILLE PATTERN BLANK alone (renders as nothing)", "\u2800", "U+2800", 0],
    ["U+2800 inside", "billing\u2800agent", "U+2800", 7],
    ["a no-break space inside", "billing\u00a0agent", "U+00A0", 7],
    ["an ideographic space inside", "billing\u3000agent", "U+3000", 7],
    ["a narrow no-break space inside", "billing\u202fagent", "U+202F", 7],
    ["an em space inside", "billing\u2003agent", "U+2003", 7],
    ["an Ogham space mark inside", "billing\u1680agent", "U+1680", 7],
  ])("refuses %s, naming the code point and where", (_name, id, codePoint, index) => {
    const error = refusal(() => checkId(id, "agentId"));
    expect(error.message).toBe(
      `Invalid agentId: contains ${codePoint} (a blank character other than the ASCII space) at index ${index}.`,
    );
    expect(agentIdSchema.safeParse(id).success).toBe(false);
  });

  it.each([
    ["a combining mark alone", "\u0301"],
    ["a combining mark at the start", "\u0301billing"],
    ["an enclosing mark at the start", "\u20ddagent"],
    ["a spacing mark at the start", "\u0903agent"],
  ])("refuses %s (no character to combine with)", (_name, id) => {
    expect(refusal(() => checkId(id, "agentId")).message).toBe(
      `Invalid agentId: contains U+${id.codePointAt(0)?.toString(16).toUpperCase().padStart(4, "0")} (a combining mark with no character before it) at index 0.`,
    );
    expect(agentIdSchema.safeParse(id).success).toBe(false);
  });

  it("accepts combining marks after a character, in any normalization form, unchanged", () => {
    // Not normalized and not refused when not NFC: see checkId's TSDoc (audit stores ids NFC
    // and looks them up in NFC, so a caller holding the NFD form still finds its session).
    expect(checkId("Cafe\u0301", "sessionId")).toBe("Cafe\u0301");
    expect(checkId("Caf\u00e9", "sessionId")).toBe("Caf\u00e9");
    expect(checkId("b\u0323\u0307illing", "agentId")).toBe("b\u0323\u0307illing");
  });

  // Guards against: a bad max going unnoticed whenever the id itself is plain ASCII.
  it.each([
    [Number.POSITIVE_INFINITY, "Infinity"],
    [0, "0"],
    [1.5, "1.5"],
    [Number.NaN, "NaN"],
    [-1, "-1"],
  ])("reports an invalid max (%s) even for a plain ASCII id", (max) => {
    const error = refusal(() => checkId("a", "agentId", { max }));
    expect(error.field).toBe("options.max");
    expect(error.message).toMatch(/^Invalid options\.max: must be a positive integer, got /);
  });

  it("never repeats the refused value in the message", () => {
    const secretish = `sk-live-${"s".repeat(300)}`;
    const error = refusal(() => checkId(secretish, "agentId"));
    expect(error.message).not.toContain("sk-live");
    expect(error.recoveryHint).not.toContain("sk-live");
  });
});

describe("idSchema and agentIdSchema", () => {
  it("apply the same rule with the same messages as checkId", () => {
    const cases: unknown[] = ["", "a".repeat(257), "a\u200bb", " a", "a\ud800", 7, "fine"];
    for (const value of cases) {
      const parsed = agentIdSchema.safeParse(value);
      let expected: string | null = null;
      try {
        checkId(value, "agentId");
      } catch (error) {
        expected = (error as InvalidArgumentError).message.replace(/^Invalid agentId: /, "");
      }
      expect(parsed.success ? null : parsed.error.issues[0]?.message).toBe(expected);
    }
  });

  it("take a max", () => {
    expect(idSchema({ max: 8 }).safeParse("a".repeat(8)).success).toBe(true);
    expect(idSchema({ max: 8 }).safeParse("a".repeat(9)).success).toBe(false);
  });
});

describe("checkText and textSchema", () => {
  it("accepts text up to max, including empty text", () => {
    expect(checkText("", "reason", { max: 10 })).toBe("");
    expect(checkText("a".repeat(10), "reason", { max: 10 })).toHaveLength(10);
    expect(checkText("runaway spend — üé 日本 👩‍💻", "reason", { max: 100 })).toMatch(/runaway/);
    const error = refusal(() => checkText("a".repeat(11), "reason", { max: 10 }));
    expect(error.limit).toBe(10);
    expect(error.message).toBe("Invalid reason: is 11 characters long; the limit is 10.");
  });

  it("allows line feeds and tabs only when multiline", () => {
    expect(checkText("line 1\n\tline 2", "note", { max: 100, multiline: true })).toContain("\n");
    expect(refusal(() => checkText("line 1\nline 2", "note", { max: 100 })).message).toMatch(
      /U\+000A/,
    );
    expect(refusal(() => checkText("a\u2028b", "note", { max: 100 })).message).toMatch(/U\+2028/);
  });

  it("refuses other controls, bidi overrides and lone surrogates even when multiline", () => {
    for (const [text, codePoint] of [
      ["a\rb", "U+000D"],
      ["a\u0000b", "U+0000"],
      ["a\u001bb", "U+001B"],
      ["a\u202eb", "U+202E"],
      ["a\u2066b", "U+2066"],
      ["a\u0085b", "U+0085"],
      ["a\udc00b", "U+DC00"],
    ] as const) {
      const error = refusal(() => checkText(text, "reason", { max: 100, multiline: true }));
      expect(error.message).toContain(codePoint);
    }
  });

  // Guards against: invisible characters that hide or forge text in a reason or message
  // (issue 13 review, finding 7).
  it.each([
    ["a soft hyphen", "ap\u00adprove", "U+00AD", 2],
    ["a zero-width space", "ap\u200bprove", "U+200B", 2],
    ["a left-to-right mark", "a\u200eb", "U+200E", 1],
    ["a right-to-left mark", "a\u200fb", "U+200F", 1],
    ["an Arabic letter mark", "a\u061cb", "U+061C", 1],
    ["an interlinear annotation anchor", "a\ufff9b", "U+FFF9", 1],
    ["an interlinear annotation separator", "a\ufffab", "U+FFFA", 1],
    ["an interlinear annotation terminator", "a\ufffbb", "U+FFFB", 1],
    ["a tag character on its own", "ok\u{e0041}", "U+E0041", 2],
    ["a cancel tag on its own", "ok\u{e007f}", "U+E007F", 2],
    [
      "tags after a character that is not a black flag",
      "\u{1f3f3}\u{e0067}\u{e007f}",
      "U+E0067",
      2,
    ],
    ["tags of a flag without the cancel tag", "\u{1f3f4}\u{e0067}\u{e0062}", "U+E0067", 2],
    ["a tag after a complete flag", "\u{1f3f4}\u{e0067}\u{e007f}\u{e0041}", "U+E0041", 6],
  ])("refuses %s, naming the code point and where", (_name, text, codePoint, index) => {
    for (const multiline of [false, true]) {
      const error = refusal(() => checkText(text, "reason", { max: 100, multiline }));
      expect(error.message).toBe(
        `Invalid reason: contains ${codePoint} (an invisible character) at index ${index}.`,
      );
      expect(textSchema({ max: 100, multiline }).safeParse(text).success).toBe(false);
    }
  });

  it("keeps what emoji need: flag tag sequences, the zero-width joiner, variation selectors", () => {
    const england = "\u{1f3f4}\u{e0067}\u{e0062}\u{e0065}\u{e006e}\u{e0067}\u{e007f}";
    for (const text of [
      `go ${england}!`,
      `${england}${england}`,
      "dev \u{1f469}\u200d\u{1f4bb}",
      "love \u2764\ufe0f",
      "\u{1f3f3}\ufe0f\u200d\u{1f308}",
    ]) {
      expect(checkText(text, "reason", { max: 100 })).toBe(text);
    }
  });

  it("reports an invalid max even for plain text", () => {
    for (const max of [Number.POSITIVE_INFINITY, 1.5, 0]) {
      expect(refusal(() => checkText("a", "reason", { max })).field).toBe("options.max");
    }
  });

  it("textSchema gives the same messages", () => {
    const schema = textSchema({ max: 5, multiline: true });
    expect(schema.safeParse("a\nb").success).toBe(true);
    const parsed = schema.safeParse("a\u202eb");
    expect(parsed.success ? null : parsed.error.issues[0]?.message).toBe(
      "contains U+202E (a control character or a bidirectional override) at index 1.",
    );
  });
});

describe("UUID_PATTERN and isUuid", () => {
  it("accept canonical lower-case UUIDs only", () => {
    expect(isUuid("0b6c5d0e-8f3a-4c1e-9a57-2f1f0f3c9d11")).toBe(true);
    expect(isUuid("0B6C5D0E-8F3A-4C1E-9A57-2F1F0F3C9D11")).toBe(false);
    expect(isUuid("0b6c5d0e8f3a4c1e9a572f1f0f3c9d11")).toBe(false);
    expect(isUuid(42)).toBe(false);
    expect(UUID_PATTERN.test("0b6c5d0e-8f3a-4c1e-9a57-2f1f0f3c9d11\n")).toBe(false);
  });
});

describe("suggestKey", () => {
  const known = ["maxBatchSize", "sweepIntervalMs", "timeoutMs", "logger"];
  it.each([
    ["maxBatchSzie", "maxBatchSize"],
    ["maxbatchsize", "maxBatchSize"],
    ["maxBatch", "maxBatchSize"],
    ["sweepIntervalSeconds", "sweepIntervalMs"],
    ["timeout", "timeoutMs"],
    ["loger", "logger"],
  ])("suggests %s → %s", (typo, expected) => {
    expect(suggestKey(typo, known)).toBe(expected);
  });

  it("suggests nothing when nothing is close", () => {
    expect(suggestKey("databaseUrl", known)).toBeUndefined();
    expect(suggestKey("x", known)).toBeUndefined();
  });
});

describe("parseOptions", () => {
  const schema = z.object({
    maxBatchSize: z.number().int().min(1).max(10_000).default(500),
    timeoutMs: z.number().int().min(0).optional(),
    agentId: agentIdSchema.optional(),
    pool: z.object({ max: z.number().int().min(1).max(1000).optional() }).optional(),
    mode: z.enum(["fast", "safe"]).optional(),
  });

  it("returns the parsed options, reading undefined as no options", () => {
    expect(parseOptions(schema, undefined)).toEqual({ maxBatchSize: 500 });
    expect(parseOptions(schema, { maxBatchSize: 10, pool: { max: 5 } })).toEqual({
      maxBatchSize: 10,
      pool: { max: 5 },
    });
    expect(parseOptions(schema, Object.assign(Object.create(null), { timeoutMs: 5 }))).toEqual({
      maxBatchSize: 500,
      timeoutMs: 5,
    });
  });

  it.each([
    [null, "null"],
    [42, "number"],
    ["options", "string"],
    [[], "an array"],
    [new Date(0), "a Date"],
    [new (class Options {})(), "object"],
  ])("refuses %s, which is not a plain object", (value, kind) => {
    const error = refusal(() => parseOptions(schema, value));
    expect(error.field).toBe("options");
    expect(error.message).toBe(`Invalid options: must be a plain object, got ${kind}.`);
  });

  it("with required, refuses undefined instead of reading it as no options", () => {
    const error = refusal(() =>
      parseOptions(schema, undefined, {
        required: true,
        field: "grant",
        fixes: { "": "Pass { reviewerId }." },
      }),
    );
    expect(error.field).toBe("grant");
    expect(error.message).toBe("Invalid grant: must be an object, got undefined.");
    expect(error.recoveryHint).toBe("Pass { reviewerId }.");
    expect(parseOptions(schema, {}, { required: true })).toEqual({ maxBatchSize: 500 });
  });

  it("with errorClass, reports every refusal as that class, with core's error as its cause", () => {
    class InvalidWidgetError extends InvalidArgumentError {
      static override readonly errorIdentity = "@gov/test.InvalidWidgetError";
      override readonly code: string = "WIDGET_INPUT_INVALID";
      constructor(
        field: string,
        problem: string,
        fix: string,
        limit?: number,
        details: { issues?: InvalidArgumentError["issues"]; cause?: unknown } = {},
      ) {
        super(field, problem, fix, { ...(limit === undefined ? {} : { limit }), ...details });
        this.name = "InvalidWidgetError";
      }
    }
    const cases: [unknown, string, number | undefined][] = [
      [{ maxBatchSize: 20_000 }, "options.maxBatchSize", 10_000],
      [undefined, "options", undefined],
      [42, "options", undefined],
      [
        {
          get timeoutMs(): number {
            throw new Error("boom");
          },
        },
        "options.timeoutMs",
        undefined,
      ],
    ];
    for (const [value, field, limit] of cases) {
      const error = refusal(() =>
        parseOptions(schema, value, { errorClass: InvalidWidgetError, required: true }),
      );
      expect(InvalidWidgetError.isInstance(error), field).toBe(true);
      expect(error.code).toBe("WIDGET_INPUT_INVALID");
      expect(error.field).toBe(field);
      expect(error.limit).toBe(limit);
      expect(InvalidArgumentError.isInstance(error.cause)).toBe(true);
      expect((error.cause as InvalidArgumentError).issues).toEqual(error.issues);
    }
    const both = refusal(() =>
      parseOptions(schema, { maxBatchSize: 0, timeotMs: 5 }, { errorClass: InvalidWidgetError }),
    );
    expect(both.issues.map((issue) => issue.field)).toEqual([
      "options.timeotMs",
      "options.maxBatchSize",
    ]);
    expect(both.message).toContain("also options.maxBatchSize");
    // An error of the class already is passed on as it is.
    const own = new InvalidWidgetError("x", "is bad.", "Fix it.");
    expect(reportInvalidAs(InvalidWidgetError, own)).toBe(own);
  });

  it("refuses an unknown key with a did-you-mean, at any depth", () => {
    const error = refusal(() => parseOptions(schema, { maxBatch: 10 }));
    expect(error.field).toBe("options.maxBatch");
    expect(error.message).toBe(
      "Invalid options.maxBatch: is not an option; did you mean `maxBatchSize`?",
    );
    expect(error.recoveryHint).toBe("Rename it to `maxBatchSize`.");
    const nested = refusal(() => parseOptions(schema, { pool: { mxa: 3 } }));
    expect(nested.field).toBe("options.pool.mxa");
    expect(nested.message).toMatch(/did you mean `max`\?/);
    const far = refusal(() => parseOptions(schema, { databaseUrl: "x" }));
    expect(far.message).toBe("Invalid options.databaseUrl: is not an option.");
    expect(far.recoveryHint).toBe(
      "Remove it; the options are `maxBatchSize`, `timeoutMs`, `agentId`, `pool`, `mode`.",
    );
  });

  it("turns zod issues into one error with the field path, the limit and the fix", () => {
    const error = refusal(() => parseOptions(schema, { maxBatchSize: 0 }));
    expect(error.field).toBe("options.maxBatchSize");
    expect(error.limit).toBe(1);
    expect(error.message).toBe("Invalid options.maxBatchSize: is 0; the minimum is 1.");
    expect(error.recoveryHint).toBe("Use a value of at least 1.");
    const big = refusal(() => parseOptions(schema, { pool: { max: 5000 } }));
    expect(big.field).toBe("options.pool.max");
    expect(big.limit).toBe(1000);
    expect(refusal(() => parseOptions(schema, { maxBatchSize: 1.5 })).message).toBe(
      "Invalid options.maxBatchSize: must be an integer, got 1.5.",
    );
    expect(refusal(() => parseOptions(schema, { mode: "slow" })).message).toBe(
      'Invalid options.mode: is not one of "fast", "safe".',
    );
  });

  it("takes the fix from fixes by path, and the field name from field", () => {
    const error = refusal(() =>
      parseOptions(
        schema,
        { pool: { max: 0 } },
        { field: "writerOptions", fixes: { "pool.max": "Use an integer from 1 to 1000." } },
      ),
    );
    expect(error.field).toBe("writerOptions.pool.max");
    expect(error.recoveryHint).toBe("Use an integer from 1 to 1000.");
  });

  it("keeps the limit and fix of idSchema and textSchema issues", () => {
    const error = refusal(() => parseOptions(schema, { agentId: "a".repeat(300) }));
    expect(error.field).toBe("options.agentId");
    expect(error.limit).toBe(256);
    expect(error.recoveryHint).toMatch(/1 to 256 characters/);
  });

  it("lists every issue in .issues and in the message", () => {
    const error = refusal(() =>
      parseOptions(schema, { maxBatch: 1, maxBatchSize: 0, timeoutMs: "5s" }),
    );
    expect(error.issues.map((issue) => issue.field)).toEqual([
      "options.maxBatch",
      "options.maxBatchSize",
      "options.timeoutMs",
    ]);
    expect(error.message).toContain("also options.maxBatchSize: is 0; the minimum is 1.");
    expect(error.message).toContain("also options.timeoutMs: must be a number, got string.");
  });

  it("never repeats a string value in a message", () => {
    const strict = z.object({ token: z.string().max(4) });
    const error = refusal(() => parseOptions(strict, { token: "sk-live-secret" }));
    expect(error.message).toBe("Invalid options.token: is 14 characters long; the limit is 4.");
  });

  it("keeps a message the schema sets itself", () => {
    const custom = z.object({ port: z.number().max(10, "is too high for a port here.") });
    expect(refusal(() => parseOptions(custom, { port: 11 })).message).toBe(
      "Invalid options.port: is too high for a port here.",
    );
  });

  it("reports a strict schema's unknown keys once, with the suggestion", () => {
    const strict = z.strictObject({ timeoutMs: z.number().optional() });
    const error = refusal(() => parseOptions(strict, { timeotMs: 5 }));
    expect(error.issues).toHaveLength(1);
    expect(error.message).toMatch(/did you mean `timeoutMs`\?/);
  });

  it("accepts any key where the schema is loose", () => {
    const loose = z.looseObject({ a: z.number().optional() });
    expect(parseOptions(loose, { b: 1 })).toEqual({ b: 1 });
  });

  // Guards against: a getter or proxy trap escaping as a raw error (issue 13 review, break 2).
  describe("options that cannot be read", () => {
    const readable = z.object({
      a: z.number().optional(),
      nested: z.object({ b: z.number().optional() }).optional(),
      list: z.array(z.object({ c: z.number().optional() })).optional(),
    });
    const boom = new Error("boom");

    it.each([
      [
        "a getter",
        () => ({
          get a(): number {
            throw boom;
          },
        }),
        "options.a",
      ],
      [
        "a nested getter",
        () => ({
          nested: {
            get b(): number {
              throw boom;
            },
          },
        }),
        "options.nested.b",
      ],
      [
        "a getter in an array element",
        () => ({
          list: [
            {
              get c(): number {
                throw boom;
              },
            },
          ],
        }),
        "options.list[0].c",
      ],
      [
        "a non-enumerable getter",
        () =>
          Object.defineProperty({}, "a", {
            get() {
              throw boom;
            },
          }),
        "options.a",
      ],
      [
        "a proxy's get trap",
        () =>
          new Proxy(
            { a: 1 },
            {
              get() {
                throw boom;
              },
            },
          ),
        "options.a",
      ],
      [
        "a proxy's ownKeys trap",
        () =>
          new Proxy(
            {},
            {
              ownKeys() {
                throw boom;
              },
            },
          ),
        "options",
      ],
      [
        "a proxy's getPrototypeOf trap",
        () =>
          new Proxy(
            {},
            {
              getPrototypeOf() {
                throw boom;
              },
            },
          ),
        "options",
      ],
      [
        "a nested proxy's getPrototypeOf trap",
        () => ({
          nested: new Proxy(
            {},
            {
              getPrototypeOf() {
                throw boom;
              },
            },
          ),
        }),
        "options.nested",
      ],
    ])("reports %s that throws as an InvalidArgumentError with the cause", (_name, make, field) => {
      const error = refusal(() => parseOptions(readable, make()));
      expect(error.field).toBe(field);
      expect(error.message).toBe(`Invalid ${field}: could not be read.`);
      expect(error.recoveryHint).toMatch(/plain data/);
      expect(error.cause).toBe(boom);
    });

    it("reports a getter that throws only on a second read", () => {
      let reads = 0;
      const error = refusal(() =>
        parseOptions(readable, {
          get a(): number {
            reads++;
            if (reads > 1) throw boom;
            return 1;
          },
        }),
      );
      expect(error.message).toMatch(/could not be read/);
      expect(error.cause).toBe(boom);
    });
  });

  // Guards against: misspelt keys silently stripped inside arrays, records and unions
  // (issue 13 review, break 3).
  describe("unknown keys inside arrays, records and unions", () => {
    it.each([
      [
        "an array element",
        z.object({ list: z.array(z.object({ limit: z.number().optional() })) }),
        { list: [{ limit: 1 }, { limt: 1 }] },
        "options.list[1].limt",
        "limit",
      ],
      [
        "a tuple item",
        z.object({ pair: z.tuple([z.number(), z.object({ limit: z.number().optional() })]) }),
        { pair: [1, { limt: 1 }] },
        "options.pair[1].limt",
        "limit",
      ],
      [
        "a record value",
        z.object({ caps: z.record(z.string(), z.object({ usd: z.number().optional() })) }),
        { caps: { a: { usd: 1 }, b: { ud: 1 } } },
        "options.caps.b.ud",
        "usd",
      ],
      [
        "the union branch that matches",
        z.object({ spool: z.union([z.literal(false), z.object({ dir: z.string().optional() })]) }),
        { spool: { dri: "/x" } },
        "options.spool.dri",
        "dir",
      ],
      [
        "the discriminated union branch that matches",
        z.object({
          sink: z.discriminatedUnion("type", [
            z.object({ type: z.literal("file"), path: z.string() }),
            z.object({
              type: z.literal("http"),
              url: z.string(),
              timeoutMs: z.number().optional(),
            }),
          ]),
        }),
        { sink: { type: "http", url: "u", timeotMs: 5 } },
        "options.sink.timeotMs",
        "timeoutMs",
      ],
      [
        "an array inside a record inside an optional",
        z.object({
          groups: z
            .record(z.string(), z.array(z.object({ name: z.string().optional() })))
            .optional(),
        }),
        { groups: { g: [{ nmae: "x" }] } },
        "options.groups.g[0].nmae",
        "name",
      ],
    ])("refuses a misspelt key in %s", (_name, schema, value, field, suggestion) => {
      const error = refusal(() => parseOptions(schema, value));
      expect(error.field).toBe(field);
      expect(error.message).toBe(
        `Invalid ${field}: is not an option; did you mean \`${suggestion}\`?`,
      );
    });

    it("accepts what the matching branch names, and a branch that is not an object", () => {
      const schema = z.object({
        spool: z.union([z.literal(false), z.object({ dir: z.string().optional() })]).optional(),
      });
      expect(parseOptions(schema, { spool: false })).toEqual({ spool: false });
      expect(parseOptions(schema, { spool: { dir: "/x" } })).toEqual({ spool: { dir: "/x" } });
      const records = z.object({ caps: z.record(z.string(), z.object({ usd: z.number() })) });
      expect(parseOptions(records, { caps: { a: { usd: 1 } } })).toEqual({
        caps: { a: { usd: 1 } },
      });
    });

    it("leaves a union that no branch matches to zod's own issue", () => {
      const schema = z.object({
        spool: z.union([z.literal(false), z.object({ dir: z.string() })]),
      });
      const error = refusal(() => parseOptions(schema, { spool: { dri: "/x" } }));
      expect(error.field).toBe("options.spool");
      expect(error.message).toBe("Invalid options.spool: matches none of the accepted forms.");
    });
  });

  // Guards against: a caller's key forging log lines or reordering text in a message
  // (issue 13 review, break 4).
  describe("unknown keys in messages", () => {
    it("are quoted and escaped: no line break, control or bidirectional character gets through", () => {
      const error = refusal(() => parseOptions(schema, { "x\nlevel=error msg=forged": 1 }));
      expect(error.field).toBe('options["x\\nlevel=error msg=forged"]');
      expect(error.message).toBe(
        'Invalid options["x\\nlevel=error msg=forged"]: is not an option.',
      );
      expect(error.message).not.toMatch(/[\n\r]/);
      for (const key of ["a\u202eb", "a\u2028b", "a\u0000b", "a\u200bb", "a\ud800b", "a\u0085b"]) {
        const found = refusal(() => parseOptions(schema, { [key]: 1 }));
        expect(found.message).toMatch(/^[\x20-\x7e]*$/);
        expect(found.field).toMatch(/^options\["a\\u[0-9a-f]{4}b"\]$/);
      }
    });

    it("are truncated to 64 characters", () => {
      const key = `k${"x".repeat(200)}`;
      const error = refusal(() => parseOptions(schema, { [key]: 1 }));
      expect(error.field).toBe(`options[${JSON.stringify(`k${"x".repeat(63)}…`)}]`);
      expect(error.message.length).toBeLessThan(120);
    });

    it("keep plain names as dotted paths, and the fixes by their raw path", () => {
      const error = refusal(() =>
        parseOptions(schema, { "max-batch": 1 }, { fixes: { "max-batch": "Use maxBatchSize." } }),
      );
      expect(error.field).toBe("options.max-batch");
      expect(error.recoveryHint).toBe("Use maxBatchSize.");
    });

    it("quote a record's key in the path of a zod issue too", () => {
      const records = z.object({ caps: z.record(z.string(), z.number()) });
      const error = refusal(() => parseOptions(records, { caps: { "a\nb": "x" } }));
      expect(error.field).toBe('options.caps["a\\nb"]');
      expect(error.message).not.toMatch(/\n/);
    });
  });
});

describe("ModuleInputError", () => {
  class InvalidGadgetError extends ModuleInputError {
    static override readonly errorIdentity = "@gov/test.InvalidGadgetError";
    override readonly code: string = "GADGET_INPUT_INVALID";
  }

  it("is an InvalidArgumentError named after its identity, with the module's code", () => {
    const error = new InvalidGadgetError("options.size", "is too big.", "Make it smaller.", 10);
    expect(InvalidArgumentError.isInstance(error)).toBe(true);
    expect(InvalidGadgetError.isInstance(error)).toBe(true);
    expect(error.name).toBe("InvalidGadgetError");
    expect(error.code).toBe("GADGET_INPUT_INVALID");
    expect(error.limit).toBe(10);
    expect(error.message).toBe("Invalid options.size: is too big.");
    expect(error.issues).toEqual([
      { field: "options.size", problem: "is too big.", fix: "Make it smaller.", limit: 10 },
    ]);
  });

  it("re-reports core's refusal with from(), keeping issues and cause", () => {
    const core = refusal(() => checkId("", "agentId"));
    const error = InvalidGadgetError.from(core);
    expect(InvalidGadgetError.isInstance(error)).toBe(true);
    expect(error.field).toBe("agentId");
    expect(error.issues).toEqual(core.issues);
    expect(error.cause).toBe(core);
    expect(InvalidGadgetError.from(error)).toBe(error);
  });
});
