/**
 * Run by rotation-multiprocess.test.ts as another OS process that keeps the key it was
 * started with (AUDIT_CHILD_SECRET): it appends to one session, 20 events at a time, until
 * told to stop, and answers `{"op":"report"}` with what became of its events.
 *
 * Prints `{"event":"ready"}`, then `{"stored","spooled","placeholders"}` per report, and the
 * same once more after `{"op":"stop"}`, before it exits.
 */
import { createInterface } from "node:readline";
import { ChainKey, createStore, Keyring, silentLogger, systemClock } from "@gov/core";
import { AuditModule } from "../module";

const [url, sessionId, spoolDirectory, worker] = process.argv.slice(2);
const secret = process.env.AUDIT_CHILD_SECRET;
if (!url || !sessionId || !spoolDirectory || !worker || !secret)
  throw new Error("usage: stale-writer-child.ts <url> <session> <spool directory> <worker>");
const store = await createStore({ databaseUrl: url, logger: silentLogger, pool: { max: 3 } });
const audit = new AuditModule(
  { store, keyring: new Keyring(new ChainKey(secret)), clock: systemClock, logger: silentLogger },
  { spoolDirectory, retryIntervalMs: 50 },
);
const counts = { stored: 0, spooled: 0, placeholders: 0 };
const print = (line: unknown) => process.stdout.write(`${JSON.stringify(line)}\n`);
let stopped = false;

const writing = (async () => {
  for (let batch = 0; !stopped; batch++) {
    const records = await Promise.all(
      Array.from({ length: 20 }, (_, index) =>
        audit.log({
          agentId: `worker-${worker}`,
          kind: "append",
          sessionId,
          metadata: { batch, index },
        }),
      ),
    );
    for (const record of records) {
      if (record.status === "stored") counts.stored++;
      else if (record.status === "spooled") counts.spooled++;
      else counts.placeholders++;
    }
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
})();

const lines = createInterface({ input: process.stdin });
lines.on("line", (line) => {
  const command = JSON.parse(line) as { op: string };
  if (command.op === "report") print(counts);
  if (command.op === "stop") {
    stopped = true;
    lines.close();
    process.stdin.destroy();
    void writing
      .then(() => audit.close())
      .then(() => store.close())
      .then(() => print(counts));
  }
});
print({ event: "ready" });
