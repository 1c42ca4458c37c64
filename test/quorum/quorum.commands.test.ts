/**
 * Proof (b): random sequences of write / zero (write-zeroes or discard) / read / corrupt-child /
 * fail-child / heal-child / flush / add-child / remove-child against a model: a Uint8Array `truth`
 * (what successful writes put on the device) plus, per child, the bytes it holds and whether it is
 * failing. Every read pattern runs, with majority and minority thresholds.
 *
 * Every read is checked exactly against the independent models (vote, or fifo-style with the
 * pattern's try order), and against the headline rules stated in terms of the truth alone.
 * fifo-style patterns: if every working child holds the truth the read returns it, and if every
 * child fails the read fails with EIO. Quorum pattern: with N children of which `bad` are failing
 * or hold other bytes than the truth on the range,
 * - bad ≤ N − threshold and the good ones a strict majority → the read returns the truth;
 * - bad > N − threshold → the read fails with EIO, provided bad copies cannot win: the threshold
 *   is at least 2 (one copy alone cannot be checked), corruptions are unique, the threshold has been a strict majority at every write, and no
 *   child holds bytes of a *failed* write in the range (quorum writes are not atomic; see
 *   docs/quorum.md, "What a failed write leaves behind"). When those do not hold, the exact model
 *   still decides, and the run counts how often each rule was exercised.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MemoryDriver } from '../../src/drivers/memory.js';
import { FaultInjector } from '../../src/filters/fault-injector.js';
import { Quorum } from '../../src/quorum/quorum.js';
import { expectedEvents, record, type Recorded } from './harness.js';
import type { ReadPattern } from '../../src/quorum/vote.js';
import { hex, modelCompletion, modelFifoRead, modelQuorumRead, type ModelOutcome } from './model.js';

const SIZE = 64;
const MAX_CHILDREN = 5;

interface ChildModel {
  name: string;
  content: Uint8Array;
  failed: boolean;
  /** 1 where the child holds bytes that only a failed write (or a repair copying them) put there. */
  tainted: Uint8Array;
}
interface Model {
  truth: Uint8Array;
  kids: ChildModel[];
  threshold: number;
  pattern: ReadPattern;
  /** Reads so far (round-robin starts read k at child k mod N). */
  turn: number;
  rewrite: boolean;
  nextName: number;
  /** The threshold was more than half the children at every write so far. */
  majorityAlways: boolean;
  /** Unique value for the next corruption (writes only use 0..3). */
  nextCorruption: number;
}

/** How often each headline rule was actually checked, to see the test is not vacuous. */
const exercised = { truth: 0, eio: 0, fifoTruth: 0, fifoFailed: 0, minority: 0 };
interface Real {
  q: Quorum;
  kids: { name: string; mem: MemoryDriver; fault: FaultInjector }[];
  events: Recorded[];
}
type Cmd = fc.AsyncCommand<Model, Real>;

const at = (m: Model, i: number): number => i % m.kids.length;
const nameIndex = (m: Model) => (child: number) => m.kids[child].name;

class WriteCmd implements Cmd {
  /** `zero` sends the range as write-zeroes or discard (a quorum's discard reads back as zeros). */
  constructor(readonly offset: number, readonly data: Uint8Array, readonly zero?: 'writeZeroes' | 'discard') {}
  check = (): boolean => true;
  async run(m: Model, r: Real): Promise<void> {
    r.events.length = 0;
    const outcomes: ModelOutcome[] = m.kids.map((k) => (k.failed ? { ok: false, code: 'EIO' } : { ok: true }));
    const exp = modelCompletion(outcomes, m.threshold, true);
    const request =
      this.zero === undefined
        ? r.q.write(this.offset, this.data)
        : this.zero === 'discard'
          ? r.q.discard(this.offset, this.data.length)
          : r.q.writeZeroes(this.offset, this.data.length);
    const got = await request.then(() => 'ok', (e: { code: string }) => e.code);
    expect(got).toBe(exp.ok ? 'ok' : exp.code);
    expect(r.events).toEqual(expectedEvents(exp, 'write', this.offset, this.data.length, nameIndex(m)));
    if (m.threshold * 2 <= m.kids.length) m.majorityAlways = false;
    for (const k of m.kids) {
      if (k.failed) continue;
      k.content.set(this.data, this.offset);
      k.tainted.fill(exp.ok ? 0 : 1, this.offset, this.offset + this.data.length);
    }
    if (exp.ok) m.truth.set(this.data, this.offset);
  }
  toString = (): string => (this.zero === undefined ? `write(${this.offset}, [${this.data.join(',')}])` : `${this.zero}(${this.offset}, ${this.data.length})`);
}

