/**
 * A READ reply still queued behind a client that does not read carries the bytes of the moment it
 * was read, even when WRITEs overwrite that range meanwhile (the server never sends driver memory
 * that can still change). If the server ever lends driver memory for replies (leaseRead), every
 * lease must also be released exactly once; the counting driver checks that too.
 */
import { describe, expect, it } from 'vitest';
import { MemoryDriver } from '../../../src/drivers/memory.js';
import type { IoOptions, ReadLease } from '../../../src/types.js';
import { serverScope, startServer } from './fixture.js';
import { RawClient } from './raw-client.js';
import { eventually } from '../../helpers/eventually.js';

const MIB = 1024 * 1024;
const SIZE = 16 * MIB;
/** Enough 1 MiB replies to overflow the loopback socket buffers while the client is paused. */
const READS = 12;

/** A MemoryDriver that records every lease it lends and how often each is released. */
class CountingMemory extends MemoryDriver {
  readonly releases: number[] = [];
  protected override async _leaseRead(offset: number, length: number, options: IoOptions): Promise<ReadLease | undefined> {
    const lease = await super._leaseRead(offset, length, options);
    if (lease === undefined) return undefined;
    const index = this.releases.push(0) - 1;
    return {
      views: lease.views,
      release: () => {
        this.releases[index] = (this.releases[index] ?? 0) + 1;
        lease.release();
      },
    };
  }
}

const scope = serverScope();

function fill(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (i * 31 + seed) % 251;
  return out;
}

async function connect(driver: MemoryDriver, structured: boolean): Promise<RawClient> {
  scope.fixture = await startServer({ exports: { '': driver }, sparseReads: false });
  const c = await RawClient.connect(scope.fixture.port);
  scope.clients.push(c);
  await c.start();
  await c.go('', { structured });
  return c;
}


describe('READ replies while WRITEs overwrite the range', () => {
  for (const structured of [false, true]) {
    it(`queued replies keep the bytes read even when WRITEs overwrite them (${structured ? 'structured' : 'simple'})`, async () => {
      const driver = new CountingMemory({ size: SIZE });
      const before = fill(READS * MIB, 3);
      await driver.write(0, before);
      const c = await connect(driver, structured);
      c.socket.pause();
      const reads = Array.from({ length: READS }, (_, i) => c.read(i * MIB, MIB));
      const after = fill(MIB, 200);
      const writes = Array.from({ length: READS }, (_, i) => c.write(i * MIB, after));
      // Every WRITE has reached the driver while the READ replies still wait in socket buffers.
      expect(await eventually(async () => (await driver.read((READS - 1) * MIB, 16))[0] === after[0], 2000), 'the last WRITE is applied').toBe(true);
      c.socket.resume();
      const replies = await Promise.all(reads);
      for (const [i, r] of replies.entries()) {
        expect(r.error).toBe(0);
        expect(Buffer.compare(r.data, Buffer.from(before.subarray(i * MIB, (i + 1) * MIB))), `READ ${i}`).toBe(0);
      }
      for (const w of await Promise.all(writes)) expect(w.error).toBe(0);
      expect(Buffer.compare(Buffer.from(await driver.read(0, MIB)), Buffer.from(after))).toBe(0);
      expect(await eventually(() => driver.releases.every((n) => n === 1), 2000), 'every lease is released').toBe(true);
      expect(driver.releases.every((n) => n === 1)).toBe(true);
    });
  }
});
