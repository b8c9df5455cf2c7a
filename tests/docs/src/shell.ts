/**
 * Shell blocks are not run (they install packages or start long commands); each command is
 * checked for its shape against the repository instead, and a command the checker does not
 * know is a failure, so that no shell block goes unchecked by accident.
 */

/** What the commands are checked against. */
export interface ShellContext {
  /** Publishable workspace packages by name, with the names of their dependencies of any kind. */
  packages: ReadonlyMap<
    string,
    { dependencies: ReadonlySet<string>; scripts: ReadonlySet<string> }
  >;
  /** The scripts of the root package.json. */
  rootScripts: ReadonlySet<string>;
  /** The major version of pnpm the repository asks for (`engines.pnpm`). */
  pnpmMajor: string;
  /** Every environment variable the packages read. */
  environment: ReadonlySet<string>;
  /** Prefixes of variable names the packages read as a family (`GOVERNANCE_CHAIN_KEY_`). */
  environmentPrefixes: readonly string[];
}

/** One line of a shell block, joined with its `\` continuations, comments removed. */
function commandLines(code: string): string[] {
  const joined = code.replace(/\\\n/g, " ");
  return joined
    .split("\n")
    .map((line) => stripComment(line).trim())
    .filter((line) => line !== "");
}

function stripComment(line: string): string {
  let quote: string | null = null;
  for (let index = 0; index < line.length; index++) {
    const character = line[index] as string;
    if (quote) {
      if (character === quote) quote = null;
    } else if (character === '"' || character === "'") {
      quote = character;
    } else if (character === "#" && (index === 0 || /\s/.test(line[index - 1] as string))) {
      return line.slice(0, index);
    }
  }
  return line;
}

/** The name of a package spec (`pnpm@10` → `pnpm`, `@gov/sdk@^0.1` → `@gov/sdk`). */
function packageName(spec: string): { name: string; version: string | null } {
  const at = spec.indexOf("@", spec.startsWith("@") ? 1 : 0);
  return at === -1
    ? { name: spec, version: null }
    : { name: spec.slice(0, at), version: spec.slice(at + 1) };
}

/**
 * The problems of one shell block, one line each; empty when every command checks out.
 *
 * @example
 * ```ts
 * checkShellBlock("npm install @gov/sdk\n", context); // []
 * checkShellBlock("npm install @gov/nope\n", context); // ["`npm install @gov/nope`: …"]
 * ```
 */
export function checkShellBlock(code: string, context: ShellContext): string[] {
  const problems: string[] = [];
  for (const line of commandLines(code)) {
    for (const command of line.split(/\s*(?:&&|;)\s*/)) {
      const problem = checkCommand(command.trim(), context);
      if (problem) problems.push(`\`${command.trim()}\`: ${problem}`);
    }
  }
  return problems;
}

function checkCommand(command: string, context: ShellContext): string | null {
  const exported = /^export\s+([A-Za-z_][A-Za-z0-9_]*)=/.exec(command);
  if (exported) {
    const name = exported[1] as string;
    if (context.environment.has(name)) return null;
    if (context.environmentPrefixes.some((prefix) => name.startsWith(prefix))) return null;
    return `no package reads the variable ${name}.`;
  }
  const words = command.split(/\s+/);
  let [program, ...args] = words as [string, ...string[]];
  if (program === "npx" && args[0] && packageName(args[0]).name === "pnpm") {
    const version = packageName(args[0]).version;
    if (version !== context.pnpmMajor) return `use pnpm@${context.pnpmMajor}, the repository's.`;
    [program, ...args] = ["pnpm", ...args.slice(1)];
  }
  if (program === "npm" || program === "pnpm") {
    const [verb, ...rest] = args;
    if (verb === "install" || verb === "i" || verb === "add") {
      return checkInstall(program, rest, context);
    }
    if (program === "pnpm") return checkPnpmScript(args, context);
    return "the docs test knows `npm install` only; add a check for this command.";
  }
  return "the docs test has no check for this command: add one to src/shell.ts, or mark the block <!-- not-run: reason -->.";
}

function checkInstall(program: string, args: string[], context: ShellContext): string | null {
  const global = args.includes("-g") || args.includes("--global");
  const specs = args.filter((argument) => !argument.startsWith("-"));
  if (specs.length === 0) {
    return program === "pnpm" && !global ? null : "installs nothing.";
  }
  if (global) {
    for (const spec of specs) {
      const { name, version } = packageName(spec);
      if (name !== "pnpm") return `only pnpm is installed globally, not ${name}.`;
      if (version !== context.pnpmMajor) return `use pnpm@${context.pnpmMajor}, the repository's.`;
    }
    return null;
  }
  const names = specs.map((spec) => packageName(spec).name);
  const ours = names.filter((name) => name.startsWith("@gov/"));
  for (const name of ours) {
    if (!context.packages.has(name))
      return `${name} is not a publishable package of this repository.`;
  }
  if (ours.length === 0) return "installs no @gov package.";
  for (const name of names) {
    if (name.startsWith("@gov/")) continue;
    const wanted = ours.some((own) => context.packages.get(own)?.dependencies.has(name));
    if (!wanted) return `${name} is not a dependency of ${ours.join(" or ")}.`;
  }
  return null;
}

function checkPnpmScript(args: string[], context: ShellContext): string | null {
  const filter = args.indexOf("--filter");
  if (filter !== -1) {
    const name = args[filter + 1] ?? "";
    const rest = args.filter((_, index) => index !== filter && index !== filter + 1);
    const script = rest[0] === "run" ? rest[1] : rest[0];
    const target = context.packages.get(name);
    if (!target) return `${name} is not a publishable package of this repository.`;
    return script && target.scripts.has(script) ? null : `${name} has no script ${script}.`;
  }
  const script = args[0] === "run" ? args[1] : args[0];
  if (script && context.rootScripts.has(script)) return null;
  return `the root package.json has no script ${script ?? "(none given)"}.`;
}
