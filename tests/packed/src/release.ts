/**
 * The versions the next release gives the packages: changesets' release plan, stamped into
 * the packed tarballs, so that the tarballs this test installs are the ones `changeset
 * version` followed by `pnpm publish` would publish — not the unreleased `0.0.0` of the
 * workspace, whose peer ranges already name the release (`@gov/core: ^0.1.0`).
 * @module
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { cleanEnvironment, runCommand } from "./command";
import type { PublishablePackage } from "./tarballs";

/** One package of changesets' release plan. */
export interface PlannedRelease {
  name: string;
  type: "none" | "patch" | "minor" | "major";
  oldVersion: string;
  newVersion: string;
}

/** `changeset status --output`: what `changeset version` would do now. */
export async function releasePlan(root: string, scratch: string): Promise<PlannedRelease[]> {
  const output = join(scratch, "release-plan.json");
  await runCommand("pnpm", ["exec", "changeset", "status", `--output=${output}`], { cwd: root });
  const plan = JSON.parse(readFileSync(output, "utf8")) as { releases?: PlannedRelease[] };
  return plan.releases ?? [];
}

/**
 * Refuse a plan that would take a package from 0.x to 1.0.0. In changesets that happens when
 * a package's peer range of another package does not include the version the other is
 * released at (the dependent is then given a major release): the first release is 0.1.0 for
 * every package (issue 13), and a 1.0.0 is decided, not fallen into.
 * @throws naming every such package.
 */
export function refuseAccidentalMajors(plan: readonly PlannedRelease[]): void {
  const majors = plan.filter(
    (release) => release.type === "major" && release.oldVersion.startsWith("0."),
  );
  if (majors.length > 0)
    throw new Error(
      `changesets would release ${majors.map((release) => `${release.name} ${release.oldVersion} → ${release.newVersion}`).join(", ")}: a major release of a 0.x package. Usually a peer range of a @gov package does not include the version it is about to be released at; widen the range (e.g. "workspace:^0.1.0") or, if 1.0.0 is meant, change this check.`,
    );
}

/** The version a workspace range of `name` resolves to at release, as `pnpm publish` writes it. */
function publishedRange(spec: string, version: string): string {
  const range = spec.slice("workspace:".length);
  if (range === "*") return version;
  if (range === "^" || range === "~") return `${range}${version}`;
  return range;
}

/**
 * Re-pack `tarball` with the planned versions: its own `version`, and every `workspace:`
 * range of another workspace package (read from the package's own manifest in the
 * workspace) written as `pnpm publish` would write it with the planned versions. What
 * `changeset version` also does and this does not: write the new CHANGELOG.md entries (the
 * tarball ships the current one), which nothing installs or runs. Resolves with the new
 * tarball's path (in `destination`).
 */
export async function stampRelease(
  tarball: string,
  pkg: PublishablePackage,
  versions: ReadonlyMap<string, string>,
  destination: string,
): Promise<string> {
  const unpacked = mkdtempSync(join(destination, ".unpacked-"));
  try {
    await runCommand("tar", ["-xzf", tarball, "-C", unpacked], { cwd: destination });
    const directory = join(unpacked, "package");
    const manifestPath = join(directory, "package.json");
    const manifest = JSON.parse(readFileSync(manifestPath, "utf8")) as Record<string, unknown>;
    const source = JSON.parse(readFileSync(join(pkg.directory, "package.json"), "utf8")) as Record<
      string,
      Record<string, string> | undefined
    >;
    manifest.version = versions.get(pkg.name) ?? pkg.version;
    for (const field of [
      "dependencies",
      "peerDependencies",
      "optionalDependencies",
      "devDependencies",
    ]) {
      const ranges = manifest[field] as Record<string, string> | undefined;
      for (const [name, spec] of Object.entries(source[field] ?? {})) {
        if (!ranges || !spec.startsWith("workspace:")) continue;
        const version = versions.get(name);
        if (version !== undefined) ranges[name] = publishedRange(spec, version);
      }
    }
    writeFileSync(manifestPath, `${JSON.stringify(manifest, null, 2)}\n`);
    mkdirSync(join(destination, "release"), { recursive: true });
    const { stdout } = await runCommand(
      "npm",
      ["pack", "--ignore-scripts", "--json", "--pack-destination", join(destination, "release")],
      { cwd: directory, env: cleanEnvironment() },
    );
    const [packed] = JSON.parse(stdout) as { filename: string }[];
    if (!packed) throw new Error(`npm pack of ${pkg.name} printed no tarball: ${stdout}`);
    return join(destination, "release", packed.filename);
  } finally {
    rmSync(unpacked, { recursive: true, force: true });
  }
}
