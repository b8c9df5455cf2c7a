/**
 * Child processes for multi-process tests: a TypeScript fixture spoken to in JSON lines.
 * @module
 */
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

/** A TypeScript fixture running in another OS process, spoken to in JSON lines. */
export interface JsonLinesChild<Line = Record<string, unknown>> {
  /** Write one JSON line to its stdin. */
  send(message: unknown): void;
  /** The next JSON line it prints (rejects, with its stderr, if it exits first). */
  next(): Promise<Line>;
  /** Wait for it to exit; rejects with its stderr unless it exits with 0. */
  exited(): Promise<void>;
  kill(): void;
}

/**
 * Run a TypeScript fixture (through tsx, reading workspace packages from source) in another
 * OS process, for multi-process tests: it reads JSON lines from stdin and prints JSON lines.
 *
 * @example
 * ```ts
 * const child = spawnJsonLinesChild(new URL("./__fixtures__/child.ts", import.meta.url), [url]);
 * expect(await child.next()).toEqual({ event: "ready" });
 * ```
 */
export function spawnJsonLinesChild<Line = Record<string, unknown>>(
  script: URL,
  args: readonly string[],
  options: { cwd: URL; env?: Record<string, string | undefined> },
): JsonLinesChild<Line> {
  const child = spawn(
    process.execPath,
    ["--import", "tsx", "--conditions=@gov/source", fileURLToPath(script), ...args],
    { cwd: fileURLToPath(options.cwd), env: options.env ?? process.env },
  );
  const lines: Line[] = [];
  const waiting: ((line: Line) => void)[] = [];
  const exitWaiters: (() => void)[] = [];
  let buffered = "";
  let stderr = "";
  let exit: { code: number | null } | null = null;
  child.stdout.on("data", (chunk: Buffer) => {
    buffered += chunk.toString();
    let newline = buffered.indexOf("\n");
    while (newline >= 0) {
      const line = JSON.parse(buffered.slice(0, newline)) as Line;
      buffered = buffered.slice(newline + 1);
      const waiter = waiting.shift();
      if (waiter) waiter(line);
      else lines.push(line);
      newline = buffered.indexOf("\n");
    }
  });
  child.stderr.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  child.on("close", (code) => {
    exit = { code };
    for (const wake of exitWaiters.splice(0)) wake();
  });
  const failure = () => new Error(`the child exited (code ${exit?.code}): ${stderr}`);
  return {
    send: (message) => {
      child.stdin.write(`${JSON.stringify(message)}\n`);
    },
    next: () => {
      const line = lines.shift();
      if (line !== undefined) return Promise.resolve(line);
      if (exit) return Promise.reject(failure());
      return new Promise<Line>((resolve, reject) => {
        waiting.push(resolve);
        exitWaiters.push(() => reject(failure()));
      });
    },
    exited: () =>
      new Promise<void>((resolve, reject) => {
        const settle = () => (exit?.code === 0 ? resolve() : reject(failure()));
        if (exit) settle();
        else exitWaiters.push(settle);
      }),
    kill: () => {
      if (!exit) child.kill();
    },
  };
}
