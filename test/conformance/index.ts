/**
 * `blockgraph/conformance`: the suite every BlockDriver in this project passes, exported so that
 * authors of their own drivers can run it with vitest.
 */
import type { BlockDriver } from '../../src/driver.js';

export interface BlockDriverSuiteOptions {
  /** Label of the describe block. */
  readonly name: string;
  /** Creates a fresh, writable-if-it-can-be, zero-filled driver of exactly `size` bytes. */
  readonly factory: (options: { size: number }) => BlockDriver | Promise<BlockDriver>;
}

/** Registers the conformance tests for one driver (stub; the full suite is being written). */
export function blockDriverSuite(_options: BlockDriverSuiteOptions): void {}
