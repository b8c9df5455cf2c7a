/**
 * The promise a governed `create` returns: lazy like the client's own `APIPromise` (the
 * response is read when it is awaited), with the helpers the client's own methods use
 * (`withResponse`, `asResponse`, and `_thenUnwrap`, which `.parse()` calls).
 */

/** What a client's `APIPromise` offers beyond a promise. */
export interface ApiPromiseLike<T> extends PromiseLike<T> {
  asResponse(): Promise<Response>;
  withResponse?(): Promise<{ data: T; response: Response; request_id?: string | null }>;
}

/** How a {@link GovernedPromise} reads its value and its raw response. */
export interface GovernedSource<T> {
  /** The governed value (usage settled, tool calls checked). */
  value(): Promise<T>;
  /**
   * The raw response. `valueRead` is false when the host asked for the response alone
   * (`asResponse()`): the adapter then settles the call from a copy of the body.
   */
  response(valueRead: boolean): Promise<Response>;
}

export class GovernedPromise<T> extends Promise<T> {
  #source: GovernedSource<T>;
  #value: Promise<T> | null = null;

  constructor(source: GovernedSource<T>) {
    super((resolve) => {
      resolve(null as T);
    });
    this.#source = source;
  }

  // `then` of a subclass creates plain promises, as the client's APIPromise does.
  static override get [Symbol.species]() {
    return Promise;
  }

  #read(): Promise<T> {
    this.#value ??= this.#source.value();
    return this.#value;
  }

  // biome-ignore lint/suspicious/noThenProperty: a lazy promise, like the client's own APIPromise
  override then<R1 = T, R2 = never>(
    onfulfilled?: ((value: T) => R1 | PromiseLike<R1>) | null,
    onrejected?: ((reason: unknown) => R2 | PromiseLike<R2>) | null,
  ): Promise<R1 | R2> {
    return this.#read().then(onfulfilled, onrejected);
  }

  override catch<R = never>(
    onrejected?: ((reason: unknown) => R | PromiseLike<R>) | null,
  ): Promise<T | R> {
    return this.#read().catch(onrejected);
  }

  override finally(onfinally?: (() => void) | null): Promise<T> {
    return this.#read().finally(onfinally);
  }

  /** The raw `Response`; the body is not read for the host (usage is read from a copy). */
  asResponse(): Promise<Response> {
    return this.#source.response(this.#value !== null);
  }

  /** The governed value with the raw `Response` and the request id. */
  async withResponse(): Promise<{ data: T; response: Response; request_id: string | null }> {
    const data = this.#read();
    const [value, response] = await Promise.all([data, this.#source.response(true)]);
    return { data: value, response, request_id: response.headers.get("x-request-id") };
  }

  /** Used by the client's own helpers (`.parse()`): map the governed value. */
  _thenUnwrap<U>(transform: (data: T, props?: unknown) => U): GovernedPromise<U> {
    return new GovernedPromise<U>({
      value: () =>
        this.#read().then((data) => {
          const out = transform(data, undefined);
          const requestId = (data as { _request_id?: unknown } | null)?._request_id;
          if (requestId !== undefined && typeof out === "object" && out !== null)
            Object.defineProperty(out, "_request_id", {
              value: requestId,
              enumerable: false,
              configurable: true,
            });
          return out;
        }),
      response: (valueRead) => this.#source.response(valueRead || this.#value !== null),
    });
  }
}
