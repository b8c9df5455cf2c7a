/**
 * Group commit for the hot path: calls that arrive while a batch is in flight are sent
 * together in the next one, so that one round trip (and one commit) serves many calls. A call
 * that finds nothing in flight is sent at once, alone: batching never adds latency.
 */
/** The result of one item of a batch that failed on its own (its batch-mates did not). */
export class ItemFailure {
  constructor(readonly error: unknown) {}
}

export class Batcher<Item, Result> {
  readonly #run: (items: Item[]) => Promise<(Result | ItemFailure)[]>;
  readonly #maxBatch: number;
  readonly #maxInFlight: number;
  #queue: { item: Item; resolve: (result: Result) => void; reject: (error: unknown) => void }[] =
    [];
  #inFlight = 0;

  /**
   * @param run Sends a batch; resolves with one result per item, in order (an
   *   {@link ItemFailure} rejects that item alone). When it throws, every item of the batch
   *   rejects with that error.
   */
  constructor(
    run: (items: Item[]) => Promise<(Result | ItemFailure)[]>,
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
              const result = results[index];
              if (index >= results.length) {
                entry.reject(new Error("A batch returned fewer results than it was given."));
              } else if (result instanceof ItemFailure) entry.reject(result.error);
              else entry.resolve(result as Result);
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
