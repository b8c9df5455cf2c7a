import { type AuditSink, resolveGovernancePorts } from "@gov/core";
import { describe, expect, expectTypeOf, it } from "vitest";
import { AuditModule } from "./module";

describe("AuditModule is core's AuditSink", () => {
  it("fits the port's type: `pnpm typecheck` fails when either drifts", () => {
    // The assignment is the proof; the checks below make the method's variance strict (an
    // interface method is compared bivariantly): every event the port allows, the module takes.
    const port: AuditSink = AuditModule.prototype;
    expectTypeOf<AuditModule>().toExtend<AuditSink>();
    expectTypeOf<Parameters<AuditSink["log"]>>().toExtend<Parameters<AuditModule["log"]>>();
    expectTypeOf<ReturnType<AuditModule["log"]>>().toExtend<ReturnType<AuditSink["log"]>>();
    // And at run time: core's resolver finds every method the port needs on the module.
    expect(resolveGovernancePorts({ audit: port }).audit).toBe(AuditModule.prototype);
  });
});
