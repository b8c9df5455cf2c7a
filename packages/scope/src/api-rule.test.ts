import { describe, expect, it } from "vitest";
import {
  type ApiRule,
  isProblem,
  matchesApi,
  parseApiRequest,
  parseApiRule,
  redactApi,
} from "./api-rule";

function rule(source: string): ApiRule {
  const parsed = parseApiRule(source);
  if (isProblem(parsed)) throw new Error(`${source}: ${parsed.problem}`);
  return parsed;
}

function allows(entry: string, call: string): boolean {
  const request = parseApiRequest(call);
  if (isProblem(request)) throw new Error(`${call}: ${request.problem}`);
  return matchesApi(rule(entry), request);
}

/** True when the call is refused before any entry is looked at (never matched). */
function refused(call: string): boolean {
  return isProblem(parseApiRequest(call));
}

describe("exact API entries", () => {
  it("match the same method, origin, path and query only", () => {
    const entry = "POST https://api.x.com/v1/charges";
    expect(allows(entry, "POST https://api.x.com/v1/charges")).toBe(true);
    expect(allows(entry, "post https://api.x.com/v1/charges")).toBe(true);
    expect(allows(entry, "GET https://api.x.com/v1/charges")).toBe(false);
    expect(allows(entry, "POST https://api.x.com/v1/charges/ch_1")).toBe(false);
    expect(allows(entry, "POST https://api.x.com/v1/charges?expand=all")).toBe(false);
    expect(allows(entry, "POST http://api.x.com/v1/charges")).toBe(false);
    expect(allows(entry, "POST https://api.x.com:8443/v1/charges")).toBe(false);
    expect(allows(entry, "POST https://api.x.com/v1/CHARGES")).toBe(false);
  });

  it("refuse dot segments instead of resolving them", () => {
    expect(refused("GET https://api.x.com/v1/x/../me")).toBe(true);
    expect(refused("GET https://api.x.com/v1/%2e%2e/admin")).toBe(true);
  });

  it("compare the method case-insensitively (upper-cased)", () => {
    expect(allows("get https://api.x.com/v1/me", "GET https://api.x.com/v1/me")).toBe(true);
    expect(rule("patch https://api.x.com/v1/me").method).toBe("PATCH");
  });
});

describe("prefix API entries", () => {
  const entry = "GET https://api.x.com/v1/*";

  it("match every path below the prefix, with any query", () => {
    expect(allows(entry, "GET https://api.x.com/v1/invoices")).toBe(true);
    expect(allows(entry, "GET https://api.x.com/v1/invoices/in_1?expand=lines")).toBe(true);
    expect(allows(entry, "GET https://api.x.com/v1")).toBe(true);
    expect(allows(entry, "GET https://api.x.com/v1/")).toBe(true);
  });

  it("end on a path-segment boundary", () => {
    expect(allows(entry, "GET https://api.x.com/v10/invoices")).toBe(false);
    expect(allows(entry, "GET https://api.x.com/v1-admin")).toBe(false);
    expect(
      allows("GET https://api.x.com/v1/invoices*", "GET https://api.x.com/v1/invoices-all"),
    ).toBe(false);
    expect(
      allows("GET https://api.x.com/v1/invoices*", "GET https://api.x.com/v1/invoices/1"),
    ).toBe(true);
  });

  it("never leave the prefix through dot segments or encoded separators", () => {
    expect(refused("GET https://api.x.com/v1/../admin")).toBe(true);
    expect(refused("GET https://api.x.com/v1/%2e%2e/admin")).toBe(true);
    expect(refused("GET https://api.x.com/v1\\..\\admin")).toBe(true);
    expect(allows(entry, "GET https://api.x.com/v1/..%2Fadmin")).toBe(false);
    expect(allows(entry, "GET https://api.x.com/v1/..%5cadmin")).toBe(false);
  });

  // Regression guard: a string prefix would let these through to another host.
  it("never match another host", () => {
    const root = "GET https://api.x.com/*";
    expect(allows(root, "GET https://api.x.com/anything")).toBe(true);
    expect(allows(root, "GET https://api.x.com.evil.io/v1/invoices")).toBe(false);
    expect(allows(root, "GET https://api.evil.com/v1")).toBe(false);
    expect(allows(root, "GET https://evil.io/https://api.x.com/")).toBe(false);
    expect(refused("GET https://api.x.com@evil.io/")).toBe(true);
    expect(refused("GET https://api.x.com:443@evil.io/v1")).toBe(true);
    expect(refused("GET https://user:secret@api.x.com/v1")).toBe(true);
    expect(allows(root, "GET https://api.x.com./v1")).toBe(false);
    expect(allows(root, "GET https://sub.api.x.com/v1")).toBe(false);
    expect(allows(root, "GET http://api.x.com/v1")).toBe(false);
    expect(allows(root, "GET https://api.x.com:8443/v1")).toBe(false);
    expect(allows(entry, "GET https://api.x.com.evil.io/v1/invoices")).toBe(false);
  });

  it("match IDNA hosts in their canonical (ASCII) form only", () => {
    expect(refused("GET HTTPS://API.X.COM:443/v1")).toBe(true);
    expect(refused("GET https://bücher.example/a")).toBe(true);
    expect(allows("GET https://bücher.example/*", "GET https://xn--bcher-kva.example/a")).toBe(
      true,
    );
  });
});

