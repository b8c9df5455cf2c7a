/**
 * The tamper corpus: edits of `gov_scope.policies` that an attacker who can write the table
 * (but does not hold the chain key) would make to widen what an agent may call. Every one of
 * them must be refused by every process, reported, and leave the agent as denied as before.
 * Shared by the single-store tests (both engines) and the cross-process attack (real
 * Postgres, as a separate role).
 */
import { randomBytes } from "node:crypto";
import { ChainKey, canonicalJson, type SQL, sql } from "@gov/core";
import type { ScopePolicyInput } from "../models";
import type { ScopeCheckTarget } from "../module";
import { type ScopePolicyRejectionReason, signedPolicyPayload } from "../signature";
import { randomSecret } from "./index";

/** What the attacker is after, and how a process shows it did not get it. */
export type Probe =
  /** The call stays denied: with this code where the process held the agent's valid policy. */
  | { kind: "check"; target: ScopeCheckTarget; code: "SCOPE_VIOLATION" | "POLICY_NOT_REGISTERED" }
  /** `filterTools(tools)` still returns `expected` (hidden tools stay hidden). */
  | { kind: "filter"; tools: string[]; expected: string[] }
  /** The policy's `allowedModels` stay `expected`. */
  | { kind: "models"; expected: string[] };

/** What a tamper may use besides SQL. */
export interface TamperContext {
  /** The id of the chain key the victims' rows are signed with (it is stored in the table). */
  keyId: string;
  /** A MAC the real key made over some text — a MAC made for another purpose, to replay. */
  macOf(text: string): string;
}

export interface Tamper {
  name: string;
  agentId: string;
  /** Whether the agent has a valid policy (registered before the attack). */
  registered: boolean;
  statements(context: TamperContext): SQL[];
  probe: Probe;
  reason: ScopePolicyRejectionReason;
}

/** What every attacked agent is legitimately allowed. */
export function victimPolicy(agentId: string): ScopePolicyInput {
  return {
    agentId,
    allowedTools: ["read_invoice"],
    allowedApis: ["GET https://api.stripe.com/v1/*"],
    hiddenTools: ["delete_all"],
    allowedModels: ["gpt-4o-mini"],
  };
}

/** An agent with a wide policy, whose signed row is copied onto a victim's. */
export const DONOR: ScopePolicyInput = {
  agentId: "t-donor",
  allowedTools: ["read_invoice", "refund", "delete_user"],
  allowedApis: ["POST https://api.stripe.com/v1/*"],
  hiddenTools: [],
  allowedModels: ["gpt-4o"],
};

const WIDE_TOOLS = ["read_invoice", "delete_user"];
const DENY_DELETE_USER: Probe = {
  kind: "check",
  target: { tool: "delete_user" },
  code: "SCOPE_VIOLATION",
};

function randomHex(bytes = 32): string {
  return randomBytes(bytes).toString("hex");
}

function json(value: unknown): string {
  return JSON.stringify(value);
}

/** A victim's row with its tools widened, signed by the attacker's own key. */
function ownKeySignature(agentId: string, revision: number): { mac: string; key: ChainKey } {
  const key = new ChainKey(randomSecret());
  const victim = victimPolicy(agentId);
  const mac = key.hmacHex(
    signedPolicyPayload({
      agentId,
      allowedTools: WIDE_TOOLS,
      allowedApis: [...(victim.allowedApis ?? [])],
      hiddenTools: [...(victim.hiddenTools ?? [])],
      allowedModels: [...(victim.allowedModels ?? [])],
      revision,
    }),
  );
  return { mac, key };
}

/** The revision every tamper that bumps it writes: above anything the tests register. */
const BUMPED = 1_000;

/** A victim's row with its tools widened, its revision bumped, and the given signature. */
function widenedAndSigned(agentId: string, mac: string, keyId: string): SQL {
  return sql`update gov_scope.policies
    set allowed_tools = ${json(WIDE_TOOLS)}::jsonb, revision = ${BUMPED}, mac = ${mac}, key_id = ${keyId}
    where agent_id = ${agentId}`;
}

