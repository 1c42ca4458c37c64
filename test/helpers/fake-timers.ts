/**
 * The timers filter tests fake: all of them, setImmediate included, because close() drains without
 * one (see docs/conformance.md).
 */
export const FAKED_TIMERS: Array<'setTimeout' | 'clearTimeout' | 'setInterval' | 'clearInterval' | 'setImmediate' | 'clearImmediate' | 'Date' | 'performance'> = [
  'setTimeout',
  'clearTimeout',
  'setInterval',
  'clearInterval',
  'setImmediate',
  'clearImmediate',
  'Date',
  'performance',
];