class ReadCmd implements Cmd {
  constructor(readonly offset: number, readonly length: number) {}
  check = (): boolean => true;
  async run(m: Model, r: Real): Promise<void> {
    r.events.length = 0;
    const end = this.offset + this.length;
    const outcomes: ModelOutcome[] = m.kids.map((k) =>
      k.failed ? { ok: false, code: 'EIO' } : { ok: true, data: k.content.slice(this.offset, end) },
    );
    const n = m.kids.length;
    // Sequential commands leave nothing in flight, so least-pending always ties and goes by index.
    const start = m.pattern === 'round-robin' ? m.turn % n : 0;
    const order = Array.from({ length: n }, (_, i) => (start + i) % n);
    m.turn++;
    const exp = m.pattern === 'quorum' ? modelQuorumRead(outcomes, m.threshold, { rewriteCorrupted: m.rewrite }) : modelFifoRead(outcomes, order);
    const got = await r.q.read(this.offset, this.length).then(
      (d) => ({ ok: true as const, hex: hex(d) }),
      (e: { code: string }) => ({ ok: false as const, code: e.code }),
    );
    expect(got).toEqual(exp.ok ? { ok: true, hex: exp.dataHex } : { ok: false, code: exp.code });
    expect(r.events).toEqual(expectedEvents(exp, 'read', this.offset, this.length, nameIndex(m)));

    // The headline rules, stated directly in terms of the truth.
    const truth = hex(m.truth.subarray(this.offset, end));
    if (m.pattern !== 'quorum') {
      const working = m.kids.filter((k) => !k.failed);
      if (working.length === 0) {
        expect(got).toEqual({ ok: false, code: 'EIO' });
        exercised.fifoFailed++;
      } else if (working.every((k) => hex(k.content.subarray(this.offset, end)) === truth)) {
        expect(got).toEqual({ ok: true, hex: truth });
        exercised.fifoTruth++;
      }
      return;
    }
    if (m.threshold * 2 <= n) exercised.minority++;
    const good = m.kids.filter((k) => !k.failed && hex(k.content.subarray(this.offset, end)) === truth).length;
    const bad = n - good;
    if (bad <= n - m.threshold && good * 2 > n) {
      expect(got).toEqual({ ok: true, hex: truth });
      exercised.truth++;
    }
    const leaks = m.kids.some((k) => k.tainted.subarray(this.offset, end).includes(1));
    if (bad > n - m.threshold && m.threshold >= 2 && m.majorityAlways && !leaks) {
      expect(got).toEqual({ ok: false, code: 'EIO' });
      exercised.eio++;
    }

    if (exp.ok) {
      const winner = Buffer.from(exp.dataHex!, 'hex');
      for (const i of exp.rewrite) {
        m.kids[i].content.set(winner, this.offset);
        winner.forEach((b, j) => (m.kids[i].tainted[this.offset + j] = b === m.truth[this.offset + j] ? 0 : 1));
      }
    }
  }
  toString = (): string => `read(${this.offset}, ${this.length})`;
}

class CorruptCmd implements Cmd {
  constructor(readonly child: number, readonly offset: number, readonly length: number) {}
  check = (): boolean => true;
  async run(m: Model, r: Real): Promise<void> {
    const i = at(m, this.child);
    // A value no write and no other corruption uses, so corrupted copies never agree.
    const data = new Uint8Array(this.length).fill(4 + (m.nextCorruption++ % 250));
    await r.kids[i].mem.write(this.offset, data); // behind the quorum's back, like bit rot
    m.kids[i].content.set(data, this.offset);
    m.kids[i].tainted.fill(0, this.offset, this.offset + this.length);
  }
  toString = (): string => `corrupt(${this.child}, ${this.offset}, ${this.length})`;
}

class FailCmd implements Cmd {
  constructor(readonly child: number) {}
  check = (m: Model): boolean => !m.kids[at(m, this.child)].failed;
  async run(m: Model, r: Real): Promise<void> {
    const i = at(m, this.child);
    r.kids[i].fault.failAll('EIO');
    m.kids[i].failed = true;
  }
  toString = (): string => `fail(${this.child})`;
}

class HealCmd implements Cmd {
  constructor(readonly child: number) {}
  check = (m: Model): boolean => m.kids[at(m, this.child)].failed;
  async run(m: Model, r: Real): Promise<void> {
    const i = at(m, this.child);
    r.kids[i].fault.clearRules();
    m.kids[i].failed = false;
  }
  toString = (): string => `heal(${this.child})`;
}

class FlushCmd implements Cmd {
  check = (): boolean => true;
  async run(m: Model, r: Real): Promise<void> {
    r.events.length = 0;
    const outcomes: ModelOutcome[] = m.kids.map((k) => (k.failed ? { ok: false, code: 'EIO' } : { ok: true }));
    const exp = modelCompletion(outcomes, m.threshold, false);
    const got = await r.q.flush().then(() => 'ok', (e: { code: string }) => e.code);
    expect(got).toBe(exp.ok ? 'ok' : exp.code);
    expect(r.events).toEqual(expectedEvents(exp, 'flush', 0, 0, nameIndex(m)));
  }
  toString = (): string => 'flush()';
}

