import { afterAll, expect, it } from 'vitest';
import { NbdClient } from '../../../src/nbd/client/index.js';
import { startNbdkit, startQemuNbd, startNbdServer } from './servers.js';
import { execSync } from 'node:child_process';

it('smoke nbdkit', async () => {
  const s = await startNbdkit(['memory', '8M']);
  try {
    const c = await NbdClient.connect(s.uri);
    console.log(c.info, c.capabilities, c.limits);
    await c.write(4096, new Uint8Array(8192).fill(7));
    const r = await c.read(0, 16384);
    expect(r[4095]).toBe(0); expect(r[4096]).toBe(7); expect(r[12288]).toBe(0);
    console.log(await c.blockStatus(0, 8 << 20));
    await c.writeZeroes(4096, 4096);
    await c.discard(0, 1 << 20);
    await c.flush();
    console.log(await c.blockStatus(0, 8 << 20));
    await c.close();
  } finally { await s.stop(); s.removeDir(); }
});
it('smoke qemu', async () => {
  execSync('truncate -s 8M /tmp/bgc/q.img');
  const s = await startQemuNbd('/tmp/bgc/q.img');
  try {
    const c = await NbdClient.connect(s.uri);
    console.log(c.info, c.capabilities, c.limits);
    await c.write(4096, new Uint8Array(8192).fill(7));
    const r = await c.read(0, 16384);
    expect(r[4096]).toBe(7);
    console.log(await c.blockStatus(0, 8 << 20));
    await c.close();
  } finally { await s.stop(); s.removeDir(); }
});
it('smoke nbd-server', async () => {
  execSync('truncate -s 8M /tmp/bgc/n.img');
  const s = await startNbdServer('/tmp/bgc/n.img');
  try {
    const c = await NbdClient.connect(s.uri);
    console.log(c.info, c.capabilities, c.limits);
    await c.write(4096, new Uint8Array(8192).fill(7));
    const r = await c.read(0, 16384);
    expect(r[4096]).toBe(7);
    await c.flush();
    await c.close();
  } finally { await s.stop(); s.removeDir(); }
});
