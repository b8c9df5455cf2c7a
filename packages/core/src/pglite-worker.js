// @ts-check
/**
 * The embedded database's thread. PGlite runs Postgres compiled to WebAssembly inside the
 * process that calls it: a loop of statements would hold the host's event loop for as long
 * as the loop runs. Here it runs on a worker thread instead, and the host only passes
 * messages (see store-pglite.ts for the other side of this protocol).
 *
 * Written in plain JavaScript so that the same file runs from the sources (tests, editors)
 * and from the build.
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
import { parentPort } from "node:worker_threads";
import { gunzipSync } from "node:zlib";
import { PGlite } from "@electric-sql/pglite";

if (!parentPort) throw new Error("pglite-worker.js must run as a worker thread");
const port = parentPort;

/** @type {PGlite | null} */
let db = null;

/** @param {unknown} error */
function serializeError(error) {
  const source = /** @type {Record<string, unknown>} */ (
    typeof error === "object" && error !== null ? error : {}
  );
  /** @type {Record<string, unknown>} */
  const out = {
    name: typeof source.name === "string" ? source.name : "Error",
    message: typeof source.message === "string" ? source.message : String(error),
  };
  for (const key of [
    "code",
    "severity",
    "detail",
    "hint",
    "position",
    "schema",
    "table",
    "column",
    "dataType",
    "constraint",
    "where",
    "routine",
  ]) {
    if (source[key] !== undefined) out[key] = source[key];
  }
  return out;
}

/**
 * Extract a (possibly gzipped) ustar archive of a data directory into `target`. Only
 * regular files and directories are accepted, and no entry may leave `target`.
 * @param {Buffer} archive
 * @param {string} target
 */
function extractTar(archive, target) {
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
function writeSparse(path, body) {
  if (body.length < 4 * PAGE) {
    writeFileSync(path, body, { mode: 0o600 });
    return;
  }
  const fd = openSync(path, "w", 0o600);
  try {
    ftruncateSync(fd, body.length);
    let start = -1;
    for (let offset = 0; offset <= body.length; offset += PAGE) {
      const page =
        offset < body.length ? body.subarray(offset, Math.min(offset + PAGE, body.length)) : null;
      const zero = page === null || isZero(page);
      if (!zero && start < 0) start = offset;
      if (zero && start >= 0) {
        writeSync(fd, body, start, offset - start, start);
        start = -1;
      }
    }
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
function materializeFromTemplate(directory, template) {
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

/** @param {string | null} directory */
function isEmptyDirectory(directory) {
  return directory !== null && (!existsSync(directory) || readdirSync(directory).length === 0);
}

/**
 * @param {string} op
 * @param {any} payload
 * @returns {Promise<{ value: unknown, transfer?: ArrayBuffer[] }>}
 */
async function handle(op, payload) {
  switch (op) {
    case "init": {
      const { directory, template, relaxedDurability } = payload;
      let fromTemplate = false;
      let initdb = false;
      /** @type {import("@electric-sql/pglite").PGliteOptions} */
      const options = { relaxedDurability: Boolean(relaxedDurability) };
      if (directory === null) {
        if (template) {
          options.loadDataDir = new Blob([readFileSync(template)]);
          fromTemplate = true;
        } else {
          initdb = true;
        }
      } else if (isEmptyDirectory(directory)) {
        if (template) {
          materializeFromTemplate(directory, template);
          fromTemplate = true;
        } else {
          initdb = true;
        }
      }
      db = await PGlite.create(directory ?? "memory://", options);
      db.onNotification((channel, notificationPayload) => {
        port.postMessage({ type: "notification", channel, payload: notificationPayload });
      });
      const version = await db.query("select current_setting('server_version') as version");
      const row = /** @type {{ version: string } | undefined} */ (version.rows[0]);
      return { value: { serverVersion: row?.version ?? "unknown", fromTemplate, initdb } };
    }
    case "query": {
      if (!db) throw new Error("the embedded database is not open");
      /** @type {Record<number, (value: string) => string>} */
      const parsers = {};
      for (const oid of payload.rawTypes ?? []) parsers[oid] = (value) => value;
      const result = await db.query(payload.sql, payload.params ?? [], {
        rowMode: payload.rowMode ?? "object",
        parsers,
      });
      return {
        value: { rows: result.rows, fields: result.fields, affectedRows: result.affectedRows },
      };
    }
    case "exec": {
      if (!db) throw new Error("the embedded database is not open");
      const results = await db.exec(payload.sql);
      return {
        value: results.map((result) => ({
          rows: result.rows,
          fields: result.fields,
          affectedRows: result.affectedRows,
        })),
      };
    }
    case "dump": {
      if (!db) throw new Error("the embedded database is not open");
      const blob = await db.dumpDataDir(payload.compression ?? "gzip");
      const buffer = await blob.arrayBuffer();
      return { value: buffer, transfer: [buffer] };
    }
    case "makeTemplate": {
      // A fresh, empty database (initdb), archived for later first starts.
      const fresh = await PGlite.create("memory://");
      try {
        const blob = await fresh.dumpDataDir("gzip");
        const bytes = Buffer.from(await blob.arrayBuffer());
        mkdirSync(dirname(payload.output), { recursive: true });
        const staging = `${payload.output}.${process.pid}-${randomBytes(4).toString("hex")}.tmp`;
        writeFileSync(staging, bytes);
        renameSync(staging, payload.output);
        return { value: { bytes: bytes.length } };
      } finally {
        await fresh.close();
      }
    }
    case "close": {
      if (db) {
        const open = db;
        db = null;
        await open.close();
      }
      return { value: null };
    }
    default:
      throw new Error(`unknown operation ${op}`);
  }
}

port.on("message", (/** @type {{ id: number, op: string, payload: unknown }} */ message) => {
  handle(message.op, message.payload).then(
    ({ value, transfer }) =>
      port.postMessage({ type: "result", id: message.id, ok: true, value }, transfer ?? []),
    (error) =>
      port.postMessage({ type: "result", id: message.id, ok: false, error: serializeError(error) }),
  );
});
