/**
 * Properties of the server's pure rules: request validation against the spec's error table,
 * advertised block sizes and flags, block-status extents, sparse READ plans, the buffer pool,
 * socket activation and PSK files.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Cmd, CmdFlag, TransmissionFlag, type NbdRequest } from '../../../src/nbd/protocol/index.js';
import { blockSizes, transmissionFlags } from '../../../src/nbd/server/export-flags.js';
import { planSparseRead, statusExtents } from '../../../src/nbd/server/reply-chunks.js';
import { expectAlignedTiling } from '../../helpers/ranges.js';
import { BufferPool, binSize } from '../../../src/buffers/pool.js';
import { checkRequest, type RequestContext } from '../../../src/nbd/server/request-checks.js';
import { parseNbdPskFile, socketActivationFds } from '../../../src/nbd/server/index.js';
import type { BlockExtent } from '../../../src/types.js';

const capsArb = fc.record({
  canWrite: fc.boolean(),
  canFlush: fc.boolean(),
  canFua: fc.boolean(),
  canDiscard: fc.boolean(),
  canZero: fc.boolean(),
  canFastZero: fc.boolean(),
  canBlockStatus: fc.boolean(),
  canMultiConn: fc.boolean(),
  canCache: fc.boolean(),
});

describe('request validation', () => {
  const ctxArb = fc.record({
    size: fc.integer({ min: 0, max: 2 ** 40 }),
    readOnly: fc.boolean(),
    structured: fc.boolean(),
    extended: fc.boolean(),
    allocationSelected: fc.boolean(),
    minBlockSize: fc.constantFrom(1, 512, 4096),
    maxPayload: fc.constantFrom(65536, 32 * 1024 * 1024),
  });
  const reqArb = fc.record({
    type: fc.oneof(fc.integer({ min: 0, max: 9 }), fc.integer({ min: 0, max: 0xffff })),
    flags: fc.oneof(fc.constant(0), fc.constantFrom(1, 2, 4, 8, 16, 32, 3, 18, 64), fc.integer({ min: 0, max: 0xffff })),
    offset: fc.oneof(fc.integer({ min: 0, max: 2 ** 41 }), fc.constantFrom(0, 512, 2 ** 53, 2 ** 64)),
    length: fc.oneof(fc.integer({ min: 0, max: 2 ** 33 }), fc.constantFrom(0, 1, 512, 0xffffffff)),
  });

  /** The spec's table, written out as the order in which its errors apply. */
  function expected(r: { type: number; flags: number; offset: number; length: number }, c: RequestContext & { readOnly: boolean }): string | undefined {
    const known = [Cmd.READ, Cmd.WRITE, Cmd.FLUSH, Cmd.TRIM, Cmd.CACHE, Cmd.WRITE_ZEROES, Cmd.BLOCK_STATUS] as number[];
    if (!known.includes(r.type)) return 'EINVAL';
    const perCommand: Record<number, number> = {
      [Cmd.READ]: c.structured ? CmdFlag.DF : 0,
      [Cmd.WRITE]: c.extended ? CmdFlag.PAYLOAD_LEN : 0,
      [Cmd.WRITE_ZEROES]: CmdFlag.NO_HOLE | (c.readOnly ? 0 : CmdFlag.FAST_ZERO),
      [Cmd.BLOCK_STATUS]: CmdFlag.REQ_ONE,
    };
    if ((r.flags & ~(CmdFlag.FUA | (perCommand[r.type] ?? 0))) !== 0) return 'EINVAL';
    // FLUSH carries no range: the spec has its offset and length zero.
    if (r.type === Cmd.FLUSH) return r.offset !== 0 || r.length !== 0 ? 'EINVAL' : undefined;
    if (c.readOnly && [Cmd.WRITE, Cmd.TRIM, Cmd.WRITE_ZEROES].includes(r.type as 1)) return 'EPERM';
    if ((r.type === Cmd.READ || r.type === Cmd.WRITE) && r.length > c.maxPayload) return 'EINVAL';
    if (r.offset + r.length > c.size) return r.type === Cmd.WRITE || r.type === Cmd.WRITE_ZEROES ? 'ENOSPC' : 'EINVAL';
    if (r.offset % c.minBlockSize !== 0 || r.length % c.minBlockSize !== 0) return 'EINVAL';
    if (r.type === Cmd.BLOCK_STATUS && (!c.allocationSelected || r.length === 0)) return 'EINVAL';
    return undefined;
  }

  it('answers exactly what the spec table says', () => {
    fc.assert(
      fc.property(reqArb, ctxArb, (r, c) => {
        const flags =
          TransmissionFlag.HAS_FLAGS | (c.readOnly ? TransmissionFlag.READ_ONLY : TransmissionFlag.SEND_FAST_ZERO | TransmissionFlag.SEND_WRITE_ZEROES);
        const ctx: RequestContext = { ...c, flags };
        const req: NbdRequest = { ...r, offsetHi: 0, offsetLo: 0, cookieHi: 0, cookieLo: 1, payload: undefined, error: undefined, errorMessage: undefined };
        expect(checkRequest(req, ctx)?.code).toBe(expected(r, { ...ctx, readOnly: c.readOnly }));
      }),
      { numRuns: 2000 },
    );
  });

  it('passes on an error the parser already found', () => {
    const req: NbdRequest = { type: Cmd.WRITE, flags: 0, cookieHi: 0, cookieLo: 0, offset: 0, offsetHi: 0, offsetLo: 0, length: 5, payload: undefined, error: 'EINVAL', errorMessage: 'too big' };
    const ctx: RequestContext = { size: 100, flags: 1, structured: false, extended: false, allocationSelected: false, minBlockSize: 1, maxPayload: 65536 };
    expect(checkRequest(req, ctx)).toEqual({ code: 'EINVAL', message: 'too big' });
  });
});

