import * as cost from "@gov/cost";
import * as steward from "@gov/steward";
import { describe, expect, it } from "vitest";
import * as sdk from "./index";

describe("the umbrella's re-exports", () => {
  it("says which BudgetExceeded is which: the cost module's and the steward's, by module", () => {
    expect(sdk.CostBudgetExceeded).toBe(cost.BudgetExceeded);
    expect(sdk.BudgetExceeded).toBe(cost.BudgetExceeded);
    expect(sdk.StewardBudgetExceeded).toBe(steward.BudgetExceeded);
    expect(sdk.LatencyBudgetExceeded).toBe(steward.BudgetExceeded);
    expect(sdk.StewardBudgetExceeded).not.toBe(sdk.CostBudgetExceeded);
  });

  it("composes every built-in module from the contribution the module itself declares", () => {
    const flags = sdk.BUILT_IN_MODULES.map((entry) => [entry.definition.name, entry.flag]);
    expect(flags).toEqual([
      ["audit", "enableAudit"],
      ["presence", "enablePresence"],
      ["scope", "enableScope"],
      ["cost", "enableCost"],
      ["gates", "enableGates"],
      ["steward", "enableSteward"],
      ["loop", "enableLoop"],
      ["coverage", "enableCoverage"],
    ]);
    for (const entry of sdk.BUILT_IN_MODULES) expect(entry.definition.sdk?.flag).toBe(entry.flag);
    expect(() => sdk.sdkEntry({ name: "widgets", create: () => ({}) })).toThrow(
      /declares no SDK contribution/,
    );
  });
});
