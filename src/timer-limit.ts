/**
 * The longest delay Node's timers take as given (2^31 − 1 ms, about 24.8 days): a longer one (or
 * Infinity) fires after 1 ms. Options that arm a timer are checked against it; waits that may be
 * longer are taken in pieces.
 */
export const MAX_TIMER_MS = 2 ** 31 - 1;
