/**
 * FaultInjector: each rule kind, the no-partial-write guarantee, determinism, and events.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MemoryDriver } from '../../src/drivers/memory.js';
import { BLOCK_ERROR_CODES, BlockError, type BlockErrorCode } from '../../src/errors.js';
import { FaultInjector, type FaultEvent, type FaultOp, type FaultRule } from '../../src/filters/fault-injector.js';
import { BLOCK_OPS } from '../../src/filters/ops.js';
import { blockDriverSuite } from '../conformance/index.js';
import { Reshape, sameBytes } from './helpers.js';

blockDriverSuite({ name: 'FaultInjector (no rules)', factory: ({ size }) => new FaultInjector(new MemoryDriver({ size })) });
blockDriverSuite({
  name: 'FaultInjector (disabled failAll)',
  factory: ({ size }) => {
    const f = new FaultInjector(new MemoryDriver({ size }), { seed: 1 });
    f.failAll('ENOSPC');
    f.enabled = false;
    return f;
  },
});

const SIZE = 8192;

/** Issues one request of kind `op`; resolves to the error code or 'ok'. */
async function issue(d: FaultInjector, op: FaultOp, offset: number, length: number): Promise<BlockErrorCode | 'ok'> {
  try {
    switch (op) {
      case 'read':
        await d.read(offset, length);
        break;
      case 'write':
        await d.write(offset, new Uint8Array(length).fill(0xee));
        break;
      case 'flush':
        await d.flush();
        break;
      case 'discard':
        await d.discard(offset, length);
        break;
      case 'writeZeroes':
        await d.writeZeroes(offset, length);
        break;
      case 'blockStatus':
        await d.blockStatus(offset, length);
        break;
      case 'cache':
        await d.cache(offset, length);
        break;
    }
    return 'ok';
  } catch (err) {
    expect(err).toBeInstanceOf(BlockError);
    return (err as BlockError).code;
  }
}

/** A MemoryDriver that also accepts cache(), so cache requests reach the injector. */
const child = (size = SIZE): MemoryDriver | Reshape => new Reshape(new MemoryDriver({ size }), { caps: { canCache: true } });

const arbRange = (size: number) =>
  fc.integer({ min: 0, max: size - 1 }).chain((offset) => fc.tuple(fc.constant(offset), fc.integer({ min: 1, max: size - offset })));

