/**
 * Run by attack.test.ts as another OS process: a scope module on the database at argv[2],
 * keyed with the secret in SCOPE_CHILD_SECRET, that answers one JSON line per request line
 * (check, filter, models, reload, rejections, close). It never polls: what it loads comes
 * from its start, from notifications, and from the reloads it is asked for.
 */
import { createInterface } from "node:readline";
import { ChainKey, createStore, Keyring, noopHaltGuard, silentLogger } from "@gov/core";
import { recordingAuditSink } from "@gov/core/testing";
import { ScopeModule } from "../module";
import { SCOPE_POLICY_REJECTED_KIND } from "../policy-sync";
import { fieldLogger } from "./index";
import { probed } from "./probe";

const [url] = process.argv.slice(2);
const secret = process.env.SCOPE_CHILD_SECRET;
if (!url || !secret) throw new Error("usage: SCOPE_CHILD_SECRET=… scope-child.ts <url>");

const store = await createStore({ databaseUrl: url, logger: silentLogger, pool: { max: 4 } });
const logger = fieldLogger();
const audit = recordingAuditSink();
const scope = new ScopeModule(
  { store, keyring: new Keyring(new ChainKey(secret)), logger, audit, halt: noopHaltGuard },
  { pollIntervalMs: null },
);
const probe = probed(scope);
const print = (line: unknown) => process.stdout.write(`${JSON.stringify(line)}\n`);

/** A request line from the test. */
type Request =
  | { op: "check"; agentId: string; target: { tool: string } | { api: string } }
  | { op: "filter"; agentId: string; tools: string[] }
  | { op: "models"; agentId: string }
  | { op: "reload" }
  | { op: "rejections" }
  | { op: "close" };

try {
  await scope.start();
  print({ event: "ready" });
  requests: for await (const line of createInterface({ input: process.stdin })) {
    const request = JSON.parse(line) as Request;
    switch (request.op) {
      case "check":
        print({ result: await probe.check(request.agentId, request.target) });
        break;
      case "filter":
        print({ result: await probe.filter(request.agentId, request.tools) });
        break;
      case "models":
        print({ result: await probe.models(request.agentId) });
        break;
      case "reload":
        await scope.reload();
        print({ result: "reloaded" });
        break;
      case "rejections":
        print({
          warnings: logger.lines
            .filter((entry) => entry.level === "warn" && entry.fields?.reason !== undefined)
            .map((entry) => ({
              agentId: entry.fields?.agentId,
              reason: entry.fields?.reason,
              message: entry.message,
            })),
          audit: audit.events
            .filter((event) => event.kind === SCOPE_POLICY_REJECTED_KIND)
            .map((event) => ({ agentId: event.agentId, metadata: event.metadata })),
        });
        break;
      case "close":
        await scope.close();
        print({ result: "closed" });
        break requests;
    }
  }
} finally {
  process.stdin.destroy();
  await scope.close();
  await store.close();
}
