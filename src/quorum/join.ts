/**
 * The order of joins and of the writes held while a child joins (see Quorum.addChild).
 *
 * Joins run one at a time, and a write issued while one runs or waits is held until every join
 * asked for before the write has ended. Held writes are released synchronously, in the order they
 * were issued, straight into the range lock, and the next join starts only after the writes issued
 * before it was asked for: so no write ever queues in the lock behind a join it was issued before
 * (its `sync` may make a voting read that would wait for that write), and no write overtakes an
 * earlier one, whatever microtasks an abort listener or an await adds.
 */
import { abortCode } from '../abort-code.js';
import { BlockError, type BlockErrorDetails } from '../errors.js';

type Entry = { readonly join: true; readonly start: () => void } | { readonly join: false; readonly release: () => void };

/** One quorum's queue of joins and held writes. */
export class JoinQueue {
  #running = false;
  readonly #queue: Entry[] = [];

  /** True while a join runs (writes issued now must be held). */
  get busy(): boolean {
    return this.#running;
  }

  /**
   * Resolves when this join's turn comes; the caller must call {@link leave} once it ends. An
   * abort before then fails it (ECANCELED, or ETIMEDOUT for a timeout) and it never runs.
   */
  enter(signal: AbortSignal | undefined, details: BlockErrorDetails): Promise<void> {
    if (signal?.aborted === true) return Promise.reject(cancelled(signal, details, 'waiting for an earlier join'));
    if (!this.#running) {
      this.#running = true;
      return Promise.resolve();
    }
    return this.#enqueue(true, signal, details, 'waiting for an earlier join', (resolve) => resolve());
  }

  /** The running join ended: release the writes held before the next join, then start it. */
  leave(): void {
    for (let next = this.#queue.shift(); next !== undefined; next = this.#queue.shift()) {
      if (next.join) return next.start();
      next.release();
    }
    this.#running = false;
  }

  /**
   * Holds a write until its turn, then calls `send` synchronously. An abort while held fails it
   * (ECANCELED, or ETIMEDOUT for a timeout) before anything is sent.
   */
  hold(send: () => Promise<void>, signal: AbortSignal | undefined, details: BlockErrorDetails): Promise<void> {
    if (signal?.aborted === true) return Promise.reject(cancelled(signal, details, 'waiting for a child to join'));
    return this.#enqueue(false, signal, details, 'waiting for a child to join', (resolve, reject) => {
      let sent: Promise<void>;
      try {
        sent = send();
      } catch (err) {
        sent = Promise.reject(err);
      }
      sent.then(resolve, reject);
    });
  }

  /**
   * Queues a join or a held write; `run` is called synchronously at its turn. An abort while it
   * waits takes it out of the queue and rejects it.
   */
  #enqueue(
    join: boolean,
    signal: AbortSignal | undefined,
    details: BlockErrorDetails,
    what: string,
    run: (resolve: () => void, reject: (err: unknown) => void) => void,
  ): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const go = (): void => {
        signal?.removeEventListener('abort', onAbort);
        run(resolve, reject);
      };
      const entry: Entry = join ? { join: true, start: go } : { join: false, release: go };
      const onAbort = (): void => {
        const at = this.#queue.indexOf(entry);
        if (at < 0) return;
        this.#queue.splice(at, 1);
        reject(cancelled(signal as AbortSignal, details, what));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#queue.push(entry);
    });
  }
}

function cancelled(signal: AbortSignal, details: BlockErrorDetails, what: string): BlockError {
  return new BlockError(abortCode(signal), `${details.driver ?? 'quorum'}: ${details.op ?? 'request'} aborted while ${what}`, { cause: signal.reason, details });
}
