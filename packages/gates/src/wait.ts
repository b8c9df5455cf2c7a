import type { Subscription } from "@gov/core";
import { describeError } from "@gov/core";
import { isStale, recoverStaleClaims } from "./claims";
import { ApprovalDenied, ApprovalStoreError, ApprovalTimeout, ApprovalTokenError } from "./errors";
import { GATES_RESOLVED_CHANNEL } from "./events";
import { integrityFailure, requestProblem, verifyDecision } from "./integrity";
import { type RequestRow, readRowRaw } from "./rows";
import type { GatesRuntime } from "./runtime";

/**
 * The shortest time between two reads of one waiter, in milliseconds. A notification is only
 * a wake-up: however many arrive — a role that can connect can send a flood of them — a waiter
 * reads its request at most once per this interval (a genuine decision is seen at most this
 * much later than without a flood).
 */
export const WAKE_READ_SPACING_MS = 50;

/** How often, at most, one waiter repeats a warning about a failing read. */
const WARN_EVERY_MS = 60_000;

interface Waiter {
  woken: boolean;
  wake: () => void;
}

/**
 * The waiters of one module, by request id, and its subscription to
 * {@link GATES_RESOLVED_CHANNEL}: a notification wakes the waiters of the request it names
 * (it is only a wake-up: they read the row again).
 */
export class Waiters {
  readonly #runtime: GatesRuntime;
  readonly #byRequest = new Map<string, Set<Waiter>>();
  #subscription: Subscription | null = null;
  #subscribing: Promise<void> | null = null;
  #listening = false;
  // Elapsed time (performance.now), not wall time: it only spaces out repeated warnings.
  #lastListenWarning = Number.NEGATIVE_INFINITY;

  constructor(runtime: GatesRuntime) {
    this.#runtime = runtime;
  }

  /**
   * Subscribe to resolutions (when the `listen` option is on); from now on a waiter whose
   * subscription failed tries again. A failure is warned and leaves polling.
   */
  async listen(): Promise<void> {
    this.#listening = true;
    await this.ensureListening();
  }

