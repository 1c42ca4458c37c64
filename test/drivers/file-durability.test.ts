/**
 * FileDriver durability: which fdatasyncs it issues and when, and that a failed one is sticky —
 * after it, no flush, FUA write or close may report data durable (Linux drops the failed pages'
 * dirty state, so a retried fdatasync would succeed without having written them).
 * Every spy sits on the one driver's own FileHandle, never on FileHandle.prototype.
 */
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import * as fsp from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { FileDriver } from '../../src/drivers/file.js';
import { isBlockError } from '../../src/errors.js';
import { handleOf, pathsCalling, spyOnDriver } from './handle-spy.js';

const dir = mkdtempSync(join(tmpdir(), 'blockgraph-file-sync-'));
let n = 0;
const fresh = (): string => join(dir, `t-${n++}.img`);
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(() => vi.restoreAllMocks());

const openFds = (): number => readdirSync('/proc/self/fd').length;
const sysError = (code: string): Error => Object.assign(new Error(`${code}: injected, fdatasync`), { code });

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (err) {
    expect(isBlockError(err), String(err)).toBe(true);
    return (err as { code: string }).code;
  }
}

describe('FileDriver durability calls', () => {
  it('a FUA write syncs after the data is written, before it resolves; a plain write does not sync', async () => {
    const d = await FileDriver.open(fresh(), { create: true, size: 8192 });
    const spy = await spyOnDriver(d);
    await d.write(0, new Uint8Array(4096).fill(1));
    expect(spy.write).toHaveBeenCalledTimes(1);
    expect(spy.datasync).not.toHaveBeenCalled();
    await d.write(4096, new Uint8Array(4096).fill(2), { fua: true });
    expect(spy.write).toHaveBeenCalledTimes(2);
    expect(spy.datasync).toHaveBeenCalledTimes(1);
    expect(spy.datasync.mock.invocationCallOrder[0]).toBeGreaterThan(spy.write.mock.invocationCallOrder[1]);
    await d.close();
  });

  it('create makes the new file and its directory entry durable; opening an existing file syncs nothing', async () => {
    // A directory of its own, so that the directory syncs counted are this test's alone.
    const own = mkdtempSync(join(dir, 'create-'));
    const path = join(own, 'image.img');
    const datasyncs = await pathsCalling('datasync');
    const syncs = await pathsCalling('sync');
    const a = await FileDriver.open(path, { create: true, size: 100 });
    expect(datasyncs.filter((p) => p === path)).toHaveLength(1);
    expect(syncs.filter((p) => p === own)).toHaveLength(1);
    await a.close();
    const b = await FileDriver.open(path, { create: true, size: 100 });
    const c = await FileDriver.open(path);
    await b.close();
    await c.close();
    expect(datasyncs.filter((p) => p === path)).toHaveLength(1);
    expect(syncs.filter((p) => p === own)).toHaveLength(1);
  });

  it('flush syncs; close syncs only when something was written since the last flush', async () => {
    const a = await FileDriver.open(fresh(), { create: true, size: 100 });
    const b = await FileDriver.open(fresh(), { create: true, size: 100 });
    const spyA = await spyOnDriver(a);
    const spyB = await spyOnDriver(b);
    await a.write(0, new Uint8Array(10).fill(1));
    await a.flush();
    expect(spyA.datasync).toHaveBeenCalledTimes(1);
    await a.close();
    expect(spyA.datasync).toHaveBeenCalledTimes(1);

    await b.write(0, new Uint8Array(10).fill(1));
    await b.close();
    expect(spyB.datasync).toHaveBeenCalledTimes(1);

    const c = await FileDriver.open(b.path, { readOnly: true });
    const spyC = await spyOnDriver(c);
    await c.read(0, 10);
    await c.close();
    expect(spyC.datasync).not.toHaveBeenCalled();
  });

  it('a write still running when a flush starts is synced by close, a FUA write is not synced again', async () => {
    const d = await FileDriver.open(fresh(), { create: true, size: 100 });
    const e = await FileDriver.open(fresh(), { create: true, size: 100 });
    const spy = await spyOnDriver(d);
    const spyE = await spyOnDriver(e);
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    // The first pwrite is held until the flush has finished, then really performed.
    spy.write.mockImplementationOnce(async function (this: fsp.FileHandle, ...args: unknown[]) {
      await gate;
      return spy.realWrite.apply(this, args);
    } as never);
    const w = d.write(0, new Uint8Array(10).fill(1));
    await d.flush();
    expect(spy.datasync).toHaveBeenCalledTimes(1);
    release();
    await w;
    await d.close();
    expect(spy.datasync).toHaveBeenCalledTimes(2);

    await e.write(0, new Uint8Array(10).fill(1), { fua: true });
    expect(spyE.datasync).toHaveBeenCalledTimes(1);
    await e.close();
    expect(spyE.datasync).toHaveBeenCalledTimes(1);
  });

  it('a failing sync at close still releases the descriptor and rejects with the error', async () => {
    const before = openFds();
    const d = await FileDriver.open(fresh(), { create: true, size: 100 });
    const spy = await spyOnDriver(d);
    await d.write(0, new Uint8Array(10).fill(1));
    spy.datasync.mockImplementationOnce(() => Promise.reject(sysError('ENOSPC')));
    await expect(d.close()).rejects.toMatchObject({ code: 'ENOSPC', details: { op: 'close' } });
    expect(d.state).toBe('closed');
    expect(openFds()).toBe(before);
  });

  it('close drains in-flight requests, releases the descriptor, and later requests fail ESHUTDOWN', async () => {
    const before = openFds();
    const d = await FileDriver.open(fresh(), { create: true, size: 1 << 20 });
    expect(openFds()).toBe(before + 1);
    const writes = Array.from({ length: 16 }, (_, i) => d.write(i * 65536, new Uint8Array(65536).fill(i)));
    const closing = d.close();
    await expect(d.read(0, 1)).rejects.toMatchObject({ code: 'ESHUTDOWN' });
    await Promise.all(writes);
    await closing;
    expect(d.state).toBe('closed');
    expect(openFds()).toBe(before);
    const check = await FileDriver.open(d.path, { readOnly: true });
    expect((await check.read(15 * 65536, 65536)).every((b) => b === 15)).toBe(true);
    await check.close();
  });
});

