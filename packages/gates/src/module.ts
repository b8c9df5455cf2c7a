import { createHash, randomUUID } from "node:crypto";
import { inspect } from "node:util";
import {
  type AuditMetadata,
  type AuditSink,
  type Clock,
  canonicalJson,
  constantTimeEqualHex,
  defineModule,
  type HaltCheckContext,
  type HaltGuard,
  InvalidArgumentError,
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
  type Subscription,
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
  waitForOptionsSchema,
} from "./models";
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
  /** A genuine token for a known request was refused (replay, expiry, self-approval, …). */
  refused: "approval.refused",
  /** A legacy v1 token was accepted before `acceptV1Until`. */
  legacyTokenParsed: "gates.legacy_token_parsed",
} as const;

const REQUEST_PATH: HaltCheckContext = Object.freeze({ path: "gates.request" });

/** Domain of the decision MAC (the signed JSON also names its type). */
const DECISION_TYPE = "gov.gates.decision";

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
  /** The payload, for the reviewer to read. */
  payload: unknown;
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
  /** When `requireApproval` ran the approved action (it runs once). */
  executedAt: Date | null;
}

/** Options of {@link GatesModule.listPending}. */
export interface ListPendingOptions {
  /** Only this agent's requests. */
  agentId?: string;
  /** Only requests of this kind. */
  kind?: string;
  /** At most this many, oldest first (1–10000). @default 100 */
  limit?: number;
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
   * the same arguments (the action hash must match). Runs at most once per request.
   * @throws {ApprovalPending} not decided yet. @throws {ApprovalDenied} denied.
   * @throws {ApprovalTokenError} `already_used` (ran before) or `action_hash_mismatch`.
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
}

