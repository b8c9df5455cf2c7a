/**
 * The database drivers are optional peer dependencies: `@electric-sql/pglite` for the
 * embedded database, `pg` for a real Postgres. These tests install @gov/core (its sources)
 * into a temporary project with its dependencies but without the drivers, as a user's
 * project would be, and open a store there in a child process.
 */
import { spawn } from "node:child_process";
import { existsSync, readFileSync, realpathSync } from "node:fs";
import { cp, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const CORE = fileURLToPath(new URL("..", import.meta.url));
const DRIVERS = ["@electric-sql/pglite", "pg"];

/** The directory of package `name` as Node would find it from `from`. */
function packageDirectory(name: string, from: string): string {
  for (let directory = from; ; directory = dirname(directory)) {
    const candidate = join(directory, "node_modules", name);
    if (existsSync(join(candidate, "package.json"))) return realpathSync(candidate);
    if (dirname(directory) === directory) throw new Error(`${name} is not installed`);
  }
}

/** Copy `name` and its dependencies (not its peers) into `target`/node_modules, flat. */
async function install(name: string, from: string, target: string, done: Set<string>) {
  if (done.has(name)) return;
  done.add(name);
  const source = packageDirectory(name, from);
  await cp(source, join(target, "node_modules", name), { recursive: true, dereference: true });
  const manifest = JSON.parse(readFileSync(join(source, "package.json"), "utf8")) as {
    dependencies?: Record<string, string>;
  };
  for (const dependency of Object.keys(manifest.dependencies ?? {}))
    await install(dependency, source, target, done);
}

interface Outcome {
  /** How the child exited: 0 when createStore rejected and the script went on. */
  exitCode: number | null;
  stdout: string;
  stderr: string;
  /** What createStore rejected with, as the script saw it. */
  rejected: { name: string; code: string; message: string; recoveryHint: string } | null;
}

describe("without the optional database drivers installed", () => {
  let project: string;

  beforeAll(async () => {
    project = await mkdtemp(join(tmpdir(), "gov-no-drivers-"));
    const core = join(project, "node_modules", "@gov", "core");
    await mkdir(core, { recursive: true });
    await cp(join(CORE, "package.json"), join(core, "package.json"));
    await cp(join(CORE, "src"), join(core, "src"), {
      recursive: true,
      filter: (path) => !path.endsWith(".test.ts") && !path.includes("__fixtures__"),
    });
    const manifest = JSON.parse(readFileSync(join(CORE, "package.json"), "utf8")) as {
      dependencies: Record<string, string>;
    };
    const done = new Set<string>();
    for (const name of Object.keys(manifest.dependencies)) await install(name, CORE, project, done);
    for (const driver of DRIVERS) expect(done.has(driver)).toBe(false);
    await writeFile(join(project, "package.json"), '{ "type": "module", "private": true }\n');
    // Opens a store as a user's script would, and prints what createStore rejected with.
    await writeFile(
      join(project, "open.mjs"),
      `import { createStore } from "@gov/core";
const databaseUrl = process.argv[2] === "-" ? undefined : process.argv[2];
try {
  const store = await createStore({ databaseUrl });
  console.log(JSON.stringify({ opened: store.engine }));
  await store.close();
} catch (error) {
  const { name, code, message, recoveryHint } = error;
  console.log(JSON.stringify({ rejected: { name, code, message, recoveryHint } }));
}
`,
    );
  }, 120_000);

  afterAll(async () => {
    if (project) await rm(project, { recursive: true, force: true });
  });

  /** Run open.mjs in the project, on the sources (through tsx and the source condition). */
  function open(databaseUrl: string | undefined): Promise<Outcome> {
    const tsx = pathToFileURL(createRequire(import.meta.url).resolve("tsx")).href;
    const child = spawn(
      process.execPath,
      ["--import", tsx, "--conditions=@gov/source", "open.mjs", databaseUrl ?? "-"],
      { cwd: project, env: { PATH: process.env.PATH ?? "" }, stdio: ["ignore", "pipe", "pipe"] },
    );
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    return new Promise((resolve, reject) => {
      child.once("error", reject);
      child.once("close", (exitCode) => {
        const last = stdout.trim().split("\n").at(-1) ?? "";
        let rejected: Outcome["rejected"] = null;
        try {
          rejected = (JSON.parse(last) as { rejected?: Outcome["rejected"] }).rejected ?? null;
        } catch {
          // Not a line of the script: the process died before it could print one.
        }
        resolve({ exitCode, stdout, stderr, rejected });
      });
    });
  }

  // Guards against: the embedded database's driver import crashing the process with an
  // unhandled rejection (uncatchable) instead of rejecting with what to install.
  it.each([
    ["no URL (the default ./.governance)", undefined],
    ["memory://", "memory://"],
    ["a directory", "./data/governance"],
    ["a file: URL", "file:./data/governance"],
  ])(
    "createStore with %s rejects with a ConfigError naming @electric-sql/pglite",
    async (_, url) => {
      const outcome = await open(url);
      expect(outcome.stderr).not.toMatch(/ERR_MODULE_NOT_FOUND|triggerUncaughtException/);
      expect(outcome.exitCode).toBe(0);
      expect(outcome.rejected).toMatchObject({ name: "ConfigError", code: "CONFIG_INVALID" });
      expect(outcome.rejected?.message).toContain("@electric-sql/pglite");
      expect(outcome.rejected?.recoveryHint).toContain("npm install @electric-sql/pglite");
      // Refused before anything was made: no directory, no key file, no lock.
      expect(existsSync(join(project, ".governance"))).toBe(false);
      expect(existsSync(join(project, "data"))).toBe(false);
    },
  );

  // Guards against: the same for a real Postgres without `pg`.
  it.each([
    ["a postgres:// URL", "postgres://gov@127.0.0.1:5432/gov"],
    ["a postgresql:// URL", "postgresql://gov@127.0.0.1:5432/gov?sslmode=disable"],
  ])("createStore with %s rejects with a ConfigError naming pg", async (_, url) => {
    const outcome = await open(url);
    expect(outcome.exitCode).toBe(0);
    expect(outcome.rejected).toMatchObject({ name: "ConfigError", code: "CONFIG_INVALID" });
    expect(outcome.rejected?.message).toContain("the `pg` driver is not installed");
    expect(outcome.rejected?.recoveryHint).toContain("npm install pg");
  });
});
