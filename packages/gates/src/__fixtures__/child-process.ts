import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

/** A line the gates child printed. */
export interface ChildLine {
  event?: "ready" | "waiting";
  id?: string;
  ok?: boolean;
  name?: string;
  code?: string;
  reason?: string | null;
}

/** The gates child (gates-child.ts) in another OS process, spoken to line by line. */
export interface GatesChild {
  /** Send a command (see gates-child.ts). */
  send(command: Record<string, unknown>): void;
  /** The next line it prints (rejects if it exits first). */
  next(): Promise<ChildLine>;
  /** Ask it to finish its commands and exit, and wait; rejects with its stderr when it fails. */
  exit(): Promise<void>;
  kill(): void;
}

/** Start the gates child on the database at `url`, signing with `secret`. */
export function spawnGatesChild(url: string, secret: string): GatesChild {
  const script = fileURLToPath(new URL("./gates-child.ts", import.meta.url));
  const child: ChildProcessWithoutNullStreams = spawn(
    process.execPath,
    ["--import", "tsx", "--conditions=@gov/source", script, url],
    {
      cwd: fileURLToPath(new URL("../..", import.meta.url)),
      env: { ...process.env, GATES_CHILD_SECRET: secret },
    },
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
  const failure = () => new Error(`the gates child exited (code ${exit?.code}): ${stderr}`);
  return {
    send: (command) => {
      child.stdin.write(`${JSON.stringify(command)}\n`);
    },
    next: () => {
      const line = lines.shift();
      if (line) return Promise.resolve(line);
      if (exit) return Promise.reject(failure());
      return new Promise<ChildLine>((resolve, reject) => {
        waiting.push(resolve);
        exitWaiters.push(() => reject(failure()));
      });
    },
    exit: () => {
      if (!exit) child.stdin.write(`${JSON.stringify({ id: "exit", op: "exit" })}\n`);
      return new Promise<void>((resolve, reject) => {
        const settle = () => (exit?.code === 0 ? resolve() : reject(failure()));
        if (exit) settle();
        else exitWaiters.push(settle);
      });
    },
    kill: () => {
      if (!exit) child.kill();
    },
  };
}
