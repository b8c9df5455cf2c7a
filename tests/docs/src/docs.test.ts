/**
 * Every code block of the README files (the root's, each package's, app's and test
 * package's) is checked here, so that the docs cannot rot:
 *
 * - `ts` blocks are type-checked together with the options of a default TypeScript project
 *   (`tsc --init`, plus Node's types), transpiled with them, and run, each in a Node process
 *   of its own, against the workspace packages' built `dist/` (as installed from npm): on
 *   PGlite (`GOVERNANCE_DATABASE_URL=memory://`) and, when `GOVERNANCE_TEST_DATABASE_URL` is
 *   set, on a fresh real-Postgres database if the block uses a database;
 * - `js` blocks run the same way, as written, as `.mjs` files;
 * - `sh` blocks are not run: each command is checked for its shape (src/shell.ts);
 * - `yaml` blocks are steward blueprints: parsed, validated and compiled;
 * - `json` blocks are parsed;
 * - every other block (`text`, `http`, `sql`, no language) is not code and is only counted.
 *
 * A block opts out with `<!-- not executed: reason -->` right above it; every opt-out must be
 * listed in {@link EXPECTED_OPT_OUTS} below, so that they stay few and visible. A fragment
 * names one of the {@link PRELUDES} with `<!-- prelude: name -->`.
 *
 * The root README's usage example (the block after `<!-- example: usage -->`) is also run
 * exactly as written, as `agent.mjs`, with no `GOVERNANCE_*` variable at all: the embedded
 * database in `./.governance/`.
 *
 * The blocks and what is done with them are in docs-blocks.ts; their runs are spread over the
 * files `docs-run-<n>.test.ts` (one per group of READMEs, so that vitest can run the groups
 * side by side), and this file checks that every runnable block is in one of them.
 *
 * The blocks import the built packages: run through `pnpm test` (turbo builds them first),
 * or run `pnpm build` before `npx vitest run` here. `GOV_DOCS_FROM=source npx vitest run`
 * checks them against the packages' sources instead (no build; slower, as tsx compiles
 * them in every block's process).
 */
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { CHAIN_KEY_ENV_PREFIX } from "@gov/core";
import { compileBlueprint, parseBlueprintYaml } from "@gov/steward";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  blocks,
  EXPECTED_OPT_OUTS,
  expectRuns,
  FIRST_EXAMPLE,
  files,
  origin,
  PRELUDES,
  PROJECTS,
  ROOT,
  RUN_GROUPS,
  runGroups,
  runnable,
} from "./docs-blocks";
import { typeCheck, writeProject } from "./run";
import { checkShellBlock, type ShellContext } from "./shell";

describe("the docs' code blocks", () => {
  it("are found, and opt-outs are the listed ones", () => {
    expect(runnable.length).toBeGreaterThan(10);
    const optOuts = blocks
      .filter((block) => block.notRun !== null)
      .map((block) => ({ file: block.file, reason: block.notRun as string }));
    for (const optOut of optOuts) console.log(`not run: ${optOut.file}: ${optOut.reason}`);
    const notCode = blocks.filter((block) => block.kind === "text");
    console.log(
      `${blocks.length} blocks: ${runnable.length} run, ${optOuts.length} opted out, ${notCode.length} not code (${notCode.map(origin).join(", ")})`,
    );
    expect(optOuts).toEqual(EXPECTED_OPT_OUTS);
  });

  it("name only preludes that exist", () => {
    const unknown = blocks.filter(
      (block) => block.prelude !== null && !(block.prelude in PRELUDES),
    );
    expect(unknown.map((block) => `${origin(block)}: ${block.prelude}`)).toEqual([]);
    const misplaced = blocks.filter(
      (block) => block.prelude !== null && block.kind !== "ts" && block.kind !== "js",
    );
    expect(misplaced.map(origin)).toEqual([]);
  });
});

describe("shell blocks", () => {
  const shellBlocks = blocks.filter((block) => block.kind === "sh" && block.notRun === null);
  const context = shellContext();
  it.each(shellBlocks.map((block) => [origin(block), block] as const))(
    "%s checks out",
    (_, block) => {
      expect(checkShellBlock(block.code, context)).toEqual([]);
    },
  );
});

const yamlBlocks = blocks.filter((block) => block.kind === "yaml" && block.notRun === null);
const jsonBlocks = blocks.filter((block) => block.kind === "json" && block.notRun === null);

// Registered only when there is such a block: vitest fails a suite that holds no test.
(yamlBlocks.length + jsonBlocks.length > 0 ? describe : describe.skip)(
  "blueprint and JSON blocks",
  () => {
    it.each(yamlBlocks.map((block) => [origin(block), block] as const))(
      "%s is a blueprint that compiles",
      (where, block) => {
        expect(() => compileBlueprint(parseBlueprintYaml(block.code, where))).not.toThrow();
      },
    );
    it.each(jsonBlocks.map((block) => [origin(block), block] as const))(
      "%s is JSON",
      (_, block) => {
        expect(() => JSON.parse(block.code)).not.toThrow();
      },
    );
  },
);

