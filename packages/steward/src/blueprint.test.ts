import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  loadBlueprints,
  parseBlueprintYaml,
  readBlueprintFile,
  scopeSpecificity,
  validateBlueprint,
} from "./blueprint";
import { PolicyError, STEWARD_ERROR_CODES } from "./errors";

const BASE = {
  id: "base@1.0",
  version: "1.0",
  tripwires: [
    { id: "big", condition: "args.amount > 500", onFail: { decision: "ESCALATE" } },
    { id: "wire", condition: 'action == "wire"', onFail: { decision: "BLOCK" } },
  ],
  checks: [{ id: "reasoning", metric: "reasoning_length", min: 10 }],
  scoring: { ok: 0.3, nudge: 0.5, escalate: 0.7 },
};

function policyError(run: () => unknown): PolicyError {
  try {
    run();
  } catch (error) {
    expect(PolicyError.isInstance(error)).toBe(true);
    expect((error as PolicyError).code).toBe(STEWARD_ERROR_CODES.POLICY_INVALID);
    return error as PolicyError;
  }
  throw new Error("expected a PolicyError");
}

describe("blueprint validation", () => {
  it("accepts a minimal blueprint and applies the defaults", () => {
    const document = validateBlueprint({ id: "a@1", version: "1" });
    expect(document.tripwires).toEqual([]);
    const [compiled] = loadBlueprints([
      {
        id: "a@1",
        version: "1",
        tripwires: [{ id: "t", condition: "true", onFail: { decision: "BLOCK" } }],
      },
    ]);
    expect(compiled?.scoring).toEqual({ ok: 0.25, nudge: 0.4, escalate: 0.55 });
    expect(compiled?.trustDebt.accumulation).toEqual({
      ok: 0,
      flag: 0.1,
      nudge: 0.5,
      escalate: 1,
      block: 2,
      halt: 5,
    });
    expect(compiled?.tripwires[0]).toMatchObject({
      evalTier: 0,
      severity: "standard",
      hook: "pre_action",
    });
    expect(compiled?.hash).toMatch(/^[0-9a-f]{64}$/);
  });

  it("names the path of a bad field", () => {
    const error = policyError(() =>
      validateBlueprint({
        ...BASE,
        tripwires: [...BASE.tripwires, { id: "x", condition: "", onFail: { decision: "BLOCK" } }],
      }),
    );
    expect(error.path).toBe("tripwires[2].condition");
    expect(error.message).toContain('blueprint "base@1.0" at tripwires[2].condition');
  });

  it("refuses unknown fields, bad decisions, an id without a version and a version mismatch", () => {
    expect(policyError(() => validateBlueprint({ ...BASE, tripwire: [] })).path).toBe("");
    expect(
      policyError(() =>
        validateBlueprint({
          ...BASE,
          tripwires: [{ id: "t", condition: "true", onFail: { decision: "OK" } }],
        }),
      ).path,
    ).toBe("tripwires[0].onFail.decision");
    expect(policyError(() => validateBlueprint({ ...BASE, id: "base" })).path).toBe("id");
    expect(policyError(() => validateBlueprint({ ...BASE, version: "2.0" })).path).toBe("version");
    expect(policyError(() => validateBlueprint("id: x")).path).toBe("");
  });

  it("refuses duplicate tripwire ids and thresholds out of order", () => {
    const duplicate = policyError(() =>
      validateBlueprint({ ...BASE, tripwires: [BASE.tripwires[0], BASE.tripwires[0]] }),
    );
    expect(duplicate.path).toBe("tripwires[1].id");
    expect(
      policyError(() => validateBlueprint({ ...BASE, scoring: { ok: 0.5, nudge: 0.4 } })).path,
    ).toBe("scoring");
    expect(
      policyError(() =>
        validateBlueprint({
          ...BASE,
          trustDebt: { thresholds: { elevatedMonitoring: 30, restrictedMode: 10 } },
        }),
      ).path,
    ).toBe("trustDebt.thresholds");
    expect(() =>
      validateBlueprint({
        ...BASE,
        trustDebt: { thresholds: { elevatedMonitoring: 0, restrictedMode: 10 } },
      }),
    ).not.toThrow();
  });

  it("refuses a check with none or two of passes, metric and scorer", () => {
    expect(policyError(() => validateBlueprint({ ...BASE, checks: [{ id: "c" }] })).path).toBe(
      "checks[0]",
    );
    expect(
      policyError(() =>
        validateBlueprint({
          ...BASE,
          checks: [{ id: "c", metric: "confidence", scorer: "judge" }],
        }),
      ).path,
    ).toBe("checks[0]");
  });
});

