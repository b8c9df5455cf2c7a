import type {
  AuditSink,
  Clock,
  HaltGuard,
  Keyring,
  Logger,
  OperatorDirectory,
  Store,
} from "@gov/core";
import type { ResolvedGatesOptions } from "./models";

/**
 * What the parts of a gates module share: its context (with the no-op ports filled in), its
 * validated options, and whether it is closed. Internal: made by `GatesModule`.
 */
export interface GatesRuntime {
  readonly store: Store;
  readonly keyring: Keyring;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly audit: AuditSink;
  readonly halt: HaltGuard;
  readonly operators: OperatorDirectory;
  readonly options: ResolvedGatesOptions;
  /** True once `close()` was called. */
  readonly closed: boolean;
}
