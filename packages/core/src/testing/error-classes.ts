/**
 * A check every package's tests run over its exports: each error class names its own
 * identity, and `X.isInstance` tells the classes apart.
 * @module
 */
import { ERROR_IDENTITY_PATTERN, markAsInstanceOf, ownErrorIdentity } from "../errors";

// biome-ignore lint/complexity/noBannedTypes: any class
type AnyClass = Function & { readonly name: string; readonly prototype: object };

/** Options of {@link assertErrorClasses}. */
export interface AssertErrorClassesOptions {
  /**
   * The package the classes belong to, e.g. `@gov/cost`: every identity must start with
   * it, but those of classes in `reexports` (say, core's errors re-exported by the SDK).
   */
  packageName?: string;
  /** Classes the module re-exports from another package, checked for form only. */
  // biome-ignore lint/complexity/noBannedTypes: any class
  reexports?: readonly Function[];
}

/** One error class found among a module's exports, and its identity. */
export interface CheckedErrorClass {
  /** The class's name (`BudgetExceeded`). */
  name: string;
  /** Its identity (`@gov/cost.BudgetExceeded`). */
  identity: string;
}

function isErrorClass(value: unknown): value is AnyClass & { errorIdentity: unknown } {
  return (
    typeof value === "function" &&
    typeof (value as { prototype?: unknown }).prototype === "object" &&
    "errorIdentity" in value &&
    (value as { prototype: object }).prototype instanceof Error
  );
}

function isAncestor(ancestor: AnyClass, descendant: AnyClass): boolean {
  return ancestor === descendant || descendant.prototype instanceof ancestor;
}

/**
 * Check the error classes a module exports (every exported class with an `errorIdentity`:
 * the `GovernanceError` subclasses and `AgentHaltedError`), and throw one error listing
 * every problem:
 * - each declares its own `static override readonly errorIdentity`, never an inherited one;
 * - the identity reads `@gov/<package>.<ClassName>`, with the class's own name (and, given
 *   `packageName`, that package);
 * - no two classes share an identity;
 * - none overrides `isInstance` (the base class implements it once);
 * - `X.isInstance` is true for an instance of X and of its subclasses, false for every other
 *   class exported beside it (no `ChainIntegrityError.isInstance(new ConfigError(…))`).
 *
 * Deprecated aliases (`export const Old = New`) are the same class and checked once.
 *
 * @example
 * ```ts
 * import * as cost from "./index";
 * it("declares an identity for every error class", () => {
 *   expect(assertErrorClasses(cost, { packageName: "@gov/cost" }).length).toBeGreaterThan(0);
 * });
 * ```
 * @returns the classes checked.
 * @throws {Error} listing every problem found.
 */
export function assertErrorClasses(
  moduleExports: Record<string, unknown>,
  options: AssertErrorClassesOptions = {},
): CheckedErrorClass[] {
  const classes = [...new Set(Object.values(moduleExports).filter(isErrorClass))];
  const reexports = new Set(options.reexports ?? []);
  const problems: string[] = [];
  const checked: CheckedErrorClass[] = [];
  const byIdentity = new Map<string, AnyClass>();
  for (const errorClass of classes) {
    const name = errorClass.name;
    const identity = ownErrorIdentity(errorClass);
    if (identity === undefined) {
      problems.push(
        `${name} declares no errorIdentity of its own: add \`static override readonly errorIdentity = "@gov/<package>.${name}";\`.`,
      );
      continue;
    }
    if (!ERROR_IDENTITY_PATTERN.test(identity)) {
      problems.push(
        `${name}'s errorIdentity "${identity}" is not of the form @gov/<package>.<ClassName>.`,
      );
    } else if (identity.slice(identity.lastIndexOf(".") + 1) !== name) {
      problems.push(
        `${name}'s errorIdentity "${identity}" names another class: end it with ".${name}".`,
      );
    }
    if (
      options.packageName !== undefined &&
      !reexports.has(errorClass) &&
      !identity.startsWith(`${options.packageName}.`)
    ) {
      problems.push(
        `${name}'s errorIdentity "${identity}" is not in ${options.packageName}; if the class is re-exported from another package, list it in reexports.`,
      );
    }
    const twin = byIdentity.get(identity);
    if (twin !== undefined) {
      problems.push(`${name} and ${twin.name} share the errorIdentity "${identity}".`);
    }
    byIdentity.set(identity, errorClass);
    if (Object.hasOwn(errorClass, "isInstance") && identity !== "@gov/core.GovernanceError") {
      if (identity !== "@gov/core.AgentHaltedError") {
        problems.push(
          `${name} overrides isInstance: delete the override (GovernanceError implements it once, by identity).`,
        );
      }
    }
    checked.push({ name, identity });
  }
  // Behaviour: an instance of each class is recognized by its class and its ancestors only.
  const recognizers = classes.filter(
    (errorClass) =>
      typeof (errorClass as unknown as { isInstance?: unknown }).isInstance === "function",
  );
  for (const errorClass of classes) {
    if (ownErrorIdentity(errorClass) === undefined) continue;
    const instance = Object.create(errorClass.prototype) as object;
    markAsInstanceOf(instance, errorClass);
    for (const other of recognizers) {
      const expected = isAncestor(other, errorClass);
      const actual = (other as unknown as { isInstance(value: unknown): boolean }).isInstance(
        instance,
      );
      if (actual !== expected) {
        problems.push(
          `${other.name}.isInstance(an instance of ${errorClass.name}) is ${actual}; expected ${expected}.`,
        );
      }
    }
  }
  if (problems.length > 0) {
    throw new Error(
      `${problems.length} problem${problems.length === 1 ? "" : "s"} with the exported error classes:\n  - ${problems.join("\n  - ")}`,
    );
  }
  return checked;
}
