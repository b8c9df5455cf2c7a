import {
  AgentHaltedError,
  ChainKey,
  Keyring,
  type Logger,
  ManualClock,
  type Store,
} from "@gov/core";
import {
  createTestStore,
  eventually,
  flakyStore,
  recordingLogger,
  recordingAuditSink as recordingSink,
  type TestEngine,
  type TestStore,
  thrown,
} from "@gov/core/testing";
import type { PresenceOptions } from "../models";
import { PresenceModule, presenceMigrations } from "../module";

export { eventually, flakyStore, recordingLogger, recordingSink, thrown };

/** The chain key of the tests (a test value, never a real secret). */
export const TEST_SECRET = "presence-test-secret-0123456789-abcdefghijklmnop";

/** A keyring holding only {@link TEST_SECRET}'s key, as every process of a deployment shares it. */
export function testKeyring(): Keyring {
  return new Keyring(new ChainKey(TEST_SECRET));
}

export interface PresenceHarness {
  store: TestStore;
  presence: PresenceModule;
  clock: ManualClock;
  audit: ReturnType<typeof recordingSink>;
  logger: ReturnType<typeof recordingLogger>;
  /** Another module (a "restarted process") on the same store or another. */
  another(options?: {
    store?: Store;
    presence?: PresenceOptions;
    logger?: Logger;
    keyring?: Keyring;
  }): PresenceModule;
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
  const keyring = testKeyring();
  const make = (
    extra: { store?: Store; presence?: PresenceOptions; logger?: Logger; keyring?: Keyring } = {},
  ): PresenceModule => {
    const module = new PresenceModule(
      {
        store: extra.store ?? store,
        keyring: extra.keyring ?? keyring,
        clock,
        logger: extra.logger ?? logger,
        audit,
      },
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

/** The `AgentHaltedError` `run` throws (or fails the test when it throws anything else, or nothing). */
export async function haltedError(run: () => Promise<unknown>): Promise<AgentHaltedError> {
  const error = await thrown(run);
  if (!AgentHaltedError.isInstance(error)) throw error;
  return error;
}
