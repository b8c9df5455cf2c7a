/**
 * Alert dispatch: when recorded spend crosses a policy's alert threshold, write
 * `budget.threshold_crossed` to the audit chain and send the signed webhook in the
 * background (`budget.alert_failed` when every attempt fails). Also tracks the module's other
 * background evidence, so that `flush()` and `close()` wait for all of it.
 */
import { randomUUID } from "node:crypto";
import { type AuditEventInput, type Clock, describeError, type Logger } from "@gov/core";
import { type BudgetAlertPayload, deliverAlert } from "./alerts";
import { alertTarget, type BudgetCap, type BudgetPolicy, CAP_UNITS } from "./budget-policy";
import type { CostMetrics } from "./models";
import { trimDecimal } from "./money";
import type { SettleItem } from "./sql";

/** A cap whose alert threshold a usage record crossed, as `record_usage` reports it. */
export interface ThresholdCrossing {
  cap: BudgetCap;
  used: string;
  limit: string;
}

/** What the dispatcher needs of the module. */
export interface AlertDispatcherOptions {
  logger: Logger;
  clock: Clock;
  /** Write an event to the audit chain; never rejects. */
  evidence(event: AuditEventInput): Promise<void>;
  /** The module's counters: `alertsSent` and `alertsFailed` are counted here. */
  metrics: CostMetrics;
  /** Milliseconds each webhook attempt may take. */
  timeoutMs: number;
  /** Attempts per webhook. */
  attempts: number;
}

/** Sends budget alerts and keeps the background work of the module until it is done. */
export class AlertDispatcher {
  readonly #options: AlertDispatcherOptions;
  readonly #running = new Set<Promise<void>>();
  /** Aborts the deliveries still running when the module closes. */
  readonly #abort = new AbortController();

  constructor(options: AlertDispatcherOptions) {
    this.#options = options;
  }

  /** Keep `work` until it settles, so that {@link AlertDispatcher.settled} waits for it. */
  track(work: Promise<void>): void {
    this.#running.add(work);
    void work.finally(() => this.#running.delete(work));
  }

  /** Alert on a crossing of `policy`'s threshold (nothing when the policy has no alert). */
  dispatch(
    item: SettleItem,
    crossing: ThresholdCrossing,
    day: string,
    policy: BudgetPolicy | undefined,
  ): void {
    const target = policy ? alertTarget(policy) : null;
    if (!policy?.alert || target === null) return;
    const { logger, evidence, metrics } = this.#options;
    const unit = CAP_UNITS[crossing.cap] === "usd" ? "usd" : "tokens";
    const payload: BudgetAlertPayload = {
      type: "budget.threshold_crossed",
      id: randomUUID(),
      agentId: item.agentId,
      sessionId: item.sessionId,
      cap: crossing.cap,
      unit,
      used: trimDecimal(crossing.used),
      limit: trimDecimal(crossing.limit),
      thresholdPercent: policy.alert.thresholdPercent,
      day: crossing.cap.startsWith("perAgent") ? day : null,
      at: this.#options.clock.now().toISOString(),
    };
    const host = new URL(target.url).host;
    const delivery = (async () => {
      await evidence({
        agentId: item.agentId,
        sessionId: item.sessionId,
        kind: "budget.threshold_crossed",
        metadata: {
          alertId: payload.id,
          cap: payload.cap,
          unit,
          used: payload.used,
          limit: payload.limit,
          thresholdPercent: payload.thresholdPercent,
          webhookHost: host,
        },
      });
      const outcome = await deliverAlert(
        { url: target.url, secret: target.secret, payload },
        {
          timeoutMs: this.#options.timeoutMs,
          attempts: this.#options.attempts,
          backoffMs: 250,
          nowMs: () => this.#options.clock.nowMs(),
          signal: this.#abort.signal,
        },
      );
      if (outcome.delivered) {
        metrics.alertsSent++;
        return;
      }
      metrics.alertsFailed++;
      logger.warn("A budget alert webhook could not be delivered.", {
        agentId: item.agentId,
        cap: payload.cap,
        webhookHost: host,
        attempts: outcome.attempts,
        error: outcome.error,
      });
      await evidence({
        agentId: item.agentId,
        sessionId: item.sessionId,
        kind: "budget.alert_failed",
        metadata: {
          alertId: payload.id,
          cap: payload.cap,
          webhookHost: host,
          attempts: outcome.attempts,
          status: outcome.status,
          error: outcome.error,
        },
      });
    })().catch((error: unknown) => {
      logger.error("A budget alert failed unexpectedly.", { error: describeError(error) });
    });
    this.track(delivery);
  }

  /** Resolves when the work running now has settled (or `timeoutMs` has passed, if given). */
  async settled(timeoutMs?: number): Promise<void> {
    const all = Promise.allSettled([...this.#running]);
    if (timeoutMs === undefined) {
      await all;
      return;
    }
    await Promise.race([
      all,
      new Promise((resolve) => setTimeout(resolve, Math.max(0, timeoutMs)).unref()),
    ]);
  }

  /** Abort the deliveries still running (their failure is recorded as usual). */
  abort(): void {
    this.#abort.abort();
  }
}
