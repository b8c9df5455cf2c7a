import { readdir } from "node:fs/promises";
import { join } from "node:path";
import {
  type AuditSink,
  checkId,
  createConsoleLogger,
  InvalidArgumentError,
  type Keyring,
  type Logger,
  noopAuditSink,
  requirePort,
  type Store,
  sanitizeName,
  sql,
} from "@gov/core";
import { requireFinite, requireIdList, requireStore } from "./arguments";
import { readBlueprintFile, validateBlueprint } from "./blueprint";
import { BlueprintNotFound, BlueprintSignatureInvalid, PolicyError } from "./errors";
import { type BlueprintDocument, STEWARD_AUDIT_KINDS, STEWARD_LIMITS } from "./models";
import { parseRegistryOptions } from "./options";
import { agentState, blueprintLedger, blueprints, trustDebt } from "./schema";
import {
  type BlueprintRejectionReason,
  ledgerEntrySigned,
  signBlueprint,
  signLedgerEntry,
  verifyStoredBlueprint,
} from "./signature";
import {
  type AgentState,
  actionsLastHour,
  type DebtChange,
  type DebtDecay,
  decayed,
  type RecordedAction,
  type StateStorage,
  type TrustDebtStorage,
} from "./state";

const HOUR_MS = 3_600_000;
const DAY_MS = 86_400_000;

type StateRow = {
  hour_start_ms: string | number;
  hour_count: number;
  previous_hour_count: number;
  day_start_ms: string | number;
  day_count: number;
  day_amount: number;
  total: string | number;
};

type DebtRow = { debt: number; updated_at_ms: string | number };

/**
 * Per-agent state in `gov_steward.agent_state`, shared by every process on the store. A
 * reservation is one atomic upsert that counts the action and returns the counters (row
 * lock held only for that statement); a release is one atomic update.
 *
 * Buckets (hour, UTC day) are computed from the time the steward passes (its clock), so the
 * processes sharing a table should have synchronized clocks.
 */
export class PostgresStateStorage implements StateStorage {
  readonly #store: Store;

  /** @throws {InvalidArgumentError} when `store` is not a Store (field `store`). */
  constructor(store: Store) {
    requireStore(store, "PostgresStateStorage");
    this.#store = store;
  }

