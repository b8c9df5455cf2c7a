/**
 * Run by multiprocess.test.ts and the benchmark as another OS process: a gates module on the
 * database named by argv[2], with the key in GATES_CHILD_SECRET. It prints `{"event":"ready"}`,
 * then takes one JSON command per stdin line (`wait`, `grant`, `deny`, `exit`) and answers
 * each with one JSON line: `{ id, ok: true }` or `{ id, ok: false, name, code, reason }`.
 * Commands run concurrently; one with `at` (epoch ms) starts at that moment, so that two
 * processes can act at once.
 */
import { createInterface } from "node:readline";
import { ChainKey, createStore, Keyring, silentLogger, systemClock } from "@gov/core";
import { GatesModule } from "../module";

interface Command {
  id: string;
  op: "wait" | "grant" | "deny" | "exit";
  at?: number;
  requestId?: string;
  timeout?: number;
  token?: string;
  reviewerId?: string;
  reason?: string;
}

const [url] = process.argv.slice(2);
const secret = process.env.GATES_CHILD_SECRET;
if (!url || !secret) throw new Error("usage: GATES_CHILD_SECRET=… gates-child.ts <url>");
const store = await createStore({ databaseUrl: url, logger: silentLogger, pool: { max: 4 } });
const gates = new GatesModule({
  store,
  keyring: new Keyring(new ChainKey(secret)),
  clock: systemClock,
  logger: silentLogger,
});
await gates.start();
const print = (line: unknown) => process.stdout.write(`${JSON.stringify(line)}\n`);

async function run(command: Command): Promise<void> {
  if (command.at !== undefined) {
    const delay = command.at - Date.now();
    if (delay > 0) await new Promise((resolve) => setTimeout(resolve, delay));
  }
  try {
    if (command.op === "wait") {
      const waiting = gates.waitFor(command.requestId as string, {
        ...(command.timeout === undefined ? {} : { timeoutMs: command.timeout }),
      });
      print({ id: command.id, event: "waiting" });
      await waiting;
    } else if (command.op === "grant") {
      await gates.grant(command.token as string, { reviewerId: command.reviewerId as string });
    } else if (command.op === "deny") {
      await gates.deny(command.token as string, {
        reviewerId: command.reviewerId as string,
        reason: command.reason ?? "denied by the child",
      });
    }
    print({ id: command.id, ok: true });
  } catch (error) {
    const fields = error as { name?: string; code?: string; reason?: unknown };
    print({
      id: command.id,
      ok: false,
      name: fields.name,
      code: fields.code,
      reason: typeof fields.reason === "string" ? fields.reason : null,
    });
  }
}

const running = new Set<Promise<void>>();
try {
  // Open the pool's connections and the listener before saying ready.
  await Promise.all([store.health(), store.health()]);
  await gates
    .waitFor("00000000-0000-4000-8000-000000000000", { timeout: 0 })
    .catch(() => undefined);
  print({ event: "ready" });
  for await (const line of createInterface({ input: process.stdin })) {
    if (line.trim() === "") continue;
    const command = JSON.parse(line) as Command;
    if (command.op === "exit") break;
    const work: Promise<void> = run(command).finally(() => running.delete(work));
    running.add(work);
  }
  await Promise.all(running);
} finally {
  process.stdin.destroy();
  await gates.close();
  await store.close();
}