describe('FaultInjector rules', () => {
  it('ops: a rule fires exactly for the operations it lists', async () => {
    await fc.assert(
      fc.asyncProperty(fc.subarray([...BLOCK_OPS]), fc.constantFrom(...BLOCK_OPS), fc.constantFrom(...BLOCK_ERROR_CODES), async (ops, op, code) => {
        const d = new FaultInjector(child(), { rules: [{ ops, error: code }] });
        // A native write-zeroes refused with ENOTSUP is, by contract, retried as plain writes of
        // zeros (QEMU's fallback), so that one fault is invisible to the caller.
        // (unless the rule also fails those writes).
        const masked = op === 'writeZeroes' && code === 'ENOTSUP' && !ops.includes('write');
        expect(await issue(d, op, 0, 100)).toBe(ops.includes(op) && !masked ? code : 'ok');
        await d.close();
      }),
      { numRuns: 200 },
    );
  });

  it('range: a rule fires for requests overlapping its range; flush ignores the range', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.tuple(fc.integer({ min: 0, max: SIZE }), fc.oneof(fc.constant(0), fc.integer({ min: 0, max: SIZE }))),
        arbRange(SIZE),
        fc.constantFrom(...BLOCK_OPS),
        async ([rOffset, rLength], [offset, length], op) => {
          const d = new FaultInjector(child(), { rules: [{ range: { offset: rOffset, length: rLength } }] });
          // Overlap, stated independently: some byte of the request lies inside the rule's range.
          let overlap = false;
          for (let b = offset; b < offset + length && !overlap; b++) overlap = b >= rOffset && b < rOffset + rLength;
          expect(await issue(d, op, offset, length)).toBe(op === 'flush' || overlap ? 'EIO' : 'ok');
          await d.close();
        },
      ),
      { numRuns: 300 },
    );
  });

  it('afterCalls and times: of the matching calls, exactly numbers afterCalls .. afterCalls+times-1 fail', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: 6 }),
        fc.option(fc.integer({ min: 0, max: 6 }), { nil: undefined }),
        fc.array(fc.boolean(), { minLength: 1, maxLength: 25 }),
        async (afterCalls, times, matching) => {
          const d = new FaultInjector(child(), { rules: [{ ops: ['read'], range: { offset: 0, length: 100 }, afterCalls, times }] });
          let k = 0;
          for (const m of matching) {
            // Non-matching calls (other range, other op) must not advance the rule's counters.
            const result = m ? await issue(d, 'read', 50, 10) : await issue(d, k % 2 ? 'write' : 'read', 200, 10);
            if (m) {
              const fires = k >= afterCalls && (times === undefined || k < afterCalls + times);
              expect(result).toBe(fires ? 'EIO' : 'ok');
              k++;
            } else expect(result).toBe('ok');
          }
          await d.close();
        },
      ),
      { numRuns: 200 },
    );
  });

  it('rate: the same seed gives the same faults; 0 never fires; 1 always fires', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer(), fc.double({ min: 0, max: 1, noNaN: true }), async (seed, rate) => {
        const pattern = async (): Promise<string> => {
          const d = new FaultInjector(child(), { seed, rules: [{ ops: ['read'], rate }] });
          let out = '';
          for (let i = 0; i < 40; i++) out += (await issue(d, 'read', i, 1)) === 'ok' ? '.' : 'x';
          await d.close();
          return out;
        };
        const a = await pattern();
        expect(await pattern()).toBe(a);
        if (rate === 0) expect(a).not.toContain('x');
        if (rate === 1) expect(a).not.toContain('.');
      }),
      { numRuns: 60 },
    );
  });

  it('rate: the fraction of fired calls follows the rate, and the seed is reported back', async () => {
    for (const rate of [0.1, 0.5, 0.9]) {
      const d = new FaultInjector(child(), { seed: 12345, rules: [{ ops: ['read'], rate }] });
      expect(d.seed).toBe(12345);
      let fired = 0;
      for (let i = 0; i < 2000; i++) if ((await issue(d, 'read', 0, 1)) !== 'ok') fired++;
      // Seeded, so deterministic; the bound is ±5 standard deviations of a fair binomial.
      expect(Math.abs(fired / 2000 - rate)).toBeLessThan(5 * Math.sqrt((rate * (1 - rate)) / 2000));
      expect(d.injected).toBe(fired);
      await d.close();
    }
    const unseeded = new FaultInjector(child());
    expect(Number.isSafeInteger(unseeded.seed)).toBe(true);
    await unseeded.close();
  });

  it('rate: adding a rule does not change the draws of an existing one', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer(), fc.array(fc.boolean(), { minLength: 1, maxLength: 40 }), async (seed, interleave) => {
        const a = new FaultInjector(child(), { seed, rules: [{ ops: ['read'], rate: 0.5 }] });
        const b = new FaultInjector(child(), { seed, rules: [{ ops: ['read'], rate: 0.5 }] });
        b.addRule({ ops: ['write'], rate: 0.5 });
        for (const extra of interleave) {
          if (extra) await issue(b, 'write', 0, 1);
          expect(await issue(b, 'read', 0, 1)).toBe(await issue(a, 'read', 0, 1));
        }
        await a.close();
        await b.close();
      }),
      { numRuns: 50 },
    );
  });

  it('rules are tried in order: the first that fires decides, later ones do not see the call', async () => {
    const d = new FaultInjector(child(), {
      rules: [
        { ops: ['write'], error: 'ENOSPC', times: 1 },
        { ops: ['write'], error: 'EPERM', times: 1 },
      ],
    });
    expect(await issue(d, 'write', 0, 1)).toBe('ENOSPC');
    expect(await issue(d, 'write', 0, 1)).toBe('EPERM');
    expect(await issue(d, 'write', 0, 1)).toBe('ok');
    await d.close();
  });

  it('rejects malformed rules as programming errors', async () => {
    const d = new FaultInjector(child());
    const bad: unknown[] = [
      null,
      { ops: 'read' },
      { ops: ['fsync'] },
      { range: { offset: -1, length: 1 } },
      { range: { offset: 0, length: 1.5 } },
      { error: 'EWHAT' },
      { corrupt: true, ops: ['write'] },
      { corrupt: true, ops: ['read', 'write'] },
      { corrupt: true, corruptWith: 0 },
      { corrupt: true, corruptWith: 256 },
      { afterCalls: -1 },
      { times: 0.5 },
      { rate: 1.01 },
      { rate: Number.NaN },
    ];
    for (const rule of bad) {
      const typeError = rule === null || typeof (rule as { ops?: unknown }).ops === 'string';
      expect(() => d.addRule(rule as FaultRule)).toThrow(typeError ? TypeError : RangeError);
    }
    expect(() => new FaultInjector(child(), { seed: 1.5 })).toThrow(RangeError);
    await d.close();
  });
});

