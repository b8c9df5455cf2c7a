import { generateKeyPairSync } from "node:crypto";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inspect } from "node:util";
import {
  type CheckpointWitness,
  FileCheckpointWitness,
  verifyCheckpoints,
  type WitnessedCheckpoint,
} from "@gov/audit";
import { ConfigError, EMBEDDED_SIGNING_KEY_FILE, silentLogger } from "@gov/core";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { GovernanceSDK } from "./sdk";

describe("the SDK's audit evidence options", () => {
  let home: string;

  beforeEach(async () => {
    home = await mkdtemp(join(tmpdir(), "gov-sdk-evidence-"));
  });

  afterEach(async () => {
    await rm(home, { recursive: true, force: true });
  });

  it("signs checkpoints with a key kept beside the embedded database, and writes them to auditWitness", async () => {
    const database = join(home, "data");
    const start = () =>
      GovernanceSDK.start({
        databaseUrl: database,
        auditWitness: "evidence/checkpoints.jsonl",
        cwd: home,
        logger: silentLogger,
        env: {},
      });
    const sdk = await start();
    let publicKey: string;
    try {
      await sdk.audit.log({ agentId: "agent", kind: "step", sessionId: "s-1" });
      expect(await sdk.audit.checkpoint()).toBe(1);
      publicKey = sdk.audit.signingPublicKey?.pem as string;
      expect(publicKey).toContain("BEGIN PUBLIC KEY");
      const keyFile = join(database, EMBEDDED_SIGNING_KEY_FILE);
      expect((await stat(keyFile)).mode & 0o777).toBe(0o600);
      // The private key is in its file only: not in the config, the SDK's JSON or inspect.
      const privateKey = await readFile(keyFile, "utf8");
      const body = privateKey.split("\n")[1] as string;
      for (const shown of [
        JSON.stringify(sdk),
        inspect(sdk, { depth: 6 }),
        JSON.stringify(sdk.config),
      ])
        expect(shown).not.toContain(body);
      const witnessPath = join(home, "evidence", "checkpoints.jsonl");
      const [line] = (await readFile(witnessPath, "utf8")).trim().split("\n");
      expect(JSON.parse(line as string) as WitnessedCheckpoint).toMatchObject({
        chain: "s-1",
        seq: 1,
        signingKeyId: sdk.audit.signingPublicKey?.id,
      });
      expect(await sdk.audit.verifyChain({ witness: witnessPath })).toBe(true);
    } finally {
      await sdk.close();
    }
    // The next start uses the same key: what it signed before still verifies.
    const again = await start();
    try {
      expect(again.audit.signingPublicKey?.pem).toBe(publicKey);
      const report = await verifyCheckpoints(
        new FileCheckpointWitness(join(home, "evidence", "checkpoints.jsonl")).read(),
        { publicKeys: [publicKey] },
      );
      expect(report).toMatchObject({ verified: 1, failed: 0 });
    } finally {
      await again.close();
    }
  });

  it("reads GOVERNANCE_AUDIT_SIGNING_KEY and GOVERNANCE_AUDIT_WITNESS_PATH, and takes a witness object", async () => {
    const { privateKey, publicKey } = generateKeyPairSync("ed25519");
    const pem = privateKey.export({ type: "pkcs8", format: "pem" }).toString();
    const witnessPath = join(home, "witness.jsonl");
    const sdk = await GovernanceSDK.start({
      databaseUrl: "memory://",
      logger: silentLogger,
      env: { GOVERNANCE_AUDIT_SIGNING_KEY: pem, GOVERNANCE_AUDIT_WITNESS_PATH: witnessPath },
    });
    try {
      expect(sdk.audit.signingPublicKey?.pem).toBe(
        publicKey.export({ type: "spki", format: "pem" }).toString(),
      );
      expect(sdk.audit.witness).toBeInstanceOf(FileCheckpointWitness);
      expect(JSON.stringify(sdk.config)).not.toContain(pem.split("\n")[1]);
      await sdk.audit.log({ agentId: "agent", kind: "step" });
      await sdk.audit.checkpoint();
      expect((await readFile(witnessPath, "utf8")).trim().split("\n")).toHaveLength(1);
    } finally {
      await sdk.close();
    }

    const kept: WitnessedCheckpoint[] = [];
    const witness: CheckpointWitness = {
      async append(checkpoints) {
        kept.push(...checkpoints);
      },
      async *read() {
        yield* kept;
      },
    };
    await using custom = await GovernanceSDK.start({
      databaseUrl: "memory://",
      auditWitness: witness,
      logger: silentLogger,
      env: {},
    });
    await custom.audit.log({ agentId: "agent", kind: "step" });
    await custom.audit.checkpoint();
    expect(kept).toHaveLength(1);
    expect(await custom.audit.verifyChain({ witness })).toBe(true);
  });

  it("refuses a bad witness or signing key before opening anything, without repeating the key", async () => {
    const witness = await GovernanceSDK.start({
      databaseUrl: "memory://",
      auditWitness: 42 as never,
      logger: silentLogger,
      env: {},
    }).catch((error: unknown) => error);
    expect(witness).toBeInstanceOf(ConfigError);
    expect((witness as ConfigError).issues[0]).toMatchObject({ name: "auditWitness" });
    const secret =
      "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIThisIsNotAKey0123456789abcdefghij\n-----END PRIVATE KEY-----";
    const key = await GovernanceSDK.start({
      databaseUrl: "memory://",
      logger: silentLogger,
      env: { GOVERNANCE_AUDIT_SIGNING_KEY: secret },
    }).catch((error: unknown) => error);
    expect(key).toBeInstanceOf(ConfigError);
    expect((key as ConfigError).issues[0]).toMatchObject({
      source: "env",
      name: "GOVERNANCE_AUDIT_SIGNING_KEY",
    });
    expect((key as ConfigError).message).not.toContain("ThisIsNotAKey");
  });
});
