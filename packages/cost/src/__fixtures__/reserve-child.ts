/**
 * A child process for the multi-process budget test: it waits for "go" on stdin, then makes
 * `count` concurrent checks of $0.01 each against one session's cap, settles each passed one
 * with its actual spend, and prints { passed, exceeded, failed } as one JSON line.
 */
import { createStore, noopAuditSink, noopHaltGuard, silentLogger } from "@gov/core";
import { BudgetExceeded } from "../errors";
import { CostModule } from "../module";

const [url, agentId, sessionId, count] = process.argv.slice(2) as [string, string, string, string];
const store = await createStore({ databaseUrl: url, logger: silentLogger, pool: { max: 10 } });
const cost = new CostModule(
  { store, logger: silentLogger, audit: noopAuditSink, halt: noopHaltGuard },
  { sweepIntervalMs: null },
);
cost.register({ agentId, perSessionUsd: 1 });
process.stdout.write(`${JSON.stringify({ event: "ready" })}\n`);
await new Promise<void>((resolve) => process.stdin.once("data", () => resolve()));

let passed = 0;
let exceeded = 0;
let failed = 0;
await Promise.all(
  Array.from({ length: Number(count) }, async () => {
    try {
      const reservation = await cost.checkOrRaise(agentId, sessionId, { projectedUsd: "0.01" });
      passed++;
      // The call "runs", then reports exactly what it reserved.
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 5));
      await cost.track(agentId, sessionId, {
        tokens: 1,
        usd: "0.01",
        reservationId: reservation.reservationId,
      });
    } catch (error) {
      if (BudgetExceeded.isInstance(error)) exceeded++;
      else failed++;
    }
  }),
);
await cost.close();
await store.close();
process.stdout.write(`${JSON.stringify({ event: "done", passed, exceeded, failed })}\n`);
