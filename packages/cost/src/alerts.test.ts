import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { eventually, type TestEngine, testEngines } from "@gov/core/testing";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type CostHarness, costHarness } from "./__fixtures__";
import {
  ALERT_ID_HEADER,
  ALERT_SIGNATURE_HEADER,
  type BudgetAlertPayload,
  signAlert,
  verifyAlertSignature,
} from "./alerts";
import { BudgetPolicy } from "./budget-policy";

const SECRET = "whsec_0123456789abcdef";
const A = "billing-agent";
const S1 = "session-1";

interface Received {
  headers: IncomingMessage["headers"];
  body: string;
}

/** A webhook receiver on a free port; `respond` decides each answer. */
async function receiver(
  respond: (request: Received) => Promise<number> | number = () => 204,
): Promise<{ url: string; received: Received[]; close(): Promise<void> }> {
  const received: Received[] = [];
  const server: Server = createServer((request, response) => {
    let body = "";
    request.on("data", (chunk: Buffer) => {
      body += chunk.toString();
    });
    request.on("end", () => {
      const entry = { headers: request.headers, body };
      received.push(entry);
      void Promise.resolve(respond(entry)).then((status) => {
        response.statusCode = status;
        response.end();
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hooks/budget`,
    received,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

describe("signatures", () => {
  const body = JSON.stringify({ type: "budget.threshold_crossed", used: "0.6" });
  const now = 1_800_000_000_000;
  const header = signAlert(body, SECRET, now / 1000);

  it("verifies the exact body under the secret, within the tolerance", () => {
    expect(header).toMatch(/^t=1800000000,v1=[0-9a-f]{64}$/);
    expect(verifyAlertSignature(body, header, SECRET, { nowMs: now })).toBe(true);
    expect(verifyAlertSignature(body, header, SECRET, { nowMs: now + 299_000 })).toBe(true);
  });

  it("refuses another body, another secret, a flipped MAC, an old timestamp and malformed headers", () => {
    expect(verifyAlertSignature(body.replace("0.6", "0.7"), header, SECRET, { nowMs: now })).toBe(
      false,
    );
    expect(verifyAlertSignature(body, header, `${SECRET}x`, { nowMs: now })).toBe(false);
    const last = header.at(-1) === "0" ? "1" : "0";
    expect(
      verifyAlertSignature(body, `${header.slice(0, -1)}${last}`, SECRET, { nowMs: now }),
    ).toBe(false);
    expect(verifyAlertSignature(body, header, SECRET, { nowMs: now + 301_000 })).toBe(false);
    for (const bad of [undefined, null, "", "v1=abc", `t=1,v1=${"g".repeat(64)}`, `${header},x`]) {
      expect(verifyAlertSignature(body, bad as string, SECRET, { nowMs: now })).toBe(false);
    }
  });
});

describe.each(testEngines())("budget alert webhooks on $name", (engine: TestEngine) => {
  let h: CostHarness;
  let hook: Awaited<ReturnType<typeof receiver>> | undefined;

  beforeEach(async () => {
    if (engine.available) h = await costHarness(engine, { alertAttempts: 2 });
  });

  afterEach(async () => {
    await h?.close();
    await hook?.close();
    hook = undefined;
  });

  const policy = (
    url: string,
    extra: Partial<ConstructorParameters<typeof BudgetPolicy>[0]> = {},
  ) =>
    new BudgetPolicy({
      agentId: A,
      perSessionUsd: 1,
      alert: { webhookUrl: url, secret: SECRET, thresholdPercent: 50 },
      ...extra,
    });

  it.skipIf(!engine.available)(
    "fires once when spend crosses the threshold: a signed POST, audit-logged",
    async () => {
      hook = await receiver();
      h.cost.register(policy(hook.url));
      await h.cost.track(A, S1, { tokens: 10, usd: "0.3" });
      await h.cost.flush();
      expect(hook.received).toEqual([]);
      await h.cost.track(A, S1, { tokens: 10, usd: "0.2" }); // 0.5 = 50 % of $1
      await h.cost.track(A, S1, { tokens: 10, usd: "0.3" }); // still above: no second alert
      await h.cost.flush();
      expect(hook.received).toHaveLength(1);
      const [request] = hook.received as [Received];
      expect(request.headers["content-type"]).toBe("application/json");
      expect(
        verifyAlertSignature(
          request.body,
          request.headers[ALERT_SIGNATURE_HEADER] as string,
          SECRET,
          {
            nowMs: h.clock.nowMs(),
          },
        ),
      ).toBe(true);
      const payload = JSON.parse(request.body) as BudgetAlertPayload;
      expect(payload).toEqual({
        type: "budget.threshold_crossed",
        id: request.headers[ALERT_ID_HEADER],
        agentId: A,
        sessionId: S1,
        cap: "perSessionUsd",
        unit: "usd",
        used: "0.5",
        limit: "1",
        thresholdPercent: 50,
        day: null,
        at: "2026-11-23T12:00:00.000Z",
      });
      expect(h.audit.events).toEqual([
        {
          agentId: A,
          sessionId: S1,
          kind: "budget.threshold_crossed",
          metadata: {
            alertId: payload.id,
            cap: "perSessionUsd",
            unit: "usd",
            used: "0.5",
            limit: "1",
            thresholdPercent: 50,
            webhookHost: new URL(hook.url).host,
          },
        },
      ]);
      expect(JSON.stringify(h.audit.events)).not.toContain(SECRET);
      expect(h.cost.metrics().alertsSent).toBe(1);
    },
  );

  it.skipIf(!engine.available)(
    "fires once for many concurrent writers crossing together, per cap (session and daily)",
    async () => {
      hook = await receiver();
      h.cost.register(policy(hook.url, { perAgentTokensDaily: 1000 }));
      await Promise.all(
        Array.from({ length: 40 }, (_, index) =>
          h.cost.track(A, `s-${index % 4}`, { tokens: 25, usd: "0.05" }),
        ),
      );
      await h.cost.flush();
      const caps = hook.received.map(
        (request) => (JSON.parse(request.body) as BudgetAlertPayload).cap,
      );
      // 4 sessions × $0.50 each: every session crosses 50 % of $1 once; the day crosses 500 tokens once.
      expect(caps.filter((cap) => cap === "perSessionUsd")).toHaveLength(4);
      expect(caps.filter((cap) => cap === "perAgentTokensDaily")).toHaveLength(1);
      const daily = hook.received
        .map((request) => JSON.parse(request.body) as BudgetAlertPayload)
        .find((payload) => payload.cap === "perAgentTokensDaily");
      expect(daily).toMatchObject({ unit: "tokens", limit: "1000", day: "2026-11-23" });
    },
  );

  it.skipIf(!engine.available)(
    "never blocks the agent: usage is recorded while the receiver hangs",
    async () => {
      let release: () => void = () => {};
      const answered = new Promise<void>((resolve) => {
        release = resolve;
      });
      let responded = false;
      hook = await receiver(async () => {
        await answered;
        responded = true;
        return 200;
      });
      h.cost.register(policy(hook.url));
      const receipt = await h.cost.track(A, S1, { tokens: 10, usd: "0.9" });
      expect(receipt.recorded).toBe(true);
      expect(responded).toBe(false);
      await eventually(() => hook?.received.length === 1);
      release();
      await h.cost.flush();
      expect(responded).toBe(true);
    },
  );

  it.skipIf(!engine.available)(
    "the webhook's path (often its credential) never reaches a log line or the audit chain",
    async () => {
      // Nothing listens on port 9: every attempt fails with a network error.
      const url = "http://127.0.0.1:9/services/T000/B000/XOXB-TOKEN-IN-PATH?key=QUERY-SECRET";
      h.cost.register(policy(url));
      await h.cost.track(A, S1, { tokens: 10, usd: "0.9" });
      await h.cost.flush();
      expect(h.audit.events.map((event) => event.kind)).toEqual([
        "budget.threshold_crossed",
        "budget.alert_failed",
      ]);
      const seen = JSON.stringify([h.audit.events, h.logger.lines, h.cost.getPolicy(A)]);
      expect(seen).not.toContain("XOXB-TOKEN-IN-PATH");
      expect(seen).not.toContain("QUERY-SECRET");
      expect(h.cost.getPolicy(A)?.alert?.webhookUrl).toBe("http://127.0.0.1:9/…");
    },
  );

  it.skipIf(!engine.available)(
    "a receiver that keeps failing: retried, then logged and audit-logged as budget.alert_failed",
    async () => {
      hook = await receiver(() => 500);
      h.cost.register(policy(hook.url));
      await h.cost.track(A, S1, { tokens: 10, usd: "0.9" });
      await h.cost.flush();
      expect(hook.received).toHaveLength(2); // alertAttempts: 2
      expect(h.audit.events.map((event) => event.kind)).toEqual([
        "budget.threshold_crossed",
        "budget.alert_failed",
      ]);
      expect(h.audit.events[1]?.metadata).toMatchObject({
        attempts: 2,
        status: 500,
        error: "HTTP 500",
      });
      expect(
        h.logger.lines.some(
          (line) => line.level === "warn" && line.message.includes("could not be delivered"),
        ),
      ).toBe(true);
      expect(JSON.stringify(h.logger.lines)).not.toContain(SECRET);
      expect(h.cost.metrics().alertsFailed).toBe(1);
    },
  );
});