export const TAMPERS: readonly Tamper[] = [
  {
    name: "insert an unsigned row for an agent without a policy",
    agentId: "t-insert",
    registered: false,
    statements: () => [
      sql`insert into gov_scope.policies (agent_id, allowed_tools, allowed_apis, hidden_tools, allowed_models)
          values ('t-insert', ${json(WIDE_TOOLS)}::jsonb, '[]'::jsonb, '[]'::jsonb, '[]'::jsonb)`,
    ],
    probe: { kind: "check", target: { tool: "delete_user" }, code: "POLICY_NOT_REGISTERED" },
    reason: "unsigned",
  },
  {
    name: "insert a row with a made-up MAC under the real key id",
    agentId: "t-insert-forged",
    registered: false,
    statements: ({ keyId }) => [
      sql`insert into gov_scope.policies (agent_id, allowed_tools, allowed_apis, hidden_tools, allowed_models, revision, mac, key_id)
          values ('t-insert-forged', ${json(WIDE_TOOLS)}::jsonb, '[]'::jsonb, '[]'::jsonb, '[]'::jsonb, 1, ${randomHex()}, ${keyId})`,
    ],
    probe: { kind: "check", target: { tool: "delete_user" }, code: "POLICY_NOT_REGISTERED" },
    reason: "bad_signature",
  },
  {
    name: "widen allowed tools, revision unchanged",
    agentId: "t-widen-tools",
    registered: true,
    statements: () => [
      sql`update gov_scope.policies set allowed_tools = allowed_tools || '["delete_user"]'::jsonb
          where agent_id = 't-widen-tools'`,
    ],
    probe: DENY_DELETE_USER,
    reason: "bad_signature",
  },
  {
    name: "widen allowed tools and bump the revision",
    agentId: "t-widen-bump",
    registered: true,
    statements: () => [
      sql`update gov_scope.policies set allowed_tools = ${json(WIDE_TOOLS)}::jsonb, revision = ${BUMPED}
          where agent_id = 't-widen-bump'`,
    ],
    probe: DENY_DELETE_USER,
    reason: "bad_signature",
  },
  {
    name: "bump the revision only",
    agentId: "t-bump",
    registered: true,
    statements: () => [
      sql`update gov_scope.policies set revision = revision + 1 where agent_id = 't-bump'`,
    ],
    probe: DENY_DELETE_USER,
    reason: "bad_signature",
  },
  {
    name: "widen allowed APIs",
    agentId: "t-widen-apis",
    registered: true,
    statements: () => [
      sql`update gov_scope.policies
          set allowed_apis = '["GET https://api.stripe.com/v1/*", "POST https://api.stripe.com/v1/*"]'::jsonb,
              revision = ${BUMPED}
          where agent_id = 't-widen-apis'`,
    ],
    probe: {
      kind: "check",
      target: { api: "POST https://api.stripe.com/v1/refunds" },
      code: "SCOPE_VIOLATION",
    },
    reason: "bad_signature",
  },
  {
    name: "drop a hidden tool",
    agentId: "t-drop-hidden",
    registered: true,
    statements: () => [
      sql`update gov_scope.policies set hidden_tools = '[]'::jsonb, revision = ${BUMPED}
          where agent_id = 't-drop-hidden'`,
    ],
    probe: { kind: "filter", tools: ["read_invoice", "delete_all"], expected: ["read_invoice"] },
    reason: "bad_signature",
  },
  {
    name: "move a hidden tool into the allowed tools",
    agentId: "t-unhide",
    registered: true,
    statements: () => [
      sql`update gov_scope.policies
          set hidden_tools = '[]'::jsonb, allowed_tools = '["read_invoice", "delete_all"]'::jsonb
          where agent_id = 't-unhide'`,
    ],
    probe: { kind: "check", target: { tool: "delete_all" }, code: "SCOPE_VIOLATION" },
    reason: "bad_signature",
  },
  {
    name: "widen allowed models",
    agentId: "t-widen-models",
    registered: true,
    statements: () => [
      sql`update gov_scope.policies set allowed_models = '["gpt-4o-mini", "gpt-4o"]'::jsonb, revision = ${BUMPED}
          where agent_id = 't-widen-models'`,
    ],
    probe: { kind: "models", expected: ["gpt-4o-mini"] },
    reason: "bad_signature",
  },
  {
    name: "copy another agent's signed row, MAC, key id and revision included",
    agentId: "t-copy",
    registered: true,
    statements: () => [
      sql`update gov_scope.policies as victim
          set allowed_tools = donor.allowed_tools, allowed_apis = donor.allowed_apis,
              hidden_tools = donor.hidden_tools, allowed_models = donor.allowed_models,
              revision = donor.revision, mac = donor.mac, key_id = donor.key_id
          from gov_scope.policies as donor
          where victim.agent_id = 't-copy' and donor.agent_id = 't-donor'`,
    ],
    probe: { kind: "check", target: { tool: "refund" }, code: "SCOPE_VIOLATION" },
    reason: "bad_signature",
  },
  {
    name: "widen allowed tools and replace the MAC with another",
    agentId: "t-edit-mac",
    registered: true,
    statements: () => [
      sql`update gov_scope.policies set allowed_tools = ${json(WIDE_TOOLS)}::jsonb, mac = ${randomHex()}
          where agent_id = 't-edit-mac'`,
    ],
    probe: DENY_DELETE_USER,
    reason: "bad_signature",
  },
  {
    name: "widen allowed tools and empty the MAC",
    agentId: "t-empty-mac",
    registered: true,
    statements: () => [
      sql`update gov_scope.policies set allowed_tools = ${json(WIDE_TOOLS)}::jsonb, mac = ''
          where agent_id = 't-empty-mac'`,
    ],
    probe: DENY_DELETE_USER,
    reason: "bad_signature",
  },
  {
    name: "strip the signature (a row as written before signing)",
    agentId: "t-strip",
    registered: true,
    statements: () => [
      sql`update gov_scope.policies set allowed_tools = ${json(WIDE_TOOLS)}::jsonb, mac = null, key_id = null
          where agent_id = 't-strip'`,
    ],
    probe: DENY_DELETE_USER,
    reason: "unsigned",
  },
  {
    name: "sign the widened row with the attacker's own key, under its own key id",
    agentId: "t-own-key",
    registered: true,
    statements: () => {
      const { mac, key } = ownKeySignature("t-own-key", BUMPED);
      return [widenedAndSigned("t-own-key", mac, key.id)];
    },
    probe: DENY_DELETE_USER,
    reason: "unknown_key",
  },
  {
    name: "sign the widened row with the attacker's own key, under the real key id",
    agentId: "t-own-key-real-id",
    registered: true,
    statements: ({ keyId }) => {
      const { mac } = ownKeySignature("t-own-key-real-id", BUMPED);
      return [widenedAndSigned("t-own-key-real-id", mac, keyId)];
    },
    probe: DENY_DELETE_USER,
    reason: "bad_signature",
  },
  {
    name: "a random key id",
    agentId: "t-random-key-id",
    registered: true,
    statements: () => [
      sql`update gov_scope.policies set allowed_tools = ${json(WIDE_TOOLS)}::jsonb, key_id = ${randomHex(8)}
          where agent_id = 't-random-key-id'`,
    ],
    probe: DENY_DELETE_USER,
    reason: "unknown_key",
  },
  {
    name: "replay a MAC the real key made for another purpose (another domain tag)",
    agentId: "t-other-domain",
    registered: true,
    statements: ({ keyId, macOf }) => {
      const victim = victimPolicy("t-other-domain");
      const mac = macOf(
        canonicalJson({
          type: "gov.gates.decision",
          agentId: "t-other-domain",
          allowedTools: WIDE_TOOLS,
          allowedApis: victim.allowedApis,
          hiddenTools: victim.hiddenTools,
          allowedModels: victim.allowedModels,
          revision: BUMPED,
        }),
      );
      return [widenedAndSigned("t-other-domain", mac, keyId)];
    },
    probe: DENY_DELETE_USER,
    reason: "bad_signature",
  },
  {
    name: "a revision beyond 2^53",
    agentId: "t-huge-revision",
    registered: true,
    statements: () => [
      sql`update gov_scope.policies set allowed_tools = ${json(WIDE_TOOLS)}::jsonb, revision = 9007199254740993
          where agent_id = 't-huge-revision'`,
    ],
    probe: DENY_DELETE_USER,
    reason: "malformed",
  },
  {
    name: "allowed tools that are not an array of names",
    agentId: "t-not-a-list",
    registered: true,
    statements: () => [
      sql`update gov_scope.policies set allowed_tools = '{"0": "delete_user"}'::jsonb, revision = ${BUMPED}
          where agent_id = 't-not-a-list'`,
    ],
    probe: DENY_DELETE_USER,
    reason: "malformed",
  },
  {
    name: "allowed tools nested 1,000 deep",
    agentId: "t-deep",
    registered: true,
    statements: () => [
      sql`update gov_scope.policies
          set allowed_tools = (repeat('[', 1000) || '"delete_user"' || repeat(']', 1000))::jsonb, revision = ${BUMPED}
          where agent_id = 't-deep'`,
    ],
    probe: DENY_DELETE_USER,
    reason: "malformed",
  },
];