describe('advertised export properties', () => {
  it('block sizes always satisfy the rules qemu enforces', () => {
    fc.assert(
      fc.property(
        fc.record({
          minBlockSize: fc.oneof(fc.constantFrom(1, 512, 4096, 65536, 131072), fc.integer({ min: 1, max: 200000 })),
          preferredBlockSize: fc.integer({ min: 1, max: 2 ** 26 }),
          maxBlockSize: fc.integer({ min: 1, max: 2 ** 32 }),
          maxTransfer: fc.integer({ min: 1, max: 2 ** 32 }),
        }),
        fc.integer({ min: 65536, max: 0xffffffff }),
        (limits, maxPayload) => {
          const s = blockSizes(limits, maxPayload);
          const pow2 = (n: number) => n > 0 && Number.isInteger(Math.log2(n));
          expect(pow2(s.minimum) && s.minimum <= 65536).toBe(true);
          expect(pow2(s.preferred) && s.preferred >= Math.max(s.minimum, 512)).toBe(true);
          expect(s.maximum).toBeGreaterThanOrEqual(s.preferred);
          expect(s.maximum % s.minimum).toBe(0);
          expect(s.maximum).toBeLessThanOrEqual(Math.max(maxPayload, s.preferred));
          // The driver's maximum holds whenever the spec's floor for preferred leaves room for it.
          if (limits.maxBlockSize >= Math.max(s.minimum, 512)) expect(s.maximum).toBeLessThanOrEqual(limits.maxBlockSize);
        },
      ),
    );
  });

  it('transmission flags follow the capabilities and never offer writes on a read-only export', () => {
    fc.assert(
      fc.property(capsArb, fc.boolean(), fc.boolean(), (caps, readOnly, structured) => {
        const f = transmissionFlags({ caps, readOnly, structured });
        const has = (bit: number) => (f & bit) !== 0;
        expect(has(TransmissionFlag.HAS_FLAGS)).toBe(true);
        expect(has(TransmissionFlag.READ_ONLY)).toBe(readOnly);
        for (const bit of [TransmissionFlag.SEND_TRIM, TransmissionFlag.SEND_WRITE_ZEROES, TransmissionFlag.SEND_FAST_ZERO, TransmissionFlag.SEND_FUA]) {
          if (readOnly) expect(has(bit)).toBe(false);
        }
        if (!readOnly) expect(has(TransmissionFlag.SEND_WRITE_ZEROES)).toBe(true);
        expect(has(TransmissionFlag.SEND_TRIM)).toBe(!readOnly && caps.canDiscard);
        expect(has(TransmissionFlag.CAN_MULTI_CONN)).toBe(caps.canMultiConn);
        expect(has(TransmissionFlag.SEND_CACHE)).toBe(caps.canCache);
        expect(has(TransmissionFlag.SEND_FLUSH)).toBe(caps.canFlush);
        expect(has(TransmissionFlag.SEND_DF)).toBe(structured);
        // FAST_ZERO only ever comes with WRITE_ZEROES.
        if (has(TransmissionFlag.SEND_FAST_ZERO)) expect(has(TransmissionFlag.SEND_WRITE_ZEROES)).toBe(true);
        expect(has(TransmissionFlag.BLOCK_STATUS_PAYLOAD)).toBe(false);
      }),
    );
  });
});

