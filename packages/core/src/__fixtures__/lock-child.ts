/**
 * Run by store-pglite.test.ts: waits for a shared start signal, then tries to open the
 * embedded database in <home>. Prints "opened" (and holds it a while) or the error code.
 */
import { existsSync } from "node:fs";
import { createStore, silentLogger } from "../index";

const [home, goFile] = process.argv.slice(2);
if (!home || !goFile) throw new Error("usage: lock-child.ts <home> <go file>");
process.stdout.write("ready\n");
while (!existsSync(goFile)) await new Promise((resolve) => setTimeout(resolve, 2));
try {
  const store = await createStore({ databaseUrl: home, logger: silentLogger });
  process.stdout.write("opened\n");
  await new Promise((resolve) => setTimeout(resolve, 3_000));
  await store.close();
} catch (error) {
  process.stdout.write(`${(error as { code?: string }).code ?? "UNKNOWN"}\n`);
}
