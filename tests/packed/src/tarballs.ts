/**
 * The publishable packages of the workspace, built and packed as `pnpm publish` would pack
 * them (`workspace:` ranges replaced by versions, only the `files` shipped).
 * @module
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { runCommand } from "./command";

/** The repository's root. */
export const ROOT = fileURLToPath(new URL("../../../", import.meta.url));

/** A package that is published: under `packages/`, not `private`. */
export interface PublishablePackage {
  name: string;
  version: string;
  directory: string;
}

/** Every publishable package, in directory order. */
export function publishablePackages(root: string = ROOT): PublishablePackage[] {
  const packages: PublishablePackage[] = [];
  for (const entry of readdirSync(join(root, "packages"), { withFileTypes: true })) {
    if (!entry.isDirectory()) continue;
    const directory = join(root, "packages", entry.name);
    let manifest: { name?: string; version?: string; private?: boolean };
    try {
      manifest = JSON.parse(readFileSync(join(directory, "package.json"), "utf8"));
    } catch {
      continue;
    }
    if (manifest.private === true || !manifest.name || !manifest.version) continue;
    packages.push({ name: manifest.name, version: manifest.version, directory });
  }
  return packages;
}

/**
 * Build the packages (through turbo: a no-op when CI built them already) and pack each into
 * `destination`. Resolves with the tarballs' paths.
 */
export async function buildAndPack(
  packages: readonly PublishablePackage[],
  destination: string,
): Promise<string[]> {
  await runCommand(
    "pnpm",
    [
      "exec",
      "turbo",
      "run",
      "build",
      ...packages.map((pkg) => `--filter=${pkg.name}`),
      "--output-logs=errors-only",
    ],
    { cwd: ROOT },
  );
  const packed = await Promise.all(
    packages.map((pkg) =>
      runCommand("pnpm", ["pack", "--pack-destination", destination], { cwd: pkg.directory }),
    ),
  );
  return packed.map(({ stdout }, index) => {
    // pnpm prints the tarball's path on its last line.
    const path = stdout.trim().split("\n").at(-1)?.trim() ?? "";
    if (!path.endsWith(".tgz"))
      throw new Error(`pnpm pack of ${packages[index]?.name} printed no tarball: ${stdout}`);
    return path;
  });
}