/** Contiguous extents from `offset` covering at most `length`. */
const extentsArb = fc
  .tuple(fc.integer({ min: 0, max: 1 << 20 }), fc.array(fc.tuple(fc.integer({ min: 1, max: 70000 }), fc.boolean(), fc.boolean()), { minLength: 1, maxLength: 30 }))
  .map(([offset, parts]) => {
    let pos = offset;
    const extents: BlockExtent[] = parts.map(([len, zero, allocated]) => {
      const e = { offset: pos, length: len, zero, allocated };
      pos += len;
      return e;
    });
    return { offset, extents, total: pos - offset };
  });

describe('block-status extents', () => {
  it('are nonzero, contiguous, within the request, on 512-byte (and minimum block) boundaries inside it, truthful, and as many as allowed', () => {
    fc.assert(
      fc.property(extentsArb, fc.constantFrom(1, 512, 4096), fc.constantFrom(1, 4096), fc.boolean(), fc.integer({ min: 0, max: 1 << 20 }), ({ offset, extents, total }, min, max, wide, extra) => {
        const aligned = offset - (offset % min);
        const shifted = extents.map((e) => ({ ...e, offset: e.offset - offset + aligned }));
        const length = Math.max(min, total + extra - ((total + extra) % min));
        const reported = aligned + total;
        const out = statusExtents(shifted, aligned, length, min, max, wide);
        const grain = Math.max(min, 512);
        expect(out.length).toBeGreaterThanOrEqual(1);
        expect(out.length).toBeLessThanOrEqual(max);
        let pos = aligned;
        for (const d of out) {
          expect(d.length).toBeGreaterThan(0);
          const stop = pos + d.length;
          // qemu widens zero runs to whole sectors: a boundary inside one would make it skip data.
          if (stop !== aligned + length) expect(stop % grain).toBe(0);
          const touching = shifted.filter((e) => e.offset < stop && e.offset + e.length > pos);
          if (d.flags & 1) expect(stop <= reported && touching.every((e) => !e.allocated)).toBe(true);
          if (d.flags & 2) expect(stop <= reported && touching.every((e) => e.zero)).toBe(true);
          pos = stop;
        }
        expect(pos).toBeLessThanOrEqual(aligned + length);
        // The first descriptor keeps the driver's flags when its first extent covers the first block.
        const first = shifted[0];
        const firstBlockEnd = Math.min(Math.floor(aligned / grain) * grain + grain, aligned + length);
        if (first.offset + first.length >= firstBlockEnd) expect(out[0].flags).toBe((first.allocated ? 0 : 1) | (first.zero ? 2 : 0));
      }),
      { numRuns: 1000 },
    );
  });

  it('merge a sector split between extents the careful way: data if any part is, zero only if all is', () => {
    const e = (offset: number, length: number, allocated: boolean, zero: boolean) => ({ offset, length, allocated, zero });
    // The reviewer's case: a window at byte 1000 over 64 KiB chunks (hole, then data at 64536).
    expect(statusExtents([e(0, 64536, false, true), e(64536, 65536, true, false), e(130072, (1 << 20) - 130072, false, true)], 0, 1 << 20, 1, 4096, false)).toEqual([
      { length: 64512, flags: 3 },
      { length: 65536 + 512, flags: 0 },
      { length: (1 << 20) - 64512 - 65536 - 512, flags: 3 },
    ]);
    // An unaligned request: the first and last descriptors may be partial sectors.
    expect(statusExtents([e(100, 2000, false, true)], 100, 2000, 1, 4096, false)).toEqual([{ length: 2000, flags: 3 }]);
    expect(statusExtents([e(100, 300, true, false), e(400, 1700, false, true)], 100, 2000, 1, 4096, false)).toEqual([
      { length: 412, flags: 0 },
      { length: 1588, flags: 3 },
    ]);
    // Past an unaligned end of what the driver reported, the client asks again.
    expect(statusExtents([e(0, 1000, false, true)], 0, 4096, 1, 4096, false)).toEqual([{ length: 512, flags: 3 }]);
    expect(statusExtents([e(0, 100, false, true)], 0, 4096, 1, 4096, false)).toEqual([{ length: 512, flags: 0 }]);
  });
});

