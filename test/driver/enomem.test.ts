/**
 * Running out of memory is ENOMEM, not EIO, and changes nothing. The failure is real, not
 * simulated (a lent chunk's copy-on-write included): MemoryDriver (bundled from source with tsup) runs in a child Node process whose
 * address space `ulimit -v` caps, so allocating 1 GiB chunks soon fails inside V8.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'tsup';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const dir = mkdtempSync(join(tmpdir(), 'blockgraph-enomem-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Address-space cap of the child in KiB: room for Node and one or two 1 GiB chunks, not 32. */
const LIMIT_KIB = 4 * 1024 * 1024;

// Runs in the child. Prints one JSON line with what happened.
const PROBE = `
import { MemoryDriver } from './memory.js';
import { toBlockError } from './errors.js';
const GiB = 2 ** 30;
const code = async (p) => p.then(() => 'ok', (e) => e.code ?? String(e));
const d = new MemoryDriver({ size: 64 * GiB, chunkSize: GiB });
const out = { chunks: 0 };
// Bounded: the cap makes an allocation fail long before 32 GiB.
for (let i = 0; i < 32; i++) {
  try {
    await d.write(i * GiB, new Uint8Array([i + 1]));
    out.chunks++;
  } catch (e) {
    out.first = { code: e.code, cause: String(e.cause), details: e.details };
    break;
  }
}
const last = (out.chunks - 1) * GiB;
const before = d.allocatedBytes;
// Straddles the last allocated chunk and a missing one: must fail whole, leaving the tail zero.
out.straddle = await code(d.write(last + GiB - 2, new Uint8Array([7, 7, 7, 7])));
const tail = new Uint8Array([9, 9]);
await d.readInto(last + GiB - 2, tail);
out.tail = [...tail];
out.allocatedUnchanged = d.allocatedBytes === before;
// The device still works where memory exists.
await d.write(last + 5, new Uint8Array([42]));
out.inside = (await d.read(last, 6))[5];
out.firstByte = (await d.read(last, 1))[0];
// A lent chunk needs a private copy before it may change: no memory for one is ENOMEM too, and
// neither the lent view nor the device changes.
const lease = await d.leaseRead(last, 6);
out.cowWrite = await code(d.write(last + 5, new Uint8Array([99])));
out.cowZero = await code(d.writeZeroes(last, 6));
out.lentByte = lease.views[0][5];
out.afterCow = (await d.read(last, 6))[5];
lease.release();
out.afterRelease = await code(d.write(last + 4, new Uint8Array([43])));
// The base class's own read buffer, too large to allocate now.
out.bigRead = await code(d.read(0, GiB));
// Any driver's stray allocation failure is mapped the same way.
try { new Uint8Array(4 * GiB); out.mapped = 'allocated'; } catch (e) { out.mapped = toBlockError(e).code; }
await d.close();
console.log(JSON.stringify(out));
`;

describe.skipIf(process.platform !== 'linux')('out of memory (child process under ulimit -v)', () => {
  beforeAll(async () => {
    await build({
      entry: { memory: 'src/drivers/memory.ts', errors: 'src/errors.ts' },
      outDir: dir,
      format: ['esm'],
      config: false,
      silent: true,
      dts: false,
      sourcemap: false,
      splitting: false,
      platform: 'node',
      target: 'node20',
    });
    writeFileSync(join(dir, 'probe.mjs'), PROBE);
  });

  it('MemoryDriver fails writes that need a chunk with ENOMEM, changes nothing, and keeps working', () => {
    const stdout = execFileSync('bash', ['-c', `ulimit -v ${LIMIT_KIB} && exec "$0" probe.mjs`, process.execPath], {
      cwd: dir,
      encoding: 'utf8',
      timeout: 30_000,
    });
    const out = JSON.parse(stdout.trim().split('\n').pop() as string) as Record<string, unknown>;
    expect(out.chunks, 'the cap leaves room for at least one chunk').toBeGreaterThanOrEqual(1);
    expect(out.chunks).toBeLessThan(32);
    expect(out.first).toMatchObject({
      code: 'ENOMEM',
      cause: expect.stringMatching(/allocation failed/) as unknown,
      details: { op: 'write', length: 1, chunkSize: 2 ** 30 },
    });
    expect(out.straddle).toBe('ENOMEM');
    expect(out.tail).toEqual([0, 0]);
    expect(out.allocatedUnchanged).toBe(true);
    expect(out.inside).toBe(42);
    expect(out.firstByte).toBe(out.chunks);
    expect(out.cowWrite).toBe('ENOMEM');
    expect(out.cowZero).toBe('ENOMEM');
    expect(out.lentByte).toBe(42);
    expect(out.afterCow).toBe(42);
    expect(out.afterRelease).toBe('ok');
    expect(out.bigRead).toBe('ENOMEM');
    expect(out.mapped).toBe('ENOMEM');
  });
});
