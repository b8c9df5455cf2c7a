import { defineModule, type MigrationSource, type ModuleContext } from "@gov/core";
import { CostModule } from "./module";
import type { CostOptions } from "./options";
import { costSdkContribution } from "./sdk-options";

/** The cost module's migrations: schema `gov_cost`. */
export const costMigrations: MigrationSource = {
  name: "cost",
  migrationsFolder: new URL("../drizzle", import.meta.url),
};

/** The cost module's definition, for `@gov/sdk` and for composing it by hand. */
export const costModule = defineModule({
  name: "cost",
  migrations: costMigrations,
  create: async (context: ModuleContext, options: CostOptions | undefined) => {
    const cost = new CostModule(context, options ?? {});
    await cost.start();
    return cost;
  },
  close: (cost: CostModule) => cost.close(),
  sdk: costSdkContribution,
});
