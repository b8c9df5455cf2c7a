import { ChainKey, Keyring } from "@gov/core";
import { recordingLogger, type TestEngine, testEngines } from "@gov/core/testing";
import { describe, expect, it } from "vitest";
import { chainError, SECRET_A, SECRET_B, tamper, useAuditHarness } from "./__fixtures__";

const KEY_A = new ChainKey(SECRET_A);
const KEY_B = new ChainKey(SECRET_B);

describe.each(testEngines())("a changed audit secret on $name", (engine: TestEngine) => {
  const h = useAuditHarness(engine);

  async function logUnderA() {
    for (const sessionId of ["s-1", "s-2", "s-3"]) {
      await h.audit.log({ agentId: "billing-agent", kind: "tool.call", sessionId });
    }
    await h.audit.log({ agentId: "ops-agent", kind: "heartbeat" });
    await h.audit.flush();
  }

  // Guards against: a new GOVERNANCE_AUDIT_SECRET being silent at start, and only showing up
  // later as "tampering" when the chain is verified.
  it.skipIf(!engine.available)(
    "warns once at start about chains whose head is signed by a key not in the keyring",
    async () => {
      await logUnderA();
      const logger = recordingLogger();
      const restarted = h.another({ keyring: new Keyring(KEY_B), logger });
      await restarted.start();
      await restarted.start();
      const warnings = logger.messages("warn").filter((line) => line.includes(KEY_A.id));
      expect(warnings).toHaveLength(1);
      const [warning] = warnings;
      expect(warning).toContain("4 audit chains");
      expect(warning).toContain(`GOVERNANCE_CHAIN_KEY_${KEY_A.id.toUpperCase()}`);
      expect(warning).toContain(KEY_B.id);
      for (const secret of [SECRET_A, SECRET_B])
        expect(JSON.stringify(logger.lines)).not.toContain(secret);
    },
  );

  // Guards against: a table owner forging log lines (or flooding the log) through the key id
  // column, which the start-up warning and the verification advice repeat.
  it.skipIf(!engine.available)("never repeats a malformed key id read from the table", async () => {
    await logUnderA();
    await tamper(h.store, [
      "update gov_audit.events set key_id = E'0123\\n2026-01-01 ERROR forged line'",
    ]);
    const logger = recordingLogger();
    const restarted = h.another({ keyring: new Keyring(KEY_B), logger });
    await restarted.start();
    const all = JSON.stringify(logger.entries);
    expect(all).not.toContain("forged line");
    expect(logger.messages("warn").join("\n")).toContain("1 malformed key id (not shown)");
    const report = await restarted.verifyChainDetailed();
    expect(report.likelyCause).not.toContain("forged line");
    expect(report.likelyCause).toContain("not written by a process of this deployment");
  });

  it.skipIf(!engine.available)(
    "says nothing when the old key is in the keyring, or when there is no chain",
    async () => {
      const empty = recordingLogger();
      await h.another({ keyring: new Keyring(KEY_B), logger: empty }).start();
      expect(empty.messages("warn")).toEqual([]);
      await logUnderA();
      const logger = recordingLogger();
      await h.another({ keyring: new Keyring(KEY_B, [KEY_A]), logger }).start();
      await h.another({ logger }).start();
      expect(logger.messages("warn")).toEqual([]);
    },
  );

  // Guards against: verification blaming tampering only ("investigate who had write access")
  // when the rows are signed by a key this process was not given.
  it.skipIf(!engine.available)(
    "verification names a wrong or rotated secret beside tampering",
    async () => {
      await logUnderA();
      const underB = h.another({ keyring: new Keyring(KEY_B) });
      const error = await chainError(() => underB.verifyChain({ sessionId: "s-1" }));
      expect(error.unknownKeyId).toBe(KEY_A.id);
      expect(error.message).toMatch(/audit secret/i);
      expect(error.recoveryHint).toContain(`GOVERNANCE_CHAIN_KEY_${KEY_A.id.toUpperCase()}`);
      expect(error.recoveryHint).toContain("investigate who had write access");
      const report = await underB.verifyChainDetailed();
      expect(report).toMatchObject({ unverified: 4, failed: 0, unknownKeyIds: [KEY_A.id] });
      expect(report.likelyCause).toContain(`GOVERNANCE_CHAIN_KEY_${KEY_A.id.toUpperCase()}`);
      // A tampered row signed by a known key is not blamed on the secret.
      const report2 = await h.audit.verifyChainDetailed();
      expect(report2).toMatchObject({ unknownKeyIds: [], likelyCause: null });
    },
  );
});
