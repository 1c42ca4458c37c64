/**
 * NbdClient against real servers, beyond the conformance suite: server errors surfacing as
 * BlockErrors (nbdkit's error filter), splitting long requests (nbdkit's log filter shows what
 * reached the server), multi-conn spreading, request timeouts, and polite disconnects.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { NbdClient } from '../../../src/nbd/client/index.js';
import { requirePeer, tmpDir } from '../../helpers/peers.js';
import { expectSameBytes, patternBytes } from '../../helpers/bytes.js';
import { startNbdkit, type RunningServer } from './servers.js';

const nbdkit = requirePeer('nbdkit');

let running: (RunningServer & { removeDir(): void }) | undefined;
let client: NbdClient | undefined;
afterEach(async () => {
  await client?.close();
  client = undefined;
  await running?.stop();
  running?.removeDir();
  running = undefined;
});

async function serve(args: string[], dir = tmpDir('bgc-')): Promise<RunningServer> {
  running = await startNbdkit(args, dir);
  return running;
}

/** nbdkit log-filter lines for one kind of request: [connection, offset, count]. */
function logged(logfile: string, kind: string): Array<{ connection: number; offset: number; count: number }> {
  const re = new RegExp(`connection=(\\d+) ${kind} id=\\d+ offset=0x([0-9a-f]+) count=0x([0-9a-f]+)`);
  return readFileSync(logfile, 'utf8')
    .split('\n')
    .flatMap((line) => {
      const m = re.exec(line);
      return m ? [{ connection: Number(m[1]), offset: parseInt(m[2], 16), count: parseInt(m[3], 16) }] : [];
    });
}

/** The bytes nbdkit's pattern plugin serves at `offset`: each 8-byte word holds its own offset. */
function patternAt(offset: number, length: number): Uint8Array {
  const first = Math.floor(offset / 8) * 8;
  const words = Buffer.alloc(Math.ceil((offset + length - first) / 8) * 8);
  for (let at = 0; at < words.length; at += 8) words.writeBigUInt64BE(BigInt(first + at), at);
  return words.subarray(offset - first, offset - first + length);
}

