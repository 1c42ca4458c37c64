/**
 * Requests of every kind, and moments to interrupt them, shared by the `lifecycle` and `abort`
 * groups.
 */
import fc from 'fast-check';
import type { BlockDriver } from '../../src/driver.js';
import type { IoOptions } from '../../src/types.js';
import { pattern } from './checks.js';

/** A named call of one operation. */
export type Op = [string, (d: BlockDriver, options?: IoOptions) => Promise<unknown>];

/** One call of every operation on a small range (writes only when the driver can write). */
export function everyOp(unit: number, canWrite: boolean, length = unit): Op[] {
  const ops: Op[] = [
    ['read', (d, o) => d.read(0, length, o)],
    ['readInto', (d, o) => d.readInto(0, new Uint8Array(length), o)],
    ['flush', (d, o) => d.flush(o)],
    ['blockStatus', (d, o) => d.blockStatus(0, length, o)],
    ['cache', (d, o) => d.cache(0, length, o)],
  ];
  if (canWrite) {
    ops.push(
      ['write', (d, o) => d.write(0, pattern(length, 50), o)],
      ['discard', (d, o) => d.discard(0, length, o)],
      ['writeZeroes', (d, o) => d.writeZeroes(0, length, o)],
    );
  }
  return ops;
}

/** Operation kinds the interruption tests issue. */
export type OpKind = 'read' | 'readInto' | 'write' | 'writeZeroes' | 'discard' | 'flush' | 'blockStatus' | 'cache';

/** The kinds a driver accepts: writing ones only when it can write. */
export function opKinds(canWrite: boolean): OpKind[] {
  const reads: OpKind[] = ['read', 'readInto', 'flush', 'blockStatus', 'cache'];
  return canWrite ? [...reads, 'write', 'writeZeroes', 'discard'] : reads;
}

/**
 * A moment after a request was issued: at once (same tick), after some microtasks (the request
 * is inside the driver's promise chain), after one macrotask, or after a timer of a few ms (a
 * slow driver is still working; a fast one is long done).
 */
export type Moment =
  | { readonly kind: 'now' }
  | { readonly kind: 'microtasks'; readonly n: number }
  | { readonly kind: 'macrotask' }
  | { readonly kind: 'timer'; readonly ms: number };

/** Moments spread over a request's whole life. */
export const momentArb: fc.Arbitrary<Moment> = fc.oneof(
  fc.constant<Moment>({ kind: 'now' }),
  fc.integer({ min: 1, max: 12 }).map((n): Moment => ({ kind: 'microtasks', n })),
  fc.constant<Moment>({ kind: 'macrotask' }),
  fc.integer({ min: 0, max: 3 }).map((ms): Moment => ({ kind: 'timer', ms })),
);

/** Waits until `moment`. */
export async function reach(moment: Moment): Promise<void> {
  if (moment.kind === 'microtasks') for (let i = 0; i < moment.n; i++) await Promise.resolve();
  else if (moment.kind === 'macrotask') await new Promise<void>((resolve) => setImmediate(resolve));
  else if (moment.kind === 'timer') await new Promise<void>((resolve) => setTimeout(resolve, moment.ms));
}

/**
 * Gives work a driver might wrongly still be doing for a settled request (a late reply, a timer,
 * a child call it did not wait for) a chance to show: a few macrotasks and a short timer. It cannot
 * prove the absence of late work, but it never fails a correct driver.
 */
export async function quiesce(): Promise<void> {
  for (let i = 0; i < 3; i++) await new Promise<void>((resolve) => setImmediate(resolve));
  await new Promise<void>((resolve) => setTimeout(resolve, 5));
  await new Promise<void>((resolve) => setImmediate(resolve));
}

/** How a request ended: its value, or what it threw. */
export type Outcome = { readonly ok: true; readonly value: unknown } | { readonly ok: false; readonly error: unknown };

/** Settles `p` into an {@link Outcome}. */
export function settle(p: Promise<unknown>): Promise<Outcome> {
  return p.then(
    (value): Outcome => ({ ok: true, value }),
    (error: unknown): Outcome => ({ ok: false, error }),
  );
}
