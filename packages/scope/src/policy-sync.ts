/**
 * The persistence of scope policies: each registration written (`policy-write.ts`), in order
 * per agent, and retried when it failed; other processes' registrations followed by
 * LISTEN/NOTIFY (a notification is a wake-up, never state) and polling; every stored row
 * verified before it is enforced, and a refused or rolled-back row reported.
 */
import {
  type AuditEventInput,
  type AuditSink,
  describeError,
  type Keyring,
  type LogFields,
  type Logger,
  type Store,
  type Subscription,
  sanitizeName,
} from "@gov/core";
import { inArray } from "drizzle-orm";
import type { ApiRule } from "./api-rule";
import { SCOPE_LIMITS, ScopePolicy } from "./models";
import {
  PolicyNotStored,
  ROW_COLUMNS,
  SCOPE_POLICY_CHANNEL,
  SCOPE_POLICY_NOT_PERSISTED_KIND,
  writePolicy,
} from "./policy-write";
import { policies } from "./schema";
import {
  describeKeyId,
  type ScopePolicyRejectionReason,
  type StoredPolicyRow,
  verifyStoredPolicy,
} from "./signature";

/** The audit event kind of a stored policy that was refused (its signature failed, or it is invalid). */
export const SCOPE_POLICY_REJECTED_KIND = "scope.policy_rejected";

/**
 * The audit event kind of a stored policy that went back: a validly signed row older than the
 * revision this process holds (`metadata.revision`, `heldRevision`), or a row that is gone
 * (`revision: null`). The process keeps the newer policy; a process that starts now does not
 * know it. Recorded once per agent and revision, per process.
 */
export const SCOPE_POLICY_ROLLED_BACK_KIND = "scope.policy_rolled_back";

/**
 * Agents named by notifications and not re-read yet. A flood that names more (any role that
 * can connect can send notifications) turns into one reload of every policy instead.
 */
const MAX_PENDING_AGENTS = 1_000;
/** Agents re-read by one query. */
const AGENTS_PER_READ = 200;
/**
 * Refused rows remembered (agent → revision) so that each is reported once; beyond this
 * many agents, the one refused longest ago is forgotten (and reported again if seen again).
 */
const MAX_REMEMBERED_REJECTIONS = 10_000;
/** Rows verified between two turns of the event loop while all policies are reloaded. */
const ROWS_PER_TURN = 10;
/**
 * Refused rows reported (logged and audited one by one) per read; the rest of a read are
 * counted in one warning, and reported by a later read. A table stuffed with bad rows cannot
 * flood the audit chain faster than this per reload.
 */
const MAX_REPORTS_PER_READ = 100;

/** What to do about a refused row, per reason. */
const REJECTION_FIXES: Record<ScopePolicyRejectionReason, string> = {
  unsigned:
    "Rows written before @gov/scope signed its policies (or written by hand) are not loaded: register the policy again with scope.register(...) in a process that holds the chain key, which signs it.",
  unknown_key:
    "If the key was rotated out, add it to the keyring (GOVERNANCE_CHAIN_KEY_<key id> or historicalKeys) or register the policy again; otherwise the row was not written by this deployment: find out who can write gov_scope.policies.",
  bad_signature:
    "The row was changed after it was signed (or copied from another agent, or forged): find out who can write gov_scope.policies, then register the policy again with scope.register(...).",
  malformed:
    "The row is not one @gov/scope wrote: find out who can write gov_scope.policies, then register the policy again with scope.register(...).",
  invalid_policy:
    "The row is signed but not a valid policy for this version of @gov/scope: register the policy again with scope.register(...).",
};

/** One policy as this process holds it, compiled for the hot path. */
export interface Entry {
  readonly policy: ScopePolicy;
  /** Private copies: nothing outside the module can change what is enforced. */
  readonly tools: ReadonlySet<string>;
  readonly hidden: ReadonlySet<string>;
  readonly rules: readonly ApiRule[];
  /** The allowed models; empty: any model. */
  readonly models: ReadonlySet<string>;
  readonly toolList: readonly string[];
  readonly apiList: readonly string[];
  readonly modelList: readonly string[];
  /** The stored revision this policy is (or replaced), 0 when none is known. */
  revision: number;
  /**
   * When this process learnt `revision` (the module's epoch then): a read that started later
   * must see a row at least that new, or the row went back.
   */
  learnedAt: number;
  /** Writes of this policy in flight: a stored row does not replace it meanwhile. */
  pending: number;
  /** Its write failed; it is retried at the next poll and not replaced meanwhile. */
  unsaved: boolean;
}

