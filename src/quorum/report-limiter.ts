/**
 * The optional rate limit of quorum events, after QEMU's monitor event throttling: within one
 * interval per key, the first event goes out at once; later ones are held, each replacing the one
 * held before it, and the latest is delivered when the interval ends (which starts a new interval).
 * So a burst costs at most one event per interval, and the last word is never lost.
 */
import { performance } from 'node:perf_hooks';

/** Emits one held event, told how many events were dropped in its favour. */
export type Delivery = (suppressed: number) => void;

interface Interval {
  readonly start: number;
  readonly timer: ReturnType<typeof setTimeout>;
  /** The latest event held back, if any. */
  held: Delivery | undefined;
  /** Events replaced while held (never delivered). */
  dropped: number;
}

/** Per-key rate limit of deliveries; an interval of 0 delivers everything at once. */
export class ReportLimiter {
  readonly #intervalMs: number;
  readonly #intervals = new Map<string, Interval>();

  constructor(intervalMs: number) {
    this.#intervalMs = intervalMs;
  }

  /** Delivers now, or holds `deliver` until the key's interval ends. */
  submit(key: string, deliver: Delivery): void {
    if (this.#intervalMs <= 0) {
      deliver(0);
      return;
    }
    const now = performance.now();
    let interval = this.#intervals.get(key);
    // A busy event loop can run the timer late: an interval that is over is over.
    if (interval !== undefined && now - interval.start >= this.#intervalMs) {
      this.#end(key, interval);
      interval = this.#intervals.get(key);
    }
    if (interval === undefined) {
      this.#begin(key, now);
      deliver(0);
      return;
    }
    if (interval.held !== undefined) interval.dropped++;
    interval.held = deliver;
  }

  /** Delivers what is held for `key` now and forgets the key (a removed child). */
  forget(key: string): void {
    const interval = this.#intervals.get(key);
    if (interval === undefined) return;
    clearTimeout(interval.timer);
    this.#intervals.delete(key);
    interval.held?.(interval.dropped);
  }

  /** Delivers everything held now and stops every timer (the quorum closes). */
  close(): void {
    for (const key of [...this.#intervals.keys()]) this.forget(key);
  }

  #begin(key: string, now: number): void {
    const timer = setTimeout(() => {
      const current = this.#intervals.get(key);
      if (current !== undefined) this.#end(key, current);
    }, this.#intervalMs);
    // Held events must not keep a process alive on their own.
    timer.unref?.();
    this.#intervals.set(key, { start: now, timer, held: undefined, dropped: 0 });
  }

  #end(key: string, interval: Interval): void {
    clearTimeout(interval.timer);
    this.#intervals.delete(key);
    const { held, dropped } = interval;
    if (held === undefined) return;
    // Delivering starts a new interval, so the next burst is limited too.
    this.#begin(key, performance.now());
    held(dropped);
  }
}
