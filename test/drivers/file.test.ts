/**
 * FileDriver: opening and creating images, persistence, I/O, and error mapping. Durability
 * (fdatasync) is in file-durability.test.ts.
 */
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { chmodSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import * as fsp from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { FileDriver } from '../../src/drivers/file.js';
import { fileError } from '../../src/drivers/file-errors.js';
import { BlockError } from '../../src/errors.js';
import { spyOnDriver } from './handle-spy.js';

const dir = mkdtempSync(join(tmpdir(), 'blockgraph-file-'));
let n = 0;
const fresh = (): string => join(dir, `t-${n++}.img`);
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(() => vi.restoreAllMocks());

const openFds = (): number => readdirSync('/proc/self/fd').length;

describe('FileDriver.open', () => {
  it('creates a sparse file of the requested size that reads as zeros', async () => {
    const path = fresh();
    const d = await FileDriver.open(path, { create: true, size: 1_000_003 });
    expect(d.size).toBe(1_000_003);
    expect((await fsp.stat(path)).size).toBe(1_000_003);
    expect((await d.read(999_000, 1003)).every((b) => b === 0)).toBe(true);
    expect(d.capabilities.canWrite).toBe(true);
    expect(d.limits.minBlockSize).toBe(1);
    await d.close();
  });

  it('create with no size makes an empty device', async () => {
    const d = await FileDriver.open(fresh(), { create: true });
    expect(d.size).toBe(0);
    await expect(d.read(0, 1)).rejects.toMatchObject({ code: 'EINVAL' });
    await d.close();
  });

  it('opens an existing file at its own size, keeping its contents, with or without create', async () => {
    const path = fresh();
    await fsp.writeFile(path, Buffer.from('hello, block world'));
    for (const options of [{}, { create: true }, { size: 18 }, { create: true, size: 18 }]) {
      const d = await FileDriver.open(path, options);
      expect(d.size).toBe(18);
      expect(Buffer.from(await d.read(7, 5)).toString()).toBe('block');
      await d.close();
    }
  });

  it('refuses to resize an existing image: size mismatch is EINVAL and the file is untouched', async () => {
    const path = fresh();
    await fsp.writeFile(path, Buffer.alloc(100, 7));
    for (const size of [0, 99, 101]) {
      for (const create of [false, true]) {
        const err = await FileDriver.open(path, { size, create }).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(BlockError);
        expect(err).toMatchObject({ code: 'EINVAL', details: { op: 'open', path } });
      }
    }
    expect(await fsp.readFile(path)).toEqual(Buffer.alloc(100, 7));
  });

  it('a missing file without create is EINVAL with the ENOENT as cause, and nothing is created', async () => {
    const path = fresh();
    const err = (await FileDriver.open(path).catch((e: unknown) => e)) as BlockError;
    expect(err).toMatchObject({ code: 'EINVAL' });
    expect((err.cause as { code: string }).code).toBe('ENOENT');
    await expect(fsp.stat(path)).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(FileDriver.open(path, { readOnly: true })).rejects.toMatchObject({ code: 'EINVAL' });
  });

  it('rejects directories (EINVAL), devices and FIFOs (ENOTSUP) without blocking or leaking descriptors', async () => {
    const before = openFds();
    await expect(FileDriver.open(dir, { readOnly: true })).rejects.toMatchObject({ code: 'EINVAL' });
    await expect(FileDriver.open(dir)).rejects.toMatchObject({ code: 'EINVAL' });
    await expect(FileDriver.open('/dev/null')).rejects.toMatchObject({ code: 'ENOTSUP' });
    // A FIFO with no writer would block a plain O_RDONLY open forever.
    const fifo = fresh();
    execFileSync('mkfifo', [fifo]);
    await expect(FileDriver.open(fifo, { readOnly: true })).rejects.toMatchObject({ code: 'ENOTSUP' });
    await expect(FileDriver.open(fifo)).rejects.toMatchObject({ code: 'ENOTSUP' });
    // Linux refuses to open a socket at all (ENXIO).
    const socketPath = fresh();
    const server = createServer().listen(socketPath);
    await once(server, 'listening');
    try {
      await expect(FileDriver.open(socketPath)).rejects.toMatchObject({ code: 'ENOTSUP' });
      await expect(FileDriver.open(socketPath, { readOnly: true })).rejects.toMatchObject({ code: 'ENOTSUP' });
    } finally {
      server.close();
    }
    expect(openFds()).toBe(before);
  });

  it('creates the file in a directory it may write to but not read (mode 0333: no directory sync then)', async () => {
    const wx = mkdtempSync(join(tmpdir(), 'blockgraph-wx-'));
    chmodSync(wx, 0o333);
    const path = join(wx, 'image');
    // Root reads any directory: the open runs as nobody then (this test file has its own process).
    const asNobody = process.getuid?.() === 0;
    try {
      if (asNobody) {
        process.setegid!(65534);
        process.seteuid!(65534);
      }
      const d = await FileDriver.open(path, { create: true, size: 4096 });
      await d.write(0, new Uint8Array(4096).fill(6), { fua: true });
      await d.close();
    } finally {
      if (asNobody) {
        process.seteuid!(0);
        process.setegid!(0);
      }
    }
    expect((await fsp.readFile(path)).every((b) => b === 6)).toBe(true);
    rmSync(wx, { recursive: true, force: true });
  });

  it('a create that cannot size the file fails with ENOSPC and leaves no file behind', async () => {
    const path = fresh();
    // Past the largest file ext4/xfs/tmpfs allow: ftruncate fails with EFBIG.
    await expect(FileDriver.open(path, { create: true, size: Number.MAX_SAFE_INTEGER })).rejects.toMatchObject({ code: 'ENOSPC' });
    await expect(fsp.stat(path)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('rejects bad arguments as programming errors', async () => {
    await expect(FileDriver.open('')).rejects.toBeInstanceOf(TypeError);
    await expect(FileDriver.open(`${fresh()}\0x`, { create: true })).rejects.toBeInstanceOf(TypeError);
    await expect(FileDriver.open(fresh(), { create: true, readOnly: true })).rejects.toBeInstanceOf(TypeError);
    for (const size of [-1, 1.5, NaN, 2 ** 53]) {
      await expect(FileDriver.open(fresh(), { create: true, size })).rejects.toBeInstanceOf(RangeError);
    }
  });

  it('uses the given name in errors', async () => {
    const d = await FileDriver.open(fresh(), { create: true, size: 10, name: 'disk0' });
    expect(d.name).toBe('disk0');
    await expect(d.read(5, 10)).rejects.toThrow(/disk0/);
    await d.close();
  });
});

describe('FileDriver I/O', () => {
  it('agrees with a byte-array model across writes, reads, flushes and reopenings', async () => {
    const size = 70_001;
    type Real = { d: FileDriver; path: string };
    type Model = { bytes: Uint8Array };
    const write = (offset: number, data: Uint8Array, fua: boolean): fc.AsyncCommand<Model, Real> => ({
      check: () => true,
      async run(m, r) {
        await r.d.write(offset, data, { fua });
        m.bytes.set(data, offset);
      },
      toString: () => `write(${offset}, ${data.length}${fua ? ', fua' : ''})`,
    });
    const read = (offset: number, length: number): fc.AsyncCommand<Model, Real> => ({
      check: () => true,
      async run(m, r) {
        expect(Buffer.from(await r.d.read(offset, length)).equals(Buffer.from(m.bytes.subarray(offset, offset + length)))).toBe(true);
      },
      toString: () => `read(${offset}, ${length})`,
    });
    const reopen = (readOnly: boolean): fc.AsyncCommand<Model, Real> => ({
      check: () => true,
      async run(m, r) {
        await r.d.close();
        r.d = await FileDriver.open(r.path, { size });
        expect(Buffer.from(await fsp.readFile(r.path)).equals(Buffer.from(m.bytes))).toBe(true);
        if (readOnly) {
          const ro = await FileDriver.open(r.path, { readOnly: true });
          expect(Buffer.from(await ro.read(0, size)).equals(Buffer.from(m.bytes))).toBe(true);
          await ro.close();
        }
      },
      toString: () => `reopen(${readOnly})`,
    });
    const flush: fc.AsyncCommand<Model, Real> = {
      check: () => true,
      run: async (_m, r) => r.d.flush(),
      toString: () => 'flush',
    };
    const range = fc.integer({ min: 0, max: size - 1 }).chain((offset) =>
      fc.tuple(fc.constant(offset), fc.integer({ min: 1, max: Math.min(4096, size - offset) })),
    );
    const commands = [
      range.chain(([o, l]) => fc.tuple(fc.constant(o), fc.uint8Array({ minLength: l, maxLength: l }), fc.boolean())).map(([o, d, f]) => write(o, d, f)),
      range.map(([o, l]) => read(o, l)),
      fc.boolean().map(reopen),
      fc.constant(flush),
    ];
    await fc.assert(
      fc.asyncProperty(fc.commands(commands, { maxCommands: 30 }), async (cmds) => {
        const path = fresh();
        const real: Real = { d: await FileDriver.open(path, { create: true, size }), path };
        try {
          await fc.asyncModelRun(() => ({ model: { bytes: new Uint8Array(size) }, real }), cmds);
        } finally {
          await real.d.close();
          await fsp.rm(path, { force: true });
        }
      }),
      { numRuns: 60 },
    );
  });

  it('concurrent writes to disjoint ranges all land', async () => {
    const size = 64 * 4099 + 1017;
    const d = await FileDriver.open(fresh(), { create: true, size });
    const pieces = Array.from({ length: 64 }, (_, i) => ({ offset: i * 4099, data: new Uint8Array(4099).fill(i + 1) }));
    await Promise.all(pieces.map((p) => d.write(p.offset, p.data)));
    const all = await d.read(0, size);
    for (const p of pieces) expect(all.subarray(p.offset, p.offset + p.data.length).every((b) => b === p.data[0])).toBe(true);
    expect(all.subarray(64 * 4099).every((b) => b === 0)).toBe(true);
    await d.close();
  });

  it('transfers longer than maxTransfer are split and land intact', async () => {
    const size = 40 * 1024 * 1024 + 3;
    const d = await FileDriver.open(fresh(), { create: true, size });
    expect(size).toBeGreaterThan(d.limits.maxTransfer);
    const spy = await spyOnDriver(d);
    const data = new Uint8Array(size - 1);
    for (let i = 0; i < data.length; i += 4093) data[i] = (i >>> 12) & 0xff || 1;
    await d.write(1, data);
    expect(spy.write).toHaveBeenCalledTimes(Math.ceil(data.length / d.limits.maxTransfer));
    const back = await d.read(0, size);
    expect(back[0]).toBe(0);
    expect(Buffer.from(back.subarray(1)).equals(Buffer.from(data))).toBe(true);
    const into = new Uint8Array(size);
    await d.readInto(0, into);
    expect(Buffer.from(into).equals(Buffer.from(back))).toBe(true);
    await d.close();
  });

  it('short reads and writes are continued until the whole range is done', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 7 }), fc.uint8Array({ minLength: 1, maxLength: 300 }), fc.nat({ max: 200 }), async (most, data, at) => {
        const d = await FileDriver.open(fresh(), { create: true, size: 600 });
        const spy = await spyOnDriver(d);
        // The kernel may transfer less than asked; make every call do at most `most` bytes.
        spy.read.mockImplementation(function (this: fsp.FileHandle, buf: unknown, off: unknown, len: unknown, pos: unknown) {
          return spy.realRead.call(this, buf, off, Math.min(len as number, most), pos);
        } as never);
        spy.write.mockImplementation(function (this: fsp.FileHandle, buf: unknown, off: unknown, len: unknown, pos: unknown) {
          return spy.realWrite.call(this, buf, off, Math.min(len as number, most), pos);
        } as never);
        await d.write(at, data);
        const back = await d.read(at, data.length);
        expect(spy.write).toHaveBeenCalledTimes(Math.ceil(data.length / most));
        expect(spy.read).toHaveBeenCalledTimes(Math.ceil(data.length / most));
        vi.restoreAllMocks();
        expect(Buffer.from(back).equals(Buffer.from(data))).toBe(true);
        expect(Buffer.from(await fsp.readFile(d.path)).subarray(at, at + data.length).equals(Buffer.from(data))).toBe(true);
        await d.close();
      }),
      { numRuns: 40 },
    );
  });

  it('a write the file system accepts no byte of fails with EIO instead of spinning', async () => {
    const d = await FileDriver.open(fresh(), { create: true, size: 100 });
    const spy = await spyOnDriver(d);
    spy.write.mockImplementationOnce((() => Promise.resolve({ bytesWritten: 0, buffer: new Uint8Array(0) })) as never);
    await expect(d.write(0, new Uint8Array(10))).rejects.toMatchObject({ code: 'EIO', details: { op: 'write', offset: 0, length: 10 } });
    await d.close();
  });

  it('readInto fills a subarray view in place without touching its neighbours', async () => {
    const d = await FileDriver.open(fresh(), { create: true, size: 100 });
    await d.write(0, new Uint8Array(100).fill(9));
    const backing = new Uint8Array(30).fill(1);
    await d.readInto(40, backing.subarray(10, 20));
    expect([...backing]).toEqual([...Array(10).fill(1), ...Array(10).fill(9), ...Array(10).fill(1)]);
    await d.close();
  });

  it('writeZeroes and discard behave as advertised (zeros written; discard is a no-op)', async () => {
    const d = await FileDriver.open(fresh(), { create: true, size: 3 * 1024 * 1024 });
    expect(d.capabilities).toMatchObject({ canDiscard: false, canZero: false, canFastZero: false, canBlockStatus: false });
    await d.write(0, new Uint8Array(3 * 1024 * 1024).fill(5));
    await d.writeZeroes(100, 2 * 1024 * 1024 + 1);
    const back = await d.read(0, 3 * 1024 * 1024);
    expect(back.subarray(0, 100).every((b) => b === 5)).toBe(true);
    expect(back.subarray(100, 100 + 2 * 1024 * 1024 + 1).every((b) => b === 0)).toBe(true);
    expect(back.subarray(100 + 2 * 1024 * 1024 + 1).every((b) => b === 5)).toBe(true);
    await d.discard(0, 50);
    expect((await d.read(0, 50)).every((b) => b === 5)).toBe(true);
    await expect(d.writeZeroes(0, 10, { fastZero: true })).rejects.toMatchObject({ code: 'ENOTSUP' });
    expect(await d.blockStatus(0, 1000)).toEqual([{ offset: 0, length: 1000, zero: false, allocated: true }]);
    await d.close();
  });

  it('a file truncated behind the driver’s back makes reads past its end fail with EIO, not zeros', async () => {
    const path = fresh();
    const d = await FileDriver.open(path, { create: true, size: 10_000 });
    await d.write(0, new Uint8Array(10_000).fill(3));
    await fsp.truncate(path, 6000);
    await expect(d.read(5000, 2000)).rejects.toMatchObject({ code: 'EIO', details: { op: 'read', offset: 5000, length: 2000, path } });
    expect((await d.read(0, 6000)).every((b) => b === 3)).toBe(true);
    await d.close();
  });
});

