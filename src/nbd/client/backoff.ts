/**
 * The reconnection schedule: the first attempt at once (most drops are a restart that is already
 * listening again), then exponentially growing waits up to a cap, so a server that stays down is
 * probed at a bounded rate for as long as the client is open.
 */
import { MAX_TIMER_MS } from '../../timer-limit.js';

/** Tunables of the reconnection schedule, in milliseconds. */
export interface BackoffOptions {
  /** Wait before the second attempt (default 50 ms, at least 1 ms). The first attempt is immediate. */
  readonly initialDelay?: number;
  /** Longest wait between attempts (default 2000 ms). */
  readonly maxDelay?: number;
}

/** Resolved schedule. */
export interface Backoff {
  readonly initialDelay: number;
  readonly maxDelay: number;
}

/** Validates and fills defaults. */
export function resolveBackoff(options: BackoffOptions = {}): Backoff {
  const initialDelay = options.initialDelay ?? 50;
  const maxDelay = options.maxDelay ?? Math.max(2000, initialDelay);
  // Below 1 ms the waits never grow (0 · 2^n), and a client would retry in a busy loop; above
  // MAX_TIMER_MS Node fires the timer at once, the same busy loop.
  if (!Number.isFinite(initialDelay) || initialDelay < 1 || initialDelay > MAX_TIMER_MS) {
    throw new RangeError(`initialDelay must be from 1 to ${MAX_TIMER_MS} ms, got ${initialDelay}`);
  }
  if (!Number.isFinite(maxDelay) || maxDelay < initialDelay || maxDelay > MAX_TIMER_MS) {
    throw new RangeError(`maxDelay must be from initialDelay to ${MAX_TIMER_MS} ms, got ${maxDelay}`);
  }
  return { initialDelay, maxDelay };
}

/** Wait in ms before attempt number `attempt` (1-based). */
export function backoffDelay(attempt: number, backoff: Backoff): number {
  if (attempt <= 1) return 0;
  // 2^(attempt-2) overflows to Infinity for large attempts, and min() then picks the cap.
  return Math.min(backoff.maxDelay, backoff.initialDelay * 2 ** (attempt - 2));
}
