import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BufferPool } from '../../src/buffers/pool.js';
import { bufferHolds, releaseBuffer, retainBuffer, trackBuffer } from '../../src/buffers/ownership.js';

describe('buffer holds', () => {
  it('untracked memory: retain and release do nothing', () => {
    const b = new Uint8Array(16);
    retainBuffer(b, 3);
    releaseBuffer(b, 5);
    expect(bufferHolds(b)).toBe(0);
  });

  it('tracking twice is refused', () => {
    const b = new Uint8Array(16);
    trackBuffer(b, () => {});
    expect(() => trackBuffer(b.subarray(4), () => {})).toThrow(/already tracked/);
    releaseBuffer(b);
  });

  it('releasing more than held throws and changes nothing', () => {
    const b = new Uint8Array(16);
    let freed = 0;
    trackBuffer(b, () => freed++);
    retainBuffer(b);
    expect(() => releaseBuffer(b, 3)).toThrow(/more often/);
    expect(bufferHolds(b)).toBe(2);
    releaseBuffer(b, 2);
    expect(freed).toBe(1);
  });

  it('memory freed can be tracked again, with its new owner only', () => {
    const b = new Uint8Array(32);
    const freed: string[] = [];
    trackBuffer(b, () => freed.push('first'));
    releaseBuffer(b);
    releaseBuffer(b); // untracked now: a stray release is ignored
    trackBuffer(b.subarray(8), () => freed.push('second'));
    retainBuffer(b);
    expect(bufferHolds(b)).toBe(2);
    releaseBuffer(b, 2);
    expect(freed).toEqual(['first', 'second']);
  });

  it('a second copy of the package (another module instance) sees the same holds', async () => {
    // A query makes Vite load the module again: what a second install in node_modules amounts to.
    const path: string = '../../src/buffers/ownership.js?second-copy';
    const other = (await import(path)) as typeof import('../../src/buffers/ownership.js');
    expect(other.retainBuffer).not.toBe(retainBuffer);
    for (const make of [() => new ArrayBuffer(16), () => Object.freeze(new ArrayBuffer(16))]) {
      const b = new Uint8Array(make());
      let freed = 0;
      trackBuffer(b, () => freed++);
      other.retainBuffer(b, 2);
      expect(bufferHolds(b)).toBe(3);
      expect(() => other.trackBuffer(b, () => {})).toThrow(/already tracked/);
      other.releaseBuffer(b, 3);
      expect(freed).toBe(1);
    }
  });

  it('tracking leaves no visible trace on the memory (no enumerable property)', () => {
    const b = new Uint8Array(16);
    trackBuffer(b, () => {});
    expect(Object.keys(b.buffer)).toEqual([]);
    for (const sym of Object.getOwnPropertySymbols(b.buffer)) expect(Object.prototype.propertyIsEnumerable.call(b.buffer, sym)).toBe(false);
    releaseBuffer(b);
  });

  const locks: [string, (b: ArrayBuffer) => ArrayBuffer][] = [
    ['frozen', (b) => Object.freeze(b)],
    ['sealed', (b) => Object.seal(b)],
    ['non-extensible', (b) => Object.preventExtensions(b)],
  ];
  for (const [name, lock] of locks) {
    it(`${name} memory is tracked too (held elsewhere), freed once, and can be tracked again`, () => {
      const b = new Uint8Array(lock(new ArrayBuffer(16)));
      let freed = 0;
      retainBuffer(b);
      expect(bufferHolds(b)).toBe(0);
      trackBuffer(b, () => freed++);
      expect(() => trackBuffer(b, () => {})).toThrow(/already tracked/);
      retainBuffer(b.subarray(4), 2);
      expect(bufferHolds(b)).toBe(3);
      releaseBuffer(b, 3);
      expect(freed).toBe(1);
      expect(bufferHolds(b)).toBe(0);
      trackBuffer(b, () => freed++);
      releaseBuffer(b);
      expect(freed).toBe(2);
    });
  }

  it('model: holds are counted per ArrayBuffer (any view of it), and onFree runs once, at zero', () => {
    // Each step retains or releases a number of holds through a random view of one buffer.
    const step = fc.record({ retain: fc.boolean(), count: fc.integer({ min: 1, max: 4 }), at: fc.nat(63) });
    fc.assert(
      fc.property(fc.array(step, { maxLength: 40 }), (steps) => {
        const b = new Uint8Array(new ArrayBuffer(64));
        let freed = 0;
        trackBuffer(b, () => freed++);
        let held = 1;
        for (const s of steps) {
          const view = b.subarray(s.at);
          if (held === 0) {
            // Untracked again: nothing counts any more.
            retainBuffer(view, s.count);
            expect(bufferHolds(b)).toBe(0);
            continue;
          }
          if (s.retain) {
            retainBuffer(view, s.count);
            held += s.count;
          } else if (s.count > held) {
            expect(() => releaseBuffer(view, s.count)).toThrow();
          } else {
            releaseBuffer(view, s.count);
            held -= s.count;
          }
          expect(bufferHolds(b)).toBe(held);
          expect(freed).toBe(held === 0 ? 1 : 0);
        }
        if (held > 0) releaseBuffer(b, held);
        expect(freed).toBe(1);
      }),
    );
  });
});

