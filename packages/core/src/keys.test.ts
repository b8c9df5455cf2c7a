import { generateKeyPairSync } from "node:crypto";
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inspect } from "node:util";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { parseDatabaseUrl } from "./database-url";
import {
  ChainKey,
  constantTimeEqualHex,
  EMBEDDED_KEY_FILE,
  EMBEDDED_SIGNING_KEY_FILE,
  Keyring,
  keyFingerprint,
  loadOrCreateKeyFile,
  loadOrCreateSigningKeyFile,
  resolveKeyring,
  resolveSigningKey,
  SecretError,
  SigningKey,
  VerifyingKey,
  validateSecret,
} from "./keys";
import { type Logger, silentLogger } from "./logger";

const SECRET = "s3cr3t-0123456789-abcdefghijklmnopqrstuvwxyz";
const OLD_SECRET = "old-secret-ABCDEFGHIJKLMNOPQRSTUVWXYZ-987654321";

function secretError(run: () => unknown): SecretError {
  try {
    run();
  } catch (error) {
    if (error instanceof SecretError) return error;
    throw error;
  }
  throw new Error("expected a SecretError");
}

describe("validateSecret", () => {
  it("accepts a strong secret", () => {
    expect(() => validateSecret(SECRET)).not.toThrow();
  });

  it("refuses fewer than 32 bytes, naming the field, the length, the limit and how to generate one", () => {
    const error = secretError(() =>
      validateSecret("short-but-varied-0123", "GOVERNANCE_AUDIT_SECRET"),
    );
    expect(error.code).toBe("SECRET_INVALID");
    expect(error.field).toBe("GOVERNANCE_AUDIT_SECRET");
    expect(error.message).toBe(
      "GOVERNANCE_AUDIT_SECRET is too short: 21 bytes, at least 32 are required.",
    );
    expect(error.recoveryHint).toContain("openssl rand");
  });

  it("counts bytes, not characters", () => {
    // 16 characters, 48 bytes of UTF-8.
    expect(() => validateSecret("€₤¥₩₪₫₭₮₯₰₱₲₳₴₵₶")).not.toThrow();
  });

  it("refuses a long secret with fewer than 8 distinct byte values, without repeating it", () => {
    const weak = "abcabcabcabcabcabcabcabcabcabcabcabc";
    const error = secretError(() => validateSecret(weak));
    expect(error.message).toContain("only 3 distinct byte values");
    expect(error.message).not.toContain(weak);
  });
});

describe("ChainKey and Keyring", () => {
  it("identifies a key by a stable fingerprint and never shows the secret", () => {
    const key = new ChainKey(SECRET);
    expect(key.fingerprint).toBe(keyFingerprint(SECRET));
    expect(key.fingerprint).toMatch(/^[0-9a-f]{64}$/);
    expect(key.id).toBe(key.fingerprint.slice(0, 16));
    expect(JSON.stringify(key)).not.toContain(SECRET);
    expect(inspect(key, { showHidden: true, depth: 5 })).not.toContain(SECRET);
    // Regression: the key bytes were an enumerable symbol property, copied by spreads.
    const hex = Buffer.from(SECRET).toString("hex").slice(0, 16);
    const spread = inspect({ ...key }, { showHidden: true, depth: 5 });
    expect(spread).not.toContain(SECRET);
    expect(spread.replaceAll(" ", "")).not.toContain(hex);
    expect(Object.getOwnPropertySymbols(key)).toEqual([]);
    expect(inspect(Object.assign({}, key), { showHidden: true })).not.toContain("Buffer");
    expect(String(key)).toBe(`ChainKey(${key.id})`);
  });

  it("signs and verifies with HMAC-SHA256, rejecting a changed message or MAC", () => {
    const key = new ChainKey(SECRET);
    const mac = key.hmacHex("payload");
    expect(mac).toMatch(/^[0-9a-f]{64}$/);
    expect(key.verifyHex("payload", mac)).toBe(true);
    expect(key.verifyHex("payload!", mac)).toBe(false);
    const flipped = `${mac.slice(0, 63)}${mac.endsWith("0") ? "1" : "0"}`;
    expect(key.verifyHex("payload", flipped)).toBe(false);
    expect(key.verifyHex("payload", mac.slice(0, 10))).toBe(false);
    expect(new ChainKey(OLD_SECRET).verifyHex("payload", mac)).toBe(false);
  });

  it("compares MACs in constant time, and unequal lengths as unequal", () => {
    expect(constantTimeEqualHex("abcd", "abcd")).toBe(true);
    expect(constantTimeEqualHex("abcd", "abce")).toBe(false);
    expect(constantTimeEqualHex("abcd", "abc")).toBe(false);
  });

  it("finds current and historical keys by fingerprint prefix", () => {
    const current = new ChainKey(SECRET);
    const old = new ChainKey(OLD_SECRET);
    const keyring = new Keyring(current, [old, new ChainKey(OLD_SECRET)]);
    expect(keyring.keys).toHaveLength(2);
    expect(keyring.find(current.id)).toBe(current);
    expect(keyring.find(old.fingerprint)).toBe(old);
    expect(keyring.find(old.id.toUpperCase())).toBe(old);
    expect(keyring.find("1234")).toBeUndefined();
    const error = secretError(() => keyring.require("deadbeefdeadbeef"));
    expect(error.code).toBe("KEY_NOT_FOUND");
    expect(error.recoveryHint).toContain("GOVERNANCE_CHAIN_KEY_DEADBEEFDEADBEEF");
    expect(JSON.stringify(keyring)).not.toContain(SECRET);
  });
});

