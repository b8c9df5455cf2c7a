import { randomUUID } from "node:crypto";
import {
  ChainKey,
  describeError,
  GovernanceError,
  InvalidArgumentError,
  Keyring,
  sql,
} from "@gov/core";
import { AUDIT_ERROR_CODES, RetiredKeyError } from "./errors";
import { retirementOf } from "./key-history";
import {
  boundedText,
  METHOD_OPTION_KEYS,
  type RotateChainKeyOptions,
  refuseUnknownOptions,
} from "./options";
import { KEY_ROTATED_KIND, rotationPayload } from "./rotation-record";
import { ROTATION_LOCK, ROTATIONS_QUERY, type RotationRow, toStoredRotation } from "./sql";
import type { AuditState } from "./state";
import { SYSTEM_CHAIN, systemEvent } from "./system-events";
import type { ChainWriter } from "./writer";

/** A key rotation asked for, checked. */
export interface RotationRequest {
  next: ChainKey;
  operatorId: string;
  reason: string;
}

/**
 * Check the options of `rotateChainKey`.
 * @throws {InvalidArgumentError} or `SECRET_INVALID` for a bad new key.
 */
export function rotationRequest(options: RotateChainKeyOptions): RotationRequest {
  refuseUnknownOptions(
    METHOD_OPTION_KEYS.rotateChainKey,
    options,
    'Pass rotateChainKey({ newKey, operatorId: "alice@example.com", reason: "scheduled rotation" }).',
  );
  const operatorId = boundedText(options.operatorId, "operatorId", 256, "who rotates the key");
  const reason = boundedText(options.reason, "reason", 1_024, "why the key is rotated");
  if (typeof options.newKey !== "string") {
    throw new InvalidArgumentError(
      "newKey",
      `must be a string (the new secret), got ${options.newKey === null ? "null" : typeof options.newKey}.`,
      "Pass a secret of at least 32 bytes, e.g. from `openssl rand -base64 48`.",
    );
  }
  return { next: new ChainKey(options.newKey, "newKey"), operatorId, reason };
}

/**
 * Rotate the chain key: record the rotation in `gov_audit.key_rotations` (under a lock held
 * across processes, the writer paused), switch `state.keyring` to the new key, log
 * `audit.key_rotated`, and checkpoint the chain that records it.
 */
export async function rotateKey(
  state: AuditState,
  writer: ChainWriter,
  checkpoint: (chains: readonly string[]) => Promise<number>,
  { next, operatorId, reason }: RotationRequest,
): Promise<{ oldKeyId: string; newKeyId: string }> {
  const { store, clock, logger } = state;
  const old = state.keyring.current;
  if (next.fingerprint === old.fingerprint) {
    throw new GovernanceError({
      code: AUDIT_ERROR_CODES.KEY_ROTATION_INVALID,
      message: `The new key is the current key (${old.id}).`,
      recoveryHint: "Generate a new secret with `openssl rand -base64 48`.",
    });
  }
  await writer.flush();
  const rotatedAt = clock.now().toISOString();
  const rotationId = randomUUID();
  const payload = rotationPayload({
    rotationId,
    oldKeyId: old.id,
    newKeyId: next.id,
    operatorId,
    reason,
    rotatedAt,
  });
  // Hold the writer: nothing is signed with the old key once the rotation is recorded.
  await writer.paused(async () => {
    await store.transaction(async (tx) => {
      await tx.execute(sql`select pg_advisory_xact_lock(${ROTATION_LOCK}::bigint)`);
      const result = await tx.execute<RotationRow>(ROTATIONS_QUERY);
      const rotations = result.rows.map(toStoredRotation);
      const retirement = retirementOf(state.keyring, rotations);
      if (retirement)
        throw new RetiredKeyError({ ...retirement, action: "rotate the audit chain key" });
      const used = rotations.find(
        (rotation) => rotation.oldKeyId === next.id || rotation.newKeyId === next.id,
      );
      if (used) {
        throw new GovernanceError({
          code: AUDIT_ERROR_CODES.KEY_ROTATION_INVALID,
          message: `Key ${next.id} was a chain key already (key rotation ${used.rotationId}, ${used.oldKeyId} → ${used.newKeyId} at ${used.rotatedAt}); a retired key never becomes current again.`,
          recoveryHint: "Generate a new secret with `openssl rand -base64 48`.",
        });
      }
      if (rotations.length > 0 && !rotations.some((rotation) => rotation.newKeyId === old.id)) {
        throw new GovernanceError({
          code: AUDIT_ERROR_CODES.KEY_ROTATION_INVALID,
          message: `This process's chain key ${old.id} is not in the key rotation history (its newest key is ${rotations.at(-1)?.newKeyId}): rotating from it would fork the history.`,
          recoveryHint: "Rotate from a process that runs with the newest key.",
        });
      }
      await tx.execute(sql`
          insert into gov_audit.key_rotations (rotation_id, old_key_id, new_key_id, rotated_at, payload, hmac_old, hmac_new)
          values (${rotationId}::uuid, ${old.id}, ${next.id}, ${rotatedAt}::timestamptz, ${payload}, ${old.hmacHex(payload)}, ${next.hmacHex(payload)})`);
    });
    state.keyring = new Keyring(next, state.keyring.keys);
  });
  await writer.enqueue(
    systemEvent(KEY_ROTATED_KIND, {
      rotationId,
      oldKeyId: old.id,
      newKeyId: next.id,
      operatorId,
      reason,
    }),
  );
  // Pin the record of the rotation: deleting it from the end of its chain is then caught.
  try {
    await checkpoint([SYSTEM_CHAIN]);
  } catch (error) {
    logger.warn(
      "Could not checkpoint the chain that records the key rotation; call checkpoint() once the database is back.",
      { error: describeError(error) },
    );
  }
  logger.info(`Audit chain key rotated from ${old.id} to ${next.id}.`);
  return { oldKeyId: old.id, newKeyId: next.id };
}