describe('sparse READ plan', () => {
  it('covers the request exactly in pieces aligned to the minimum block size, holes only where the driver said zero and long enough', () => {
    fc.assert(
      fc.property(
        extentsArb,
        fc.integer({ min: 0, max: 100000 }),
        fc.constantFrom(1, 4096),
        fc.constantFrom(1, 512, 4096),
        ({ offset: extentsFrom, extents, total }, extra, minHole, align) => {
          // The server only plans aligned requests (misaligned ones are refused first).
          const offset = Math.ceil(extentsFrom / align) * align;
          const end = Math.floor((extentsFrom + Math.max(1, total - extra)) / align) * align;
          fc.pre(end > offset);
          const length = end - offset;
          const inRange = extents.filter((e) => e.offset + e.length > offset);
          if (inRange.length === 0 || inRange[0].offset > offset) return; // the plan needs extents from the request's start
          const from = inRange[0].offset === offset ? inRange : [{ ...inRange[0], offset, length: inRange[0].offset + inRange[0].length - offset }, ...inRange.slice(1)];
          const plan = planSparseRead(from, offset, length, minHole, align);
          if (plan === undefined) {
            // No hole worth sending: the aligned part of every zero extent, clipped to the request, is short.
            for (const e of from) {
              const a = Math.ceil(Math.max(e.offset, offset) / align) * align;
              const b = Math.floor(Math.min(e.offset + e.length, end) / align) * align;
              if (e.zero && b > a) expect(b - a).toBeLessThan(minHole);
            }
            return;
          }
          expect(expectAlignedTiling(plan, offset, align)).toBe(end);
          for (const p of plan) {
            if (p.hole) {
              expect(p.length).toBeGreaterThanOrEqual(minHole);
              for (const e of from) {
                const overlap = Math.min(e.offset + e.length, p.offset + p.length) - Math.max(e.offset, p.offset);
                if (overlap > 0) expect(e.zero).toBe(true);
              }
            }
          }
          expect(plan.some((p) => p.hole)).toBe(true);
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe('buffer pool', () => {
  it('reuses large buffers, never hands one out twice, and stays within its budget', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 1, max: 3 << 20 })), { maxLength: 60 }), (ops) => {
        const pool = new BufferPool(4 << 20);
        const out: Buffer[] = [];
        for (const [take, n] of ops) {
          if (take || out.length === 0) {
            const b = pool.take(n);
            expect(b.length).toBeGreaterThanOrEqual(n);
            for (const o of out) expect(o.buffer === b.buffer && b.length >= 65536).toBe(false);
            out.push(b);
          } else {
            pool.give(out.shift()!.subarray(0, 1));
          }
          expect(pool.idleBytes).toBeLessThanOrEqual(4 << 20);
        }
      }),
    );
    const pool = new BufferPool(8 << 20);
    const a = pool.take(1 << 20);
    pool.give(a.subarray(10, 20));
    expect(pool.take((1 << 20) - 5)).toBe(a);
    pool.give(Buffer.alloc(1 << 20));
    expect(pool.idleBytes).toBe(0);
  });
});