export function compile(policy: ScopePolicy, revision: number, learnedAt: number): Entry {
  const snapshot = policy.toJSON();
  return {
    policy,
    tools: new Set(snapshot.allowedTools),
    hidden: new Set(snapshot.hiddenTools),
    rules: policy.apiRules,
    models: new Set(snapshot.allowedModels),
    toolList: snapshot.allowedTools,
    apiList: snapshot.allowedApis,
    modelList: snapshot.allowedModels,
    revision,
    learnedAt,
    pending: 0,
    unsaved: false,
  };
}

/** What {@link PolicySync} is given by the scope module. */
export interface PolicySyncOptions {
  store: Store;
  /** Signs the policies written and verifies the ones read. */
  keyring: Keyring;
  logger: Logger;
  audit: AuditSink;
  /** Follow other processes' registrations by LISTEN/NOTIFY. */
  listen: boolean;
  /** How often every policy is reloaded; null: never. */
  pollIntervalMs: number | null;
  /** The policies the process enforces, shared with the module (the hot path reads it). */
  entries: Map<string, Entry>;
}

/**
 * Keeps one process's policies in step with `gov_scope.policies` (see the file's summary):
 * owned by a {@link ScopeModule} created with `persist: true`.
 */
export class PolicySync {
  readonly #store: Store;
  readonly #keyring: Keyring;
  readonly #logger: Logger;
  readonly #audit: AuditSink;
  readonly #listen: boolean;
  readonly #pollIntervalMs: number | null;
  readonly #entries: Map<string, Entry>;
  /** The last write of each agent's policy, so that one agent's writes land in order. */
  readonly #writes = new Map<string, Promise<void>>();
  #subscription: Subscription | null = null;
  #timer: NodeJS.Timeout | null = null;
  #closed = false;
  /** Agents named by notifications, waiting to be re-read (at most {@link MAX_PENDING_AGENTS}). */
  readonly #pendingAgents = new Set<string>();
  /** Every policy is to be re-read (a poll, a reconnect, `reload()`, or a notification flood). */
  #reloadAllDue = false;
  /** Callers of `reload()` waiting for the next reload of every policy to end. */
  readonly #reloadWaiters: (() => void)[] = [];
  /** The one loop that reads policies; never more than one read in flight. */
  #reading: Promise<void> | null = null;
  /** The last row reported per agent (refused, or gone back), so that each is reported once. */
  readonly #rejected = new Map<string, string>();
  /** Counts what this process learnt (see {@link Entry.learnedAt}). */
  #epoch = 0;
  /**
   * Agents whose stored row was read while this process's own write of them was in flight (or
   * had failed), and not applied: re-read once that write settles, lest a newer registration
   * from another process be lost until the next poll.
   */
  readonly #skippedWhileWriting = new Set<string>();
  /** Agents whose registration was reported as not stored, until a write of theirs is stored. */
  readonly #reportedNotStored = new Set<string>();
  /** Refused rows reported by the current read, and those left for a later one. */
  #reportsThisRead = 0;
  #unreportedThisRead = 0;
  /** `scope.policy_rejected` events handed to the audit sink and not settled yet. */
  readonly #reports = new Set<Promise<void>>();

  constructor(options: PolicySyncOptions) {
    this.#store = options.store;
    this.#keyring = options.keyring;
    this.#logger = options.logger;
    this.#audit = options.audit;
    this.#listen = options.listen;
    this.#pollIntervalMs = options.pollIntervalMs;
    this.#entries = options.entries;
  }

