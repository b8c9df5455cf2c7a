/**
 * Run by multiprocess.test.ts and the benchmark as another OS process: a module with an
 * hour-long cache TTL (so only NOTIFY can tell it in time) that, for each round, checks the
 * agent until `assertNotHalted` throws, prints the error's fields, then checks until
 * `isHalted` is false again and prints that.
 */
import {
  AgentHaltedError,
  ChainKey,
  createStore,
  Keyring,
  silentLogger,
  systemClock,
} from "@gov/core";
import { PresenceModule } from "../module";

const [url, agentId, rounds] = process.argv.slice(2);
const secret = process.env.GOVERNANCE_AUDIT_SECRET;
if (!url || !agentId || !rounds || !secret)
  throw new Error("usage: GOVERNANCE_AUDIT_SECRET=… halt-child.ts <url> <agentId> <rounds>");
const store = await createStore({ databaseUrl: url, logger: silentLogger, pool: { max: 2 } });
const presence = new PresenceModule(
  { store, keyring: new Keyring(new ChainKey(secret)), clock: systemClock, logger: silentLogger },
  { haltCacheTtlMs: 3_600_000 },
);
const print = (line: unknown) => process.stdout.write(`${JSON.stringify(line)}\n`);
const tick = () => new Promise<void>((resolve) => setImmediate(resolve));
try {
  await presence.start();
  print({ event: "ready" });
  for (let round = 0; round < Number(rounds); round++) {
    for (;;) {
      try {
        await presence.assertNotHalted(agentId, { path: "child.check" });
      } catch (error) {
        if (!AgentHaltedError.isInstance(error)) throw error;
        print({
          event: "halted",
          round,
          haltedBy: error.haltedBy,
          reason: error.reason,
          haltedAt: error.haltedAt?.toISOString(),
          path: error.path,
        });
        break;
      }
      await tick();
    }
    while (presence.isHalted(agentId)) await tick();
    print({ event: "resumed", round });
  }
} finally {
  await presence.close();
  await store.close();
}
