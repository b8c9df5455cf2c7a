import { ChainKey, InvalidArgumentError } from "@gov/core";
import { thrown } from "@gov/core/testing";
import { describe, expect, it } from "vitest";
import { SECRET_A } from "./__fixtures__";
import { ChainIntegrityError, StoreUnavailableError } from "./errors";
import { InMemoryAuditStore } from "./memory-store";

describe("InMemoryAuditStore", () => {
  it("chains and verifies events like the database does", async () => {
    const store = new InMemoryAuditStore({ maxEvents: 10, key: new ChainKey(SECRET_A) });
    const first = await store.log({ agentId: "a", kind: "k", sessionId: "s" });
    const second = await store.log({ agentId: "a", kind: "k", sessionId: "s" });
    expect([first.seq, second.seq, second.prevHash]).toEqual([1, 2, first.hmac]);
    expect(store.verifyChain()).toBe(true);
    expect(store.events({ sessionId: "s" })).toEqual([first, second]);
    expect(store.metrics()).toEqual({ size: 2, maxEvents: 10, evictions: 0, onFull: "raise" });
  });

  it("refuses an event when full, by default, rather than open a hole in the chain", async () => {
    const store = new InMemoryAuditStore({ maxEvents: 2 });
    await store.log({ agentId: "a", kind: "k" });
    await store.log({ agentId: "a", kind: "k" });
    await expect(store.log({ agentId: "a", kind: "k" })).rejects.toBeInstanceOf(
      StoreUnavailableError,
    );
    await expect(store.log({ agentId: "a", kind: "k" })).rejects.toMatchObject({
      code: "STORE_UNAVAILABLE",
    });
    expect(store.metrics().size).toBe(2);
    expect(() => store.verifyNotTruncated()).not.toThrow();
  });

  it("evicts the oldest when told to, counts it, and says so when asked", async () => {
    const store = new InMemoryAuditStore({ maxEvents: 3, onFull: "evict" });
    for (let index = 0; index < 5; index++)
      await store.log({ agentId: "a", kind: `k${index}`, sessionId: "s" });
    expect(store.metrics()).toMatchObject({ size: 3, evictions: 2 });
    expect(store.events().map((record) => record.kind)).toEqual(["k2", "k3", "k4"]);
    // What is kept still verifies, linked to the last evicted row.
    expect(store.verifyChain()).toBe(true);
    expect(() => store.verifyNotTruncated()).toThrow(/evicted 2 events/);
  });

  it("catches a changed row", async () => {
    const store = new InMemoryAuditStore({ maxEvents: 10 });
    for (let index = 0; index < 3; index++)
      await store.log({ agentId: "a", kind: "k", sessionId: "s", metadata: { index } });
    const row = store.rawRows()[1];
    if (row) row.payload = row.payload.replace('"index":1', '"index":7');
    expect(() => store.verifyChain()).toThrow(ChainIntegrityError);
    expect(thrown(() => store.verifyChain())).toMatchObject({ seq: 2 });
  });

  it("refuses bad options", () => {
    expect(() => new InMemoryAuditStore({ maxEvents: 0 })).toThrow(/maxEvents/);
    expect(() => new InMemoryAuditStore({ maxEvents: 1, onFull: "drop" as never })).toThrow(
      /onFull/,
    );
    expect(() => new InMemoryAuditStore(undefined as never)).toThrow(/maxEvents/);
  });

  // Guards against: a misspelt option silently ignored (maxEvent: the store then refused to start
  // for want of maxEvents, or onfull: the default "raise" used instead of "evict").
  it("refuses an unknown option with a did-you-mean", () => {
    const error = thrown(() => new InMemoryAuditStore({ maxEvents: 1, onfull: "evict" } as never));
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect(error).toMatchObject({ code: "INVALID_ARGUMENT", field: "options.onfull" });
    expect((error as Error).message).toContain("did you mean `onFull`?");
  });

  it("keeps stats() as the deprecated name of metrics()", async () => {
    const store = new InMemoryAuditStore({ maxEvents: 5 });
    await store.log({ agentId: "a", kind: "k" });
    expect(store.stats()).toEqual(store.metrics());
    expect(store.metrics()).toMatchObject({ size: 1, maxEvents: 5 });
  });
});
