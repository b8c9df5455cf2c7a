/**
 * The run's spans in the audit chain (`GovernanceTracingProcessor`), and the coverage registry
 * told about a governed agent.
 */
import type { CoverageRecorder } from "@gov/core";
import { testEngines } from "@gov/core/testing";
import { run, setTraceProcessors, setTracingDisabled } from "@openai/agents";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type AgentHarness, agentHarness } from "../__fixtures__/openai-agent";
import {
  AGENT,
  agentResponse,
  billingAgent,
  client,
  SESSION,
  script,
} from "../__fixtures__/openai-agents";
import { settled } from "../governed-call";
import { governAgent } from "./govern-agent";
import { GovernanceTracingProcessor } from "./tracing";

describe.each(testEngines())("tracing and coverage on $name", (engine) => {
  let h: AgentHarness;
  beforeEach(async () => {
    if (!engine.available) return;
    h = await agentHarness(engine);
  });
  afterEach(async () => {
    setTraceProcessors([]);
    setTracingDisabled(true);
    if (engine.available) await h.close();
  });

  it.skipIf(!engine.available)(
    "writes each span of the run into the audit chain, under the session",
    async () => {
      // Tracing is off under NODE_ENV=test: on for this run, with our processor only.
      setTracingDisabled(false);
      setTraceProcessors([
        new GovernanceTracingProcessor({
          governance: h.governance,
          agentId: AGENT,
          sessionId: SESSION,
        }),
      ]);
      const { agent } = billingAgent();
      const governed = governAgent(agent, {
        governance: h.governance,
        agentId: AGENT,
        sessionId: SESSION,
        client: client(h.server),
      });
      script(
        h.server,
        agentResponse({ calls: [{ name: "lookup_invoice", input: { id: "INV-42" } }] }),
      );
      await run(governed, "What does INV-42 say?");
      await settled();
      const spans = h.audit.events.filter((event) => event.kind === "agent.span");
      const types = spans.map((event) => event.metadata?.type);
      expect(types).toEqual(expect.arrayContaining(["agent", "function", "response", "guardrail"]));
      expect(spans.every((event) => event.sessionId === SESSION)).toBe(true);
      expect(spans.find((event) => event.metadata?.type === "function")?.metadata).toMatchObject({
        name: "lookup_invoice",
        error: null,
      });
      // No content without recordContent.
      expect(JSON.stringify(spans)).not.toContain("INV-42: 120 EUR");
      const traces = h.audit.events.filter((event) => event.kind === "agent.trace");
      expect(traces.map((event) => event.metadata?.phase)).toEqual(["start", "end"]);
    },
  );

  it.skipIf(!engine.available)(
    "records a governed agent in the coverage registry as openai-agents",
    async () => {
      const recorded: string[] = [];
      const coverage: CoverageRecorder = {
        record: (agentId, clientName, event) =>
          void recorded.push(`${agentId} ${clientName} ${event}`),
      };
      const { agent } = billingAgent();
      governAgent(agent, {
        governance: { ...h.governance, coverage },
        agentId: AGENT,
        client: client(h.server),
      });
      expect(recorded).toEqual(
        expect.arrayContaining([`${AGENT} openai-agents wrapped`, `${AGENT} openai wrapped`]),
      );
    },
  );
});