describe('FileDriver after a failed fdatasync', () => {
  it('every later flush, FUA write and close fails with EIO saying why, and no sync is retried', async () => {
    const before = openFds();
    const path = fresh();
    const d = await FileDriver.open(path, { create: true, size: 100 });
    const spy = await spyOnDriver(d);
    await d.write(0, new Uint8Array(10).fill(1));
    spy.datasync.mockImplementationOnce(() => Promise.reject(sysError('EIO')));
    await expect(d.flush()).rejects.toMatchObject({ code: 'EIO', details: { op: 'flush' } });
    expect(spy.datasync).toHaveBeenCalledTimes(1);

    // The real fdatasync would now return 0: it must not be asked.
    const sticky = /earlier fdatasync .* failed \(EIO\).*no later sync can confirm durability/;
    await expect(d.flush()).rejects.toThrow(sticky);
    await expect(d.flush()).rejects.toMatchObject({ code: 'EIO', details: { op: 'flush', syncFailure: 'EIO' } });
    await expect(d.write(20, new Uint8Array(5).fill(2), { fua: true })).rejects.toMatchObject({ code: 'EIO', details: { op: 'write' } });
    await expect(d.writeZeroes(0, 5, { fua: true })).rejects.toMatchObject({ code: 'EIO' });
    // Plain writes and reads still work: they claim nothing about durability.
    await d.write(40, new Uint8Array(5).fill(3));
    expect([...(await d.read(40, 5))]).toEqual([3, 3, 3, 3, 3]);
    expect(spy.datasync).toHaveBeenCalledTimes(1);

    const closeError = await d.close().catch((e: unknown) => e);
    expect(closeError).toMatchObject({ code: 'EIO', details: { op: 'close' } });
    expect(String(closeError)).toMatch(sticky);
    expect(spy.datasync).toHaveBeenCalledTimes(1);
    expect(d.state).toBe('closed');
    expect(openFds()).toBe(before);
    // The refused FUA write wrote nothing.
    const bytes = await fsp.readFile(path);
    expect([...bytes.subarray(20, 25)]).toEqual([0, 0, 0, 0, 0]);
  });

  it('a first failure of another kind (ENOSPC from a FUA write) keeps its code; later ones are EIO naming it', async () => {
    const d = await FileDriver.open(fresh(), { create: true, size: 100 });
    const spy = await spyOnDriver(d);
    spy.datasync.mockImplementationOnce(() => Promise.reject(sysError('ENOSPC')));
    await expect(d.write(0, new Uint8Array(4).fill(1), { fua: true })).rejects.toMatchObject({ code: 'ENOSPC' });
    await expect(d.flush()).rejects.toMatchObject({ code: 'EIO', details: { syncFailure: 'ENOSPC' } });
    await expect(d.close()).rejects.toMatchObject({ code: 'EIO', details: { op: 'close', syncFailure: 'ENOSPC' } });
    expect(spy.datasync).toHaveBeenCalledTimes(1);
  });

  it('a sync that succeeds while a concurrent one fails is not trusted', async () => {
    const d = await FileDriver.open(fresh(), { create: true, size: 100 });
    const spy = await spyOnDriver(d);
    await d.write(0, new Uint8Array(10).fill(1));
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    spy.datasync
      .mockImplementationOnce(async function (this: fsp.FileHandle) {
        await gate;
        return spy.realDatasync.call(this);
      } as never)
      .mockImplementationOnce(() => Promise.reject(sysError('EIO')));
    const first = d.flush();
    const second = d.write(50, new Uint8Array(2).fill(9), { fua: true });
    expect(await codeOf(second)).toBe('EIO');
    release();
    await expect(first).rejects.toMatchObject({ code: 'EIO', details: { op: 'flush', syncFailure: 'EIO' } });
    await expect(d.close()).rejects.toMatchObject({ code: 'EIO' });
  });

  it('agrees with a model: after the first failed sync, every flush, FUA write and close is EIO', async () => {
    type Model = { syncs: number; failed: boolean; dirty: boolean; readonly failAt: number };
    type Real = { d: FileDriver; syncs: () => number };
    // What the next sync does, by the model: the failAt-th one fails, once.
    const sync = (m: Model): 'ok' | 'EIO' => {
      m.syncs++;
      if (m.syncs === m.failAt) m.failed = true;
      return m.syncs === m.failAt ? 'EIO' : 'ok';
    };
    const write = (offset: number, fua: boolean): fc.AsyncCommand<Model, Real> => ({
      check: () => true,
      async run(m, r) {
        let want: string;
        if (!fua) {
          want = 'ok';
          m.dirty = true;
        } else if (m.failed) want = 'EIO';
        else {
          want = sync(m);
          m.dirty ||= want !== 'ok';
        }
        expect(await codeOf(r.d.write(offset, new Uint8Array(3).fill(offset + 1), { fua }))).toBe(want);
        expect(r.syncs(), 'fdatasync calls').toBe(m.syncs);
      },
      toString: () => `write(${offset}${fua ? ', fua' : ''})`,
    });
    const flush: fc.AsyncCommand<Model, Real> = {
      check: () => true,
      async run(m, r) {
        const want = m.failed ? 'EIO' : sync(m);
        if (want === 'ok') m.dirty = false;
        expect(await codeOf(r.d.flush())).toBe(want);
        expect(r.syncs(), 'fdatasync calls').toBe(m.syncs);
      },
      toString: () => 'flush',
    };
    const commands = [fc.tuple(fc.nat(90), fc.boolean()).map(([o, fua]) => write(o, fua)), fc.constant(flush)];
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 6 }), fc.commands(commands, { maxCommands: 12 }), async (failAt, cmds) => {
        const d = await FileDriver.open(fresh(), { create: true, size: 100 });
        const spy = await spyOnDriver(d);
        let calls = 0;
        spy.datasync.mockImplementation(function (this: fsp.FileHandle) {
          calls++;
          return calls === failAt ? Promise.reject(sysError('EIO')) : spy.realDatasync.call(this);
        } as never);
        const model: Model = { syncs: 0, failed: false, dirty: false, failAt };
        try {
          await fc.asyncModelRun(() => ({ model, real: { d, syncs: () => calls } }), cmds);
        } finally {
          const closeCode = await codeOf(d.close());
          // close syncs only when dirty, and never once a sync has failed.
          const want = model.failed ? 'EIO' : model.dirty ? sync(model) : 'ok';
          expect(closeCode).toBe(want);
          expect(calls, 'fdatasync calls at the end').toBe(model.syncs);
          await fsp.rm(d.path, { force: true });
        }
      }),
      { numRuns: 60 },
    );
  });
});

describe('handleOf', () => {
  it('finds the driver’s own handle, not another driver’s reading at the same time', async () => {
    const a = await FileDriver.open(fresh(), { create: true, size: 10 });
    const b = await FileDriver.open(fresh(), { create: true, size: 10 });
    const hb = await handleOf(b);
    const busy = Array.from({ length: 20 }, () => b.read(0, 1));
    const ha = await handleOf(a);
    await Promise.all(busy);
    expect(ha).not.toBe(hb);
    const spy = vi.spyOn(ha as fsp.FileHandle, 'datasync');
    await b.flush();
    expect(spy).not.toHaveBeenCalled();
    await a.flush();
    expect(spy).toHaveBeenCalledTimes(1);
    await a.close();
    await b.close();
  });
});
