import { describe, expect, it } from "vitest";
import { extractBlocks } from "./markdown";

describe("extractBlocks", () => {
  it("finds fenced blocks with their line, language, kind, heading and markers", () => {
    const text = [
      "# Title",
      "",
      "<!-- example: usage -->",
      "```ts",
      "const a = 1;",
      "```",
      "",
      "## Part",
      "<!-- prelude: sdk -->",
      "",
      "```sh",
      "npm install @gov/sdk",
      "```",
      "<!-- not executed: a wire format -->",
      "```",
      "v2:…",
      "```",
    ].join("\n");
    const blocks = extractBlocks(text, "README.md");
    expect(
      blocks.map(({ line, kind, example, prelude, notRun, heading }) => ({
        line,
        kind,
        example,
        prelude,
        notRun,
        heading,
      })),
    ).toEqual([
      { line: 5, kind: "ts", example: "usage", prelude: null, notRun: null, heading: "Title" },
      { line: 12, kind: "sh", example: null, prelude: "sdk", notRun: null, heading: "Part" },
      {
        line: 16,
        kind: "text",
        example: null,
        prelude: null,
        notRun: "a wire format",
        heading: "Part",
      },
    ]);
    expect(blocks[0]?.code).toBe("const a = 1;\n");
  });

  // Regression: a misspelt marker must not silently turn a check off.
  it.each([
    ["<!-- not-run: old spelling -->"],
    ["<!-- notexecuted: x -->"],
    ["<!-- example usage -->"],
  ])("refuses a malformed marker: %s", (marker) => {
    expect(() => extractBlocks(`${marker}\n\`\`\`ts\nx;\n\`\`\`\n`, "README.md")).toThrow(
      /malformed/,
    );
  });

  it("refuses a marker that no block follows, an empty one, and an unclosed fence", () => {
    expect(() => extractBlocks("<!-- example: usage -->\ntext\n", "a.md")).toThrow(/not followed/);
    expect(() => extractBlocks("<!-- prelude: -->\n```ts\nx\n```\n", "a.md")).toThrow(
      /needs a value/,
    );
    expect(() => extractBlocks("```ts\nx\n", "a.md")).toThrow(/never closed/);
  });
});
