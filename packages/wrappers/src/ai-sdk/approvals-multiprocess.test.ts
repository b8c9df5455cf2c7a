/**
 * An approval that outlives the agent's OS process (real Postgres): a child process runs the
 * agent until its tool call needs approval, delivers the request and exits; the reviewer grants
 * it here; a fresh tool set here resumes the run from the child's saved messages, and the tool
 * runs once, with exactly the approved input.
 */
import { ChainKey, Keyring, silentLogger, systemClock } from "@gov/core";
import { createTestStore, spawnJsonLinesChild, testEngines } from "@gov/core/testing";
import { GatesModule, gatesMigrations } from "@gov/gates";
import { describe, expect, it } from "vitest";
import { AI_SDKS, approvedOutputs } from "../__fixtures__/ai-sdk";
import { startOpenAIServer } from "../__fixtures__/openai-server";
import {
  callsTool,
  PAYMENT,
  PAYMENT_AGENT,
  PAYMENT_CALL_ID,
  paymentAgent,
  resumedRun,
} from "../__fixtures__/payment-agent";
import { toolApprovalResponses } from "./approval-responses";

const postgres = testEngines().find((engine) => engine.name === "postgres");
const SECRET = "wrappers-multiprocess-secret-0123456789-abcdefghijk";

/** What the child printed before it exited. */
interface Asked {
  requestId: string | null;
  token: string | null;
  ran: number;
  messages: unknown[];
}

describe("an approval asked by an agent process that exited (real Postgres)", () => {
  it.skipIf(!postgres?.available)(
    "is granted here and run once by a fresh tool set from the saved messages; an edited input and a replay are refused",
    async () => {
      const sdk = AI_SDKS.find((candidate) => candidate.major === 6);
      if (sdk === undefined || postgres === undefined) throw new Error("unreachable");
      const store = await createTestStore(postgres, { migrations: [gatesMigrations] });
      const context = {
        store,
        keyring: new Keyring(new ChainKey(SECRET)),
        clock: systemClock,
        logger: silentLogger,
      };
      const gates = new GatesModule(context);
      const reviewer = new GatesModule(context);
      const server = await startOpenAIServer();
      const child = spawnJsonLinesChild<Asked>(
        new URL("../__fixtures__/approval-agent-child.ts", import.meta.url),
        [store.connectionString as string],
        {
          cwd: new URL("../..", import.meta.url),
          env: { ...process.env, APPROVAL_CHILD_SECRET: SECRET },
        },
      );
      try {
        await gates.start();
        const asked = await child.next();
        await child.exited();
        expect(asked).toMatchObject({ ran: 0, requestId: expect.any(String) });
        const lookup = { agentId: PAYMENT_AGENT, kind: "tool.wire_money", key: PAYMENT_CALL_ID };
        expect(await gates.findRequest(lookup)).toMatchObject({
          requestId: asked.requestId,
          status: "pending",
          payload: { tool: "wire_money", input: PAYMENT },
        });
        await reviewer.grant(asked.token as string, { reviewerId: "bob@company.com" });

        callsTool(server, PAYMENT);
        const model = sdk.chat(server.baseURL);
        const saved = JSON.stringify(asked.messages);
        const b = paymentAgent(sdk.ai, { gates, logger: silentLogger });
        const responses = await toolApprovalResponses(b.tools, asked.messages);
        expect(responses).toMatchObject([{ type: "tool-approval-response", approved: true }]);

        // The saved messages edited to pay more: refused, and the approval is not spent.
        const edited = await resumedRun(sdk.ai, model, b.tools, saved, responses, (text) =>
          text.replace('"amount":120', '"amount":9999'),
        );
        expect(approvedOutputs(edited)).toMatchObject([{ type: "error-text" }]);
        expect(b.ran).toEqual([]);

        const resumed = await resumedRun(sdk.ai, model, b.tools, saved, responses);
        expect(approvedOutputs(resumed)).toMatchObject([{ type: "text", value: "paid" }]);
        expect(b.ran).toEqual([PAYMENT]);
        expect(b.notices).toEqual([]);

        // Replayed by yet another fresh tool set: the approval already ran.
        const c = paymentAgent(sdk.ai, { gates, logger: silentLogger });
        const replay = await resumedRun(sdk.ai, model, c.tools, saved, responses);
        expect(approvedOutputs(replay)).toMatchObject([
          { type: "error-text", value: expect.stringContaining("already ran") },
        ]);
        expect([...b.ran, ...c.ran]).toEqual([PAYMENT]);
        expect((await gates.findRequest(lookup))?.executedAt).toBeInstanceOf(Date);
      } finally {
        child.kill();
        await server.close();
        await reviewer.close();
        await gates.close();
        await store.close();
      }
    },
    120_000,
  );
});
