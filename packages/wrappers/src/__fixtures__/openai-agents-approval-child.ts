/**
 * Run by openai-agents/approvals-multiprocess.test.ts as another OS process: the billing agent
 * (`@openai/agents`, against a loopback model server of its own), governed with gates on the
 * database named by argv[2] (keys from APPROVAL_CHILD_SECRET). Its run stops at the payment's
 * approval; it prints one JSON line — the request it delivered (how the token reaches the
 * reviewer: the test) and the run's state, serialized as an application saves it — and exits.
 */
import { ChainKey, createStore, Keyring, silentLogger, systemClock } from "@gov/core";
import { GatesModule } from "@gov/gates";
import { run, setTracingDisabled } from "@openai/agents";
import type { ApprovalRequestNotice } from "../ai-sdk/approval-options";
import { governAgent } from "../openai-agents/govern-agent";
import { AGENT, agentResponse, billingAgent, client, PAY, script } from "./openai-agents";
import { startOpenAIServer } from "./openai-server";

const [url] = process.argv.slice(2);
const secret = process.env.APPROVAL_CHILD_SECRET;
if (url !== undefined && secret !== undefined) {
  setTracingDisabled(true);
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
    script(server, agentResponse({ calls: [PAY] }));
    const billing = billingAgent();
    const notices: ApprovalRequestNotice[] = [];
    const agent = governAgent(billing.agent, {
      governance: { gates, logger: silentLogger },
      agentId: AGENT,
      client: client(server),
      approval: { tools: ["wire_money"], onRequest: (notice) => void notices.push(notice) },
    });
    const result = await run(agent, "Pay 120 to acct-7.");
    const request = notices[0]?.request;
    process.stdout.write(
      `${JSON.stringify({
        requestId: request?.requestId ?? null,
        token: request?.token ?? null,
        ran: billing.ran.length,
        interruptions: result.interruptions.length,
        state: result.state.toString(),
      })}\n`,
    );
  } finally {
    await server.close();
    await gates.close();
    await store.close();
  }
}
