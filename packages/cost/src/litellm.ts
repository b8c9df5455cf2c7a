/**
 * The LiteLLM price format (`model_prices_and_context_window.json`): reading it into prices
 * of the {@link PriceTable} (see `PriceTable.importLiteLLM`).
 */
import { parseOptions, typeOf } from "@gov/core";
import { z } from "zod";
import { InvalidPriceError } from "./errors";
import { COST_LIMITS, modelIdProblem } from "./models";
import { decimalToUnits, FEMTO_DIGITS, isDecimalProblem, rateToUsdPerMillion } from "./money";

/** An entry a LiteLLM import did not take, and why. */
export interface LiteLLMImportIssue {
  readonly model: string;
  readonly reason: string;
}

/** What {@link PriceTable.importLiteLLM} did. */
export interface LiteLLMImportResult {
  /** Model ids added or replaced (lower case). */
  readonly imported: readonly string[];
  /** Entries that are not token-priced chat models (`sample_spec`, embeddings, images, …), or already priced with `overwrite: false`. */
  readonly ignored: readonly LiteLLMImportIssue[];
  /** Entries that were invalid and were not imported at all. */
  readonly skipped: readonly LiteLLMImportIssue[];
}

/** The zod form of {@link LiteLLMImportOptions}. */
const IMPORT_OPTIONS = z.strictObject({ overwrite: z.boolean().optional() });

/** Options of {@link PriceTable.importLiteLLM}. */
export interface LiteLLMImportOptions {
  /** Replace prices the table already has. @default true */
  overwrite?: boolean;
}

const LITELLM_MODES = new Set(["chat", "completion", "responses"]);
const LITELLM_RATES = [
  ["input_cost_per_token", "inputUsdPerMillion"],
  ["output_cost_per_token", "outputUsdPerMillion"],
  ["cache_read_input_token_cost", "cachedInputUsdPerMillion"],
  ["cache_creation_input_token_cost", "cacheWriteUsdPerMillion"],
  ["output_cost_per_reasoning_token", "reasoningUsdPerMillion"],
] as const;

/** USD per token (LiteLLM) → USD per million tokens, exactly, as a decimal string. */
function perTokenToPerMillion(value: unknown, key: string): string | { problem: string } {
  if (typeof value !== "number")
    return { problem: `${key} must be a number, got ${typeOf(value)}.` };
  const femto = decimalToUnits(value, FEMTO_DIGITS);
  if (isDecimalProblem(femto)) return { problem: `${key} ${femto.problem}` };
  return rateToUsdPerMillion(femto);
}

/** What {@link readLiteLLM} needs of the table it reads for. */
export interface LiteLLMTarget<Entry> {
  /** Whether the table has a price for the (lower-case) id already. */
  isPriced(id: string): boolean;
  /** Validate a price read from the file; throws (with the reason) when it is refused. */
  toEntry(id: string, price: Record<string, unknown>): Entry;
}

/** What a LiteLLM file holds for `table`: the entries to put, and those ignored or skipped. */
export interface LiteLLMRead<Entry> {
  ready: [string, Entry][];
  ignored: LiteLLMImportIssue[];
  skipped: LiteLLMImportIssue[];
}

/**
 * Read a LiteLLM price file (its text or its parsed object) for `table`, without changing
 * anything: an entry with a missing or bad cost is skipped as a whole, never half-read.
 *
 * @throws {InvalidArgumentError} bad options. @throws {InvalidPriceError} when `json` is not a
 *   JSON object of model ids to prices, or has too many entries.
 */
export function readLiteLLM<Entry>(
  json: unknown,
  options: LiteLLMImportOptions,
  table: LiteLLMTarget<Entry>,
): LiteLLMRead<Entry> {
  const overwrite =
    parseOptions(IMPORT_OPTIONS, options, {
      fixes: {
        "": "Pass { overwrite?: boolean }.",
        overwrite: "Pass overwrite: false to keep prices the table already has.",
      },
    }).overwrite ?? true;
  let data = json;
  if (typeof json === "string") {
    try {
      data = JSON.parse(json);
    } catch (error) {
      throw new InvalidPriceError(
        "json",
        `is not valid JSON (${(error as Error).message}).`,
        "Pass the text or the parsed object of LiteLLM's model_prices_and_context_window.json.",
      );
    }
  }
  if (typeof data !== "object" || data === null || Array.isArray(data)) {
    throw new InvalidPriceError(
      "json",
      `must be an object of model ids to prices, got ${typeOf(data)}.`,
      "Pass the text or the parsed object of LiteLLM's model_prices_and_context_window.json.",
    );
  }
  const keys = Object.keys(data);
  if (keys.length > COST_LIMITS.importEntries) {
    throw new InvalidPriceError(
      "json",
      `has ${keys.length} entries; the limit is ${COST_LIMITS.importEntries}.`,
      "Import a smaller file, or only the models you use.",
      COST_LIMITS.importEntries,
    );
  }
  const ready: [string, Entry][] = [];
  const ignored: LiteLLMImportIssue[] = [];
  const skipped: LiteLLMImportIssue[] = [];
  for (const model of keys) {
    const value = (data as Record<string, unknown>)[model];
    if (model === "sample_spec") {
      ignored.push({ model, reason: "LiteLLM's description of the format, not a model." });
      continue;
    }
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      skipped.push({ model, reason: `The entry must be an object, got ${typeOf(value)}.` });
      continue;
    }
    const record = value as Record<string, unknown>;
    const mode = record.mode;
    if (mode !== undefined && !(typeof mode === "string" && LITELLM_MODES.has(mode))) {
      ignored.push({
        model,
        reason: `mode ${JSON.stringify(mode)} is not a chat model priced per text token.`,
      });
      continue;
    }
    const idProblem = modelIdProblem(model);
    if (idProblem) {
      skipped.push({ model, reason: `The model id ${idProblem}` });
      continue;
    }
    const id = model.toLowerCase();
    if (!overwrite && table.isPriced(id)) {
      ignored.push({ model, reason: "Already priced, and overwrite is false." });
      continue;
    }
    const price: Record<string, unknown> = {
      provider: typeof record.litellm_provider === "string" ? record.litellm_provider : null,
      source: "LiteLLM model_prices_and_context_window.json",
    };
    let problem: string | null = null;
    for (const [from, to] of LITELLM_RATES) {
      const raw = record[from];
      const required = to === "inputUsdPerMillion" || to === "outputUsdPerMillion";
      if (raw === undefined || raw === null) {
        if (required) {
          problem = `It has no ${from}.`;
          break;
        }
        continue;
      }
      const converted = perTokenToPerMillion(raw, from);
      if (typeof converted !== "string") {
        problem = converted.problem;
        break;
      }
      price[to] = converted;
    }
    if (problem === null) {
      try {
        ready.push([id, table.toEntry(id, price)]);
      } catch (error) {
        problem = error instanceof Error ? error.message : String(error);
      }
    }
    if (problem !== null) skipped.push({ model, reason: problem });
  }
  return { ready, ignored, skipped };
}
