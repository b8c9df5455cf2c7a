/**
 * A background response (`background: true`): created `queued`, without output or usage, and
 * read later with `responses.retrieve` (issue 14's attack, breaks 7 and 8).
 */
import { testEngines } from "@gov/core/testing";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { versionsOn } from "../__fixtures__/harness";
import { CLIENTS, type OpenAIAgent, openAIAgent } from "../__fixtures__/openai-agent";
import { response } from "../__fixtures__/openai-server";

describe.each(testEngines())("OpenAI background responses on $name", (engine) => {
  describe.each(versionsOn(engine, CLIENTS))("with $major", (client) => {
    let h: OpenAIAgent;
    beforeEach(async () => {
      if (engine.available) h = await openAIAgent(engine, client);
    });
    afterEach(async () => {
      if (engine.available) await h.close();
    });

    // Guards against: a background response (`background: true`) comes back `queued`, without output or
    // usage; its result is read later with `responses.retrieve`, which is not governed. The
    // function call it holds for a tool outside scope reaches the host. Expected: the output of
    // a governed response is checked whichever call reads it (or background is refused).
    it.skipIf(!engine.available)(
      "checks the tool calls of a background response read with retrieve()",
      async () => {
        h.server.reply = ({ path }) =>
          path.startsWith("/responses/")
            ? { json: response({ toolCalls: ["wire_money"] }) }
            : { json: { ...response(), status: "queued", output: [], usage: null } };
        const openai = h.wrapped();
        const queued = await openai.responses.create({
          model: "gpt-4o",
          input: "hi",
          background: true,
        });
        const done = await openai.responses.retrieve(queued.id);
        expect(
          done.output.filter((item) => item.type === "function_call").map((item) => item.name),
        ).toEqual([]);
      },
    );

    // Guards against: the same background response is settled when it is created, with no usage (it is
    // queued): reconciled from 0 chunks, it costs nothing, and the 1500 tokens it used (read
    // later with retrieve) are never counted against the budget. Expected: the usage of a
    // governed response is counted (or the reservation kept until it is known).
    it.skipIf(!engine.available)("counts the usage of a background response", async () => {
      h.server.reply = ({ path }) =>
        path.startsWith("/responses/")
          ? { json: response() }
          : { json: { ...response(), status: "queued", output: [], usage: null } };
      const openai = h.wrapped();
      const queued = await openai.responses.create({
        model: "gpt-4o",
        input: "hi",
        background: true,
      });
      await openai.responses.retrieve(queued.id);
      const after = await h.snapshot();
      expect(after.sessionTokensUsed + after.sessionTokensReserved).toBeGreaterThan(0);
    });
  });
});
