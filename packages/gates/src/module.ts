import { createHash, randomUUID } from "node:crypto";
import { inspect } from "node:util";
import {
  type AuditEventInput,
  type AuditMetadata,
  type AuditReceipt,
  type AuditSink,
  type ChainKey,
  type Clock,
  canonicalJson,
  constantTimeEqualHex,
  defineModule,
  type HaltCheckContext,
  type HaltGuard,
  InvalidArgumentError,
  identityForms,
  type Keyring,
  type Logger,
  type MigrationSource,
  type ModuleContext,
  noopAuditSink,
  noopHaltGuard,
  noopOperatorDirectory,
  type OperatorDirectory,
  requirePort,
  type Store,
  StoreError,
  type Subscription,
  sameIdentity,
  sql,
} from "@gov/core";
import {
  ApprovalDenied,
  ApprovalIntegrityError,
  ApprovalNotRecordedError,
  ApprovalPending,
  ApprovalStoreError,
  ApprovalTimeout,
  ApprovalTokenError,
  type ApprovalTokenReason,
  describe,
  InvalidGatesInputError,
  SelfApprovalError,
  SelfApprovalUnverifiableError,
  TokenVersionTooOldError,
} from "./errors";
import {
  agentIdSchema,
  denyOptionsSchema,
  expirePendingOptionsSchema,
  type GatesOptions,
  gatesOptionsSchema,
  grantOptionsSchema,
  kindSchema,
  listPendingOptionsSchema,
  payloadSchema,
  type ResolvedGatesOptions,
  requestIdSchema,
  requestOptionsSchema,
  requireApprovalOptionsSchema,
  validate,
  verifyActionOptionsSchema,
  waitForOptionsSchema,
} from "./models";
import {
  claimMacInput,
  decisionMacInput,
  format1DecisionMacInput,
  format2DecisionMacInput,
  requestMacInput,
  type SignedDecision,
  type SignedRequest,
} from "./signatures";
import { mintToken, type ParsedToken, parseToken, tokenDigest, verifyTokenMac } from "./token";

/** The gates module's migrations: schema `gov_gates`. */
export const gatesMigrations: MigrationSource = {
  name: "gates",
  migrationsFolder: new URL("../drizzle", import.meta.url),
};

/**
 * The channel on which resolutions (grants, denials, expiries) are announced to every
 * process; the payload is the request id. Sent in the statement that publishes the
 * resolution, so it is delivered on commit.
 */
export const GATES_RESOLVED_CHANNEL = "gov_gates_resolved";

/** The audit event kinds this module writes. */
export const APPROVAL_EVENT_KINDS = {
  /** A request was opened (and stored). */
  requested: "approval.requested",
  /** A request could not be stored: its token can never be granted. */
  requestFailed: "approval.request_failed",
  /** A reviewer granted a request. */
  granted: "approval.granted",
  /** A reviewer denied a request. */
  denied: "approval.denied",
  /** Clean-up found a request past its expiry with no decision. */
  expired: "approval.expired",
  /**
   * A genuine token for a known request was refused (replay, expiry, self-approval, …), or an
   * execution was refused by `verifyAction` / `requireApproval`.
   */
  refused: "approval.refused",
  /**
   * A claim was given back without its decision taking effect: its audit write failed or
   * timed out, or it was older than `staleClaimMs` (its process died). An `approval.granted` /
   * `approval.denied` event with the same request id, reviewer and `resolvedAt` — before or
   * after this one in the chain — did not take effect.
   */
  released: "approval.released",
  /**
   * An approved action was executed (`verifyAction` / `requireApproval` marked it executed).
   * An approval runs once: two of these for one request mean that its executed marker was
   * cleared in the table.
   */
  executed: "approval.executed",
  /** A legacy v1 token was accepted before `acceptV1Until`. */
  legacyTokenParsed: "gates.legacy_token_parsed",
} as const;

const REQUEST_PATH: HaltCheckContext = Object.freeze({ path: "gates.request" });

/**
 * The shortest time between two reads of one waiter, in milliseconds. A notification is only
 * a wake-up: however many arrive — a role that can connect can send a flood of them — a waiter
 * reads its request at most once per this interval (a genuine decision is seen at most this
 * much later than without a flood).
 */
export const WAKE_READ_SPACING_MS = 50;

/** What `request()` returns. The token is not enumerable: it never reaches JSON or `inspect`. */
export class ApprovalRequest {
  /** The request's id (a UUID): what `waitFor` and `verifyAction` take. */
  readonly requestId: string;
  /** What is being approved, e.g. `deploy.production`. */
  readonly kind: string;
  /** The agent that asked. */
  readonly agentId: string;
  /** SHA-256 (hex) of the RFC 8785 form of the payload. */
  readonly actionHash: string;
  /** When it was opened (the module's clock). */
  readonly createdAt: Date;
  /** When it expires; the token is refused from then on. */
  readonly expiresAt: Date;
  /** The token's format version: 2, or 1 when `enableV2Tokens` is false. */
  readonly tokenVersion: 1 | 2;
  /**
   * False when the request could not be stored (`request()` is an observation surface and
   * does not throw for that): the failure was logged and recorded
   * (`approval.request_failed`), and the token will be refused (`unknown_request`).
   */
  readonly stored: boolean;
  readonly #token: string;

  /** @internal Made by {@link GatesModule.request}. */
  constructor(fields: {
    requestId: string;
    kind: string;
    agentId: string;
    actionHash: string;
    createdAt: Date;
    expiresAt: Date;
    tokenVersion: 1 | 2;
    stored: boolean;
    token: string;
  }) {
    this.requestId = fields.requestId;
    this.kind = fields.kind;
    this.agentId = fields.agentId;
    this.actionHash = fields.actionHash;
    this.createdAt = fields.createdAt;
    this.expiresAt = fields.expiresAt;
    this.tokenVersion = fields.tokenVersion;
    this.stored = fields.stored;
    this.#token = fields.token;
    Object.freeze(this);
  }

  /**
   * The signed, single-use token: deliver it to the reviewer (and only to the reviewer), who
   * passes it to `grant()` or `deny()`. Never log it.
   */
  get token(): string {
    return this.#token;
  }

  /** Everything but the token. */
  toJSON(): ApprovalRequestJson {
    return {
      requestId: this.requestId,
      kind: this.kind,
      agentId: this.agentId,
      actionHash: this.actionHash,
      createdAt: this.createdAt.toISOString(),
      expiresAt: this.expiresAt.toISOString(),
      tokenVersion: this.tokenVersion,
      stored: this.stored,
    };
  }

  [inspect.custom](): string {
    return `ApprovalRequest(${this.requestId}, ${this.kind}, agent ${this.agentId}, token [redacted])`;
  }
}

/** The JSON form of an {@link ApprovalRequest}: dates as ISO strings, and never the token. */
export interface ApprovalRequestJson {
  requestId: string;
  kind: string;
  agentId: string;
  actionHash: string;
  createdAt: string;
  expiresAt: string;
  tokenVersion: 1 | 2;
  stored: boolean;
}

/** Options of {@link GatesModule.request}. */
export interface RequestOptions {
  /**
   * The action to approve, as JSON. Its SHA-256 over the RFC 8785 form is the action hash the
   * token is bound to. ≤ 64 KiB. @default {}
   */
  payload?: unknown;
  /** How long the request stays open, in ms (1 s – 30 days). @default the module's `defaultExpiresIn` (one hour) */
  expiresIn?: number;
}

/** Options of {@link GatesModule.grant}. */
export interface GrantOptions {
  /** Who grants (1–256 characters); may be neither the agent nor its operator. */
  reviewerId: string;
  /** Why, for the audit chain (≤ 1000 characters). */
  reason?: string;
  /** The payload the reviewer saw: refused (`action_hash_mismatch`) unless it is the one the token is bound to. */
  payload?: unknown;
}

/** Options of {@link GatesModule.deny}. */
export interface DenyOptions {
  /** Who denies (1–256 characters). */
  reviewerId: string;
  /** Why (1–1000 characters); the agent sees it in `ApprovalDenied`. */
  reason: string;
  /** The payload the reviewer saw (as for {@link GrantOptions.payload}). */
  payload?: unknown;
}