describe("YAML", () => {
  it("parses a YAML blueprint", () => {
    const document = parseBlueprintYaml(`
id: yaml@1.0
version: "1.0"
tripwires:
  - id: big
    condition: "args.amount > 500"
    onFail: { decision: BLOCK, reason: too big }
`);
    expect(document.tripwires[0]?.onFail).toEqual({ decision: "BLOCK", reason: "too big" });
  });

  it("refuses malformed YAML with its position", () => {
    const error = policyError(() => parseBlueprintYaml("id: a@1\nversion: [1\ntripwires: x"));
    expect(error.problem).toMatch(/not valid YAML at line \d+, column \d+/);
  });

  it("refuses an alias bomb quickly, and reads plain YAML 1.2 scalars", () => {
    const levels = ["a: &a [x, x, x, x, x, x, x, x, x, x]"];
    for (let level = 1; level <= 9; level++) {
      const previous = String.fromCharCode(96 + level);
      const name = String.fromCharCode(97 + level);
      levels.push(`${name}: &${name} [${Array(10).fill(`*${previous}`).join(", ")}]`);
    }
    const error = policyError(() => parseBlueprintYaml(levels.join("\n")));
    expect(error.problem).toMatch(/more than 200000 values/);
    const document = parseBlueprintYaml(
      'id: dates@1.0\nversion: "1.0"\ndescription: 2026-07-17\ntripwires: []',
    );
    expect(document.description).toBe("2026-07-17"); // a string, not a Date
  });

  const directory = mkdtempSync(join(tmpdir(), "steward-blueprints-"));
  afterAll(() => rmSync(directory, { recursive: true, force: true }));

  it("reads a file, and refuses a missing one", async () => {
    const file = join(directory, "a.yaml");
    writeFileSync(file, "id: file@1\nversion: '1'\n");
    await expect(readBlueprintFile(file)).resolves.toMatchObject({ id: "file@1" });
    await expect(readBlueprintFile(join(directory, "missing.yaml"))).rejects.toSatisfy(
      (error) => PolicyError.isInstance(error) && /could not be read/.test(error.message),
    );
  });
});

describe("CEL compilation", () => {
  it("refuses a syntax error, naming the condition", () => {
    const error = policyError(() =>
      loadBlueprints([
        {
          ...BASE,
          tripwires: [{ id: "t", condition: "args.amount >", onFail: { decision: "BLOCK" } }],
        },
      ]),
    );
    expect(error.path).toBe("tripwires[0].condition");
    expect(error.problem).toContain("is not valid CEL");
  });

  it("refuses an unknown variable and a non-boolean condition", () => {
    expect(
      policyError(() =>
        loadBlueprints([
          {
            ...BASE,
            tripwires: [{ id: "t", condition: "amount > 5", onFail: { decision: "BLOCK" } }],
          },
        ]),
      ).problem,
    ).toContain("does not type-check");
    expect(
      policyError(() =>
        loadBlueprints([
          {
            ...BASE,
            tripwires: [{ id: "t", condition: "size(reasoning)", onFail: { decision: "BLOCK" } }],
          },
        ]),
      ).problem,
    ).toContain("not bool");
  });

  it("refuses `state` in a tripwire without requiresState, and accepts it with", () => {
    const tripwire = {
      id: "t",
      condition: "state.daily_total > 5.0",
      onFail: { decision: "BLOCK" },
    };
    const error = policyError(() => loadBlueprints([{ ...BASE, tripwires: [tripwire] }]));
    expect(error.recoveryHint).toContain("requiresState: true");
    const [compiled] = loadBlueprints([
      { ...BASE, tripwires: [{ ...tripwire, requiresState: true }] },
    ]);
    expect(compiled?.requiresState).toBe(true);
  });

  it("refuses a bad rule in a check", () => {
    expect(
      policyError(() => loadBlueprints([{ ...BASE, checks: [{ id: "c", passes: "reasoning +" }] }]))
        .path,
    ).toBe("checks[0].passes");
  });
});

