// The fix gates gives for a required options object names that call's own options, and an
// unreadable object is still explained (found by an attack on issue 13; each failed before the fix).
import {
  ChainKey,
  InvalidArgumentError,
  Keyring,
  ManualClock,
  type Store,
  silentLogger,
} from "@gov/core";
import { describe, expect, it } from "vitest";
import { SECRET_A, thrown } from "./__fixtures__";
import { InvalidGatesInputError } from "./errors";
import { GatesModule } from "./module";

/** A gates module whose store must never be reached (bad input is refused first). */
function gates(): GatesModule {
  const fail = async () => {
    throw new Error("the store was used");
  };
  const store = { query: fail, transaction: fail, listen: fail, notify: fail } as unknown as Store;
  return new GatesModule(
    {
      store,
      keyring: new Keyring(new ChainKey(SECRET_A)),
      clock: new ManualClock(new Date("2026-01-01T00:00:00.000Z")),
      logger: silentLogger,
      audit: {
        async log() {
          return { eventId: "e", isPlaceholder: false };
        },
      },
      halt: { async assertAlive() {} },
    },
    {},
  );
}

describe("gates' required options and their fix", () => {
  // Was: `required: true` passes fixes[""] = 'Pass an options object, e.g. { reviewerId: … }'
  // for every required options object, requireApproval's too. requireApproval refuses
  // reviewerId ("is not an option"): the hint sends the caller to a second refusal. Before
  // 293c6b7 only `undefined` got this hint; now null, numbers and class instances get it too.
  it("does not tell requireApproval's caller to pass reviewerId", async () => {
    const module = gates();
    for (const options of [undefined, null, 42]) {
      const error = await thrown(() => module.requireApproval(options as never, () => 1));
      expect(InvalidGatesInputError.isInstance(error)).toBe(true);
      expect((error as InvalidGatesInputError).recoveryHint).not.toMatch(/reviewerId/);
    }
    await module.close();
  });

  // Regression of 293c6b7: fixes[""] also replaces core's fix for an options object
  // that cannot be read at its root (a proxy whose traps throw). grant() used to say
  // "Pass plain data: … not getters or proxies that throw"; it now says "Pass an options
  // object, e.g. { reviewerId }" — to a caller who did pass an options object.
  it("still says why an unreadable options object was refused", async () => {
    const module = gates();
    const unreadable = new Proxy(
      {},
      {
        ownKeys() {
          throw new Error("trap");
        },
      },
    );
    const error = await thrown(() => module.grant("token", unreadable as never));
    expect(InvalidArgumentError.isInstance(error)).toBe(true);
    expect((error as InvalidArgumentError).message).toMatch(/could not be read/);
    expect((error as InvalidArgumentError).recoveryHint).toMatch(/getters or proxies/);
    await module.close();
  });
});
