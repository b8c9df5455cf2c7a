import { defineProject } from "vitest/config";
import { govTestProject } from "../../tooling/vitest-preset";

// The blocks run in Node processes of their own, against the built packages (as installed from
// npm); this file's own imports may read the sources. Two blocks run at a time, each within
// the test's timeout (a block's process is killed after two minutes).
const project = govTestProject("@gov/docs-test");
export default defineProject({
  ...project,
  test: { ...project.test, maxConcurrency: 2, testTimeout: 150_000 },
});
