/**
 * The writes of scope policies: each registration upserted into `gov_scope.policies`, signed
 * in the same transaction, announced on commit, and read back to check that the stored row
 * holds it.
 */
import type { Keyring, Store } from "@gov/core";
import { sql } from "@gov/core";
import { eq } from "drizzle-orm";
import type { ScopePolicy } from "./models";
import { policies } from "./schema";
import { type SignedPolicyFields, signPolicy, verifyStoredPolicy } from "./signature";

/**
 * The channel on which registrations are announced to other processes. The payload is the
 * agent id: a wake-up that says which row to re-read, never state. What is read is verified
 * (its MAC under the chain key) before it is enforced.
 */
export const SCOPE_POLICY_CHANNEL = "gov_scope_policies";

/**
 * The audit event kind of a registration that was written but is not what the stored row
 * holds (a trigger, a rule or another writer on `gov_scope.policies` changed or discarded
 * it): the policy is enforced in the registering process only, and the write is retried.
 * `metadata.reason` is a {@link ScopePolicyNotPersistedReason}. Recorded once per agent until
 * a write of its policy is stored, per process.
 */
export const SCOPE_POLICY_NOT_PERSISTED_KIND = "scope.policy_not_persisted";

/**
 * Why a registration was not stored as it was signed (`scope.policy_not_persisted`):
 *
 * - `write_discarded` — the upsert of the row wrote nothing (a trigger returned NULL);
 * - `revision_not_advanced` — the stored revision is not greater than the one before the
 *   write, so processes holding it would ignore the new policy;
 * - `row_differs` — read back after commit, the row is not the signed policy (other lists,
 *   another revision, no or a broken signature, or no row).
 */
export type ScopePolicyNotPersistedReason =
  | "write_discarded"
  | "revision_not_advanced"
  | "row_differs";

/**
 * A registration was written, but the stored row does not hold it (see
 * {@link ScopePolicyNotPersistedReason}): reported as an error and retried, never applied
 * as the row other processes load.
 */
export class PolicyNotStored extends Error {
  constructor(
    readonly reason: ScopePolicyNotPersistedReason,
    readonly problem: string,
  ) {
    super(problem);
  }
}

/** The four lists of a policy, as signed. */
type PolicyLists = Pick<
  SignedPolicyFields,
  "allowedTools" | "allowedApis" | "hiddenTools" | "allowedModels"
>;

/** The same lists, in the same order. */
function sameLists(a: PolicyLists, b: PolicyLists): boolean {
  const same = (x: readonly string[], y: readonly string[]) =>
    x.length === y.length && x.every((item, index) => item === y[index]);
  return (
    same(a.allowedTools, b.allowedTools) &&
    same(a.allowedApis, b.allowedApis) &&
    same(a.hiddenTools, b.hiddenTools) &&
    same(a.allowedModels, b.allowedModels)
  );
}

export const ROW_COLUMNS = {
  agentId: policies.agentId,
  allowedTools: policies.allowedTools,
  allowedApis: policies.allowedApis,
  hiddenTools: policies.hiddenTools,
  allowedModels: policies.allowedModels,
  revision: policies.revision,
  mac: policies.mac,
  keyId: policies.keyId,
};

/**
 * Upsert the policy, sign the stored row (its revision is known only once the row is
 * locked, so the MAC is written by a second statement of the same transaction: no other
 * process ever sees the row unsigned) and announce it on commit; then read the row back.
 *
 * The revision is the next value of `gov_scope.policy_revision`, and never less than one past
 * the row's own: a row deleted and written again does not start over below what running
 * processes hold. A trigger, a rule or another writer on the table can make every statement
 * succeed while the row holds something else; so the revision must have advanced past the
 * one locked before the write, and the row read back after commit must be the signed policy
 * (or a newer verified one: another process registered since, and its notification brings
 * it here).
 *
 * @throws {PolicyNotStored} when the row does not hold the policy; any other error when the
 *   write or the read-back failed (both: retried).
 */
export async function writePolicy(
  store: Store,
  keyring: Keyring,
  policy: ScopePolicy,
): Promise<number> {
  const key = keyring.current;
  // The snapshot frozen at construction: exactly what was validated and is enforced.
  const data = policy.toJSON();
  const agentId = data.agentId;
  const values = {
    allowedTools: [...data.allowedTools],
    allowedApis: [...data.allowedApis],
    hiddenTools: [...data.hiddenTools],
    allowedModels: [...data.allowedModels],
  };
  const revision = await store.transaction(async (tx) => {
    // The revision stored before, under the row's lock (when there is a row).
    const locked = await tx
      .select({ revision: policies.revision })
      .from(policies)
      .where(eq(policies.agentId, agentId))
      .for("update");
    const before = Number(locked[0]?.revision ?? 0);
    const rows = await tx
      .insert(policies)
      .values({
        agentId,
        ...values,
        revision: sql`nextval('gov_scope.policy_revision')`,
        mac: null,
        keyId: null,
      })
      .onConflictDoUpdate({
        target: policies.agentId,
        set: {
          ...values,
          // The value drawn for the insert, taken while this transaction holds the lock.
          revision: sql`greatest(excluded.revision, ${policies.revision} + 1)`,
          mac: null,
          keyId: null,
          updatedAt: sql`now()`,
        },
      })
      .returning({ revision: policies.revision });
    if (rows.length === 0) {
      throw new PolicyNotStored(
        "write_discarded",
        "the upsert of its row wrote nothing: a trigger or a rule on gov_scope.policies discarded it",
      );
    }
    const stored = rows[0]?.revision;
    if (typeof stored !== "number" || !Number.isSafeInteger(stored)) {
      throw new Error(
        `the stored revision of agent ${JSON.stringify(agentId)} is beyond 2^53 - 1; delete the row and register the policy again.`,
      );
    }
    if (stored <= before) {
      throw new PolicyNotStored(
        "revision_not_advanced",
        `its stored revision did not advance (it was ${before}, and is ${stored} after the write), so processes that hold revision ${before} would ignore it: a trigger, a rule or another writer on gov_scope.policies kept it`,
      );
    }
    const signature = signPolicy(key, { agentId, ...values, revision: stored });
    await tx.update(policies).set(signature).where(eq(policies.agentId, agentId));
    await tx.execute(sql`select pg_notify(${SCOPE_POLICY_CHANNEL}, ${agentId})`);
    return stored;
  });
  // Read back once committed (constraint triggers run at commit).
  const [row] = await store.db
    .select(ROW_COLUMNS)
    .from(policies)
    .where(eq(policies.agentId, agentId));
  const checked = row ? verifyStoredPolicy(keyring, row) : null;
  if (checked?.ok) {
    if (checked.fields.revision > revision) return revision;
    if (checked.fields.revision === revision && sameLists(checked.fields, values)) return revision;
  }
  const holds =
    checked === null
      ? "no row"
      : !checked.ok
        ? `a row that fails verification (${checked.problem})`
        : checked.fields.revision === revision
          ? `other lists at revision ${revision}`
          : `revision ${checked.fields.revision}`;
  throw new PolicyNotStored(
    "row_differs",
    `the stored row does not hold the signed policy (revision ${revision}): it holds ${holds}. A trigger, a rule or another writer on gov_scope.policies changed or discarded it`,
  );
}
