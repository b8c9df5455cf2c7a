import { defineProject, mergeConfig } from "vitest/config";
import { govTestProject } from "../../tooling/vitest-preset";

export default defineProject(
  mergeConfig(govTestProject("@gov/sdk"), {
    // Mostly waiting on embedded databases opening and on child processes: more workers than
    // cores keep it from being among the last to finish when every suite runs at once.
    test: { maxWorkers: 3 },
  }),
);
