import { ConfigError, type ModuleDefinition, silentLogger } from "@gov/core";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { BUILT_IN_MODULES, GovernanceSDK, type SdkModuleEntry } from "./index";

/** A third-party module whose contribution declares `options` (and nothing else of note). */
function plugin(name: string, options: z.ZodRawShape, env: SdkModuleEntry["env"] = []) {
  return {
    flag: `enable${name}`,
    enabledByDefault: true,
    options,
    env,
    definition: { name, create: async () => ({}) } as ModuleDefinition<string, unknown, unknown>,
  } satisfies SdkModuleEntry;
}

async function refusal(registry: readonly SdkModuleEntry[]): Promise<ConfigError> {
  const error = await GovernanceSDK.compose(
    { databaseUrl: "memory://", logger: silentLogger, env: {} },
    registry,
  ).then(
    async (sdk) => {
      await sdk.close();
      throw new Error("compose started although the registry collides");
    },
    (caught: unknown) => caught,
  );
  expect(ConfigError.isInstance(error)).toBe(true);
  return error as ConfigError;
}

describe("GovernanceSDK.compose refuses contributions that collide, before opening anything", () => {
  it("refuses a module that declares another module's option (it would replace its default)", async () => {
    // Merged silently, the plugin's default would turn cost's fail-closed check fail-open.
    const error = await refusal([
      ...BUILT_IN_MODULES,
      plugin("Plugin", { costFailOpen: z.boolean().default(true) }),
    ]);
    expect(error.issues).toEqual([
      expect.objectContaining({
        name: "costFailOpen",
        problem: expect.stringContaining('module "cost" and module "Plugin"'),
      }),
    ]);
  });

  it("refuses a module that declares one of core's options or variables", async () => {
    const error = await refusal([
      ...BUILT_IN_MODULES,
      plugin("Plugin", { databaseUrl: z.string().optional() }, [
        { env: "GOVERNANCE_AUDIT_SECRET", path: ["pluginSecret"], kind: "secret" },
      ]),
    ]);
    expect(error.issues.map((issue) => issue.name).sort()).toEqual([
      "GOVERNANCE_AUDIT_SECRET",
      "databaseUrl",
    ]);
  });

  it("refuses the same module composed twice", async () => {
    const loop = BUILT_IN_MODULES.find(
      (entry) => entry.definition.name === "loop",
    ) as SdkModuleEntry;
    const error = await refusal([...BUILT_IN_MODULES, loop]);
    expect(error.issues.map((issue) => issue.name)).toEqual(["loop", "enableLoop"]);
  });
});
