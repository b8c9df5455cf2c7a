import {
  InvalidArgumentError,
  noopAuditSink,
  noopHaltGuard,
  noopOperatorDirectory,
  requirePort,
} from "@gov/core";
import { expireRequests } from "./claims";
import { type DecisionInput, decide } from "./decision";
import { ApprovalStoreError, InvalidGatesInputError } from "./errors";
import { gateFunction, verifyExecution } from "./execution";
import {
  agentIdSchema,
  denyOptionsSchema,
  expirePendingOptionsSchema,
  findRequestSchema,
  type GatesOptions,
  gatesOptionsSchema,
  grantOptionsSchema,
  kindSchema,
  listPendingOptionsSchema,
  payloadSchema,
  requestIdSchema,
  requestOptionsSchema,
  requireApprovalOptionsSchema,
  validate,
  validateOptions,
  verifyActionOptionsSchema,
  waitForOptionsSchema,
} from "./models";
import { findRequestByKey, listPendingRequests, readRequest } from "./reads";
import { type ApprovalRequest, openRequest } from "./request";
import type { GatesRuntime } from "./runtime";
import type {
  ApprovalDecision,
  ApprovalGatedFunction,
  ApprovalRecord,
  DenyOptions,
  FindRequestOptions,
  GatesContext,
  GrantOptions,
  ListPendingOptions,
  PendingApproval,
  RequestOptions,
  RequireApprovalOptions,
  VerifyActionOptions,
  WaitForOptions,
} from "./types";
import { Waiters, waitForDecision } from "./wait";

/** How much longer than `auditTimeoutMs` `close()` waits for decisions in flight. */
const CLOSE_GRACE_MS = 5_000;

/** The options `grant` and `deny` cannot do without, as their refusal shows them. */
const REVIEWER_EXAMPLE = '{ reviewerId: "alice@company.com" }';

/**
 * Human approval requests with signed, single-use, action-bound tokens.
 *
 * - `request()` (observation surface; the halt check first) opens a request and returns its
 *   token; a store failure is logged and recorded, never thrown.
 * - `grant()` / `deny()` verify the token (format, key, MAC in constant time, expiry,
 *   action hash), refuse self-approval, and resolve the request exactly once.
 * - `waitFor()` (enforcement surface) wakes on Postgres NOTIFY, polls as the fallback, and
 *   never decides a request.
 * - `verifyAction()` / `requireApproval()` run an approval once: only the kind, agent and
 *   payload it was made for, before the request expires.
 *
 * The boundary is the token: whoever holds it can decide the request under any reviewer id.
 * Deliver it to reviewers only, and take `reviewerId` from the reviewer's authenticated
 * session (see the README).
 *
 * @example
 * ```ts
 * const request = await gates.request("deploy.production", "deploy-agent", {
 *   payload: { pr: 142, environment: "production" },
 * });
 * await notifyReviewer(request.token); // Slack, e-mail, the console…
 * // elsewhere, the reviewer:
 * await gates.grant(token, { reviewerId: "alice@company.com" });
 * // the agent:
 * await gates.waitFor(request.requestId, { timeoutMs: 600_000 }); // true, or throws
 * ```
 */
export class GatesModule {
  readonly #runtime: GatesRuntime;
  readonly #waiters: Waiters;
  /** Decisions in progress (`grant` / `deny`), which `close()` waits for. */
  readonly #inflight = new Set<Promise<unknown>>();
  #started = false;
  #warnedNotStarted = false;
  #closed = false;

