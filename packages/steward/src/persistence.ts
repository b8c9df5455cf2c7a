import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { canonicalJsonHash, type Store, sql } from "@gov/core";
import { readBlueprintFile, validateBlueprint } from "./blueprint";
import { BlueprintNotFound, PolicyError } from "./errors";
import type { BlueprintDocument } from "./models";
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

interface StateRow extends Record<string, unknown> {
  hour_start_ms: string | number;
  hour_count: number;
  previous_hour_count: number;
  day_start_ms: string | number;
  day_count: number;
  day_amount: number;
  total: string | number;
}

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

  constructor(store: Store) {
    this.#store = store;
  }

  async read(agentId: string, nowMs: number): Promise<AgentState> {
    const [row] = await this.#store.query<StateRow>(
      sql`select hour_start_ms, hour_count, previous_hour_count, day_start_ms, day_count, day_amount, total
          from gov_steward.agent_state where agent_id = ${agentId}`,
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
    const hour = Math.floor(nowMs / HOUR_MS) * HOUR_MS;
    const day = Math.floor(nowMs / DAY_MS) * DAY_MS;
    const amount = Math.max(0, action.amount);
    const [row] = await this.#store.query<StateRow>(sql`
      insert into gov_steward.agent_state as s
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
    const hour = Math.floor(reservedAtMs / HOUR_MS) * HOUR_MS;
    const day = Math.floor(reservedAtMs / DAY_MS) * DAY_MS;
    await this.#store.query(sql`
      update gov_steward.agent_state set
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

  constructor(store: Store) {
    this.#store = store;
  }

  async add(agentId: string, amount: number, nowMs: number, decay: DebtDecay): Promise<DebtChange> {
    const rate = Math.min(1, Math.max(0, decay.rate));
    const [row] = await this.#store.query<{ debt: number }>(sql`
      insert into gov_steward.trust_debt as d (agent_id, debt, updated_at_ms)
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
    const [row] = await this.#store.query<{ debt: number; updated_at_ms: string | number }>(
      sql`select debt, updated_at_ms from gov_steward.trust_debt where agent_id = ${agentId}`,
    );
    if (!row) return 0;
    return decayed(Number(row.debt), nowMs - Number(row.updated_at_ms), decay);
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
 * steward (`new GovernanceSteward({ blueprints: await fetchWithParents(registry, ids) })`).
 */
export async function fetchWithParents(
  registry: BlueprintRegistry,
  ids: readonly string[],
): Promise<BlueprintDocument[]> {
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
    const document = (await this.#load()).get(id);
    if (!document) throw new BlueprintNotFound(id, `the directory ${this.#directory}`);
    return document;
  }

  async list(): Promise<string[]> {
    return [...(await this.#load()).keys()];
  }
}

interface BlueprintRow extends Record<string, unknown> {
  id: string;
  content: unknown;
  content_hash: string;
}

/**
 * The Postgres registry (`gov_steward.blueprints`): versions are immutable. Publishing an id
 * again with the same content is a no-op; with different content it is refused.
 */
export class PostgresBlueprintRegistry implements BlueprintRegistry {
  readonly #store: Store;

  constructor(store: Store) {
    this.#store = store;
  }

  /**
   * Validate and store a blueprint version.
   * @returns its id and content hash (SHA-256 of the validated document's canonical JSON).
   * @throws {PolicyError} for a bad blueprint, or an id already published with other content.
   */
  async publish(input: unknown): Promise<{ id: string; contentHash: string }> {
    const document = validateBlueprint(input);
    const contentHash = canonicalJsonHash(document, "blueprint");
    const name = document.id.slice(0, document.id.lastIndexOf("@"));
    const [row] = await this.#store.query<{ content_hash: string }>(sql`
      with inserted as (
        insert into gov_steward.blueprints (id, name, version, content, content_hash)
        values (${document.id}, ${name}, ${document.version}, ${JSON.stringify(document)}::jsonb, ${contentHash})
        on conflict (id) do nothing
        returning content_hash)
      select content_hash from inserted
      union all
      select content_hash from gov_steward.blueprints where id = ${document.id}
      limit 1`);
    // A concurrent publish of the same id may commit after this statement's snapshot: read it.
    const stored =
      row ??
      (
        await this.#store.query<{ content_hash: string }>(
          sql`select content_hash from gov_steward.blueprints where id = ${document.id}`,
        )
      )[0];
    if (stored && stored.content_hash !== contentHash) {
      throw new PolicyError(
        "id",
        `"${document.id}" is already published with other content (hash ${stored.content_hash.slice(0, 12)}…); versions are immutable.`,
        "Publish the change under a new version (name@next-version).",
        document.id,
      );
    }
    return { id: document.id, contentHash };
  }

  async get(id: string): Promise<BlueprintDocument> {
    const [row] = await this.#store.query<BlueprintRow>(
      sql`select id, content, content_hash from gov_steward.blueprints where id = ${id}`,
    );
    if (!row) throw new BlueprintNotFound(id, "the blueprint registry (gov_steward.blueprints)");
    const content = typeof row.content === "string" ? JSON.parse(row.content) : row.content;
    const document = validateBlueprint(content);
    if (canonicalJsonHash(document, "blueprint") !== row.content_hash) {
      throw new PolicyError(
        "",
        "its stored content does not match its content hash (altered in the database).",
        "Republish the blueprint under a new version and investigate the change.",
        id,
      );
    }
    return document;
  }

  async list(): Promise<string[]> {
    const rows = await this.#store.query<{ id: string }>(
      sql`select id from gov_steward.blueprints order by id`,
    );
    return rows.map((row) => row.id);
  }
}
