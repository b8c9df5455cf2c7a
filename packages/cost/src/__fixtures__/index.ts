import { ChainKey, Keyring, ManualClock, sql } from "@gov/core";
import {
  createTestStore,
  flakyStore,
  recordingAuditSink,
  recordingHaltGuard,
  recordingLogger,
  type TestEngine,
  type TestStore,
  unreachableStore,
} from "@gov/core/testing";
import { costMigrations } from "../definition";
import { CostModule } from "../module";
import type { CostOptions } from "../options";

export { recordingAuditSink, recordingLogger, unreachableStore };

/** A HaltGuard that refuses the agents in `halted`, and remembers what it was asked. */
export const fakeHalt = recordingHaltGuard;

/** The chain keyring of the tests (every process of a deployment holds the same keys). */
export const testKeyring = new Keyring(
  new ChainKey("cost-test-secret-0123456789-abcdefghijklmnop"),
);

/** The start of every test's clock: noon UTC, so that a day rollover is 12 hours away. */
export const NOON = new Date("2026-11-23T12:00:00.000Z");

export interface CostHarness {
  cost: CostModule;
  store: TestStore;
  audit: ReturnType<typeof recordingAuditSink>;
  logger: ReturnType<typeof recordingLogger>;
  halt: ReturnType<typeof fakeHalt>;
  clock: ManualClock;
  /** Make the store unreachable (every query fails as a lost connection would) or back. */
  setDown(down: boolean): void;
  /** Move the session's start back on the database: its clock, as seen by the session, moves on. */
  ageSession(agentId: string, sessionId: string, seconds: number): Promise<void>;
  /** The stored counters of a session. */
  sessionRow(agentId: string, sessionId: string): Promise<Record<string, string> | undefined>;
  close(): Promise<void>;
}

/** A cost module on a fresh database of `engine`, with recording ports and a manual clock. */
export async function costHarness(
  engine: TestEngine,
  options: CostOptions = {},
): Promise<CostHarness> {
  const store = await createTestStore(engine, { migrations: [costMigrations] });
  const flaky = flakyStore(store);
  const audit = recordingAuditSink();
  const logger = recordingLogger();
  const halt = fakeHalt();
  const clock = new ManualClock(NOON);
  const cost = new CostModule(
    { store: flaky.store, audit, logger, halt, clock, keyring: testKeyring },
    { sweepIntervalMs: null, spoolDirectory: null, ...options },
  );
  return {
    cost,
    store,
    audit,
    logger,
    halt,
    clock,
    setDown: flaky.setDown,
    ageSession: async (agentId, sessionId, seconds) => {
      await store.query(sql`
        update gov_cost.sessions set started_at = started_at - make_interval(secs => ${seconds})
        where agent_id = ${agentId} and session_id = ${sessionId}`);
    },
    sessionRow: async (agentId, sessionId) => {
      const rows = await store.query<Record<string, string>>(sql`
        select usd::text as usd, tokens::text as tokens, reserved_usd::text as reserved_usd,
               reserved_tokens::text as reserved_tokens
        from gov_cost.sessions where agent_id = ${agentId} and session_id = ${sessionId}`);
      return rows[0];
    },
    close: async () => {
      await cost.close();
      await store.close();
    },
  };
}

/** The error a promise rejects with (fails the test when it resolves). */
export async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error("expected a rejection");
}
