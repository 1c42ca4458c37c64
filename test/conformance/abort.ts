/**
 * Group `abort`: an aborted signal stops a request before it is dispatched; a signal aborted
 * while the request is on its way lets it either complete or fail with ECANCELED, and either way
 * leaves only what the contract allows — never bytes nobody wrote, never a driver still writing
 * into a read buffer or reading a write buffer after the request settled.
 */
import fc from 'fast-check';
import { expect, it } from 'vitest';
import type { BlockDriver } from '../../src/driver.js';
import { isBlockError } from '../../src/errors.js';
import type { BlockExtent } from '../../src/types.js';
import { checkExtents, expectBytes, expectCode, expectZeros, flushIfAble, pattern, readFilled, unlike } from './checks.js';
import type { SuiteContext } from './context.js';
import { everyOp, momentArb, opKinds, quiesce, reach, settle, type OpKind, type Outcome } from './requests.js';

/**
 * Fails unless the outcome is a success or `code` (ECANCELED, or ETIMEDOUT when the signal timed
 * out); returns true for a success.
 */
function completedOrCancelled(outcome: Outcome, what: string, code: 'ECANCELED' | 'ETIMEDOUT'): boolean {
  if (outcome.ok) return true;
  const { error } = outcome;
  expect(isBlockError(error), `${what}: should complete or fail with a BlockError, got ${String(error)}`).toBe(true);
  expect((error as { code: string }).code, `${what}: an aborted request completes or fails with ${code}`).toBe(code);
  return false;
}

/** What `AbortSignal.timeout()` aborts with. */
const timeoutReason = (): DOMException => new DOMException('the deadline passed', 'TimeoutError');

/** Fails unless each byte of `actual` is the same byte of one of `allowed`. */
function expectEach(actual: Uint8Array, allowed: readonly Uint8Array[], what: string, base: number): void {
  for (let i = 0; i < actual.length; i++) {
    if (!allowed.some((a) => a[i] === actual[i])) {
      expect.fail(`${what}: byte at ${base + i} is ${actual[i]}, allowed ${allowed.map((a) => a[i]).join(' or ')}`);
    }
  }
}

