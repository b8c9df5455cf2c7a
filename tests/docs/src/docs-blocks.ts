/**
 * The code blocks of the README files that the docs test checks (see docs.test.ts), and how
 * the runnable ones are run.
 *
 * The runs take most of the docs test's time, so they are spread over several test files,
 * `docs-run-1.test.ts` … `docs-run-<RUN_GROUPS>.test.ts`, which vitest can run side by side:
 * {@link runGroups} deals the READMEs out to them from the same list of files, so that a new
 * README is run without naming it anywhere, and docs.test.ts fails when a block is in no
 * group or a group has no file.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { createTestDatabase, testEngines } from "@gov/core/testing";
import {
  type AnthropicServer,
  chatChunks,
  chatCompletion,
  message,
  messageEvents,
  type OpenAIServer,
  response,
  responseEvents,
  startAnthropicServer,
  startOpenAIServer,
} from "@gov/wrappers/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CodeBlock, extractBlocks } from "./markdown";
import { type BlockFile, runNode, writeProject } from "./run";

export const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
/**
 * Where the blocks are written, one folder per test file: inside this package, so that
 * `@gov/*` resolve from it.
 */
export const PROJECTS = fileURLToPath(
  new URL("../node_modules/.cache/docs-blocks/", import.meta.url),
);
/** Generous: a block starts Node, PGlite and every module's migrations on a 2-core machine. */
const RUN_TIMEOUT_MS = 120_000;

/**
 * Hidden setup for blocks that are fragments of a longer program. Keep them few: a block that
 * can define what it uses should.
 */
export const PRELUDES: Record<string, { purpose: string; head: string; tail: string }> = {
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
export const EXPECTED_OPT_OUTS: readonly { file: string; reason: string }[] = [
  {
    file: "packages/core/README.md",
    reason: "a vitest suite, run by vitest rather than as a program",
  },
];

/** The root README's usage example, run as written too (and from packed tarballs, elsewhere). */
export const FIRST_EXAMPLE = { file: "README.md", example: "usage" };

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

export const blocks: CodeBlock[] = markdownFiles().flatMap((file) =>
  extractBlocks(readFileSync(join(ROOT, file), "utf8"), file),
);
export const origin = (block: CodeBlock) => `${block.file}:${block.line}`;
export const runnable = blocks.filter(
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

export const files = new Map(runnable.map((block) => [block, blockFile(block)]));

/** The environment of a block's process: this one's, without anything of the test runner's. */
function cleanEnvironment(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (/^(GOVERNANCE_|VITEST|NODE_OPTIONS$|NODE_ENV$|TURBO_|OPENAI_|ANTHROPIC_)/.test(name))
      continue;
    env[name] = value;
  }
  return { ...env, ...providers, ...extra };
}

/**
 * Where the model clients of the blocks (`new OpenAI()`, `new Anthropic()`, `openai(…)` of the
 * AI SDK) send their requests: loopback servers of ours that speak each provider's wire format,
 * started once per test file by {@link describeBlockRuns}, their addresses given to the blocks
 * the way a user gives them to a client — its own environment variables.
 */
let providers: Record<string, string> = {};

/** Answer every model call: a completion or a message, streamed when asked. */
function answerEverything(openai: OpenAIServer, anthropic: AnthropicServer): void {
  openai.reply = (request) => {
    const model = String(request.body.model);
    if (request.path.startsWith("/responses"))
      return request.body.stream === true
        ? { sse: responseEvents(), done: false }
        : { json: response({ model }) };
    return request.body.stream === true
      ? { sse: chatChunks(request.body) }
      : { json: chatCompletion({ model }) };
  };
  anthropic.reply = (request) =>
    request.body.stream === true ? { sse: messageEvents() } : { json: message() };
}

/** Whether a block (with its prelude) opens a database, and so runs on both engines. */
function usesDatabase(file: BlockFile): boolean {
  return /GovernanceSDK|createStore|databaseUrl|GOVERNANCE_DATABASE_URL/.test(file.source);
}

export async function expectRuns(
  file: string,
  where: string,
  env: Record<string, string>,
): Promise<void> {
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

/** How many `docs-run-<n>.test.ts` files there are (docs.test.ts checks that they all exist). */
export const RUN_GROUPS = 4;

/**
 * The runnable blocks' files, in {@link RUN_GROUPS} groups of whole READMEs of about the same
 * cost: the costliest README first, each into the group that costs least so far. A block's
 * run on PGlite costs about three of its run on Postgres (the embedded database starts in
 * the block's own process).
 */
export function runGroups(): BlockFile[][] {
  const byReadme = new Map<string, BlockFile[]>();
  for (const file of files.values())
    byReadme.set(file.file, [...(byReadme.get(file.file) ?? []), file]);
  const cost = (readme: BlockFile[]) =>
    readme.reduce((sum, file) => sum + 3 + (usesDatabase(file) ? 1 : 0), 0);
  const readmes = [...byReadme.entries()].sort(
    ([nameA, a], [nameB, b]) => cost(b) - cost(a) || nameA.localeCompare(nameB),
  );
  const groups = Array.from({ length: RUN_GROUPS }, () => ({ cost: 0, files: [] as BlockFile[] }));
  for (const [, readme] of readmes) {
    const cheapest = groups.reduce((least, group) => (group.cost < least.cost ? group : least));
    cheapest.cost += cost(readme);
    cheapest.files.push(...readme);
  }
  return groups.map((group) => group.files);
}

/**
 * Register the runs of group `group` (1-based) of {@link runGroups}: each block on PGlite,
 * and on a fresh real-Postgres database too when it uses a database and
 * `GOVERNANCE_TEST_DATABASE_URL` is set. Called by `docs-run-<group>.test.ts`.
 */
export function describeBlockRuns(group: number): void {
  const groupFiles = runGroups()[group - 1] ?? [];
  const project = join(PROJECTS, `run-${group}`);
  describe("TypeScript and JavaScript blocks", () => {
    let openai: OpenAIServer | null = null;
    let anthropic: AnthropicServer | null = null;
    beforeAll(async () => {
      rmSync(project, { recursive: true, force: true });
      writeProject(project, groupFiles);
      openai = await startOpenAIServer();
      anthropic = await startAnthropicServer();
      answerEverything(openai, anthropic);
      providers = {
        OPENAI_BASE_URL: openai.baseURL,
        OPENAI_API_KEY: "sk-docs-loopback",
        ANTHROPIC_BASE_URL: anthropic.baseURL,
        ANTHROPIC_API_KEY: "sk-ant-docs-loopback",
      };
    });
    afterAll(async () => {
      await openai?.close();
      await anthropic?.close();
    });

    const postgres = testEngines().find((engine) => engine.name === "postgres");
    describe.concurrent("run", () => {
      for (const file of groupFiles) {
        it(`${file.origin} runs on PGlite`, async () => {
          await expectRuns(join(project, `${file.id}.mjs`), file.origin, {
            GOVERNANCE_DATABASE_URL: "memory://",
            GOVERNANCE_AUDIT_SECRET: randomBytes(48).toString("base64url"),
          });
        });
        if (!usesDatabase(file)) continue;
        it.skipIf(!postgres?.available)(`${file.origin} runs on Postgres`, async () => {
          const database = await createTestDatabase(postgres as NonNullable<typeof postgres>);
          try {
            await expectRuns(join(project, `${file.id}.mjs`), file.origin, {
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
}