  /**
   * @param context the store, keyring, clock and logger, and the ports: `audit` (decisions
   *   are recorded there; no-op when absent), `halt` (checked by `request()`; no-op when
   *   absent) and `operators` (who answers for each agent, for the self-approval rule; none
   *   known when absent).
   * @param options see {@link GatesOptions}.
   * @throws {InvalidArgumentError} (core's) for a missing or malformed context field.
   * @throws {InvalidGatesInputError} for a bad option.
   */
  constructor(context: GatesContext, options: GatesOptions = {}) {
    if (typeof context !== "object" || context === null) {
      throw new InvalidArgumentError(
        "context",
        `must be an object, got ${context === null ? "null" : typeof context}.`,
        "Pass a context { store, keyring, clock, logger, audit?, halt?, operators? } (a ModuleContext); @gov/sdk wires it for you.",
      );
    }
    requirePort(
      context.store,
      "store",
      ["query", "transaction", "listen"],
      "a @gov/core Store (createStore)",
    );
    requirePort(context.keyring, "keyring", ["find"], "a Keyring (the keys that sign tokens)");
    requirePort(context.clock, "clock", ["now", "nowMs"], "a Clock (e.g. systemClock)");
    requirePort(
      context.logger,
      "logger",
      ["debug", "info", "warn", "error"],
      "a Logger (e.g. silentLogger)",
    );
    requirePort(context.audit, "audit", ["log"], "an AuditSink (noopAuditSink records nothing)", {
      optional: true,
    });
    requirePort(
      context.halt,
      "halt",
      ["assertAlive"],
      "a HaltGuard (noopHaltGuard when there is no presence module)",
      {
        optional: true,
      },
    );
    requirePort(
      context.operators,
      "operators",
      ["operatorOf"],
      "an OperatorDirectory (noopOperatorDirectory when there is no presence module)",
      { optional: true },
    );
    const parsed = validateOptions(gatesOptionsSchema, options);
    const module = this;
    this.#runtime = {
      store: context.store,
      keyring: context.keyring,
      clock: context.clock,
      logger: context.logger,
      audit: context.audit ?? noopAuditSink,
      halt: context.halt ?? noopHaltGuard,
      operators: context.operators ?? noopOperatorDirectory,
      options: parsed,
      get closed() {
        return module.#closed;
      },
    };
    this.#waiters = new Waiters(this.#runtime);
    if (parsed.staleClaimMs <= parsed.auditTimeoutMs) {
      throw new InvalidGatesInputError(
        "options.staleClaimMs",
        `is ${parsed.staleClaimMs} ms, not more than auditTimeoutMs (${parsed.auditTimeoutMs} ms): a claim whose audit write is still within its time would be presumed abandoned.`,
        "Make staleClaimMs well above auditTimeoutMs (defaults: 60000 and 5000).",
      );
    }
    if (!parsed.enableV2Tokens) {
      const until = parsed.acceptV1Until;
      if (until === null || until.getTime() <= context.clock.nowMs()) {
        throw new InvalidGatesInputError(
          "options.enableV2Tokens",
          `is false, so legacy v1 tokens would be minted, but v1 tokens are ${until === null ? "never accepted (acceptV1Until: null)" : `no longer accepted (acceptV1Until ${until.toISOString()} has passed)`}: every token would be refused.`,
          "Leave enableV2Tokens at true (the default), or set acceptV1Until (GOVERNANCE_GATES_ACCEPT_V1_UNTIL) to a later date during the migration.",
        );
      }
      context.logger.warn(
        `The gates module mints legacy v1 tokens (enableV2Tokens: false); they do not survive a key rotation and stop verifying at ${until.toISOString()}. Switch to v2 tokens.`,
      );
    }
  }

  /**
   * Start the module: subscribe to resolutions (`gov_gates_resolved`, when `listen` is on), so
   * that `waitFor` wakes on a decision instead of only polling. Call it once after
   * construction (`gatesModule.create` and `@gov/sdk` do); later calls do nothing, nor does a
   * call after `close()`. Never rejects: a subscription that fails is warned about, `waitFor`
   * polls, and tries to subscribe again.
   *
   * @example
   * ```ts
   * const gates = new GatesModule({ store, keyring, clock: systemClock, logger });
   * await gates.start();
   * ```
   */
  async start(): Promise<void> {
    if (this.#started || this.#closed) return;
    this.#started = true;
    await this.#waiters.listen();
  }

  // ---------------------------------------------------------------------------------------
  // Requests (observation)

  /**
   * Open an approval request and return it with its signed token. The halt check comes
   * first (`AgentHaltedError`). The operator bound to the agent now is stored with the
   * request: they may not grant it, even after the agent is bound to another operator (when
   * the lookup fails, the request can be denied but not granted). A store failure does not
   * throw: the request is returned with `stored: false`, a warning is logged and
   * `approval.request_failed` recorded; its token will be refused. A stored request is
   * recorded as `approval.requested`. With a `key`, {@link findRequest} finds the request again
   * from any process; a key the agent already used for this kind is refused.
   *
   * @example
   * ```ts
   * const request = await gates.request("deploy.production", "deploy-agent", {
   *   payload: { pr: 142, environment: "production" },
   *   expiresInMs: 15 * 60_000,
   *   key: "deploy-142", // optional: findRequest finds it by this, from any process
   * });
   * await slack.send(reviewers, `Approve deploy #142: ${request.token}`);
   * ```
   * @throws {AgentHaltedError} the agent is halted (nothing was stored).
   * @throws {ApprovalKeyInUseError} the agent already made a request of this kind with this
   *   key; nothing was stored or recorded, and no token is returned.
   * @throws {InvalidGatesInputError} bad input; nothing was checked or stored.
   */
  async request(
    kind: string,
    agentId: string,
    options: RequestOptions = {},
  ): Promise<ApprovalRequest> {
    const checkedKind = validate(kindSchema, kind, "kind");
    const id = validate(agentIdSchema, agentId, "agentId");
    const parsed = validateOptions(requestOptionsSchema, options);
    return openRequest(this.#runtime, checkedKind, id, parsed);
  }

  // ---------------------------------------------------------------------------------------
  // Resolution

  /**
   * Grant a request with its token. Single-use: of concurrent grants and denials of one
   * request, exactly one wins; the others are refused `already_used`, or `in_progress` while
   * the winner's audit event is being written (retry: that decision may yet be released). A
   * claim abandoned for longer than `staleClaimMs` is released first. Refuses a reviewer who
   * is the agent or its operator, at request time or now (`SelfApprovalError`), and fails
   * closed when the operator cannot be looked up. No halt check: a reviewer may resolve a
   * request made before a halt. Recorded as `approval.granted` before any waiter can see the
   * grant; the audit write is bounded by `auditTimeoutMs`.
   *
   * @example
   * ```ts
   * await gates.grant(token, { reviewerId: "alice@company.com" });
   * ```
   * @throws {ApprovalTokenError} the token was refused (see `reason`); {@link TokenVersionTooOldError} for v1 after the cut-off.
   * @throws {SelfApprovalError} / {@link SelfApprovalUnverifiableError} the reviewer may not (or cannot be shown to be allowed to) grant.
   * @throws {ApprovalNotRecordedError} the audit event could not be written in time; the claim was released.
   * @throws {ApprovalStoreError} the database could not be reached, the module is closed, or
   *   (`publish`) the claim was recovered as stale before it could be published.
   * @throws {InvalidGatesInputError} bad input; nothing was read or written.
   */
  async grant(token: string, options: GrantOptions): Promise<ApprovalDecision> {
    const checked = validateOptions(grantOptionsSchema, options, { required: REVIEWER_EXAMPLE });
    return this.#resolve("granted", token, {
      reviewerId: checked.reviewerId,
      reason: checked.reason ?? null,
      payload: checked.payload,
    });
  }

  /**
   * Deny a request with its token (single-use, as {@link grant}). The agent's waiter throws
   * `ApprovalDenied` with the reason. Recorded as `approval.denied`. Self-approval rules do
   * not apply to a denial.
   *
   * @example
   * ```ts
   * await gates.deny(token, { reviewerId: "bob@company.com", reason: "not during the freeze" });
   * ```
   * @throws the same errors as {@link grant}, except the self-approval ones.
   */
  async deny(token: string, options: DenyOptions): Promise<ApprovalDecision> {
    const checked = validateOptions(denyOptionsSchema, options, { required: REVIEWER_EXAMPLE });
    return this.#resolve("denied", token, {
      reviewerId: checked.reviewerId,
      reason: checked.reason,
      payload: checked.payload,
    });
  }

  async #resolve(
    decision: "granted" | "denied",
    token: unknown,
    input: DecisionInput,
  ): Promise<ApprovalDecision> {
    if (typeof token !== "string") {
      throw new InvalidGatesInputError(
        "token",
        `must be a string, got ${token === null ? "null" : typeof token}.`,
        "Pass the token that request() returned, as a string.",
      );
    }
    if (this.#closed)
      throw new ApprovalStoreError("claim", null, new Error("the gates module is closed"));
    // close() waits for this decision, so that it is never left half made.
    const work = decide(this.#runtime, decision, token, input);
    this.#inflight.add(work);
    try {
      return await work;
    } finally {
      this.#inflight.delete(work);
    }
  }

  // ---------------------------------------------------------------------------------------
  // Waiting (enforcement)

  /**
   * Wait until the request is resolved: resolves `true` when granted, throws
   * `ApprovalDenied` when denied and `ApprovalTimeout` when the timeout passes or the
   * request expires first. Works across processes: it wakes on the NOTIFY that a grant or
   * denial sends on commit (`gov_gates_resolved`) and polls every `pollIntervalMs` (±20 %)
   * as the fallback. It subscribes before its first read, so a decision made in between is
   * not missed. It never grants or denies: the only write it makes is releasing a claim
   * abandoned for longer than `staleClaimMs` (back to pending, or expired). A notification is
   * only a wake-up (its payload is never believed): the waiter reads the row again, at most
   * once per {@link WAKE_READ_SPACING_MS} however many arrive. A stored decision that does
   * not verify under the keyring, or an undecided request that does not match what was signed
   * when it was made, is refused (`ApprovalIntegrityError`).
   *
   * @example
   * ```ts
   * await gates.waitFor(request.requestId, { timeoutMs: 10 * 60_000 });
   * // if this line runs, a human approved the action
   * ```
   * @throws {ApprovalDenied} / {@link ApprovalTimeout} / {@link ApprovalIntegrityError}
   * @throws {ApprovalTokenError} `unknown_request` when no such request is stored.
   * @throws {InvalidGatesInputError} bad input.
   */
  async waitFor(requestId: string, options: WaitForOptions = {}): Promise<true> {
    const id = validate(requestIdSchema, requestId, "requestId");
    const { timeoutMs, signal } = validateOptions(waitForOptionsSchema, options);
    if (!this.#started && !this.#warnedNotStarted) {
      this.#warnedNotStarted = true;
      this.#runtime.logger.warn(
        "waitFor was called on a gates module that was not started: it polls only (every pollIntervalMs) and does not wake on a decision's NOTIFY. Call await gates.start() after constructing it.",
      );
    }
    return waitForDecision(this.#runtime, this.#waiters, id, timeoutMs, signal);
  }

  // ---------------------------------------------------------------------------------------
  // Execution

  /**
   * Check, at execution time, that the action about to run is the one that was approved,
   * and — unless `consume: false` — mark the approval executed, atomically, so that it runs
   * once. Refused unless the request is granted (with a decision that verifies), of the
   * expected `kind` and by the expected `agentId` when given (pass them: an approval for one
   * action must not run another), `payload` hashes to its action hash, it has not been
   * executed before, and it has not expired: an approval is good for one execution before
   * the request's `expiresAt` (choose `expiresInMs` to cover the decision and the execution).
   * Each refusal for a mismatch, a second execution, an expiry or a decision that does not
   * verify is recorded as `approval.refused` (`attempt: "execute"`); each execution as
   * `approval.executed`. Of concurrent consuming calls, exactly one succeeds.
   *
   * @example
   * ```ts
   * await gates.verifyAction(requestId, { pr: 142, environment: "production" }, {
   *   kind: "deploy.production",
   *   agentId: "deploy-agent",
   * });
   * await deploy(142); // once: a second verifyAction is refused already_executed
   * ```
   * @returns the decision.
   * @throws {ApprovalTokenError} `request_mismatch`, `action_hash_mismatch`,
   *   `already_executed`, `expired` or `unknown_request`.
   * @throws {ApprovalPending} not decided yet. @throws {ApprovalDenied} denied.
   * @throws {ApprovalTimeout} expired undecided. @throws {ApprovalIntegrityError} the stored decision does not verify (changed in the table, or a grant signed in an earlier version's format).
   * @throws {ApprovalStoreError} the database could not be reached (nothing was executed).
   */
  async verifyAction(
    requestId: string,
    payload: unknown,
    options: VerifyActionOptions = {},
  ): Promise<ApprovalDecision> {
    const id = validate(requestIdSchema, requestId, "requestId");
    const checked = validate(payloadSchema, payload, "payload");
    const expected = validateOptions(verifyActionOptionsSchema, options);
    return verifyExecution(this.#runtime, id, checked, expected);
  }

  /**
   * Wrap a function behind a human approval. Each call opens a request (payload: the call's
   * arguments, or `options.payload(...args)`), hands it to `onRequest` to deliver the token,
   * then — blocking — waits for the decision and runs the function once granted; or —
   * non-blocking — throws `ApprovalPending(requestId)`, and `resume(requestId, …args)` runs
   * it later. Either way the approved action runs at most once, only with the arguments
   * that were approved, only for a request of this wrapper's `kind` and `agentId`, and only
   * before the request expires.
   *
   * @example
   * ```ts
   * const refund = gates.requireApproval(
   *   { kind: "refund.issue", agentId: "billing-agent", timeoutMs: 600_000, onRequest: (r) => slack.send(r.token) },
   *   async (customerId: string, amountUsd: number) => stripe.refund(customerId, amountUsd),
   * );
   * await refund("cus_42", 120); // waits for a human, then refunds
   * ```
   * @throws {InvalidGatesInputError} at wrap time, for bad options or a non-function.
   */
  requireApproval<Args extends unknown[], Result>(
    options: RequireApprovalOptions<Args>,
    fn: (...args: Args) => Result,
  ): ApprovalGatedFunction<Args, Result> {
    const checked = validateOptions(requireApprovalOptionsSchema, options, {
      required:
        '{ kind: "payment.refund", agentId: "billing-agent", payload: (customer, amount) => ({ customer, amount }) }',
    });
    if (typeof fn !== "function") {
      throw new InvalidGatesInputError(
        "fn",
        `must be a function, got ${fn === null ? "null" : typeof fn}.`,
        "Pass the function that performs the action.",
      );
    }
    return gateFunction(this, checked, fn);
  }

  // ---------------------------------------------------------------------------------------
  // Console and CLI

  /**
   * Requests waiting for a decision (pending and not yet expired by the module's clock —
   * including claims abandoned for longer than `staleClaimMs`, which a decision recovers),
   * oldest first, at most 500, with their payloads for the reviewer to read. Each payload is
   * re-hashed: one that no longer matches its action hash is withheld (`payload: null`,
   * `payloadIntact: false`) and an error is logged. Each request is checked against its
   * request MAC: one changed in the database (its kind, agent, expiry, operator…), or made by
   * an earlier version, has `requestIntact: false` — it cannot be granted; deny it.
   * @throws {ApprovalStoreError} the database could not be read.
   */
  async listPending(options: ListPendingOptions = {}): Promise<PendingApproval[]> {
    const filter = validateOptions(listPendingOptionsSchema, options);
    return listPendingRequests(this.#runtime, filter);
  }

  /**
   * One request and where it stands, or null when it is not stored. Its payload is checked
   * against its action hash, and the request against its request MAC, as in {@link listPending}.
   * @throws {ApprovalStoreError} the database could not be read.
   */
  async getRequest(requestId: string): Promise<ApprovalRecord | null> {
    const id = validate(requestIdSchema, requestId, "requestId");
    return readRequest(this.#runtime, id);
  }

  /**
   * The request an agent made with a `key` for a kind of action (`request(kind, agentId, { key
   * })`), and where it stands — as {@link getRequest} reads it — or null when there is none. How
   * a process that did not make the request (the agent restarted, another instance resumes its
   * run) finds it: the token is not needed, and not returned. An unverified read, like
   * `getRequest`: `granted` means "go and `verifyAction`", which checks the signed decision —
   * and the key, which the request's signature covers.
   *
   * @example
   * ```ts
   * const asked = await gates.findRequest({ agentId: "deploy-agent", kind: "deploy.production", key: "deploy-142" });
   * if (asked?.status === "granted") await gates.verifyAction(asked.requestId, payload, { kind, agentId });
   * ```
   * @throws {ApprovalStoreError} the database could not be read.
   * @throws {InvalidGatesInputError} bad input (all three fields are required); nothing was read.
   */
  async findRequest(lookup: FindRequestOptions): Promise<ApprovalRecord | null> {
    const checked = validateOptions(findRequestSchema, lookup, {
      field: "lookup",
      required: '{ agentId: "deploy-agent", kind: "deploy.production", key: "deploy-142" }',
    });
    return findRequestByKey(this.#runtime, checked);
  }

  /**
   * Clean-up: release claims abandoned for longer than `staleClaimMs` (back to pending, or
   * expired when past their expiry; recorded as `approval.released`), then mark requests
   * that are past their expiry (by the module's clock) with no decision as expired, wake
   * their waiters, and record each as `approval.expired`. Safe to run from many processes at
   * once (each request is released or expired once). Run it periodically (the console and
   * CLI do).
   *
   * @returns the ids of the requests it expired (including abandoned claims past expiry).
   * @throws {ApprovalStoreError} the database could not be reached.
   */
  async expirePending(options: { limit?: number } = {}): Promise<string[]> {
    const { limit } = validateOptions(expirePendingOptionsSchema, options);
    return expireRequests(this.#runtime, limit);
  }

  /**
   * Stop: waiters in progress fail closed; new decisions are refused (`ApprovalStoreError`);
   * decisions in flight are awaited — at most `auditTimeoutMs` + 5 s — so that none is left
   * half made (one that still does not finish is left as a claim, released once older than
   * `staleClaimMs`); then stop listening. Idempotent.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#waiters.wakeAll();
    if (this.#inflight.size > 0) {
      let timer: NodeJS.Timeout | undefined;
      const settled = await Promise.race([
        Promise.allSettled([...this.#inflight]).then(() => true),
        new Promise<false>((resolve) => {
          timer = setTimeout(
            () => resolve(false),
            this.#runtime.options.auditTimeoutMs + CLOSE_GRACE_MS,
          );
        }),
      ]);
      clearTimeout(timer);
      if (!settled)
        this.#runtime.logger.error(
          "The gates module closed with decisions still in flight; their claims are released once older than staleClaimMs.",
          { inFlight: this.#inflight.size },
        );
    }
    await this.#waiters.unlisten();
  }

  /** Closes the module (`await using gates = …`). */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
