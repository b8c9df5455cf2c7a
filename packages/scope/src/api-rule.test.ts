import { describe, expect, it } from "vitest";
import { type ApiRule, isProblem, matchesApi, parseApiRequest, parseApiRule } from "./api-rule";

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

describe("exact API entries", () => {
  it("match the same method, origin, path and query only", () => {
    const entry = "POST https://api.x.com/v1/charges";
    expect(allows(entry, "POST https://api.x.com/v1/charges")).toBe(true);
    expect(allows(entry, "post https://API.X.COM:443/v1/charges")).toBe(true);
    expect(allows(entry, "GET https://api.x.com/v1/charges")).toBe(false);
    expect(allows(entry, "POST https://api.x.com/v1/charges/ch_1")).toBe(false);
    expect(allows(entry, "POST https://api.x.com/v1/charges?expand=all")).toBe(false);
    expect(allows(entry, "POST http://api.x.com/v1/charges")).toBe(false);
    expect(allows(entry, "POST https://api.x.com:8443/v1/charges")).toBe(false);
    expect(allows(entry, "POST https://api.x.com/v1/CHARGES")).toBe(false);
  });

  it("read dot segments as the request a client would send", () => {
    expect(allows("GET https://api.x.com/v1/me", "GET https://api.x.com/v1/x/../me")).toBe(true);
    expect(allows("GET https://api.x.com/admin", "GET https://api.x.com/v1/%2e%2e/admin")).toBe(
      true,
    );
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
    expect(allows(entry, "GET https://api.x.com/v1/../admin")).toBe(false);
    expect(allows(entry, "GET https://api.x.com/v1/%2e%2e/admin")).toBe(false);
    expect(allows(entry, "GET https://api.x.com/v1\\..\\admin")).toBe(false);
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
    expect(allows(root, "GET https://api.x.com@evil.io/")).toBe(false);
    expect(allows(root, "GET https://api.x.com:443@evil.io/v1")).toBe(false);
    expect(allows(root, "GET https://user:secret@api.x.com/v1")).toBe(false);
    expect(allows(root, "GET https://api.x.com./v1")).toBe(false);
    expect(allows(root, "GET https://sub.api.x.com/v1")).toBe(false);
    expect(allows(root, "GET http://api.x.com/v1")).toBe(false);
    expect(allows(root, "GET https://api.x.com:8443/v1")).toBe(false);
    expect(allows(entry, "GET https://api.x.com.evil.io/v1/invoices")).toBe(false);
  });

  it("match the host as a client resolves it (case, IDNA, default port)", () => {
    const root = "GET https://api.x.com/*";
    expect(allows(root, "GET HTTPS://API.X.COM:443/v1")).toBe(true);
    expect(allows("GET https://bücher.example/*", "GET https://xn--bcher-kva.example/a")).toBe(
      true,
    );
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
