/**
 * Fenced code blocks of a Markdown file, with the docs-test markers written above them.
 *
 * A marker is an HTML comment on the line right above a block's opening fence (a blank line
 * between them is allowed). GitHub and npm do not render it:
 *
 * - `<!-- not executed: why -->` — the block is not executed; the docs test lists every one.
 * - `<!-- prelude: name -->` — the block is a fragment: the docs test wraps it with the
 *   prelude of that name (hidden setup, such as an `sdk` to call), defined in the test file.
 * - `<!-- example: name -->` — the block is named, so that other tests can find it (the root
 *   README's `usage` example is also run as an `.mjs` file, and from packed tarballs).
 */

/** How the docs test treats a block, from the language of its fence. */
export type BlockKind =
  /** Type-checked in a default TypeScript project, then run on Node. */
  | "ts"
  /** Run as written, as an `.mjs` file, on Node. */
  | "js"
  /** Shell commands: each checked for its shape (an install, a script of this repository…). */
  | "sh"
  /** A steward blueprint: parsed, validated and compiled. */
  | "yaml"
  /** Parsed as JSON. */
  | "json"
  /** Not code (a wire format, a file layout, SQL shown for reading): listed, not run. */
  | "text";

export interface CodeBlock {
  /** The Markdown file, relative to the repository root. */
  file: string;
  /** The 1-based line of the block's first line of code (the line after the fence). */
  line: number;
  /** The fence's language, as written (`ts`, `sh`, or `""`). */
  language: string;
  kind: BlockKind;
  /** The code, with the fence's indentation removed. */
  code: string;
  /** The reason of a `not executed` marker, or null. */
  notRun: string | null;
  /** The name of a `prelude` marker, or null. */
  prelude: string | null;
  /** The name of an `example` marker, or null. */
  example: string | null;
  /** The text of the nearest heading above the block (`""` before the first). */
  heading: string;
}

const KINDS: Record<string, BlockKind> = {
  ts: "ts",
  typescript: "ts",
  js: "js",
  javascript: "js",
  mjs: "js",
  sh: "sh",
  bash: "sh",
  shell: "sh",
  yaml: "yaml",
  yml: "yaml",
  json: "json",
};

const FENCE = /^(\s*)(`{3,}|~{3,})\s*([\w+-]*)[^`]*$/;
const MARKER = /^\s*<!--\s*(not executed|prelude|example)\s*:\s*(.*?)\s*-->\s*$/;
const LOOKS_LIKE_MARKER = /^\s*<!--\s*(not[\s-]*(run|executed)|prelude|example|docs-test)\b/i;

/**
 * The fenced code blocks of `text`, in order.
 * @throws {Error} for a marker that is malformed, empty, or not followed by a block, and for
 *   a fence that is never closed — so that a typo cannot silently turn a check off.
 */
export function extractBlocks(text: string, file: string): CodeBlock[] {
  const lines = text.split(/\r?\n/);
  const blocks: CodeBlock[] = [];
  let pending: { key: string; value: string; line: number } | null = null;
  let heading = "";
  for (let index = 0; index < lines.length; index++) {
    const current = lines[index] as string;
    const marker = MARKER.exec(current);
    if (marker) {
      const [, key, value] = marker as unknown as [string, string, string];
      if (pending) throw new Error(`${file}:${pending.line}: two markers above one block.`);
      if (value === "") throw new Error(`${file}:${index + 1}: the ${key} marker needs a value.`);
      pending = { key, value, line: index + 1 };
      continue;
    }
    if (LOOKS_LIKE_MARKER.test(current)) {
      throw new Error(
        `${file}:${index + 1}: malformed docs-test marker; write <!-- not executed: reason -->, <!-- prelude: name --> or <!-- example: name -->.`,
      );
    }
    const fence = FENCE.exec(current);
    const title = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(current);
    if (title) heading = title[1] as string;
    if (!fence) {
      if (pending && current.trim() !== "") {
        throw new Error(
          `${file}:${pending.line}: the ${pending.key} marker is not followed by a code block.`,
        );
      }
      continue;
    }
    const [, indent, ticks, language] = fence as unknown as [string, string, string, string];
    const code: string[] = [];
    let closed = false;
    let end = index + 1;
    for (; end < lines.length; end++) {
      const line = lines[end] as string;
      const trimmed = line.trim();
      if (
        /^(`{3,}|~{3,})$/.test(trimmed) &&
        trimmed[0] === ticks[0] &&
        trimmed.length >= ticks.length
      ) {
        closed = true;
        break;
      }
      code.push(line.startsWith(indent) ? line.slice(indent.length) : line.trimStart());
    }
    if (!closed) throw new Error(`${file}:${index + 1}: a code fence is never closed.`);
    const lowered = language.toLowerCase();
    blocks.push({
      file,
      line: index + 2,
      language: lowered,
      kind: KINDS[lowered] ?? "text",
      code: `${code.join("\n")}\n`,
      notRun: pending?.key === "not executed" ? pending.value : null,
      prelude: pending?.key === "prelude" ? pending.value : null,
      example: pending?.key === "example" ? pending.value : null,
      heading,
    });
    pending = null;
    index = end;
  }
  if (pending) {
    throw new Error(
      `${file}:${pending.line}: the ${pending.key} marker is not followed by a code block.`,
    );
  }
  return blocks;
}
