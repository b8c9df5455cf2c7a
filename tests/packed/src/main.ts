/**
 * `pnpm test:packed`: the packages as npm delivers them. Packs every publishable package,
 * installs the tarballs into a fresh npm project in a temporary directory outside the
 * workspace (third-party dependencies from the registry, through npm's cache), and runs the
 * root README's usage example there as `agent.mjs` — the block after `<!-- example: usage -->`,
 * read at run time — on PGlite (nothing configured: `./.governance/`) and on a fresh Postgres
 * database (`GOVERNANCE_TEST_DATABASE_URL`'s server; skipped, visibly, when it is not set).
 * @module
 */
import { randomBytes } from "node:crypto";
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { createStore, silentLogger, sql } from "@gov/core";
import { createTestDatabase, TEST_DATABASE_URL_ENV, testEngines } from "@gov/core/testing";
import { extractBlocks } from "@gov/docs-test/src/markdown";
import { cleanEnvironment, runCommand } from "./command";
import { refuseAccidentalMajors, releasePlan, stampRelease } from "./release";
import { buildAndPack, publishablePackages, ROOT } from "./tarballs";

const EXAMPLE = { file: "README.md", name: "usage" };

function say(line: string): void {
  process.stdout.write(`[packed] ${line}\n`);
}

/** Milliseconds since `start`, as "12.3 s" (elapsed time, not wall time: performance.now). */
function since(start: number): string {
  return `${((performance.now() - start) / 1000).toFixed(1)} s`;
}

/** The README's usage example, as written. */
function usageExample(): string {
  const text = readFileSync(join(ROOT, EXAMPLE.file), "utf8");
  const block = extractBlocks(text, EXAMPLE.file).find((found) => found.example === EXAMPLE.name);
  if (!block)
    throw new Error(
      `${EXAMPLE.file} has no code block after <!-- example: ${EXAMPLE.name} -->: mark the usage example so that this test can run it.`,
    );
  return block.code;
}

/** Run agent.mjs in `project` with `env`; print what it printed, indented. */
async function runExample(project: string, label: string, env: NodeJS.ProcessEnv): Promise<void> {
  const start = performance.now();
  const { stdout, stderr } = await runCommand(process.execPath, ["agent.mjs"], {
    cwd: project,
    env,
  });
  say(`${label}: agent.mjs ran (${since(start)})`);
  for (const line of `${stdout}${stderr}`.trimEnd().split("\n")) say(`  | ${line}`);
}

async function main(): Promise<void> {
  const started = performance.now();
  const workspace = mkdtempSync(join(tmpdir(), "gov-packed-"));
  if (!relative(ROOT, workspace).startsWith(".."))
    throw new Error(`the temporary directory ${workspace} is inside the repository`);
  const tarballs = join(workspace, "tarballs");
  const project = join(workspace, "project");
  let passed = false;
  try {
    const example = usageExample();
    const packages = publishablePackages();
    let step = performance.now();
    const built = await buildAndPack(packages, tarballs);
    say(`built and packed ${built.length} packages (${since(step)})`);

    // The versions the next release gives them (changesets' plan), as publishing would write them.
    step = performance.now();
    const plan = await releasePlan(ROOT, workspace);
    refuseAccidentalMajors(plan);
    const versions = new Map(
      plan.filter((release) => release.type !== "none").map((r) => [r.name, r.newVersion]),
    );
    const packed = await Promise.all(
      built.map((tarball, index) =>
        stampRelease(tarball, packages[index] as (typeof packages)[number], versions, tarballs),
      ),
    );
    say(
      `stamped the release plan: ${packages.map((pkg) => `${pkg.name}@${versions.get(pkg.name) ?? pkg.version}`).join(", ")} (${since(step)})`,
    );

    // A fresh npm project, as a user starts one: `npm install` of the tarballs.
    mkdirSync(project);
    writeFileSync(
      join(project, "package.json"),
      `${JSON.stringify({ name: "gov-packed-consumer", private: true, type: "module" }, null, 2)}\n`,
    );
    step = performance.now();
    await runCommand(
      "npm",
      ["install", "--no-audit", "--no-fund", "--prefer-offline", "--loglevel=error", ...packed],
      { cwd: project, env: cleanEnvironment() },
    );
    for (const pkg of packages) {
      const installed = join(project, "node_modules", pkg.name);
      if (!existsSync(join(installed, "package.json")) || lstatSync(installed).isSymbolicLink())
        throw new Error(`${pkg.name} is not installed from its tarball in ${project}`);
    }
    say(`npm installed the tarballs into ${project} (${since(step)})`);
    writeFileSync(join(project, "agent.mjs"), example);

    // Nothing configured: the embedded database in ./.governance/.
    const fresh = cleanEnvironment(process.env, (name) => name.startsWith("GOVERNANCE_"));
    await runExample(project, "PGlite", fresh);
    if (!existsSync(join(project, ".governance")))
      throw new Error("the example did not use the embedded database in ./.governance/");

    const postgres = testEngines().find((engine) => engine.name === "postgres");
    if (!postgres?.available) {
      say(`${TEST_DATABASE_URL_ENV} is not set: the Postgres half is SKIPPED (PGlite only).`);
    } else {
      const database = await createTestDatabase(postgres);
      try {
        await runExample(project, "Postgres", {
          ...fresh,
          GOVERNANCE_DATABASE_URL: database.databaseUrl,
          GOVERNANCE_AUDIT_SECRET: randomBytes(48).toString("base64"),
        });
        const store = await createStore({
          databaseUrl: database.databaseUrl,
          logger: silentLogger,
        });
        try {
          const schemas = await store.query<{ name: string }>(
            sql`select schema_name as name from information_schema.schemata where schema_name = 'gov_audit'`,
          );
          if (schemas.length !== 1)
            throw new Error("the example did not migrate the Postgres database it was given");
        } finally {
          await store.close();
        }
      } finally {
        await database.dispose();
      }
    }
    passed = true;
    say(`passed (${since(started)})`);
  } finally {
    if (passed) rmSync(workspace, { recursive: true, force: true });
    else say(`failed; the project is kept in ${workspace}`);
  }
}

await main().catch((error: unknown) => {
  process.stderr.write(`[packed] ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});