  /** Subscribe if `listen()` was called and there is no subscription yet (or it failed). */
  async ensureListening(): Promise<void> {
    const runtime = this.#runtime;
    if (!this.#listening || !runtime.options.listen || this.#subscription || runtime.closed) return;
    this.#subscribing ??= runtime.store
      .listen(
        GATES_RESOLVED_CHANNEL,
        (payload) => {
          const waiters = this.#byRequest.get(payload);
          if (waiters) for (const waiter of waiters) waiter.wake();
        },
        {
          // Notifications sent while the connection was down are lost: read again now.
          onReconnect: () => this.wakeAll(),
        },
      )
      .then(
        async (subscription) => {
          if (runtime.closed) {
            await subscription.unsubscribe().catch(() => undefined);
            return;
          }
          this.#subscription = subscription;
        },
        (error: unknown) => {
          if (performance.now() - this.#lastListenWarning > WARN_EVERY_MS) {
            this.#lastListenWarning = performance.now();
            runtime.logger.warn(
              "Could not listen for approval decisions; waitFor polls only until it can.",
              { error: describeError(error) },
            );
          }
        },
      )
      .finally(() => {
        this.#subscribing = null;
      });
    await this.#subscribing;
  }

  /** Wake every waiter (a reconnection, or `close()`). */
  wakeAll(): void {
    for (const waiters of this.#byRequest.values()) for (const waiter of waiters) waiter.wake();
  }

  /** Register a waiter for `requestId`; `remove` it when done. */
  add(requestId: string): { waiter: Waiter; remove: () => void } {
    const waiter: Waiter = { woken: false, wake: () => undefined };
    waiter.wake = () => {
      waiter.woken = true;
    };
    let set = this.#byRequest.get(requestId);
    if (!set) {
      set = new Set();
      this.#byRequest.set(requestId, set);
    }
    const registered = set;
    registered.add(waiter);
    return {
      waiter,
      remove: () => {
        registered.delete(waiter);
        if (registered.size === 0 && this.#byRequest.get(requestId) === registered)
          this.#byRequest.delete(requestId);
      },
    };
  }

  /** Stop listening (after `close()` set the runtime closed). */
  async unlisten(): Promise<void> {
    await this.#subscribing?.catch(() => undefined);
    const subscription = this.#subscription;
    this.#subscription = null;
    await subscription?.unsubscribe().catch(() => undefined);
  }
}

/**
 * Wait until the request is resolved (what `GatesModule.waitFor` does, its input validated):
 * true when granted; throws when denied, timed out, expired, unknown, or when the row does not
 * verify. It never decides a request.
 */
export async function waitForDecision(
  runtime: GatesRuntime,
  waiters: Waiters,
  id: string,
  timeoutMs: number | undefined,
  signal: AbortSignal | undefined,
): Promise<true> {
  signal?.throwIfAborted();
  const { waiter, remove } = waiters.add(id);
  try {
    await waiters.ensureListening();
    // Deadlines and read spacing are elapsed time (performance.now), not wall time: a wall
    // clock that jumps must not end or stretch a wait. Expiry is judged by the module's clock.
    const started = performance.now();
    let deadline = timeoutMs === undefined ? null : started + timeoutMs;
    let lastError: unknown;
    let lastWarnAt = Number.NEGATIVE_INFINITY;
    let lastReadAt = Number.NEGATIVE_INFINITY;
    for (;;) {
      // A notification is only a wake-up, and anyone who can connect can send one: however
      // many arrive, this waiter reads at most once per WAKE_READ_SPACING_MS.
      const sinceLastRead = performance.now() - lastReadAt;
      if (sinceLastRead < WAKE_READ_SPACING_MS)
        await pause(WAKE_READ_SPACING_MS - sinceLastRead, signal);
      signal?.throwIfAborted();
      if (runtime.closed)
        throw new ApprovalStoreError("read", id, new Error("the gates module was closed"));
      waiter.woken = false;
      lastReadAt = performance.now();
      let row: RequestRow | null | undefined;
      try {
        row = await readRowRaw(runtime.store, id);
        lastError = undefined;
      } catch (error) {
        lastError = error;
        if (performance.now() - lastWarnAt > WARN_EVERY_MS) {
          lastWarnAt = performance.now();
          runtime.logger.warn(
            "waitFor could not read the request; retrying (it fails closed at its timeout).",
            {
              requestId: id,
              error: describeError(error),
            },
          );
        }
      }
      if (row === null) throw new ApprovalTokenError({ reason: "unknown_request", requestId: id });
      if (row) {
        if (row.status === "granted") {
          verifyDecision(runtime, row);
          return true;
        }
        if (row.status === "denied") {
          verifyDecision(runtime, row);
          throw new ApprovalDenied(id, row.reviewer_id, row.reason);
        }
        if (row.status !== "expired") {
          // Undecided: its expiry (and what it is) must be what was signed when it was made;
          // a row that does not verify can never be granted, so waiting is pointless.
          const problem = requestProblem(runtime.keyring, row);
          if (problem !== null) throw integrityFailure(runtime.logger, id, problem, "request");
        }
        if (isStale(runtime, row, runtime.clock.nowMs())) {
          // Its process died mid-decision: give the claim back (never decide it), read again.
          try {
            if ((await recoverStaleClaims(runtime, { requestId: id, limit: 1 })).length > 0)
              continue;
          } catch (error) {
            lastError = error;
          }
        }
        const expiresAtMs = Date.parse(row.expires_at);
        if (
          row.status === "expired" ||
          (row.status === "pending" && expiresAtMs <= runtime.clock.nowMs())
        )
          throw new ApprovalTimeout({ requestId: id, timeoutMs: timeoutMs ?? 0, expired: true });
        // Without a timeout, wait until the request expires (by the module's clock).
        deadline ??= started + Math.max(0, expiresAtMs - runtime.clock.nowMs());
      }
      const now = performance.now();
      if (deadline !== null && now >= deadline) {
        throw new ApprovalTimeout({
          requestId: id,
          timeoutMs: timeoutMs ?? Math.round(deadline - started),
          expired: false,
          ...(lastError === undefined ? {} : { cause: lastError }),
        });
      }
      const poll = runtime.options.pollIntervalMs * (0.8 + 0.4 * Math.random());
      const wait = deadline === null ? poll : Math.min(poll, deadline - now);
      if (!waiter.woken) await sleep(waiter, wait, signal);
      signal?.throwIfAborted();
    }
  } finally {
    remove();
  }
}

/** Sleep `ms`, or until woken (a notification) or aborted. */
function sleep(waiter: Waiter, ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise<void>((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      waiter.wake = () => {
        waiter.woken = true;
      };
      resolve();
    };
    const timer = setTimeout(done, Math.max(0, ms));
    waiter.wake = () => {
      waiter.woken = true;
      done();
    };
    signal?.addEventListener("abort", done, { once: true });
  });
}

/** Wait `ms`, or less when `signal` aborts. */
function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise<void>((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, Math.max(0, ms));
    signal?.addEventListener("abort", done, { once: true });
  });
}
