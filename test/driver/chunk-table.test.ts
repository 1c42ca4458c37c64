import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DENSE_LIMIT, chunkTable } from '../../src/drivers/chunk-table.js';

describe('MemoryDriver chunk table', () => {
  it('model: the array table and the Map table both behave like a Map of chunk indexes', () => {
    const op = fc.oneof(
      fc.record({ kind: fc.constant('set' as const), i: fc.nat(63), v: fc.nat(9) }),
      fc.record({ kind: fc.constant('delete' as const), i: fc.nat(63) }),
      fc.record({ kind: fc.constant('range' as const), a: fc.integer({ min: -3, max: 66 }), b: fc.integer({ min: -3, max: 66 }) }),
      fc.constant({ kind: 'clear' as const }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 80 }), fc.boolean(), (ops, dense) => {
        // 64 chunks get an array; a count past the limit gets a Map (indexes stay small here).
        const t = chunkTable<number>(dense ? 64 : DENSE_LIMIT + 1);
        const m = new Map<number, number>();
        for (const o of ops) {
          if (o.kind === 'set') {
            t.set(o.i, o.v);
            m.set(o.i, o.v);
          } else if (o.kind === 'delete') {
            expect(t.delete(o.i)).toBe(m.delete(o.i));
          } else if (o.kind === 'clear') {
            t.clear();
            m.clear();
          } else {
            const want = [...m.keys()].filter((i) => i >= o.a && i <= o.b).sort((x, y) => x - y);
            expect(t.keysIn(o.a, o.b)).toEqual(want);
          }
          expect(t.size).toBe(m.size);
          for (let i = 0; i < 64; i++) {
            expect(t.get(i)).toBe(m.get(i));
            expect(t.has(i)).toBe(m.has(i));
          }
          expect(new Map(t.entries())).toEqual(m);
        }
      }),
    );
  });
});
