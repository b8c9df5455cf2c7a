import { type JsonLinesChild, spawnJsonLinesChild } from "@gov/core/testing";
import type { Probed } from "./probe";

/** A refusal as the child reports it. */
export interface ChildRejections {
  warnings: { agentId: string; reason: string; message: string }[];
  audit: { agentId: string; metadata: { reason: string; revision: number | string } }[];
}

/** The scope child (scope-child.ts) in another OS process, asked one request at a time. */
export interface ScopeChild extends Probed {
  ready(): Promise<void>;
  reload(): Promise<void>;
  rejections(): Promise<ChildRejections>;
  close(): Promise<void>;
  kill(): void;
}

export function spawnScopeChild(url: string, secret: string): ScopeChild {
  const child: JsonLinesChild = spawnJsonLinesChild(
    new URL("./scope-child.ts", import.meta.url),
    [url],
    { cwd: new URL("../..", import.meta.url), env: { ...process.env, SCOPE_CHILD_SECRET: secret } },
  );
  // One request in flight at a time: each answer is the next line.
  let queue: Promise<unknown> = Promise.resolve();
  const ask = <T>(request: Record<string, unknown>): Promise<T> => {
    const answer = queue.then(() => {
      child.send(request);
      return child.next();
    });
    queue = answer.catch(() => undefined);
    return answer as Promise<T>;
  };
  const result = async <T>(request: Record<string, unknown>): Promise<T> =>
    (await ask<{ result: T }>(request)).result;
  return {
    async ready() {
      const line = await child.next();
      if (line.event !== "ready") throw new Error(`the child said ${JSON.stringify(line)}`);
    },
    check: (agentId, target) => result({ op: "check", agentId, target }),
    filter: (agentId, tools) => result({ op: "filter", agentId, tools }),
    models: (agentId) => result({ op: "models", agentId }),
    async reload() {
      await result({ op: "reload" });
    },
    rejections: () => ask<ChildRejections>({ op: "rejections" }),
    async close() {
      await result({ op: "close" });
      await child.exited();
    },
    kill: () => child.kill(),
  };
}
