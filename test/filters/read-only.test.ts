/**
 * ReadOnly: every change is refused with EPERM before it reaches the child; reads pass through.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MemoryDriver } from '../../src/drivers/memory.js';
import { ReadOnly } from '../../src/filters/read-only.js';
import { Stats } from '../../src/filters/stats.js';
import { blockDriverSuite } from '../conformance/index.js';
import { sameBytes } from './helpers.js';

blockDriverSuite({ name: 'ReadOnly', factory: ({ size }) => new ReadOnly(new MemoryDriver({ size })) });

describe('ReadOnly', () => {
  it('reports no way to change the device and keeps the rest of the child’s manifest', () => {
    const child = new MemoryDriver({ size: 100 });
    const r = new ReadOnly(child);
    expect(r.capabilities).toEqual({ ...child.capabilities, canWrite: false, canDiscard: false, canZero: false, canFastZero: false });
    expect(r.capabilities).toBe(r.capabilities);
    expect(r.size).toBe(100);
    expect(r.limits).toEqual(child.limits);
  });

  it('refuses any write, zeroing or discard with EPERM; the child never sees one; reads are the child’s', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ minLength: 2048, maxLength: 2048 }),
        fc.array(
          fc.record({ kind: fc.constantFrom('write', 'writeZeroes', 'discard'), at: fc.nat({ max: 2047 }), len: fc.integer({ min: 1, max: 500 }), fua: fc.boolean() }),
          { minLength: 1, maxLength: 10 },
        ),
        async (content, ops) => {
          const mem = new MemoryDriver({ size: 2048 });
          await mem.write(0, content);
          const stats = new Stats(mem);
          const r = new ReadOnly(stats);
          for (const op of ops) {
            const len = Math.min(op.len, 2048 - op.at);
            const p =
              op.kind === 'write'
                ? r.write(op.at, new Uint8Array(len).fill(9), { fua: op.fua })
                : op.kind === 'writeZeroes'
                  ? r.writeZeroes(op.at, len, { fua: op.fua })
                  : r.discard(op.at, len, { fua: op.fua });
            await expect(p).rejects.toMatchObject({ code: 'EPERM' });
          }
          const s = stats.snapshot();
          expect(s.write.calls + s.writeZeroes.calls + s.discard.calls).toBe(0);
          expect(sameBytes(await r.read(0, 2048), content)).toBe(true);
          await r.flush();
          expect(await r.blockStatus(0, 2048)).toEqual(await mem.blockStatus(0, 2048));
          await r.close();
        },
      ),
      { numRuns: 50 },
    );
  });
});
