/**
 * The human reviewer of the demo, in another OS process. It is sent the request (its id, what
 * it asks, and the token — which only a reviewer may hold) over IPC, looks at it, and
 * decides. On a shared Postgres it grants through its own SDK, and the agent's `waitFor` in
 * the first process wakes on the database's notification; on the embedded database, which one
 * process holds, it sends its decision back for the demo to apply.
 */
import { GovernanceSDK } from "@gov/sdk";

/** What the demo sends the reviewer. */
export interface ReviewRequest {
  requestId: string;
  kind: string;
  payload: Record<string, unknown>;
  token: string;
  /** The shared Postgres, or null on the embedded database. */
  databaseUrl: string | null;
}

/** What the reviewer answers. */
export interface ReviewAnswer {
  decision: "granted" | "denied";
  reviewerId: string;
  reason: string;
  pid: number;
  /** True when the reviewer resolved the request itself, on the shared database. */
  direct: boolean;
  /** The token, for the demo to apply the decision when the reviewer could not (embedded). */
  token?: string;
  error?: string;
}

export const REVIEWER_ID = "finance-lead@example.com";

async function review(request: ReviewRequest): Promise<ReviewAnswer> {
  // The policy of this reviewer: refunds up to 500 EUR are fine.
  const amount = Number(request.payload.amount ?? Number.POSITIVE_INFINITY);
  const decision = amount <= 500 ? "granted" : "denied";
  const reason = decision === "granted" ? "matches the invoice" : "over the refund limit";
  if (request.databaseUrl === null) {
    return {
      decision,
      reviewerId: REVIEWER_ID,
      reason,
      pid: process.pid,
      direct: false,
      token: request.token,
    };
  }
  const sdk = await GovernanceSDK.start({
    databaseUrl: request.databaseUrl,
    logLevel: "silent",
    enableCost: false,
    enableLoop: false,
    enableScope: false,
  });
  try {
    if (decision === "granted")
      await sdk.gates.grant(request.token, { reviewerId: REVIEWER_ID, reason });
    else await sdk.gates.deny(request.token, { reviewerId: REVIEWER_ID, reason });
  } finally {
    await sdk.close();
  }
  return { decision, reviewerId: REVIEWER_ID, reason, pid: process.pid, direct: true };
}

process.once("message", (message) => {
  review(message as ReviewRequest).then(
    (answer) => process.send?.(answer, () => process.disconnect()),
    (error: unknown) =>
      process.send?.(
        {
          decision: "denied",
          reviewerId: REVIEWER_ID,
          reason: "the review failed",
          pid: process.pid,
          direct: false,
          error: error instanceof Error ? `${error.name}: ${error.message}` : String(error),
        } satisfies ReviewAnswer,
        () => process.disconnect(),
      ),
  );
});
