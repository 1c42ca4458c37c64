/**
 * Every filter stacked over a real file: composition must still conform, and a fault deep in the
 * stack must surface, typed, at the top.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { BlockDriver } from '../../src/driver.js';
import { FileDriver } from '../../src/drivers/file.js';
import { Delay } from '../../src/filters/delay.js';
import { FaultInjector } from '../../src/filters/fault-injector.js';
import { Slice } from '../../src/filters/slice.js';
import { Stats } from '../../src/filters/stats.js';
import { Throttle } from '../../src/filters/throttle.js';
import { blockDriverSuite } from '../conformance/index.js';

const dir = mkdtempSync(join(tmpdir(), 'blockgraph-stack-'));
let n = 0;
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const paths = new WeakMap<BlockDriver, string>();

async function stack(size: number): Promise<{ top: Stats; faults: FaultInjector; file: FileDriver }> {
  const file = await FileDriver.open(join(dir, `s-${n++}.img`), { create: true, size: size + 8192 });
  const faults = new FaultInjector(new Slice(file, { offset: 4096, length: size }), { seed: 7 });
  const top = new Stats(new Delay(new Throttle(faults, { totalIops: 1e9 }), { delays: { flush: 1 } }));
  paths.set(top, file.path);
  return { top, faults, file };
}

blockDriverSuite({
  name: 'Stats > Delay > Throttle > FaultInjector > Slice > FileDriver',
  factory: async ({ size }) => (await stack(size)).top,
  cleanup: async (driver) => rm(paths.get(driver) ?? join(dir, 'none'), { force: true }),
});

describe('filter stack', () => {
  it('a fault injected at the bottom reaches the top with its code, is counted, and leaves the file untouched', async () => {
    const { top, faults, file } = await stack(65536);
    faults.addRule({ ops: ['write'], error: 'ENOSPC', range: { offset: 1000, length: 1 } });
    await top.write(0, new Uint8Array(10).fill(1));
    await expect(top.write(990, new Uint8Array(20).fill(2))).rejects.toMatchObject({ code: 'ENOSPC' });
    expect(top.snapshot().write).toMatchObject({ calls: 2, errors: 1, errorCodes: { ENOSPC: 1 }, bytes: 10 });
    expect([...(await file.read(4096 + 985, 30))].every((b) => b === 0)).toBe(true);
    expect([...(await file.read(4096, 10))]).toEqual(Array(10).fill(1));
    await top.close();
    expect(file.state).toBe('closed');
  });
});
