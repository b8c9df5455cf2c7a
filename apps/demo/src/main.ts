/**
 * `pnpm demo`: the governed billing agent on the embedded database (or on the Postgres in
 * GOVERNANCE_DATABASE_URL, with GOVERNANCE_AUDIT_SECRET).
 */
import { runDemo } from "./demo";

try {
  await runDemo({}, (line) => process.stdout.write(`${line}\n`));
} catch (error) {
  process.stderr.write(`demo failed: ${error instanceof Error ? error.message : String(error)}\n`);
  if (error && typeof error === "object" && "recoveryHint" in error)
    process.stderr.write(`fix: ${String(error.recoveryHint)}\n`);
  process.exitCode = 1;
}