/** Registers the `abort` tests. */
export function abortTests(ctx: SuiteContext): void {
  const { unit, timeout, numRuns } = ctx;
  const rw = ctx.caps.canWrite;

  it('an already aborted signal fails every operation with ECANCELED and dispatches nothing', async () => {
    await ctx.withDriver(async (d) => {
      const data = pattern(unit, 70);
      if (rw) await d.write(0, data);
      const controller = new AbortController();
      controller.abort(new Error('caller gave up'));
      const timedOut = new AbortController();
      timedOut.abort(timeoutReason());
      for (const [name, call] of everyOp(unit, rw)) {
        await expectCode(() => call(d, { signal: controller.signal }), 'ECANCELED', `${name} with an aborted signal`);
        await expectCode(() => call(d, { signal: timedOut.signal }), 'ETIMEDOUT', `${name} with a timed-out signal`);
      }
      expect(d.state).toBe('open');
      expect(d.inFlight).toBe(0);
      if (rw) expectBytes(await readFilled(d, 0, unit), data, 'data after aborted write, discard and writeZeroes');
    });
  }, timeout);

  it('a signal that is not aborted changes nothing', async () => {
    await ctx.withDriver(async (d) => {
      const { signal } = new AbortController();
      for (const [name, call] of everyOp(unit, rw)) {
        await call(d, { signal }).catch((err: unknown) => expect.fail(`${name} with a live signal: ${String(err)}`));
      }
      if (rw) expectZeros(await readFilled(d, 0, unit), 'after writeZeroes with a live signal');
    });
  }, timeout);

  it('a request aborted mid-flight completes or fails with ECANCELED (ETIMEDOUT for a timeout), leaves old-or-new data, and never touches its buffer afterwards', async () => {
    // The request covers 8 units from `offset`; the span checked adds one unit on each side.
    const offset = unit;
    const length = 8 * unit;
    const span = length + 2 * unit;
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...opKinds(rw)), momentArb, fc.nat(), fc.boolean(), async (kind: OpKind, moment, seed, timedOut) => {
        await ctx.withDriver(async (d) => {
          const old = rw ? pattern(length, seed) : new Uint8Array(length);
          if (rw) await d.write(offset, old);
          const fresh = pattern(length, seed + 1);
          const zero = new Uint8Array(length);
          const controller = new AbortController();
          const options = { signal: controller.signal };
          // Caller-owned buffers: a read target pre-filled so that unfilled bytes show, a write's data.
          const target = unlike(length, old);
          const data = fresh.slice();
          const request: Promise<unknown> = (() => {
            switch (kind) {
              case 'read':
                return d.read(offset, length, options);
              case 'readInto':
                return d.readInto(offset, target, options);
              case 'write':
                return d.write(offset, data, options);
              case 'writeZeroes':
                return d.writeZeroes(offset, length, options);
              case 'discard':
                return d.discard(offset, length, options);
              case 'flush':
                return d.flush(options);
              case 'blockStatus':
                return d.blockStatus(offset, length, options);
              case 'cache':
                return d.cache(offset, length, options);
            }
          })();
          await reach(moment);
          controller.abort(timedOut ? timeoutReason() : new Error('caller gave up mid-flight'));
          const outcome = await settle(request);
          // The caller takes its buffers back at once, as Quorum does, and scribbles on them.
          const returned = kind === 'read' && outcome.ok ? (outcome.value as Uint8Array) : undefined;
          const readBack = kind === 'readInto' ? target.slice() : returned?.slice();
          const scribble = unlike(length, old, fresh);
          if (kind === 'readInto') target.set(scribble);
          if (returned !== undefined) returned.set(scribble);
          if (kind === 'write') data.set(scribble);
          const what = `${kind} ${timedOut ? 'timed out' : 'aborted'} ${moment.kind === 'microtasks' ? `after ${moment.n} microtasks` : moment.kind === 'timer' ? `after ${moment.ms} ms` : moment.kind}`;
          const done = completedOrCancelled(outcome, what, timedOut ? 'ETIMEDOUT' : 'ECANCELED');
          expect(d.state, `${what}: the driver stays open`).toBe('open');
          expect(d.inFlight, `${what}: nothing left in flight`).toBe(0);

          await quiesce();
          // A driver that kept the caller's write buffer might only read it again when it flushes.
          if (kind === 'write' && rw) await flushIfAble(d);
          if (kind === 'readInto' || returned !== undefined) {
            expectBytes(kind === 'readInto' ? target : (returned as Uint8Array), scribble, `${what}: the read buffer after it settled (no late writes)`, offset);
          }
          if (done && readBack !== undefined) expectBytes(readBack, old, `${what}: data read`, offset);
          if (outcome.ok && kind === 'blockStatus') checkExtents(outcome.value as BlockExtent[], offset, length, unit);

          const bytes = await readFilled(d, offset - unit, span);
          expectZeros(bytes.subarray(0, unit), `${what}: the unit before`, offset - unit);
          expectZeros(bytes.subarray(unit + length), `${what}: the unit after`, offset + length);
          const inside = bytes.subarray(unit, unit + length);
          if (kind === 'write') expectEach(inside, done ? [fresh] : [old, fresh], `${what}: the range written`, offset);
          else if (kind === 'writeZeroes') expectEach(inside, done ? [zero] : [old, zero], `${what}: the range zeroed`, offset);
          else if (kind === 'discard') expectEach(inside, done && ctx.discardReadsZeroes ? [zero] : [old, zero], `${what}: the range discarded`, offset);
          else expectBytes(inside, old, `${what}: data under a request that writes nothing`, offset);
          // Still fully usable.
          if (rw) {
            const again = pattern(length, seed + 2);
            await d.write(offset, again);
            expectBytes(await readFilled(d, offset, length), again, `${what}: a write afterwards`, offset);
          }
        });
      }),
      { numRuns: Math.max(numRuns, 50) },
    );
  }, timeout);

  it('requests aborted while close() drains them complete or fail with ECANCELED, and close() still completes', async () => {
    const ops = (d: BlockDriver, signal: AbortSignal): Array<[string, Promise<unknown>]> => [
      ['read', d.read(0, 4 * unit, { signal })],
      ['readInto', d.readInto(4 * unit, new Uint8Array(4 * unit), { signal })],
      ['flush', d.flush({ signal })],
      ['blockStatus', d.blockStatus(0, 8 * unit, { signal })],
      ...(rw
        ? ([
            ['write', d.write(8 * unit, pattern(4 * unit, 71), { signal })],
            ['writeZeroes', d.writeZeroes(12 * unit, 4 * unit, { signal })],
            ['discard', d.discard(16 * unit, 4 * unit, { signal })],
          ] as Array<[string, Promise<unknown>]>)
        : []),
    ];
    await fc.assert(
      fc.asyncProperty(momentArb, async (moment) => {
        await ctx.withDriver(async (d) => {
          const controller = new AbortController();
          // Settle handlers go on at once: a rejection while we wait for the moment is expected.
          const started = ops(d, controller.signal).map(([name, p]) => [name, settle(p)] as const);
          const closing = settle(d.close());
          await reach(moment);
          controller.abort(new Error('caller gave up during close'));
          for (const [name, outcome] of started) completedOrCancelled(await outcome, `${name} aborted during close`, 'ECANCELED');
          const closed = await closing;
          if (!closed.ok) expect.fail(`close() failed: ${String(closed.error)}`);
          expect(d.state).toBe('closed');
          expect(d.inFlight).toBe(0);
        });
      }),
      { numRuns: Math.min(numRuns, 30) },
    );
  }, timeout);
}
