import { defineModule, type MigrationSource, type ModuleContext } from "@gov/core";
import type { GatesOptions } from "./models";
import { GatesModule } from "./module";
import { gatesSdkContribution } from "./sdk-options";

/** The gates module's migrations: schema `gov_gates`. */
export const gatesMigrations: MigrationSource = {
  name: "gates",
  migrationsFolder: new URL("../drizzle", import.meta.url),
};

/**
 * The gates module's definition, for `@gov/sdk` and for composing it by hand: `create`
 * constructs the module and awaits its `start()`.
 *
 * @example
 * ```ts
 * const gates = await gatesModule.create(context, { defaultExpiresInMs: 15 * 60_000 });
 * ```
 */
export const gatesModule = defineModule({
  name: "gates",
  migrations: gatesMigrations,
  create: async (context: ModuleContext, options: GatesOptions | undefined) => {
    const gates = new GatesModule(context, options ?? {});
    await gates.start();
    return gates;
  },
  close: (gates: GatesModule) => gates.close(),
  sdk: gatesSdkContribution,
});
