/**
 * Type-checking and running code blocks as a user would: each block becomes a file of a
 * small ES-module project inside this package (so that `@gov/*` resolve to the workspace
 * packages' built `dist/`, as they would from npm), is type-checked with the options of a
 * default TypeScript project, and runs in a Node process of its own.
 */
import { spawn } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import ts from "typescript";

/**
 * The compiler options `tsc --init` writes (TypeScript 5.9), plus `types: ["node"]`, which
 * its generated file tells Node projects to add (with `npm install -D @types/node`).
 * `target: esnext` keeps syntax as written: a block that uses syntax Node 20 lacks (such as
 * `await using`) fails when it runs.
 */
export const DEFAULT_PROJECT_OPTIONS: ts.CompilerOptions = {
  module: ts.ModuleKind.NodeNext,
  moduleResolution: ts.ModuleResolutionKind.NodeNext,
  target: ts.ScriptTarget.ESNext,
  types: ["node"],
  strict: true,
  noUncheckedIndexedAccess: true,
  exactOptionalPropertyTypes: true,
  verbatimModuleSyntax: true,
  isolatedModules: true,
  noUncheckedSideEffectImports: true,
  moduleDetection: ts.ModuleDetectionKind.Force,
  skipLibCheck: true,
  noEmit: true,
};

/** A block made into a file: `source` is what is checked and run. */
export interface BlockFile {
  /** A unique, file-name-safe id. */
  id: string;
  /** Where the block comes from, `README.md:42`. */
  origin: string;
  /** TypeScript (type-checked, then transpiled) or JavaScript (run as written). */
  language: "ts" | "js";
  source: string;
  /** Lines of hidden prelude before the block's first line, to map diagnostics back. */
  preludeLines: number;
  /** The 1-based line of the block's first line in its Markdown file. */
  line: number;
  /** The Markdown file. */
  file: string;
}

/** Write the project: a `package.json` that makes `.ts` and `.js` files ES modules. */
export function writeProject(directory: string, files: readonly BlockFile[]): void {
  mkdirSync(directory, { recursive: true });
  writeFileSync(
    join(directory, "package.json"),
    `${JSON.stringify({ private: true, type: "module" }, null, 2)}\n`,
  );
  for (const file of files) {
    writeFileSync(join(directory, `${file.id}.${file.language}`), file.source);
    writeFileSync(join(directory, `${file.id}.mjs`), runnable(file));
  }
}

/** What Node runs: TypeScript transpiled with the default project's options, JavaScript as is. */
function runnable(file: BlockFile): string {
  if (file.language === "js") return file.source;
  return ts.transpileModule(file.source, {
    compilerOptions: { ...DEFAULT_PROJECT_OPTIONS, noEmit: false, sourceMap: false },
    // An ES module, as the `.ts` file is in its `"type": "module"` project (transpileModule
    // does not read package.json).
    fileName: `${file.id}.mts`,
  }).outputText;
}

/**
 * Where the blocks' `@gov/*` imports resolve: the built `dist/` (as installed from npm, what
 * CI checks), or, with `GOV_DOCS_FROM=source`, the packages' sources (the `@gov/source`
 * export condition; run through tsx) — to check the docs while a package does not build.
 */
export const FROM_SOURCE = process.env.GOV_DOCS_FROM === "source";

/**
 * Type-check the TypeScript blocks together, in one program.
 * @returns the diagnostics of each block by id, each as `README.md:42:7 message`, with the
 *   line of the Markdown file (a diagnostic in a prelude says so). From sources, the
 *   packages' own files are checked with these options too: their diagnostics are left out.
 */
export function typeCheck(directory: string, files: readonly BlockFile[]): Map<string, string[]> {
  const byPath = new Map(
    files
      .filter((file) => file.language === "ts")
      .map((file) => [join(directory, `${file.id}.ts`), file]),
  );
  const program = ts.createProgram(
    [...byPath.keys()],
    FROM_SOURCE
      ? {
          ...DEFAULT_PROJECT_OPTIONS,
          // The sources import each other without extensions, as a bundler resolves them.
          module: ts.ModuleKind.ESNext,
          moduleResolution: ts.ModuleResolutionKind.Bundler,
          customConditions: ["@gov/source"],
        }
      : DEFAULT_PROJECT_OPTIONS,
  );
  const diagnostics = new Map<string, string[]>();
  for (const diagnostic of ts.getPreEmitDiagnostics(program)) {
    const file = diagnostic.file ? byPath.get(diagnostic.file.fileName) : undefined;
    const message = ts.flattenDiagnosticMessageText(diagnostic.messageText, "\n");
    if (!file || !diagnostic.file || diagnostic.start === undefined) {
      if (FROM_SOURCE && diagnostic.file) continue;
      const list = diagnostics.get("") ?? [];
      list.push(message);
      diagnostics.set("", list);
      continue;
    }
    const position = diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start);
    const line = position.line - file.preludeLines;
    const where =
      line < 0
        ? `${file.origin} (in its prelude)`
        : `${file.file}:${file.line + line}:${position.character + 1}`;
    const list = diagnostics.get(file.id) ?? [];
    list.push(`${where} TS${diagnostic.code}: ${message}`);
    diagnostics.set(file.id, list);
  }
  return diagnostics;
}

/** Node's arguments to run a block against the packages' sources (tsx, as a loader). */
const SOURCE_ARGUMENTS = FROM_SOURCE
  ? ["--conditions=@gov/source", "--import", import.meta.resolve("tsx")]
  : [];

/** How a block's process ended. */
export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  output: string;
}

/**
 * Run `file` (an `.mjs`) in a Node process of its own, in `cwd`, with `env`; kill it after
 * `timeoutMs`. A block passes when its process exits by itself with status 0: it must close
 * what it opens.
 */
export function runNode(
  file: string,
  options: { cwd: string; env: NodeJS.ProcessEnv; timeoutMs: number },
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...SOURCE_ARGUMENTS, file], {
      cwd: options.cwd,
      env: options.env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    const append = (chunk: Buffer) => {
      output += chunk.toString("utf8");
      if (output.length > 200_000) output = output.slice(-100_000);
    };
    child.stdout.on("data", append);
    child.stderr.on("data", append);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, options.timeoutMs);
    child.on("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, timedOut, output });
    });
  });
}
