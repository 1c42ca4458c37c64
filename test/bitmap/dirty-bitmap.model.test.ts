/**
 * Model-based test: random command sequences run against DirtyBitmap and a boolean-per-granule
 * model; after every command every query of the real bitmap must agree with the model.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DirtyBitmap } from '../../src/bitmap/index.js';
import { position, range, ranges, smallGeometry, type Geometry } from './arbitraries.js';
import { ArrayModel } from './model.js';

interface Real {
  bitmap: DirtyBitmap;
}

type Cmd = fc.Command<ArrayModel, Real>;

/** Every cheap query, compared with the model after each command. */
function agree(m: ArrayModel, r: Real): void {
  const b = r.bitmap;
  expect(b.count).toBe(m.count);
  expect(b.dirtyBytes).toBe(m.dirtyBytes);
  expect(b.isEmpty).toBe(m.count === 0);
  expect([...b.extents()]).toEqual(m.extents());
}

class SetCmd implements Cmd {
  constructor(readonly offset: number, readonly length: number) {}
  check = () => true;
  run(m: ArrayModel, r: Real): void {
    m.set(this.offset, this.length);
    r.bitmap.set(this.offset, this.length);
    agree(m, r);
  }
  toString = () => `set(${this.offset}, ${this.length})`;
}

class ClearCmd implements Cmd {
  constructor(readonly offset: number, readonly length: number) {}
  check = () => true;
  run(m: ArrayModel, r: Real): void {
    m.clear(this.offset, this.length);
    r.bitmap.clear(this.offset, this.length);
    agree(m, r);
  }
  toString = () => `clear(${this.offset}, ${this.length})`;
}

class AllCmd implements Cmd {
  constructor(readonly dirty: boolean) {}
  check = () => true;
  run(m: ArrayModel, r: Real): void {
    if (this.dirty) {
      m.setAll();
      r.bitmap.setAll();
    } else {
      m.clearAll();
      r.bitmap.clearAll();
    }
    agree(m, r);
  }
  toString = () => (this.dirty ? 'setAll()' : 'clearAll()');
}

class MergeCmd implements Cmd {
  constructor(readonly parts: { offset: number; length: number }[]) {}
  check = () => true;
  run(m: ArrayModel, r: Real): void {
    const other = new DirtyBitmap({ size: m.size, granularity: m.granularity });
    const otherModel = new ArrayModel(m.size, m.granularity);
    for (const p of this.parts) {
      other.set(p.offset, p.length);
      otherModel.set(p.offset, p.length);
    }
    m.merge(otherModel);
    r.bitmap.merge(other);
    agree(m, r);
    expect([...other.extents()]).toEqual(otherModel.extents());
  }
  toString = () => `merge(${JSON.stringify(this.parts)})`;
}

/** Replaces the bitmap with a copy made by clone or by a serialize round trip. */
class CopyCmd implements Cmd {
  constructor(readonly how: 'clone' | 'serialize') {}
  check = () => true;
  run(m: ArrayModel, r: Real): void {
    const old = r.bitmap;
    r.bitmap = this.how === 'clone' ? old.clone() : DirtyBitmap.deserialize(old.serialize());
    expect(r.bitmap.size).toBe(m.size);
    expect(r.bitmap.granularity).toBe(m.granularity);
    agree(m, r);
    // The copy is independent: changing the old one leaves it alone.
    old.setAll();
    agree(m, r);
  }
  toString = () => this.how;
}

class QueryCmd implements Cmd {
  constructor(readonly at: number, readonly other: number, readonly max: number) {}
  check = () => true;
  run(m: ArrayModel, r: Real): void {
    const b = r.bitmap;
    const lo = Math.min(this.at, this.other);
    const hi = Math.max(this.at, this.other);
    expect(b.test(lo, hi - lo)).toBe(m.test(lo, hi - lo));
    if (this.at < m.size) {
      expect(b.isDirty(this.at)).toBe(m.isDirty(this.at));
      expect(b.test(this.at)).toBe(m.isDirty(this.at));
    }
    expect(b.nextDirty(this.at)).toBe(m.nextDirty(this.at));
    expect(b.nextClean(this.at)).toBe(m.nextClean(this.at));
    expect([...b.extents(lo, hi)]).toEqual(m.extents(lo, hi));
    expect(b.nextExtent(this.at)).toEqual(m.nextExtent(this.at));
    expect(b.nextExtent(this.at, this.max)).toEqual(m.nextExtent(this.at, this.max));
  }
  toString = () => `query(${this.at}, ${this.other}, max ${this.max})`;
}

function commands(g: Geometry): fc.Arbitrary<Iterable<Cmd>> {
  return fc.commands(
    [
      range(g).map(({ offset, length }) => new SetCmd(offset, length)),
      range(g).map(({ offset, length }) => new ClearCmd(offset, length)),
      fc.boolean().map((d) => new AllCmd(d)),
      ranges(g, 4).map((parts) => new MergeCmd(parts)),
      fc.constantFrom('clone' as const, 'serialize' as const).map((how) => new CopyCmd(how)),
      fc
        .tuple(position(g), position(g), fc.integer({ min: 1, max: 4 * g.granularity + 1 }))
        .map(([a, b, max]) => new QueryCmd(a, b, max)),
    ],
    { maxCommands: 40 },
  );
}

describe('DirtyBitmap against a boolean-per-granule model', () => {
  it('agrees on every query after any sequence of set/clear/setAll/clearAll/merge/clone/serialize', () => {
    fc.assert(
      fc.property(
        smallGeometry.chain((g) => fc.tuple(fc.constant(g), commands(g))),
        ([g, cmds]) => {
          const model = new ArrayModel(g.size, g.granularity);
          const real: Real = { bitmap: new DirtyBitmap(g) };
          fc.modelRun(() => ({ model, real }), cmds);
        },
      ),
      { numRuns: 200 },
    );
  });
});
