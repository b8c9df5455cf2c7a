import { createRequire } from "node:module";
import { runMigrations, silentLogger, systemClock } from "@gov/core";
import { createTestDatabase, recordingAuditSink, testEngines } from "@gov/core/testing";
import { ApprovalTokenError, GatesModule, gatesMigrations } from "@gov/gates";
import { describe, expect, it, onTestFinished } from "vitest";
import { openAtTheEdge } from "./edge";

describe("installing @gov/gates with @gov/core", () => {
  it("resolves to its built package", () => {
    const require = createRequire(import.meta.url);
    expect(require.resolve("@gov/gates")).toMatch(/gates[\\/]dist[\\/]index\.js$/);
  });
});

describe.each(testEngines())("composing the gates module by hand on $name", (engine) => {
  it.skipIf(!engine.available)(
    "requests, grants once, wakes the waiter, and writes the decision through the host's sink",
    async () => {
      const { databaseUrl, dispose } = await createTestDatabase(engine);
      onTestFinished(dispose);
      const { store, keyring } = await openAtTheEdge(databaseUrl);
      onTestFinished(() => store.close());
      await runMigrations(store, [gatesMigrations]);
      const audit = recordingAuditSink();
      const gates = new GatesModule({
        store,
        keyring,
        clock: systemClock,
        logger: silentLogger,
        audit,
      });
      await gates.start();
      onTestFinished(() => gates.close());
      const request = await gates.request("refund.issue", "billing-agent", {
        payload: { invoice: "INV-42", amount: 120 },
      });
      const waiting = gates.waitFor(request.requestId, { timeoutMs: 10_000 });
      await gates.grant(request.token, { reviewerId: "alice@example.com" });
      await expect(waiting).resolves.toBe(true);
      const replay = await gates
        .grant(request.token, { reviewerId: "alice@example.com" })
        .catch((error: unknown) => error);
      expect(ApprovalTokenError.isInstance(replay)).toBe(true);
      expect(audit.events.map((event) => event.kind)).toEqual(
        expect.arrayContaining(["approval.requested", "approval.granted"]),
      );
    },
  );
});
