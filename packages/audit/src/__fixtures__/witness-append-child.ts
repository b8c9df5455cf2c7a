/**
 * Run by witness.test.ts as one of several OS processes appending to one witness file: says
 * "ready", waits for a line on stdin (so that the processes append at the same time), then
 * appends <batches> batches of <lines> checkpoint-shaped lines (each batch well over the
 * 512 KiB that one write carries) and prints how many lines it appended.
 */
import { randomUUID } from "node:crypto";
import { createInterface } from "node:readline";
import { FileCheckpointWitness, type WitnessedCheckpoint } from "../witness";

const [path, batches, lines, worker] = process.argv.slice(2);
if (!path || !batches || !lines || !worker)
  throw new Error("usage: witness-append-child.ts <path> <batches> <lines> <worker>");
const witness = new FileCheckpointWitness(path);
const input = createInterface({ input: process.stdin });
process.stdout.write(`${JSON.stringify({ ready: true })}\n`);
for await (const _ of input) break;
let appended = 0;
for (let batch = 0; batch < Number(batches); batch++) {
  const checkpoints: WitnessedCheckpoint[] = Array.from({ length: Number(lines) }, (_, index) => ({
    v: 1,
    checkpointId: randomUUID(),
    chain: `worker-${worker}-${batch}-${index}`,
    seq: 1,
    hash: "a".repeat(64),
    createdAt: new Date().toISOString(),
    keyId: "0123456789abcdef",
    signingKeyId: "fedcba9876543210",
    payload: "x".repeat(300),
    hmac: "b".repeat(64),
    signature: "c".repeat(128),
  }));
  await witness.append(checkpoints);
  appended += checkpoints.length;
}
process.stdout.write(`${JSON.stringify({ appended })}\n`);
input.close();
