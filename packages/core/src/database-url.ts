import { isAbsolute, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** The embedded database's home when no database URL is given. */
export const DEFAULT_EMBEDDED_DIRECTORY = ".governance";

/** Where the store's data lives, as parsed from a database URL. */
export type DatabaseTarget =
  | {
      engine: "postgres";
      /** The connection string; never log it, use {@link DatabaseTarget.description}. */
      connectionString: string;
      /** `Postgres at host:port/database`, safe for logs and errors. */
      description: string;
    }
  | {
      engine: "pglite";
      /** Absolute path of the governance home directory, or `null` for `memory://`. */
      directory: string | null;
      description: string;
      /** True when no URL was given and the default directory was chosen. */
      isDefault: boolean;
    };

/**
 * Parse a database URL into a {@link DatabaseTarget}.
 *
 * - `postgres://…` or `postgresql://…`: a real Postgres.
 * - `memory://`: an embedded PGlite that lives in memory and is gone on close.
 * - `file:./path`, `file:///abs/path`, or a plain path (`./data/gov`, `/var/lib/gov`):
 *   an embedded PGlite whose home is that directory.
 * - `undefined` or empty: an embedded PGlite in `./.governance/` (relative to `cwd`).
 *
 * Returns `undefined` for anything else; the caller reports the error (without echoing
 * the value, which may hold a password).
 */
export function parseDatabaseUrl(
  url: string | undefined,
  cwd: string = process.cwd(),
): DatabaseTarget | undefined {
  const value = url?.trim();
  if (!value) {
    const directory = resolve(cwd, DEFAULT_EMBEDDED_DIRECTORY);
    return {
      engine: "pglite",
      directory,
      description: `embedded PGlite in ${directory}`,
      isDefault: true,
    };
  }
  if (/^postgres(?:ql)?:\/\//i.test(value)) {
    let parsed: URL;
    try {
      parsed = new URL(value);
    } catch {
      return undefined;
    }
    if (!parsed.hostname && !parsed.searchParams.get("host")) return undefined;
    return { engine: "postgres", connectionString: value, description: describePostgres(parsed) };
  }
  if (/^memory:\/\/\/?$/i.test(value)) {
    return {
      engine: "pglite",
      directory: null,
      description: "embedded PGlite in memory",
      isDefault: false,
    };
  }
  let path: string | undefined;
  if (/^file:/i.test(value)) {
    try {
      path = value.startsWith("file://") ? fileURLToPath(value) : value.slice("file:".length);
    } catch {
      return undefined;
    }
  } else if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) {
    path = value;
  }
  if (!path) return undefined;
  const directory = isAbsolute(path) ? path : resolve(cwd, path);
  return {
    engine: "pglite",
    directory,
    description: `embedded PGlite in ${directory}`,
    isDefault: false,
  };
}

function describePostgres(url: URL): string {
  const host = url.hostname || url.searchParams.get("host") || "localhost";
  const port = url.port || "5432";
  const database = decodeURIComponent(url.pathname.replace(/^\//, "")) || "(default database)";
  return `Postgres at ${host}:${port}/${database}`;
}

/**
 * Remove credentials from any connection strings inside `text`: the user and password of
 * `scheme://user:password@host` and `password=` parameters. Used on every message the store
 * produces, so that a driver that echoes its configuration cannot leak it.
 */
export function redactConnectionStrings(text: string): string {
  return (
    text
      // Greedy up to the last "@" of the authority: a password may hold an unencoded "@".
      .replace(/\b([a-z][a-z0-9+.-]*:\/\/)[^\s/?#]*@/gi, "$1***@")
      .replace(/\b(password|passwd|pwd|sslpassword)=([^\s&;]+)/gi, "$1=***")
  );
}
