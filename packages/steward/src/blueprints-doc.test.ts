import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { makeSteward } from "./__fixtures__";

// The complete example of BLUEPRINTS.md must stay loadable and mean what the text says.
const markdown = readFileSync(new URL("../BLUEPRINTS.md", import.meta.url), "utf8");
const example = /```yaml\n([\s\S]*?)```/.exec(markdown)?.[1] ?? "";
const BASE = `
id: finance/base@1.0
version: "1.0"
tripwires:
  - id: no-delete
    condition: 'action == "delete_account"'
    onFail: { decision: BLOCK }
`;

describe("the example of BLUEPRINTS.md", () => {
  const agentTiers = { "payer-1": "tier-1" };
  const context = { known_payees: ["acme"] };
  const good = {
    agentId: "payer-1",
    reasoning: "Refund requested in ticket 4411 for a damaged parcel.",
    confidence: 0.9,
    evidence: ["ticket-4411"],
  };

  it("loads with its parent and is selected by tier and tool", () => {
    expect(example).toContain("finance/payments@2.1");
    const { steward } = makeSteward({ blueprints: [BASE, example] });
    const payments = steward.selectBlueprint("payer-1", "tier-1", "refund");
    expect(payments?.id).toBe("finance/payments@2.1");
    expect(payments?.lineage).toEqual(["finance/base@1.0"]);
    expect(payments?.tripwires.map((tripwire) => tripwire.id)[0]).toBe("no-delete");
    expect(steward.selectBlueprint("payer-1", "tier-3", "refund")?.id).toBe("finance/base@1.0");
  });

  it.each([
    [
      "a well-explained refund",
      { action: "refund", parameters: { amount: 120, payee: "acme" } },
      "OK",
    ],
    [
      "a negative refund",
      { action: "refund", parameters: { amount: -5000, payee: "acme" } },
      "BLOCK",
    ],
    ["a new payee", { action: "refund", parameters: { amount: 120, payee: "other" } }, "FLAG"],
    [
      "a large transfer",
      { action: "transfer_funds", parameters: { amount: 20000, payee: "acme" } },
      "BLOCK",
    ],
    [
      "an outside export",
      { action: "export_database", parameters: { destination: "https://x" } },
      "HALT",
    ],
  ])("%s", async (_, trace, expected) => {
    const { steward } = makeSteward({ blueprints: [BASE, example], agentTiers });
    const result = await steward.evaluate({ ...good, ...trace }, context);
    expect(result.intervention).toBe(expected);
  });

  it("ignores a tier the agent declares itself", async () => {
    const { steward } = makeSteward({ blueprints: [BASE, example] });
    const result = await steward.evaluate(
      {
        ...good,
        agentTier: "tier-1",
        action: "export_database",
        parameters: { destination: "https://x" },
      },
      context,
    );
    expect(result.governanceStatus.blueprintId).toBe("finance/base@1.0");
  });

  it("escalates on the daily limit once earlier transfers are counted", async () => {
    const { steward } = makeSteward({ blueprints: [BASE, example], agentTiers });
    const transfer = (amount: number) =>
      steward.evaluate(
        { ...good, action: "transfer_funds", parameters: { amount, payee: "acme" } },
        context,
      );
    expect((await transfer(9000)).intervention).toBe("OK");
    expect((await transfer(9000)).intervention).toBe("OK");
    expect((await transfer(9000)).intervention).toBe("ESCALATE");
  });
});
