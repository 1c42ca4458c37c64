import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { backoffDelay, resolveBackoff } from '../../../src/nbd/client/backoff.js';
import { resolveClientOptions } from '../../../src/nbd/client/options.js';
import { LeastOutstanding } from '../../../src/nbd/client/dispatch.js';
import { MAX_COMPACT_LENGTH, largestAlignedPiece, splitRange } from '../../../src/nbd/client/split.js';

describe('splitRange', () => {
  it('covers the range contiguously with aligned pieces no longer than the maximum', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 16 }),
        fc.integer({ min: 0, max: 2 ** 20 }),
        fc.integer({ min: 0, max: 200 }),
        fc.integer({ min: 1, max: 2 ** 12 }),
        (shift, o, l, m) => {
          const align = 2 ** shift;
          const offset = o * align;
          // At most ~200 pieces per case keeps the property fast.
          const length = l * m * align - (l > 0 ? (o % m) * align : 0);
          const maxPiece = m * align;
          const pieces = splitRange(offset, length, maxPiece);
          let pos = offset;
          for (const p of pieces) {
            expect(p.offset).toBe(pos);
            expect(p.length).toBeGreaterThan(0);
            expect(p.length).toBeLessThanOrEqual(maxPiece);
            expect(p.offset % align).toBe(0);
            expect(p.length % align).toBe(0);
            pos += p.length;
          }
          expect(pos).toBe(offset + length);
          expect(pieces.length).toBe(Math.ceil(length / maxPiece));
        },
      ),
      { numRuns: 300 },
    );
  });

  it('cuts compact-header requests just under 4 GiB, keeping alignment', () => {
    expect(largestAlignedPiece(MAX_COMPACT_LENGTH, 4096)).toBe(0xfffff000);
    expect(largestAlignedPiece(MAX_COMPACT_LENGTH, 1)).toBe(0xffffffff);
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 30 }), (shift) => {
        const a = 2 ** shift;
        const p = largestAlignedPiece(MAX_COMPACT_LENGTH, a);
        expect(p % a).toBe(0);
        expect(p).toBeLessThanOrEqual(MAX_COMPACT_LENGTH);
        expect(p + a).toBeGreaterThan(MAX_COMPACT_LENGTH);
      }),
    );
    expect(() => largestAlignedPiece(10, 16)).toThrow(RangeError);
  });
});

describe('backoff', () => {
  it('tries at once, then waits grow monotonically and never exceed the cap', () => {
    fc.assert(
      fc.property(fc.double({ min: 1, max: 1000, noNaN: true }), fc.integer({ min: 0, max: 60_000 }), (initial, extra) => {
        const b = resolveBackoff({ initialDelay: initial, maxDelay: initial + extra });
        expect(backoffDelay(1, b)).toBe(0);
        let prev = 0;
        // Far past the point where 2^attempt overflows: a client may retry for days.
        for (let attempt = 2; attempt < 2000; attempt++) {
          const d = backoffDelay(attempt, b);
          expect(d).toBeGreaterThanOrEqual(Math.max(prev, 1));
          expect(d).toBeLessThanOrEqual(b.maxDelay);
          prev = d;
        }
        expect(prev).toBe(b.maxDelay);
      }),
      { numRuns: 200 },
    );
  });

  it('rejects nonsense settings', () => {
    expect(() => resolveBackoff({ initialDelay: -1 })).toThrow(RangeError);
    // 0 would retry in a busy loop for as long as the server is down.
    expect(() => resolveBackoff({ initialDelay: 0 })).toThrow(RangeError);
    expect(() => resolveBackoff({ initialDelay: 0.5 })).toThrow(RangeError);
    expect(() => resolveBackoff({ initialDelay: 100, maxDelay: 10 })).toThrow(RangeError);
    expect(() => resolveBackoff({ maxDelay: Infinity })).toThrow(RangeError);
    // Node fires a timer longer than 2^31 − 1 ms at once: that would be a busy retry loop.
    expect(() => resolveBackoff({ initialDelay: 2 ** 31 })).toThrow(RangeError);
    expect(() => resolveBackoff({ maxDelay: 2 ** 31 })).toThrow(RangeError);
    expect(resolveBackoff({ maxDelay: 2 ** 31 - 1 }).maxDelay).toBe(2 ** 31 - 1);
  });

  it('refuses client times Node timers cannot hold (over 2^31 − 1 ms), and takes the longest one they can', () => {
    for (const key of ['connectTimeout', 'requestTimeout', 'closeTimeout', 'reconnectDelay'] as const) {
      expect(() => resolveClientOptions({ [key]: 2 ** 31 }), key).toThrow(RangeError);
      expect(() => resolveClientOptions({ [key]: Infinity }), key).toThrow(RangeError);
      expect(resolveClientOptions({ [key]: 2 ** 31 - 1 })[key]).toBe(2 ** 31 - 1);
      // The wrong type is a programming mistake, as for the server's times.
      expect(() => resolveClientOptions({ [key]: '5' as unknown as number }), key).toThrow(TypeError);
    }
  });

  it('refuses a signal that is not an AbortSignal before any socket opens', () => {
    expect(() => resolveClientOptions({ signal: {} as unknown as AbortSignal })).toThrow(TypeError);
    expect(() => resolveClientOptions({ signal: new AbortController().signal })).not.toThrow();
  });

  it("refuses boolean options of another type: 'false' would count as true", () => {
    for (const key of ['reconnect', 'extendedHeaders', 'structuredReplies', 'blockStatus'] as const) {
      expect(() => resolveClientOptions({ [key]: 'false' as unknown as boolean }), key).toThrow(TypeError);
      expect(() => resolveClientOptions({ [key]: false }), key).not.toThrow();
    }
  });
});

describe('LeastOutstanding', () => {
  it('always picks a usable connection with the smallest load, or -1 when none is usable', () => {
    const conn = fc.record({ usable: fc.boolean(), outstanding: fc.nat(20) });
    fc.assert(
      fc.property(fc.array(fc.array(conn, { maxLength: 8 }), { minLength: 1, maxLength: 20 }), (rounds) => {
        const picker = new LeastOutstanding();
        for (const conns of rounds) {
          const i = picker.pick(conns);
          const usable = conns.filter((c) => c.usable);
          if (usable.length === 0) {
            expect(i).toBe(-1);
            continue;
          }
          expect(conns[i].usable).toBe(true);
          expect(conns[i].outstanding).toBe(Math.min(...usable.map((c) => c.outstanding)));
        }
      }),
    );
  });

  it('spreads a burst evenly over equally loaded connections', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 8 }), fc.integer({ min: 1, max: 50 }), (n, rounds) => {
        const conns = Array.from({ length: n }, () => ({ usable: true, outstanding: 0 }));
        const picker = new LeastOutstanding();
        for (let k = 0; k < n * rounds; k++) conns[picker.pick(conns)].outstanding++;
        expect(conns.every((c) => c.outstanding === rounds)).toBe(true);
      }),
    );
  });
});
