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
 * The blocks import the built packages: run through `pnpm test` (turbo builds them first),
 * or run `pnpm build` before `npx vitest run` here. `GOV_DOCS_FROM=source npx vitest run`
 * checks them against the packages' sources instead (no build; slower, as tsx compiles
 * them in every block's process).
 */
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { CHAIN_KEY_ENV_PREFIX } from "@gov/core";
import { createTestDatabase, testEngines } from "@gov/core/testing";
import { compileBlueprint, parseBlueprintYaml } from "@gov/steward";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CodeBlock, extractBlocks } from "./markdown";
import { type BlockFile, runNode, typeCheck, writeProject } from "./run";
import { checkShellBlock, type ShellContext } from "./shell";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
/** Where the blocks are written: inside this package, so that `@gov/*` resolve from it. */
const PROJECT = fileURLToPath(new URL("../node_modules/.cache/docs-blocks/", import.meta.url));
/** Generous: a block starts Node, PGlite and every module's migrations on a 2-core machine. */
const RUN_TIMEOUT_MS = 120_000;

/**
 * Hidden setup for blocks that are fragments of a longer program. Keep them few: a block that
 * can define what it uses should.
 */
const PRELUDES: Record<string, { purpose: string; head: string; tail: string }> = {
  sdk: {
    purpose:
      "an `sdk` started as a user starts it, `await GovernanceSDK.start()` (the database from GOVERNANCE_DATABASE_URL), and closed after the block",
    head: [
      'import { GovernanceSDK as PreludeGovernanceSDK } from "@gov/sdk";',
      "const sdk = await PreludeGovernanceSDK.start();",
      "",
    ].join("\n"),
    tail: "\nawait sdk.close();\n",
  },
  session: {
    purpose:
      "the `sdk` prelude's `sdk`, and a `sessionId` with one event logged to it (a README's earlier example)",
    head: [
      'import { randomUUID as preludeRandomUUID } from "node:crypto";',
      'import { GovernanceSDK as PreludeGovernanceSDK } from "@gov/sdk";',
      "const sdk = await PreludeGovernanceSDK.start();",
      "const sessionId = preludeRandomUUID();",
      'await sdk.audit.log({ agentId: "billing-agent", kind: "llm.call", sessionId });',
      "",
    ].join("\n"),
    tail: "\nawait sdk.close();\n",
  },
};

/**
 * Blocks that are not run, by file, with their reasons. A new `<!-- not executed -->` fails
 * the test until it is added here: think twice, most blocks can run.
 */
const EXPECTED_OPT_OUTS: readonly { file: string; reason: string }[] = [
  {
    file: "packages/core/README.md",
    reason: "a vitest suite, run by vitest rather than as a program",
  },
];

/** The root README's usage example, run as written too (and from packed tarballs, elsewhere). */
const FIRST_EXAMPLE = { file: "README.md", example: "usage" };

// ---------------------------------------------------------------------------------------

function markdownFiles(): string[] {
  const files = ["README.md"];
  for (const folder of ["packages", "apps", "tests"]) {
    for (const name of readdirSync(join(ROOT, folder)).sort()) {
      let entries: string[];
      try {
        entries = readdirSync(join(ROOT, folder, name));
      } catch {
        continue;
      }
      // READMEs only: the packages' other Markdown files (BLUEPRINTS.md, FORMAT.md) hold
      // fragments written for reading, not yet marked for this test.
      if (entries.includes("README.md")) files.push(`${folder}/${name}/README.md`);
    }
  }
  return files;
}

const blocks: CodeBlock[] = markdownFiles().flatMap((file) =>
  extractBlocks(readFileSync(join(ROOT, file), "utf8"), file),
);
const origin = (block: CodeBlock) => `${block.file}:${block.line}`;
const runnable = blocks.filter(
  (block) => (block.kind === "ts" || block.kind === "js") && block.notRun === null,
);

function blockFile(block: CodeBlock): BlockFile {
  const prelude = block.prelude === null ? null : PRELUDES[block.prelude];
  const head = prelude?.head ?? "";
  return {
    id: `${block.file.replace(/[^A-Za-z0-9]+/g, "-").toLowerCase()}-${block.line}`,
    origin: origin(block),
    language: block.kind === "js" ? "js" : "ts",
    source: `${head}${block.code}${prelude?.tail ?? ""}`,
    preludeLines: head === "" ? 0 : head.split("\n").length - 1,
    line: block.line,
    file: block.file,
  };
}

const files = new Map(runnable.map((block) => [block, blockFile(block)]));

/** The environment of a block's process: this one's, without anything of the test runner's. */
function cleanEnvironment(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (/^(GOVERNANCE_|VITEST|NODE_OPTIONS$|NODE_ENV$|TURBO_)/.test(name)) continue;
    env[name] = value;
  }
  return { ...env, ...extra };
}

/** Whether a block (with its prelude) opens a database, and so runs on both engines. */
function usesDatabase(file: BlockFile): boolean {
  return /GovernanceSDK|createStore|databaseUrl|GOVERNANCE_DATABASE_URL/.test(file.source);
}

async function expectRuns(file: string, where: string, env: Record<string, string>): Promise<void> {
  const cwd = mkdtempSync(join(tmpdir(), "gov-docs-"));
  try {
    const result = await runNode(file, {
      cwd,
      env: cleanEnvironment(env),
      timeoutMs: RUN_TIMEOUT_MS,
    });
    const ending = result.timedOut
      ? `did not exit within ${RUN_TIMEOUT_MS / 1000} s (does it close what it opens?)`
      : result.code === 0
        ? null
        : `exited with ${result.signal ?? `status ${result.code}`}`;
    expect(
      ending,
      `${where} ${ending}; its output:\n${result.output.slice(-6000)}\n(the file run: ${relative(ROOT, file)})`,
    ).toBeNull();
  } finally {
    rmSync(cwd, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------

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

describe("TypeScript and JavaScript blocks", () => {
  let diagnostics = new Map<string, string[]>();

  // One program for every block: slow on a loaded 2-core machine, hence the timeout.
  beforeAll(() => {
    rmSync(PROJECT, { recursive: true, force: true });
    writeProject(PROJECT, [...files.values()]);
    diagnostics = typeCheck(PROJECT, [...files.values()]);
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

  const postgres = testEngines().find((engine) => engine.name === "postgres");
  describe.concurrent("run", () => {
    for (const file of files.values()) {
      it(`${file.origin} runs on PGlite`, async () => {
        await expectRuns(join(PROJECT, `${file.id}.mjs`), file.origin, {
          GOVERNANCE_DATABASE_URL: "memory://",
          GOVERNANCE_AUDIT_SECRET: randomBytes(48).toString("base64url"),
        });
      });
      if (!usesDatabase(file)) continue;
      it.skipIf(!postgres?.available)(`${file.origin} runs on Postgres`, async () => {
        const database = await createTestDatabase(postgres as NonNullable<typeof postgres>);
        try {
          await expectRuns(join(PROJECT, `${file.id}.mjs`), file.origin, {
            GOVERNANCE_DATABASE_URL: database.databaseUrl,
            GOVERNANCE_AUDIT_SECRET: randomBytes(48).toString("base64url"),
          });
        } finally {
          await database.dispose();
        }
      });
    }
  });
});

describe("the root README's first example", () => {
  const first = blocks.find(
    (block) => block.file === FIRST_EXAMPLE.file && block.example === FIRST_EXAMPLE.example,
  );
  const directory = join(PROJECT, "..", "docs-first-example");
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
