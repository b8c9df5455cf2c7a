/**
 * API allow-list entries: `"METHOD URL"`, matched exactly, or by a trailing `*` as a prefix
 * that never leaves its scheme, host and port and only ends on a path-segment boundary.
 * URLs are parsed with the WHATWG URL parser (the one `fetch` uses), so what is compared is
 * what a client would actually request: host lower-cased and IDNA-encoded, default port
 * dropped, `.` and `..` segments (also percent-encoded ones) resolved, `\` read as `/`.
 */

/** An HTTP method token: letters only, upper-cased before comparison. */
const METHOD = /^[A-Za-z]{1,16}$/;
/** A prefix entry must spell its path: `https://host/…*`, not `https://host*`. */
const EXPLICIT_PATH = /^[a-z][a-z0-9+.-]*:\/\/[^/?#\\]+\//i;
/** Percent-encoded `/` or `\`: a server may decode them into segment separators. */
const ENCODED_SEPARATOR = /%2f|%5c/i;

/** A parsed allow-list entry. */
export interface ApiRule {
  /** The entry as written in the policy. */
  readonly source: string;
  /** Upper-cased method. */
  readonly method: string;
  /** `protocol//host[:port]`, normalized by the URL parser. */
  readonly origin: string;
  /** True for a trailing-`*` entry. */
  readonly prefix: boolean;
  /**
   * Exact entries: the path and query (`/v1/invoices?x=1`). Prefix entries: the path base
   * without a trailing `/` (`/v1`; empty for the whole origin).
   */
  readonly target: string;
}

/** An API call to check, parsed. */
export interface ApiRequest {
  readonly method: string;
  readonly origin: string;
  /** The path, as the URL parser normalized it. */
  readonly path: string;
  /** The query, with its `?`, or empty. */
  readonly search: string;
  /** True when the URL carries a user name or password (never matched). */
  readonly hasCredentials: boolean;
}

/** Why an entry or a request could not be read. */
export interface ApiParseProblem {
  problem: string;
  fix: string;
}

function split(text: string): [string, string] | null {
  const trimmed = text.trim();
  const space = trimmed.search(/\s/);
  if (space < 0) return null;
  return [trimmed.slice(0, space), trimmed.slice(space).trim()];
}

function parseUrl(text: string): URL | null {
  try {
    return new URL(text);
  } catch {
    return null;
  }
}

function isHttp(url: URL): boolean {
  return url.protocol === "http:" || url.protocol === "https:";
}

/** Parse a policy entry, or say what is wrong with it. */
export function parseApiRule(source: string): ApiRule | ApiParseProblem {
  const parts = split(source);
  if (!parts) {
    return {
      problem: `must be "METHOD URL", got ${JSON.stringify(source)}.`,
      fix: 'Write the method, a space, and the URL, e.g. "GET https://api.stripe.com/v1/*".',
    };
  }
  const [method, rawUrl] = parts;
  if (!METHOD.test(method)) {
    return {
      problem: `has method ${JSON.stringify(method)}, which is not an HTTP method.`,
      fix: "Start the entry with one method such as GET, POST, PUT, PATCH or DELETE (one entry per method; no wildcards).",
    };
  }
  const star = rawUrl.indexOf("*");
  const prefix = star >= 0;
  if (prefix && star !== rawUrl.length - 1) {
    return {
      problem: `has a "*" that is not at the end (${JSON.stringify(rawUrl)}); there are no globs.`,
      fix: 'Use a trailing "*" only, after a path, e.g. "GET https://api.x.com/v1/*".',
    };
  }
  const urlText = prefix ? rawUrl.slice(0, -1) : rawUrl;
  const url = parseUrl(urlText);
  if (!url || !isHttp(url)) {
    return {
      problem: `has ${JSON.stringify(rawUrl)}, which is not an absolute http(s) URL.`,
      fix: 'Write the full URL with its scheme and host, e.g. "POST https://api.x.com/v1/charges".',
    };
  }
  if (url.username !== "" || url.password !== "") {
    return {
      problem: "has a user name or password in its URL.",
      fix: "Remove the credentials from the URL; the allow-list names hosts and paths only.",
    };
  }
  if (url.hash !== "" || urlText.includes("#")) {
    return {
      problem: "has a #fragment, which is never sent to a server.",
      fix: "Remove the #fragment from the entry.",
    };
  }
  if (prefix) {
    if (!EXPLICIT_PATH.test(urlText)) {
      return {
        problem: `puts "*" in the host (${JSON.stringify(rawUrl)}); a prefix never spans hosts.`,
        fix: 'End the host with "/" before the "*": "GET https://api.x.com/*" allows every path of api.x.com and nothing else.',
      };
    }
    if (url.search !== "" || urlText.includes("?")) {
      return {
        problem: "has a query before its trailing *.",
        fix: 'A prefix entry covers every query already: write "GET https://api.x.com/v1/*".',
      };
    }
    if (ENCODED_SEPARATOR.test(url.pathname)) {
      return {
        problem: "has a percent-encoded / or \\ in its path.",
        fix: "Write path separators as plain /.",
      };
    }
  }
  const path = url.pathname;
  return {
    source,
    method: method.toUpperCase(),
    origin: url.origin,
    prefix,
    target: prefix ? (path.endsWith("/") ? path.slice(0, -1) : path) : `${path}${url.search}`,
  };
}

/** Parse an API call to check (`"METHOD URL"`), or say what is wrong with it. */
export function parseApiRequest(text: string): ApiRequest | ApiParseProblem {
  const parts = split(text);
  const fix =
    'Pass the call as "METHOD URL" with an absolute http(s) URL, e.g. { api: "GET https://api.stripe.com/v1/invoices" }.';
  if (!parts) return { problem: `must be "METHOD URL", got ${JSON.stringify(text)}.`, fix };
  const [method, rawUrl] = parts;
  if (!METHOD.test(method)) {
    return { problem: `has method ${JSON.stringify(method)}, which is not an HTTP method.`, fix };
  }
  const url = parseUrl(rawUrl);
  if (!url || !isHttp(url)) {
    return { problem: `has ${JSON.stringify(rawUrl)}, which is not an absolute http(s) URL.`, fix };
  }
  return {
    method: method.toUpperCase(),
    origin: url.origin,
    path: url.pathname,
    search: url.search,
    hasCredentials: url.username !== "" || url.password !== "",
  };
}

/** True when `request` is covered by `rule`. */
export function matchesApi(rule: ApiRule, request: ApiRequest): boolean {
  if (request.hasCredentials) return false;
  if (rule.method !== request.method || rule.origin !== request.origin) return false;
  if (!rule.prefix) return `${request.path}${request.search}` === rule.target;
  // A server may decode %2F into "/" and walk out of the prefix: such paths never match.
  if (ENCODED_SEPARATOR.test(request.path)) return false;
  const base = rule.target;
  return (
    request.path === base ||
    (request.path.startsWith(base) && request.path.charCodeAt(base.length) === 0x2f) // "/"
  );
}

/** True when a parse result is a problem rather than a rule or request. */
export function isProblem(value: object): value is ApiParseProblem {
  return "problem" in value;
}
