import {
  createStore,
  type Keyring,
  readCoreConfig,
  resolveKeyring,
  resolveTarget,
  type Store,
  silentLogger,
} from "@gov/core";

export const SECRET = "consumer-secret-0123456789-abcdefghijklmnop";

/**
 * What an application does at its edge, by hand: read the configuration once, resolve the
 * keyring (which refuses a real Postgres without a secret), and open the store.
 */
export async function openAtTheEdge(
  databaseUrl: string,
): Promise<{ store: Store; keyring: Keyring }> {
  const config = readCoreConfig({
    options: { databaseUrl },
    env: { GOVERNANCE_AUDIT_SECRET: SECRET },
  });
  const keyring = await resolveKeyring({
    target: resolveTarget(config),
    auditSecret: config.auditSecret,
    logger: silentLogger,
  });
  const store = await createStore({
    databaseUrl: config.databaseUrl,
    pool: config.pool,
    logger: silentLogger,
  });
  return { store, keyring };
}