/** Options of {@link GatesModule.waitFor}. */
export interface WaitForOptions {
  /**
   * How long to wait, in ms (0 reads once). @default until the request expires
   */
  timeout?: number;
  /** Stop waiting when aborted (rejects with the signal's reason). */
  signal?: AbortSignal;
}

/** A grant or denial, as `grant()`, `deny()` and `verifyAction()` report it. */
export interface ApprovalDecision {
  requestId: string;
  kind: string;
  agentId: string;
  actionHash: string;
  decision: "granted" | "denied";
  reviewerId: string;
  reason: string | null;
  resolvedAt: Date;
}

/** A request waiting for a decision, as `listPending()` reports it. */
export interface PendingApproval {
  requestId: string;
  kind: string;
  agentId: string;
  actionHash: string;
  /**
   * The payload, for the reviewer to read — re-hashed on every read: null when it no longer
   * matches the action hash (see {@link PendingApproval.payloadIntact}).
   */
  payload: unknown;
  /**
   * False when the stored payload does not hash to `actionHash`: it was changed in the
   * database after the request was made. It is withheld (`payload: null`) and an error is
   * logged; do not approve such a request from what the database says — deny it.
   */
  payloadIntact: boolean;
  /**
   * False when what the request is — its kind, agent, expiry, token, operator at request time —
   * does not match its request MAC (it was changed in the database), or it has none (it was
   * made by an earlier version): it cannot be granted (`ApprovalIntegrityError`); deny it. An
   * error is logged.
   */
  requestIntact: boolean;
  createdAt: Date;
  expiresAt: Date;
  tokenVersion: 1 | 2;
}

/** Where a request stands, as `getRequest()` reports it. */
export type ApprovalStatus = "pending" | "resolving" | "granted" | "denied" | "expired";

/** A request and its state, as `getRequest()` reports it. */
export interface ApprovalRecord extends PendingApproval {
  /** `resolving`: a decision is being recorded (or its recording was interrupted). */
  status: ApprovalStatus;
  reviewerId: string | null;
  reason: string | null;
  resolvedAt: Date | null;
  /** When the approved action was executed (`verifyAction`, `requireApproval`; it runs once). */
  executedAt: Date | null;
}

/** Options of {@link GatesModule.listPending}. */
export interface ListPendingOptions {
  /** Only this agent's requests. */
  agentId?: string;
  /** Only requests of this kind. */
  kind?: string;
  /** At most this many, oldest first (1–500). @default 100 */
  limit?: number;
}

/** Options of {@link GatesModule.verifyAction}. */
export interface VerifyActionOptions {
  /**
   * The kind the action about to run was requested as, e.g. `deploy.production`: refused
   * (`request_mismatch`) unless the request is of exactly this kind. Pass it: without it, a
   * request approved for another kind of action would do.
   */
  kind?: string;
  /**
   * The agent about to run the action: refused (`request_mismatch`) unless the request was
   * made by exactly this agent. Pass it, for the same reason.
   */
  agentId?: string;
  /**
   * true: mark the approval executed, atomically — it is refused (`already_executed`) from
   * then on. false: only check, changing nothing (a later consuming call is still needed, and
   * still refused if another one came first). @default true
   */
  consume?: boolean;
}

/** Options of {@link GatesModule.requireApproval}. */
export interface RequireApprovalOptions<Args extends unknown[]> {
  /** What is being approved, e.g. `refund.issue`. */
  kind: string;
  /** The agent that asks. */
  agentId: string;
  /** How long a blocking call waits, in ms. @default until the request expires */
  timeout?: number;
  /** How long the request stays open, in ms. @default the module's `defaultExpiresIn` */
  expiresIn?: number;
  /**
   * true: wait for the decision, then run. false: open the request, then throw
   * `ApprovalPending(requestId)`; run later with `resume(requestId, …args)`. @default true
   */
  blocking?: boolean;
  /** The JSON to approve, from the call's arguments. @default (...args) => ({ args }) */
  payload?: (...args: Args) => unknown;
  /**
   * Deliver the request — with its token — to a reviewer (Slack, e-mail, a console). Called
   * once the request is stored, before waiting.
   */
  onRequest?: (request: ApprovalRequest) => unknown;
}

/** A function wrapped by {@link GatesModule.requireApproval}. */
export interface ApprovalGatedFunction<Args extends unknown[], Result> {
  /** Open a request for this call, and run the function once it is granted. */
  (...args: Args): Promise<Awaited<Result>>;
  /**
   * Run the function for a request opened by a non-blocking call, once it is granted, with
   * the same arguments (the action hash must match) — and only a request of this wrapper's
   * kind and agent. Runs at most once per request, and not after the request's expiry.
   * @throws {ApprovalPending} not decided yet. @throws {ApprovalDenied} denied.
   * @throws {ApprovalTokenError} `already_executed` (ran before), `request_mismatch` (another
   *   kind or agent), `action_hash_mismatch` (other arguments) or `expired`.
   */
  resume(requestId: string, ...args: Args): Promise<Awaited<Result>>;
}

/** The context the gates module needs: the keyring signs tokens; the ports are optional. */
export type GatesContext = Pick<ModuleContext, "store" | "keyring" | "clock" | "logger"> &
  Partial<Pick<ModuleContext, "audit" | "halt" | "operators">>;

interface RequestRow extends Record<string, unknown> {
  request_id: string;
  kind: string;
  agent_id: string;
  action_hash: string;
  key_id: string;
  token_digest: string;
  token_version: number;
  status: string;
  expires_at: string;
  created_at: string;
  resolved_at: string | null;
  reviewer_id: string | null;
  reason: string | null;
  decision_key_id: string | null;
  decision_mac: string | null;
  executed_at: string | null;
  operator_id: string | null;
  operator_lookup: string | null;
  request_mac: string | null;
}

const ISO = (column: string) =>
  `to_char(${column} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;

const ROW_COLUMNS = sql.raw(
  [
    "request_id::text as request_id",
    "kind",
    "agent_id",
    "action_hash",
    "key_id",
    "token_digest",
    "token_version",
    "status",
    `${ISO("expires_at")} as expires_at`,
    `${ISO("created_at")} as created_at`,
    `${ISO("resolved_at")} as resolved_at`,
    "reviewer_id",
    "reason",
    "decision_key_id",
    "decision_mac",
    `${ISO("executed_at")} as executed_at`,
    "operator_id",
    "operator_lookup",
    "request_mac",
  ].join(", "),
);

/** The status a claim moves a request to, per decision. */
const CLAIM_STATUS = { granted: "granting", denied: "denying" } as const;

/** How often, at most, one waiter repeats a warning about a failing read. */
const WARN_EVERY_MS = 60_000;

/** How much longer than `auditTimeoutMs` `close()` waits for decisions in flight. */
const CLOSE_GRACE_MS = 5_000;

/** Why a claim was given back (`approval.released`, `metadata.cause`). */
type ReleaseCause = "audit_failed" | "audit_timeout" | "stale_claim";

/** The audit sink did not answer within `auditTimeoutMs`. */
class AuditTimeoutError extends Error {
  constructor(timeoutMs: number) {
    super(`the audit sink did not answer within ${timeoutMs} ms (auditTimeoutMs)`);
    this.name = "AuditTimeoutError";
  }
}

interface Waiter {
  woken: boolean;
  wake: () => void;
}

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
 * await gates.waitFor(request.requestId, { timeout: 600_000 }); // true, or throws
 * ```
 */
