/**
 * blockgraph's server with qemu's clients (qemu-io, qemu-img, qemu-nbd -L): the block layer most
 * NBD deployments actually use. Everything runs on loopback or a Unix socket.
 */
import { randomFillSync } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryDriver } from '../../../src/drivers/memory.js';
import { Slice } from '../../../src/filters/slice.js';
import { requirePeers, run, runOk, tmpDir } from '../../helpers/peers.js';
import { startServer } from './fixture.js';

const peers = requirePeers('qemu-io', 'qemu-img', 'qemu-nbd');
const MiB = 1024 * 1024;

describe.skipIf(!peers)('NBD server with qemu clients', () => {
  let fixture: Awaited<ReturnType<typeof startServer>>;
  let dir: ReturnType<typeof tmpDir>;
  const disk = new MemoryDriver({ size: 8 * MiB });
  const sparse = new MemoryDriver({ size: 16 * MiB });
  const copy = new MemoryDriver({ size: 4 * MiB });
  // A window starting 1000 bytes into 64 KiB chunks: its extents change mid-sector.
  const windowed = new MemoryDriver({ size: 2 * MiB, chunkSize: 64 * 1024 });
  const slice = new Slice(windowed, { offset: 1000, length: MiB });

  beforeAll(async () => {
    dir = tmpDir();
    fixture = await startServer({ exports: { disk, sparse, copy, slice }, unix: true });
    fixture.server.addExport('', new MemoryDriver({ size: MiB }), { description: 'default' });
  });
  afterAll(async () => {
    await fixture.close();
    dir.remove();
  });

  const qemuIo = (uri: string, ...commands: string[]) =>
    runOk(peers!['qemu-io'], ['-f', 'raw', uri, ...commands.flatMap((c) => ['-c', c])]);

  it('qemu-io writes, reads and verifies patterns, zeroes (with and without unmap), discards, flushes, FUA', async () => {
    const r = await qemuIo(
      fixture.uri('disk'),
      'write -P 0x5a 0 64k',
      'read -P 0x5a 0 64k',
      'write -z 64k 64k',
      'read -P 0 64k 64k',
      'write -z -u 128k 64k',
      'read -P 0 128k 64k',
      'write -P 0xcd -f 256k 4k',
      'read -P 0xcd 256k 4k',
      'write -P 0x11 1m 1m',
      'discard 1m 64k',
      'flush',
      'read -P 0x11 1088k 960k',
    );
    expect(r.stdout).not.toMatch(/fail|error/i);
    expect(r.stdout.match(/^read /gm)?.length).toBe(5);
    const direct = await disk.read(0, 64 * 1024);
    expect(direct.every((b) => b === 0x5a)).toBe(true);
    expect((await disk.read(256 * 1024, 4096)).every((b) => b === 0xcd)).toBe(true);
  });

  it('qemu-io detects a pattern mismatch (the check above can fail)', async () => {
    const r = await run(peers!['qemu-io'], ['-f', 'raw', fixture.uri('disk'), '-c', 'write -P 0x01 2m 4k', '-c', 'read -P 0x02 2m 4k']);
    expect(r.code).not.toBe(0);
    expect(r.stdout + r.stderr).toMatch(/Pattern verification failed/);
  });

  it('qemu-img info sees the size', async () => {
    const r = await runOk(peers!['qemu-img'], ['info', '--output=json', '-f', 'raw', fixture.uri('disk')]);
    expect(JSON.parse(r.stdout)['virtual-size']).toBe(8 * MiB);
  });

  it('qemu-img convert into and out of an export, checked with qemu-img compare', async () => {
    const src = join(dir.path, 'src.img');
    const data = Buffer.alloc(4 * MiB);
    randomFillSync(data.subarray(0, MiB));
    data.fill(0x77, 2 * MiB, 3 * MiB);
    writeFileSync(src, data);
    await runOk(peers!['qemu-img'], ['convert', '-n', '-f', 'raw', '-O', 'raw', src, fixture.uri('copy')]);
    await runOk(peers!['qemu-img'], ['compare', '-f', 'raw', '-F', 'raw', src, fixture.uri('copy')]);
    expect(Buffer.from(await copy.read(0, 4 * MiB)).equals(data)).toBe(true);
    const out = join(dir.path, 'out.img');
    await runOk(peers!['qemu-img'], ['convert', '-f', 'raw', '-O', 'raw', fixture.uri('copy'), out]);
    expect(readFileSync(out).equals(data)).toBe(true);
    // And compare notices a difference.
    await copy.write(3 * MiB + 5, new Uint8Array([1]));
    const r = await runOk(peers!['qemu-img'], ['compare', '-f', 'raw', '-F', 'raw', src, fixture.uri('copy')]).catch((e: Error) => e);
    expect(r).toBeInstanceOf(Error);
  });

  it('qemu-img map shows the data and the holes of a sparse export', async () => {
    await sparse.write(4 * MiB, new Uint8Array(MiB).fill(1));
    const r = await runOk(peers!['qemu-img'], ['map', '--output=json', '-f', 'raw', fixture.uri('sparse')]);
    const map = JSON.parse(r.stdout) as { start: number; length: number; data: boolean; zero: boolean }[];
    expect(map).toEqual([
      expect.objectContaining({ start: 0, length: 4 * MiB, data: false, zero: true }),
      expect.objectContaining({ start: 4 * MiB, length: MiB, data: true, zero: false }),
      expect.objectContaining({ start: 5 * MiB, length: 11 * MiB, data: false, zero: true }),
    ]);
  });

  it('qemu-img convert copies every byte of an export whose extents change mid-sector (a Slice at byte 1000)', async () => {
    await windowed.write(64 * 1024, new Uint8Array(64 * 1024).fill(0xab));
    const truth = Buffer.from(await slice.read(0, MiB));
    const out = join(dir.path, 'slice.img');
    await runOk(peers!['qemu-img'], ['convert', '-f', 'raw', '-O', 'raw', fixture.uri('slice'), out]);
    expect(readFileSync(out).equals(truth)).toBe(true);
  });

  it('qemu-io over a Unix socket', async () => {
    const uri = `nbd+unix:///disk?socket=${fixture.socketPath}`;
    const r = await qemuIo(uri, 'write -P 0x42 3m 64k', 'read -P 0x42 3m 64k');
    expect(r.stdout).not.toMatch(/fail/i);
  });

  it('qemu-nbd -L lists the exports with their description and base:allocation', async () => {
    const r = await runOk(peers!['qemu-nbd'], ['-L', '-b', '127.0.0.1', '-p', String(fixture.port)]);
    expect(r.stdout).toMatch(/exports available: 5/);
    expect(r.stdout).toMatch(/export: 'disk'/);
    expect(r.stdout).toMatch(/description: default/);
    expect(r.stdout).toMatch(/base:allocation/);
  });
});