describe('socket activation', () => {
  it('returns fds 3.. only when LISTEN_PID names this process, and clears the variables', () => {
    const env: NodeJS.ProcessEnv = { LISTEN_PID: String(process.pid), LISTEN_FDS: '2', LISTEN_FDNAMES: 'a:b' };
    expect(socketActivationFds({ env })).toEqual([3, 4]);
    expect(env).toEqual({});
    expect(socketActivationFds({ env: { LISTEN_PID: '1', LISTEN_FDS: '1' } })).toEqual([]);
    expect(socketActivationFds({ env: { LISTEN_PID: `${process.pid}x`, LISTEN_FDS: '1' } })).toEqual([]);
    expect(socketActivationFds({ env: { LISTEN_PID: String(process.pid), LISTEN_FDS: '0' } })).toEqual([]);
    expect(socketActivationFds({ env: { LISTEN_PID: String(process.pid), LISTEN_FDS: '-1' } })).toEqual([]);
    expect(socketActivationFds({ env: {} })).toEqual([]);
    const keep: NodeJS.ProcessEnv = { LISTEN_PID: '7', LISTEN_FDS: '1' };
    expect(socketActivationFds({ env: keep, pid: 7, unsetEnvironment: false })).toEqual([3]);
    expect(keep.LISTEN_FDS).toBe('1');
  });
});

describe('PSK files', () => {
  it('parse identity:hexkey lines and reject anything else', () => {
    expect(parseNbdPskFile('alice:00ff\n# comment\n\nbob:0A0b\n')).toEqual(
      new Map([
        ['alice', Buffer.from([0, 255])],
        ['bob', Buffer.from([10, 11])],
      ]),
    );
    for (const bad of ['alice', ':00', 'alice:0', 'alice:zz', 'alice:']) expect(() => parseNbdPskFile(bad)).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    // A repeated identity: the first line wins, as GnuTLS (qemu, nbdkit) reads the same file.
    expect(parseNbdPskFile('alice:00\nalice:11\n').get('alice')).toEqual(Buffer.from([0x00]));
  });
});

describe('buffer pool bins', () => {
  it('fit every request within a quarter, and powers of two exactly', () => {
    fc.assert(
      fc.property(fc.integer({ min: 64 * 1024, max: 2 ** 31 }), (n) => {
        const bin = binSize(n);
        expect(bin).toBeGreaterThanOrEqual(n);
        expect(bin).toBeLessThanOrEqual(n * 1.25);
        expect(binSize(2 ** Math.floor(Math.log2(n)))).toBe(2 ** Math.floor(Math.log2(n)));
        // Requests of one bin share buffers: the bin of a bin is itself.
        expect(binSize(bin)).toBe(bin);
      }),
      { numRuns: 1000 },
    );
    const pool = new BufferPool(64 * 1024 * 1024);
    expect(pool.take(32 * 1024 * 1024 + 28).length).toBe(32 * 1024 * 1024 + 8 * 1024 * 1024);
    expect(pool.take(1024 * 1024).length).toBe(1024 * 1024);
  });
});