export class GatesModule {
  readonly #store: Store;
  readonly #keyring: Keyring;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #audit: AuditSink;
  readonly #halt: HaltGuard;
  readonly #operators: OperatorDirectory;
  readonly #options: ResolvedGatesOptions;
  readonly #waiters = new Map<string, Set<Waiter>>();
  /** Decisions in progress (`grant` / `deny`), which `close()` waits for. */
  readonly #inflight = new Set<Promise<unknown>>();
  #subscription: Subscription | null = null;
  #subscribing: Promise<void> | null = null;
  #lastListenWarning = Number.NEGATIVE_INFINITY;
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
    this.#options = validate(gatesOptionsSchema, options ?? {}, "options");
    this.#store = context.store;
    this.#keyring = context.keyring;
    this.#clock = context.clock;
    this.#logger = context.logger;
    this.#audit = context.audit ?? noopAuditSink;
    this.#halt = context.halt ?? noopHaltGuard;
    this.#operators = context.operators ?? noopOperatorDirectory;
    if (this.#options.staleClaimMs <= this.#options.auditTimeoutMs) {
      throw new InvalidGatesInputError(
        "options.staleClaimMs",
        `is ${this.#options.staleClaimMs} ms, not more than auditTimeoutMs (${this.#options.auditTimeoutMs} ms): a claim whose audit write is still within its time would be presumed abandoned.`,
        "Make staleClaimMs well above auditTimeoutMs (defaults: 60000 and 5000).",
      );
    }
    if (!this.#options.enableV2Tokens) {
      const until = this.#options.acceptV1Until;
      if (until === null || until.getTime() <= this.#clock.nowMs()) {
        throw new InvalidGatesInputError(
          "options.enableV2Tokens",
          `is false, so legacy v1 tokens would be minted, but v1 tokens are ${until === null ? "never accepted (acceptV1Until: null)" : `no longer accepted (acceptV1Until ${until.toISOString()} has passed)`}: every token would be refused.`,
          "Leave enableV2Tokens at true (the default), or set acceptV1Until (GOVERNANCE_GATES_ACCEPT_V1_UNTIL) to a later date during the migration.",
        );
      }
      this.#logger.warn(
        `The gates module mints legacy v1 tokens (enableV2Tokens: false); they do not survive a key rotation and stop verifying at ${until.toISOString()}. Switch to v2 tokens.`,
      );
    }
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
   * recorded as `approval.requested`.
   *
   * @example
   * ```ts
   * const request = await gates.request("deploy.production", "deploy-agent", {
   *   payload: { pr: 142, environment: "production" },
   *   expiresIn: 15 * 60_000,
   * });
   * await slack.send(reviewers, `Approve deploy #142: ${request.token}`);
   * ```
   * @throws {AgentHaltedError} the agent is halted (nothing was stored).
   * @throws {InvalidGatesInputError} bad input; nothing was checked or stored.
   */
  async request(
    kind: string,
    agentId: string,
    options: RequestOptions = {},
  ): Promise<ApprovalRequest> {
    const checkedKind = validate(kindSchema, kind, "kind");
    const id = validate(agentIdSchema, agentId, "agentId");
    const parsed = validate(requestOptionsSchema, options ?? {}, "options");
    await this.#halt.assertAlive(id, REQUEST_PATH);
    // The operator answering for the agent now is bound to the request: neither they nor the
    // operator at grant time may grant it. A failed lookup makes the request ungrantable.
    const operator = await this.#lookUpOperator(id);
    if (operator.lookup === "failed")
      this.#logger.warn(
        "The operator bound to an agent could not be looked up for its approval request; the request can be denied but not granted.",
        { agentId: id, error: describe(operator.error) },
      );
    const payload = parsed.payload ?? { value: {}, canonical: "{}" };
    const actionHash = sha256(payload.canonical);
    const expiresIn = parsed.expiresIn ?? this.#options.defaultExpiresIn;
    const createdAtMs = this.#clock.nowMs();
    const expiresAtMs = createdAtMs + expiresIn;
    const requestId = randomUUID();
    const version: 1 | 2 = this.#options.enableV2Tokens ? 2 : 1;
    const key = this.#keyring.current;
    const token = mintToken(key, version, { requestId, actionHash, expiresAtMs });
    const createdAt = new Date(createdAtMs);
    const expiresAt = new Date(expiresAtMs);
    const digest = tokenDigest(token);
    // What the request is, signed now: a row re-targeted in the table cannot be granted.
    const requestMac = key.hmacHex(
      requestMacInput({
        requestId,
        kind: checkedKind,
        agentId: id,
        actionHash,
        tokenVersion: version,
        keyId: key.id,
        tokenDigest: digest,
        createdAt: createdAt.toISOString(),
        expiresAt: expiresAt.toISOString(),
        operatorId: operator.operatorId,
        operatorLookup: operator.lookup,
      }),
    );
    const metadata = {
      requestId,
      kind: checkedKind,
      actionHash,
      expiresAt: expiresAt.toISOString(),
      tokenVersion: version,
      keyId: key.id,
    };
    let stored = true;
    try {
      await this.#store.query(sql`
        insert into gov_gates.requests
          (request_id, kind, agent_id, action_hash, payload, token_version, key_id, token_digest, status,
            created_at, expires_at, operator_id, operator_lookup, request_mac)
        values (${requestId}::uuid, ${checkedKind}, ${id}, ${actionHash}, ${payload.canonical}::jsonb, ${version},
          ${key.id}, ${digest}, 'pending', ${createdAt.toISOString()}::timestamptz, ${expiresAt.toISOString()}::timestamptz,
          ${operator.operatorId}, ${operator.lookup}, ${requestMac})`);
    } catch (error) {
      stored = false;
      this.#logger.warn(
        "An approval request could not be stored; it was returned with stored: false and its token cannot be granted.",
        { requestId, agentId: id, kind: checkedKind, error: describe(error) },
      );
      await this.#record(id, APPROVAL_EVENT_KINDS.requestFailed, {
        ...metadata,
        error: describe(error),
      });
    }
    if (stored) await this.#record(id, APPROVAL_EVENT_KINDS.requested, metadata);
    return new ApprovalRequest({
      requestId,
      kind: checkedKind,
      agentId: id,
      actionHash,
      createdAt,
      expiresAt,
      tokenVersion: version,
      stored,
      token,
    });
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
    const checked = validate(grantOptionsSchema, options, "options");
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
    const checked = validate(denyOptionsSchema, options, "options");
    return this.#resolve("denied", token, {
      reviewerId: checked.reviewerId,
      reason: checked.reason,
      payload: checked.payload,
    });
  }

  async #resolve(
    decision: "granted" | "denied",
    token: unknown,
    input: {
      reviewerId: string;
      reason: string | null;
      payload: { canonical: string } | undefined;
    },
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
    const work = this.#decide(decision, token, input);
    this.#inflight.add(work);
    try {
      return await work;
    } finally {
      this.#inflight.delete(work);
    }
  }

  async #decide(
    decision: "granted" | "denied",
    token: string,
    input: {
      reviewerId: string;
      reason: string | null;
      payload: { canonical: string } | undefined;
    },
  ): Promise<ApprovalDecision> {
    const attempt = decision === "granted" ? "grant" : "deny";
    const { parsed, key } = this.#verifyToken(token, attempt);
    const digest = tokenDigest(token);
    const requestId = parsed.requestId;
    let row = await this.#readRow(requestId);
    if (!row) {
      this.#logger.warn("A genuine approval token names a request that is not stored; refused.", {
        requestId,
        attempt,
      });
      throw new ApprovalTokenError({ reason: "unknown_request", requestId });
    }
    const known = row;
    const refuse = async (
      reason: ApprovalTokenReason,
      extra: AuditMetadata = {},
      note?: string,
    ) => {
      await this.#record(known.agent_id, APPROVAL_EVENT_KINDS.refused, {
        ...requestMetadata(known),
        attempt,
        reviewerId: input.reviewerId,
        reason,
        ...extra,
      });
      return new ApprovalTokenError({ reason, requestId, ...(note ? { note } : {}) });
    };
    if (!constantTimeEqualHex(row.token_digest, digest)) throw await refuse("signature_mismatch");
    // The decision is signed under the key the token was issued under (the request's key),
    // and is only ever accepted under that key.
    if (row.key_id !== key.id) throw await refuse("signature_mismatch");
    if (!constantTimeEqualHex(row.action_hash, parsed.actionHash))
      throw await refuse("action_hash_mismatch", { presentedActionHash: parsed.actionHash });
    if (input.payload !== undefined) {
      const presented = sha256(input.payload.canonical);
      if (!constantTimeEqualHex(row.action_hash, presented))
        throw await refuse(
          "action_hash_mismatch",
          { presentedActionHash: presented },
          "The payload the reviewer saw is not the one the request was made for.",
        );
    }
    if (parsed.version === 1) {
      this.#logger.warn(
        "A legacy v1 approval token was accepted; v1 tokens stop verifying at acceptV1Until. Switch to v2 tokens (enableV2Tokens: true).",
        { requestId },
      );
      await this.#record(row.agent_id, APPROVAL_EVENT_KINDS.legacyTokenParsed, {
        requestId,
        kind: row.kind,
        attempt,
        acceptV1Until: this.#options.acceptV1Until?.toISOString() ?? null,
      });
    }
    const nowMs = this.#clock.nowMs();
    const expiredNote = `It expired at ${new Date(parsed.expiresAtMs).toISOString()}.`;
    if (parsed.expiresAtMs <= nowMs || row.status === "expired")
      throw await refuse("expired", {}, expiredNote);
    if (isClaim(row.status)) {
      // Another decision is being recorded — unless its claim was abandoned.
      if (!this.#isStale(row, nowMs)) throw await refuse("in_progress");
      await this.#recoverStaleClaims({ requestId, limit: 1 });
      row = await this.#readRow(requestId);
      if (!row) throw new ApprovalTokenError({ reason: "unknown_request", requestId });
      if (row.status === "expired") throw await refuse("expired", {}, expiredNote);
      if (isClaim(row.status)) throw await refuse("in_progress");
    }
    if (row.status !== "pending")
      throw await refuse("already_used", { status: publicStatus(row.status) });
    if (Date.parse(row.expires_at) <= nowMs) throw await refuse("expired");
    if (decision === "granted") {
      // What the reviewer and the self-approval rule rely on — the request's kind, agent,
      // expiry, operator at request time — must be what was signed when it was made. (A
      // denial can only stop an action: it is allowed on a row that does not verify.)
      const problem = this.#requestProblem(row);
      if (problem !== null) {
        await this.#record(row.agent_id, APPROVAL_EVENT_KINDS.refused, {
          ...requestMetadata(row),
          attempt,
          reviewerId: input.reviewerId,
          reason: "request_integrity",
        });
        throw this.#integrityFailure(requestId, problem, "request");
      }
      await this.#checkSelfApproval(row, input.reviewerId);
    }

    // The claim: one conditional update decides who wins. It is invisible to waiters, who
    // only act on `granted` / `denied`, until the audit event is durable. Its claim MAC
    // identifies it (publishing and releasing touch this claim only, never another process's)
    // and is no decision MAC: the row is readable while the claim is held, and a claim that is
    // then released must leave nothing behind that verifies as a decision.
    const now = new Date(nowMs).toISOString();
    const result: ApprovalDecision = {
      requestId,
      kind: row.kind,
      agentId: row.agent_id,
      actionHash: row.action_hash,
      decision,
      reviewerId: input.reviewerId,
      reason: input.reason,
      resolvedAt: new Date(nowMs),
    };
    const signedRequest = signedRequestOf(row);
    const signedDecision: SignedDecision = {
      decision,
      reviewerId: input.reviewerId,
      reason: input.reason,
      resolvedAt: now,
    };
    const mac = key.hmacHex(claimMacInput(signedRequest, signedDecision, randomUUID()));
    const claimStatus = CLAIM_STATUS[decision];
    let claimed: { request_id: string }[];
    try {
      claimed = await this.#store.query<{ request_id: string }>(sql`
        update gov_gates.requests set
          status = ${claimStatus}, reviewer_id = ${input.reviewerId}, reason = ${input.reason},
          resolved_at = ${now}::timestamptz, decision_key_id = ${key.id}, decision_mac = ${mac}
        where request_id = ${requestId}::uuid and status = 'pending'
          and expires_at > ${now}::timestamptz and token_digest = ${digest}
        returning request_id::text as request_id`);
    } catch (error) {
      throw new ApprovalStoreError("claim", requestId, error);
    }
    if (claimed.length === 0) {
      // Someone else won, or the request expired meanwhile: read which.
      const current = await this.#readRow(requestId);
      if (!current) throw new ApprovalTokenError({ reason: "unknown_request", requestId });
      if (
        current.status === "expired" ||
        (current.status === "pending" && Date.parse(current.expires_at) <= nowMs)
      )
        throw await refuse("expired");
      // Pending again: a claim that beat this one was released meanwhile.
      if (current.status === "pending" || isClaim(current.status))
        throw await refuse("in_progress", { status: publicStatus(current.status) });
      throw await refuse("already_used", { status: publicStatus(current.status) });
    }

    // The evidence: the decision is made only once its audit event is durable.
    const eventKind =
      decision === "granted" ? APPROVAL_EVENT_KINDS.granted : APPROVAL_EVENT_KINDS.denied;
    let failure: unknown = null;
    try {
      const receipt = await this.#auditLog({
        agentId: row.agent_id,
        kind: eventKind,
        metadata: {
          ...requestMetadata(row),
          reviewerId: input.reviewerId,
          reason: input.reason,
          resolvedAt: now,
          tokenVersion: parsed.version,
          keyId: parsed.version === 2 ? parsed.keyId : null,
        },
      });
      if (receipt.isPlaceholder && this.#audit !== noopAuditSink)
        failure = new Error("the audit sink returned a placeholder");
    } catch (error) {
      failure = error;
    }
    if (failure !== null) {
      const cause: ReleaseCause =
        failure instanceof AuditTimeoutError ? "audit_timeout" : "audit_failed";
      await this.#release(row, { claimStatus, mac, reviewerId: input.reviewerId, now }, cause);
      this.#logger.error(
        `A ${attempt} could not be recorded in the audit chain; the request is still pending.`,
        {
          requestId,
          error: describe(failure),
        },
      );
      throw new ApprovalNotRecordedError(requestId, decision, failure);
    }

    // Publish: waiters see the decision, and are woken, when this commits. Only now, with its
    // audit event durable, is the decision signed: the decision MAC (over every field of the
    // request, so that it holds for this request exactly as it was decided) replaces the claim
    // MAC in the same statement. A claim that is released never gets one.
    const decisionMac = key.hmacHex(decisionMacInput(signedRequest, signedDecision));
    let published: { request_id: string }[];
    try {
      published = await this.#store.query<{ request_id: string }>(sql`
        with published as (
          update gov_gates.requests set status = ${decision}, decision_mac = ${decisionMac}
          where request_id = ${requestId}::uuid and status = ${claimStatus} and decision_mac = ${mac}
          returning request_id
        )
        select request_id::text as request_id, pg_notify(${GATES_RESOLVED_CHANNEL}, request_id::text)
        from published`);
    } catch (error) {
      this.#logger.error(
        `A ${attempt} was recorded in the audit chain but could not be published; it is released once older than staleClaimMs.`,
        { requestId, error: describe(error) },
      );
      // The statement carried the decision MAC, which must not outlive a publish that did not
      // take effect: the driver's error (a cause of the store's) holds the statement's
      // parameters, so only what the database said is kept.
      throw new ApprovalStoreError("publish", requestId, withoutStatement(error));
    }
    if (published.length === 0) {
      // This process stalled past staleClaimMs and its claim was recovered by another
      // (recorded there as approval.released): the decision did not take effect.
      const lost = new Error(
        `the claim was released as stale (older than staleClaimMs, ${this.#options.staleClaimMs} ms) before it could be published`,
      );
      this.#logger.error(`A ${attempt} was recorded in the audit chain but did not take effect.`, {
        requestId,
        error: describe(lost),
      });
      throw new ApprovalStoreError("publish", requestId, lost);
    }
    return result;
  }

  /** Parse and verify a token, without the database; returns the key that verified it. */
  #verifyToken(token: string, attempt: "grant" | "deny"): { parsed: ParsedToken; key: ChainKey } {
    let parsed: ParsedToken;
    let key: ChainKey;
    try {
      parsed = parseToken(token);
      if (parsed.version === 1) {
        const until = this.#options.acceptV1Until;
        if (until === null || this.#clock.nowMs() >= until.getTime())
          throw new TokenVersionTooOldError(parsed.requestId, until);
      }
      key = verifyTokenMac(parsed, this.#keyring);
    } catch (error) {
      if (ApprovalTokenError.isInstance(error)) {
        // The token is never logged: only why it was refused, and the request it names.
        this.#logger.warn(`An approval token was refused (${error.reason}).`, {
          attempt,
          reason: error.reason,
          requestId: error.requestId,
        });
      }
      throw error;
    }
    return { parsed, key };
  }

  /** The operator bound to `agentId` now; `failed` (with the error) when it cannot be looked up. */
  async #lookUpOperator(
    agentId: string,
  ): Promise<{ operatorId: string | null; lookup: "ok" | "failed"; error?: unknown }> {
    try {
      const operator = await this.#operators.operatorOf(agentId);
      if (operator !== null && operator !== undefined && typeof operator !== "string")
        throw new Error(`the operators port returned ${typeof operator}, not a string or null`);
      return { operatorId: operator ?? null, lookup: "ok" };
    } catch (error) {
      return { operatorId: null, lookup: "failed", error };
    }
  }

  /**
   * Refuse a reviewer who is the agent, the operator bound to it when the request was made,
   * or the operator bound to it now (ids compared by core's `sameIdentity`: look-alikes are
   * the same principal).
   */
  async #checkSelfApproval(row: RequestRow, reviewerId: string): Promise<void> {
    const reviewer = identityForms(reviewerId);
    const isReviewer = (id: string) => sameIdentity(identityForms(id), reviewer);
    const record = async (relation: string) => {
      await this.#record(row.agent_id, APPROVAL_EVENT_KINDS.refused, {
        ...requestMetadata(row),
        attempt: "grant",
        reviewerId,
        reason: relation,
      });
    };
    const refuseAs = async (relation: "agent" | "operator") => {
      await record("self_approval");
      return new SelfApprovalError({
        requestId: row.request_id,
        agentId: row.agent_id,
        reviewerId,
        relation,
      });
    };
    if (isReviewer(row.agent_id)) throw await refuseAs("agent");
    if (row.operator_lookup === "failed") {
      await record("operator_unknown");
      throw new SelfApprovalUnverifiableError(
        row.request_id,
        row.agent_id,
        new Error("the operator lookup failed when the request was made"),
        true,
      );
    }
    if (row.operator_id !== null && isReviewer(row.operator_id)) throw await refuseAs("operator");
    const current = await this.#lookUpOperator(row.agent_id);
    if (current.lookup === "failed") {
      await record("operator_unknown");
      throw new SelfApprovalUnverifiableError(row.request_id, row.agent_id, current.error);
    }
    if (current.operatorId !== null && isReviewer(current.operatorId))
      throw await refuseAs("operator");
  }

  /**
   * Give a claim back: its decision was not recorded, so it was not made. Only this claim
   * (its MAC) is released, never another's. Recorded as `approval.released`.
   */
  async #release(
    row: RequestRow,
    claim: { claimStatus: string; mac: string; reviewerId: string; now: string },
    cause: ReleaseCause,
  ): Promise<void> {
    try {
      await this.#store.query(sql`
        update gov_gates.requests set
          status = 'pending', reviewer_id = null, reason = null, resolved_at = null,
          decision_key_id = null, decision_mac = null
        where request_id = ${row.request_id}::uuid and status = ${claim.claimStatus}
          and decision_mac = ${claim.mac}`);
    } catch (error) {
      this.#logger.error(
        "A claim whose audit event failed could not be released; it is released once older than staleClaimMs.",
        { requestId: row.request_id, error: describe(error) },
      );
      return;
    }
    await this.#record(row.agent_id, APPROVAL_EVENT_KINDS.released, {
      ...requestMetadata(row),
      decision: claim.claimStatus === CLAIM_STATUS.granted ? "granted" : "denied",
      reviewerId: claim.reviewerId,
      resolvedAt: claim.now,
      cause,
      releasedAt: this.#clock.now().toISOString(),
    });
  }

  /** Whether a claim is older than `staleClaimMs` by the module's clock. */
  #isStale(row: RequestRow, nowMs: number): boolean {
    return (
      isClaim(row.status) &&
      row.resolved_at !== null &&
      Date.parse(row.resolved_at) <= nowMs - this.#options.staleClaimMs
    );
  }

  /**
   * Release claims older than `staleClaimMs` (their process died, or stalled): back to
   * pending, or expired when past their expiry. Each claim is released once, whoever else
   * recovers at the same time; waiters are woken; each is recorded as `approval.released`
   * (cause `stale_claim`).
   *
   * @returns the requests it released, with their new status (`pending` or `expired`).
   */
  async #recoverStaleClaims(scope: {
    requestId?: string;
    limit: number;
  }): Promise<{ requestId: string; status: string }[]> {
    const now = this.#clock.now();
    const nowIso = now.toISOString();
    const cutoff = new Date(now.getTime() - this.#options.staleClaimMs).toISOString();
    let rows: {
      request_id: string;
      agent_id: string;
      kind: string;
      action_hash: string;
      status: string;
      claim_status: string;
      claim_reviewer: string | null;
      claimed_at: string;
    }[];
    try {
      rows = await this.#store.query(sql`
        with stale as (
          select request_id, status as claim_status, reviewer_id as claim_reviewer,
            resolved_at as claimed_at
          from gov_gates.requests
          where status in ('granting', 'denying') and resolved_at <= ${cutoff}::timestamptz
            ${scope.requestId === undefined ? sql`` : sql`and request_id = ${scope.requestId}::uuid`}
          order by resolved_at limit ${scope.limit}
          for update skip locked
        ), released as (
          update gov_gates.requests r set
            status = case when r.expires_at <= ${nowIso}::timestamptz then 'expired' else 'pending' end,
            resolved_at = case when r.expires_at <= ${nowIso}::timestamptz then ${nowIso}::timestamptz end,
            reviewer_id = null, reason = null, decision_key_id = null, decision_mac = null
          from stale
          where r.request_id = stale.request_id and r.status = stale.claim_status
          returning r.request_id, r.agent_id, r.kind, r.action_hash, r.status,
            stale.claim_status, stale.claim_reviewer, stale.claimed_at
        )
        select request_id::text as request_id, agent_id, kind, action_hash, status, claim_status,
          claim_reviewer, ${sql.raw(ISO("claimed_at"))} as claimed_at,
          pg_notify(${GATES_RESOLVED_CHANNEL}, request_id::text) as notified
        from released`);
    } catch (error) {
      throw new ApprovalStoreError("claim", scope.requestId ?? null, error);
    }
    for (const row of rows) {
      this.#logger.warn(
        `An abandoned claim (older than staleClaimMs) was released; the request is ${row.status} again.`,
        { requestId: row.request_id },
      );
      await this.#record(row.agent_id, APPROVAL_EVENT_KINDS.released, {
        requestId: row.request_id,
        kind: row.kind,
        actionHash: row.action_hash,
        decision: row.claim_status === CLAIM_STATUS.granted ? "granted" : "denied",
        reviewerId: row.claim_reviewer,
        resolvedAt: row.claimed_at,
        cause: "stale_claim",
        releasedAt: nowIso,
        status: row.status,
      });
    }
    return rows.map((row) => ({ requestId: row.request_id, status: row.status }));
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
   * await gates.waitFor(request.requestId, { timeout: 10 * 60_000 });
   * // if this line runs, a human approved the action
   * ```
   * @throws {ApprovalDenied} / {@link ApprovalTimeout} / {@link ApprovalIntegrityError}
   * @throws {ApprovalTokenError} `unknown_request` when no such request is stored.
   * @throws {InvalidGatesInputError} bad input.
   */
  async waitFor(requestId: string, options: WaitForOptions = {}): Promise<true> {
    const id = validate(requestIdSchema, requestId, "requestId");
    const { timeout, signal } = validate(waitForOptionsSchema, options ?? {}, "options");
    signal?.throwIfAborted();
    const waiter: Waiter = { woken: false, wake: () => undefined };
    waiter.wake = () => {
      waiter.woken = true;
    };
    let set = this.#waiters.get(id);
    if (!set) {
      set = new Set();
      this.#waiters.set(id, set);
    }
    set.add(waiter);
    try {
      await this.#ensureListening();
      const started = performance.now();
      let deadline = timeout === undefined ? null : started + timeout;
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
        if (this.#closed)
          throw new ApprovalStoreError("read", id, new Error("the gates module was closed"));
        waiter.woken = false;
        lastReadAt = performance.now();
        let row: RequestRow | null | undefined;
        try {
          row = await this.#readRowRaw(id);
          lastError = undefined;
        } catch (error) {
          lastError = error;
          if (performance.now() - lastWarnAt > WARN_EVERY_MS) {
            lastWarnAt = performance.now();
            this.#logger.warn(
              "waitFor could not read the request; retrying (it fails closed at its timeout).",
              {
                requestId: id,
                error: describe(error),
              },
            );
          }
        }
        if (row === null)
          throw new ApprovalTokenError({ reason: "unknown_request", requestId: id });
        if (row) {
          if (row.status === "granted") {
            this.#verifyDecision(row);
            return true;
          }
          if (row.status === "denied") {
            this.#verifyDecision(row);
            throw new ApprovalDenied(id, row.reviewer_id, row.reason);
          }
          if (row.status !== "expired") {
            // Undecided: its expiry (and what it is) must be what was signed when it was made;
            // a row that does not verify can never be granted, so waiting is pointless.
            const problem = this.#requestProblem(row);
            if (problem !== null) throw this.#integrityFailure(id, problem, "request");
          }
          if (this.#isStale(row, this.#clock.nowMs())) {
            // Its process died mid-decision: give the claim back (never decide it), read again.
            try {
              if ((await this.#recoverStaleClaims({ requestId: id, limit: 1 })).length > 0)
                continue;
            } catch (error) {
              lastError = error;
            }
          }
          const expiresAtMs = Date.parse(row.expires_at);
          if (
            row.status === "expired" ||
            (row.status === "pending" && expiresAtMs <= this.#clock.nowMs())
          )
            throw new ApprovalTimeout({ requestId: id, timeoutMs: timeout ?? 0, expired: true });
          // Without a timeout, wait until the request expires (by the module's clock).
          deadline ??= started + Math.max(0, expiresAtMs - this.#clock.nowMs());
        }
        const now = performance.now();
        if (deadline !== null && now >= deadline) {
          throw new ApprovalTimeout({
            requestId: id,
            timeoutMs: timeout ?? Math.round(deadline - started),
            expired: false,
            ...(lastError === undefined ? {} : { cause: lastError }),
          });
        }
        const poll = this.#options.pollIntervalMs * (0.8 + 0.4 * Math.random());
        const wait = deadline === null ? poll : Math.min(poll, deadline - now);
        if (!waiter.woken) await this.#sleep(waiter, wait, signal);
        signal?.throwIfAborted();
      }
    } finally {
      set.delete(waiter);
      if (set.size === 0 && this.#waiters.get(id) === set) this.#waiters.delete(id);
    }
  }

  /** Sleep `ms`, or until woken (a notification) or aborted. */
  #sleep(waiter: Waiter, ms: number, signal: AbortSignal | undefined): Promise<void> {
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

  /** Subscribe to resolutions once per module; a failure is warned and leaves polling. */
  async #ensureListening(): Promise<void> {
    if (!this.#options.listen || this.#subscription || this.#closed) return;
    this.#subscribing ??= this.#store
      .listen(
        GATES_RESOLVED_CHANNEL,
        (payload) => {
          const waiters = this.#waiters.get(payload);
          if (waiters) for (const waiter of waiters) waiter.wake();
        },
        {
          // Notifications sent while the connection was down are lost: read again now.
          onReconnect: () => {
            for (const waiters of this.#waiters.values())
              for (const waiter of waiters) waiter.wake();
          },
        },
      )
      .then(
        async (subscription) => {
          if (this.#closed) {
            await subscription.unsubscribe().catch(() => undefined);
            return;
          }
          this.#subscription = subscription;
        },
        (error: unknown) => {
          if (performance.now() - this.#lastListenWarning > WARN_EVERY_MS) {
            this.#lastListenWarning = performance.now();
            this.#logger.warn(
              "Could not listen for approval decisions; waitFor polls only until it can.",
              { error: describe(error) },
            );
          }
        },
      )
      .finally(() => {
        this.#subscribing = null;
      });
    await this.#subscribing;
  }

  /**
   * Check a granted or denied row against its decision MAC, under the key its request was
   * issued under (and no other). The MAC covers the decision and every field of the request
   * ({@link decisionMacInput}) and is written only when a decision is published, so a claim —
   * released or not — copied into the row does not verify. A grant signed in the format of an
   * earlier version is refused: format 2 was written with the claim (a released claim put back
   * looks the same), format 1 did not cover the expiry. A denial in either format stands (it can
   * only stop an action).
   * @throws {ApprovalIntegrityError} (`subject: "decision"`).
   */
  #verifyDecision(row: RequestRow): void {
    const id = row.request_id;
    const fail = (problem: string) => this.#integrityFailure(id, problem, "decision");
    if (!row.decision_key_id || !row.decision_mac || !row.reviewer_id || !row.resolved_at)
      throw fail("it has no signed decision.");
    // A decision is signed under the key its request (its token) was issued under, and
    // accepted under that key only: another key of the keyring — a retired one, say — cannot
    // approve a request that it did not issue.
    if (row.decision_key_id !== row.key_id)
      throw fail(
        `it was signed by key ${row.decision_key_id}, not by the key the request was issued under (${row.key_id}).`,
      );
    const key = this.#keyring.find(row.decision_key_id);
    if (!key || key.id !== row.decision_key_id)
      throw fail(`it was signed by key ${row.decision_key_id}, which is not in the keyring.`);
    const request = signedRequestOf(row);
    const decision: SignedDecision = {
      decision: row.status as "granted" | "denied",
      reviewerId: row.reviewer_id,
      reason: row.reason,
      resolvedAt: row.resolved_at,
    };
    if (key.verifyHex(decisionMacInput(request, decision), row.decision_mac)) return;
    if (key.verifyHex(format2DecisionMacInput(request, decision), row.decision_mac)) {
      if (row.status === "denied") return;
      throw fail(
        "it is a grant signed in the format of an earlier version of @gov/gates, which signed a decision when it was claimed — before it was recorded in the audit chain — so it cannot be told apart from a released claim put back in the table. Open a new request.",
      );
    }
    if (key.verifyHex(format1DecisionMacInput(request, decision), row.decision_mac)) {
      if (row.status === "denied") return;
      throw fail(
        "it is a grant signed in the format of an earlier version of @gov/gates, which does not cover the request's expiry, token or operator, so it cannot be told apart from one revived in the table. Open a new request.",
      );
    }
    throw fail(
      "its MAC does not match its fields (the row was changed, or a claim that never took effect was put back as a decision).",
    );
  }

  /**
   * Why a row does not match what was signed when its request was made, or null when it does:
   * no request MAC (made by an earlier version, or erased), its key not in the keyring, or a
   * field changed.
   */
  #requestProblem(row: RequestRow): string | null {
    if (row.request_mac === null)
      return "it is not signed (it was made by an earlier version of @gov/gates, or its request MAC was erased), so its kind, agent, expiry and operator cannot be verified.";
    const key = this.#keyring.find(row.key_id);
    if (!key || key.id !== row.key_id)
      return `it was issued under key ${row.key_id}, which is not in the keyring.`;
    if (!key.verifyHex(requestMacInput(signedRequestOf(row)), row.request_mac))
      return "its MAC does not match its fields (the row was changed).";
    return null;
  }

  /** An integrity failure, logged (the request id and the problem; never a MAC). */
  #integrityFailure(
    requestId: string,
    problem: string,
    subject: "request" | "decision",
  ): ApprovalIntegrityError {
    this.#logger.error(`A stored approval ${subject} does not verify; it is refused.`, {
      requestId,
      problem,
    });
    return new ApprovalIntegrityError(requestId, problem, subject);
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
   * the request's `expiresAt` (choose `expiresIn` to cover the decision and the execution).
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
    const expected = validate(verifyActionOptionsSchema, options ?? {}, "options");
    const row = await this.#readRow(id);
    if (!row) throw new ApprovalTokenError({ reason: "unknown_request", requestId: id });
    const refuse = async (reason: ApprovalTokenReason, extra: AuditMetadata, note: string) => {
      await this.#record(row.agent_id, APPROVAL_EVENT_KINDS.refused, {
        ...requestMetadata(row),
        attempt: "execute",
        reason,
        ...extra,
      });
      return new ApprovalTokenError({ reason, requestId: id, note });
    };
    // A decision is checked before any of its row's fields is believed (kind, agent, expiry…).
    if (row.status === "granted" || row.status === "denied") {
      try {
        this.#verifyDecision(row);
      } catch (error) {
        await this.#record(row.agent_id, APPROVAL_EVENT_KINDS.refused, {
          ...requestMetadata(row),
          attempt: "execute",
          reason: "decision_integrity",
        });
        throw error;
      }
    }
    if (
      (expected.kind !== undefined && expected.kind !== row.kind) ||
      (expected.agentId !== undefined && expected.agentId !== row.agent_id)
    )
      throw await refuse(
        "request_mismatch",
        {
          ...(expected.kind === undefined ? {} : { expectedKind: expected.kind }),
          ...(expected.agentId === undefined ? {} : { expectedAgentId: expected.agentId }),
        },
        `It was requested as ${JSON.stringify(row.kind)} by agent ${JSON.stringify(row.agent_id)}; expected ${[
          expected.kind === undefined ? null : `kind ${JSON.stringify(expected.kind)}`,
          expected.agentId === undefined ? null : `agent ${JSON.stringify(expected.agentId)}`,
        ]
          .filter(Boolean)
          .join(" and ")}.`,
      );
    if (row.status === "denied") throw new ApprovalDenied(id, row.reviewer_id, row.reason);
    if (row.status === "expired")
      throw new ApprovalTimeout({ requestId: id, timeoutMs: 0, expired: true });
    if (row.status !== "granted") {
      if (row.status === "pending" && Date.parse(row.expires_at) <= this.#clock.nowMs())
        throw new ApprovalTimeout({ requestId: id, timeoutMs: 0, expired: true });
      throw new ApprovalPending(id);
    }
    const presented = sha256(checked.canonical);
    if (!constantTimeEqualHex(row.action_hash, presented))
      throw await refuse(
        "action_hash_mismatch",
        { presentedActionHash: presented },
        "What is about to run is not what was approved.",
      );
    if (row.executed_at !== null)
      throw await refuse(
        "already_executed",
        { executedAt: row.executed_at },
        `It ran at ${row.executed_at}.`,
      );
    const now = this.#clock.now();
    const expiredNote = `The request expired at ${row.expires_at}; an approval runs only before its request's expiry.`;
    if (Date.parse(row.expires_at) <= now.getTime()) throw await refuse("expired", {}, expiredNote);
    if (expected.consume) {
      let rows: { request_id: string }[];
      try {
        rows = await this.#store.query<{ request_id: string }>(sql`
          update gov_gates.requests set executed_at = ${now.toISOString()}::timestamptz
          where request_id = ${id}::uuid and status = 'granted' and executed_at is null
            and expires_at > ${now.toISOString()}::timestamptz
            and decision_mac = ${row.decision_mac} and action_hash = ${row.action_hash}
            and kind = ${row.kind} and agent_id = ${row.agent_id}
            and expires_at = ${row.expires_at}::timestamptz
          returning request_id::text as request_id`);
      } catch (error) {
        throw new ApprovalStoreError("consume", id, error);
      }
      if (rows.length === 0) {
        // Another execution won (or the row changed under us): read which.
        const current = await this.#readRow(id);
        if (current?.executed_at)
          throw await refuse(
            "already_executed",
            { executedAt: current.executed_at },
            `It ran at ${current.executed_at}.`,
          );
        if (current && Date.parse(current.expires_at) <= now.getTime())
          throw await refuse("expired", {}, expiredNote);
        throw new ApprovalStoreError(
          "consume",
          id,
          new Error("the request changed while it was being marked executed"),
        );
      }
      // Evidence of each execution: the executed marker is protected by the trigger only, so
      // a run after the marker was cleared in the table shows here as a second one.
      await this.#record(row.agent_id, APPROVAL_EVENT_KINDS.executed, {
        ...requestMetadata(row),
        reviewerId: row.reviewer_id,
        resolvedAt: row.resolved_at,
        executedAt: now.toISOString(),
      });
    }
    return {
      requestId: id,
      kind: row.kind,
      agentId: row.agent_id,
      actionHash: row.action_hash,
      decision: "granted",
      reviewerId: row.reviewer_id as string,
      reason: row.reason,
      resolvedAt: new Date(row.resolved_at as string),
    };
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
   *   { kind: "refund.issue", agentId: "billing-agent", timeout: 600_000, onRequest: (r) => slack.send(r.token) },
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
    const checked = validate(requireApprovalOptionsSchema, options, "options");
    if (typeof fn !== "function") {
      throw new InvalidGatesInputError(
        "fn",
        `must be a function, got ${fn === null ? "null" : typeof fn}.`,
        "Pass the function that performs the action.",
      );
    }
    const gates = this;
    const payloadOf = (args: Args): unknown =>
      checked.payload ? (checked.payload as (...values: Args) => unknown)(...args) : { args };
    // Executing checks the request against this wrapper, not only the payload.
    const consume = (requestId: string, payload: unknown) =>
      gates.verifyAction(requestId, payload, { kind: checked.kind, agentId: checked.agentId });
    const gated = async function (this: unknown, ...args: Args): Promise<Awaited<Result>> {
      const payload = payloadOf(args);
      const request = await gates.request(checked.kind, checked.agentId, {
        payload,
        ...(checked.expiresIn === undefined ? {} : { expiresIn: checked.expiresIn }),
      });
      if (!request.stored)
        throw new ApprovalStoreError(
          "request",
          request.requestId,
          new Error("the request was not stored"),
        );
      if (checked.onRequest)
        await (checked.onRequest as (request: ApprovalRequest) => unknown)(request);
      if (!checked.blocking) throw new ApprovalPending(request.requestId);
      await gates.waitFor(
        request.requestId,
        checked.timeout === undefined ? {} : { timeout: checked.timeout },
      );
      await consume(request.requestId, payload);
      return await fn.apply(this, args);
    } as ApprovalGatedFunction<Args, Result>;
    gated.resume = async function (
      this: unknown,
      requestId: string,
      ...args: Args
    ): Promise<Awaited<Result>> {
      await consume(requestId, payloadOf(args));
      return await fn.apply(this, args);
    };
    return gated;
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
    const { agentId, kind, limit } = validate(listPendingOptionsSchema, options ?? {}, "options");
    const nowMs = this.#clock.nowMs();
    const now = new Date(nowMs).toISOString();
    const staleBefore = new Date(nowMs - this.#options.staleClaimMs).toISOString();
    let rows: (RequestRow & { payload: unknown })[];
    try {
      rows = await this.#store.query(sql`
        select ${ROW_COLUMNS}, payload from gov_gates.requests
        where (status = 'pending'
            or (status in ('granting', 'denying') and resolved_at <= ${staleBefore}::timestamptz))
          and expires_at > ${now}::timestamptz
          ${agentId === undefined ? sql`` : sql`and agent_id = ${agentId}`}
          ${kind === undefined ? sql`` : sql`and kind = ${kind}`}
        order by created_at, request_id
        limit ${limit}`);
    } catch (error) {
      throw new ApprovalStoreError("read", null, error);
    }
    return rows.map((row) => this.#pendingOf(row));
  }

  /**
   * One request and where it stands, or null when it is not stored. Its payload is checked
   * against its action hash, and the request against its request MAC, as in {@link listPending}.
   * @throws {ApprovalStoreError} the database could not be read.
   */
  async getRequest(requestId: string): Promise<ApprovalRecord | null> {
    const id = validate(requestIdSchema, requestId, "requestId");
    let rows: (RequestRow & { payload: unknown })[];
    try {
      rows = await this.#store.query(sql`
        select ${ROW_COLUMNS}, payload from gov_gates.requests where request_id = ${id}::uuid`);
    } catch (error) {
      throw new ApprovalStoreError("read", id, error);
    }
    const row = rows[0];
    if (!row) return null;
    return {
      ...this.#pendingOf(row),
      status: publicStatus(row.status),
      reviewerId: row.reviewer_id ?? null,
      reason: row.reason ?? null,
      resolvedAt: row.resolved_at ? new Date(row.resolved_at) : null,
      executedAt: row.executed_at ? new Date(row.executed_at) : null,
    };
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
    const { limit } = validate(expirePendingOptionsSchema, options ?? {}, "options");
    const recovered = (await this.#recoverStaleClaims({ limit }))
      .filter((entry) => entry.status === "expired")
      .map((entry) => entry.requestId);
    const now = this.#clock.now().toISOString();
    let rows: {
      request_id: string;
      agent_id: string;
      kind: string;
      action_hash: string;
      expires_at: string;
    }[];
    try {
      rows = await this.#store.query(sql`
        with expired as (
          update gov_gates.requests set status = 'expired', resolved_at = ${now}::timestamptz
          where request_id in (
            select request_id from gov_gates.requests
            where status = 'pending' and expires_at <= ${now}::timestamptz
            order by expires_at limit ${limit}
            for update skip locked
          ) and status = 'pending'
          returning request_id, agent_id, kind, action_hash, expires_at
        )
        select request_id::text as request_id, agent_id, kind, action_hash,
          ${sql.raw(ISO("expires_at"))} as expires_at,
          pg_notify(${GATES_RESOLVED_CHANNEL}, request_id::text) as notified
        from expired`);
    } catch (error) {
      throw new ApprovalStoreError("claim", null, error);
    }
    for (const row of rows) {
      await this.#record(row.agent_id, APPROVAL_EVENT_KINDS.expired, {
        requestId: row.request_id,
        kind: row.kind,
        actionHash: row.action_hash,
        expiresAt: row.expires_at,
        expiredAt: now,
      });
    }
    return [...recovered, ...rows.map((row) => row.request_id)].sort();
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
    for (const waiters of this.#waiters.values()) for (const waiter of waiters) waiter.wake();
    if (this.#inflight.size > 0) {
      let timer: NodeJS.Timeout | undefined;
      const settled = await Promise.race([
        Promise.allSettled([...this.#inflight]).then(() => true),
        new Promise<false>((resolve) => {
          timer = setTimeout(() => resolve(false), this.#options.auditTimeoutMs + CLOSE_GRACE_MS);
        }),
      ]);
      clearTimeout(timer);
      if (!settled)
        this.#logger.error(
          "The gates module closed with decisions still in flight; their claims are released once older than staleClaimMs.",
          { inFlight: this.#inflight.size },
        );
    }
    await this.#subscribing?.catch(() => undefined);
    const subscription = this.#subscription;
    this.#subscription = null;
    await subscription?.unsubscribe().catch(() => undefined);
  }

  /** Closes the module (`await using gates = …`). */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  // ---------------------------------------------------------------------------------------
  // Internals

  /**
   * A request row as the console sees it, its payload re-hashed and its request MAC checked: a
   * payload that no longer hashes to the action hash (changed in the database) is withheld; a
   * request that does not match its request MAC is flagged. Both are logged.
   */
  #pendingOf(row: RequestRow & { payload: unknown }): PendingApproval {
    const requestId = row.request_id;
    const actionHash = row.action_hash;
    const stored: unknown =
      typeof row.payload === "string" ? JSON.parse(row.payload) : (row.payload ?? null);
    let intact: boolean;
    try {
      intact = constantTimeEqualHex(actionHash, sha256(canonicalJson(stored, "payload")));
    } catch {
      intact = false;
    }
    if (!intact)
      this.#logger.error(
        "The stored payload of an approval request does not match its action hash (it was changed in the database); it is withheld. Deny the request.",
        { requestId },
      );
    const tokenVersion = Number(row.token_version) === 1 ? 1 : 2;
    const problem = this.#requestProblem({ ...row, token_version: Number(row.token_version) });
    if (problem !== null)
      this.#logger[row.request_mac === null ? "warn" : "error"](
        "An approval request does not match what was signed when it was made; it cannot be granted. Deny it.",
        { requestId, problem },
      );
    return {
      requestId,
      kind: row.kind,
      agentId: row.agent_id,
      actionHash,
      payload: intact ? stored : null,
      payloadIntact: intact,
      requestIntact: problem === null,
      createdAt: new Date(row.created_at),
      expiresAt: new Date(row.expires_at),
      tokenVersion,
    };
  }

  async #readRowRaw(requestId: string): Promise<RequestRow | null> {
    const rows = await this.#store.query<RequestRow>(
      sql`select ${ROW_COLUMNS} from gov_gates.requests where request_id = ${requestId}::uuid`,
    );
    const row = rows[0];
    if (!row) return null;
    row.token_version = Number(row.token_version);
    return row;
  }

  async #readRow(requestId: string): Promise<RequestRow | null> {
    try {
      return await this.#readRowRaw(requestId);
    } catch (error) {
      throw new ApprovalStoreError("read", requestId, error);
    }
  }

  /**
   * Write an event to the audit sink, waiting at most `auditTimeoutMs`.
   * @throws {AuditTimeoutError} the sink did not answer in time (the write may still land:
   *   that is logged when it does).
   */
  async #auditLog(event: AuditEventInput): Promise<AuditReceipt> {
    const writing = Promise.resolve().then(() => this.#audit.log(event));
    if (this.#audit === noopAuditSink) return writing;
    let timer: NodeJS.Timeout | undefined;
    let timedOut = false;
    const timeoutMs = this.#options.auditTimeoutMs;
    try {
      return await Promise.race([
        writing,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => {
            timedOut = true;
            reject(new AuditTimeoutError(timeoutMs));
          }, timeoutMs);
        }),
      ]);
    } finally {
      clearTimeout(timer);
      if (timedOut)
        writing.then(
          (receipt) => {
            if (!receipt.isPlaceholder)
              this.#logger.warn(
                `A ${event.kind} event was written after auditTimeoutMs had passed; the module had already given up on it.`,
                { agentId: event.agentId, requestId: event.metadata?.requestId },
              );
          },
          () => undefined,
        );
    }
  }

  /** Write an event; a failure is logged, never thrown (the callers decide what it means). */
  async #record(agentId: string, kind: string, metadata: AuditMetadata): Promise<void> {
    try {
      const receipt = await this.#auditLog({ agentId, kind, metadata });
      if (receipt.isPlaceholder && this.#audit !== noopAuditSink) {
        this.#logger.warn(`The ${kind} event could not be kept in the audit chain.`, {
          agentId,
          requestId: metadata.requestId,
        });
      }
    } catch (error) {
      this.#logger.error(`The ${kind} event was refused by the audit sink.`, {
        agentId,
        requestId: metadata.requestId,
        error: describe(error),
      });
    }
  }
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

/**
 * `error` without the errors it wraps: a database driver's error holds the statement and its
 * parameters. A `StoreError` keeps its kind, SQLSTATE and message (what the database said).
 */
function withoutStatement(error: unknown): Error {
  if (StoreError.isInstance(error))
    return new StoreError({
      kind: error.kind,
      message: error.message,
      sqlState: error.sqlState,
      constraint: error.constraint,
      table: error.table,
      schema: error.schema,
    });
  return new Error(describe(error));
}

function sha256(text: string): string {
  return createHash("sha256").update(text, "utf8").digest("hex");
}

/** The fields of a row that its request MAC (and its decision MAC) sign. */
function signedRequestOf(row: RequestRow): SignedRequest {
  return {
    requestId: row.request_id,
    kind: row.kind,
    agentId: row.agent_id,
    actionHash: row.action_hash,
    tokenVersion: row.token_version,
    keyId: row.key_id,
    tokenDigest: row.token_digest,
    createdAt: row.created_at,
    expiresAt: row.expires_at,
    operatorId: row.operator_id,
    operatorLookup: row.operator_lookup,
  };
}

/** What every approval event names about its request. */
function requestMetadata(row: RequestRow): AuditMetadata {
  return { requestId: row.request_id, kind: row.kind, actionHash: row.action_hash };
}

function publicStatus(status: string): ApprovalStatus {
  if (status === "granting" || status === "denying") return "resolving";
  return status as ApprovalStatus;
}

/** Whether a status is a claim (`granting` / `denying`): a decision being recorded. */
function isClaim(status: string): boolean {
  return status === CLAIM_STATUS.granted || status === CLAIM_STATUS.denied;
}

/** The gates module's definition, for `@gov/sdk` and for composing it by hand. */
export const gatesModule = defineModule({
  name: "gates",
  migrations: gatesMigrations,
  create: (context: ModuleContext, options: GatesOptions | undefined) =>
    new GatesModule(context, options ?? {}),
  close: (gates: GatesModule) => gates.close(),
});
