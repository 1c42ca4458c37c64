/**
 * The scenarios of QEMU's iotest 081 (and its add/remove-child rules) as plain tests, on real
 * MemoryDrivers; a FaultInjector stands in for a failing disk.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryDriver } from '../../src/drivers/memory.js';
import { Delay } from '../../src/filters/delay.js';
import { FaultInjector } from '../../src/filters/fault-injector.js';
import { Quorum } from '../../src/quorum/quorum.js';
import type { QuorumFailure, QuorumReportBad } from '../../src/quorum/events.js';

const SIZE = 1024 * 1024;
const fill = (byte: number, n = SIZE): Uint8Array => new Uint8Array(n).fill(byte);
const allBytes = (data: Uint8Array, byte: number): boolean => data.every((b) => b === byte);

let open: Quorum[] = [];
afterEach(async () => {
  await Promise.all(open.map((q) => q.close()));
  open = [];
});

function quorumOf(n: number, options: Partial<ConstructorParameters<typeof Quorum>[0]> = {}) {
  const mems = Array.from({ length: n }, () => new MemoryDriver({ size: SIZE }));
  const q = new Quorum({ children: mems, threshold: 2, ...options });
  open.push(q);
  const bad: QuorumReportBad[] = [];
  const failures: QuorumFailure[] = [];
  q.on('report-bad', (e) => bad.push(e));
  q.on('failure', (e) => failures.push(e));
  return { q, mems, bad, failures };
}

describe('iotest 081: 3 children, threshold 2', () => {
  it('a quorum write reaches every image', async () => {
    const { q, mems } = quorumOf(3);
    await q.write(0, fill(0x32));
    for (const m of mems) expect(allBytes(await m.read(0, SIZE), 0x32)).toBe(true);
  });

  it('one corrupted image: the read returns the majority and reports exactly that child', async () => {
    const { q, mems, bad, failures } = quorumOf(3);
    await q.write(0, fill(0x32));
    await mems[1].write(0, fill(0x42));
    expect(allBytes(await q.read(0, SIZE), 0x32)).toBe(true);
    expect(bad.map((e) => [e.child, e.driver, e.type, e.offset, e.length, e.error])).toEqual([
      ['children.1', mems[1], 'read', 0, SIZE, undefined],
    ]);
    expect(failures).toEqual([]);
    // Without rewriteCorrupted the image stays corrupted.
    expect(allBytes(await mems[1].read(0, SIZE), 0x42)).toBe(true);
  });

  it('with rewriteCorrupted the corrupted image is repaired', async () => {
    const { q, mems, bad } = quorumOf(3, { rewriteCorrupted: true });
    await q.write(0, fill(0x32));
    await mems[1].write(0, fill(0x42));
    expect(allBytes(await q.read(0, SIZE), 0x32)).toBe(true);
    expect(bad.map((e) => e.child)).toEqual(['children.1']);
    expect(allBytes(await mems[1].read(0, SIZE), 0x32)).toBe(true);
    // Repaired: the next read takes the fast path and reports nothing.
    bad.length = 0;
    await q.read(0, SIZE);
    expect(bad).toEqual([]);
  });

  it('two different corruptions break the quorum: EIO and a failure event, nothing repaired', async () => {
    const { q, mems, bad, failures } = quorumOf(3, { rewriteCorrupted: true });
    await q.write(0, fill(0x32));
    await mems[0].write(0, fill(0x41));
    await mems[1].write(0, fill(0x42));
    await expect(q.read(0, SIZE)).rejects.toMatchObject({ code: 'EIO' });
    expect(failures).toEqual([{ quorum: 'quorum', type: 'read', offset: 0, length: SIZE, suppressed: 0 }]);
    expect(bad).toEqual([]);
    expect(allBytes(await mems[0].read(0, SIZE), 0x41)).toBe(true);
  });

  it('one failing disk: the read still succeeds and the error is reported with its code', async () => {
    const mems = Array.from({ length: 3 }, () => new MemoryDriver({ size: SIZE }));
    const broken = new FaultInjector(mems[2]);
    const q = new Quorum({ children: [mems[0], mems[1], broken], threshold: 2, rewriteCorrupted: true });
    open.push(q);
    await q.write(0, fill(0x32));
    broken.failAll('EIO');
    const bad: QuorumReportBad[] = [];
    q.on('report-bad', (e) => bad.push(e));
    expect(allBytes(await q.read(0, 4096), 0x32)).toBe(true);
    expect(bad.map((e) => [e.child, e.type, e.error?.code])).toEqual([['children.2', 'read', 'EIO']]);
    // A failed child is not "repaired": only outvoted copies are rewritten.
    expect(broken.injected).toBe(1);
  });
});

describe('blkverify', () => {
  it('a mismatch fails the read with EIO naming the first differing offset (and never exits)', async () => {
    const { q, mems, failures } = quorumOf(2, { blkverify: true });
    await q.write(0, fill(0x32));
    await mems[1].write(70_000, new Uint8Array([7]));
    await expect(q.read(65_536, 8192)).rejects.toMatchObject({
      code: 'EIO',
      message: expect.stringContaining('contents mismatch at offset 70000'),
      details: expect.objectContaining({ mismatchOffset: 70_000 }),
    });
    expect(failures).toHaveLength(1);
    expect(allBytes(await q.read(0, 65_536), 0x32)).toBe(true);
  });

  it('is refused in invalid combinations', () => {
    const m = () => new MemoryDriver({ size: 512 });
    expect(() => new Quorum({ children: [m(), m(), m()], threshold: 2, blkverify: true })).toThrow(/exactly 2 children/);
    expect(() => new Quorum({ children: [m(), m()], threshold: 1, blkverify: true })).toThrow(/threshold 2/);
    expect(() => new Quorum({ children: [m(), m()], threshold: 2, blkverify: true, rewriteCorrupted: true })).toThrow(/exclude/);
    expect(() => new Quorum({ children: [m(), m()], threshold: 2, blkverify: true, readPattern: 'fifo' })).toThrow(/readPattern 'quorum'/);
  });
});

describe('add and remove children', () => {
  it('names children with a counter never reused, and refuses to go below the threshold', async () => {
    const { q, mems } = quorumOf(3);
    expect(q.members.map((m) => m.name)).toEqual(['children.0', 'children.1', 'children.2']);
    expect(await q.removeChild('children.1')).toBe(mems[1]);
    expect(mems[1].state).toBe('open'); // handed back, not closed
    const extra = new MemoryDriver({ size: SIZE });
    expect(await q.addChild(extra)).toBe('children.3');
    expect(q.members.map((m) => m.name)).toEqual(['children.0', 'children.2', 'children.3']);
    expect(await q.removeChild(extra)).toBe(extra);
    await expect(q.removeChild(mems[0])).rejects.toMatchObject({ code: 'EINVAL', message: expect.stringMatching(/below the threshold 2/) });
    await expect(q.removeChild('children.1')).rejects.toMatchObject({ code: 'EINVAL', message: expect.stringMatching(/not a child/) });
    expect(q.children).toEqual([mems[0], mems[2]]);
    expect(await q.addChild(new MemoryDriver({ size: SIZE }))).toBe('children.4');
  });

  it('refuses a child of another size, a duplicate, a closed driver, and any child in blkverify mode', async () => {
    const { q, mems } = quorumOf(3);
    await expect(q.addChild(new MemoryDriver({ size: SIZE + 512 }))).rejects.toMatchObject({ code: 'EINVAL' });
    await expect(q.addChild(mems[0])).rejects.toMatchObject({ code: 'EINVAL' });
    const closed = new MemoryDriver({ size: SIZE });
    await closed.close();
    await expect(q.addChild(closed)).rejects.toMatchObject({ code: 'EINVAL' });
    const v = quorumOf(2, { blkverify: true });
    await expect(v.q.addChild(new MemoryDriver({ size: SIZE }))).rejects.toMatchObject({ code: 'ENOTSUP' });
    expect(q.children).toHaveLength(3);
  });

  it('an added child takes part in writes and votes; a removed child no longer sees requests', async () => {
    const { q, mems, bad } = quorumOf(2);
    await q.write(0, fill(0x32, 4096));
    const extra = new MemoryDriver({ size: SIZE });
    await extra.write(0, fill(0x32, 4096)); // the caller's promise: same data
    await q.addChild(extra);
    await q.write(4096, fill(0x33, 4096));
    expect(allBytes(await extra.read(4096, 4096), 0x33)).toBe(true);
    await mems[0].write(0, fill(0x66, 4096)); // now outvoted 2 to 1
    expect(allBytes(await q.read(0, 4096), 0x32)).toBe(true);
    expect(bad.map((e) => e.child)).toEqual(['children.0']);
    await q.removeChild(mems[0]);
    await q.write(0, fill(0x44, 4096));
    expect(allBytes(await mems[0].read(0, 4096), 0x66)).toBe(true);
  });

  it('removeChild waits for the requests already on that child', async () => {
    const { q } = quorumOf(3);
    const disk = new MemoryDriver({ size: SIZE });
    const slow = new Delay(disk, { delays: { write: 30 } });
    await q.addChild(slow);
    const write = q.write(0, fill(1, 512));
    expect(q.members[3].pending).toBe(1);
    await q.removeChild(slow);
    // By the time removal resolves, the write already on the slow child has landed.
    expect(allBytes(await disk.read(0, 512), 1)).toBe(true);
    await write;
    await slow.close();
  });
});
