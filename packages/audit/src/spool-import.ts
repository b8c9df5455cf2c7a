import { basename } from "node:path";
import {
  GovernanceError,
  InvalidArgumentError,
  readSpoolFile,
  SpoolFileError,
  toStoreError,
} from "@gov/core";
import { AUDIT_ERROR_CODES } from "./errors";
import type { KeyHistory } from "./key-history";
import {
  boundedText,
  type ImportSpoolOptions,
  METHOD_OPTION_KEYS,
  refuseUnknownOptions,
  type SpoolImportResult,
} from "./options";
import { importedEntry } from "./spool";
import type { AuditState } from "./state";
import { systemEvent } from "./system-events";
import type { ChainWriter } from "./writer";

/**
 * Import a spool file that replay refused or left alone, once an operator vouched for it:
 * record the import in the chain (`audit.spool_imported`), then queue its events in this
 * process's spool (see {@link AuditModule.importSpool}).
 */
export async function importSpoolFile(
  state: AuditState,
  writer: ChainWriter,
  history: KeyHistory,
  path: string,
  options: ImportSpoolOptions,
): Promise<SpoolImportResult> {
  if (typeof path !== "string" || path.trim() === "") {
    throw new InvalidArgumentError(
      "path",
      "must be the path of a spool file.",
      "Pass the path of the file the spool set aside (the keptAs of its audit.spool_rejected event, in the spool directory).",
    );
  }
  refuseUnknownOptions(
    METHOD_OPTION_KEYS.importSpool,
    options,
    'Pass importSpool(path, { operatorId: "alice@example.com", reason: "where the file comes from" }).',
  );
  const operatorId = boundedText(options.operatorId, "operatorId", 256, "who vouches for it");
  const reason = boundedText(options.reason, "reason", 1_024, "where the file comes from");
  for (const field of ["acceptRetiredKey", "acceptUnsigned"] as const) {
    const value: unknown = options[field];
    if (value !== undefined && typeof value !== "boolean") {
      throw new InvalidArgumentError(
        field,
        `must be true or false, got ${value === null ? "null" : typeof value}.`,
        `Pass ${field}: true only for a file whose writer you know.`,
      );
    }
  }
  const { spool, keyring, logger } = state;
  if (!spool) {
    throw new GovernanceError({
      code: AUDIT_ERROR_CODES.AUDIT_NOT_CONFIGURED,
      message: "importSpool needs the audit spool, and it is turned off (spoolDirectory: null).",
      recoveryHint: "Import the file from a process whose audit spool is on (auditSpoolDirectory).",
    });
  }
  if (!history.known) {
    const error = await history.read();
    if (error !== null) throw toStoreError(error);
  }
  const file = await readSpoolFile<unknown>(path, {
    name: "audit",
    keyring,
    isRetiredKey: (keyId) => history.isRetired(keyId),
    acceptRetiredKey: options.acceptRetiredKey === true,
    acceptUnsigned: options.acceptUnsigned === true,
  });
  const name = basename(path);
  const entries = file.entries.map((raw, index) => importedEntry(raw, index + 1, name));
  if (entries.length === 0) {
    throw new SpoolFileError({
      file: name,
      line: null,
      reason: "it holds no events",
      fix: "Nothing to import; the file can be deleted.",
    });
  }
  // The chain says who vouched for which file, and why, before the events it brings.
  const record = await writer.enqueue(
    systemEvent("audit.spool_imported", {
      file: name,
      sha256: file.sha256,
      keyId: file.keyId,
      retiredKey: file.retiredKey,
      signed: file.signed,
      closed: file.closed,
      torn: file.torn,
      entries: entries.length,
      firstEventId: entries[0]?.eventId ?? null,
      lastEventId: entries.at(-1)?.eventId ?? null,
      operatorId,
      reason,
    }),
  );
  if (record.status === "placeholder") {
    throw new GovernanceError({
      code: AUDIT_ERROR_CODES.SPOOL_IMPORT_FAILED,
      message: `The import of ${name} could not be recorded (neither the database nor the spool took the audit.spool_imported event); nothing was imported.`,
      recoveryHint:
        "Check the spool directory and the database (metrics().lastError), then import again.",
    });
  }
  await spool.append(entries);
  writer.kick();
  logger.warn(
    `Imported ${entries.length} audit events from the spool file ${name} (${file.signed ? `signed with key ${file.keyId}${file.retiredKey ? ", retired" : ""}` : "unsigned"}), vouched for by ${operatorId}; they are written into the chain as the spool is replayed.`,
    { file: name, sha256: file.sha256, importEventId: record.eventId },
  );
  return {
    file: name,
    sha256: file.sha256,
    entries: entries.length,
    keyId: file.keyId,
    retiredKey: file.retiredKey,
    signed: file.signed,
    importEventId: record.eventId,
  };
}