describe("calls that are not already canonical are refused, never normalized", () => {
  const root = parseApiRule("GET https://api.x.com/*") as ApiRule;
  const v1 = parseApiRule("GET https://api.x.com/v1/*") as ApiRule;

  it.each([
    // Parser differentials on the host: curl and Python send these elsewhere.
    ["GET https://api.x.com\\@evil.io/"],
    ["GET https:api.x.com/v1"],
    ["GET https:\\\\api.x.com/v1"],
    ["GET https:/api.x.com/v1"],
    ["GET https://api\uff0ex\uff0ecom/v1"],
    ["GET https://api.x\u200b.com/v1"],
    ["GET https://API.x.com/v1"],
    ["GET https://api.x.com:443/v1"],
    ["GET https://api.x.com"],
    ["GET https://api.x.com/v1#frag"],
    ["GET https://api.x.com/v1?"],
    ["GET https://api.x.com/a b"],
    ["GET https://api.x.com/a\tb"],
    ["GET https://api.x.com/a\u0000b"],
    ["GET https://api.x.com/caf\u00e9"],
    ["GET https://api.x.com/users/@me"],
    [" GET https://api.x.com/v1"],
    ["GET  https://api.x.com/v1"],
    ["GET https://api.x.com/v1 "],
    // Path differentials: servers read these as a way out of /v1.
    ["GET https://api.x.com/v1/..;/admin"],
    ["GET https://api.x.com/v1/.;/admin"],
    ["GET https://api.x.com/v1/%252e%252e/admin"],
    ["GET https://api.x.com/v1/%2e%2e/admin"],
    ["GET https://api.x.com/v1/%2E./admin"],
    ["GET https://api.x.com/v1/a%2eb"],
    ["GET https://api.x.com/v1/%C0%AE%C0%AE/admin"],
    ["GET https://api.x.com/v1/%c1%9c"],
    ["GET https://api.x.com/v1/%E0%80%AE"],
    ["GET https://api.x.com/v1/%F0%80%80%AE"],
    ["GET https://api.x.com/v1/%ZZ"],
    ["GET https://api.x.com/v1/./admin"],
    ["GET https://api.x.com/v1?next=%2525"],
  ])("%j", (call) => {
    const parsed = parseApiRequest(call);
    expect(isProblem(parsed)).toBe(true);
    // The problem never quotes the call, which may carry secrets.
    if (isProblem(parsed)) expect(parsed.problem).not.toContain("evil");
  });

  it("still matches canonical calls", () => {
    const ok = parseApiRequest("GET https://api.x.com/v1/invoices/in_1?expand=lines&limit=10");
    expect(isProblem(ok)).toBe(false);
    if (!isProblem(ok)) {
      expect(matchesApi(v1, ok)).toBe(true);
      expect(matchesApi(root, ok)).toBe(true);
    }
    expect(allows("GET https://api.x.com:8443/*", "GET https://api.x.com:8443/v1")).toBe(true);
    expect(allows("GET https://[::1]/*", "GET https://[::1]/v1")).toBe(true);
    expect(allows("GET https://api.x.com/v1/*", "GET https://api.x.com/v1/a%20b")).toBe(true);
    expect(allows("GET https://api.x.com/v1/*", "get https://api.x.com/v1/%E2%82%AC")).toBe(true);
  });
});

