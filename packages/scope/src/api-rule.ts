/**
 * API allow-list entries: `"METHOD URL"`, matched exactly, or by a trailing `*` as a prefix
 * that never leaves its scheme, host and port and only ends on a path-segment boundary.
 *
 * Clients parse URLs differently (curl and Python read `https://a.com\@b.io/` as host
 * `b.io`, the WHATWG parser as host `a.com`), so a request is only ever matched when its
 * text is already canonical: exactly `METHOD scheme://host[:port]/path[?query]`, printable
 * ASCII, equal to its own WHATWG serialization (host lower-case, no default port, no `.` or
 * `..` segments, no `\`), with no `@`, no `%25`, no `%2e`, no `..;` segment and no
 * invalid or overlong UTF-8 percent-encoding. Anything else is refused, never normalized.
 * Entries must spell their path canonically too: `/v1/../*` is refused, not widened.
 */

/** An HTTP method token: letters only, upper-cased before comparison. */
const METHOD = /^[A-Za-z]{1,16}$/;
/** A prefix entry must spell its path: `https://host/…*`, not `https://host*`. */
const EXPLICIT_PATH = /^[a-z][a-z0-9+.-]*:\/\/[^/?#\\]+\//i;
/** Percent-encoded `/` or `\`: a server may decode them into segment separators. */
const ENCODED_SEPARATOR = /%2f|%5c/i;
/** Anything but printable ASCII without space: whitespace, controls, non-ASCII. */
const NOT_PRINTABLE_ASCII = /[^\x21-\x7e]/;
/** An encoded `.` (servers decode it into dot segments) or `%`(double encoding). */
const ENCODED_DOT_OR_PERCENT = /%2e|%25/i;
/** A `.` or `..` segment with parameters (`..;/`), which Tomcat and others read as `..`. */
const DOT_SEGMENT_WITH_PARAMS = /(?:^|\/)\.{1,2};/;

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

/**
 * What WHATWG leaves in a path or query that other servers read differently: encoded dots
 * or `%`, `..;` segments, and percent-encodings that are not valid UTF-8 (`%C0%AE`, an
 * overlong `.`). Null when there is none.
 */
function encodingProblem(pathAndQuery: string): string | null {
  if (ENCODED_DOT_OR_PERCENT.test(pathAndQuery))
    return "has a percent-encoded . or % (%2e, %25), which servers may decode into .. or decode twice.";
  const query = pathAndQuery.indexOf("?");
  const path = query < 0 ? pathAndQuery : pathAndQuery.slice(0, query);
  if (DOT_SEGMENT_WITH_PARAMS.test(path))
    return 'has a "." or ".." segment with parameters ("..;"), which some servers read as "..".';
  if (pathAndQuery.includes("%")) {
    try {
      decodeURIComponent(pathAndQuery);
    } catch {
      return "has a percent-encoding that is not valid UTF-8 (e.g. an overlong %C0%AE).";
    }
  }
  return null;
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
  const canonicalFix =
    'Write the path as a client sends it: plain "/" separators, no "." or ".." segments, no encoded dots, e.g. "GET https://api.x.com/v1/*".';
  if (urlText.includes("\\") || urlText.includes("@")) {
    return {
      problem: 'has a "\\" or "@" in its URL, which clients read differently.',
      fix: canonicalFix,
    };
  }
  const authority = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i.exec(urlText);
  const rest = authority ? urlText.slice(authority[0].length) : null;
  const question = rest === null ? -1 : rest.indexOf("?");
  const rawPath = rest === null ? null : question < 0 ? rest : rest.slice(0, question);
  const rawSearch = rest === null || question < 0 ? "" : rest.slice(question);
  if (
    rawPath === null ||
    (rawPath === "" ? "/" : rawPath) !== url.pathname ||
    rawSearch !== url.search ||
    NOT_PRINTABLE_ASCII.test(rest ?? "")
  ) {
    return {
      problem: `has a path that is not in canonical form (it normalizes to ${JSON.stringify(url.pathname + url.search)}); "." and ".." segments would silently widen the entry.`,
      fix: canonicalFix,
    };
  }
  const encoding = encodingProblem(`${url.pathname}${url.search}`);
  if (encoding !== null) return { problem: encoding, fix: canonicalFix };
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

/**
 * Parse an API call to check (`"METHOD URL"`), or say what is wrong with it. The text must
 * already be canonical (see the module comment); problems never quote the input, which may
 * carry credentials.
 */
export function parseApiRequest(text: string): ApiRequest | ApiParseProblem {
  const fix =
    'Send the call as "METHOD scheme://host[:port]/path[?query]" in canonical form (lower-case host, no default port, no "." or ".." segments, no "\\" or "@", ASCII only), e.g. { api: "GET https://api.stripe.com/v1/invoices" }.';
  const space = text.indexOf(" ");
  if (space < 0) return { problem: 'must be "METHOD URL" separated by one space.', fix };
  const method = text.slice(0, space);
  const rawUrl = text.slice(space + 1);
  if (!METHOD.test(method)) return { problem: "does not start with an HTTP method.", fix };
  if (NOT_PRINTABLE_ASCII.test(rawUrl))
    return { problem: "has whitespace, control or non-ASCII characters in its URL.", fix };
  if (rawUrl.includes("\\") || rawUrl.includes("@"))
    return { problem: 'has a "\\" or "@" in its URL, which clients read differently.', fix };
  const url = parseUrl(rawUrl);
  if (!url || !isHttp(url)) return { problem: "is not an absolute http(s) URL.", fix };
  const path = url.pathname;
  const search = url.search;
  if (`${url.origin}${path}${search}` !== rawUrl)
    return {
      problem:
        "is not in canonical form: it differs from what the URL parser reads (host case, default port, dot segments, fragment or separators).",
      fix,
    };
  const encoding = encodingProblem(`${path}${search}`);
  if (encoding !== null) return { problem: encoding, fix };
  return { method: method.toUpperCase(), origin: url.origin, path, search, hasCredentials: false };
}

/** Characters of the URL kept in a redacted call before it is cut. */
const REDACTED_MAX = 512;
/** Characters of a query parameter name kept in a redacted call. */
const REDACTED_NAME_MAX = 64;

function cut(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

function escapeChar(char: string): string {
  try {
    return encodeURIComponent(char);
  } catch {
    return "%EF%BF%BD"; // a lone surrogate: U+FFFD
  }
}

/**
 * An API call as it may be written to the audit chain and into errors: `METHOD URL` with
 * any user name and password removed (everything up to the last `@` before the query, so
 * that no parser's reading of it survives), query values replaced by `REDACTED` (names
 * kept), the #fragment dropped, controls and non-ASCII percent-encoded, and cut at 512
 * characters. Works on any text, canonical or not.
 */
export function redactApi(text: string): string {
  const trimmed = text.trim();
  const space = trimmed.search(/\s/);
  let method = "";
  let url = trimmed;
  if (space > 0 && METHOD.test(trimmed.slice(0, space))) {
    method = `${trimmed.slice(0, space).toUpperCase()} `;
    url = trimmed.slice(space).trim();
  }
  const hash = url.indexOf("#");
  if (hash >= 0) url = url.slice(0, hash);
  const question = url.indexOf("?");
  let base = question < 0 ? url : url.slice(0, question);
  const query = question < 0 ? null : url.slice(question + 1);
  const at = base.lastIndexOf("@");
  if (at >= 0) {
    const scheme = /^[a-z][a-z0-9+.-]*:[/\\]*/i.exec(base);
    base = `${scheme ? scheme[0] : ""}REDACTED@${base.slice(at + 1)}`;
  }
  let out = base;
  if (query !== null) {
    const params = query
      .split(/[&;]/)
      .filter((part) => part !== "")
      .map((part) => {
        const equals = part.indexOf("=");
        return equals < 0
          ? cut(part, REDACTED_NAME_MAX)
          : `${cut(part.slice(0, equals), REDACTED_NAME_MAX)}=REDACTED`;
      });
    out += `?${params.join("&")}`;
  }
  // biome-ignore lint/suspicious/noControlCharactersInRegex: escaping them is the point
  out = out.replace(/[\u0000-\u0020\u007f-\u{10ffff}]/gu, escapeChar);
  return `${method}${cut(out, REDACTED_MAX)}`;
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