describe("inheritance", () => {
  const child = {
    id: "child@2.0",
    version: "2.0",
    inherits: "base@1.0",
    tripwires: [
      { id: "big", condition: "args.amount > 1000", onFail: { decision: "BLOCK" } },
      { id: "night", condition: 'context.hour == "night"', onFail: { decision: "NUDGE" } },
    ],
  };

  it("merges the parent: tripwires and checks override by id, sections inherited", () => {
    const blueprints = loadBlueprints([BASE, child]);
    const resolved = blueprints.find((blueprint) => blueprint.id === "child@2.0");
    expect(resolved?.lineage).toEqual(["base@1.0"]);
    expect(resolved?.tripwires.map((tripwire) => [tripwire.id, tripwire.condition])).toEqual([
      ["big", "args.amount > 1000"],
      ["wire", 'action == "wire"'],
      ["night", 'context.hour == "night"'],
    ]);
    expect(resolved?.checks.map((check) => check.id)).toEqual(["reasoning"]);
    expect(resolved?.scoring).toEqual({ ok: 0.3, nudge: 0.5, escalate: 0.7 });
    const parent = blueprints.find((blueprint) => blueprint.id === "base@1.0");
    expect(resolved?.hash).not.toBe(parent?.hash);
  });

  it("lets a grandchild override a section as a whole", () => {
    const grandchild = {
      id: "grandchild@1",
      version: "1",
      inherits: "child@2.0",
      scoring: { escalate: 0.9 },
    };
    const resolved = loadBlueprints([BASE, child, grandchild]).find(
      (blueprint) => blueprint.id === "grandchild@1",
    );
    expect(resolved?.lineage).toEqual(["child@2.0", "base@1.0"]);
    expect(resolved?.scoring).toEqual({ ok: 0.25, nudge: 0.4, escalate: 0.9 });
    expect(resolved?.tripwires).toHaveLength(3);
  });

  it("refuses a missing parent and a cycle", () => {
    expect(policyError(() => loadBlueprints([child])).problem).toContain(
      '"base@1.0", which is not loaded',
    );
    const a = { id: "a@1", version: "1", inherits: "b@1" };
    const b = { id: "b@1", version: "1", inherits: "a@1" };
    expect(policyError(() => loadBlueprints([a, b])).problem).toContain("cycle: a@1 → b@1 → a@1");
  });

  it("refuses the same id twice", () => {
    expect(policyError(() => loadBlueprints([BASE, BASE])).problem).toContain("loaded twice");
  });
});

describe("scope specificity", () => {
  it("ranks agent id over tier over tool, and refuses a scope that does not match", () => {
    expect(scopeSpecificity(undefined, "a", "t1", "x")).toBe(0);
    expect(scopeSpecificity({ tools: ["x"] }, "a", "t1", "x")).toBe(1);
    expect(scopeSpecificity({ agentTiers: ["t1"] }, "a", "t1", "x")).toBe(2);
    expect(scopeSpecificity({ agentIds: ["a"] }, "a", "t1", "x")).toBe(4);
    expect(scopeSpecificity({ agentIds: ["a"], tools: ["x"] }, "a", "t1", "x")).toBe(5);
    expect(scopeSpecificity({ agentIds: ["b"] }, "a", "t1", "x")).toBe(-1);
    expect(scopeSpecificity({ agentIds: ["a"], tools: ["y"] }, "a", "t1", "x")).toBe(-1);
  });
});