describe('FileDriver read-only', () => {
  it('refuses write, discard and writeZeroes with EPERM and leaves the file intact', async () => {
    const path = fresh();
    await fsp.writeFile(path, Buffer.alloc(4096, 0x5a));
    const d = await FileDriver.open(path, { readOnly: true });
    expect(d.readOnly).toBe(true);
    expect(d.capabilities).toMatchObject({ canWrite: false, canFlush: false, canFua: false });
    await expect(d.write(0, new Uint8Array(1))).rejects.toMatchObject({ code: 'EPERM' });
    await expect(d.writeZeroes(0, 10)).rejects.toMatchObject({ code: 'EPERM' });
    await expect(d.discard(0, 10)).rejects.toMatchObject({ code: 'EPERM' });
    await d.flush();
    expect((await d.read(0, 4096)).every((b) => b === 0x5a)).toBe(true);
    await d.close();
    expect(await fsp.readFile(path)).toEqual(Buffer.alloc(4096, 0x5a));
  });
});

describe('fileError', () => {
  it('maps system errno codes to block error codes and keeps the cause and details', () => {
    const table: Record<string, string> = {
      ENOSPC: 'ENOSPC',
      EDQUOT: 'ENOSPC',
      EFBIG: 'ENOSPC',
      EACCES: 'EPERM',
      EPERM: 'EPERM',
      EROFS: 'EPERM',
      EIO: 'EIO',
      ENOENT: 'EINVAL',
      EISDIR: 'EINVAL',
      ENOTDIR: 'EINVAL',
      EBADF: 'EIO',
      EWHATEVER: 'EIO',
    };
    fc.assert(
      fc.property(fc.constantFrom(...Object.keys(table)), fc.string(), (errno, path) => {
        const cause = Object.assign(new Error(`${errno}: something`), { code: errno });
        const err = fileError(cause, { op: 'write', path });
        expect(err).toBeInstanceOf(BlockError);
        expect(err.code).toBe(table[errno]);
        expect(err.cause).toBe(cause);
        expect(err.details).toMatchObject({ op: 'write', path });
      }),
    );
    const be = new BlockError('ETIMEDOUT', 'x');
    expect(fileError(be, {})).toBe(be);
  });

  it('maps a system error libuv has no name for by its number: a quota error (Linux EDQUOT, 122) is ENOSPC', () => {
    // What Node 20 reports for EDQUOT: the code is a description, only errno says which error.
    const cause = Object.assign(new Error('write'), { code: 'Unknown system error -122', errno: -122, syscall: 'write' });
    expect(fileError(cause, { op: 'write' })).toMatchObject({ code: 'ENOSPC', cause });
    expect(fileError(Object.assign(new Error('x'), { code: 'Unknown system error -9999', errno: -9999 }), {})).toMatchObject({ code: 'EIO' });
    // A known name wins over the number.
    expect(fileError(Object.assign(new Error('x'), { code: 'EBADF', errno: -122 }), {})).toMatchObject({ code: 'EIO' });
  });
});
