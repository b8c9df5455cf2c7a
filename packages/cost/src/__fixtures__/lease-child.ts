/**
 * A child process for the lease crash test: it opens a budget lease (4 calls of 1,100 tokens)
 * for one session, settles the first call, prints { event: "leased", pid } and waits to be
 * killed, holding what is left of the lease.
 */
import { createStore, noopAuditSink, noopHaltGuard, silentLogger } from "@gov/core";
import { CostModule } from "../module";

const [url, agentId, sessionId] = process.argv.slice(2) as [string, string, string];
const store = await createStore({ databaseUrl: url, logger: silentLogger, pool: { max: 2 } });
const cost = new CostModule(
  { store, logger: silentLogger, audit: noopAuditSink, halt: noopHaltGuard },
  { sweepIntervalMs: null, spoolDirectory: null, reservationTtlMs: 1_000, lease: { calls: 4 } },
);
cost.register({ agentId, perSessionTokens: 100_000 });
const call = await cost.checkOrRaise(agentId, sessionId, {
  model: "gpt-4o",
  inputTokens: 100,
  maxTokens: 1_000,
});
await cost.checkOrRaise(agentId, sessionId, {
  model: "gpt-4o",
  inputTokens: 100,
  maxTokens: 1_000,
});
await cost.trackUsage(agentId, sessionId, {
  model: "gpt-4o",
  inputTokens: 100,
  outputTokens: 50,
  reservationId: call.reservationId,
});
process.stdout.write(`${JSON.stringify({ event: "leased", pid: process.pid })}\n`);
setInterval(() => undefined, 60_000); // held until killed