  /**
   * Subscribe to changes, then load the stored policies (in that order, so that no
   * registration announced meanwhile is missed), and start polling. A database that cannot
   * be reached is logged, not thrown: polling keeps trying.
   */
  async start(): Promise<void> {
    if (this.#closed) return;
    if (this.#listen) {
      try {
        this.#subscription = await this.#store.listen(
          SCOPE_POLICY_CHANNEL,
          (agentId) => {
            this.#wake(agentId);
          },
          {
            onReconnect: () => {
              this.#reloadAllSoon();
            },
          },
        );
      } catch (error) {
        this.#logger.warn(
          "Could not listen for scope policy changes; other processes' registrations arrive by polling only.",
          { error: describeError(error) },
        );
      }
    }
    await this.reload();
    if (this.#pollIntervalMs !== null && !this.#closed) {
      this.#timer = setInterval(() => {
        this.#reloadAllSoon();
      }, this.#pollIntervalMs);
      this.#timer.unref();
    }
  }

  /**
   * Reload every stored policy now (what polling does), after retrying failed writes; resolves
   * when a reload that started after this call has ended. Reloads never overlap: calls made
   * while one runs share the next. Each row is verified before it is loaded; a row that does
   * not verify is refused and reported (once per agent and revision), and the policy this
   * process holds stays in force. Never rejects: a failure is logged and the policies in
   * memory stay as they are.
   */
  async reload(): Promise<void> {
    if (this.#closed) return;
    await new Promise<void>((resolve) => {
      this.#reloadWaiters.push(resolve);
      this.#reloadAllDue = true;
      this.#read();
    });
  }

  /**
   * Resolve once every write of a registered policy has landed (or failed and been logged),
   * and the audit events they caused have been handed to the audit sink.
   */
  async flush(): Promise<void> {
    while (this.#writes.size > 0) await Promise.all(this.#writes.values());
    while (this.#reports.size > 0) await Promise.all(this.#reports);
  }

  /**
   * Stop listening and polling, and wait for writes, the read and the audit reports in
   * flight. Policies stay enforced in memory.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    await this.flush();
    await this.#reading;
    for (const wake of this.#reloadWaiters.splice(0)) wake();
    const subscription = this.#subscription;
    this.#subscription = null;
    await subscription?.unsubscribe().catch(() => undefined);
    while (this.#reports.size > 0) await Promise.all(this.#reports);
  }

  // Persistence.

  /**
   * Write a registered policy (signed), after the writes of the same agent before it; a
   * failure is logged (or reported) and retried at the next poll, never thrown.
   */
  save(entry: Entry): void {
    const agentId = entry.policy.agentId;
    if (this.#closed) {
      entry.unsaved = true;
      this.#logger.warn("The scope module is closed; a policy was registered in memory only.", {
        agentId,
      });
      return;
    }
    entry.pending++;
    entry.unsaved = false;
    const previous = this.#writes.get(agentId) ?? Promise.resolve();
    const write: Promise<void> = previous
      .then(() => writePolicy(this.#store, this.#keyring, entry.policy))
      .then(
        (revision) => {
          entry.pending--;
          if (revision > entry.revision) {
            entry.revision = revision;
            entry.learnedAt = ++this.#epoch;
          }
          this.#reportedNotStored.delete(agentId);
          this.#writeSettled(agentId);
        },
        (error: unknown) => {
          entry.pending--;
          entry.unsaved = true;
          if (error instanceof PolicyNotStored) this.#reportNotStored(agentId, error);
          else
            this.#logger.warn(
              "Could not persist a scope policy; it is enforced in this process and the write is retried at the next poll.",
              { agentId, error: describeError(error) },
            );
          this.#writeSettled(agentId);
        },
      )
      .finally(() => {
        if (this.#writes.get(agentId) === write) this.#writes.delete(agentId);
      });
    this.#writes.set(agentId, write);
  }

  /**
   * A write of the agent's policy settled. Once none is in flight, re-read the agent if its
   * row was read and skipped meanwhile: that row may be another process's newer registration.
   */
  #writeSettled(agentId: string): void {
    const current = this.#entries.get(agentId);
    if (current !== undefined && current.pending > 0) return;
    if (this.#skippedWhileWriting.delete(agentId)) this.#wake(agentId);
  }

  /**
   * A registration that the stored row does not hold: an error every time (it is retried at
   * each poll and `reload()`), and `scope.policy_not_persisted` once until a write is stored.
   */
  #reportNotStored(agentId: string, error: PolicyNotStored): void {
    this.#logger.error(
      `The scope policy of agent ${JSON.stringify(agentId)} was not stored as registered: ${error.problem}. It is enforced in this process only; other processes keep what they had, and a process that starts now loads the stored row. The write is retried at the next poll or reload(): find out who can change gov_scope.policies and remove the trigger or rule.`,
      { agentId, reason: error.reason },
    );
    if (this.#reportedNotStored.has(agentId)) return;
    this.#reportedNotStored.add(agentId);
    this.#recordEvent({
      agentId,
      kind: SCOPE_POLICY_NOT_PERSISTED_KIND,
      metadata: { reason: error.reason, problem: error.problem, path: "scope.register" },
    });
  }

  // Loading.

  /**
   * A notification named an agent: re-read its row (the payload is never believed). Reads
   * are coalesced — an agent named many times is read once, at most
   * {@link MAX_PENDING_AGENTS} wait (a flood beyond that becomes one reload of every
   * policy) and one read runs at a time — so that notifications, which any role that can
   * connect can send, cannot make the process hammer the database or grow without bound.
   */
  #wake(agentId: string): void {
    if (this.#closed) return;
    if (!this.#reloadAllDue) {
      // A payload that cannot be an agent's id names no row.
      if (agentId.length === 0 || agentId.length > SCOPE_LIMITS.agentId) return;
      if (this.#pendingAgents.size >= MAX_PENDING_AGENTS && !this.#pendingAgents.has(agentId)) {
        this.#pendingAgents.clear();
        this.#reloadAllDue = true;
      } else {
        this.#pendingAgents.add(agentId);
      }
    }
    this.#read();
  }

  /** Reload every policy when the read loop gets to it (polling, a reconnect); nobody waits. */
  #reloadAllSoon(): void {
    if (this.#closed) return;
    this.#reloadAllDue = true;
    this.#read();
  }

  /** Start the read loop unless it runs. */
  #read(): void {
    if (this.#reading !== null || this.#closed) return;
    this.#reading = this.#readLoop()
      .catch(() => undefined) // only a throwing logger gets here; the loop must not die unhandled
      .finally(() => {
        this.#reading = null;
        // Work that arrived while the loop was ending.
        if (this.#reloadAllDue || this.#pendingAgents.size > 0) this.#read();
      });
  }

  async #readLoop(): Promise<void> {
    try {
      while (!this.#closed) {
        this.#reportsThisRead = 0;
        this.#unreportedThisRead = 0;
        if (this.#reloadAllDue) {
          this.#reloadAllDue = false;
          this.#pendingAgents.clear();
          const waiters = this.#reloadWaiters.splice(0);
          try {
            await this.#loadAll();
          } finally {
            for (const wake of waiters) wake();
          }
        } else if (this.#pendingAgents.size > 0) {
          const batch: string[] = [];
          for (const agentId of this.#pendingAgents) {
            batch.push(agentId);
            if (batch.length === AGENTS_PER_READ) break;
          }
          for (const agentId of batch) this.#pendingAgents.delete(agentId);
          await this.#loadAgents(batch);
        } else {
          return;
        }
        if (this.#unreportedThisRead > 0) {
          this.#logger.warn(
            `Refused (or found gone back) ${this.#unreportedThisRead} more stored scope policies in one read; they are reported by later reloads (at most ${MAX_REPORTS_PER_READ} per read). Find out who can write gov_scope.policies.`,
            { refused: this.#unreportedThisRead },
          );
        }
      }
    } finally {
      if (this.#closed) for (const wake of this.#reloadWaiters.splice(0)) wake();
    }
  }

  /** Read every stored policy (after retrying failed writes). Never throws. */
  async #loadAll(): Promise<void> {
    for (const entry of this.#entries.values()) {
      if (entry.unsaved && entry.pending === 0) this.save(entry);
    }
    let rows: StoredPolicyRow[];
    const since = this.#epoch;
    try {
      rows = await this.#store.db.select(ROW_COLUMNS).from(policies);
    } catch (error) {
      this.#logger.warn("Could not reload scope policies; the ones in memory stay in force.", {
        error: describeError(error),
      });
      return;
    }
    const found = new Set<string>();
    for (let index = 0; index < rows.length; index++) {
      // Verifying is CPU work: let checks run between slices of a large table.
      if (index > 0 && index % ROWS_PER_TURN === 0) await turn();
      if (this.#closed) return;
      const row = rows[index] as StoredPolicyRow;
      found.add(row.agentId);
      this.#apply(row, since);
    }
    for (const [agentId, entry] of this.#entries)
      if (!found.has(agentId)) this.#checkGone(agentId, entry, since);
  }

  /** Read the rows of the named agents. Never throws. */
  async #loadAgents(agentIds: string[]): Promise<void> {
    let rows: StoredPolicyRow[];
    const since = this.#epoch;
    try {
      rows = await this.#store.db
        .select(ROW_COLUMNS)
        .from(policies)
        .where(inArray(policies.agentId, agentIds));
    } catch (error) {
      this.#logger.warn("Could not load a changed scope policy; the next poll retries.", {
        agentIds: agentIds.slice(0, 10).map(shownAgentId),
        error: describeError(error),
      });
      return;
    }
    const found = new Set<string>();
    for (const row of rows) {
      found.add(row.agentId);
      this.#apply(row, since);
    }
    for (const agentId of agentIds) {
      const entry = this.#entries.get(agentId);
      if (entry !== undefined && !found.has(agentId)) this.#checkGone(agentId, entry, since);
    }
  }

  /**
   * Adopt a stored policy when its signature verifies and it is newer than what this process
   * holds; refuse (and report) it when it does not verify, whatever its revision; report it
   * when it is older than what this process held before the read started (it went back).
   * `since`: the epoch at which the read started.
   */
  #apply(row: StoredPolicyRow, since: number): void {
    const checked = verifyStoredPolicy(this.#keyring, row);
    if (!checked.ok) {
      this.#reject(row, checked.reason, checked.problem);
      return;
    }
    const { fields } = checked;
    const current = this.#entries.get(fields.agentId);
    if (current) {
      if (current.pending > 0 || current.unsaved) {
        // Our own write decides for now; the row is read again once it settles.
        this.#skippedWhileWriting.add(fields.agentId);
        return;
      }
      if (current.revision >= fields.revision) {
        if (current.revision > fields.revision && current.learnedAt <= since)
          this.#wentBack(fields.agentId, fields.revision, current.revision);
        return;
      }
    }
    let policy: ScopePolicy;
    try {
      policy = new ScopePolicy({
        agentId: fields.agentId,
        allowedTools: fields.allowedTools,
        allowedApis: fields.allowedApis,
        hiddenTools: fields.hiddenTools,
        allowedModels: fields.allowedModels,
      });
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      this.#reject(
        row,
        "invalid_policy",
        `it is not a valid policy (${message.length > 500 ? `${message.slice(0, 499)}…` : message})`,
      );
      return;
    }
    this.#entries.set(fields.agentId, compile(policy, fields.revision, ++this.#epoch));
    this.#rejected.delete(shownAgentId(fields.agentId));
  }

  /** No row for an agent whose policy this process holds: reported when it was stored before the read. */
  #checkGone(agentId: string, entry: Entry, since: number): void {
    if (entry.pending > 0 || entry.unsaved || entry.revision === 0 || entry.learnedAt > since)
      return;
    this.#wentBack(agentId, null, entry.revision);
  }

  /**
   * A verified row older than the policy this process holds (`revision`), or no row at all
   * (`null`): the newer policy stays in force here — a rollback is never applied — but a
   * process that starts now would load what the table holds. Logged and recorded as
   * `scope.policy_rolled_back`, once per agent and revision.
   */
  #wentBack(agentId: string, revision: number | null, heldRevision: number): void {
    const problem =
      revision === null
        ? `its row (revision ${heldRevision}) is gone from gov_scope.policies (deleted)`
        : `its row went back to revision ${revision}, older than revision ${heldRevision} that this process holds (an older signed row was written back, or the row was deleted and written again by a process of an earlier version)`;
    const then =
      revision === null
        ? "a process that starts now has no policy for the agent (default deny)"
        : "a process that starts now loads the older one";
    this.#report(
      agentId,
      `went-back:${revision ?? "gone"}:${heldRevision}`,
      `The stored scope policy of agent ${JSON.stringify(shownAgentId(agentId))} was not applied: ${problem}. The newer policy stays in force in this process; ${then}. Find out who can write gov_scope.policies, then register the policy again with scope.register(...).`,
      { agentId: shownAgentId(agentId), revision, heldRevision },
      {
        agentId: shownAgentId(agentId),
        kind: SCOPE_POLICY_ROLLED_BACK_KIND,
        metadata: { revision, heldRevision, problem, path: "scope.load" },
      },
    );
  }

  /**
   * A stored row was refused: it is not loaded, the process keeps what it had. Logged and
   * written to the audit chain once per (agent, revision), so that polling does not repeat it.
   */
  #reject(row: StoredPolicyRow, reason: ScopePolicyRejectionReason, problem: string): void {
    const revision =
      typeof row.revision === "number" && Number.isSafeInteger(row.revision)
        ? row.revision
        : String(row.revision);
    // Remembered by the id as shown (cut): a stuffed table cannot make the memory grow with it.
    const agentId = shownAgentId(row.agentId);
    const keyId = describeKeyId(row.keyId);
    const held = this.#entries.has(row.agentId)
      ? "the policy this process loaded before stays in force"
      : "the agent has no policy in this process (default deny)";
    this.#report(
      row.agentId,
      `refused:${revision}`,
      `Refused the stored scope policy of agent ${JSON.stringify(agentId)} (revision ${revision}): ${problem}; ${held}. ${REJECTION_FIXES[reason]}`,
      { agentId, revision, reason, keyId },
      {
        agentId,
        kind: SCOPE_POLICY_REJECTED_KIND,
        metadata: { reason, revision, keyId, problem, path: "scope.load" },
      },
    );
  }

  /**
   * Report a stored row that was not applied (a warning and an audit event), once per agent
   * and `seen` (what was found), and at most {@link MAX_REPORTS_PER_READ} per read.
   */
  #report(
    rowAgentId: string,
    seen: string,
    warning: string,
    fields: LogFields,
    event: AuditEventInput,
  ): void {
    const agentId = shownAgentId(rowAgentId);
    if (this.#rejected.get(agentId) === seen) return;
    if (this.#reportsThisRead >= MAX_REPORTS_PER_READ) {
      this.#unreportedThisRead++;
      return;
    }
    this.#reportsThisRead++;
    this.#rejected.delete(agentId);
    this.#rejected.set(agentId, seen);
    if (this.#rejected.size > MAX_REMEMBERED_REJECTIONS) {
      const oldest = this.#rejected.keys().next();
      if (!oldest.done) this.#rejected.delete(oldest.value);
    }
    this.#logger.warn(warning, fields);
    this.#recordEvent(event);
  }

  /** Hand an event to the audit sink; a failure is logged, never thrown. Waited for by `close()`. */
  #recordEvent(event: AuditEventInput): void {
    const report: Promise<void> = Promise.resolve()
      .then(() => this.#audit.log(event))
      .then(
        () => undefined,
        (error: unknown) => {
          this.#logger.error(
            `Could not write a ${event.kind} event to the audit chain; what it reports stands all the same.`,
            { agentId: event.agentId, error: describeError(error) },
          );
        },
      )
      .catch(() => undefined) // a throwing logger
      .finally(() => {
        this.#reports.delete(report);
      });
    this.#reports.add(report);
  }
}

/** Let the event loop turn (timers, I/O, other checks) before going on. */
function turn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** An agent id from the table as it may be logged and recorded: cut, control characters neutralized. */
export function shownAgentId(agentId: string): string {
  const cut =
    agentId.length > SCOPE_LIMITS.agentId
      ? `${agentId.slice(0, SCOPE_LIMITS.agentId - 1)}…`
      : agentId;
  return cut.length === 0 ? "(empty)" : sanitizeName(cut);
}
