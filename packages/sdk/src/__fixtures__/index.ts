/**
 * What the SDK's test files share: the audit secret of their real-Postgres starts, and an SDK
 * on a fresh database of an engine, closed when the test ends.
 */
import { silentLogger } from "@gov/core";
import { createTestDatabase, type TestEngine } from "@gov/core/testing";
import { onTestFinished } from "vitest";
import { GovernanceSDK, type GovernanceSDKOptions } from "../sdk";

export const SECRET = "s3cr3t-0123456789-abcdefghijklmnopqrstuvwxyz";

/** An SDK on a fresh database of `engine`, with `extra` options; closed when the test ends. */
export async function startOn(
  engine: TestEngine,
  extra: Partial<GovernanceSDKOptions> = {},
): Promise<GovernanceSDK> {
  const { databaseUrl, dispose } = await createTestDatabase(engine);
  onTestFinished(dispose);
  const sdk = await GovernanceSDK.start({
    databaseUrl,
    auditSecret: SECRET,
    logger: silentLogger,
    env: {},
    ...extra,
  });
  onTestFinished(() => sdk.close());
  return sdk;
}
