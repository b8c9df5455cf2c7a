import { describe, expect, it } from "vitest";
import {
  codePointLabel,
  confusableSkeleton,
  containsLookAlike,
  findBlankCharacter,
  identityForms,
  matchingForms,
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

/** What ids are made of: the characters a look-alike imitates. */
const ID_CHARACTERS = [..."abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.@_"];

/**
 * Capitals whose Unicode prototype is a lower-case letter: caught in an id of their own case
 * only (see identityForms). Listed so that any other miss fails.
 */
const MIXED_CASE_GAPS = ["U+0184", "U+042C", "U+13C2", "U+13CF", "U+13E7"];

/** Every character Unicode lists as a look-alike of an id character, with what it imitates. */
function lookAlikesOfIdCharacters(): { character: string; imitated: string; name: string }[] {
  const bySkeleton = new Map(
    ID_CHARACTERS.map((character) => [confusableSkeleton(character), character]),
  );
  const found: { character: string; imitated: string; name: string }[] = [];
  for (let codePoint = 0x80; codePoint <= 0x3ffff; codePoint++) {
    if (codePoint >= 0xd800 && codePoint <= 0xdfff) continue;
    const character = String.fromCodePoint(codePoint);
    const imitated = bySkeleton.get(confusableSkeleton(character));
    // Blank and invisible characters are refused on input before any comparison.
    if (imitated === undefined || findBlankCharacter(character)) continue;
    found.push({ character, imitated, name: codePointLabel(character) });
  }
  return found;
}

describe("identityForms and sameIdentity", () => {
  it("folds the look-alikes that let an agent approve its own request", () => {
    const agent = "billing-agent";
    for (const lookAlike of [
      "Billing-Agent",
      "billing\u2010agent", // hyphen
      "billing\u2011agent", // non-breaking hyphen
      "billing\u2212agent", // minus sign
      "b\u0456lling-agent", // Cyrillic і
      "billing-\u0430gent", // Cyrillic а
      "\u0412ILLING-AGENT", // Cyrillic В
      "BILLING-\u0391GENT", // Greek Α
      "ｂｉｌｌｉｎｇ－ａｇｅｎｔ", // full-width
      "bil\u00adling-agent", // soft hyphen
      "billing-agent\u200b", // zero-width space
      "bi\u0307lling-agent", // combining dot
      " billing-agent\u2800", // Braille blank
    ]) {
      expect(sameIdentity(lookAlike, agent), JSON.stringify(lookAlike)).toBe(true);
    }
  });

  // Guards against: an id spelled with any character that Unicode lists as a look-alike of an
  // ASCII letter, digit or id punctuation passing as another identity — look-alike capitals
  // included, in lower-case and upper-case ids.
  it("makes every Unicode look-alike of an id character (UTS #39) the same identity as it", () => {
    const lookAlikes = lookAlikesOfIdCharacters();
    expect(lookAlikes.length).toBeGreaterThan(1_000);
    const missed: string[] = [];
    for (const { character, imitated, name } of lookAlikes) {
      if (!sameIdentity(`bill${character}ng`, `bill${imitated}ng`))
        missed.push(`${name} (${imitated})`);
      else if (
        !MIXED_CASE_GAPS.includes(name) &&
        (!sameIdentity(`BILL${character}NG`, `bill${imitated.toLowerCase()}ng`) ||
          !sameIdentity(`bill${character}ng`, `BILL${imitated.toUpperCase()}NG`))
      )
        missed.push(`${name} (${imitated}, across case)`);
    }
    expect(missed).toEqual([]);
  });

  it("keeps genuinely different identities apart", () => {
    const pairs: [string, string][] = [
      ["billing-agent", "billing-agent-2"],
      ["billing-agent", "billingagent"],
      ["billing-agent", "billing agent"],
      ["billing-agent", "billing.agent"],
      ["alice@company.com", "alice@company.org"],
      ["alice@company.com", "aline@company.com"],
      ["mail-bot", "mall-bot"],
      ["MAIL-BOT", "MALL-BOT"],
      ["john", "jonn"],
      ["bob", "rob"],
      ["ops", "dev"],
    ];
    for (const [a, b] of pairs) expect([a, b, sameIdentity(a, b)]).toEqual([a, b, false]);
  });

  // Guards against refusing a legitimate reviewer whose name differs from the agent's by a
  // mark that is a letter of its own script (kana voicing marks, Indic vowel signs).
  it("ignores marks on Latin, Greek and Cyrillic letters only", () => {
    expect(sameIdentity("bi\u0307lling", "billing")).toBe(true);
    expect(sameIdentity("\u0431\u0301ob", "\u0431ob")).toBe(true);
    expect(sameIdentity("ごとう", "ことう")).toBe(false);
    expect(sameIdentity("サトウ", "サドウ")).toBe(false);
    expect(sameIdentity("मेघा", "मघा")).toBe(false);
  });

  it("folds case fully, collapses white space, and takes forms computed once", () => {
    expect(sameIdentity("STRASSE", "straße")).toBe(true);
    expect(sameIdentity("ops   team", "ops team")).toBe(true);
    const forms = identityForms("billing-agent");
    expect(sameIdentity(forms, "Billing\u2010Agent")).toBe(true);
    expect(sameIdentity(forms, identityForms("billing-agent-2"))).toBe(false);
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

describe("matchingForms and containsLookAlike", () => {
  it("finds a keyword however it is disguised", () => {
    for (const text of [
      "please DROP TABLE users",
      "ＤＲＯＰ ＴＡＢＬＥ", // full-width
      "dr\u200bop ta\u00adble", // zero-width space, soft hyphen
      "dr\u043ep t\u0430ble", // Cyrillic о and а
      "DR\u041eP \u0422\u0410\u0412L\u0415", // Cyrillic capitals О, Т, А, В, Е
      "drop   table", // white space
      "dr\u00f6p table", // a combining diaeresis, composed
    ]) {
      expect(containsLookAlike(text, "drop table"), JSON.stringify(text)).toBe(true);
    }
    expect(containsLookAlike("drop the table", "drop table")).toBe(false);
    expect(containsLookAlike("anything", "")).toBe(false);
    const keyword = matchingForms("bomb");
    expect(containsLookAlike("a \u0392OMB threat", keyword)).toBe(true); // Greek Β
    expect(containsLookAlike("\u13AADMIN", "admin")).toBe(true); // Cherokee Ꭺ
  });

  // Guards against: a keyword evaded by any single Unicode look-alike of one of its letters.
  it("finds a keyword with any Unicode look-alike of a letter in it, in either case", () => {
    const missed: string[] = [];
    for (const { character, imitated, name } of lookAlikesOfIdCharacters()) {
      if (MIXED_CASE_GAPS.includes(name) || !/[a-z]/i.test(imitated)) continue;
      const keyword = `x${imitated.toLowerCase()}y`;
      if (!containsLookAlike(`say x${character}y now`, keyword))
        missed.push(`${name} (${imitated})`);
    }
    expect(missed).toEqual([]);
  });

  it("strips only ignorables from plain text", () => {
    expect(stripIgnorables("a\u00adb\u200bc")).toBe("abc");
    expect(stripIgnorables("plain")).toBe("plain");
  });
});
