/**
 * Checks shared by the option resolvers. A value of the wrong JavaScript type is a programming
 * mistake (TypeError): the string 'false' would otherwise count as true.
 */

import { MAX_TIMER_MS } from './timer-limit.js';

/** A number of milliseconds in [min, MAX_TIMER_MS]: a string or boolean would pass a comparison. */
export function timerMs(value: unknown, fallback: number, min: number, name: string, note = ''): number {
  const ms = value ?? fallback;
  if (typeof ms !== 'number') throw new TypeError(`${name} must be a number of milliseconds, got ${typeof ms}`);
  if (!(ms >= min && ms <= MAX_TIMER_MS)) throw new RangeError(`${name} must be from ${min}${note} to ${MAX_TIMER_MS} ms (Node's longest timer), got ${ms}`);
  return ms;
}

/** An optional boolean option: `fallback` when absent, a TypeError when not a boolean. */
export function optionalBoolean(value: unknown, fallback: boolean, name: string): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') throw new TypeError(`${name} must be a boolean, got ${typeof value}`);
  return value;
}
