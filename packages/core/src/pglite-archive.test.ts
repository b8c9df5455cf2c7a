import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { extractTar, writeSparse } from "./pglite-archive.js";
import { ensurePgliteTemplate } from "./pglite-template";

const PAGE = 8192;

function filesUnder(root: string): string[] {
  return readdirSync(root, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => relative(root, join(entry.parentPath, entry.name)))
    .sort();
}

/** A one-entry ustar archive. */
function tarWith(name: string, body: Buffer): Buffer {
  const header = Buffer.alloc(512);
  header.write(name, 0, 100, "utf8");
  header.write("0000600\0", 100);
  header.write("0000000\0", 108);
  header.write("0000000\0", 116);
  header.write(`${body.length.toString(8).padStart(11, "0")}\0`, 124);
  header.write("00000000000\0", 136);
  header.write("0", 156);
  header.write("ustar\0", 257);
  header.write("00", 263);
  header.fill(" ", 148, 156);
  let checksum = 0;
  for (const byte of header) checksum += byte;
  header.write(`${checksum.toString(8).padStart(6, "0")}\0 `, 148);
  const padding = Buffer.alloc((512 - (body.length % 512)) % 512);
  return Buffer.concat([header, body, padding, Buffer.alloc(1024)]);
}

describe("the template archive", () => {
  let directory: string;

  beforeEach(() => {
    directory = mkdtempSync(join(tmpdir(), "gov-archive-"));
  });

  afterEach(() => {
    rmSync(directory, { recursive: true, force: true });
  });

  // Regression: the last non-zero run of a file whose size is not a multiple of the page
  // size was left as a hole, i.e. zeros.
  it.each([
    ["small, written whole", Buffer.alloc(4 * PAGE - 1, 0xab)],
    ["ending in a partial non-zero page", Buffer.alloc(5 * PAGE - 1, 0xff)],
    [
      "zero pages between data, partial tail",
      Buffer.concat([Buffer.alloc(PAGE, 1), Buffer.alloc(3 * PAGE), Buffer.alloc(PAGE + 17, 2)]),
    ],
    ["all zeros", Buffer.alloc(6 * PAGE)],
    [
      "data, then a zero tail",
      Buffer.concat([Buffer.alloc(2 * PAGE, 7), Buffer.alloc(3 * PAGE + 5)]),
    ],
  ])("writes a file %s byte for byte", (_label, body) => {
    const path = join(directory, "file");
    writeSparse(path, body);
    expect(statSync(path).size).toBe(body.length);
    expect(readFileSync(path).equals(body)).toBe(true);
  });

  it("unpacks the database template exactly as tar does", async () => {
    const template = await ensurePgliteTemplate();
    if (!template) throw new Error("no template available");
    const ours = join(directory, "ours");
    const reference = join(directory, "reference");
    extractTar(readFileSync(template), ours);
    execFileSync("mkdir", ["-p", reference]);
    execFileSync("tar", ["-xzf", template, "-C", reference], { stdio: "ignore" });
    const files = filesUnder(reference);
    expect(filesUnder(ours)).toEqual(files);
    const different = files.filter(
      (file) => !readFileSync(join(ours, file)).equals(readFileSync(join(reference, file))),
    );
    expect(different).toEqual([]);
  });

  it("refuses an entry that would land outside the target", () => {
    expect(() =>
      extractTar(tarWith("../escaped", Buffer.from("x")), join(directory, "target")),
    ).toThrow(/outside the data directory/);
  });
});