describe("the embedded database's key file", () => {
  let directory: string;

  beforeEach(async () => {
    directory = await mkdtemp(join(tmpdir(), "gov-keys-"));
  });

  afterEach(async () => {
    await rm(directory, { recursive: true, force: true });
  });

  it("is created once with mode 0600 and read back on the next start", async () => {
    const first = await loadOrCreateKeyFile(directory, silentLogger);
    expect(first.created).toBe(true);
    expect((await stat(first.path)).mode & 0o777).toBe(0o600);
    const second = await loadOrCreateKeyFile(directory, silentLogger);
    expect(second).toMatchObject({ created: false, secret: first.secret });
    expect(() => validateSecret(first.secret)).not.toThrow();
  });

  it("gives concurrent first starts one and the same key", async () => {
    const results = await Promise.all(
      Array.from({ length: 8 }, () => loadOrCreateKeyFile(directory, silentLogger)),
    );
    expect(new Set(results.map((result) => result.secret)).size).toBe(1);
    expect(results.filter((result) => result.created)).toHaveLength(1);
  });

  it("warns when the file is readable by others, and refuses a weak one", async () => {
    const warnings: string[] = [];
    const logger: Logger = { ...silentLogger, warn: (message) => warnings.push(message) };
    const generated = `${"Q".repeat(20)}wErTy-_0123456789abcdefghijklmnopqrstuvwxyz0`;
    await writeFile(join(directory, EMBEDDED_KEY_FILE), `${generated}\n`);
    await chmod(join(directory, EMBEDDED_KEY_FILE), 0o644); // whatever the umask
    const loaded = await loadOrCreateKeyFile(directory, logger);
    expect(loaded.secret).toBe(generated);
    expect(warnings[0]).toContain("chmod 600");
    await writeFile(join(directory, EMBEDDED_KEY_FILE), `${"A".repeat(64)}\n`, { mode: 0o600 });
    await expect(loadOrCreateKeyFile(directory, logger)).rejects.toMatchObject({
      code: "SECRET_INVALID",
    });
  });

  // Guards against: a key file that something appended to (a witness pointed at it through a
  // link) silently becoming another key: only the one line it was created with is accepted.
  it("accepts only the key line it was created with, and names the path but never the content", async () => {
    const { secret, path } = await loadOrCreateKeyFile(directory, silentLogger);
    const witnessLine = '{"v":1,"checkpointId":"0b8e1e9e-2c1f-4f57-a1a5-0f7e1f0d9a11","chain":"s"}';
    const contents: Record<string, string> = {
      "a witness line appended": `${secret}\n${witnessLine}\n`,
      "a torn line appended": `${secret}\n{"v":1,"chec`,
      "a second key": `${secret}\n${secret}\n`,
      "text before the key": `# key\n${secret}\n`,
      "blank lines after the key": `${secret}\n\n\n`,
      "white space around the key": ` ${secret} \n`,
      "a Windows line ending": `${secret}\r\n`,
      "one character missing": `${secret.slice(1)}\n`,
      "one character more": `${secret}A\n`,
      "standard base64": `${secret.slice(0, 62)}+/\n`,
      nothing: "",
      "a lot of text": `${secret}\n${"x".repeat(100_000)}\n`,
    };
    for (const [name, content] of Object.entries(contents)) {
      await writeFile(path, content, { mode: 0o600 });
      const error = await loadOrCreateKeyFile(directory, silentLogger).then(
        () => null,
        (caught: unknown) => caught as SecretError,
      );
      expect(error, name).toBeInstanceOf(SecretError);
      expect(error, name).toMatchObject({ code: "SECRET_FILE", field: path });
      expect(error?.message, name).toContain(path);
      for (const part of [secret, secret.slice(8, 40), witnessLine])
        expect(`${error?.message} ${error?.recoveryHint}`, name).not.toContain(part);
    }
    // The line as generated, with or without its line feed, is the key.
    for (const content of [`${secret}\n`, secret]) {
      await writeFile(path, content, { mode: 0o600 });
      expect((await loadOrCreateKeyFile(directory, silentLogger)).secret).toBe(secret);
    }
  });
});