describe('FaultInjector corruption', () => {
  it('corrupts exactly the overlapping bytes of a read, leaving the child intact', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ minLength: 512, maxLength: 512 }),
        fc.tuple(fc.integer({ min: 0, max: 512 }), fc.integer({ min: 0, max: 512 })),
        arbRange(512),
        fc.option(fc.integer({ min: 1, max: 255 }), { nil: undefined }),
        async (content, [rOffset, rLength], [offset, length], corruptWith) => {
          const mem = new MemoryDriver({ size: 512 });
          await mem.write(0, content);
          const d = new FaultInjector(mem, { rules: [{ corrupt: true, range: { offset: rOffset, length: rLength }, corruptWith }] });
          const events: FaultEvent[] = [];
          d.on('fault', (e) => events.push(e));
          const got = await d.read(offset, length);
          let touched = false;
          for (let i = 0; i < length; i++) {
            const inside = offset + i >= rOffset && offset + i < rOffset + rLength;
            touched ||= inside;
            expect(got[i]).toBe(inside ? content[offset + i] ^ (corruptWith ?? 0xff) : content[offset + i]);
          }
          expect(events).toEqual(touched ? [{ op: 'read', offset, length, corrupt: true, rule: 1 }] : []);
          expect(sameBytes(await mem.read(0, 512), content)).toBe(true);
          await d.close();
        },
      ),
      { numRuns: 200 },
    );
  });

  it('corrupting rules leave every other operation alone', async () => {
    const d = new FaultInjector(child(), { rules: [{ corrupt: true }] });
    for (const op of BLOCK_OPS.filter((o) => o !== 'read')) expect(await issue(d, op, 0, 10)).toBe('ok');
    expect(d.injected).toBe(0);
    await d.close();
  });

  it('a corruption whose child read fails is not counted and does not use up `times`', async () => {
    const inner = new FaultInjector(new MemoryDriver({ size: SIZE }), { rules: [{ ops: ['read'], error: 'ETIMEDOUT', times: 1 }] });
    const d = new FaultInjector(inner, { rules: [{ corrupt: true, times: 1 }] });
    await expect(d.read(0, 4)).rejects.toMatchObject({ code: 'ETIMEDOUT' });
    expect(d.injected).toBe(0);
    expect([...(await d.read(0, 4))]).toEqual([0xff, 0xff, 0xff, 0xff]);
    expect([...(await d.read(0, 4))]).toEqual([0, 0, 0, 0]);
    expect(d.injected).toBe(1);
    await d.close();
  });
});

