// The loopback Anthropic server is public (`@gov/wrappers/testing`); the tests import it from
// here, with what the price table says a usage costs.
import { PriceTable } from "@gov/cost";
import { MODEL } from "../testing/anthropic-server";

export * from "../testing/anthropic-server";

/**
 * What the price table says {@link MODEL} costs for these counts, part by part: `input_tokens`
 * excludes the cache reads and writes, each billed at its own rate.
 */
export function usdOf(usage: {
  input_tokens: number;
  output_tokens: number;
  cache_creation_input_tokens?: number;
  cache_read_input_tokens?: number;
}): number {
  const price = new PriceTable().lookup(MODEL)?.price;
  if (!price) throw new Error(`${MODEL} is not in the price table`);
  const rate = (value: string | null) => Number(value) / 1e6;
  return (
    usage.input_tokens * rate(price.inputUsdPerMillion) +
    (usage.cache_creation_input_tokens ?? 0) * rate(price.cacheWriteUsdPerMillion) +
    (usage.cache_read_input_tokens ?? 0) * rate(price.cachedInputUsdPerMillion) +
    usage.output_tokens * rate(price.outputUsdPerMillion)
  );
}
