import { defineConfig } from "tsup";
import { govTsupConfig } from "../../tooling/tsup-preset";

export default defineConfig(govTsupConfig());
