import { defineProject, mergeConfig } from "vitest/config";
import { govTestProject } from "../../tooling/vitest-preset";

/**
 * The attack's reproductions of known breaks (issue 14) fail until each is fixed and its test
 * moves into the suite: `pnpm test` leaves them out, `pnpm test:attack` runs only them.
 */
const attack = process.env.GOV_WRAPPERS_ATTACK === "1";

const config = mergeConfig(govTestProject("@gov/wrappers"), {
  test: {
    // `ai` imports @opentelemetry/api, whose `module` build (picked by the preset's
    // conditions) uses extensionless imports that Node cannot load: let Vite transform it.
    server: { deps: { inline: ["ai", "@opentelemetry/api"] } },
    // The longest suite, and mostly waiting on loopback servers and the database: more
    // workers than cores keep it from being the last to finish when every suite runs at once.
    maxWorkers: 4,
  },
});
config.test.include = attack ? ["src/attack/**/*.test.ts"] : ["src/**/*.test.ts"];
// Every break the attack found is fixed and its test is in the suite; the folder is where the
// next attack's reproductions go.
config.test.passWithNoTests = attack;
config.test.exclude = attack ? [] : ["src/attack/**", "**/node_modules/**"];

export default defineProject(config);
