import { expect } from "vitest";
import type { ScopeCheckTarget, ScopeModule } from "../module";
import type { Probe } from "./tamper";

/** What a probe asks of a process: in this one, or in a child over JSON lines. */
export interface Probed {
  /** The error code of `check`, or `"PASSED"`. */
  check(agentId: string, target: ScopeCheckTarget): Promise<string>;
  /** What `filterTools` returns, or its error code. */
  filter(agentId: string, tools: string[]): Promise<string[] | string>;
  /** The policy's `allowedModels`, or null when the process holds no policy for the agent. */
  models(agentId: string): Promise<string[] | null>;
}

function codeOf(error: unknown): string {
  return String((error as { code?: unknown }).code);
}

/** A module of this process, probed. */
export function probed(scope: ScopeModule): Probed {
  return {
    check: (agentId, target) => scope.check(agentId, target).then(() => "PASSED", codeOf),
    async filter(agentId, tools) {
      try {
        return scope.filterTools(agentId, tools);
      } catch (error) {
        return codeOf(error);
      }
    },
    async models(agentId) {
      const policy = scope.getPolicy(agentId);
      return policy ? [...policy.allowedModels] : null;
    },
  };
}

/**
 * Assert that the attacker did not get what the probe asks for. `held`: the process held the
 * agent's valid policy before the attack (it keeps it); otherwise the agent has no policy
 * there (default deny).
 */
export async function expectProbeRefused(
  scope: Probed,
  agentId: string,
  probe: Probe,
  held: boolean,
): Promise<void> {
  const context = `${agentId} (${held ? "policy held" : "no policy held"})`;
  switch (probe.kind) {
    case "check":
      expect(await scope.check(agentId, probe.target), context).toBe(
        held ? probe.code : "POLICY_NOT_REGISTERED",
      );
      return;
    case "filter":
      expect(await scope.filter(agentId, probe.tools), context).toEqual(
        held ? probe.expected : "POLICY_NOT_REGISTERED",
      );
      return;
    case "models":
      expect(await scope.models(agentId), context).toEqual(held ? probe.expected : null);
      return;
  }
}