  async read(agentId: string, nowMs: number): Promise<AgentState> {
    checkAgentAndTime(agentId, nowMs, "nowMs");
    const [row] = await this.#store.query<StateRow>(
      sql`select hour_start_ms, hour_count, previous_hour_count, day_start_ms, day_count, day_amount, total
          from ${agentState} where agent_id = ${agentId}`,
    );
    if (!row) return { actions_last_hour: 0, actions_today: 0, daily_total: 0, actions_total: 0 };
    const today = Number(row.day_start_ms) === Math.floor(nowMs / DAY_MS) * DAY_MS;
    return {
      actions_last_hour: actionsLastHour(
        Number(row.hour_start_ms),
        Number(row.hour_count),
        Number(row.previous_hour_count),
        nowMs,
      ),
      actions_today: today ? Number(row.day_count) : 0,
      daily_total: today ? Number(row.day_amount) : 0,
      actions_total: Number(row.total),
    };
  }

  async reserve(agentId: string, action: RecordedAction, nowMs: number): Promise<AgentState> {
    checkAgentAndTime(agentId, nowMs, "nowMs");
    checkAction(action);
    const hour = Math.floor(nowMs / HOUR_MS) * HOUR_MS;
    const day = Math.floor(nowMs / DAY_MS) * DAY_MS;
    const amount = Math.max(0, action.amount);
    const [row] = await this.#store.query<StateRow>(sql`
      insert into ${agentState} as s
        (agent_id, hour_start_ms, hour_count, previous_hour_count, day_start_ms, day_count, day_amount, total)
      values (${agentId}, ${hour}::bigint, 1, 0, ${day}::bigint, 1, ${amount}::float8, 1)
      on conflict (agent_id) do update set
        previous_hour_count = case
          when s.hour_start_ms >= ${hour}::bigint then s.previous_hour_count
          when s.hour_start_ms = ${hour - HOUR_MS}::bigint then s.hour_count
          else 0 end,
        hour_count = case when s.hour_start_ms >= ${hour}::bigint then s.hour_count + 1 else 1 end,
        hour_start_ms = greatest(s.hour_start_ms, ${hour}::bigint),
        day_count = case when s.day_start_ms >= ${day}::bigint then s.day_count + 1 else 1 end,
        day_amount = case when s.day_start_ms >= ${day}::bigint then s.day_amount + ${amount}::float8 else ${amount}::float8 end,
        day_start_ms = greatest(s.day_start_ms, ${day}::bigint),
        total = s.total + 1,
        updated_at = now()
      returning hour_start_ms, hour_count, previous_hour_count, day_start_ms, day_count, day_amount, total`);
    if (!row) throw new Error("the state upsert returned no row");
    // The row now counts this action: the state before it is the row without it.
    // A process whose clock is behind counts into the current (later) buckets and reads them
    // as of their start: buckets never move backwards.
    const rowHour = Number(row.hour_start_ms);
    return {
      actions_last_hour: actionsLastHour(
        rowHour,
        Number(row.hour_count) - 1,
        Number(row.previous_hour_count),
        Math.max(nowMs, rowHour),
      ),
      actions_today: Number(row.day_count) - 1,
      daily_total: Number(row.day_amount) - amount,
      actions_total: Number(row.total) - 1,
    };
  }

  async release(agentId: string, action: RecordedAction, reservedAtMs: number): Promise<void> {
    checkAgentAndTime(agentId, reservedAtMs, "reservedAtMs");
    checkAction(action);
    const hour = Math.floor(reservedAtMs / HOUR_MS) * HOUR_MS;
    const day = Math.floor(reservedAtMs / DAY_MS) * DAY_MS;
    await this.#store.query(sql`
      update ${agentState} set
        hour_count = case when hour_start_ms = ${hour}::bigint then greatest(0, hour_count - 1) else hour_count end,
        day_count = case when day_start_ms = ${day}::bigint then greatest(0, day_count - 1) else day_count end,
        day_amount = case when day_start_ms = ${day}::bigint then greatest(0, day_amount - ${Math.max(0, action.amount)}::float8) else day_amount end,
        total = greatest(0, total - 1),
        updated_at = now()
      where agent_id = ${agentId}`);
  }
}

/**
 * Trust debt in `gov_steward.trust_debt`, shared by every process on the store: an addition
 * decays the stored debt to now and adds the amount in one atomic upsert.
 */
export class PostgresTrustDebtStorage implements TrustDebtStorage {
  readonly #store: Store;

  /** @throws {InvalidArgumentError} when `store` is not a Store (field `store`). */
  constructor(store: Store) {
    requireStore(store, "PostgresTrustDebtStorage");
    this.#store = store;
  }

  async add(agentId: string, amount: number, nowMs: number, decay: DebtDecay): Promise<DebtChange> {
    checkAgentAndTime(agentId, nowMs, "nowMs");
    requireFinite(amount, "amount", "Pass the debt to add, a finite number ≥ 0.", 0);
    checkDecay(decay);
    const rate = Math.min(1, Math.max(0, decay.rate));
    const [row] = await this.#store.query<Pick<DebtRow, "debt">>(sql`
      insert into ${trustDebt} as d (agent_id, debt, updated_at_ms)
      values (${agentId}, ${amount}::float8, ${nowMs}::bigint)
      on conflict (agent_id) do update set
        debt = d.debt * power(1 - ${rate}::float8,
          greatest(0, ${nowMs}::bigint - d.updated_at_ms)::float8 / ${decay.periodMs}::float8)
          + ${amount}::float8,
        updated_at_ms = greatest(d.updated_at_ms, ${nowMs}::bigint)
      returning debt`);
    const after = Number(row?.debt ?? amount);
    return { before: Math.max(0, after - amount), after };
  }

  async read(agentId: string, nowMs: number, decay: DebtDecay): Promise<number> {
    checkAgentAndTime(agentId, nowMs, "nowMs");
    checkDecay(decay);
    const [row] = await this.#store.query<DebtRow>(
      sql`select debt, updated_at_ms from ${trustDebt} where agent_id = ${agentId}`,
    );
    if (!row) return 0;
    return decayed(Number(row.debt), nowMs - Number(row.updated_at_ms), decay);
  }
}

/** An id whose row or ledger entry changed between two statements of `publish`. */
function concurrentPublication(id: string): PolicyError {
  return new PolicyError(
    "id",
    `"${id}" was being published or deleted concurrently.`,
    "Publish it again.",
    id,
  );
}

function checkAgentAndTime(agentId: unknown, atMs: unknown, field: string): void {
  checkId(agentId, "agentId");
  requireFinite(atMs, field, "Pass a time in milliseconds since the epoch (clock.nowMs()).", 0);
}

function checkAction(action: unknown): void {
  if (typeof action !== "object" || action === null) {
    throw new InvalidArgumentError(
      "action",
      `must be { amount }, got ${action === null ? "null" : typeof action}.`,
      "Pass { amount: 0 } for an action without an amount.",
    );
  }
  requireFinite(
    (action as RecordedAction).amount,
    "action.amount",
    "Pass the action's amount, a finite number ≥ 0 (0 when it has none).",
    0,
  );
}

function checkDecay(decay: unknown): void {
  const value = decay as DebtDecay | null;
  if (
    typeof value !== "object" ||
    value === null ||
    typeof value.rate !== "number" ||
    !(value.rate >= 0 && value.rate <= 1) ||
    typeof value.periodMs !== "number" ||
    !Number.isFinite(value.periodMs) ||
    value.periodMs <= 0
  ) {
    throw new InvalidArgumentError(
      "decay",
      "must be { rate in [0, 1], periodMs > 0 }.",
      "Pass the blueprint's decay, e.g. { rate: 0.1, periodMs: 86400000 }.",
    );
  }
}

/** Where blueprints are looked up by id (`name@version`). */
export interface BlueprintRegistry {
  /** The validated document (inheritance not resolved). @throws {BlueprintNotFound} */
  get(id: string): Promise<BlueprintDocument>;
  /** Every id held. */
  list(): Promise<string[]>;
}

/**
 * Resolve ids from a registry, with every parent they inherit from, ready to give to a
 * steward (`new GovernanceSteward(context, { blueprints: await fetchWithParents(registry, ids) })`).
 */
export async function fetchWithParents(
  registry: BlueprintRegistry,
  ids: readonly string[],
): Promise<BlueprintDocument[]> {
  if (typeof registry !== "object" || registry === null || typeof registry.get !== "function") {
    throw new InvalidArgumentError(
      "registry",
      "must be a BlueprintRegistry (an object with get(id) and list()).",
      "Pass a DirectoryBlueprintRegistry, a PostgresBlueprintRegistry, or your own.",
    );
  }
  requireIdList(ids, "ids", 'Pass the blueprint ids to load, e.g. ["payments@2.1"].');
  const found = new Map<string, BlueprintDocument>();
  const queue = [...ids];
  while (queue.length > 0) {
    const id = queue.shift() as string;
    if (found.has(id)) continue;
    const document = await registry.get(id);
    found.set(id, document);
    if (document.inherits !== undefined && !found.has(document.inherits))
      queue.push(document.inherits);
    if (found.size > 1_000) break;
  }
  return [...found.values()];
}

/** A registry of the `*.yaml` / `*.yml` files of a directory, read once. */
export class DirectoryBlueprintRegistry implements BlueprintRegistry {
  readonly #directory: string;
  #documents: Promise<Map<string, BlueprintDocument>> | null = null;

  constructor(directory: string) {
    this.#directory = directory;
  }

  #load(): Promise<Map<string, BlueprintDocument>> {
    this.#documents ??= (async () => {
      let names: string[];
      try {
        names = await readdir(this.#directory);
      } catch (error) {
        throw new PolicyError(
          "",
          `the directory ${this.#directory} could not be read (${(error as NodeJS.ErrnoException).code ?? String(error)}).`,
          "Pass a readable directory of blueprint YAML files.",
        );
      }
      const documents = new Map<string, BlueprintDocument>();
      for (const name of names.filter((file) => /\.ya?ml$/.test(file)).sort()) {
        const document = await readBlueprintFile(join(this.#directory, name));
        if (documents.has(document.id)) {
          throw new PolicyError(
            "id",
            `"${document.id}" is defined twice in ${this.#directory} (again in ${name}).`,
            "Give each blueprint version its own id.",
            document.id,
          );
        }
        documents.set(document.id, document);
      }
      return documents;
    })();
    return this.#documents;
  }

  async get(id: string): Promise<BlueprintDocument> {
    checkId(id, "id");
    const document = (await this.#load()).get(id);
    if (!document) throw new BlueprintNotFound(id, `the directory ${this.#directory}`);
    return document;
  }

  async list(): Promise<string[]> {
    return [...(await this.#load()).keys()];
  }
}

type BlueprintRow = {
  id: string;
  content: unknown;
  content_hash: string;
  key_id: string | null;
  signature: string | null;
  /** The content hash the ledger records for the id (null without an entry). */
  ledger_hash: string | null;
};

type LedgerRow = { content_hash: string; key_id: string | null; signature: string | null };

/**
 * A list of every key of `Row` (a compile error names a key left out or one that is not a
 * column of the row type).
 */
function columnsOf<Row>() {
  return <const List extends readonly (keyof Row & string)[]>(
    columns: List & (Exclude<keyof Row, List[number]> extends never ? unknown : never),
  ): List => columns;
}

/**
 * The columns the raw SQL of this file reads, by drizzle table, equal to its hand-written row
 * types (the upserts and locks are raw SQL on purpose). `schema.test.ts` checks them against
 * the drizzle tables and the migrated database, on both engines.
 */
export const RAW_SQL_ROWS = [
  {
    table: agentState,
    columns: columnsOf<StateRow>()([
      "hour_start_ms",
      "hour_count",
      "previous_hour_count",
      "day_start_ms",
      "day_count",
      "day_amount",
      "total",
    ]),
  },
  { table: trustDebt, columns: columnsOf<DebtRow>()(["debt", "updated_at_ms"]) },
  {
    table: blueprints,
    columns: columnsOf<Omit<BlueprintRow, "ledger_hash">>()([
      "id",
      "content",
      "content_hash",
      "key_id",
      "signature",
    ]),
  },
  {
    table: blueprintLedger,
    columns: columnsOf<LedgerRow>()(["content_hash", "key_id", "signature"]),
  },
] as const;

/** The agent id of the steward's own audit events (a refused registry row). */
export const STEWARD_SYSTEM_AGENT = "gov.steward";

/** What to do about a refused row, by reason. */
const REJECTION_FIXES: Record<BlueprintRejectionReason, string> = {
  unsigned:
    "Publish the same blueprint again (registry.publish) from a process that holds the chain key: an unsigned row with the same content is signed in place. Other content needs a new version.",
  unknown_key:
    "If the chain key was rotated, add the old key to the keyring (GOVERNANCE_CHAIN_KEY_<key id> or historicalKeys); otherwise the row was not written by this deployment: find out who can write gov_steward.blueprints.",
  bad_signature:
    "The row was changed in the database after it was published: find out who can write gov_steward.blueprints, delete the row, and publish the blueprint again.",
  hash_mismatch:
    "The row was changed in the database after it was published: find out who can write gov_steward.blueprints, delete the row, and publish the blueprint again.",
  invalid_blueprint:
    "The row holds content this version of @gov/steward refuses: delete the row and publish the blueprint again (under a new version if its content changed).",
  ledger_mismatch:
    "Someone put back an older row of this version, or edited gov_steward.blueprint_ledger: find out who can write gov_steward, and publish the intended content under a new version.",
};

/** Options of {@link PostgresBlueprintRegistry}. */
export interface PostgresBlueprintRegistryOptions {
  /**
   * The chain keyring: new versions are signed with its current key; stored ones verify under
   * the key they name. Required to publish or get (`StewardModule` passes `context.keyring`).
   */
  keyring?: Keyring;
  /** Where refused rows are recorded (`steward.blueprint_rejected`). @default no audit */
  audit?: AuditSink;
  /** Where refused rows are reported. @default a console logger */
  logger?: Logger;
}

/**
 * The Postgres registry (`gov_steward.blueprints`): versions are immutable, and each row is
 * signed under the chain key (HMAC-SHA256 over the domain tag `gov.steward.blueprint.v1`, id,
 * version, content hash and content). Publishing an id again with the same content is a no-op;
 * with different content it is refused, even after the row was deleted: what was ever
 * published under an id is kept in a signed ledger (`gov_steward.blueprint_ledger`). A row
 * whose signature fails — edited in the table, written before signatures, or signed by a key
 * this process does not hold — or whose content is not what the ledger records for its id (an
 * older signed row put back) is refused when read ({@link BlueprintSignatureInvalid}), logged
 * and written to the audit chain.
 *
 * @example
 * ```ts
 * const registry = new PostgresBlueprintRegistry(store, { keyring, audit, logger });
 * await registry.publish(document);
 * const steward = await GovernanceSteward.fromRegistry(registry, ["payments@2.1"]);
 * ```
 */
export class PostgresBlueprintRegistry implements BlueprintRegistry {
  readonly #store: Store | undefined;
  readonly #keyring: Keyring | null;
  readonly #audit: AuditSink;
  readonly #logger: Logger;

  /**
   * @throws {InvalidArgumentError} for a store, keyring, audit sink or logger of the wrong shape,
   *   or an unknown option (with a "did you mean").
   */
  constructor(store: Store, options: PostgresBlueprintRegistryOptions = {}) {
    requirePort(store, "store", ["query"], "a Store", { optional: true });
    const parsed = parseRegistryOptions(options);
    this.#store = store;
    this.#keyring = parsed.keyring ?? null;
    this.#audit = parsed.audit ?? noopAuditSink;
    this.#logger = parsed.logger ?? createConsoleLogger();
  }

  get #db(): Store {
    if (this.#store) return this.#store;
    throw new InvalidArgumentError(
      "store",
      "is missing: the blueprint registry lives in the database.",
      "Pass new PostgresBlueprintRegistry(store, { keyring }).",
    );
  }

  #requireKeyring(): Keyring {
    if (this.#keyring) return this.#keyring;
    throw new InvalidArgumentError(
      "options.keyring",
      "is missing: the blueprint registry signs what it publishes and verifies what it reads under the chain key.",
      "Pass new PostgresBlueprintRegistry(store, { keyring }) with the deployment's Keyring (StewardModule and @gov/sdk pass context.keyring).",
    );
  }

  /**
   * Validate, sign and store a blueprint version. Publishing the same content again is a
   * no-op: it signs a row written before signatures, and writes back a row that was deleted.
   * Other content under a published id is refused for good (the ledger remembers it after the
   * row is deleted): publish it under a new version.
   *
   * @returns its id and content hash (SHA-256 of the validated document's canonical JSON).
   * @throws {PolicyError} for a bad blueprint, an id published before with other content, or
   *   an id whose row holds other content that no process holding the chain key published.
   * @throws {BlueprintSignatureInvalid} when the stored row of this id fails its check.
   * @throws {InvalidArgumentError} without a keyring.
   */
  async publish(input: unknown): Promise<{ id: string; contentHash: string }> {
    const keyring = this.#requireKeyring();
    const document = validateBlueprint(input);
    const { contentHash, signature, keyId } = signBlueprint(keyring.current, document);
    const id = document.id;
    // Other content stored under this id, or recorded as published, refuses the new one
    // before anything is written.
    const existing = await this.#read(id);
    if (existing && existing.content_hash !== contentHash) {
      await this.#refuseOtherContent(id, existing);
    }
    await this.#record(keyring, id, contentHash);
    const name = id.slice(0, id.lastIndexOf("@"));
    const content = JSON.stringify(document);
    const inserted = await this.#db.query<{ id: string }>(sql`
      insert into ${blueprints} (id, name, version, content, content_hash, key_id, signature)
      values (${id}, ${name}, ${document.version}, ${content}::jsonb, ${contentHash}, ${keyId}, ${signature})
      on conflict (id) do nothing
      returning id`);
    if (inserted.length > 0) return { id, contentHash };
    const row = await this.#read(id);
    if (!row) throw concurrentPublication(id);
    if (row.content_hash !== contentHash) await this.#refuseOtherContent(id, row);
    if (row.signature === null) {
      // Written before signatures, with this content: sign it in place (with the content as
      // validated here, whatever the row holds).
      await this.#db.query(sql`
        update ${blueprints}
        set content = ${content}::jsonb, key_id = ${keyId}, signature = ${signature}
        where id = ${id} and signature is null and content_hash = ${contentHash}`);
      const [signed] = await this.#db.query<{ signature: string | null }>(
        sql`select signature from ${blueprints} where id = ${id}`,
      );
      if (signed?.signature) return { id, contentHash };
    }
    await this.#verified(id, await this.#read(id));
    return { id, contentHash };
  }

  /**
   * Refuse to publish other content under `id`: what its row holds (published, unsigned, or
   * failing its check) or what the ledger records, named for what it is.
   */
  async #refuseOtherContent(id: string, row: BlueprintRow): Promise<never> {
    if (row.content === undefined) {
      // Only a ledger entry: the version was published before, and its row deleted since.
      const entry = await this.#ledgerEntry(id);
      const signed = entry !== undefined && this.#ledgerSigned(id, entry);
      throw new PolicyError(
        "id",
        `"${id}" was published before with other content (hash ${String(row.content_hash).slice(0, 12)}…)${signed ? "" : " — as its ledger entry says, which is not signed by this deployment (recorded before the ledger was signed, or written by hand)"}; versions are immutable, even after their row is deleted.`,
        "Publish the change under a new version (name@next-version).",
        id,
      );
    }
    if (row.signature === null) {
      throw new PolicyError(
        "id",
        `"${id}" holds an unsigned row with other content (hash ${String(row.content_hash).slice(0, 12)}…), which no process holding the chain key published: written before blueprints were signed, or by hand.`,
        "If the row is yours (written before signatures), publish its content unchanged to sign it and this change under a new version; otherwise find out who can write gov_steward.blueprints, delete the row, and publish again.",
        id,
      );
    }
    // A signed row: refused (reported) if it fails its check, else a publication.
    await this.#verified(id, row);
    throw new PolicyError(
      "id",
      `"${id}" is already published with other content (hash ${String(row.content_hash).slice(0, 12)}…); versions are immutable.`,
      "Publish the change under a new version (name@next-version).",
      id,
    );
  }

  /**
   * Record in the ledger that `contentHash` is published under `id` (signed), or sign an
   * unsigned entry of the same hash; refuse when the ledger holds other content (a concurrent
   * publication of other content won).
   */
  async #record(keyring: Keyring, id: string, contentHash: string): Promise<void> {
    const entry = signLedgerEntry(keyring.current, id, contentHash);
    const written = await this.#db.query<{ id: string }>(sql`
      insert into ${blueprintLedger} as l (id, content_hash, key_id, signature)
      values (${id}, ${contentHash}, ${entry.keyId}, ${entry.signature})
      on conflict (id) do update set key_id = excluded.key_id, signature = excluded.signature
        where l.content_hash = excluded.content_hash
      returning id`);
    if (written.length > 0) return;
    const recorded = await this.#ledgerEntry(id);
    if (!recorded) throw concurrentPublication(id);
    await this.#refuseOtherContent(id, {
      id,
      content: undefined,
      content_hash: recorded.content_hash,
      key_id: null,
      signature: null,
      ledger_hash: recorded.content_hash,
    });
  }

  async #ledgerEntry(id: string): Promise<LedgerRow | undefined> {
    const [entry] = await this.#db.query<LedgerRow>(
      sql`select content_hash, key_id, signature from ${blueprintLedger} where id = ${id}`,
    );
    return entry;
  }

  #ledgerSigned(id: string, entry: LedgerRow): boolean {
    return ledgerEntrySigned(this.#requireKeyring(), {
      id,
      contentHash: entry.content_hash,
      keyId: entry.key_id,
      signature: entry.signature,
    });
  }

  /**
   * The validated document of a version, once its row passed its signature check.
   *
   * @throws {BlueprintNotFound} for an id that is not stored.
   * @throws {BlueprintSignatureInvalid} for a row that fails its check (reported first: a
   *   warning and a `steward.blueprint_rejected` audit event).
   * @throws {InvalidArgumentError} for an id that is not a string, or without a keyring.
   */
  async get(id: string): Promise<BlueprintDocument> {
    if (typeof id !== "string" || id.length === 0 || id.length > STEWARD_LIMITS.idLength) {
      throw new InvalidArgumentError(
        "id",
        `must be a blueprint id (name@version) of 1 to ${STEWARD_LIMITS.idLength} characters, got ${typeof id === "string" ? `${id.length} characters` : typeof id}.`,
        'Pass an id such as "payments@2.1".',
      );
    }
    this.#requireKeyring();
    return this.#verified(id, await this.#read(id));
  }

  /**
   * The row of `id` with the hash its ledger entry records; when only a ledger entry is left
   * (the row deleted), that entry as a row without content.
   */
  async #read(id: string): Promise<BlueprintRow | undefined> {
    const [row] = await this.#db.query<BlueprintRow>(sql`
      select b.id, b.content, b.content_hash, b.key_id, b.signature, l.content_hash as ledger_hash
      from ${blueprints} b
      left join ${blueprintLedger} l on l.id = b.id
      where b.id = ${id}`);
    if (row) return row;
    const entry = await this.#ledgerEntry(id);
    return entry === undefined
      ? undefined
      : {
          id,
          content: undefined,
          content_hash: entry.content_hash,
          key_id: null,
          signature: null,
          ledger_hash: entry.content_hash,
        };
  }

  async #verified(id: string, row: BlueprintRow | undefined): Promise<BlueprintDocument> {
    if (!row || row.content === undefined) {
      throw new BlueprintNotFound(id, "the blueprint registry (gov_steward.blueprints)");
    }
    const checked = verifyStoredBlueprint(this.#requireKeyring(), {
      id: row.id,
      content: row.content,
      contentHash: row.content_hash,
      keyId: row.key_id,
      signature: row.signature,
      ledgerHash: row.ledger_hash,
    });
    if (checked.ok) return checked.document;
    const fix = REJECTION_FIXES[checked.reason];
    await this.#report(id, row.key_id, checked.reason, checked.problem, fix);
    throw new BlueprintSignatureInvalid(id, checked.reason, checked.problem, fix);
  }

  /** A refused row: logged, and written to the audit chain (awaited, at most 5 s). */
  async #report(
    id: string,
    keyId: string | null,
    reason: BlueprintRejectionReason,
    problem: string,
    fix: string,
  ): Promise<void> {
    const shownKeyId = typeof keyId === "string" ? sanitizeName(keyId.slice(0, 64)) : null;
    this.#logger.warn(
      `Refused blueprint ${JSON.stringify(id)} from the registry: ${problem}. Nothing was loaded from it. ${fix}`,
      { blueprintId: id, reason, keyId: shownKeyId },
    );
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        Promise.resolve().then(() =>
          this.#audit.log({
            agentId: STEWARD_SYSTEM_AGENT,
            kind: STEWARD_AUDIT_KINDS.blueprintRejected,
            metadata: {
              blueprintId: id,
              reason,
              keyId: shownKeyId,
              problem,
              path: "steward.registry.get",
            },
          }),
        ),
        new Promise((resolve) => {
          timer = setTimeout(resolve, 5_000);
        }),
      ]);
    } catch (error) {
      this.#logger.error(
        "Could not write a refused blueprint to the audit chain; it is refused all the same.",
        { blueprintId: id, reason, error: error instanceof Error ? error.message : String(error) },
      );
    } finally {
      clearTimeout(timer);
    }
  }

  /** Every id stored, signed or not (`get` verifies). */
  async list(): Promise<string[]> {
    const rows = await this.#db.query<{ id: string }>(
      sql`select id from ${blueprints} order by id`,
    );
    return rows.map((row) => row.id);
  }
}
