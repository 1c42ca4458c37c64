/**
 * Group `manifest`: the driver describes itself truthfully and sanely — the size asked for,
 * boolean capabilities that do not contradict each other, limits NBD peers can work with.
 */
import { expect, it } from 'vitest';
import type { SuiteContext } from './context.js';

const CAPABILITY_KEYS = [
  'canWrite',
  'canFlush',
  'canFua',
  'canDiscard',
  'canZero',
  'canFastZero',
  'canBlockStatus',
  'canMultiConn',
  'canCache',
] as const;

const METHODS = ['read', 'readInto', 'write', 'flush', 'discard', 'writeZeroes', 'blockStatus', 'cache', 'close'] as const;

function isPowerOfTwo(n: number): boolean {
  return Number.isSafeInteger(n) && n > 0 && (n & (n - 1)) === 0;
}

/** Registers the `manifest` tests. */
export function manifestTests(ctx: SuiteContext): void {
  const { timeout } = ctx;

  it('has the size the factory was asked for, a name, and starts open and idle', async () => {
    await ctx.withDriver(async (d) => {
      // Duck-typed rather than instanceof: the embedder's driver may come from another copy of
      // blockgraph (ESM vs CJS, or a nested install) than this suite.
      for (const method of METHODS) expect(typeof (d as unknown as Record<string, unknown>)[method], method).toBe('function');
      expect(d.size).toBe(ctx.size);
      expect(typeof d.name).toBe('string');
      expect(d.state).toBe('open');
      expect(d.inFlight).toBe(0);
      expect(Array.isArray(d.children)).toBe(true);
      for (const child of d.children) expect(typeof child.read, 'children are drivers').toBe('function');
    });
  }, timeout);

  it('capabilities are booleans and canFastZero implies canZero', async () => {
    await ctx.withDriver(async (d) => {
      const caps = d.capabilities;
      for (const key of CAPABILITY_KEYS) expect(typeof caps[key], `capabilities.${key}`).toBe('boolean');
      // A hint, so optional; but when there, a boolean (a truthy string would pass for true).
      expect(['undefined', 'boolean'], 'capabilities.canAdoptWrites').toContain(typeof caps.canAdoptWrites);
      if (caps.canFastZero) expect(caps.canZero, 'fast zeroing is a kind of native zeroing').toBe(true);
      // The suite was gated by the probe's manifest: every driver from the factory must agree.
      expect({ ...caps }).toEqual(ctx.caps);
    });
  }, timeout);

  it('limits are consistent: power-of-two block sizes, aligned maxima, size a multiple of minBlockSize', async () => {
    await ctx.withDriver(async (d) => {
      const { minBlockSize, preferredBlockSize, maxBlockSize, maxTransfer } = d.limits;
      expect(isPowerOfTwo(minBlockSize) && minBlockSize <= 65536, `minBlockSize ${minBlockSize}`).toBe(true);
      expect(isPowerOfTwo(preferredBlockSize) && preferredBlockSize >= minBlockSize, `preferredBlockSize ${preferredBlockSize}`).toBe(true);
      expect(Number.isSafeInteger(maxBlockSize) && maxBlockSize >= minBlockSize, `maxBlockSize ${maxBlockSize}`).toBe(true);
      expect(maxBlockSize % minBlockSize, 'maxBlockSize is a multiple of minBlockSize').toBe(0);
      expect(Number.isSafeInteger(maxTransfer) && maxTransfer >= minBlockSize, `maxTransfer ${maxTransfer}`).toBe(true);
      expect(maxTransfer % minBlockSize, 'maxTransfer is a multiple of minBlockSize').toBe(0);
      expect(d.size % minBlockSize, 'size is a multiple of minBlockSize').toBe(0);
      expect({ ...d.limits }).toEqual(ctx.limits);
    });
  }, timeout);
}
