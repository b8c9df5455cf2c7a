import { createHmac, timingSafeEqual } from "node:crypto";

/** The header that carries an alert's signature: `t=<unix seconds>,v1=<hex HMAC-SHA256>`. */
export const ALERT_SIGNATURE_HEADER = "x-gov-signature";

/** The header that carries an alert's id (the same on every retry of one alert). */
export const ALERT_ID_HEADER = "x-gov-alert-id";

/** The JSON body of a budget alert. */
export interface BudgetAlertPayload {
  /** Always `budget.threshold_crossed`. */
  type: "budget.threshold_crossed";
  /** Unique per alert; retries of one alert carry the same id. */
  id: string;
  agentId: string;
  sessionId: string;
  /** The cap whose threshold was crossed. */
  cap: string;
  /** `usd` or `tokens`. */
  unit: "usd" | "tokens";
  /** Spent so far, as an exact decimal string. */
  used: string;
  /** The cap's limit, as an exact decimal string. */
  limit: string;
  /** The threshold, in percent of the limit. */
  thresholdPercent: number;
  /** The UTC day, for daily caps. */
  day: string | null;
  /** When the crossing was recorded (ISO 8601). */
  at: string;
}

/**
 * The signature header of a body: HMAC-SHA256 under the policy's alert secret of
 * `<timestamp>.<body>`, as `t=<timestamp>,v1=<hex>`. The timestamp (unix seconds) is signed
 * too, so that a receiver can refuse replays of old alerts.
 */
export function signAlert(body: string, secret: string, timestampSeconds: number): string {
  const mac = createHmac("sha256", secret).update(`${timestampSeconds}.${body}`).digest("hex");
  return `t=${timestampSeconds},v1=${mac}`;
}

/** Options of {@link verifyAlertSignature}. */
export interface VerifyAlertOptions {
  /** Refuse signatures older (or newer) than this many seconds. @default 300 */
  toleranceSeconds?: number;
  /** The receiver's time, in milliseconds since the epoch. @default Date.now() */
  nowMs?: number;
}

/**
 * For receivers: check an alert's `X-Gov-Signature` header against the raw body (the exact
 * bytes received, before any JSON parsing) in constant time, and refuse a timestamp outside
 * the tolerance. Returns false for anything malformed; never throws on bad input.
 *
 * @example
 * ```ts
 * if (!verifyAlertSignature(rawBody, request.headers["x-gov-signature"], process.env.ALERT_SECRET!)) {
 *   return response.status(401).end();
 * }
 * ```
 */
export function verifyAlertSignature(
  body: string,
  header: string | undefined | null,
  secret: string,
  options: VerifyAlertOptions = {},
): boolean {
  if (typeof header !== "string" || typeof body !== "string" || typeof secret !== "string") {
    return false;
  }
  const match = /^t=(\d{1,15}),v1=([0-9a-f]{64})$/.exec(header);
  if (!match) return false;
  const timestamp = Number(match[1]);
  const tolerance = options.toleranceSeconds ?? 300;
  const now = (options.nowMs ?? Date.now()) / 1000;
  if (Math.abs(now - timestamp) > tolerance) return false;
  const expected = createHmac("sha256", secret).update(`${timestamp}.${body}`).digest();
  return timingSafeEqual(expected, Buffer.from(match[2] as string, "hex"));
}

/** How an alert is delivered. */
export interface AlertDelivery {
  url: string;
  secret: string;
  payload: BudgetAlertPayload;
}

/** Options of the sender. */
export interface AlertSenderOptions {
  /** Milliseconds each attempt may take. */
  timeoutMs: number;
  /** Attempts in all (the first plus retries). */
  attempts: number;
  /** Milliseconds before the first retry; doubled each time. */
  backoffMs: number;
  /** The clock of the signature timestamp. */
  nowMs: () => number;
  /** Stops the attempts (the module is closing). */
  signal?: AbortSignal;
}

/**
 * A webhook URL as it may be shown: its origin, and `/…` for the rest — the path and query of
 * many webhooks (Slack, Discord, …) are themselves the credential.
 */
export function redactWebhookUrl(url: string): string {
  try {
    const parsed = new URL(url);
    const rest = `${parsed.pathname}${parsed.search}`;
    return `${parsed.origin}${rest === "/" || rest === "" ? "" : "/…"}`;
  } catch {
    return "(invalid URL)";
  }
}

/**
 * Post an alert: signed, retried with backoff on a network error or a non-2xx answer.
 * Resolves with the outcome; never throws.
 */
export async function deliverAlert(
  delivery: AlertDelivery,
  options: AlertSenderOptions,
): Promise<{ delivered: boolean; attempts: number; status: number | null; error: string | null }> {
  const body = JSON.stringify(delivery.payload);
  let status: number | null = null;
  let error: string | null = null;
  const redacted = redactWebhookUrl(delivery.url);
  // Never let the URL (its path may be the credential) reach a log line or the audit chain.
  const scrub = (text: string) =>
    text.split(delivery.url).join(redacted).split(new URL(delivery.url).href).join(redacted);
  for (let attempt = 1; attempt <= options.attempts; attempt++) {
    if (options.signal?.aborted) {
      return {
        delivered: false,
        attempts: attempt - 1,
        status,
        error: error ?? "aborted: the module closed",
      };
    }
    try {
      const response = await fetch(delivery.url, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          [ALERT_ID_HEADER]: delivery.payload.id,
          [ALERT_SIGNATURE_HEADER]: signAlert(
            body,
            delivery.secret,
            Math.floor(options.nowMs() / 1000),
          ),
        },
        body,
        redirect: "error",
        signal: options.signal
          ? AbortSignal.any([options.signal, AbortSignal.timeout(options.timeoutMs)])
          : AbortSignal.timeout(options.timeoutMs),
      });
      status = response.status;
      await response.body?.cancel().catch(() => {});
      if (response.ok) return { delivered: true, attempts: attempt, status, error: null };
      error = `HTTP ${response.status}`;
    } catch (cause) {
      error = scrub(cause instanceof Error ? `${cause.name}: ${cause.message}` : String(cause));
    }
    if (attempt < options.attempts && !options.signal?.aborted) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, options.backoffMs * 2 ** (attempt - 1));
        timer.unref();
        options.signal?.addEventListener("abort", () => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }
  return { delivered: false, attempts: options.attempts, status, error };
}
