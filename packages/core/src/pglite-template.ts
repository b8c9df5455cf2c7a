import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { ConfigError } from "./errors";
import { parseOptions } from "./input";
import { type Logger, loggerSchema } from "./logger";
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

/** The package that runs the embedded database: an optional peer dependency of this one. */
export const PGLITE_PACKAGE = "@electric-sql/pglite";

/**
 * The error for an embedded database without {@link PGLITE_PACKAGE} installed: what to
 * install, or how to use a real Postgres instead (the same shape as the missing-`pg` case).
 */
export function missingPgliteError(): ConfigError {
  return new ConfigError([
    {
      source: "option",
      name: "databaseUrl",
      problem: `is not set, memory://, or a directory, which means the embedded database, but its driver \`${PGLITE_PACKAGE}\` is not installed.`,
      fix: `Install it: npm install ${PGLITE_PACKAGE} (or use @gov/sdk, which includes it); or set GOVERNANCE_DATABASE_URL=postgres://… for a real Postgres.`,
    },
  ]);
}

/**
 * Where {@link PGLITE_PACKAGE} resolves from this package (as the worker thread imports it).
 * @throws {ConfigError} when it is not installed.
 */
function resolvePglite(): string {
  try {
    return createRequire(import.meta.url).resolve(PGLITE_PACKAGE);
  } catch {
    throw missingPgliteError();
  }
}

/**
 * @internal Refuse, before anything is started or created, to open an embedded database
 * without its driver.
 * @throws {ConfigError} when {@link PGLITE_PACKAGE} is not installed.
 */
export function assertPgliteInstalled(): void {
  resolvePglite();
}

let cachedVersion: string | undefined;

/**
 * The version of the installed `@electric-sql/pglite`.
 * @throws {ConfigError} when it is not installed.
 */
export function installedPgliteVersion(): string {
  if (cachedVersion) return cachedVersion;
  let directory = dirname(resolvePglite());
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

const pgliteTemplateOptionsSchema = z.object({
  cacheDirectory: z.union([z.string(), z.literal(false)]).optional(),
  logger: loggerSchema.optional(),
});

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
  const parsed = parseOptions(pgliteTemplateOptionsSchema, options, {
    fixes: { "": "Pass { cacheDirectory?, logger? }, or nothing." },
  });
  const version = installedPgliteVersion();
  const shipped = shippedTemplate(version);
  if (shipped) return shipped;
  if (parsed.cacheDirectory === false) return null;
  const directory = parsed.cacheDirectory ?? defaultTemplateCacheDirectory();
  const file = join(directory, `pglite-${version}.tar.gz`);
  if (existsSync(file)) return file;
  let pending = inflight.get(file);
  if (!pending) {
    pending = (async () => {
      parsed.logger?.info(
        `Preparing the embedded database template for PGlite ${version} (once per machine)…`,
      );
      try {
        await createPgliteTemplate(file);
        return file;
      } catch (error) {
        parsed.logger?.warn(
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
