import type { Options } from "tsup";

/** Options of {@link govTsupConfig}. */
export interface GovTsupOptions {
  /** Extra entry points beside `src/index.ts` (e.g. `src/otel.ts`). */
  entries?: readonly string[];
  /**
   * Entry points that get no type declarations (plain JavaScript loaded at run time, such as
   * a worker script). @default []
   */
  untypedEntries?: readonly string[];
}

/**
 * The tsup config every package shares: ESM for Node 20, source maps, a clean `dist/`, and
 * type declarations for every typed entry (`src/index.ts` first).
 *
 * @example
 * ```ts
 * // packages/audit/tsup.config.ts
 * import { defineConfig } from "tsup";
 * import { govTsupConfig } from "../../tooling/tsup-preset";
 *
 * export default defineConfig(govTsupConfig({ entries: ["src/otel.ts"] }));
 * ```
 */
export function govTsupConfig(options: GovTsupOptions = {}): Options {
  const typed = ["src/index.ts", ...(options.entries ?? [])];
  const untyped = options.untypedEntries ?? [];
  return {
    entry: [...typed, ...untyped],
    format: ["esm"],
    dts: untyped.length === 0 ? true : { entry: typed },
    sourcemap: true,
    clean: true,
    target: "node20",
  };
}
