import { generateKeyPairSync } from "node:crypto";
import { link, mkdir, mkdtemp, readFile, rm, stat, symlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inspect } from "node:util";
import {
  type CheckpointWitness,
  FileCheckpointWitness,
  verifyCheckpoints,
  type WitnessedCheckpoint,
} from "@gov/audit";
import { ConfigError, EMBEDDED_KEY_FILE, EMBEDDED_SIGNING_KEY_FILE, silentLogger } from "@gov/core";
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

  // Guards against: a private key accepted as a trusted (public) signing key, its public half
  // derived, and the private key kept in sdk.config and JSON.stringify(sdk).
  it("refuses a private key given as a trusted signing key, naming the option, never the key", async () => {
    const { privateKey, publicKey } = generateKeyPairSync("ed25519");
    const pem = privateKey.export({ type: "pkcs8", format: "pem" }).toString();
    const der = privateKey.export({ type: "pkcs8", format: "der" }).toString("base64");
    const body = pem.split("\n")[1] as string;
    const publicPem = publicKey.export({ type: "spki", format: "pem" }).toString();
    for (const [name, given] of [
      ["PEM", [pem]],
      ["PEM with escaped line breaks", [pem.trim().replaceAll("\n", "\\n")]],
      ["base64 DER", [der]],
      ["after a public key", [publicPem, pem]],
    ] as const) {
      const error = await GovernanceSDK.start({
        databaseUrl: "memory://",
        logger: silentLogger,
        env: {},
        auditTrustedSigningKeys: [...given],
      }).catch((caught: unknown) => caught);
      expect(error, name).toBeInstanceOf(ConfigError);
      const issue = (error as ConfigError).issues[0];
      expect(issue?.name, name).toBe(`auditTrustedSigningKeys.${given.length - 1}`);
      expect(issue?.problem, name).toContain("private key");
      const shown = `${(error as ConfigError).message} ${JSON.stringify((error as ConfigError).issues)}`;
      expect(shown, name).not.toContain(body);
      expect(shown, name).not.toContain(der.slice(10, 50));
    }
    // Something that is no key at all is refused at start too; a public key is taken.
    const garbage = await GovernanceSDK.start({
      databaseUrl: "memory://",
      logger: silentLogger,
      env: {},
      auditTrustedSigningKeys: ["not a key"],
    }).catch((caught: unknown) => caught);
    expect((garbage as ConfigError).issues?.[0]).toMatchObject({
      name: "auditTrustedSigningKeys.0",
    });
    const sdk = await GovernanceSDK.start({
      databaseUrl: "memory://",
      logger: silentLogger,
      env: {},
      auditTrustedSigningKeys: [publicPem],
    });
    await sdk.close();
  });

  // Guards against: the witness path planted as a link to the embedded database's HMAC key
  // file, so that the next checkpoint is appended to the key and the next start silently uses
  // another key.
  it("never appends checkpoints to the key files through a link at the witness path", async () => {
    const database = join(home, "data");
    const evidence = join(home, "evidence");
    const start = () =>
      GovernanceSDK.start({
        databaseUrl: database,
        auditWitness: join(evidence, "checkpoints.jsonl"),
        logger: silentLogger,
        env: {},
      });
    const first = await start();
    const keyId = first.keyring.current.id;
    const signingKeyId = first.audit.signingPublicKey?.id;
    await first.audit.log({ agentId: "agent", kind: "step", sessionId: "s" });
    await first.close();
    const keyFiles = [EMBEDDED_KEY_FILE, EMBEDDED_SIGNING_KEY_FILE].map((name) =>
      join(database, name),
    );
    const before = await Promise.all(keyFiles.map((path) => readFile(path, "utf8")));
    await mkdir(evidence, { recursive: true });
    for (const [index, target] of keyFiles.entries()) {
      await rm(join(evidence, "checkpoints.jsonl"), { force: true });
      await (index === 0 ? symlink : link)(target, join(evidence, "checkpoints.jsonl"));
      const second = await start();
      try {
        await second.audit.log({ agentId: "agent", kind: "step", sessionId: "s" });
        expect(await second.audit.checkpoint()).toBeGreaterThan(0);
        expect(second.audit.metrics().witnessFailures).toBe(1);
      } finally {
        await second.close();
      }
      expect(await Promise.all(keyFiles.map((path) => readFile(path, "utf8")))).toEqual(before);
      const third = await start();
      try {
        expect(third.keyring.current.id).toBe(keyId);
        expect(third.audit.signingPublicKey?.id).toBe(signingKeyId);
        expect(await third.audit.verifyChain()).toBe(true);
      } finally {
        await third.close();
      }
    }
    // Five starts of an embedded database in one test: on a loaded 2-core machine, over 60 s.
  }, 180_000);
});
