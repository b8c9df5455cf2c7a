import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { sql } from "drizzle-orm";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { type Logger, silentLogger } from "./logger";
import { createStore, type Store } from "./store";
import { PGLITE_DATA_FOLDER, PGLITE_LOCK_FILE } from "./store-pglite";

describe("the embedded database in a directory", () => {
  let home: string;
  const open: Store[] = [];

  beforeEach(async () => {
    home = await mkdtemp(join(tmpdir(), "gov-pglite-"));
  });

  afterEach(async () => {
    await Promise.all(open.splice(0).map((store) => store.close()));
    await rm(home, { recursive: true, force: true });
  });

  async function openStore(
    options: { databaseUrl?: string; cwd?: string; logger?: Logger } = {},
  ): Promise<Store> {
    const store = await createStore({ databaseUrl: home, logger: silentLogger, ...options });
    open.push(store);
    return store;
  }

  it("starts from the initialized template and keeps its data across a restart", async () => {
    const first = await openStore();
    expect(existsSync(join(home, PGLITE_DATA_FOLDER, "PG_VERSION"))).toBe(true);
    expect(first.directory).toBe(home);
    await first.query(sql`create table notes (body text)`);
    await first.query(sql`insert into notes values (${"kept"})`);
    await first.close();
    const second = await openStore();
    expect(await second.query(sql`select body from notes`)).toEqual([{ body: "kept" }]);
  });

  it("refuses a second store on the same directory: two writers would corrupt it", async () => {
    await openStore();
    await expect(openStore()).rejects.toMatchObject({ code: "STORE_LOCKED", kind: "locked" });
  });

  it("takes over a lock left by a process that no longer runs", async () => {
    const first = await openStore();
    await first.close();
    const { hostname } = await import("node:os");
    await writeFile(
      join(home, PGLITE_LOCK_FILE),
      JSON.stringify({ pid: 2 ** 22 + 12345, host: hostname(), since: "then" }),
    );
    const store = await openStore();
    expect((await store.health()).ok).toBe(true);
  });

  // Regression: a container restarted with the same pid found its own old lock and was
  // locked out forever.
  it("takes over a lock that names this process but no store of it holds", async () => {
    const { hostname } = await import("node:os");
    await writeFile(
      join(home, PGLITE_LOCK_FILE),
      JSON.stringify({ pid: process.pid, host: hostname(), nonce: "old", since: "then" }),
    );
    const store = await openStore();
    expect((await store.health()).ok).toBe(true);
  });

  it("treats an empty lock file as being written, until it is old", async () => {
    const lockPath = join(home, PGLITE_LOCK_FILE);
    await writeFile(lockPath, "");
    await expect(openStore()).rejects.toMatchObject({ code: "STORE_LOCKED" });
    const old = new Date(Date.now() - 60_000);
    await utimes(lockPath, old, old);
    const store = await openStore();
    expect((await store.health()).ok).toBe(true);
  });

  it("lets exactly one of several processes racing for a stale lock open the database", async () => {
    const { hostname } = await import("node:os");
    const first = await openStore();
    await first.close();
    await writeFile(
      join(home, PGLITE_LOCK_FILE),
      JSON.stringify({ pid: 2 ** 22 + 777, host: hostname(), since: "then" }),
    );
    const goFile = join(home, "go");
    const child = fileURLToPath(new URL("./__fixtures__/lock-child.ts", import.meta.url));
    const children = Array.from({ length: 5 }, () => {
      const handle = spawn(process.execPath, ["--import", "tsx", child, home, goFile], {
        cwd: fileURLToPath(new URL("..", import.meta.url)),
        stdio: ["ignore", "pipe", "inherit"],
      });
      let stdout = "";
      const ready = new Promise<void>((resolve) => {
        handle.stdout.on("data", (chunk: Buffer) => {
          stdout += chunk.toString();
          if (stdout.includes("ready")) resolve();
        });
      });
      const done = new Promise<string>((resolve) => handle.on("close", () => resolve(stdout)));
      return { ready, done };
    });
    await Promise.all(children.map((each) => each.ready));
    await writeFile(goFile, "go");
    const outcomes = (await Promise.all(children.map((each) => each.done))).map((out) =>
      out.replace("ready", "").trim(),
    );
    expect(outcomes.filter((outcome) => outcome === "opened")).toHaveLength(1);
    expect(outcomes.filter((outcome) => outcome === "STORE_LOCKED")).toHaveLength(4);
  });

  it("releases its lock on close", async () => {
    const store = await openStore();
    expect(existsSync(join(home, PGLITE_LOCK_FILE))).toBe(true);
    await store.close();
    expect(existsSync(join(home, PGLITE_LOCK_FILE))).toBe(false);
  });

  it("uses ./.governance when no URL is given, and says so in one line", async () => {
    const lines: string[] = [];
    const logger: Logger = { ...silentLogger, info: (message) => lines.push(message) };
    const store = await createStore({ cwd: home, logger });
    open.push(store);
    expect(store.directory).toBe(join(home, ".governance"));
    expect(lines.filter((line) => line.includes("No database URL given"))).toHaveLength(1);
    expect(lines[0]).toContain("GOVERNANCE_DATABASE_URL");
  });

  it("keeps the host's event loop turning while it works", async () => {
    const store = await openStore();
    await store.query(sql`create table rows (id int, body text)`);
    let ticks = 0;
    let running = true;
    const spin = () => {
      ticks++;
      if (running) setImmediate(spin);
    };
    setImmediate(spin);
    for (let index = 0; index < 300; index++) {
      await store.query(sql`insert into rows values (${index}, ${"x".repeat(100)})`);
    }
    running = false;
    // On the host's thread, the awaits of an in-process database resolve as microtasks and
    // no setImmediate callback would run until the loop ends.
    expect(ticks).toBeGreaterThan(100);
  });

  it("does not hold the host process open while idle, as pg's allowExitOnIdle", async () => {
    const child = fileURLToPath(new URL("./__fixtures__/idle-exit-child.ts", import.meta.url));
    const result = await new Promise<{ code: number | null; stdout: string }>((resolve, reject) => {
      const processHandle = spawn(process.execPath, ["--import", "tsx", child], {
        cwd: fileURLToPath(new URL("..", import.meta.url)),
        stdio: ["ignore", "pipe", "inherit"],
      });
      let stdout = "";
      processHandle.stdout.on("data", (chunk: Buffer) => {
        stdout += chunk.toString();
      });
      // Not a speed limit: a process held open by the thread would never exit at all. A CI
      // machine running every suite at once has taken more than 45 s to boot the child.
      const timer = setTimeout(() => {
        processHandle.kill();
        reject(new Error("the process did not exit on its own"));
      }, 110_000);
      processHandle.on("close", (code) => {
        clearTimeout(timer);
        resolve({ code, stdout });
      });
    });
    expect(result).toEqual({ code: 0, stdout: '[{"one":1}]\n' });
  });
});

describe("the embedded database in production", () => {
  // Guards against running production on PGlite (fsync off) without being told.
  it("warns once per process that it is for development, and not outside production", async () => {
    vi.resetModules();
    const { createStore: freshCreateStore, EMBEDDED_IN_PRODUCTION_WARNING } = await import(
      "./store"
    );
    const { recordingLogger } = await import("./testing");
    const logger = recordingLogger();
    const development = await freshCreateStore({ databaseUrl: "memory://", logger });
    await development.close();
    expect(logger.lines.filter((line) => line.level === "warn")).toEqual([]);
    for (let start = 0; start < 2; start++) {
      const store = await freshCreateStore({ databaseUrl: "memory://", logger, production: true });
      await store.close();
    }
    const warnings = logger.lines.filter((line) => line.level === "warn");
    expect(warnings.map((line) => line.message)).toEqual([EMBEDDED_IN_PRODUCTION_WARNING]);
    expect(EMBEDDED_IN_PRODUCTION_WARNING).toMatch(/fsync off/);
    expect(EMBEDDED_IN_PRODUCTION_WARNING).toMatch(/GOVERNANCE_DATABASE_URL/);
  });
});