describe('BufferPool', () => {
  it('model: never hands out memory somebody still holds; reuses what was let go; keeps at most its idle cap', () => {
    // Bins of their own (pooling starts at 64 KiB; smaller requests are plain allocations).
    const SIZES = [64 * 1024, 256 * 1024];
    const CAP = 3 * 256 * 1024;
    const op = fc.oneof(
      fc.record({ kind: fc.constant('take' as const), size: fc.constantFrom(...SIZES) }),
      fc.record({ kind: fc.constant('retain' as const), pick: fc.nat() }),
      fc.record({ kind: fc.constant('release' as const), pick: fc.nat() }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
        const pool = new BufferPool(CAP);
        // Buffers out of the pool, with the holds the test placed on each.
        const out = new Map<Uint8Array, number>();
        // Idle buffers by size, as the pool should have them.
        const idle = new Map<number, number>(SIZES.map((n) => [n, 0]));
        const idleBytes = (): number => SIZES.reduce((t, n) => t + n * (idle.get(n) as number), 0);
        const list = (): Uint8Array[] => [...out.keys()];
        for (const o of ops) {
          if (o.kind === 'take') {
            const b = pool.take(o.size);
            expect(b.length).toBe(o.size);
            expect(out.has(b), 'a buffer still held was handed out again').toBe(false);
            expect(bufferHolds(b)).toBe(1);
            // An idle buffer of the size is reused before anything is allocated.
            idle.set(o.size, Math.max(0, (idle.get(o.size) as number) - 1));
            out.set(b, 1);
          } else if (out.size > 0) {
            const b = list()[o.pick % out.size];
            const n = out.get(b) as number;
            if (o.kind === 'retain') {
              retainBuffer(b);
              out.set(b, n + 1);
            } else {
              pool.give(b);
              if (n === 1) {
                out.delete(b);
                // Back in the pool unless that would pass the cap.
                if (idleBytes() + b.length <= CAP) idle.set(b.length, (idle.get(b.length) as number) + 1);
              } else out.set(b, n - 1);
            }
          }
          expect(pool.idleBytes).toBe(idleBytes());
          expect(pool.idleBytes).toBeLessThanOrEqual(CAP);
        }
      }),
    );
  });

  it('a buffer let go is the next one taken of its bin', () => {
    const pool = new BufferPool();
    const a = pool.take(1 << 20);
    pool.give(a);
    expect(pool.take((1 << 20) - 5)).toBe(a);
    expect(pool.take(1 << 20)).not.toBe(a);
  });

  it('small requests are plain allocations, neither tracked nor kept', () => {
    const pool = new BufferPool();
    const small = pool.take(4096);
    expect(small.length).toBe(4096);
    expect(bufferHolds(small)).toBe(0);
    pool.give(small);
    expect(pool.idleBytes).toBe(0);
  });

  it('after close, returned buffers are not kept', () => {
    const pool = new BufferPool();
    const a = pool.take(1 << 20);
    pool.close();
    pool.give(a);
    expect(pool.idleBytes).toBe(0);
    expect(pool.take(1 << 20)).not.toBe(a);
  });
});
