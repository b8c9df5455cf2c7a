// @ts-check
/**
 * Unpacking the embedded database's template: a (gzipped) ustar archive of an initialized
 * data directory. Plain JavaScript, shared by the worker thread and the tests.
 */
import { randomBytes } from "node:crypto";
import {
  closeSync,
  existsSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { dirname, join, normalize, sep } from "node:path";
import { gunzipSync } from "node:zlib";

/**
 * Extract a (possibly gzipped) ustar archive of a data directory into `target`. Only
 * regular files and directories are accepted, and no entry may leave `target`.
 * @param {Buffer} archive
 * @param {string} target
 */
export function extractTar(archive, target) {
  const data = archive[0] === 0x1f && archive[1] === 0x8b ? gunzipSync(archive) : archive;
  mkdirSync(target, { recursive: true, mode: 0o700 });
  let offset = 0;
  /** @type {string | null} */
  let longName = null;
  /** @param {Buffer} block @param {number} start @param {number} length */
  const text = (block, start, length) =>
    block
      .subarray(start, start + length)
      .toString("utf8")
      .replace(/\0[\s\S]*$/, "");
  while (offset + 512 <= data.length) {
    const header = data.subarray(offset, offset + 512);
    if (header.every((byte) => byte === 0)) break;
    const size = Number.parseInt(text(header, 124, 12).trim() || "0", 8);
    const type = String.fromCharCode(header[156] || 48);
    const prefix = text(header, 345, 155);
    const name = longName ?? (prefix ? `${prefix}/${text(header, 0, 100)}` : text(header, 0, 100));
    longName = null;
    const body = data.subarray(offset + 512, offset + 512 + size);
    offset += 512 + Math.ceil(size / 512) * 512;
    if (type === "L") {
      longName = body.toString("utf8").replace(/\0[\s\S]*$/, "");
      continue;
    }
    if (type === "x") {
      const match = /\d+ path=([^\n]*)\n/.exec(body.toString("utf8"));
      if (match?.[1]) longName = match[1];
      continue;
    }
    if (type === "g") continue;
    const relative = normalize(name.replace(/^\/+/, ""));
    if (relative === "." || relative === "") continue;
    if (relative.startsWith("..") || relative.includes(`${sep}..${sep}`)) {
      throw new Error(`refusing archive entry outside the data directory: ${name}`);
    }
    const path = join(target, relative);
    if (type === "5") {
      mkdirSync(path, { recursive: true, mode: 0o700 });
    } else if (type === "0" || type === "\0" || type === "7") {
      mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
      writeSparse(path, body);
    } else {
      throw new Error(`unsupported archive entry type ${JSON.stringify(type)} for ${name}`);
    }
  }
}

const PAGE = 8192;

/**
 * Write `body` to a new file, leaving runs of all-zero pages as holes: a fresh data
 * directory is mostly zeros (a 16 MiB WAL segment, empty relation pages), and not writing
 * them makes the first start several times faster. Reads of a hole return zeros.
 * @param {string} path
 * @param {Buffer} body
 */
export function writeSparse(path, body) {
  if (body.length < 4 * PAGE) {
    writeFileSync(path, body, { mode: 0o600 });
    return;
  }
  const fd = openSync(path, "w", 0o600);
  try {
    ftruncateSync(fd, body.length);
    let start = -1;
    for (let offset = 0; offset < body.length; offset += PAGE) {
      const zero = isZero(body.subarray(offset, Math.min(offset + PAGE, body.length)));
      if (!zero && start < 0) start = offset;
      if (zero && start >= 0) {
        writeSync(fd, body, start, offset - start, start);
        start = -1;
      }
    }
    // The last run reaches the end of the file, which need not be a whole page.
    if (start >= 0) writeSync(fd, body, start, body.length - start, start);
  } finally {
    closeSync(fd);
  }
}

const ZERO_PAGE = Buffer.alloc(PAGE);

/** @param {Buffer} page */
function isZero(page) {
  return page.length === PAGE ? page.equals(ZERO_PAGE) : page.every((byte) => byte === 0);
}

/**
 * Make `directory` a data directory by extracting `template` next to it and renaming it
 * into place, so that a crash never leaves a half-written data directory and concurrent
 * starts agree on one.
 * @param {string} directory
 * @param {string} template
 */
export function materializeFromTemplate(directory, template) {
  const staging = `${directory}.staging-${process.pid}-${randomBytes(4).toString("hex")}`;
  try {
    extractTar(readFileSync(template), staging);
    if (existsSync(directory) && readdirSync(directory).length === 0)
      rmSync(directory, { recursive: true, force: true });
    renameSync(staging, directory);
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}
