import { existsSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";

/** One benchmark's summary, as written to `bench/results/<package>.json`. */
export interface BenchResult {
  name: string;
  unit: string;
  median: number;
  p99: number;
  min: number;
  max: number;
  n: number;
}

/** A target a result is held to, printed beside it. */
export interface BenchTarget {
  /** Which statistic the target applies to. */
  statistic: "median" | "p99" | "max";
  /** "at most" (latency) or "at least" (throughput). */
  direction: "max" | "min";
  value: number;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length) - 1;
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank))] as number;
}

const round = (value: number) => Math.round(value * 1000) / 1000;

/** Summarize raw samples (nearest-rank percentiles). */
export function summarize(name: string, unit: string, samples: readonly number[]): BenchResult {
  if (samples.length === 0) throw new Error(`benchmark ${name} has no samples`);
  const sorted = [...samples].sort((a, b) => a - b);
  return {
    name,
    unit,
    median: round(percentile(sorted, 50)),
    p99: round(percentile(sorted, 99)),
    min: round(sorted[0] as number),
    max: round(sorted[sorted.length - 1] as number),
    n: sorted.length,
  };
}

/** The repository root: the nearest folder above `start` with pnpm-workspace.yaml. */
export function repositoryRoot(start = process.cwd()): string {
  let directory = start;
  while (!existsSync(join(directory, "pnpm-workspace.yaml"))) {
    const parent = dirname(directory);
    if (parent === directory) throw new Error("not inside the @gov repository");
    directory = parent;
  }
  return directory;
}

function meets(result: BenchResult, target: BenchTarget): boolean {
  const value = result[target.statistic];
  return target.direction === "max" ? value <= target.value : value >= target.value;
}

/**
 * Print a table of results (with their targets) and write them to
 * `bench/results/<package>.json` at the repository root.
 *
 * @returns false when a result misses its target.
 */
export async function reportResults(
  packageName: string,
  results: readonly BenchResult[],
  targets: Readonly<Record<string, BenchTarget>> = {},
): Promise<boolean> {
  const file = join(
    repositoryRoot(),
    "bench",
    "results",
    `${packageName.replace(/^@gov\//, "")}.json`,
  );
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, `${JSON.stringify(results, null, 2)}\n`);
  let allMet = true;
  const rows = results.map((result) => {
    const target = targets[result.name];
    let verdict = "";
    if (target) {
      const ok = meets(result, target);
      allMet &&= ok;
      verdict = `${ok ? "ok  " : "MISS"} ${target.statistic} ${target.direction === "max" ? "≤" : "≥"} ${target.value} ${result.unit}`;
    }
    return [
      result.name,
      result.unit,
      result.median,
      result.p99,
      result.min,
      result.max,
      result.n,
      verdict,
    ].map(String);
  });
  const header = ["benchmark", "unit", "median", "p99", "min", "max", "n", "target"];
  const widths = header.map((title, column) =>
    Math.max(title.length, ...rows.map((row) => (row[column] ?? "").length)),
  );
  const line = (cells: string[]) =>
    cells.map((cell, column) => cell.padEnd(widths[column] ?? 0)).join("  ");
  process.stdout.write(
    `\n${packageName}\n${line(header)}\n${line(widths.map((width) => "-".repeat(width)))}\n`,
  );
  for (const row of rows) process.stdout.write(`${line(row)}\n`);
  process.stdout.write(
    `results written to bench/results/${packageName.replace(/^@gov\//, "")}.json\n`,
  );
  return allMet;
}