describe("redactApi", () => {
  it.each([
    ["GET https://user:sk_live_123@api.x.com/v1/me", "GET https://REDACTED@api.x.com/v1/me"],
    ["GET https://sk_live_123\\@evil.io/", "GET https://REDACTED@evil.io/"],
    ["GET https://a:sk_live_123@b@evil.io/x?q=1", "GET https://REDACTED@evil.io/x?q=REDACTED"],
    [
      "get https://api.x.com/v1/me?api_key=sk_live_123&expand=all&flag",
      "GET https://api.x.com/v1/me?api_key=REDACTED&expand=REDACTED&flag",
    ],
    ["GET https://api.x.com/cb#access_token=sk_live_123", "GET https://api.x.com/cb"],
    ["https://u:sk_live_123@api.x.com/", "https://REDACTED@api.x.com/"],
    ["GET https://api.x.com/a\u0000b\u00e9", "GET https://api.x.com/a%00b%C3%A9"],
  ])("%j → %j", (call, redacted) => {
    expect(redactApi(call)).toBe(redacted);
    expect(redactApi(call)).not.toContain("sk_live_123");
  });

  it("cuts long calls", () => {
    const long = redactApi(`GET https://api.x.com/${"a".repeat(5_000)}`);
    expect(long.length).toBeLessThan(600);
    expect(long.endsWith("…")).toBe(true);
  });
});

describe("entries that are refused", () => {
  it.each([
    ["https://api.x.com/v1", "must be"],
    ["FETCH! https://api.x.com/v1", "not an HTTP method"],
    ["* https://api.x.com/v1", "not an HTTP method"],
    ["GET https://api.x.com/*/invoices", "not at the end"],
    ["GET https://*.x.com/v1", "not at the end"],
    ["GET https://api.x.com*", "host"],
    ["GET https://api.x.com/v1?x=*", "query"],
    ["GET /v1/invoices", "absolute http(s) URL"],
    ["GET ftp://files.x.com/a", "absolute http(s) URL"],
    ["GET https://user:pw@api.x.com/v1", "user name or password"],
    ["GET https://api.x.com/v1#top", "fragment"],
    ["GET https://api.x.com/v1%2Fadmin/*", "percent-encoded"],
    // Entries that a URL parser would silently widen or rewrite.
    ["GET https://api.x.com/v1/../*", "canonical"],
    ["GET https://api.x.com/v1/./*", "canonical"],
    ["GET https://api.x.com/v1/%2e%2e/*", "canonical"],
    ["GET https://api.x.com/v1/%2E%2E/*", "canonical"],
    ["GET https://api.x.com/v1/..;/*", "parameters"],
    ["GET https://api.x.com/v1/a%2eb/*", "percent-encoded ."],
    ["GET https://api.x.com/v1/%252e/*", "percent-encoded ."],
    ["GET https://api.x.com/v1/%C0%AE/*", "UTF-8"],
    ["GET https://api.x.com\\v1/*", '"\\" or "@"'],
    ["GET https://api.x.com/v1\\..\\*", '"\\" or "@"'],
    ["GET https://api.x.com/@me/*", '"\\" or "@"'],
    ["GET https://api.x.com/caf\u00e9/*", "canonical"],
    ["GET https://api.x.com/v1?a=b c", "canonical"],
  ])("%s", (source, problem) => {
    const parsed = parseApiRule(source);
    expect(isProblem(parsed)).toBe(true);
    if (isProblem(parsed)) {
      expect(parsed.problem).toContain(problem);
      expect(parsed.fix.length).toBeGreaterThan(10);
    }
  });

  it("refuses calls that are not METHOD URL", () => {
    expect(isProblem(parseApiRequest("https://api.x.com/v1"))).toBe(true);
    expect(isProblem(parseApiRequest("GET not a url"))).toBe(true);
    expect(isProblem(parseApiRequest("GET file:///etc/passwd"))).toBe(true);
  });
});