// Regression guard of the split into docs-run-<n>.test.ts: a block no file runs would pass
// unnoticed.
describe("the runs of the blocks", () => {
  it("are each in one group, and every group has its docs-run-<n>.test.ts", () => {
    const groups = runGroups();
    expect(
      groups
        .flat()
        .map((file) => file.origin)
        .sort(),
    ).toEqual(runnable.map(origin).sort());
    for (const [index, group] of groups.entries())
      expect(group.length, `group ${index + 1} has no block`).toBeGreaterThan(0);
    const here = fileURLToPath(new URL(".", import.meta.url));
    const runFiles = readdirSync(here).filter((name) => /^docs-run-.*\.test\.ts$/.test(name));
    const expected = Array.from(
      { length: RUN_GROUPS },
      (_, index) => `docs-run-${index + 1}.test.ts`,
    );
    expect(runFiles.sort()).toEqual(expected.sort());
    for (const [index, name] of expected.entries())
      expect(readFileSync(join(here, name), "utf8"), name).toContain(
        `describeBlockRuns(${index + 1});`,
      );
  });
});

describe("TypeScript and JavaScript blocks", () => {
  let diagnostics = new Map<string, string[]>();
  const project = join(PROJECTS, "type-check");

  // One program for every block: slow on a loaded 2-core machine, hence the timeout.
  beforeAll(() => {
    rmSync(project, { recursive: true, force: true });
    writeProject(project, [...files.values()]);
    diagnostics = typeCheck(project, [...files.values()]);
  }, 300_000);

  it("type-check as a whole (no diagnostic outside a block)", () => {
    const found = diagnostics.get("") ?? [];
    expect(found, found.join("\n")).toEqual([]);
  });

  const typed = [...files.values()].filter((file) => file.language === "ts");
  it.each(typed.map((file) => [file.origin, file] as const))("%s type-checks", (_, file) => {
    const found = diagnostics.get(file.id) ?? [];
    expect(found, found.join("\n")).toEqual([]);
  });
});

describe("the root README's first example", () => {
  const first = blocks.find(
    (block) => block.file === FIRST_EXAMPLE.file && block.example === FIRST_EXAMPLE.example,
  );
  const directory = join(PROJECTS, "..", "docs-first-example");
  afterAll(() => rmSync(directory, { recursive: true, force: true }));

  it("exists, after its marker, with no hidden setup", () => {
    expect(
      first,
      `no block after <!-- example: ${FIRST_EXAMPLE.example} --> in ${FIRST_EXAMPLE.file}`,
    ).toBeDefined();
    expect(first?.kind).toBe("ts");
    expect(first?.code).not.toMatch(/\bawait using\b/);
    expect(first?.prelude ?? null).toBeNull();
    expect(first?.notRun ?? null).toBeNull();
  });

  it("runs as written, as agent.mjs on this Node, with nothing configured (./.governance/)", async () => {
    if (!first) return;
    mkdirSync(directory, { recursive: true });
    const file = join(directory, "agent.mjs");
    writeFileSync(file, first.code);
    await expectRuns(file, `${origin(first)} (as agent.mjs)`, {});
  });
});

function shellContext(): ShellContext {
  const packages = new Map<string, { dependencies: Set<string>; scripts: Set<string> }>();
  for (const name of readdirSync(join(ROOT, "packages"))) {
    let manifest: Record<string, unknown>;
    try {
      manifest = JSON.parse(readFileSync(join(ROOT, "packages", name, "package.json"), "utf8"));
    } catch {
      continue;
    }
    if (manifest.private === true) continue;
    const dependencies = new Set<string>();
    for (const field of ["dependencies", "peerDependencies", "optionalDependencies"]) {
      for (const dependency of Object.keys((manifest[field] as object | undefined) ?? {}))
        dependencies.add(dependency);
    }
    packages.set(manifest.name as string, {
      dependencies,
      scripts: new Set(Object.keys((manifest.scripts as object | undefined) ?? {})),
    });
  }
  const root = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8"));
  const pnpmMajor = /(\d+)/.exec(String(root.engines?.pnpm ?? ""))?.[1] ?? "";
  return {
    packages,
    rootScripts: new Set(Object.keys(root.scripts ?? {})),
    pnpmMajor,
    environment: environmentVariables(),
    environmentPrefixes: [CHAIN_KEY_ENV_PREFIX],
  };
}

/**
 * The `GOVERNANCE_*` variables the packages read: every such string literal in their sources
 * (tests aside), wherever a module declares its bindings.
 */
function environmentVariables(): Set<string> {
  const names = new Set<string>();
  const visit = (directory: string) => {
    for (const entry of readdirSync(directory, { withFileTypes: true })) {
      const path = join(directory, entry.name);
      if (entry.isDirectory()) {
        if (entry.name !== "testing" && entry.name !== "node_modules") visit(path);
      } else if (entry.name.endsWith(".ts") && !/\.test(-d)?\.ts$/.test(entry.name)) {
        for (const match of readFileSync(path, "utf8").matchAll(
          /"(GOVERNANCE_[A-Z0-9_]*[A-Z0-9])"/g,
        ))
          names.add(match[1] as string);
      }
    }
  };
  for (const name of readdirSync(join(ROOT, "packages"))) {
    try {
      visit(join(ROOT, "packages", name, "src"));
    } catch {
      // not a package
    }
  }
  return names;
}