describe('FaultInjector control and events', () => {
  it('enabled, removeRule, clearRules and failAll switch faults on and off', async () => {
    const d = new FaultInjector(child(), { enabled: false, rules: [{ ops: ['read'], error: 'EIO' }] });
    expect(await issue(d, 'read', 0, 1)).toBe('ok');
    d.enabled = true;
    expect(await issue(d, 'read', 0, 1)).toBe('EIO');
    expect(d.removeRule(1)).toBe(true);
    expect(d.removeRule(1)).toBe(false);
    expect(d.removeRule(99)).toBe(false);
    expect(await issue(d, 'read', 0, 1)).toBe('ok');
    const all = d.failAll('ESHUTDOWN');
    expect(all).toBe(2);
    for (const op of BLOCK_OPS) expect(await issue(d, op, 0, 1)).toBe('ESHUTDOWN');
    expect(d.failAll()).toBe(3);
    d.clearRules();
    for (const op of BLOCK_OPS) expect(await issue(d, op, 0, 1)).toBe('ok');
    d.failAll();
    expect(await issue(d, 'flush', 0, 0)).toBe('EIO');
    await d.close();
  });

  it('a disabled injector does not count calls towards afterCalls', async () => {
    const d = new FaultInjector(child(), { enabled: false, rules: [{ ops: ['read'], afterCalls: 2 }] });
    for (let i = 0; i < 5; i++) expect(await issue(d, 'read', 0, 1)).toBe('ok');
    d.enabled = true;
    expect(await issue(d, 'read', 0, 1)).toBe('ok');
    expect(await issue(d, 'read', 0, 1)).toBe('ok');
    expect(await issue(d, 'read', 0, 1)).toBe('EIO');
    await d.close();
  });

  it("emits 'fault' for every injected failure, with a typed error naming the rule", async () => {
    const d = new FaultInjector(child(), { rules: [{ ops: ['write'], error: 'ENOSPC', range: { offset: 100, length: 1 } }] });
    const events: FaultEvent[] = [];
    d.on('fault', (e) => events.push(e));
    const err = (await d.write(90, new Uint8Array(20)).catch((e: unknown) => e)) as BlockError;
    expect(err).toBeInstanceOf(BlockError);
    expect(err.code).toBe('ENOSPC');
    expect(err.details).toMatchObject({ op: 'write', offset: 90, length: 20, injected: true, rule: 1 });
    expect(events).toEqual([{ op: 'write', offset: 90, length: 20, code: 'ENOSPC', corrupt: false, rule: 1 }]);
    expect(d.injected).toBe(1);
    await d.close();
  });

  it('a write-zeroes reaches the rules as one request even when the child zeroes by writing', async () => {
    const slow = new Reshape(new MemoryDriver({ size: 4 << 20 }), { caps: { canZero: false, canFastZero: false, canFua: false } });
    const d = new FaultInjector(slow, { rules: [{ ops: ['writeZeroes'], afterCalls: 1 }, { ops: ['write'], error: 'EPERM' }] });
    const events: FaultEvent[] = [];
    d.on('fault', (e) => events.push(e));
    // The first is let through by afterCalls and must not surface as 3 MiB of failing writes.
    await d.writeZeroes(0, 3 << 20, { fua: true });
    await expect(d.writeZeroes(0, 3 << 20)).rejects.toMatchObject({ code: 'EIO' });
    expect(events.map((e) => e.op)).toEqual(['writeZeroes']);
    await d.close();
  });
});

