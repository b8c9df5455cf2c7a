import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import { StoreError } from "./store-errors";

function workerUrl(): URL {
  // From the sources this file sits beside pglite-worker.js; from the build, chunks sit in
  // dist/ beside it, and entry points one folder below.
  for (const candidate of ["./pglite-worker.js", "../pglite-worker.js"]) {
    const url = new URL(candidate, import.meta.url);
    if (existsSync(fileURLToPath(url))) return url;
  }
  throw new StoreError({
    kind: "connection",
    message:
      "The embedded database's worker script (pglite-worker.js) is missing from the @gov/core installation.",
  });
}

interface WorkerErrorShape {
  name: string;
  message: string;
  code?: string;
  [field: string]: unknown;
}

/** An error reported by PGlite on the worker thread, with the database's fields. */
class PgliteDatabaseError extends Error {
  constructor(shape: WorkerErrorShape) {
    super(shape.message);
    Object.assign(this, shape);
    this.name = shape.name === "error" ? "DatabaseError" : shape.name;
  }
}

interface Pending {
  resolve(value: unknown): void;
  reject(error: unknown): void;
}

type Notify = (channel: string, payload: string) => void;

/**
 * Talks to one PGlite worker thread. Requests carry an id; results come back in any order.
 * When the thread dies every pending request is rejected as a connection failure.
 */
export class PgliteThread {
  readonly #worker: Worker;
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;
  #failure: StoreError | null = null;
  #holds = 0;
  onNotification: Notify | null = null;
  /** Called once if the thread dies without having been terminated. */
  onUnexpectedExit: (() => void) | null = null;

  constructor() {
    this.#worker = new Worker(workerUrl());
    this.#worker.on(
      "message",
      (message: {
        type: string;
        id?: number;
        ok?: boolean;
        value?: unknown;
        error?: WorkerErrorShape;
        channel?: string;
        payload?: string;
      }) => {
        if (message.type === "notification") {
          this.onNotification?.(message.channel ?? "", message.payload ?? "");
          return;
        }
        const pending = message.id === undefined ? undefined : this.#pending.get(message.id);
        if (!pending || message.id === undefined) return;
        this.#pending.delete(message.id);
        this.#updateRef();
        if (message.ok) pending.resolve(message.value);
        else
          pending.reject(
            new PgliteDatabaseError(message.error ?? { name: "Error", message: "unknown failure" }),
          );
      },
    );
    this.#worker.on("error", (error) =>
      this.#fail(`The embedded database's thread failed: ${error.message}`, error),
    );
    this.#worker.on("exit", (code) =>
      this.#fail(`The embedded database's thread exited (code ${code}).`),
    );
  }

  #fail(message: string, cause?: unknown): void {
    if (!this.#failure) {
      // Nothing brings a dead thread back: the store is closed, not retryable.
      this.#failure = new StoreError({
        kind: "closed",
        message: `${message} The store is closed; open it again.`,
        cause,
      });
      const onExit = this.onUnexpectedExit;
      this.onUnexpectedExit = null;
      onExit?.();
    }
    for (const pending of this.#pending.values()) pending.reject(this.#failure);
    this.#pending.clear();
    this.#updateRef();
  }

  call(op: string, payload: unknown): Promise<unknown> {
    if (this.#failure) return Promise.reject(this.#failure);
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#updateRef();
      try {
        this.#worker.postMessage({ id, op, payload });
      } catch (error) {
        // A value that cannot be copied to the thread (a function, a class instance with
        // methods): the request never left, so it must not stay pending.
        this.#pending.delete(id);
        this.#updateRef();
        reject(
          new StoreError({
            kind: "query",
            message: `A query parameter cannot be sent to the embedded database (${(error as Error).name}); pass plain values: strings, numbers, booleans, Dates, Uint8Arrays, arrays and plain objects.`,
            cause: error,
          }),
        );
      }
    });
  }

  /**
   * Keep the host process alive while something waits on the thread (a request, or a
   * notification subscription: `delta` +1 / -1); when idle, the thread does not hold the
   * process open, as pg's `allowExitOnIdle`.
   */
  hold(delta: 1 | -1): void {
    this.#holds = Math.max(0, this.#holds + delta);
    this.#updateRef();
  }

  #updateRef(): void {
    if (this.#pending.size > 0 || this.#holds > 0) this.#worker.ref();
    else this.#worker.unref();
  }

  async terminate(): Promise<void> {
    this.onUnexpectedExit = null;
    this.#failure ??= new StoreError({
      kind: "closed",
      message: "The embedded database is closed.",
    });
    await this.#worker.terminate();
  }
}

/** @internal Run one self-contained task (such as making a template) on a short-lived thread. */
export async function runWorkerTask(op: string, payload: unknown): Promise<unknown> {
  const thread = new PgliteThread();
  try {
    return await thread.call(op, payload);
  } finally {
    await thread.terminate();
  }
}
