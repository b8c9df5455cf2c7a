/**
 * Test helpers for packages built on `@gov/core`: run one database suite on both engines,
 * each test on its own fresh database, without paying initdb or migrations per test.
 *
 * @example
 * ```ts
 * import { createTestStore, testEngines } from "@gov/core/testing";
 *
 * describe.each(testEngines())("audit on $name", (engine) => {
 *   let store: TestStore;
 *   beforeEach(async () => { store = await createTestStore(engine, { migrations: [auditMigrations] }); });
 *   afterEach(() => store.close());
 *   it.skipIf(!engine.available)("appends", async () => { … });
 * });
 * ```
 * @module
 */
export { ensurePgliteTemplate } from "../pglite-template";
export { eventually, rejectionOf, thrown } from "./assertions";
export {
  type BenchEngine,
  type ForEachBenchEngineOptions,
  forEachBenchEngine,
} from "./bench-engines";
export { type JsonLinesChild, spawnJsonLinesChild } from "./child-process";
export {
  type CreateTestStoreOptions,
  createBenchDatabase,
  createTestDatabase,
  createTestStore,
} from "./databases";
export { TEST_DATABASE_URL_ENV, type TestEngine, type TestStore, testEngines } from "./engines";
export {
  type AssertErrorClassesOptions,
  assertErrorClasses,
  type CheckedErrorClass,
} from "./error-classes";
export {
  flakyStore,
  type GatedStore,
  gatedStore,
  type RecordedLogLine,
  type RecordingAuditSinkOptions,
  recordingAuditSink,
  recordingHaltGuard,
  recordingLogger,
  unreachableStore,
} from "./fakes";
export { sweepStaleTestDatabases } from "./postgres-databases";
