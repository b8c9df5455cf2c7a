import { type JsonLinesChild, spawnJsonLinesChild } from "@gov/core/testing";

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
export type HaltChild = JsonLinesChild<ChildLine>;

/**
 * Start the halt child. It verifies halts with the chain key `secret` (every process of a
 * deployment holds the same keys), handed over in its environment as a deployment does.
 */
export function spawnHaltChild(
  url: string,
  agentId: string,
  rounds: number,
  secret: string,
): HaltChild {
  return spawnJsonLinesChild<ChildLine>(
    new URL("./halt-child.ts", import.meta.url),
    [url, agentId, String(rounds)],
    {
      cwd: new URL("../..", import.meta.url),
      env: { ...process.env, GOVERNANCE_AUDIT_SECRET: secret },
    },
  );
}
