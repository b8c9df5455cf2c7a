import {
  type AuditEventInput,
  type AuditSink,
  type Logger,
  ManualClock,
  type Store,
  StoreError,
} from "@gov/core";
import { createTestStore, type TestEngine, type TestStore } from "@gov/core/testing";
import type { PresenceOptions } from "../models";
import { PresenceModule, presenceMigrations } from "../module";

/** An audit sink that keeps every event it is given, for assertions on what was recorded. */
export function recordingSink(): AuditSink & { events: AuditEventInput[] } {
  const events: AuditEventInput[] = [];
  return {
    events,
    async log(event) {
      events.push(event);
      return { eventId: `event-${events.length}`, isPlaceholder: false };
    },
  };
}

/** A logger that keeps what it was told, for assertions on warnings. */
export function recordingLogger(): Logger & { lines: { level: string; message: string }[] } {
  const lines: { level: string; message: string }[] = [];
  const at = (level: string) => (message: string) => {
    lines.push({ level, message });
  };
  return { lines, debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") };
}

/**
 * A store that can be made unreachable: while `down`, every query and transaction fails
 * as a lost connection would, and nothing reaches the database.
 */
export function flakyStore(store: Store): { store: Store; setDown(down: boolean): void } {
  let down = false;
  const refuse = () =>
    Promise.reject(
      new StoreError({
        kind: "connection",
        message: "Could not reach the database (ECONNREFUSED).",
      }),
    );
  const wrapped: Store = Object.create(store, {
    query: {
      value: (query: Parameters<Store["query"]>[0]) => (down ? refuse() : store.query(query)),
    },
    transaction: {
      value: (
        work: Parameters<Store["transaction"]>[0],
        options: Parameters<Store["transaction"]>[1],
      ) => (down ? refuse() : store.transaction(work, options)),
    },
  });
  return {
    store: wrapped,
    setDown: (value) => {
      down = value;
    },
  };
}

export interface PresenceHarness {
  store: TestStore;
  presence: PresenceModule;
  clock: ManualClock;
  audit: ReturnType<typeof recordingSink>;
  logger: ReturnType<typeof recordingLogger>;
  /** Another module (a "restarted process") on the same store or another. */
  another(options?: { store?: Store; presence?: PresenceOptions; logger?: Logger }): PresenceModule;
  close(): Promise<void>;
}

/** A fresh database with the presence schema, and a started module on it. */
export async function presenceHarness(
  engine: TestEngine,
  options: PresenceOptions = {},
): Promise<PresenceHarness> {
  const store = await createTestStore(engine, { migrations: [presenceMigrations] });
  const clock = new ManualClock(new Date("2026-01-01T00:00:00.000Z"));
  const audit = recordingSink();
  const logger = recordingLogger();
  const modules: PresenceModule[] = [];
  const make = (
    extra: { store?: Store; presence?: PresenceOptions; logger?: Logger } = {},
  ): PresenceModule => {
    const module = new PresenceModule(
      { store: extra.store ?? store, clock, logger: extra.logger ?? logger, audit },
      { ...options, ...extra.presence },
    );
    modules.push(module);
    return module;
  };
  const presence = make();
  await presence.start();
  return {
    store,
    presence,
    clock,
    audit,
    logger,
    another: make,
    close: async () => {
      for (const module of modules) await module.close();
      await store.close();
    },
  };
}

/** Poll until `condition` holds (or fail after `timeoutMs`). */
export async function eventually(
  condition: () => boolean | Promise<boolean>,
  timeoutMs = 10_000,
): Promise<void> {
  const started = Date.now();
  while (!(await condition())) {
    if (Date.now() - started > timeoutMs) throw new Error("condition not met in time");
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** The error `run` throws (or fails the test when it does not throw). */
export async function thrown(run: () => unknown): Promise<unknown> {
  try {
    await run();
  } catch (error) {
    return error;
  }
  throw new Error("expected an error, but none was thrown");
}
