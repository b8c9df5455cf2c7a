/**
 * The steward's blueprints: compiling the ones it is given (refusing two that could govern the
 * same trace arbitrarily), and selecting the one that applies to a trace.
 */
import {
  type CompiledBlueprint,
  loadBlueprints,
  parseBlueprintYaml,
  scopeSpecificity,
} from "./blueprint";
import { PolicyError } from "./errors";
import type { BlueprintDocument } from "./models";
import type { BlueprintSource } from "./options";

/**
 * The blueprints a steward is given, compiled: YAML texts parsed, plain objects validated and
 * compiled (parents named by `inherits` among them, compiled or not), compiled ones kept.
 *
 * @throws {PolicyError} for a bad blueprint, or two unrelated blueprints that can tie.
 */
export function compileSources(sources: readonly BlueprintSource[]): CompiledBlueprint[] {
  const slots: (CompiledBlueprint | number)[] = [];
  const documents: unknown[] = [];
  for (const [index, source] of sources.entries()) {
    if (typeof source === "string") {
      slots.push(documents.length);
      documents.push(parseBlueprintYaml(source, `blueprints[${index}]`));
    } else if ("hash" in source && "tripwires" in source && "document" in source) {
      slots.push(source as CompiledBlueprint);
    } else {
      slots.push(documents.length);
      documents.push(source);
    }
  }
  const known = new Map<string, BlueprintDocument>();
  for (const slot of slots) if (typeof slot !== "number") known.set(slot.id, slot.document);
  const loaded = loadBlueprints(documents, (id) => known.get(id));
  const blueprints = slots.map((slot) =>
    typeof slot === "number" ? (loaded[slot] as CompiledBlueprint) : slot,
  );
  refuseAmbiguous(blueprints);
  return blueprints;
}

function descends(child: CompiledBlueprint, parent: CompiledBlueprint): boolean {
  return child.lineage.includes(parent.id);
}

/**
 * Two blueprints can tie for one trace when their scopes name the same dimensions and every
 * named dimension's lists overlap. A tie is settled by descent (the descendant wins); two
 * unrelated blueprints that can tie are refused: which one governs would be arbitrary.
 */
function refuseAmbiguous(blueprints: readonly CompiledBlueprint[]): void {
  const overlaps = (a?: readonly string[], b?: readonly string[]) =>
    a === undefined || b === undefined ? a === b : a.some((item) => b.includes(item));
  for (const [i, a] of blueprints.entries()) {
    for (const b of blueprints.slice(i + 1)) {
      if (descends(a, b) || descends(b, a)) continue;
      const sa = a.scope ?? {};
      const sb = b.scope ?? {};
      if (
        overlaps(sa.agentIds, sb.agentIds) &&
        overlaps(sa.agentTiers, sb.agentTiers) &&
        overlaps(sa.tools, sb.tools)
      ) {
        throw new PolicyError(
          "scope",
          `"${a.id}" and "${b.id}" are equally specific for some agents and actions, and neither inherits from the other: which one applies would be arbitrary.`,
          "Narrow one blueprint's scope (agentIds, agentTiers or tools), make one inherit from the other, or load only one of them.",
          b.id,
        );
      }
    }
  }
}

/**
 * The blueprint that applies: the most specific scope that matches the agent id, tier and
 * action; between equally specific blueprints, the descendant. With `action` undefined,
 * scopes' `tools` are ignored (any action). `undefined` when none applies.
 */
export function selectBlueprint(
  blueprints: readonly CompiledBlueprint[],
  agentId: string,
  agentTier: string,
  action: string | undefined,
): CompiledBlueprint | undefined {
  let best: CompiledBlueprint | undefined;
  let bestScore = -1;
  for (const blueprint of blueprints) {
    const scope =
      action === undefined && blueprint.scope
        ? { ...blueprint.scope, tools: undefined }
        : blueprint.scope;
    const score = scopeSpecificity(scope, agentId, agentTier, action ?? "");
    if (score > bestScore || (score === bestScore && best && descends(blueprint, best))) {
      best = blueprint;
      bestScore = score;
    }
  }
  return best;
}
