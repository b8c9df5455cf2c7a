/**
 * Running a command of the packed test (pnpm, npm, node) and keeping what it printed, to
 * show when it fails.
 * @module
 */
import { spawn } from "node:child_process";

/** What a command printed. */
export interface CommandOutput {
  stdout: string;
  stderr: string;
}

/**
 * Run `command` with `args` in `cwd`; resolve with its output when it exits with 0, reject
 * with an error that quotes its output (the last 4,000 characters of each stream) otherwise.
 */
export function runCommand(
  command: string,
  args: readonly string[],
  options: { cwd: string; env?: NodeJS.ProcessEnv },
): Promise<CommandOutput> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: options.env ?? process.env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    child.once("error", reject);
    child.once("close", (code, signal) => {
      if (code === 0) {
        resolve({ stdout, stderr });
        return;
      }
      reject(
        new Error(
          [
            `\`${command} ${args.join(" ")}\` in ${options.cwd} exited with ${signal ?? code}.`,
            `--- stdout ---\n${stdout.slice(-4_000)}`,
            `--- stderr ---\n${stderr.slice(-4_000)}`,
          ].join("\n"),
        ),
      );
    });
  });
}

/**
 * The environment of this process without what pnpm adds for the script that runs it
 * (`npm_package_*`, `npm_lifecycle_*`, pnpm's own settings), which would otherwise leak into
 * npm and into the example. The user's npm settings (`npm_config_registry`, proxies, the
 * cache) stay.
 */
export function cleanEnvironment(
  env: NodeJS.ProcessEnv = process.env,
  drop: (name: string) => boolean = () => false,
): NodeJS.ProcessEnv {
  const PNPM_ADDED =
    /^(npm_(package|lifecycle)_|npm_command$|npm_execpath$|npm_node_execpath$|npm_config_user_agent$|npm_config_verify_deps_before_run$|pnpm_)/i;
  return Object.fromEntries(
    Object.entries(env).filter(([name]) => !PNPM_ADDED.test(name) && !drop(name)),
  );
}
