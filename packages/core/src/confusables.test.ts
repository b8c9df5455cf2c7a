import { describe, expect, it } from "vitest";
import {
  comparableIdentity,
  confusableSkeleton,
  findBlankCharacter,
  foldForMatching,
  sameIdentity,
  stripIgnorables,
} from "./confusables";

describe("findBlankCharacter", () => {
  it("finds characters that render blank or not at all, and says which and where", () => {
    // The self-approval bypass of wave 1: U+2800 BRAILLE PATTERN BLANK after the id.
    expect(findBlankCharacter("billing-agent\u2800")).toEqual({
      character: "\u2800",
      codePoint: "U+2800",
      index: 13,
    });
    for (const blank of [
      "\u00a0", // no-break space
      "\u2003", // em space
      "\u3000", // ideographic space
      "\u2028", // line separator
      "\u00ad", // soft hyphen
      "\u200b", // zero-width space
      "\u200d", // zero-width joiner
      "\u2060", // word joiner
      "\ufeff", // byte-order mark
      "\ufe0f", // variation selector
      "\u3164", // Hangul filler
      "\uffa0", // half-width Hangul filler
      "\u115f", // Hangul choseong filler
      "\u180e", // Mongolian vowel separator
      "\u{e0041}", // tag letter A
    ]) {
      expect(
        findBlankCharacter(`a${blank}b`)?.index,
        `U+${blank.codePointAt(0)?.toString(16)}`,
      ).toBe(1);
    }
  });

  it("allows the ASCII space unless told not to, and passes visible text", () => {
    expect(findBlankCharacter("ops team")).toBeNull();
    expect(findBlankCharacter("ops team", { allowSpace: false })?.index).toBe(3);
    expect(findBlankCharacter("Zoë-Ünal_Øre.ops@example.com")).toBeNull();
    expect(findBlankCharacter("运维")).toBeNull();
  });
});

describe("comparableIdentity", () => {
  it("folds the look-alikes that let an agent approve its own request", () => {
    const agent = "billing-agent";
    for (const lookAlike of [
      "Billing-Agent",
      "billing\u2010agent", // hyphen
      "billing\u2011agent", // non-breaking hyphen
      "billing\u2212agent", // minus sign
      "b\u0456lling-agent", // Cyrillic і
      "billing-\u0430gent", // Cyrillic а
      "ｂｉｌｌｉｎｇ－ａｇｅｎｔ", // full-width
      "bil\u00adling-agent", // soft hyphen
      "billing-agent\u200b", // zero-width space
      " billing-agent ",
    ]) {
      expect(sameIdentity(lookAlike, agent), JSON.stringify(lookAlike)).toBe(true);
    }
  });

  it("keeps different identities apart", () => {
    expect(sameIdentity("billing-agent", "billing-agent-2")).toBe(false);
    expect(sameIdentity("alice@example.com", "bob@example.com")).toBe(false);
    expect(sameIdentity("ops", "dev")).toBe(false);
  });

  it("folds case fully and collapses white space", () => {
    expect(comparableIdentity("STRASSE")).toBe(comparableIdentity("straße"));
    expect(comparableIdentity("ops   team")).toBe(comparableIdentity("ops team"));
  });
});

describe("confusableSkeleton", () => {
  it("is the UTS #39 skeleton: equal for strings that look alike", () => {
    expect(confusableSkeleton("\u0440\u0430\u0443\u0440\u0430l")).toBe(
      confusableSkeleton("paypal"),
    );
    expect(confusableSkeleton("paypal")).not.toBe(confusableSkeleton("paypa1x"));
  });
});

describe("foldForMatching", () => {
  it("finds a keyword however it is disguised", () => {
    const keyword = foldForMatching("drop table");
    for (const text of [
      "please DROP TABLE users",
      "ＤＲＯＰ ＴＡＢＬＥ", // full-width
      "dr\u200bop ta\u00adble", // zero-width space, soft hyphen
      "dr\u043ep t\u0430ble", // Cyrillic о and а
    ]) {
      expect(foldForMatching(text).includes(keyword), JSON.stringify(text)).toBe(true);
    }
    expect(foldForMatching("drop the table").includes(keyword)).toBe(false);
  });

  it("strips only ignorables from plain text", () => {
    expect(stripIgnorables("a\u00adb\u200bc")).toBe("abc");
    expect(stripIgnorables("plain")).toBe("plain");
  });
});
