import { access, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ChainKey, InvalidArgumentError, Keyring, ManualClock, SigningKey } from "@gov/core";
import { recordingLogger, thrown, unreachableStore } from "@gov/core/testing";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { verifyCheckpoints } from "./checkpoint-signing";
import { AuditModule, type AuditOptions } from "./module";

const SECRET = "audit-key-options-0123456789-abcdefghijklmnop";

describe("AuditModule options", () => {
  let directory: string;
  beforeEach(async () => {
    directory = await mkdtemp(join(tmpdir(), "gov-audit-options-"));
  });
  afterEach(async () => {
    await rm(directory, { recursive: true, force: true });
  });

  /** A context whose store fails every query: nothing may reach it while options are read. */
  function context() {
    return {
      store: unreachableStore(),
      keyring: new Keyring(new ChainKey(SECRET)),
      clock: new ManualClock(new Date("2026-01-01T00:00:00.000Z")),
      logger: recordingLogger(),
    };
  }

  // Guards against: a misspelt option silently ignored (the module then runs with the default).
  it("refuses an unknown option with a did-you-mean, and starts nothing", async () => {
    const spoolDirectory = join(directory, "spool");
    const given = context();
    const error = thrown(
      () => new AuditModule(given, { spoolDirectory, maxBatchSze: 10 } as unknown as AuditOptions),
    );
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect(error).toMatchObject({ code: "INVALID_ARGUMENT", field: "options.maxBatchSze" });
    expect((error as Error).message).toContain("did you mean `maxBatchSize`?");
    expect(given.logger.lines).toEqual([]);
    await expect(access(spoolDirectory)).rejects.toMatchObject({ code: "ENOENT" });
  });

  it("refuses what is not an options object", () => {
    for (const options of [42, "fast", [], new Date()]) {
      expect(
        thrown(() => new AuditModule(context(), options as unknown as AuditOptions)),
        String(options),
      ).toMatchObject({ code: "INVALID_ARGUMENT", field: "options" });
    }
  });

  // Guards against: a negative checkpoint interval read as 0 (periodic checkpoints silently off).
  it("refuses a negative, fractional or too long checkpointIntervalMs", () => {
    for (const checkpointIntervalMs of [-1, -60_000, 1.5, 86_400_001, Number.NaN]) {
      const error = thrown(
        () => new AuditModule(context(), { spoolDirectory: null, checkpointIntervalMs }),
      );
      expect(error, String(checkpointIntervalMs)).toMatchObject({
        code: "INVALID_ARGUMENT",
        field: "options.checkpointIntervalMs",
      });
    }
    for (const checkpointIntervalMs of [0, 1, 86_400_000]) {
      expect(
        new AuditModule(context(), { spoolDirectory: null, checkpointIntervalMs }),
      ).toBeInstanceOf(AuditModule);
    }
  });

  it("names each bad option, its limit and the fix", () => {
    const cases: [AuditOptions, string, number | undefined][] = [
      [{ maxBatchSize: 0 }, "options.maxBatchSize", 1],
      [{ maxBatchSize: 100_001 }, "options.maxBatchSize", 100_000],
      [{ maxConcurrentBatches: 33 }, "options.maxConcurrentBatches", 32],
      [{ retryIntervalMs: 0.5 }, "options.retryIntervalMs", undefined],
      [{ verifyChainOnRead: "yes" as never }, "options.verifyChainOnRead", undefined],
      [{ spoolDirectory: "" }, "options.spoolDirectory", 1],
      [{ witness: 42 as never }, "options.witness", undefined],
      [{ signingKey: "key" as never }, "options.signingKey", undefined],
      [{ spoolAdoptHosts: ["a/b"] }, "options.spoolAdoptHosts[0]", undefined],
      [{ trustedSigningKeys: "key" as never }, "options.trustedSigningKeys", undefined],
    ];
    for (const [options, field, limit] of cases) {
      const error = thrown(() => new AuditModule(context(), { spoolDirectory: null, ...options }));
      expect(error, field).toBeInstanceOf(InvalidArgumentError);
      expect(error, field).toMatchObject({ field, limit });
      expect((error as InvalidArgumentError).recoveryHint, field).toBeTruthy();
    }
  });

  // Guards against: a misspelt filter or option of a method silently ignored (getEvents with
  // `sesionId` returned every session's events; verifyChain verified every chain).
  it("refuses unknown options of every method with a did-you-mean, changing nothing", async () => {
    const audit = new AuditModule(context(), { spoolDirectory: null });
    const calls: [string, () => unknown, string, string][] = [
      [
        "getEvents",
        () => audit.getEvents({ sesionId: "s" } as never),
        "filters.sesionId",
        "sessionId",
      ],
      [
        "verifyChain",
        () => audit.verifyChain({ sessionID: "s" } as never),
        "options.sessionID",
        "sessionId",
      ],
      [
        "verifyChainDetailed",
        () => audit.verifyChainDetailed({ fromSq: 1 } as never),
        "options.fromSq",
        "fromSeq",
      ],
      [
        "checkpoint",
        () => audit.checkpoint({ sessionId: ["s"] } as never),
        "options.sessionId",
        "sessionIds",
      ],
      [
        "rotateChainKey",
        () =>
          audit.rotateChainKey({
            newKey: "k".repeat(40),
            operatorId: "o",
            reason: "r",
            reasn: "r",
          } as never),
        "options.reasn",
        "reason",
      ],
      [
        "importSpool",
        () =>
          audit.importSpool("spool.jsonl", {
            operatorId: "o",
            reason: "r",
            acceptRetired: true,
          } as never),
        "options.acceptRetired",
        "acceptRetiredKey",
      ],
      [
        "track",
        () => audit.track({ kind: "k", agentId: "a", sesionId: "s" } as never, async () => 1),
        "options.sesionId",
        "sessionId",
      ],
    ];
    for (const [name, call, field, suggestion] of calls) {
      const error = await thrown(call);
      expect(error, name).toBeInstanceOf(InvalidArgumentError);
      expect(error, name).toMatchObject({ code: "INVALID_ARGUMENT", field });
      expect((error as Error).message, name).toContain(`did you mean \`${suggestion}\`?`);
    }
    expect(audit.metrics().logged).toBe(0);
    await audit.close();
    const error = await thrown(
      verifyCheckpoints([], {
        publicKeys: [SigningKey.generate().publicKey],
        requireSig: true,
      } as never),
    );
    expect(error).toMatchObject({ code: "INVALID_ARGUMENT", field: "options.requireSig" });
    expect((error as Error).message).toContain("did you mean `requireSignature`?");
  });
});
