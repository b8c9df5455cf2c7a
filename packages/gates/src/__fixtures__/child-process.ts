import { spawnJsonLinesChild } from "@gov/core/testing";

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
  const child = spawnJsonLinesChild<ChildLine>(
    new URL("./gates-child.ts", import.meta.url),
    [url],
    {
      cwd: new URL("../..", import.meta.url),
      env: { ...process.env, GATES_CHILD_SECRET: secret },
    },
  );
  let exiting = false;
  return {
    send: (command) => child.send(command),
    next: () => child.next(),
    exit: () => {
      if (!exiting) {
        exiting = true;
        child.send({ id: "exit", op: "exit" });
      }
      return child.exited();
    },
    kill: () => child.kill(),
  };
}
