/**
 * blockgraph's server with libnbd's tools: nbdinfo (list, map, socket activation of the example),
 * nbdcopy both ways, fio's nbd engine with verification, and libnbd's Python binding with strict
 * mode off to send requests a polite client never would.
 */
import { randomFillSync } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryDriver } from '../../../src/drivers/memory.js';
import { inCi, requirePeers, runOk, tmpDir } from '../../helpers/peers.js';
import { startServer } from './fixture.js';

const peers = requirePeers('nbdinfo', 'nbdcopy', 'fio', 'python3-nbd');
const MiB = 1024 * 1024;
const repo = fileURLToPath(new URL('../../../', import.meta.url));

class Aligned512 extends MemoryDriver {
  override get limits() {
    return { minBlockSize: 512, preferredBlockSize: 4096, maxBlockSize: 2 ** 25, maxTransfer: 2 ** 25 };
  }
}

describe.skipIf(!peers)('NBD server with libnbd tools', () => {
  let fixture: Awaited<ReturnType<typeof startServer>>;
  let dir: ReturnType<typeof tmpDir>;
  const sparse = new MemoryDriver({ size: 8 * MiB });
  const target = new MemoryDriver({ size: 4 * MiB });
  const fioDisk = new MemoryDriver({ size: 16 * MiB });
  const big = new MemoryDriver({ size: 2 ** 33 });
  const aligned = new Aligned512({ size: MiB });

  beforeAll(async () => {
    dir = tmpDir();
    fixture = await startServer({ exports: { sparse, target, fio: fioDisk, big, aligned }, unix: true });
    fixture.server.addExport('ro', new MemoryDriver({ size: MiB }), { readOnly: true, description: 'read-only disk' });
  });
  afterAll(async () => {
    await fixture.close();
    dir.remove();
  });

  it('nbdinfo --list --json shows every export with its flags', async () => {
    const r = await runOk(peers!.nbdinfo, ['--list', '--json', `nbd://127.0.0.1:${fixture.port}`]);
    const info = JSON.parse(r.stdout) as { exports: { 'export-name': string; is_read_only: boolean; description?: string; 'export-size': number }[] };
    expect(info.exports.map((e) => e['export-name']).sort()).toEqual(['aligned', 'big', 'fio', 'ro', 'sparse', 'target']);
    const ro = info.exports.find((e) => e['export-name'] === 'ro')!;
    expect(ro).toMatchObject({ is_read_only: true, description: 'read-only disk', 'export-size': MiB });
    expect(info.exports.find((e) => e['export-name'] === 'aligned')).toMatchObject({ block_size_minimum: 512 });
  });

  it('nbdinfo --map shows the holes and the data of a sparse MemoryDriver', async () => {
    await sparse.write(MiB, new Uint8Array(64 * 1024).fill(5));
    await sparse.write(6 * MiB, new Uint8Array(128 * 1024).fill(6));
    const r = await runOk(peers!.nbdinfo, ['--map', '--json', fixture.uri('sparse')]);
    const map = JSON.parse(r.stdout) as { offset: number; length: number; type: number; description: string }[];
    expect(map.map((e) => [e.offset, e.length, e.description])).toEqual([
      [0, MiB, 'hole,zero'],
      [MiB, 64 * 1024, 'data'],
      [MiB + 64 * 1024, 5 * MiB - 64 * 1024, 'hole,zero'],
      [6 * MiB, 128 * 1024, 'data'],
      [6 * MiB + 128 * 1024, 2 * MiB - 128 * 1024, 'hole,zero'],
    ]);
  });

  it('nbdcopy copies a file into an export and back out, over TCP and a Unix socket', async () => {
    const src = join(dir.path, 'src.img');
    const data = Buffer.alloc(4 * MiB);
    randomFillSync(data.subarray(0, 3 * MiB));
    writeFileSync(src, data);
    await runOk(peers!.nbdcopy, [src, fixture.uri('target')]);
    expect(Buffer.from(await target.read(0, 4 * MiB)).equals(data)).toBe(true);
    const out = join(dir.path, 'out.img');
    writeFileSync(out, '');
    await runOk(peers!.nbdcopy, [`nbd+unix:///target?socket=${fixture.socketPath}`, out]);
    expect(readFileSync(out).equals(data)).toBe(true);
  });

  it('fio (nbd engine) writes randomly and verifies with crc32c', async () => {
    const r = await runOk(
      peers!.fio,
      [
        '--name=verify',
        '--ioengine=nbd',
        `--uri=${fixture.uri('fio')}`,
        '--rw=randwrite',
        '--bs=4k',
        '--iodepth=16',
        '--size=16M',
        '--verify=crc32c',
        '--do_verify=1',
        '--verify_fatal=1',
        '--output-format=json',
      ],
      { timeoutMs: 120_000 },
    );
    const job = JSON.parse(r.stdout.slice(r.stdout.indexOf('{'))).jobs[0];
    expect(job.error).toBe(0);
    expect(job.write.io_bytes).toBe(16 * MiB);
    expect(job.read.io_bytes).toBe(16 * MiB);
  });

  it('answers invalid requests sent by libnbd in non-strict mode with the spec errors', async () => {
    const script = `
import json, sys, nbd
def attempt(f):
    try:
        f()
        return 0
    except nbd.Error as e:
        return e.errnum
def connect(name):
    h = nbd.NBD()
    h.set_strict_mode(0)
    h.set_export_name(name)
    h.connect_tcp('127.0.0.1', sys.argv[1])
    return h
h = connect('target')
size = h.get_size()
big = connect('big')
al = connect('aligned')
ro = connect('ro')
cb = lambda *args: 0
out = {
  'read_oob': attempt(lambda: h.pread(512, size - 256)),
  'write_oob': attempt(lambda: h.pwrite(b'x' * 512, size - 256)),
  'trim_oob': attempt(lambda: h.trim(512, size)),
  'zero_oob': attempt(lambda: h.zero(512, size - 256)),
  'status_oob': attempt(lambda: h.block_status(512, size, cb)),
  'read_zero': attempt(lambda: h.pread(0, 0)),
  'write_zero': attempt(lambda: h.pwrite(b'', 0)),
  'trim_zero': attempt(lambda: h.trim(0, 0)),
  'huge_trim': attempt(lambda: big.trim(0xffffffff, 0)),
  'huge_zero': attempt(lambda: big.zero(0xffffffff, 4096)),
  'huge_read': attempt(lambda: big.pread(64 * 1024 * 1024, 0)),
  'misaligned_read': attempt(lambda: al.pread(512, 1)),
  'misaligned_len': attempt(lambda: al.pwrite(b'y' * 100, 0)),
  'ro_write': attempt(lambda: ro.pwrite(b'z' * 16, 0)),
  'ro_trim': attempt(lambda: ro.trim(16, 0)),
  'still_alive': attempt(lambda: h.pread(16, 0)),
}
print(json.dumps(out))
`;
    const r = await runOk(peers!['python3-nbd'], ['-c', script, String(fixture.port)], { timeoutMs: 60_000 });
    const EINVAL = 22;
    expect(JSON.parse(r.stdout)).toEqual({
      read_oob: EINVAL,
      write_oob: 28,
      trim_oob: EINVAL,
      zero_oob: 28,
      status_oob: EINVAL,
      read_zero: 0,
      write_zero: 0,
      trim_zero: 0,
      huge_trim: 0,
      huge_zero: 0,
      huge_read: EINVAL,
      misaligned_read: EINVAL,
      misaligned_len: EINVAL,
      ro_write: 1,
      ro_trim: 1,
      still_alive: 0,
    });
  });

  it('is socket-activated by nbdinfo through examples/nbd-serve-memory.mjs (LISTEN_FDS)', async () => {
    const built = existsSync(join(repo, 'dist', 'index.js'));
    if (!built) {
      if (inCi) throw new Error('dist/ is missing: CI builds before testing');
      console.warn('[skip] dist/ not built; run `npx tsup` to test the example');
      return;
    }
    const r = await runOk(peers!.nbdinfo, ['--json', '[', process.execPath, join(repo, 'examples', 'nbd-serve-memory.mjs'), '1M', ']'], {
      cwd: repo,
      timeoutMs: 60_000,
    });
    const info = JSON.parse(r.stdout) as { exports: { 'export-size': number; description: string }[] };
    expect(info.exports[0]).toMatchObject({ 'export-size': MiB, description: 'blockgraph memory disk (1M)' });
  });
});
