import { describeBlockRuns } from "./docs-blocks";

// The runs of one group of READMEs' blocks (runGroups() of docs-blocks.ts): in a file of its
// own, so that vitest can run the groups side by side.
describeBlockRuns(2);
