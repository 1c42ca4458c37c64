/**
 * A timer that a request's AbortSignal can cut short.
 */
import { abortCode } from '../abort-code.js';
import { BlockError, type BlockErrorDetails } from '../errors.js';
import { MAX_TIMER_MS } from '../timer-limit.js';

export { MAX_TIMER_MS };

/**
 * The error for a request aborted while a filter held it back: ETIMEDOUT when the signal gave up
 * on a deadline (`AbortSignal.timeout()` aborts with a TimeoutError), ECANCELED otherwise.
 */
export function abortedError(signal: AbortSignal, details: BlockErrorDetails): BlockError {
  const { driver, op, offset, length } = details;
  const code = abortCode(signal);
  const what = code === 'ETIMEDOUT' ? 'timed out' : 'aborted';
  return new BlockError(code, `${String(driver)}: ${String(op)} ${String(offset)}+${String(length)} ${what} while held back`, {
    cause: signal.reason,
    details,
  });
}

/**
 * Resolves after `ms` milliseconds, or rejects (see {@link abortedError}) as soon as `signal` aborts.
 * Uses the global timers so that test fake timers control it.
 */
export function abortableSleep(ms: number, signal: AbortSignal | undefined, details: BlockErrorDetails): Promise<void> {
  if (signal?.aborted) return Promise.reject(abortedError(signal, details));
  return new Promise<void>((resolve, reject) => {
    let left = ms;
    let timer: ReturnType<typeof setTimeout>;
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(abortedError(signal as AbortSignal, details));
    };
    // Node fires a timer longer than MAX_TIMER_MS after 1 ms: longer sleeps are taken in pieces.
    const arm = (): void => {
      const step = Math.min(left, MAX_TIMER_MS);
      left -= step;
      timer = setTimeout(() => {
        if (left > 0) return arm();
        signal?.removeEventListener('abort', onAbort);
        resolve();
      }, step);
    };
    arm();
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
