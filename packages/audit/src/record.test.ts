import { canonicalJson } from "@gov/core";
import { describe, expect, it } from "vitest";
import { normalizeEvent } from "./models";
import { signedPayload } from "./record";

describe("signedPayload", () => {
  // The payload is written out by hand for speed; it must be the RFC 8785 form, byte for byte.
  it("is exactly the canonical JSON of the signed fields", () => {
    const awkward = [
      "",
      "plain",
      'quote " and \\ backslash',
      "line\nbreak\ttab",
      "é – 中文 🎉",
      "\u2028\u2029",
      "</script>",
    ];
    let count = 0;
    // Ids refuse white space at their ends, controls and separators (issue 13): those reach
    // the payload through the metadata only.
    const asId = (text: string) => text.replace(/[\s\u2028\u2029]+/g, "_");
    for (const text of awkward) {
      for (const withOptional of [false, true]) {
        const event = normalizeEvent({
          agentId: asId(`agent ${text}`.trim() || "agent"),
          kind: `kind.${text.length}`,
          sessionId: withOptional ? asId(`session ${text}`) : null,
          parentEventId: withOptional ? "0B7F5A7E-1111-4222-8333-444455556666" : null,
          model: withOptional ? asId(`model ${text}`).slice(0, 128) : null,
          inputHash: withOptional ? "AB".repeat(32) : null,
          outputHash: withOptional ? "cd".repeat(32) : null,
          metadata: withOptional
            ? {
                z: text,
                a: [1, 2.5, -0, 1e21, null, true],
                nested: { b: text, a: { c: [] } },
                é: 1,
                "\u00e9x": 2,
              }
            : {},
        });
        const position = {
          eventId: "2f1c8f0e-0000-4000-8000-000000000001",
          chain: event.sessionId ?? `agent:${event.agentId}`,
          seq: count + 1,
          prevHash: count === 0 ? null : "ef".repeat(32),
          createdAt: new Date(Date.UTC(2026, 10, 23, 9, 12, 3, count)),
          keyId: "22ca0aa79ef8cdc7",
        };
        const expected = canonicalJson({
          v: 1,
          eventId: position.eventId,
          chain: position.chain,
          seq: position.seq,
          prevHash: position.prevHash,
          createdAt: position.createdAt.toISOString(),
          keyId: position.keyId,
          agentId: event.agentId,
          kind: event.kind,
          sessionId: event.sessionId,
          parentEventId: event.parentEventId,
          model: event.model,
          inputHash: event.inputHash,
          outputHash: event.outputHash,
          metadata: event.metadata,
        });
        expect(signedPayload(event, position)).toBe(expected);
        // And when the metadata's canonical form is not remembered (a replayed spool entry).
        expect(
          signedPayload(
            { ...event, metadata: JSON.parse(JSON.stringify(event.metadata)) },
            position,
          ),
        ).toBe(expected);
        count++;
      }
    }
    expect(count).toBe(14);
  });

  // Issue 13: an id with a lone surrogate is refused (core's checkId), not repaired; the
  // metadata's text is still neutralized before signing.
  it("refuses lone surrogates in ids and neutralizes them in metadata before signing", () => {
    expect(() => normalizeEvent({ agentId: "a\ud800b", kind: "k" })).toThrow(
      expect.objectContaining({ code: "AUDIT_EVENT_INVALID", field: "agentId" }),
    );
    const event = normalizeEvent({ agentId: "a", kind: "k", metadata: { note: "x\udc00" } });
    expect(event.metadata.note).toBe("x\ufffd");
  });
});
