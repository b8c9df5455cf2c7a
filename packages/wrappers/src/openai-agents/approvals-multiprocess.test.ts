/**
 * An approval that outlives the agent's OS process (real Postgres): a child process runs the
 * governed agent until its payment needs approval, delivers the request, saves the run's state
 * and exits; the reviewer grants it here; the agent governed anew here restores the state, reads
 * the decision from gates and resumes. The tool runs once, with exactly the approved input.
 */
import { ChainKey, Keyring, silentLogger, systemClock } from "@gov/core";
import { createTestStore, spawnJsonLinesChild, testEngines } from "@gov/core/testing";
import { GatesModule, gatesMigrations } from "@gov/gates";
import { RunState, run } from "@openai/agents";
import { describe, expect, it } from "vitest";
import { AGENT, billingAgent, client, PAY, script } from "../__fixtures__/openai-agents";
import { startOpenAIServer } from "../__fixtures__/openai-server";
import { resolveApprovals } from "./approvals";
import { governAgent } from "./govern-agent";

const postgres = testEngines().find((engine) => engine.name === "postgres");
const SECRET = "agents-multiprocess-secret-0123456789-abcdefghijklm";

/** What the child printed before it exited. */
interface Asked {
  requestId: string | null;
  token: string | null;
  ran: number;
  interruptions: number;
  state: string;
}

describe("an approval asked by an agent process that exited (real Postgres)", () => {
  it.skipIf(!postgres?.available)(
    "is granted here and resumed from the saved RunState: the tool runs once; a second resume is refused",
    async () => {
      if (postgres === undefined) throw new Error("unreachable");
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
        new URL("../__fixtures__/openai-agents-approval-child.ts", import.meta.url),
        [store.connectionString as string],
        {
          cwd: new URL("../..", import.meta.url),
          env: { ...process.env, APPROVAL_CHILD_SECRET: SECRET },
        },
      );
      try {
        await gates.start();
        await reviewer.start();
        const asked = await child.next();
        await child.exited();
        expect(asked).toMatchObject({ ran: 0, interruptions: 1, requestId: expect.any(String) });
        await reviewer.grant(asked.token as string, { reviewerId: "bob@company.com" });

        /** The agent governed in this process, and the child's run restored. */
        const restore = async () => {
          const billing = billingAgent();
          const agent = governAgent(billing.agent, {
            governance: { gates, logger: silentLogger },
            agentId: AGENT,
            client: client(server),
            approval: { tools: ["wire_money"], onRequest: () => {} },
          });
          return { billing, agent, state: await RunState.fromString(agent, asked.state) };
        };
        const b = await restore();
        expect(await resolveApprovals(b.state)).toEqual([
          { toolName: "wire_money", callId: PAY.id, status: "approved" },
        ]);
        script(server);
        expect((await run(b.agent, b.state)).finalOutput).toBe("Done.");
        expect(b.billing.ran).toEqual([{ tool: "wire_money", input: PAY.input }]);

        // The same saved state resumed once more: the grant was used.
        const c = await restore();
        await resolveApprovals(c.state);
        script(server);
        await run(c.agent, c.state);
        expect(c.billing.ran).toEqual([]);
        expect((await gates.getRequest(asked.requestId as string))?.executedAt).toBeInstanceOf(
          Date,
        );
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