describe.skipIf(!nbdkit)('NbdClient with nbdkit', () => {
  it('server errors surface as BlockErrors with the NBD error mapped (error filter)', async () => {
    const s = await serve(['--filter=error', 'memory', '1M', 'error-pread=EIO', 'error-pread-rate=100%', 'error-pwrite=ENOSPC', 'error-pwrite-rate=100%', 'error-trim=EPERM', 'error-trim-rate=100%']);
    client = await NbdClient.connect(s.uri);
    await expect(client.read(0, 4096)).rejects.toMatchObject({ code: 'EIO', details: { op: 'read', offset: 0, length: 4096 } });
    await expect(client.write(0, new Uint8Array(4096))).rejects.toMatchObject({ code: 'ENOSPC' });
    await expect(client.discard(0, 4096)).rejects.toMatchObject({ code: 'EPERM' });
    // Errors do not break the connection.
    await client.writeZeroes(0, 4096);
    expect(client.liveConnections).toBe(1);
  });

  it('errors switched on and off mid-run (error-file) affect only the requests made meanwhile', async () => {
    const dir = tmpDir('bgc-');
    const trigger = join(dir.path, 'fail-now');
    const s = await serve(['--filter=error', 'memory', '1M', 'error-rate=100%', `error-file=${trigger}`], dir);
    client = await NbdClient.connect(s.uri);
    await client.write(0, patternBytes(8192, 3));
    const { writeFileSync, rmSync } = await import('node:fs');
    writeFileSync(trigger, '');
    await expect(client.read(0, 8192)).rejects.toMatchObject({ code: 'EIO' });
    rmSync(trigger);
    expectSameBytes(await client.read(0, 8192), patternBytes(8192, 3));
  });

  it('reads of 64 MiB are cut at 32 MiB and land intact (pattern plugin)', async () => {
    const dir = tmpDir('bgc-');
    const log = join(dir.path, 'log');
    const s = await serve(['--filter=log', 'pattern', '128M', `logfile=${log}`], dir);
    client = await NbdClient.connect(s.uri);
    const offset = 8 * 1024 * 1024 + 8;
    const data = await client.read(offset, 64 * 1024 * 1024);
    expectSameBytes(data, patternAt(offset, data.length), 'pattern');
    const reads = logged(log, 'Read');
    expect(reads.map((r) => r.count)).toEqual([32 * 1024 * 1024, 32 * 1024 * 1024]);
  });

  it('with a small server maximum (blocksize-policy) a 1 MiB read and write go as 64 KiB pieces', async () => {
    const dir = tmpDir('bgc-');
    const log = join(dir.path, 'log');
    const s = await serve(['--filter=log', '--filter=blocksize-policy', 'memory', '4M', 'blocksize-minimum=512', 'blocksize-preferred=4096', 'blocksize-maximum=65536', `logfile=${log}`], dir);
    client = await NbdClient.connect(s.uri);
    expect(client.limits).toMatchObject({ minBlockSize: 512, maxTransfer: 65536 });
    const data = patternBytes(1024 * 1024, 9);
    await client.write(512, data);
    expectSameBytes(await client.read(512, data.length), data);
    const pieces = [...logged(log, 'Write'), ...logged(log, 'Read')];
    expect(pieces.length).toBe(32);
    expect(pieces.every((p) => p.count === 65536)).toBe(true);
    await expect(client.read(100, 512)).rejects.toMatchObject({ code: 'EINVAL' });
  });

  it('an export whose size is not a multiple of the minimum block size opens, ending at its last whole block (as qemu)', async () => {
    const s = await serve(['--filter=blocksize-policy', '--filter=truncate', 'memory', '2M', 'truncate=1000001', 'blocksize-minimum=512', 'blocksize-error-policy=error']);
    client = await NbdClient.connect(s.uri);
    expect(client.size).toBe(1000001 - (1000001 % 512));
    const tail = patternBytes(512, 4);
    await client.write(client.size - 512, tail);
    expectSameBytes(await client.read(client.size - 512, 512), tail);
    await expect(client.read(client.size, 512)).rejects.toMatchObject({ code: 'EINVAL' });
  });

  it('WRITE_ZEROES and TRIM beyond 4 GiB are cut into aligned pieces below 2^32 with compact headers', async () => {
    const dir = tmpDir('bgc-');
    const log = join(dir.path, 'log');
    const s = await serve(['--filter=log', 'memory', '12G', `logfile=${log}`], dir);
    client = await NbdClient.connect(s.uri);
    expect(client.info.replyMode).toBe('structured');
    const five = 5 * 1024 ** 3;
    await client.writeZeroes(4096, five);
    await client.discard(0, 9 * 1024 ** 3);
    const zeros = logged(log, 'Zero');
    expect(zeros.sort((a, b) => a.offset - b.offset)).toEqual([
      { connection: 1, offset: 4096, count: 0xfffff000 },
      { connection: 1, offset: 4096 + 0xfffff000, count: five - 0xfffff000 },
    ]);
    const trims = logged(log, 'Trim');
    // The pieces go out together; a multi-threaded server may log them in any order.
    expect(trims.map((t) => [t.offset, t.count]).sort((a, b) => a[0] - b[0])).toEqual([
      [0, 0xfffff000],
      [0xfffff000, 0xfffff000],
      [2 * 0xfffff000, 9 * 1024 ** 3 - 2 * 0xfffff000],
    ]);
    // Block status over 12 GiB asks for at most one compact length and the answer starts at 0.
    const extents = await client.blockStatus(0, 12 * 1024 ** 3);
    expect(extents[0].offset).toBe(0);
    expect(logged(log, 'Extents').every((e) => e.count <= 0xfffff000)).toBe(true);
  });

  it('multi-conn: connections: 4 opens four and spreads concurrent requests over all of them', async () => {
    const dir = tmpDir('bgc-');
    const log = join(dir.path, 'log');
    const s = await serve(['--filter=log', 'memory', '8M', `logfile=${log}`], dir);
    client = await NbdClient.connect(s.uri, { connections: 4 });
    expect(client.capabilities.canMultiConn).toBe(true);
    expect(client.info.connections).toBe(4);
    expect(client.liveConnections).toBe(4);
    const writes = Array.from({ length: 64 }, (_, i) => client!.write(i * 65536, patternBytes(65536, i)));
    await Promise.all(writes);
    await client.flush();
    const reads = await Promise.all(Array.from({ length: 64 }, (_, i) => client!.read(i * 65536, 65536)));
    reads.forEach((r, i) => expectSameBytes(r, patternBytes(65536, i), `block ${i}`));
    const perConnection = new Map<number, number>();
    for (const w of logged(log, 'Write')) perConnection.set(w.connection, (perConnection.get(w.connection) ?? 0) + 1);
    expect([...perConnection.keys()].sort()).toEqual([1, 2, 3, 4]);
    // Least-outstanding spreads an instantaneous burst evenly.
    expect([...perConnection.values()]).toEqual([16, 16, 16, 16]);
  });

  it('a request without a reply within requestTimeout fails with ETIMEDOUT and the connection is replaced', async () => {
    const s = await serve(['--filter=delay', 'memory', '1M', 'rdelay=5']);
    client = await NbdClient.connect(s.uri, { requestTimeout: 200, reconnectDelay: 5000, backoff: { initialDelay: 10 } });
    const events: string[] = [];
    client.on('disconnected', ({ error }) => events.push(`disconnected:${error.code}`));
    client.on('reconnected', () => events.push('reconnected'));
    const started = Date.now();
    await expect(client.read(0, 4096)).rejects.toMatchObject({ code: 'ETIMEDOUT' });
    expect(Date.now() - started).toBeLessThan(2000);
    // Writes are not delayed: one issued now rides the new connection.
    await client.write(0, patternBytes(4096, 1));
    expect(events).toEqual(['disconnected:ETIMEDOUT', 'reconnected']);
  });

  it('close() sends NBD_CMD_DISC after draining (nbdkit sees a clean disconnect)', async () => {
    const dir = tmpDir('bgc-');
    const log = join(dir.path, 'log');
    const s = await serve(['--filter=log', '--filter=delay', 'memory', '1M', 'wdelay=200ms', `logfile=${log}`], dir);
    client = await NbdClient.connect(s.uri);
    const pending = client.write(0, patternBytes(512, 1));
    const closed = client.close();
    await pending; // in flight when close() was called: it completes
    await closed;
    expect(client.state).toBe('closed');
    await expect(client.read(0, 1)).rejects.toMatchObject({ code: 'ESHUTDOWN' });
    const text = readFileSync(log, 'utf8');
    expect(text).toMatch(/connection=1 \.\.\.Write id=1 .*return=0/);
    expect(text).toMatch(/connection=1 Disconnect transactions=1/);
  });
});
