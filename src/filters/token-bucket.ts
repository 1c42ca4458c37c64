/**
 * A token bucket that may go into debt, the accounting behind Throttle.
 *
 * Tokens refill at `rate` per second up to `capacity` (the burst). A request costing `c` may
 * start once the bucket holds min(c, capacity) tokens; it then takes all `c`, possibly leaving
 * the bucket negative. So a request larger than the burst is never stuck forever, and the debt it
 * leaves makes later requests wait: over any interval the tokens spent never exceed
 * capacity + rate × elapsed + (the cost of one request).
 */

/** Slack for floating-point error in refills, in tokens. */
const EPSILON = 1e-6;

export class TokenBucket {
  #rate: number;
  #capacity: number;
  #tokens: number;
  #at: number;

  /** Starts full at time `now` (milliseconds). */
  constructor(rate: number, capacity: number, now: number) {
    this.#rate = rate;
    this.#capacity = capacity;
    this.#tokens = capacity;
    this.#at = now;
  }

  get rate(): number {
    return this.#rate;
  }
  get capacity(): number {
    return this.#capacity;
  }
  /** Tokens as of the last refill (negative while in debt). */
  get tokens(): number {
    return this.#tokens;
  }

  /** Adds the tokens earned since the last refill. */
  refill(now: number): void {
    if (now > this.#at) {
      this.#tokens = Math.min(this.#capacity, this.#tokens + ((now - this.#at) / 1000) * this.#rate);
      this.#at = now;
    }
  }

  /** A request of `cost` may start now (call `refill` first). */
  ready(cost: number): boolean {
    return this.#tokens + EPSILON >= Math.min(cost, this.#capacity);
  }

  /** Milliseconds until a request of `cost` may start (0 when ready). */
  waitMs(cost: number): number {
    const missing = Math.min(cost, this.#capacity) - this.#tokens;
    // `ready` allows EPSILON of slack, so waiting for missing - EPSILON suffices; multiplying
    // before dividing keeps 4001 tokens at 1000/s from rounding up to 4002 ms.
    return missing <= EPSILON ? 0 : Math.ceil(((missing - EPSILON) * 1000) / this.#rate);
  }

  take(cost: number): void {
    this.#tokens -= cost;
  }

  /** Changes rate and burst, keeping the tokens (and any debt) earned so far. */
  reconfigure(rate: number, capacity: number, now: number): void {
    this.refill(now);
    this.#rate = rate;
    this.#capacity = capacity;
    this.#tokens = Math.min(this.#tokens, capacity);
  }
}
