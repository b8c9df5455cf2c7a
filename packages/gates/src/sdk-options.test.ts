import { describe, expect, it } from "vitest";
import { z } from "zod";
import { gatesModule } from "./definition";
import { gatesSdkContribution } from "./sdk-options";

describe("the gates module's SDK contribution", () => {
  it("is the definition's, with the reference's flag and environment variables", () => {
    expect(gatesModule.sdk).toBe(gatesSdkContribution);
    expect(gatesSdkContribution.flag).toBe("enableGates");
    expect(gatesSdkContribution.enabledByDefault).toBe(true);
    expect(gatesSdkContribution.env?.map((binding) => binding.env)).toEqual([
      "GOVERNANCE_GATES_ENABLE_V2_TOKENS",
      "GOVERNANCE_GATES_ACCEPT_V1_UNTIL",
    ]);
  });

  it("turns the SDK's parsed options into the module's options", () => {
    const schema = z.object(gatesSdkContribution.options ?? {});
    const environment = { cwd: "/", production: false };
    const defaults = schema.parse({}) as { enableV2Tokens: boolean };
    expect(gatesSdkContribution.moduleOptions?.(defaults, environment)).toEqual({
      enableV2Tokens: true,
    });
    const given = schema.parse({
      enableV2Tokens: false,
      acceptV1Until: "2026-07-17T00:00:00Z",
    }) as { enableV2Tokens: boolean };
    expect(gatesSdkContribution.moduleOptions?.(given, environment)).toEqual({
      enableV2Tokens: false,
      acceptV1Until: "2026-07-17T00:00:00Z",
    });
    expect(schema.safeParse({ acceptV1Until: "next summer" }).success).toBe(false);
  });
});