describe("resolveKeyring", () => {
  it("uses an explicit secret, with historical keys", async () => {
    const keyring = await resolveKeyring({
      target: parseDatabaseUrl("postgres://db/gov") as never,
      auditSecret: SECRET,
      historicalKeys: [OLD_SECRET],
      logger: silentLogger,
    });
    expect(keyring.current.fingerprint).toBe(keyFingerprint(SECRET));
    expect(keyring.find(keyFingerprint(OLD_SECRET))).toBeDefined();
  });

  it("refuses to start on a real Postgres without a secret rather than use a throwaway key", async () => {
    const error = await resolveKeyring({
      target: parseDatabaseUrl("postgres://db/gov") as never,
      logger: silentLogger,
    }).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(SecretError);
    expect(error).toMatchObject({ code: "SECRET_REQUIRED", field: "auditSecret" });
    expect((error as SecretError).recoveryHint).toContain("GOVERNANCE_AUDIT_SECRET");
  });

  it("keeps a generated key beside an embedded database, so the same key comes back after a restart", async () => {
    const home = await mkdtemp(join(tmpdir(), "gov-home-"));
    try {
      const target = parseDatabaseUrl(home) as never;
      const first = await resolveKeyring({ target, logger: silentLogger });
      const second = await resolveKeyring({ target, logger: silentLogger });
      expect(second.current.fingerprint).toBe(first.current.fingerprint);
      expect(await readFile(join(home, EMBEDDED_KEY_FILE), "utf8")).not.toBe("");
    } finally {
      await rm(home, { recursive: true, force: true });
    }
  });

  it("uses a random key for memory://", async () => {
    const a = await resolveKeyring({
      target: parseDatabaseUrl("memory://") as never,
      logger: silentLogger,
    });
    const b = await resolveKeyring({
      target: parseDatabaseUrl("memory://") as never,
      logger: silentLogger,
    });
    expect(a.current.fingerprint).not.toBe(b.current.fingerprint);
  });
});