class AddChildCmd implements Cmd {
  check = (m: Model): boolean => m.kids.length < MAX_CHILDREN;
  async run(m: Model, r: Real): Promise<void> {
    // The caller's promise: the new child already holds the device's data.
    const mem = new MemoryDriver({ size: SIZE });
    await mem.write(0, m.truth);
    const fault = new FaultInjector(mem);
    const name = await r.q.addChild(fault);
    expect(name).toBe(`children.${m.nextName}`);
    r.kids.push({ name, mem, fault });
    m.kids.push({ name, content: m.truth.slice(), failed: false, tainted: new Uint8Array(SIZE) });
    m.nextName++;
  }
  toString = (): string => 'addChild()';
}

class RemoveChildCmd implements Cmd {
  constructor(readonly child: number) {}
  check = (): boolean => true;
  async run(m: Model, r: Real): Promise<void> {
    const i = at(m, this.child);
    const target = this.child % 2 === 0 ? r.kids[i].fault : r.kids[i].name;
    if (m.kids.length - 1 < m.threshold) {
      await expect(r.q.removeChild(target)).rejects.toMatchObject({ code: 'EINVAL' });
      return;
    }
    expect(await r.q.removeChild(target)).toBe(r.kids[i].fault);
    expect(r.q.children).not.toContain(r.kids[i].fault);
    r.kids.splice(i, 1);
    m.kids.splice(i, 1);
  }
  toString = (): string => `removeChild(${this.child})`;
}

const range = fc.integer({ min: 0, max: SIZE - 1 }).chain((offset) => fc.record({ offset: fc.constant(offset), length: fc.integer({ min: 1, max: SIZE - offset }) }));
// Few distinct byte values, so stale copies, leaked writes and coincidences actually happen.
const bytesAt = range.chain(({ offset, length }) =>
  fc.record({ offset: fc.constant(offset), data: fc.uint8Array({ minLength: length, maxLength: length, max: 3 }) }),
);
const child = fc.nat({ max: MAX_CHILDREN * 2 });

const commands = fc.commands(
  [
    bytesAt.map(({ offset, data }) => new WriteCmd(offset, data)),
    bytesAt.map(({ offset, data }) => new WriteCmd(offset, data)),
    fc.tuple(range, fc.constantFrom('writeZeroes' as const, 'discard' as const)).map(([{ offset, length }, how]) => new WriteCmd(offset, new Uint8Array(length), how)),
    range.map(({ offset, length }) => new ReadCmd(offset, length)),
    range.map(({ offset, length }) => new ReadCmd(offset, length)),
    range.map(({ offset, length }) => new ReadCmd(offset, length)),
    fc.tuple(child, range).map(([c, { offset, length }]) => new CorruptCmd(c, offset, length)),
    child.map((c) => new FailCmd(c)),
    child.map((c) => new HealCmd(c)),
    fc.constant(new FlushCmd()),
    fc.constant(new AddChildCmd()),
    child.map((c) => new RemoveChildCmd(c)),
  ],
  { maxCommands: 60, size: 'medium' },
);

const config = fc.integer({ min: 1, max: 4 }).chain((n) =>
  fc.record({
    n: fc.constant(n),
    // Majority thresholds and minority ones (threshold ≤ N/2) alike.
    threshold: fc.integer({ min: 1, max: n }),
    pattern: fc.constantFrom<ReadPattern>('quorum', 'quorum', 'fifo', 'round-robin', 'least-pending'),
    rewrite: fc.boolean(),
  }),
);

describe('Quorum against a Uint8Array model (fc.commands)', () => {
  it('reads return the truth while enough children are good, and fail with EIO otherwise, in every read pattern', async () => {
    await fc.assert(
      fc.asyncProperty(config, commands, async ({ n, threshold, pattern, rewrite: wanted }, cmds) => {
        const rewrite = wanted && pattern === 'quorum';
        const kids = Array.from({ length: n }, (_, i) => {
          const mem = new MemoryDriver({ size: SIZE });
          return { name: `children.${i}`, mem, fault: new FaultInjector(mem) };
        });
        const q = new Quorum({ children: kids.map((k) => k.fault), threshold, readPattern: pattern, rewriteCorrupted: rewrite });
        const real: Real = { q, kids, events: record(q) };
        const model: Model = {
          truth: new Uint8Array(SIZE),
          kids: kids.map((k) => ({ name: k.name, content: new Uint8Array(SIZE), failed: false, tainted: new Uint8Array(SIZE) })),
          threshold,
          pattern,
          turn: 0,
          rewrite,
          nextName: n,
          majorityAlways: true,
          nextCorruption: 0,
        };
        await fc.asyncModelRun(() => ({ model, real }), cmds);
        await q.close();
      }),
      { numRuns: 300 },
    );
    // Every rule was really checked, many times.
    expect(exercised.truth).toBeGreaterThan(300);
    expect(exercised.eio).toBeGreaterThan(30);
    expect(exercised.fifoTruth).toBeGreaterThan(300);
    expect(exercised.fifoFailed).toBeGreaterThan(10);
    expect(exercised.minority).toBeGreaterThan(100);
  });
});
