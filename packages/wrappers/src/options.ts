import { randomUUID } from "node:crypto";
import {
  checkId,
  type GovernancePorts,
  type HasGovernancePorts,
  InvalidArgumentError,
  type LogFields,
  type Logger,
  parseOptions,
  type ResolvedGovernancePorts,
  reportInvalidAs,
  resolveGovernancePorts,
} from "@gov/core";
import { z } from "zod";
import { InvalidWrapperOptionsError } from "./errors";

/** What the model sent or received, handed to {@link WrapOptions.redact} before it is audited. */
export interface ContentToRedact {
  /** `input`: the messages / input of the request; `output`: the model's answer. */
  part: "input" | "output";
  /** The provider and the operation, e.g. `openai` and `chat.completions.create`. */
  provider: string;
  operation: string;
  /**
   * A copy of the content as sent or received (a structured clone, else its JSON form):
   * redacting it in place does not change what the model receives or the host sees. Content
   * that can be copied neither way is not recorded (logged).
   */
  content: unknown;
}

/** The options every wrapper takes (`wrapOpenAI(client, options)`). */
export interface WrapOptions {
  /**
   * The modules to govern with: the `GovernanceSDK` (it carries `sdk.ports`), or an object of
   * the ports you have (`{ halt: presence, scope, cost, audit }`). A missing port is a no-op
   * for observation (audit, coverage) and a check that asks nothing for enforcement.
   */
  governance: GovernancePorts | HasGovernancePorts;
  /** The agent whose calls these are (core's id rule: 1–256 characters, no invisible ones). */
  agentId: string;
  /** The session the calls are budgeted and audited under. @default a random UUID per wrapped client */
  sessionId?: string;
  /**
   * What to do with a tool call the model returned for a tool the agent may not use:
   * `"remove"` it from the response (audited), or `"throw"` a `ToolCallOutOfScopeError`.
   * @default "remove"
   */
  onToolOutOfScope?: "remove" | "throw";
  /**
   * Record the messages sent and the answer received in the `llm.call` / `llm.result` audit
   * events. Off by default: the chain then holds models, tool names and usage, never content.
   * @default false
   */
  recordContent?: boolean;
  /**
   * With `recordContent`, what is recorded instead of the raw content (return a redacted copy,
   * or `undefined` to record nothing). Called on the call's path; keep it fast. A hook that
   * throws records nothing for that part (logged).
   */
  redact?: (content: ContentToRedact) => unknown;
}

/** {@link WrapOptions} as a wrapper uses them: validated, with the ports resolved. */
export interface ResolvedWrapOptions {
  readonly ports: ResolvedGovernancePorts;
  readonly agentId: string;
  readonly sessionId: string;
  readonly onToolOutOfScope: "remove" | "throw";
  readonly recordContent: boolean;
  readonly redact: ((content: ContentToRedact) => unknown) | null;
}

const wrapOptionsSchema = z.strictObject({
  governance: z.custom<GovernancePorts | HasGovernancePorts>(
    (value) => typeof value === "object" && value !== null && !Array.isArray(value),
    { message: "must be the GovernanceSDK or an object of ports" },
  ),
  agentId: z.unknown(),
  sessionId: z.unknown().optional(),
  onToolOutOfScope: z.enum(["remove", "throw"]).optional(),
  recordContent: z.boolean().optional(),
  redact: z
    .custom<(content: ContentToRedact) => unknown>((value) => typeof value === "function", {
      message: "must be a function",
    })
    .optional(),
});

const FIXES = {
  "": "Pass { governance, agentId, sessionId?, onToolOutOfScope?, recordContent?, redact? }.",
  governance:
    "Pass the GovernanceSDK (it carries sdk.ports), or an object of the modules you have, e.g. { scope, cost, audit, halt: presence }.",
  onToolOutOfScope: 'Use "remove" (the default) or "throw".',
  recordContent:
    "Use true to record message contents in the audit chain, false (the default) not to.",
  redact: "Pass a function (content) => redacted copy, used when recordContent is true.",
};

/**
 * The logger a wrapper uses: the host's, with every method guarded. The logger reports the
 * failures of observation, so it is the last resort: a logger that throws is ignored, and
 * never breaks a call, a wrap or a stream (nor leaves an unhandled rejection).
 */
function guardedLogger(logger: Logger): Logger {
  const guard =
    (level: keyof Logger) =>
    (message: string, fields?: LogFields): void => {
      try {
        logger[level](message, fields);
      } catch {
        // nothing is left to report the logger's own failure to
      }
    };
  return Object.freeze({
    debug: guard("debug"),
    info: guard("info"),
    warn: guard("warn"),
    error: guard("error"),
  });
}

function readId(value: unknown, field: string): string {
  try {
    return checkId(value, field);
  } catch (error) {
    if (InvalidArgumentError.isInstance(error))
      throw reportInvalidAs(InvalidWrapperOptionsError, error);
    throw error;
  }
}

/**
 * Read a wrapper's options: unknown keys refused with a "did you mean", ids by core's rule,
 * the ports resolved ({@link resolveGovernancePorts}).
 *
 * @throws {InvalidWrapperOptionsError} `WRAPPERS_OPTIONS_INVALID`; nothing was wrapped.
 */
export function resolveWrapOptions(options: unknown): ResolvedWrapOptions {
  const data = parseOptions(wrapOptionsSchema, options, {
    required: true,
    fixes: FIXES,
    errorClass: InvalidWrapperOptionsError,
  });
  const agentId = readId(data.agentId, "options.agentId");
  const sessionId =
    data.sessionId === undefined ? randomUUID() : readId(data.sessionId, "options.sessionId");
  let ports: ResolvedGovernancePorts;
  try {
    ports = resolveGovernancePorts(data.governance);
  } catch (error) {
    if (InvalidArgumentError.isInstance(error))
      throw reportInvalidAs(InvalidWrapperOptionsError, error);
    throw error;
  }
  return Object.freeze({
    ports: Object.freeze({ ...ports, logger: guardedLogger(ports.logger) }),
    agentId,
    sessionId,
    onToolOutOfScope: data.onToolOutOfScope ?? "remove",
    recordContent: data.recordContent ?? false,
    redact: data.redact ?? null,
  });
}
