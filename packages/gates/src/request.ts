import { randomUUID } from "node:crypto";
import { inspect } from "node:util";
import { describeError, type HaltCheckContext, StoreError, sql } from "@gov/core";
import { lookUpOperator } from "./decision";
import { ApprovalKeyInUseError } from "./errors";
import { APPROVAL_EVENT_KINDS } from "./events";
import type { CanonicalPayload } from "./models";
import { record } from "./recorder";
import { sha256 } from "./rows";
import type { GatesRuntime } from "./runtime";
import { requests } from "./schema";
import { requestMacInput } from "./signatures";
import { mintToken, tokenDigest } from "./token";

const REQUEST_PATH: HaltCheckContext = Object.freeze({ path: "gates.request" });

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
  /** The caller's key for the request (`request(…, { key })`), or null. */
  readonly key: string | null;
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
    key: string | null;
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
    this.key = fields.key;
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
      key: this.key,
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
  key: string | null;
  stored: boolean;
}

/** The unique constraint that holds one request per agent, kind and key. */
const KEY_CONSTRAINT = "requests_agent_kind_key";

/**
 * Open a request (what `GatesModule.request` does, its input validated): the halt check, the
 * operator look-up, the token, the row and its request MAC, and the audit event.
 * @throws {ApprovalKeyInUseError} the key is the agent's for another request of this kind
 *   (nothing was stored or recorded, and the token is dropped).
 */
export async function openRequest(
  runtime: GatesRuntime,
  checkedKind: string,
  id: string,
  parsed: {
    payload?: CanonicalPayload | undefined;
    expiresInMs?: number | undefined;
    key?: string | undefined;
  },
): Promise<ApprovalRequest> {
  await runtime.halt.assertAlive(id, REQUEST_PATH);
  // The operator answering for the agent now is bound to the request: neither they nor the
  // operator at grant time may grant it. A failed lookup makes the request ungrantable.
  const operator = await lookUpOperator(runtime, id);
  if (operator.lookup === "failed")
    runtime.logger.warn(
      "The operator bound to an agent could not be looked up for its approval request; the request can be denied but not granted.",
      { agentId: id, error: describeError(operator.error) },
    );
  const payload = parsed.payload ?? { value: {}, canonical: "{}" };
  const actionHash = sha256(payload.canonical);
  const expiresInMs = parsed.expiresInMs ?? runtime.options.defaultExpiresInMs;
  const createdAtMs = runtime.clock.nowMs();
  const expiresAtMs = createdAtMs + expiresInMs;
  const requestId = randomUUID();
  const version: 1 | 2 = runtime.options.enableV2Tokens ? 2 : 1;
  const key = runtime.keyring.current;
  const token = mintToken(key, version, { requestId, actionHash, expiresAtMs });
  const createdAt = new Date(createdAtMs);
  const expiresAt = new Date(expiresAtMs);
  const digest = tokenDigest(token);
  const requestKey = parsed.key ?? null;
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
      key: requestKey,
    }),
  );
  const metadata = {
    requestId,
    kind: checkedKind,
    actionHash,
    expiresAt: expiresAt.toISOString(),
    tokenVersion: version,
    keyId: key.id,
    ...(requestKey === null ? {} : { key: requestKey }),
  };
  let stored = true;
  try {
    await runtime.store.query(sql`
      insert into ${requests}
        (request_id, kind, agent_id, action_hash, payload, token_version, key_id, token_digest, status,
          created_at, expires_at, operator_id, operator_lookup, request_mac, request_key)
      values (${requestId}::uuid, ${checkedKind}, ${id}, ${actionHash}, ${payload.canonical}::jsonb, ${version},
        ${key.id}, ${digest}, 'pending', ${createdAt.toISOString()}::timestamptz, ${expiresAt.toISOString()}::timestamptz,
        ${operator.operatorId}, ${operator.lookup}, ${requestMac}, ${requestKey})`);
  } catch (error) {
    // Not a failure to store: the caller's key names another request. Nothing was stored.
    if (requestKey !== null && StoreError.isInstance(error) && error.constraint === KEY_CONSTRAINT)
      throw new ApprovalKeyInUseError({
        agentId: id,
        kind: checkedKind,
        key: requestKey,
        cause: error,
      });
    stored = false;
    runtime.logger.warn(
      "An approval request could not be stored; it was returned with stored: false and its token cannot be granted.",
      { requestId, agentId: id, kind: checkedKind, error: describeError(error) },
    );
    await record(runtime, id, APPROVAL_EVENT_KINDS.requestFailed, {
      ...metadata,
      error: describeError(error),
    });
  }
  if (stored) await record(runtime, id, APPROVAL_EVENT_KINDS.requested, metadata);
  return new ApprovalRequest({
    requestId,
    kind: checkedKind,
    agentId: id,
    actionHash,
    createdAt,
    expiresAt,
    tokenVersion: version,
    key: requestKey,
    stored,
    token,
  });
}