const ISO = (column: string) =>
  `to_char(${column} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;

const ROW_COLUMNS = sql.raw(
  [
    "request_id::text as request_id",
    "kind",
    "agent_id",
    "action_hash",
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
  ].join(", "),
);

const PENDING_COLUMNS = sql.raw(
  [
    "request_id::text as request_id",
    "kind",
    "agent_id",
    "action_hash",
    "payload",
    "token_version",
    `${ISO("created_at")} as created_at`,
    `${ISO("expires_at")} as expires_at`,
  ].join(", "),
);

/** The status a claim moves a request to, per decision. */
const CLAIM_STATUS = { granted: "granting", denied: "denying" } as const;

/** How often, at most, one waiter repeats a warning about a failing read. */
const WARN_EVERY_MS = 60_000;

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
 *   only reads; `requireApproval()` wraps a function behind an approval.
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
   * first (`AgentHaltedError`). A store failure does not throw: the request is returned
   * with `stored: false`, a warning is logged and `approval.request_failed` recorded; its
   * token will be refused. A stored request is recorded as `approval.requested`.
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
          (request_id, kind, agent_id, action_hash, payload, token_version, key_id, token_digest, status, created_at, expires_at)
        values (${requestId}::uuid, ${checkedKind}, ${id}, ${actionHash}, ${payload.canonical}::jsonb, ${version},
          ${key.id}, ${tokenDigest(token)}, 'pending', ${createdAt.toISOString()}::timestamptz, ${expiresAt.toISOString()}::timestamptz)`);
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
   * request, exactly one wins; the others are refused `already_used`. Refuses a reviewer who
   * is the agent or its bound operator (`SelfApprovalError`), and fails closed when the
   * operator cannot be looked up. No halt check: a reviewer may resolve a request made
   * before a halt. Recorded as `approval.granted` before any waiter can see the grant.
   *
   * @example
   * ```ts
   * await gates.grant(token, { reviewerId: "alice@company.com" });
   * ```
   * @throws {ApprovalTokenError} the token was refused (see `reason`); {@link TokenVersionTooOldError} for v1 after the cut-off.
   * @throws {SelfApprovalError} / {@link SelfApprovalUnverifiableError} the reviewer may not (or cannot be shown to be allowed to) grant.
   * @throws {ApprovalNotRecordedError} the audit event could not be written; nothing changed.
   * @throws {ApprovalStoreError} the database could not be reached.
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
    const attempt = decision === "granted" ? "grant" : "deny";
    const parsed = this.#verifyToken(token, attempt);
    const digest = tokenDigest(token);
    const requestId = parsed.requestId;
    const row = await this.#readRow(requestId);
    if (!row) {
      this.#logger.warn("A genuine approval token names a request that is not stored; refused.", {
        requestId,
        attempt,
      });
      throw new ApprovalTokenError({ reason: "unknown_request", requestId });
    }
    const refuse = async (
      reason: ApprovalTokenReason,
      extra: AuditMetadata = {},
      note?: string,
    ) => {
      await this.#record(row.agent_id, APPROVAL_EVENT_KINDS.refused, {
        ...requestMetadata(row),
        attempt,
        reviewerId: input.reviewerId,
        reason,
        ...extra,
      });
      return new ApprovalTokenError({ reason, requestId, ...(note ? { note } : {}) });
    };
    if (!constantTimeEqualHex(row.token_digest, digest)) throw await refuse("signature_mismatch");
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
    if (parsed.expiresAtMs <= nowMs || row.status === "expired")
      throw await refuse(
        "expired",
        {},
        `It expired at ${new Date(parsed.expiresAtMs).toISOString()}.`,
      );
    if (row.status !== "pending")
      throw await refuse("already_used", { status: publicStatus(row.status) });
    if (decision === "granted") await this.#checkSelfApproval(row, input.reviewerId);

    // The claim: one conditional update decides who wins. It is invisible to waiters, who
    // only act on `granted` / `denied`, until the audit event is durable.
    const now = new Date(nowMs).toISOString();
    const key = this.#keyring.current;
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
    const mac = key.hmacHex(decisionPayload(result));
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
      if (current && current.status === "pending") throw await refuse("expired");
      throw await refuse(current?.status === "expired" ? "expired" : "already_used", {
        status: current ? publicStatus(current.status) : null,
      });
    }

    // The evidence: the decision is made only once its audit event is durable.
    const eventKind =
      decision === "granted" ? APPROVAL_EVENT_KINDS.granted : APPROVAL_EVENT_KINDS.denied;
    let failure: unknown = null;
    try {
      const receipt = await this.#audit.log({
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
      await this.#release(requestId, claimStatus);
      this.#logger.error(
        `A ${attempt} could not be recorded in the audit chain; the request is still pending.`,
        {
          requestId,
          error: describe(failure),
        },
      );
      throw new ApprovalNotRecordedError(requestId, decision, failure);
    }

    // Publish: waiters see the decision, and are woken, when this commits.
    try {
      await this.#store.query(sql`
        with published as (
          update gov_gates.requests set status = ${decision}
          where request_id = ${requestId}::uuid and status = ${claimStatus}
          returning request_id
        )
        select pg_notify(${GATES_RESOLVED_CHANNEL}, request_id::text) from published`);
    } catch (error) {
      this.#logger.error(
        `A ${attempt} was recorded in the audit chain but could not be published; its waiters will time out.`,
        { requestId, error: describe(error) },
      );
      throw new ApprovalStoreError("publish", requestId, error);
    }
    return result;
  }

  /** Parse and verify a token, without the database. */
  #verifyToken(token: string, attempt: "grant" | "deny"): ParsedToken {
    let parsed: ParsedToken;
    try {
      parsed = parseToken(token);
      if (parsed.version === 1) {
        const until = this.#options.acceptV1Until;
        if (until === null || this.#clock.nowMs() >= until.getTime())
          throw new TokenVersionTooOldError(parsed.requestId, until);
      }
      verifyTokenMac(parsed, this.#keyring);
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
    return parsed;
  }

  async #checkSelfApproval(row: RequestRow, reviewerId: string): Promise<void> {
    const reviewer = comparable(reviewerId);
    const record = async (relation: string) => {
      await this.#record(row.agent_id, APPROVAL_EVENT_KINDS.refused, {
        ...requestMetadata(row),
        attempt: "grant",
        reviewerId,
        reason: relation,
      });
    };
    if (reviewer === comparable(row.agent_id)) {
      await record("self_approval");
      throw new SelfApprovalError({
        requestId: row.request_id,
        agentId: row.agent_id,
        reviewerId,
        relation: "agent",
      });
    }
    let operator: string | null;
    try {
      operator = await this.#operators.operatorOf(row.agent_id);
    } catch (error) {
      await record("operator_unknown");
      throw new SelfApprovalUnverifiableError(row.request_id, row.agent_id, error);
    }
    if (operator !== null && operator !== undefined && typeof operator !== "string") {
      await record("operator_unknown");
      throw new SelfApprovalUnverifiableError(
        row.request_id,
        row.agent_id,
        new Error(`the operators port returned ${typeof operator}, not a string or null`),
      );
    }
    if (typeof operator === "string" && comparable(operator) === reviewer) {
      await record("self_approval");
      throw new SelfApprovalError({
        requestId: row.request_id,
        agentId: row.agent_id,
        reviewerId,
        relation: "operator",
      });
    }
  }

  /** Give a claim back: the decision was not recorded, so it was not made. */
  async #release(requestId: string, claimStatus: string): Promise<void> {
    try {
      await this.#store.query(sql`
        update gov_gates.requests set
          status = 'pending', reviewer_id = null, reason = null, resolved_at = null,
          decision_key_id = null, decision_mac = null
        where request_id = ${requestId}::uuid and status = ${claimStatus}`);
    } catch (error) {
      this.#logger.error(
        "A claim whose audit event failed could not be released; the request stays unresolved and its waiters will time out.",
        { requestId, error: describe(error) },
      );
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
   * not missed. It only reads; it never resolves a request itself. A stored decision that
   * does not verify under the keyring is refused (`ApprovalIntegrityError`).
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
      for (;;) {
        if (this.#closed)
          throw new ApprovalStoreError("read", id, new Error("the gates module was closed"));
        waiter.woken = false;
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

  #verifyDecision(row: RequestRow): void {
    const id = row.request_id;
    if (!row.decision_key_id || !row.decision_mac || !row.reviewer_id || !row.resolved_at)
      throw new ApprovalIntegrityError(id, "it has no signed decision.");
    const key = this.#keyring.find(row.decision_key_id);
    if (!key || key.id !== row.decision_key_id)
      throw new ApprovalIntegrityError(
        id,
        `it was signed by key ${row.decision_key_id}, which is not in the keyring.`,
      );
    const payload = decisionPayload({
      requestId: id,
      kind: row.kind,
      agentId: row.agent_id,
      actionHash: row.action_hash,
      decision: row.status as "granted" | "denied",
      reviewerId: row.reviewer_id,
      reason: row.reason,
      resolvedAt: new Date(row.resolved_at),
    });
    if (!key.verifyHex(payload, row.decision_mac))
      throw new ApprovalIntegrityError(
        id,
        "its MAC does not match its fields (the row was changed).",
      );
  }

  // ---------------------------------------------------------------------------------------
  // Execution

  /**
   * Check, at execution time, that the action about to run is the one that was approved:
   * the request must be granted (with a decision that verifies) and `payload` must hash to
   * its action hash. Refuses otherwise; only reads.
   *
   * @example
   * ```ts
   * await gates.verifyAction(requestId, { pr: 142, environment: "production" });
   * await deploy(142);
   * ```
   * @returns the decision.
   * @throws {ApprovalTokenError} `action_hash_mismatch` (recorded as `approval.refused`) or `unknown_request`.
   * @throws {ApprovalPending} not decided yet. @throws {ApprovalDenied} denied.
   * @throws {ApprovalTimeout} expired undecided. @throws {ApprovalIntegrityError} the stored decision does not verify.
   */
  async verifyAction(requestId: string, payload: unknown): Promise<ApprovalDecision> {
    const id = validate(requestIdSchema, requestId, "requestId");
    const checked = validate(payloadSchema, payload, "payload");
    const row = await this.#readRow(id);
    if (!row) throw new ApprovalTokenError({ reason: "unknown_request", requestId: id });
    if (row.status === "denied") {
      this.#verifyDecision(row);
      throw new ApprovalDenied(id, row.reviewer_id, row.reason);
    }
    if (row.status === "expired")
      throw new ApprovalTimeout({ requestId: id, timeoutMs: 0, expired: true });
    if (row.status !== "granted") {
      if (row.status === "pending" && Date.parse(row.expires_at) <= this.#clock.nowMs())
        throw new ApprovalTimeout({ requestId: id, timeoutMs: 0, expired: true });
      throw new ApprovalPending(id);
    }
    this.#verifyDecision(row);
    const presented = sha256(checked.canonical);
    if (!constantTimeEqualHex(row.action_hash, presented)) {
      await this.#record(row.agent_id, APPROVAL_EVENT_KINDS.refused, {
        ...requestMetadata(row),
        attempt: "execute",
        reason: "action_hash_mismatch",
        presentedActionHash: presented,
      });
      throw new ApprovalTokenError({
        reason: "action_hash_mismatch",
        requestId: id,
        note: "What is about to run is not what was approved.",
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
   * it later. Either way the approved action runs at most once, and only with the arguments
   * that were approved.
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
      await gates.#consume(request.requestId, payload);
      return await fn.apply(this, args);
    } as ApprovalGatedFunction<Args, Result>;
    gated.resume = async function (
      this: unknown,
      requestId: string,
      ...args: Args
    ): Promise<Awaited<Result>> {
      await gates.#consume(requestId, payloadOf(args));
      return await fn.apply(this, args);
    };
    return gated;
  }

  /** Verify the approved action, then mark it executed (once). */
  async #consume(requestId: string, payload: unknown): Promise<void> {
    await this.verifyAction(requestId, payload);
    let rows: { request_id: string }[];
    try {
      rows = await this.#store.query<{ request_id: string }>(sql`
        update gov_gates.requests set executed_at = ${this.#clock.now().toISOString()}::timestamptz
        where request_id = ${requestId}::uuid and status = 'granted' and executed_at is null
        returning request_id::text as request_id`);
    } catch (error) {
      throw new ApprovalStoreError("consume", requestId, error);
    }
    if (rows.length === 0)
      throw new ApprovalTokenError({
        reason: "already_used",
        requestId,
        note: "The approved action already ran once.",
      });
  }

  // ---------------------------------------------------------------------------------------
  // Console and CLI

  /**
   * Requests waiting for a decision (pending and not yet expired by the module's clock),
   * oldest first, with their payloads for the reviewer to read.
   * @throws {ApprovalStoreError} the database could not be read.
   */
  async listPending(options: ListPendingOptions = {}): Promise<PendingApproval[]> {
    const { agentId, kind, limit } = validate(listPendingOptionsSchema, options ?? {}, "options");
    const now = this.#clock.now().toISOString();
    let rows: Record<string, unknown>[];
    try {
      rows = await this.#store.query(sql`
        select ${PENDING_COLUMNS} from gov_gates.requests
        where status = 'pending' and expires_at > ${now}::timestamptz
          ${agentId === undefined ? sql`` : sql`and agent_id = ${agentId}`}
          ${kind === undefined ? sql`` : sql`and kind = ${kind}`}
        order by created_at, request_id
        limit ${limit}`);
    } catch (error) {
      throw new ApprovalStoreError("read", null, error);
    }
    return rows.map((row) => pendingOf(row));
  }

  /**
   * One request and where it stands, or null when it is not stored.
   * @throws {ApprovalStoreError} the database could not be read.
   */
  async getRequest(requestId: string): Promise<ApprovalRecord | null> {
    const id = validate(requestIdSchema, requestId, "requestId");
    let rows: Record<string, unknown>[];
    try {
      rows = await this.#store.query(sql`
        select ${PENDING_COLUMNS}, status, reviewer_id, reason,
          ${sql.raw(ISO("resolved_at"))} as resolved_at, ${sql.raw(ISO("executed_at"))} as executed_at
        from gov_gates.requests where request_id = ${id}::uuid`);
    } catch (error) {
      throw new ApprovalStoreError("read", id, error);
    }
    const row = rows[0];
    if (!row) return null;
    return {
      ...pendingOf(row),
      status: publicStatus(String(row.status)),
      reviewerId: (row.reviewer_id as string | null) ?? null,
      reason: (row.reason as string | null) ?? null,
      resolvedAt: row.resolved_at ? new Date(String(row.resolved_at)) : null,
      executedAt: row.executed_at ? new Date(String(row.executed_at)) : null,
    };
  }

  /**
   * Clean-up: mark requests that are past their expiry (by the module's clock) with no
   * decision as expired, wake their waiters, and record each as `approval.expired`. Safe
   * to run from many processes at once (each request is expired once).
   *
   * @returns the ids of the requests it expired.
   * @throws {ApprovalStoreError} the database could not be reached.
   */
  async expirePending(options: { limit?: number } = {}): Promise<string[]> {
    const { limit } = validate(expirePendingOptionsSchema, options ?? {}, "options");
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
    return rows.map((row) => row.request_id).sort();
  }

  /** Stop listening; waiters in progress fail closed. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const waiters of this.#waiters.values()) for (const waiter of waiters) waiter.wake();
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

  /** Write an event; a failure is logged, never thrown (the callers decide what it means). */
  async #record(agentId: string, kind: string, metadata: AuditMetadata): Promise<void> {
    try {
      const receipt = await this.#audit.log({ agentId, kind, metadata });
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

function sha256(text: string): string {
  return createHash("sha256").update(text, "utf8").digest("hex");
}

/** The signed form of a decision. */
function decisionPayload(decision: ApprovalDecision): string {
  return canonicalJson({
    type: DECISION_TYPE,
    v: 1,
    requestId: decision.requestId,
    kind: decision.kind,
    agentId: decision.agentId,
    actionHash: decision.actionHash,
    decision: decision.decision,
    reviewerId: decision.reviewerId,
    reason: decision.reason,
    resolvedAt: decision.resolvedAt.toISOString(),
  });
}

/** What every approval event names about its request. */
function requestMetadata(row: RequestRow): AuditMetadata {
  return { requestId: row.request_id, kind: row.kind, actionHash: row.action_hash };
}

function publicStatus(status: string): ApprovalStatus {
  if (status === "granting" || status === "denying") return "resolving";
  return status as ApprovalStatus;
}

/** Ids compared for self-approval: case, width and composition do not make two people. */
function comparable(id: string): string {
  return id.normalize("NFKC").trim().toLowerCase();
}

function pendingOf(row: Record<string, unknown>): PendingApproval {
  return {
    requestId: String(row.request_id),
    kind: String(row.kind),
    agentId: String(row.agent_id),
    actionHash: String(row.action_hash),
    payload: typeof row.payload === "string" ? (JSON.parse(row.payload) as unknown) : row.payload,
    createdAt: new Date(String(row.created_at)),
    expiresAt: new Date(String(row.expires_at)),
    tokenVersion: Number(row.token_version) === 1 ? 1 : 2,
  };
}

/** The gates module's definition, for `@gov/sdk` and for composing it by hand. */
export const gatesModule = defineModule({
  name: "gates",
  migrations: gatesMigrations,
  create: (context: ModuleContext, options: GatesOptions | undefined) =>
    new GatesModule(context, options ?? {}),
  close: (gates: GatesModule) => gates.close(),
});
