import { silentLogger } from "@gov/core";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { testKeyring } from "./__fixtures__";
import { HaltCache, RELOAD_BACKOFF_MAX_MS, reloadBackoffMs } from "./halt-cache";
import { signHaltState } from "./halt-state";

const keyring = testKeyring();
const HALTED_AT = new Date("2026-01-01T00:00:00.000Z");
const signed = signHaltState(keyring.current, "a", 1, {
  halted: true,
  by: "alice",
  at: HALTED_AT,
  reason: "refund loop",
});

const HOUR = 3_600_000;
const settle = () => new Promise((resolve) => setImmediate(resolve));

describe("reloadBackoffMs", () => {
  it("starts at 250 ms and doubles, up to the TTL or 30 s", () => {
    expect([0, 1, 2, 3, 4].map((failures) => reloadBackoffMs(failures, HOUR))).toEqual([
      0, 250, 500, 1_000, 2_000,
    ]);
    expect(reloadBackoffMs(8, HOUR)).toBe(RELOAD_BACKOFF_MAX_MS);
    expect(reloadBackoffMs(1_000, HOUR)).toBe(RELOAD_BACKOFF_MAX_MS);
    expect(reloadBackoffMs(10, 5_000)).toBe(5_000);
    expect(reloadBackoffMs(10, 100)).toBe(250);
  });
});

describe("the halt cache while reloads keep failing", () => {
  let now = 1_000;
  let down = false;
  let queries = 0;
  const store = {
    query: async () => {
      queries += 1;
      if (down) throw new Error("Could not reach the database (ECONNREFUSED).");
      return [
        {
          agent_id: "a",
          halted_by: "alice",
          halt_reason: "refund loop",
          halted_at: HALTED_AT.toISOString(),
          halt_version: "1",
          resumed_at: null,
          resumed_by: null,
          resume_reason: null,
          halt_mac: signed.mac,
          halt_key_id: signed.keyId,
        },
      ];
    },
    listen: async () => ({ unsubscribe: async () => undefined }),
  };

  beforeEach(() => {
    now = 1_000;
    down = false;
    queries = 0;
    vi.spyOn(performance, "now").mockImplementation(() => now);
  });

  afterEach(() => {
    vi.restoreAllMocks();
  });

  /** Many halt checks at the current instant; the number of reloads they started. */
  async function checks(cache: HaltCache): Promise<number> {
    const before = queries;
    for (let call = 0; call < 25; call++) {
      expect(cache.get("a")?.haltedBy).toBe("alice");
      expect(cache.get("b")).toBeNull();
      await settle();
    }
    return queries - before;
  }

  it("retries 250 ms after a failure, doubling to 30 s, keeping the last known state", async () => {
    const cache = new HaltCache({
      store: store as never,
      logger: silentLogger,
      keyring,
      ttlMs: HOUR,
    });
    await cache.reload();
    expect(queries).toBe(1);
    down = true;
    now += HOUR + 1; // stale: the next check reloads
    expect(await checks(cache)).toBe(1);
    let wait = 250;
    for (let failures = 1; failures <= 10; failures++) {
      now += wait - 1;
      expect(await checks(cache)).toBe(0);
      now += 1;
      expect(await checks(cache)).toBe(1);
      wait = Math.min(wait * 2, 30_000);
    }
    expect(wait).toBe(30_000);
    expect(cache.loaded).toBe(true);
    expect(cache.halted().map((halt) => halt.agentId)).toEqual(["a"]);
  });

  it("a successful reload resets the backoff", async () => {
    const cache = new HaltCache({
      store: store as never,
      logger: silentLogger,
      keyring,
      ttlMs: HOUR,
    });
    await cache.reload();
    down = true;
    now += HOUR + 1; // stale
    for (let failures = 0; failures < 6; failures++) await cache.reload().catch(() => undefined);
    expect(queries).toBe(7);
    now += 7_999;
    expect(await checks(cache)).toBe(0); // backing off: 8 s after six failures
    down = false;
    await cache.reload(); // an explicit reload never waits
    down = true;
    now += HOUR + 1;
    expect(await checks(cache)).toBe(1); // stale again: one attempt at once
    now += 250;
    expect(await checks(cache)).toBe(1); // and the next only 250 ms later
  });

  it("an explicit reload is not held back by the backoff", async () => {
    const cache = new HaltCache({
      store: store as never,
      logger: silentLogger,
      keyring,
      ttlMs: HOUR,
    });
    down = true;
    for (let attempt = 1; attempt <= 3; attempt++) {
      await expect(cache.reload()).rejects.toThrow(/ECONNREFUSED/);
      expect(queries).toBe(attempt);
    }
    down = false;
    await cache.reload();
    expect(cache.get("a")?.haltedBy).toBe("alice");
  });
});
