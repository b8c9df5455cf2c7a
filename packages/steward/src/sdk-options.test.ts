import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { ConfigError } from "@gov/core";
import { thrown } from "@gov/core/testing";
import { afterAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { stewardModule } from "./module";
import { stewardSdkContribution } from "./sdk-options";

/** The SDK's options as the SDK parses them (defaults applied), typed for `moduleOptions`. */
function parseConfig(input: Record<string, unknown>): never {
  return z.object(stewardSdkContribution.options ?? {}).parse(input) as never;
}

// Issue 13: each module owns its SDK configuration (it was re-declared in @gov/sdk).
describe("the steward's SDK contribution", () => {
  const directory = mkdtempSync(join(tmpdir(), "steward-sdk-"));
  afterAll(() => rmSync(directory, { recursive: true, force: true }));

  it("is the module definition's, off by default, with the reference's variables", () => {
    expect(stewardModule.sdk).toBe(stewardSdkContribution);
    expect(stewardSdkContribution.flag).toBe("enableSteward");
    expect(stewardSdkContribution.enabledByDefault).toBe(false);
    expect(stewardSdkContribution.env?.map((binding) => binding.env)).toEqual([
      "GOVERNANCE_STEWARD_BLUEPRINT_DIR",
      "GOVERNANCE_STEWARD_BLUEPRINT_IDS",
      "GOVERNANCE_STEWARD_CONFORMANCE_LEVEL",
      "GOVERNANCE_STEWARD_PERSIST",
    ]);
    expect(Object.keys(stewardSdkContribution.fixes ?? {}).sort()).toEqual(
      Object.keys(stewardSdkContribution.options ?? {}).sort(),
    );
  });

  it("turns the SDK's options into the module's, reading a blueprint directory in name order", () => {
    writeFileSync(join(directory, "b.yaml"), "id: b@1\n");
    writeFileSync(join(directory, "a.yml"), "id: a@1\n");
    writeFileSync(join(directory, "notes.txt"), "not a blueprint");
    const config = parseConfig({
      stewardBlueprints: ["id: given@1\n"],
      stewardBlueprintDirectory: basename(directory),
      stewardConformanceLevel: "complete",
    });
    expect(
      stewardSdkContribution.moduleOptions?.(config, { cwd: dirname(directory), production: true }),
    ).toEqual({
      blueprints: ["id: given@1\n", "id: a@1\n", "id: b@1\n"],
      conformanceLevel: "complete",
      persist: true,
      production: true,
    });
  });

  it("refuses a directory it cannot read with a ConfigError naming the option", () => {
    const config = parseConfig({
      stewardBlueprintDirectory: join(directory, "missing"),
    });
    const error = thrown(() =>
      stewardSdkContribution.moduleOptions?.(config, { cwd: directory, production: false }),
    );
    expect(ConfigError.isInstance(error)).toBe(true);
    expect((error as Error).message).toContain("stewardBlueprintDirectory");
  });
});
