/**
 * A timer that a request's AbortSignal can cut short.
 */
import { BlockError, type BlockErrorDetails } from '../errors.js';

/**
 * The error for a request aborted while a filter held it back: ETIMEDOUT when the signal gave up
 * on a deadline (`AbortSignal.timeout()` aborts with a TimeoutError), ECANCELED otherwise.
 */
export function abortedError(signal: AbortSignal, details: BlockErrorDetails): BlockError {
  const { driver, op, offset, length } = details;
  const timedOut = (signal.reason as { name?: unknown } | undefined)?.name === 'TimeoutError';
  const what = timedOut ? 'timed out' : 'aborted';
  return new BlockError(timedOut ? 'ETIMEDOUT' : 'ECANCELED', `${String(driver)}: ${String(op)} ${String(offset)}+${String(length)} ${what} while held back`, {
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
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(abortedError(signal as AbortSignal, details));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