describe("Ed25519 signing keys", () => {
  const pair = generateKeyPairSync("ed25519");
  const privatePem = pair.privateKey.export({ type: "pkcs8", format: "pem" }).toString();
  const privateBase64 = pair.privateKey.export({ type: "pkcs8", format: "der" }).toString("base64");
  const publicPem = pair.publicKey.export({ type: "spki", format: "pem" }).toString();
  const publicBase64 = pair.publicKey.export({ type: "spki", format: "der" }).toString("base64");

  it("reads PKCS#8 PEM, its base64 DER form and PEM with escaped line breaks, as one key", () => {
    const fromPem = new SigningKey(privatePem);
    const fromDer = new SigningKey(privateBase64);
    const fromEscaped = new SigningKey(privatePem.trim().replaceAll("\n", "\\n"));
    expect(fromPem.id).toMatch(/^[0-9a-f]{16}$/);
    expect(fromPem.fingerprint.startsWith(fromPem.id)).toBe(true);
    expect(fromDer.fingerprint).toBe(fromPem.fingerprint);
    expect(fromEscaped.fingerprint).toBe(fromPem.fingerprint);
    expect(new VerifyingKey(publicPem).fingerprint).toBe(fromPem.fingerprint);
    expect(new VerifyingKey(publicBase64).fingerprint).toBe(fromPem.fingerprint);
    expect(new VerifyingKey(fromPem.publicKey.pem).fingerprint).toBe(fromPem.fingerprint);
  });

  it("signs so that the public key alone verifies, and refuses a changed message, signature or key", () => {
    const key = new SigningKey(privatePem);
    const signature = key.sign("checkpoint payload");
    expect(signature).toMatch(/^[0-9a-f]{128}$/);
    const verifier = new VerifyingKey(publicPem);
    expect(verifier.verify("checkpoint payload", signature)).toBe(true);
    expect(verifier.verify("checkpoint payload!", signature)).toBe(false);
    const flipped = `${signature.slice(0, 127)}${signature.endsWith("0") ? "1" : "0"}`;
    expect(verifier.verify("checkpoint payload", flipped)).toBe(false);
    expect(verifier.verify("checkpoint payload", signature.slice(0, 64))).toBe(false);
    expect(verifier.verify("checkpoint payload", signature.toUpperCase())).toBe(false);
    expect(SigningKey.generate().publicKey.verify("checkpoint payload", signature)).toBe(false);
  });

  it("never shows the private key: not in JSON, inspect, strings or errors", () => {
    const key = new SigningKey(privatePem);
    const body = privateBase64.slice(20, 60);
    for (const shown of [
      JSON.stringify(key),
      inspect(key, { showHidden: true, depth: 5 }),
      inspect({ ...key }, { showHidden: true, depth: 5 }),
      String(key),
    ]) {
      expect(shown).not.toContain("PRIVATE");
      expect(shown).not.toContain(body);
    }
    expect(String(key)).toBe(`SigningKey(${key.id})`);
    // A damaged key: the error names the field, never the value.
    const damaged = privatePem.replace(privateBase64.slice(0, 8), "AAAA");
    const error = secretError(() => new SigningKey(damaged, "GOVERNANCE_AUDIT_SIGNING_KEY"));
    expect(error).toMatchObject({ code: "SECRET_INVALID", field: "GOVERNANCE_AUDIT_SIGNING_KEY" });
    expect(`${error.message} ${error.recoveryHint} ${String(error.cause)}`).not.toContain(body);
  });

  it("refuses what is not an Ed25519 private key, naming the field and how to make one", () => {
    const rsa = generateKeyPairSync("rsa", { modulusLength: 1024 })
      .privateKey.export({ type: "pkcs8", format: "pem" })
      .toString();
    for (const bad of [rsa, publicPem, SECRET, "", "not base64 at all!", pair.publicKey]) {
      const error = secretError(() => new SigningKey(bad as string, "auditSigningKey"));
      expect(error.code).toBe("SECRET_INVALID");
      expect(error.message).toContain("auditSigningKey is not an Ed25519 private key");
      expect(error.recoveryHint).toContain("openssl genpkey -algorithm ed25519");
    }
    expect(() => new VerifyingKey("nonsense")).toThrow(SecretError);
    expect(() => new VerifyingKey(rsa)).toThrow(SecretError);
  });

  // Guards against: a private key accepted where a public key is expected (a trusted
  // verifying key), whose public half was then derived and the private key kept in config.
  it("refuses a private key where a public key is expected, without repeating it", () => {
    const encrypted = pair.privateKey
      .export({ type: "pkcs8", format: "pem", cipher: "aes-256-cbc", passphrase: "pass" })
      .toString();
    const privateForms: Record<string, unknown> = {
      "PKCS#8 PEM": privatePem,
      "PKCS#8 PEM with escaped line breaks": privatePem.trim().replaceAll("\n", "\\n"),
      "PKCS#8 PEM without its armor's line breaks": privatePem.replaceAll("\n", " "),
      "base64 PKCS#8 DER": privateBase64,
      "base64url PKCS#8 DER": Buffer.from(privateBase64, "base64").toString("base64url"),
      "an encrypted PKCS#8 PEM": encrypted,
      "a private KeyObject": pair.privateKey,
      "an RSA private key": generateKeyPairSync("rsa", { modulusLength: 1024 }).privateKey,
    };
    const body = privateBase64.slice(16, 56);
    for (const [name, key] of Object.entries(privateForms)) {
      const error = secretError(() => new VerifyingKey(key as string, "trustedSigningKeys[0]"));
      expect(error, name).toMatchObject({ code: "SECRET_INVALID", field: "trustedSigningKeys[0]" });
      expect(error.message, name).toContain("private key");
      expect(error.recoveryHint, name).toContain("public");
      expect(`${error.message} ${error.recoveryHint} ${String(error.cause)}`, name).not.toContain(
        body,
      );
    }
    // The public key, in each of its forms, is still accepted.
    for (const key of [publicPem, publicBase64, pair.publicKey])
      expect(new VerifyingKey(key).fingerprint).toBe(new SigningKey(privatePem).fingerprint);
  });

  describe("beside the embedded database", () => {
    let directory: string;

    beforeEach(async () => {
      directory = await mkdtemp(join(tmpdir(), "gov-signing-"));
    });

    afterEach(async () => {
      await rm(directory, { recursive: true, force: true });
    });

    it("is generated once, mode 0600, next to the HMAC key, and read back on the next start", async () => {
      const first = await loadOrCreateSigningKeyFile(directory, silentLogger);
      expect(first.created).toBe(true);
      expect(first.path).toBe(join(directory, EMBEDDED_SIGNING_KEY_FILE));
      expect((await stat(first.path)).mode & 0o777).toBe(0o600);
      expect(await readFile(first.path, "utf8")).toContain("-----BEGIN PRIVATE KEY-----");
      const second = await loadOrCreateSigningKeyFile(directory, silentLogger);
      expect(second.created).toBe(false);
      expect(second.key.fingerprint).toBe(first.key.fingerprint);
    });

    it("gives concurrent first starts one and the same key", async () => {
      const results = await Promise.all(
        Array.from({ length: 6 }, () => loadOrCreateSigningKeyFile(directory, silentLogger)),
      );
      expect(new Set(results.map((result) => result.key.fingerprint)).size).toBe(1);
      expect(results.filter((result) => result.created)).toHaveLength(1);
    });

    // Guards against: a signing key file that something appended to (or replaced) being
    // read as a key anyway: only the PEM it was created with is accepted.
    it("refuses a file that holds anything but the key it was created with", async () => {
      const { key, path } = await loadOrCreateSigningKeyFile(directory, silentLogger);
      const pem = await readFile(path, "utf8");
      const rsa = generateKeyPairSync("rsa", { modulusLength: 1024 })
        .privateKey.export({ type: "pkcs8", format: "pem" })
        .toString();
      const contents: Record<string, string> = {
        garbage: "garbage\n",
        "a witness line appended": `${pem}{"v":1,"chain":"s"}\n`,
        "a torn line appended": `${pem}{"v":1,"chec`,
        "a second key": `${pem}${pem}`,
        "text before the key": `key:\n${pem}`,
        "blank lines after the key": `${pem}\n\n`,
        "an RSA key": rsa,
        "a public key": key.publicKey.pem,
        nothing: "",
      };
      for (const [name, content] of Object.entries(contents)) {
        await writeFile(path, content, { mode: 0o600 });
        const error = await loadOrCreateSigningKeyFile(directory, silentLogger).then(
          () => null,
          (caught: unknown) => caught as SecretError,
        );
        expect(error, name).toMatchObject({ code: "SECRET_FILE", field: path });
        expect(error?.message, name).toContain(path);
        expect(`${error?.message} ${error?.recoveryHint}`, name).not.toContain(
          pem.split("\n")[1] as string,
        );
      }
      await writeFile(path, pem, { mode: 0o600 });
      expect((await loadOrCreateSigningKeyFile(directory, silentLogger)).key.id).toBe(key.id);
    });
  });

  describe("resolveSigningKey", () => {
    it("uses an explicit key", async () => {
      const key = await resolveSigningKey({
        target: parseDatabaseUrl("postgres://db/gov") as never,
        signingKey: privatePem,
        logger: silentLogger,
      });
      expect(key?.fingerprint).toBe(new SigningKey(privatePem).fingerprint);
    });

    it("signs with the HMAC only on a real Postgres without a key, and says how to add one", async () => {
      const messages: string[] = [];
      const logger: Logger = { ...silentLogger, info: (message) => messages.push(message) };
      const key = await resolveSigningKey({
        target: parseDatabaseUrl("postgres://db/gov") as never,
        logger,
      });
      expect(key).toBeNull();
      expect(messages.join(" ")).toContain("GOVERNANCE_AUDIT_SIGNING_KEY");
    });

    it("keeps a generated key beside an embedded database, and a random one for memory://", async () => {
      const home = await mkdtemp(join(tmpdir(), "gov-home-"));
      try {
        const target = parseDatabaseUrl(home) as never;
        const first = await resolveSigningKey({ target, logger: silentLogger });
        const second = await resolveSigningKey({ target, logger: silentLogger });
        expect(second?.fingerprint).toBe(first?.fingerprint);
        const memory = parseDatabaseUrl("memory://") as never;
        const a = await resolveSigningKey({ target: memory, logger: silentLogger });
        const b = await resolveSigningKey({ target: memory, logger: silentLogger });
        expect(a?.fingerprint).not.toBe(b?.fingerprint);
      } finally {
        await rm(home, { recursive: true, force: true });
      }
    });
  });
});
