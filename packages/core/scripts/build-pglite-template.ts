/**
 * Build step: ship an initialized embedded-database template in assets/, so that a new
 * embedded database starts by unpacking it (a fraction of a second) instead of running
 * PGlite's initdb (several seconds). The template is tied to the PGlite version it was made
 * with; at run time a different installed version falls back to a per-machine cache.
 */
import { existsSync, readFileSync } from "node:fs";
import { copyFile, mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  createPgliteTemplate,
  defaultTemplateCacheDirectory,
  installedPgliteVersion,
  templateMetadata,
} from "../src/pglite-template";

const assets = fileURLToPath(new URL("../assets/", import.meta.url));
const file = "pglite-template.tar.gz";
const metadataPath = join(assets, "pglite-template.json");
const version = installedPgliteVersion();

if (existsSync(metadataPath) && existsSync(join(assets, file))) {
  const current = JSON.parse(readFileSync(metadataPath, "utf8")) as { pgliteVersion?: string };
  if (current.pgliteVersion === version) process.exit(0);
}
await mkdir(assets, { recursive: true });
const cached = join(defaultTemplateCacheDirectory(process.env), `pglite-${version}.tar.gz`);
if (existsSync(cached)) {
  await copyFile(cached, join(assets, file));
} else {
  await createPgliteTemplate(join(assets, file));
}
await writeFile(metadataPath, `${JSON.stringify(templateMetadata(file), null, 2)}\n`);
process.stdout.write(`assets/${file}: embedded database template for PGlite ${version}\n`);
