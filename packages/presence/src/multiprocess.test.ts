import { silentLogger, systemClock } from "@gov/core";
import { createTestStore, testEngines } from "@gov/core/testing";
import { describe, expect, it } from "vitest";
import { recordingSink, TEST_SECRET, testKeyring } from "./__fixtures__";
import { spawnHaltChild } from "./__fixtures__/child-process";
import { PresenceModule, presenceMigrations } from "./module";

const postgres = testEngines().find((engine) => engine.name === "postgres");

describe("the halt across OS processes (real Postgres)", () => {
  it.skipIf(!postgres?.available)(
    "a halt here is enforced at once in another process (its TTL is an hour), and so is the resume",
    async () => {
      const store = await createTestStore(postgres as never, { migrations: [presenceMigrations] });
      const audit = recordingSink();
      const presence = new PresenceModule({
        store,
        keyring: testKeyring(),
        clock: systemClock,
        logger: silentLogger,
        audit,
      });
      const child = spawnHaltChild(
        store.connectionString as string,
        "billing-agent",
        2,
        TEST_SECRET,
      );
      try {
        expect(await child.next()).toEqual({ event: "ready" });
        for (let round = 0; round < 2; round++) {
          const { halt } = await presence.halt("billing-agent", {
            haltedBy: `operator-${round}`,
            reason: `round ${round}`,
          });
          expect(await child.next()).toEqual({
            event: "halted",
            round,
            haltedBy: `operator-${round}`,
            reason: `round ${round}`,
            haltedAt: halt.haltedAt.toISOString(),
            path: "child.check",
          });
          await presence.resume("billing-agent", { resumedBy: "alice", reason: "go on" });
          expect(await child.next()).toEqual({ event: "resumed", round });
        }
        await child.exited();
        expect(audit.events.map((event) => event.kind)).toEqual([
          "agent.halted",
          "agent.resumed",
          "agent.halted",
          "agent.resumed",
        ]);
      } finally {
        child.kill();
        await presence.close();
        await store.close();
      }
    },
    60_000,
  );
});
