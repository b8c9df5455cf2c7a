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
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  writeFileSync,
} from "node:fs";
import { readFile } from "node:fs/promises";
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { parentPort } from "node:worker_threads";
import { PGlite } from "@electric-sql/pglite";
import { materializeFromTemplate } from "./pglite-archive.js";

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
 * Start compiling PGlite's WebAssembly and reading its file bundle. Falls back to letting
 * PGlite load them itself if they cannot be found.
 * @returns {Promise<{ pgliteWasmModule?: any, fsBundle?: Blob }>}
 */
async function prepareRuntime() {
  try {
    const wasm = fileURLToPath(import.meta.resolve("@electric-sql/pglite/pglite.wasm"));
    const data = fileURLToPath(import.meta.resolve("@electric-sql/pglite/pglite.data"));
    const [pgliteWasmModule, fsBundle] = await Promise.all([
      // `WebAssembly` is a global of Node; the DOM-less typings here do not declare it.
      readFile(wasm).then((bytes) => /** @type {any} */ (globalThis).WebAssembly.compile(bytes)),
      readFile(data).then((bytes) => new Blob([bytes])),
    ]);
    return { pgliteWasmModule, fsBundle };
  } catch {
    return {};
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
      // Compile Postgres' WebAssembly on V8's background threads while this thread unpacks
      // the template: the two no longer wait for each other.
      const prepared = prepareRuntime();
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
      Object.assign(options, await prepared);
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
