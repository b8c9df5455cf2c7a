import { defineProject } from "vitest/config";
import { govTestProject } from "../../tooling/vitest-preset";

// No source conditions: this package sees @gov/core exactly as an installed user would,
// through its built `dist/` and its published exports.
export default defineProject(govTestProject("@gov/consumer-test", { sourceConditions: false }));
