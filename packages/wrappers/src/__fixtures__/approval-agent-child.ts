/**
 * Run by approvals-multiprocess.test.ts as another OS process: the payment agent (AI SDK 6,
 * against a loopback model server of its own) on the database named by argv[2], its keys from
 * APPROVAL_CHILD_SECRET. Its run stops at the approval request; it prints one JSON line — the
 * request it delivered (this line is how the token reaches the reviewer: the test) and the run's
 * messages, as an application saves them — and exits.
 */
import { ChainKey, createStore, Keyring, silentLogger, systemClock } from "@gov/core";
import { GatesModule } from "@gov/gates";
import { AI_SDKS } from "./ai-sdk";
import { startOpenAIServer } from "./openai-server";
import { callsTool, firstRun, PAYMENT, paymentAgent } from "./payment-agent";

const [url] = process.argv.slice(2);
const secret = process.env.APPROVAL_CHILD_SECRET;
const sdk = AI_SDKS.find((candidate) => candidate.major === 6);
if (!url || !secret || !sdk)
  throw new Error("usage: APPROVAL_CHILD_SECRET=… approval-agent-child.ts <url>");
const store = await createStore({ databaseUrl: url, logger: silentLogger, pool: { max: 2 } });
const gates = new GatesModule({
  store,
  keyring: new Keyring(new ChainKey(secret)),
  clock: systemClock,
  logger: silentLogger,
});
await gates.start();
const server = await startOpenAIServer();
try {
  callsTool(server, PAYMENT);
  const agent = paymentAgent(sdk.ai, { gates, logger: silentLogger });
  const first = await firstRun(sdk.ai, sdk.chat(server.baseURL), agent.tools);
  const request = agent.notices[0]?.request;
  process.stdout.write(
    `${JSON.stringify({
      requestId: request?.requestId ?? null,
      token: request?.token ?? null,
      ran: agent.ran.length,
      messages: first.response.messages,
    })}\n`,
  );
} finally {
  await server.close();
  await gates.close();
  await store.close();
}
