import type { ModuleContext } from "@gov/core";
import type { ApprovalRequest } from "./request";

/** Options of {@link GatesModule.request}. */
export interface RequestOptions {
  /**
   * The action to approve, as JSON. Its SHA-256 over the RFC 8785 form is the action hash the
   * token is bound to. ≤ 64 KiB. @default {}
   */
  payload?: unknown;
  /**
   * How long the request stays open, in ms (1 s – 30 days).
   * @default the module's `defaultExpiresInMs` (one hour)
   */
  expiresInMs?: number;
  /** @deprecated use `expiresInMs` (the same value, in ms); giving both is refused. */
  expiresIn?: number;
  /**
   * The caller's name for the request (1–256 characters, an id: no control, invisible or blank
   * characters but the ASCII space), e.g. the AI SDK's tool call id: `findRequest({ agentId,
   * kind, key })` finds the request by it from any process — one that restarted, or another one
   * resuming the work. Unique per agent and kind: a key already used is refused
   * (`ApprovalKeyInUseError`) and nothing is stored. Signed with the request.
   * @default none (the request is found by its `requestId` only)
   */
  key?: string;
}

/** What {@link GatesModule.findRequest} looks a request up by: all three are required. */
export interface FindRequestOptions {
  /** The agent that made the request. */
  agentId: string;
  /** The kind it was made as, e.g. `tool.wire_money`. */
  kind: string;
  /** The `key` it was made with. */
  key: string;
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
  /** How long to wait, in ms (0 reads once). @default until the request expires */
  timeoutMs?: number;
  /** @deprecated use `timeoutMs` (the same value, in ms); giving both is refused. */
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
  /** The caller's key for the request (`request(…, { key })`), or null when it was made without one. */
  key: string | null;
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
   * False when what the request is — its kind, agent, expiry, token, operator at request time, key —
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
  timeoutMs?: number;
  /** @deprecated use `timeoutMs` (the same value, in ms); giving both is refused. */
  timeout?: number;
  /** How long the request stays open, in ms. @default the module's `defaultExpiresInMs` */
  expiresInMs?: number;
  /** @deprecated use `expiresInMs` (the same value, in ms); giving both is refused. */
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
