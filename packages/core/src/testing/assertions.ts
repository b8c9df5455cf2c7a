/**
 * Assertions on what code throws, rejects with, or eventually does.
 * @module
 */

/** Poll until `condition` holds (or fail after `timeoutMs`). */
export async function eventually(
  condition: () => boolean | Promise<boolean>,
  timeoutMs = 10_000,
): Promise<void> {
  const started = Date.now();
  while (!(await condition())) {
    if (Date.now() - started > timeoutMs) throw new Error("condition not met in time");
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/**
 * What `run()`'s promise rejects with, for tests of the rule that a function returning a
 * promise reports bad input by rejecting. Throws (failing the test) when `run` throws
 * synchronously — a caller chaining `.catch()` would miss that — returns no promise, or
 * resolves.
 *
 * @example
 * ```ts
 * const error = await rejectionOf(() => cost.track(agentId, sessionId, null as never));
 * expect(error).toMatchObject({ code: "INVALID_ARGUMENT", field: "options" });
 * ```
 */
export async function rejectionOf(run: () => unknown): Promise<unknown> {
  let result: unknown;
  try {
    result = run();
  } catch (error) {
    throw new Error(`threw synchronously instead of rejecting: ${String(error)}`);
  }
  if (!(result instanceof Promise)) throw new Error("did not return a promise");
  try {
    await result;
  } catch (error) {
    return error;
  }
  throw new Error("resolved instead of rejecting");
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    (typeof value === "object" || typeof value === "function") &&
    value !== null &&
    typeof (value as { then?: unknown }).then === "function"
  );
}

async function rejectionOfPromise(promise: PromiseLike<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error("expected a rejection, but the promise resolved");
}

/**
 * What a call threw, or what a promise rejected with; fails the test (throws) when nothing
 * was thrown. Give it a function that throws synchronously and it answers synchronously;
 * give it a promise, or a function returning one, and it answers with a promise (a
 * function that throws before returning its promise still answers with what it threw,
 * which `await` reads the same). To insist that a function rejects rather than throws,
 * use {@link rejectionOf}.
 *
 * @example
 * ```ts
 * const error = thrown(() => checkId("", "agentId"));
 * const denied = await thrown(scope.check("billing-agent", { tool: "delete_user" }));
 * const halted = await thrown(() => presence.assertAlive("billing-agent"));
 * ```
 */
export function thrown(promise: PromiseLike<unknown>): Promise<unknown>;
export function thrown(run: () => PromiseLike<unknown>): Promise<unknown>;
export function thrown(run: () => unknown): unknown;
export function thrown(run: PromiseLike<unknown> | (() => unknown)): unknown {
  if (isThenable(run)) return rejectionOfPromise(run);
  let result: unknown;
  try {
    result = run();
  } catch (error) {
    return error;
  }
  if (isThenable(result)) return rejectionOfPromise(result);
  throw new Error("expected a throw, but the call returned");
}
