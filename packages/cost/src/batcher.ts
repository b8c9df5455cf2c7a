/**
 * Group commit for the hot path: calls that arrive while a batch is in flight are sent
 * together in the next one, so that one round trip (and one commit) serves many calls. A call
 * that finds nothing in flight is sent at once, alone: batching never adds latency.
 */
export class Batcher<Item, Result> {
  readonly #run: (items: Item[]) => Promise<Result[]>;
  readonly #maxBatch: number;
  readonly #maxInFlight: number;
  #queue: { item: Item; resolve: (result: Result) => void; reject: (error: unknown) => void }[] =
    [];
  #inFlight = 0;

  /**
   * @param run Sends a batch; resolves with one result per item, in order. When it throws,
   *   every item of the batch rejects with that error.
   */
  constructor(
    run: (items: Item[]) => Promise<Result[]>,
    options: { maxBatch: number; maxInFlight: number },
  ) {
    this.#run = run;
    this.#maxBatch = options.maxBatch;
    this.#maxInFlight = options.maxInFlight;
  }

  /** Items waiting or in flight. */
  get pending(): number {
    return this.#queue.length + this.#inFlight;
  }

  submit(item: Item): Promise<Result> {
    return new Promise<Result>((resolve, reject) => {
      this.#queue.push({ item, resolve, reject });
      this.#pump();
    });
  }

  #pump(): void {
    while (this.#inFlight < this.#maxInFlight && this.#queue.length > 0) {
      const batch = this.#queue.splice(0, this.#maxBatch);
      this.#inFlight++;
      this.#run(batch.map((entry) => entry.item))
        .then(
          (results) => {
            batch.forEach((entry, index) => {
              if (index < results.length) entry.resolve(results[index] as Result);
              else entry.reject(new Error("A batch returned fewer results than it was given."));
            });
          },
          (error: unknown) => {
            for (const entry of batch) entry.reject(error);
          },
        )
        .finally(() => {
          this.#inFlight--;
          this.#pump();
        });
    }
  }
}
