import { ManualClock, silentLogger } from "@gov/core";
import { recordingAuditSink, recordingLogger } from "@gov/core/testing";
import type { StewardOptions } from "../options";
import { GovernanceSteward } from "../steward";

export { recordingAuditSink, recordingLogger };

/** A blueprint with one tripwire per decision, keyed on `args.kind`. */
export function decisionsBlueprint(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    id: "decisions@1.0",
    version: "1.0",
    tripwires: ["NUDGE", "FLAG", "ESCALATE", "BLOCK", "HALT"].map((decision) => ({
      id: `on-${decision.toLowerCase()}`,
      condition: `"${decision}" in args.kinds`,
      onFail: { decision, reason: `${decision} tripwire` },
    })),
    ...extra,
  };
}

/** A steward on a manual clock with a recording audit sink. */
export function makeSteward(
  options: Partial<StewardOptions> & Pick<StewardOptions, "blueprints">,
  clock = new ManualClock(new Date("2026-01-01T00:00:00Z")),
) {
  const audit = recordingAuditSink();
  const logger = recordingLogger();
  const steward = new GovernanceSteward({ clock, audit, logger }, options);
  return { steward, audit, clock, logger };
}

export { silentLogger };
