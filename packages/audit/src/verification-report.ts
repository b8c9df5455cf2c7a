/**
 * What a verification reports: the report's shape, each failure's details, and the
 * diagnosis of rows signed by keys this process was not given.
 */
import { type ChainIntegrityDetails, displayKeyIds, unknownKeyAdvice } from "./errors";
import { AGENT_CHAIN_PREFIX } from "./models";
import { KEY_HISTORY_CHAIN } from "./rotation-record";

/** What a detailed verification found. */
export interface VerificationReport {
  /** Rows whose signature, links and key (held to the rotation history) check out. */
  verified: number;
  /**
   * Rows that are not part of an intact chain (or rows found missing), checkpoints and key
   * rotation records that do not verify.
   */
  failed: number;
  /** Rows signed by a key that is not in the keyring: neither proven nor disproven. */
  unverified: number;
  /** Chains looked at. */
  chains: number;
  /**
   * True when there was nothing to verify: no rows and no checkpoints matched (a session
   * that does not exist, a window past a chain's end, an empty database). `verified: 0`
   * with `empty: true` means "nothing was checked", never "intact".
   */
  empty: boolean;
  /**
   * Checkpoints believed on their HMAC alone: without an Ed25519 signature (written before
   * signing keys, or without one). Whoever holds the HMAC secret could have forged them;
   * `requireSignedCheckpoints` refuses them instead.
   */
  hmacOnlyCheckpoints: number;
  /**
   * Entries the witness gave (`verifyChain({ witness })`; 0 without one): for one chain,
   * that chain's entries and the damaged lines.
   */
  witnessEntries: number;
  /**
   * Witness lines that are not even JSON — torn by a crash or a full disk in the middle of an
   * append, or overwritten — skipped with a warning, not counted as failures: such a line
   * hides nothing that deleting it would not. A JSON entry that is not a validly signed
   * checkpoint is a failure.
   */
  damagedWitnessLines: number;
  /** The first failures (at most 100), in the order found. */
  failures: ChainIntegrityDetails[];
  /**
   * Ids of the keys that signed rows or checkpoints looked at but are not in the keyring
   * (sorted): their rows are `unverified` (or failed, verifying strictly).
   */
  unknownKeyIds: string[];
  /**
   * With {@link VerificationReport.unknownKeyIds}, the likelier cause beside tampering — a
   * changed or rotated audit secret — and how to give the process the old key
   * (`GOVERNANCE_CHAIN_KEY_<id>`); null otherwise.
   */
  likelyCause: string | null;
}

/** The `chain` of a damaged witness entry that names no chain (verifying every chain). */
export const WITNESS_CHAIN = "gov_audit.witness";

/** Most failures a report lists (all are counted). */
export const MAX_REPORTED_FAILURES = 100;

/** A report of nothing verified yet. */
export function emptyReport(): VerificationReport {
  return {
    verified: 0,
    failed: 0,
    unverified: 0,
    chains: 0,
    empty: true,
    hmacOnlyCheckpoints: 0,
    witnessEntries: 0,
    damagedWitnessLines: 0,
    failures: [],
    unknownKeyIds: [],
    likelyCause: null,
  };
}

/**
 * A failure's details with its chain: `sessionId` is the chain's name for a session's chain,
 * null for an agent's chain, the key history and the witness.
 */
export function failureDetails(
  chain: string,
  details: Omit<ChainIntegrityDetails, "chain" | "sessionId">,
): ChainIntegrityDetails {
  return {
    chain,
    sessionId:
      chain.startsWith(AGENT_CHAIN_PREFIX) || chain === KEY_HISTORY_CHAIN || chain === WITNESS_CHAIN
        ? null
        : chain,
    ...details,
  };
}

/**
 * The likelier cause beside tampering when rows or checkpoints are signed with keys this
 * process was not given (`unknownKeyIds`, sorted): a changed or rotated audit secret, and how
 * to give the process the old key. Null when there are none. Names key ids, never secrets.
 */
export function likelyCause(unknownKeyIds: readonly string[], currentKeyId: string): string | null {
  if (unknownKeyIds.length === 0) return null;
  return `Rows or checkpoints are signed with key${unknownKeyIds.length === 1 ? "" : "s"} ${displayKeyIds(unknownKeyIds)}, which this process was not given (it signs with ${currentKeyId}): the likelier cause is a changed or rotated audit secret, tampering the other. ${unknownKeyAdvice(unknownKeyIds)}`;
}
