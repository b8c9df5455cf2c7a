import { defineProject } from "vitest/config";
import { govTestProject } from "../tooling/vitest-preset";

export default defineProject(govTestProject("@gov/examples"));