describe('FaultInjector against a model', () => {
  interface ModelRule {
    readonly id: number;
    readonly ops: readonly FaultOp[];
    readonly range: { offset: number; length: number } | undefined;
    readonly error: BlockErrorCode;
  }
  interface Model {
    disk: Uint8Array;
    rules: ModelRule[];
    enabled: boolean;
    faults: number;
  }
  interface Real {
    d: FaultInjector;
    mem: MemoryDriver;
    events: number;
  }
  const N = 4096;

  /** The code the model expects for a request, or undefined when it should reach the child. */
  const expected = (m: Model, op: FaultOp, offset: number, length: number): BlockErrorCode | undefined => {
    if (!m.enabled) return undefined;
    const rule = m.rules.find(
      (r) =>
        r.ops.includes(op) &&
        (op === 'flush' || r.range === undefined || Math.max(offset, r.range.offset) < Math.min(offset + length, r.range.offset + r.range.length)),
    );
    return rule?.error;
  };

  const request = (op: FaultOp, offset: number, length: number, fill: number): fc.AsyncCommand<Model, Real> => ({
    check: () => true,
    async run(m, r) {
      const code = expected(m, op, offset, length);
      let result: Uint8Array | BlockErrorCode | 'ok';
      try {
        if (op === 'read') result = await r.d.read(offset, length);
        else {
          if (op === 'write') await r.d.write(offset, new Uint8Array(length).fill(fill));
          else if (op === 'writeZeroes') await r.d.writeZeroes(offset, length);
          else if (op === 'discard') await r.d.discard(offset, length);
          else await r.d.flush();
          result = 'ok';
        }
      } catch (err) {
        result = (err as BlockError).code;
      }
      if (code !== undefined) {
        expect(result).toBe(code);
        m.faults++;
      } else if (op === 'read') expect(sameBytes(result as Uint8Array, m.disk.subarray(offset, offset + length))).toBe(true);
      else {
        expect(result).toBe('ok');
        if (op === 'write') m.disk.fill(fill, offset, offset + length);
        // MemoryDriver's discard zeroes what it does not free, so both read back as zeros.
        if (op === 'writeZeroes' || op === 'discard') m.disk.fill(0, offset, offset + length);
      }
      // A failed request must not have reached the child: the child holds exactly the model.
      expect(sameBytes(await r.mem.read(0, N), m.disk)).toBe(true);
      expect(r.d.injected).toBe(m.faults);
      expect(r.events).toBe(m.faults);
    },
    toString: () => `${op}(${offset}, ${length})`,
  });

  const addRule = (ops: FaultOp[], range: { offset: number; length: number } | undefined, error: BlockErrorCode): fc.AsyncCommand<Model, Real> => ({
    check: () => true,
    async run(m, r) {
      const id = r.d.addRule({ ops, range, error });
      m.rules.push({ id, ops, range, error });
    },
    toString: () => `addRule(${ops.join('|')}, ${range ? `${range.offset}+${range.length}` : '*'}, ${error})`,
  });
  const removeRule = (pick: number): fc.AsyncCommand<Model, Real> => ({
    check: (m) => m.rules.length > 0,
    async run(m, r) {
      const [rule] = m.rules.splice(pick % m.rules.length, 1);
      expect(r.d.removeRule(rule.id)).toBe(true);
      expect(r.d.removeRule(rule.id)).toBe(false);
    },
    toString: () => `removeRule(#${pick})`,
  });
  const clear: fc.AsyncCommand<Model, Real> = {
    check: () => true,
    async run(m, r) {
      r.d.clearRules();
      m.rules = [];
    },
    toString: () => 'clearRules',
  };
  const toggle: fc.AsyncCommand<Model, Real> = {
    check: () => true,
    async run(m, r) {
      m.enabled = !m.enabled;
      r.d.enabled = m.enabled;
    },
    toString: () => 'toggle',
  };

  it('random requests and rule changes agree with a model; failed changes never reach the child', async () => {
    const rangeArb = fc.integer({ min: 0, max: N - 1 }).chain((o) => fc.tuple(fc.constant(o), fc.integer({ min: 1, max: Math.min(1024, N - o) })));
    const commands = [
      fc
        .tuple(fc.constantFrom<FaultOp>('read', 'write', 'writeZeroes', 'discard', 'flush'), rangeArb, fc.integer({ min: 1, max: 255 }))
        .map(([op, [o, l], fill]) => request(op, o, l, fill)),
      fc
        .tuple(
          fc.subarray<FaultOp>(['read', 'write', 'writeZeroes', 'discard', 'flush'], { minLength: 1 }),
          fc.option(fc.tuple(fc.integer({ min: 0, max: N }), fc.integer({ min: 0, max: 1500 })), { nil: undefined }),
          fc.constantFrom<BlockErrorCode>('EIO', 'ENOSPC', 'EPERM'),
        )
        .map(([ops, range, error]) => addRule(ops, range && { offset: range[0], length: range[1] }, error)),
      fc.nat().map(removeRule),
      fc.constant(clear),
      fc.constant(toggle),
    ];
    await fc.assert(
      fc.asyncProperty(fc.commands(commands, { maxCommands: 40 }), async (cmds) => {
        const mem = new MemoryDriver({ size: N, chunkSize: 512 });
        const d = new FaultInjector(mem, { closeChild: true });
        const real: Real = { d, mem, events: 0 };
        d.on('fault', () => real.events++);
        await fc.asyncModelRun(() => ({ model: { disk: new Uint8Array(N), rules: [], enabled: true, faults: 0 }, real }), cmds);
        await d.close();
        expect(mem.state).toBe('closed');
      }),
      { numRuns: 150 },
    );
  });
});
