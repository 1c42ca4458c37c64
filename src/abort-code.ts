/**
 * The error code of a request its AbortSignal stopped, wherever in the graph that happens: the
 * contract says ECANCELED, and ETIMEDOUT when the signal gave up on a deadline
 * (`AbortSignal.timeout()` aborts with a TimeoutError).
 */
export function abortCode(signal: AbortSignal | undefined): 'ECANCELED' | 'ETIMEDOUT' {
  return (signal?.reason as { name?: unknown } | undefined)?.name === 'TimeoutError' ? 'ETIMEDOUT' : 'ECANCELED';
}
