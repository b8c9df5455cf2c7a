import { randomUUID } from "node:crypto";
import { describeError, type SigningKey, sql, toStoreError } from "@gov/core";
import { checkpointPayload } from "./checkpoint-signing";
import type { KeyHistory } from "./key-history";
import { type CheckpointInsert, insertCheckpoints, PAGE } from "./sql";
import { type AuditState, truncate } from "./state";
import { systemEvent } from "./system-events";
import { type CheckpointWitness, type WitnessedCheckpoint, witnessedCheckpoint } from "./witness";
import type { ChainWriter } from "./writer";

/** Checkpoints kept for a failing witness; beyond, the oldest are dropped (loudly). */
const MAX_WITNESS_BACKLOG = 100_000;

/**
 * Signs chain heads into `gov_audit.checkpoints` (HMAC, and Ed25519 with a signing key) and
 * hands each checkpoint to the witness outside the database, keeping those a failing witness
 * did not take for the next checkpoint.
 */
export class Checkpointer {
  readonly #state: AuditState;
  readonly #writer: ChainWriter;
  readonly #history: KeyHistory;
  readonly #signingKey: SigningKey | null;
  readonly #witness: CheckpointWitness | null;
  /** Checkpoints the witness has not taken yet, oldest first. */
  #witnessBacklog: WitnessedCheckpoint[] = [];
  /** Appends to the witness, one at a time. */
  #witnessQueue: Promise<void> = Promise.resolve();

  constructor(
    state: AuditState,
    writer: ChainWriter,
    history: KeyHistory,
    options: { signingKey: SigningKey | null; witness: CheckpointWitness | null },
  ) {
    this.#state = state;
    this.#writer = writer;
    this.#history = history;
    this.#signingKey = options.signingKey;
    this.#witness = options.witness;
  }

  /** Checkpoints that did not reach the witness yet. */
  get witnessPending(): number {
    return this.#witnessBacklog.length;
  }

  /**
   * Sign the head of every chain (or of `chains`), insert the checkpoints, then append them to
   * the witness. Call it after a flush.
   * @returns how many chains were checkpointed.
   */
  async checkpoint(chains: readonly string[] | null): Promise<number> {
    const { store, clock, keyring } = this.#state;
    const key = keyring.current;
    const signingKey = this.#signingKey;
    const heads = await store.query<{ chain: string; seq: number | string; hmac: string }>(
      chains
        ? sql`select distinct on (chain) chain, seq, hmac from gov_audit.events where chain = any(${sql.param([...chains])}::text[]) order by chain, seq desc`
        : sql`select distinct on (chain) chain, seq, hmac from gov_audit.events order by chain, seq desc`,
    );
    if (heads.length === 0) return 0;
    const createdAt = clock.now().toISOString();
    const rows: CheckpointInsert[] = heads.map((head) => {
      const checkpoint = {
        checkpointId: randomUUID(),
        chain: head.chain,
        seq: Number(head.seq),
        hash: head.hmac,
        createdAt,
        keyId: key.id,
        signingKeyId: signingKey?.id ?? null,
      };
      const payload = checkpointPayload(checkpoint);
      return {
        ...checkpoint,
        payload,
        hmac: key.hmacHex(payload),
        signature: signingKey?.sign(payload) ?? null,
      };
    });
    try {
      for (let index = 0; index < rows.length; index += PAGE) {
        await store.query(insertCheckpoints(rows.slice(index, index + PAGE)));
      }
    } catch (error) {
      throw await this.#history.checkpointRefusal(error, toStoreError(error));
    }
    // In the database first: a witness entry always has its row, so one missing is a deletion.
    await this.witnessAppend(rows.map(witnessedCheckpoint));
    return rows.length;
  }

  /**
   * At close: append what still waits for the witness, and say loudly what never reached it.
   */
  async close(): Promise<void> {
    if (this.#witnessBacklog.length > 0) await this.witnessAppend([]);
    if (this.#witnessBacklog.length > 0) {
      this.#state.logger.error(
        `${this.#witnessBacklog.length} audit checkpoints never reached the witness; they are in gov_audit.checkpoints only.`,
        { checkpoints: this.#witnessBacklog.length },
      );
    }
  }

  /**
   * Append checkpoints (after any that wait from an earlier failure) to the witness. Never
   * throws: a failure is warned about, counted, recorded as `audit.witness_failed`, and the
   * checkpoints wait for the next call (the oldest are dropped, loudly, beyond
   * {@link MAX_WITNESS_BACKLOG}).
   */
  witnessAppend(checkpoints: readonly WitnessedCheckpoint[]): Promise<void> {
    const witness = this.#witness;
    if (!witness) return Promise.resolve();
    const { logger, metrics } = this.#state;
    const run = async () => {
      this.#witnessBacklog.push(...checkpoints);
      const excess = this.#witnessBacklog.length - MAX_WITNESS_BACKLOG;
      if (excess > 0) {
        this.#witnessBacklog.splice(0, excess);
        logger.error(
          `The checkpoint witness has failed for ${MAX_WITNESS_BACKLOG} checkpoints; the ${excess} oldest will not reach it (they stay in gov_audit.checkpoints).`,
          { dropped: excess },
        );
      }
      if (this.#witnessBacklog.length === 0) return;
      const batch = this.#witnessBacklog;
      this.#witnessBacklog = [];
      try {
        await witness.append(batch);
        if (batch.length > checkpoints.length) {
          logger.info(
            `The checkpoint witness works again; ${batch.length - checkpoints.length} waiting checkpoints were appended.`,
          );
        }
      } catch (error) {
        this.#witnessBacklog = [...batch, ...this.#witnessBacklog];
        metrics.witnessFailures++;
        const reason = truncate(describeError(error), 1_000);
        logger.warn(
          "The checkpoint witness could not be written; the checkpoints are in the database and will be appended to the witness at the next checkpoint.",
          { error: reason, pending: this.#witnessBacklog.length },
        );
        if (!this.#state.closed) {
          await this.#writer.enqueue(
            systemEvent("audit.witness_failed", {
              error: reason,
              checkpoints: checkpoints.length,
              pending: this.#witnessBacklog.length,
            }),
          );
        }
      }
    };
    const result = this.#witnessQueue.then(run, run);
    this.#witnessQueue = result.catch(() => undefined);
    return result;
  }
}
