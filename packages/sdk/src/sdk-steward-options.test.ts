import { testEngines } from "@gov/core/testing";
import { describe, expect, it } from "vitest";
import { startOn } from "./__fixtures__";
import type { ModuleDisabledError } from "./errors";
import { GovernanceSDK } from "./sdk";

// The steward's describe of sdk-steward.test.ts, continued: this test starts the SDK three
// times (twice failing), the longest of the SDK's tests, so it runs in a file of its own.
describe.each(testEngines())("GovernanceSDK with the steward on $name", (engine) => {
  it.skipIf(!engine.available)(
    "is off unless asked for, and refuses to start without blueprints",
    async () => {
      const sdk = await startOn(engine);
      expect(() => sdk.steward).toThrow("enableSteward");
      // The steward is off by default: the hint must not claim the opposite.
      const disabled = (() => {
        try {
          return sdk.steward;
        } catch (error) {
          return error as ModuleDisabledError;
        }
      })() as ModuleDisabledError;
      expect(disabled.recoveryHint).toContain("Pass enableSteward: true");
      expect(disabled.recoveryHint).toContain("off by default");
      expect(disabled.recoveryHint).not.toContain("on by default");
      await expect(
        GovernanceSDK.start({
          databaseUrl: "memory://",
          logLevel: "silent",
          env: {},
          enableSteward: true,
        }),
      ).rejects.toMatchObject({ code: "POLICY_INVALID" });
      await expect(
        GovernanceSDK.start({
          databaseUrl: "memory://",
          logLevel: "silent",
          env: { GOVERNANCE_STEWARD_BLUEPRINT_DIR: "does/not/exist" },
          enableSteward: true,
        }),
      ).rejects.toThrow("stewardBlueprintDirectory");
    },
  );
});
