import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

/** A line the halt child printed. */
export interface ChildLine {
  event: "ready" | "halted" | "resumed";
  round?: number;
  haltedBy?: string;
  reason?: string;
  haltedAt?: string;
  path?: string;
}

/** The halt child (halt-child.ts) in another OS process, read line by line. */
export interface HaltChild {
  /** The next line it prints (rejects if it exits first). */
  next(): Promise<ChildLine>;
  /** Wait for it to exit; rejects with its stderr when it fails. */
  exited(): Promise<void>;
  kill(): void;
}

export function spawnHaltChild(url: string, agentId: string, rounds: number): HaltChild {
  const script = fileURLToPath(new URL("./halt-child.ts", import.meta.url));
  const child: ChildProcessWithoutNullStreams = spawn(
    process.execPath,
    ["--import", "tsx", "--conditions=@gov/source", script, url, agentId, String(rounds)],
    { cwd: fileURLToPath(new URL("../..", import.meta.url)) },
  );
  const lines: ChildLine[] = [];
  const waiting: ((line: ChildLine) => void)[] = [];
  let buffered = "";
  let stderr = "";
  let exit: { code: number | null } | null = null;
  const exitWaiters: (() => void)[] = [];
  child.stdout.on("data", (chunk: Buffer) => {
    buffered += chunk.toString();
    let newline = buffered.indexOf("\n");
    while (newline >= 0) {
      const line = JSON.parse(buffered.slice(0, newline)) as ChildLine;
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
    next: () => {
      const line = lines.shift();
      if (line) return Promise.resolve(line);
      if (exit) return Promise.reject(failure());
      return new Promise<ChildLine>((resolve, reject) => {
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
