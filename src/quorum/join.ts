/** Waiting for a child to join a quorum (see Quorum.addChild). */
import { abortCode } from '../abort-code.js';
import { BlockError, type BlockErrorDetails } from '../errors.js';

/** Waits for a join to finish; an abort meanwhile fails with ECANCELED before anything is sent. */
export function untilJoined(joining: Promise<void>, signal: AbortSignal | undefined, details: BlockErrorDetails): Promise<void> {
  if (signal === undefined) return joining;
  const cancelled = (): BlockError =>
    new BlockError(abortCode(signal), `${details.driver ?? 'quorum'}: ${details.op ?? 'request'} aborted while waiting for a child to join`, {
      cause: signal.reason,
      details,
    });
  if (signal.aborted) return Promise.reject(cancelled());
  return new Promise<void>((resolve, reject) => {
    const onAbort = (): void => reject(cancelled());
    signal.addEventListener('abort', onAbort, { once: true });
    void joining.then(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    });
  });
}
