import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { installedPgliteVersion, PGLITE_PACKAGE, shippedTemplate } from "./pglite-template";

/**
 * The shipped embedded-database template is used only with the exact PGlite version it was
 * made with: PGlite's patch releases have changed what initdb makes (0.4.3 made `postgres` the
 * default database, user and role; 0.4.6 added ICU), so a template is not known to be valid
 * for another patch release. Instead, the version is pinned: the package that brings PGlite
 * to users (@gov/sdk) depends on exactly the version the template is built with.
 */
function manifest(path: string): Record<string, Record<string, string> | undefined> {
  return JSON.parse(readFileSync(new URL(path, import.meta.url), "utf8"));
}

const pinned = manifest("../package.json").devDependencies?.[PGLITE_PACKAGE] as string;

describe("the shipped PGlite template", () => {
  it("is built with an exact PGlite version", () => {
    expect(pinned).toMatch(/^\d+\.\d+\.\d+$/);
    expect(installedPgliteVersion()).toBe(pinned);
  });

  it("is used with that version and refused with any other, even a patch release away", () => {
    const metadata = manifest("../assets/pglite-template.json") as unknown as {
      pgliteVersion: string;
    };
    expect(metadata.pgliteVersion).toBe(pinned);
    expect(shippedTemplate(pinned)).not.toBeNull();
    const [major, minor, patch] = pinned.split(".").map(Number) as [number, number, number];
    expect(shippedTemplate(`${major}.${minor}.${patch + 1}`)).toBeNull();
    expect(shippedTemplate(`${major}.${minor + 1}.0`)).toBeNull();
  });

  it("matches the PGlite that @gov/sdk installs: the SDK pins the same exact version", () => {
    const sdk = manifest("../../sdk/package.json");
    expect(sdk.dependencies?.[PGLITE_PACKAGE]).toBe(pinned);
  });
});
