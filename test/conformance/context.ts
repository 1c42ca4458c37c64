/**
 * What every conformance group receives: the driver's manifest (read once from a probe driver),
 * the device size under test, and a way to get fresh drivers that are always released.
 */
import type { BlockDriver } from '../../src/driver.js';
import type { BlockCapabilities, BlockLimits } from '../../src/types.js';

/** The resolved settings and helpers shared by the groups of one suite run. */
export interface SuiteContext {
  /** Label of the suite (the driver under test). */
  readonly name: string;
  /** Size of every driver the groups open. */
  readonly size: number;
  /** The manifest read from the probe driver; groups are gated by it. */
  readonly caps: BlockCapabilities;
  readonly limits: BlockLimits;
  /** `limits.minBlockSize`: every generated offset and length is a multiple of it. */
  readonly unit: number;
  /** Longest single read or write the suite issues: maxBlockSize and size, aligned down to unit. */
  readonly maxIo: number;
  readonly numRuns: number;
  readonly timeout: number;
  readonly discardReadsZeroes: boolean;
  /** The embedder's `reopen`, if any: a new driver over the storage of a closed one. */
  readonly reopen?: (closed: BlockDriver) => BlockDriver | Promise<BlockDriver>;
  /** A fresh driver from the factory, checked to have the requested size. */
  open(): Promise<BlockDriver>;
  /** Closes the driver (idempotent) and runs the embedder's cleanup. */
  release(driver: BlockDriver): Promise<void>;
  /** Opens a driver, runs `fn`, and always releases the driver. */
  withDriver<T>(fn: (driver: BlockDriver) => Promise<T>): Promise<T>;
}

/** Input to {@link makeContext}: the embedder's factory and cleanup plus the resolved settings. */
export interface ContextInit {
  readonly name: string;
  readonly size: number;
  readonly caps: BlockCapabilities;
  readonly limits: BlockLimits;
  readonly numRuns: number;
  readonly timeout: number;
  readonly discardReadsZeroes: boolean;
  readonly factory: (options: { size: number }) => BlockDriver | Promise<BlockDriver>;
  readonly reopen?: (closed: BlockDriver) => BlockDriver | Promise<BlockDriver>;
  readonly cleanup?: (driver: BlockDriver) => Promise<void>;
}

/** Builds the {@link SuiteContext} of one suite run. */
export function makeContext(init: ContextInit): SuiteContext {
  const unit = Math.max(1, init.limits.minBlockSize);
  const maxIo = alignDown(Math.min(init.limits.maxBlockSize, init.size), unit);
  const release = async (driver: BlockDriver): Promise<void> => {
    try {
      await driver.close();
    } finally {
      await init.cleanup?.(driver);
    }
  };
  const open = async (): Promise<BlockDriver> => {
    const driver = await init.factory({ size: init.size });
    if (driver.size !== init.size) {
      await release(driver);
      throw new Error(`${init.name}: factory({ size: ${init.size} }) returned a driver of size ${driver.size}`);
    }
    // The groups were chosen by the probe's manifest: a driver that differs would be tested against the wrong rules.
    const drift = manifestDrift(driver, init);
    if (drift.length > 0) {
      await release(driver);
      throw new Error(`${init.name}: a driver from the factory differs from the probe's manifest: ${drift.join(', ')}`);
    }
    return driver;
  };
  return {
    ...init,
    unit,
    maxIo,
    open,
    release,
    async withDriver<T>(fn: (driver: BlockDriver) => Promise<T>): Promise<T> {
      const driver = await open();
      try {
        return await fn(driver);
      } finally {
        await release(driver);
      }
    },
  };
}

/** The capabilities and limits in which `driver` differs from the probe's, as "key probe → driver". */
function manifestDrift(driver: BlockDriver, probe: { readonly caps: BlockCapabilities; readonly limits: BlockLimits }): string[] {
  const out: string[] = [];
  const caps = driver.capabilities as unknown as Record<string, unknown>;
  const want = probe.caps as unknown as Record<string, unknown>;
  for (const key of new Set([...Object.keys(want), ...Object.keys(caps)])) if (caps[key] !== want[key]) out.push(`${key} ${String(want[key])} → ${String(caps[key])}`);
  const limits = driver.limits as unknown as Record<string, unknown>;
  const wantLimits = probe.limits as unknown as Record<string, unknown>;
  for (const key of Object.keys(wantLimits)) if (limits[key] !== wantLimits[key]) out.push(`${key} ${String(wantLimits[key])} → ${String(limits[key])}`);
  return out;
}

/** `value` rounded down to a multiple of `unit`. */
export function alignDown(value: number, unit: number): number {
  return value - (value % unit);
}

/** `value` rounded up to a multiple of `unit`. */
export function alignUp(value: number, unit: number): number {
  const rest = value % unit;
  return rest === 0 ? value : value + unit - rest;
}
