import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { requireOptionsObject } from "./errors";
import type { Logger } from "./logger";
import { runWorkerTask } from "./pglite-thread";

/**
 * PGlite's initdb takes seconds; copying an initialized data directory takes a fraction of
 * that. The build ships such a template in `assets/` (for the PGlite version it was built
 * with); for any other installed version, one is made once per machine and cached.
 */

/** Name of the metadata file beside the shipped template. */
const SHIPPED_METADATA = "pglite-template.json";

interface TemplateMetadata {
  pgliteVersion: string;
  file: string;
}

let cachedVersion: string | undefined;

/** The version of the installed `@electric-sql/pglite`. */
export function installedPgliteVersion(): string {
  if (cachedVersion) return cachedVersion;
  const require = createRequire(import.meta.url);
  let directory = dirname(require.resolve("@electric-sql/pglite"));
  for (let depth = 0; depth < 5; depth++) {
    const candidate = join(directory, "package.json");
    if (existsSync(candidate)) {
      const manifest = JSON.parse(readFileSync(candidate, "utf8")) as {
        name?: string;
        version?: string;
      };
      if (manifest.name === "@electric-sql/pglite" && manifest.version) {
        cachedVersion = manifest.version;
        return manifest.version;
      }
    }
    directory = dirname(directory);
  }
  throw new Error("cannot determine the installed @electric-sql/pglite version");
}

/** The default template cache: `$XDG_CACHE_HOME/gov` or `~/.cache/gov`. */
export function defaultTemplateCacheDirectory(
  env: Record<string, string | undefined> = {},
): string {
  const base = env.XDG_CACHE_HOME || join(homedir(), ".cache");
  return join(base, "gov");
}

/** The `assets/` folder of this package, from the sources or from the build. */
function assetsDirectory(): string {
  return fileURLToPath(new URL("../assets/", import.meta.url));
}

/** @internal The shipped template, when it matches the installed PGlite. */
export function shippedTemplate(version: string): string | null {
  const metadataPath = join(assetsDirectory(), SHIPPED_METADATA);
  if (!existsSync(metadataPath)) return null;
  try {
    const metadata = JSON.parse(readFileSync(metadataPath, "utf8")) as TemplateMetadata;
    const file = join(assetsDirectory(), metadata.file);
    return metadata.pgliteVersion === version && existsSync(file) ? file : null;
  } catch {
    return null;
  }
}

/** Options of {@link ensurePgliteTemplate}. */
export interface PgliteTemplateOptions {
  /** Where to cache a template made on this machine; `false` disables it. */
  cacheDirectory?: string | false | undefined;
  logger?: Logger | undefined;
}

const inflight = new Map<string, Promise<string | null>>();

/**
 * The path of an initialized-database archive for the installed PGlite: the shipped one,
 * else the cached one, else one made now (a single initdb, on a worker thread) and cached.
 * Returns `null` only when none is shipped and caching is disabled or impossible; the
 * embedded database then runs initdb itself.
 */
export async function ensurePgliteTemplate(
  options: PgliteTemplateOptions = {},
): Promise<string | null> {
  requireOptionsObject(options, "options", "Pass { cacheDirectory? }, or nothing.");
  const version = installedPgliteVersion();
  const shipped = shippedTemplate(version);
  if (shipped) return shipped;
  if (options.cacheDirectory === false) return null;
  const directory = options.cacheDirectory ?? defaultTemplateCacheDirectory();
  const file = join(directory, `pglite-${version}.tar.gz`);
  if (existsSync(file)) return file;
  let pending = inflight.get(file);
  if (!pending) {
    pending = (async () => {
      options.logger?.info(
        `Preparing the embedded database template for PGlite ${version} (once per machine)…`,
      );
      try {
        await createPgliteTemplate(file);
        return file;
      } catch (error) {
        options.logger?.warn(
          "Could not cache the embedded database template; each new database will run initdb.",
          {
            directory,
            error,
          },
        );
        return null;
      } finally {
        inflight.delete(file);
      }
    })();
    inflight.set(file, pending);
  }
  return pending;
}

/** Write a fresh initialized-database archive to `output` (atomically). */
export async function createPgliteTemplate(output: string): Promise<{ bytes: number }> {
  return (await runWorkerTask("makeTemplate", { output })) as { bytes: number };
}

/** @internal Used by the build to describe the shipped template. */
export function templateMetadata(file: string): TemplateMetadata {
  return { pgliteVersion: installedPgliteVersion(), file };
}
