import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from "@opentelemetry/sdk-trace-base";
import { describe, expect, it } from "vitest";
import { InMemoryAuditStore } from "./memory-store";
import { createOtelExporter, metadataAttributes, REDACTED } from "./otel";

describe("the OpenTelemetry exporter", () => {
  it("turns each event into a span with its ids and kind, secrets redacted", async () => {
    const exporter = new InMemorySpanExporter();
    const provider = new BasicTracerProvider({
      spanProcessors: [new SimpleSpanProcessor(exporter)],
    });
    const export_ = createOtelExporter({ tracer: provider.getTracer("test") });
    const store = new InMemoryAuditStore({ maxEvents: 10 });
    const record = await store.log({
      agentId: "billing-agent",
      kind: "llm.call",
      sessionId: "s-1",
      model: "gpt-4o-mini",
      metadata: {
        tokens: 150,
        max_tokens: 4096,
        access_token: "opaque-value",
        api_key: "sk-live-abcdefghijklmnopqrstuvwx",
        headers: { Authorization: "Bearer abc.def.ghi", accept: "json" },
        note: "connect to postgres://admin:hunter2@db.internal/gov",
        pasted: "sk-proj-abcdefghijklmnopqrstuvwxyz012345",
      },
    });
    export_(record);
    const [span] = exporter.getFinishedSpans();
    expect(span?.name).toBe("llm.call");
    expect(span?.attributes).toMatchObject({
      "gov.event_id": record.eventId,
      "gov.agent_id": "billing-agent",
      "gov.kind": "llm.call",
      "gov.session_id": "s-1",
      "gov.seq": 1,
      "gov.model": "gpt-4o-mini",
      "gov.metadata.tokens": 150,
      "gov.metadata.max_tokens": 4096,
      "gov.metadata.access_token": REDACTED,
      "gov.metadata.api_key": REDACTED,
      "gov.metadata.headers.Authorization": REDACTED,
      "gov.metadata.headers.accept": "json",
      "gov.metadata.note": "connect to postgres://***@db.internal/gov",
      "gov.metadata.pasted": REDACTED,
    });
    expect(JSON.stringify(span?.attributes)).not.toMatch(/hunter2|sk-live|abc\.def/);
  });

  it("redacts extra keys on request and cuts long values", () => {
    const attributes = metadataAttributes(
      { customerSsn: "123-45-6789", text: "x".repeat(50) },
      { redactKeys: ["ssn"], maxAttributeLength: 10 },
    );
    expect(attributes).toEqual({
      "gov.metadata.customerSsn": REDACTED,
      "gov.metadata.text": `${"x".repeat(10)}…`,
    });
  });
});
