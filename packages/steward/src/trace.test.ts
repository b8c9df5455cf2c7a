import { MAX_ID_LENGTH } from "@gov/core";
import { describe, expect, it } from "vitest";
import { makeSteward } from "./__fixtures__";

const BLUEPRINT = {
  id: "ids@1",
  version: "1",
  tripwires: [{ id: "t", condition: "false", onFail: { decision: "BLOCK" } }],
};

// Issue 13: the steward allowed agent ids of 128 characters where every other module allows
// 256, and accepted invisible characters the others refuse: one rule, core's checkId.
describe("agent ids follow core's rule", () => {
  const longest = "a".repeat(MAX_ID_LENGTH);

  it("accepts an id of 256 characters in the trace, the host's options and getTrustDebt", async () => {
    const { steward } = makeSteward({ blueprints: [BLUEPRINT] });
    await expect(steward.evaluate({ agentId: longest, action: "a" })).resolves.toMatchObject({
      intervention: "OK",
    });
    await expect(
      steward.evaluate({ action: "a" }, {}, { agentId: longest }),
    ).resolves.toMatchObject({ metadata: { agentId: longest } });
    await expect(steward.getTrustDebt(longest)).resolves.toBe(0);
  });

  it.each([
    ["257 characters", `${longest}a`],
    ["a zero-width space", "billing\u200bagent"],
    ["a bidirectional override", "billing\u202eagent"],
    ["a control character", "billing\u0007agent"],
    ["surrounding white space", " billing-agent"],
  ])("refuses %s, naming the field", async (_, agentId) => {
    const { steward } = makeSteward({ blueprints: [BLUEPRINT] });
    await expect(steward.evaluate({ agentId, action: "a" })).rejects.toMatchObject({
      code: "INVALID_ARGUMENT",
      field: "trace.agentId",
    });
    await expect(steward.evaluate({ action: "a" }, {}, { agentId })).rejects.toMatchObject({
      code: "INVALID_ARGUMENT",
      field: "options.agentId",
    });
    await expect(steward.getTrustDebt(agentId)).rejects.toMatchObject({
      code: "INVALID_ARGUMENT",
      field: "agentId",
    });
    expect(steward.metrics().totalEvaluations).toBe(0);
  });
});
