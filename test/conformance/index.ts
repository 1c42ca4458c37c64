/**
 * `blockgraph/conformance`: the suite every BlockDriver in this project passes, exported so that
 * authors of their own drivers can run it with vitest (and fast-check, for its properties).
 *
 * @packageDocumentation
 */
import { describe, it } from 'vitest';
import type { BlockDriver } from '../../src/driver.js';
import { errorTests, zeroLengthTests } from './bad-requests.js';
import { blockStatusTests } from './block-status.js';
import { concurrencyTests } from './concurrency.js';
import { alignUp, makeContext, type SuiteContext } from './context.js';
import { neverWrittenTests, readIntoTests, readWriteTests, unalignedTests } from './io.js';
import { abortTests } from './abort.js';
import { leaseTests } from './lease.js';
import { fuaFlushTests, lifecycleTests } from './lifecycle.js';
import { manifestTests } from './manifest.js';
import { modelTests } from './model.js';
import { durabilityTests } from './durability.js';
import { discardTests, writeZeroesTests } from './zeroing.js';

/** Options of {@link blockDriverSuite}. */
export interface BlockDriverSuiteOptions {
  /** Label of the top-level describe block, e.g. the driver's class name. */
  readonly name: string;
  /**
   * Creates a fresh driver of exactly `size` bytes that reads as zeros everywhere, writable if
   * the driver can be. Called once while vitest collects the tests (a probe, closed at once,
   * whose `capabilities` and `limits` choose the tests), then once per test and per property run.
   */
  readonly factory: (options: { size: number }) => BlockDriver | Promise<BlockDriver>;
  /**
   * Device size used by every test. Default: 1 MiB + 12345 bytes (odd on purpose) when
   * `limits.minBlockSize` is 1, that rounded up to a multiple of `minBlockSize` otherwise.
   */
  readonly size?: number;
  /**
   * Runs after each driver the suite opened has been closed (the suite always closes it first),
   * e.g. to stop a server or delete a file behind it. Also runs for the probe.
   */
  readonly cleanup?: (driver: BlockDriver) => Promise<void>;
  /** fast-check runs per property (default 50). Each run opens a fresh driver. */
  readonly numRuns?: number;
  /** Timeout of each test in milliseconds (default 60 000), whatever the vitest config says. */
  readonly timeout?: number;
  /**
   * Groups to skip, each `'group'` or `'group: reason'`; the reason appears in the test name.
   * The groups are listed in {@link SUITE_GROUPS}; an unknown name is an error, not a silent no-op.
   */
  readonly skip?: readonly string[];
  /**
   * When true, a discarded range must read back as zeros. Default false: discard is advisory and
   * each discarded byte may read as its old value or as zero.
   */
  readonly discardReadsZeroes?: boolean;
  /**
   * Opens a new driver over the same storage as `closed`, which the suite has just closed (the
   * same file, the same export of a server still running). When given, the `durability` group
   * checks that nothing acknowledged is lost across close() and reopening; without it that group
   * is registered as skipped. `cleanup` runs for every driver the suite opened this way too, the
   * newest first, so the cleanup of the first one may remove the storage.
   */
  readonly reopen?: (closed: BlockDriver) => BlockDriver | Promise<BlockDriver>;
}

/** The suite's test groups, in the order they run; names for {@link BlockDriverSuiteOptions.skip}. */
export const SUITE_GROUPS = Object.freeze([
  'manifest',
  'read-write',
  'unaligned',
  'never-written',
  'read-into',
  'write-zeroes',
  'discard',
  'block-status',
  'errors',
  'zero-length',
  'lifecycle',
  'fua-flush',
  'durability',
  'abort',
  'concurrency',
  'model',
  'lease',
] as const);

/** The name of one group of the suite. */
export type SuiteGroup = (typeof SUITE_GROUPS)[number];

const REGISTER: Readonly<Record<SuiteGroup, (ctx: SuiteContext) => void>> = {
  manifest: manifestTests,
  'read-write': readWriteTests,
  unaligned: unalignedTests,
  'never-written': neverWrittenTests,
  'read-into': readIntoTests,
  'write-zeroes': writeZeroesTests,
  discard: discardTests,
  'block-status': blockStatusTests,
  errors: errorTests,
  'zero-length': zeroLengthTests,
  lifecycle: lifecycleTests,
  'fua-flush': fuaFlushTests,
  durability: durabilityTests,
  abort: abortTests,
  concurrency: concurrencyTests,
  model: modelTests,
  lease: leaseTests,
};

/** 1 MiB + 12345: odd, so requests near the end of the device are odd-sized too. */
const DEFAULT_SIZE = 1024 * 1024 + 12345;
/** The probe's size when none is given: a multiple of every legal minBlockSize (≤ 64 KiB). */
const PROBE_SIZE = 1024 * 1024 + 64 * 1024;

/**
 * Registers the conformance tests for one driver: call it at the top level of a `*.test.ts` file.
 *
 * ```ts
 * import { blockDriverSuite } from 'blockgraph/conformance';
 * blockDriverSuite({ name: 'MyDriver', factory: ({ size }) => new MyDriver({ size }) });
 * ```
 *
 * Tests a driver cannot pass by its own manifest (writes on a read-only driver, fast zeroing
 * without `canFastZero`, …) are registered as skipped with the reason in their name, and the
 * opposite behaviour (EPERM, ENOTSUP, …) is tested instead. See docs/conformance.md.
 */
export function blockDriverSuite(options: BlockDriverSuiteOptions): void {
  const { name, factory } = options;
  if (typeof name !== 'string' || name === '') throw new TypeError('blockDriverSuite: name must be a non-empty string');
  if (typeof factory !== 'function') throw new TypeError('blockDriverSuite: factory must be a function');
  if (options.reopen !== undefined && typeof options.reopen !== 'function') throw new TypeError('blockDriverSuite: reopen must be a function');
  const numRuns = positiveInteger(options.numRuns, 50, 'numRuns');
  const timeout = positiveInteger(options.timeout, 60_000, 'timeout');
  if (options.size !== undefined) positiveInteger(options.size, 0, 'size');
  const skips = parseSkips(options.skip ?? []);

  describe(name, async () => {
    const probe = await factory({ size: options.size ?? PROBE_SIZE });
    let ctx: SuiteContext;
    try {
      const limits = { ...probe.limits };
      const size = options.size ?? alignUp(DEFAULT_SIZE, Math.max(1, limits.minBlockSize));
      ctx = makeContext({
        name,
        size,
        caps: { ...probe.capabilities },
        limits,
        numRuns,
        timeout,
        discardReadsZeroes: options.discardReadsZeroes === true,
        factory,
        reopen: options.reopen,
        cleanup: options.cleanup,
      });
    } finally {
      await probe.close();
      await options.cleanup?.(probe);
    }
    // The groups build requests of up to 16 blocks and windows of up to 64 blocks.
    if (ctx.size < 64 * ctx.unit || ctx.maxIo < 16 * ctx.unit) {
      throw new Error(
        `blockDriverSuite(${name}): needs size >= 64 and maxBlockSize >= 16 times minBlockSize (${ctx.unit}); got size ${ctx.size}, maxBlockSize ${ctx.limits.maxBlockSize}`,
      );
    }
    for (const group of SUITE_GROUPS) {
      const reason = skips.get(group);
      if (reason === undefined) describe(group, () => REGISTER[group](ctx));
      else describe.skip(group, () => it(`skipped by the embedder: ${reason}`, () => {}));
    }
  });
}

function positiveInteger(value: number | undefined, fallback: number, what: string): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value <= 0) throw new TypeError(`blockDriverSuite: ${what} must be a positive integer, got ${value}`);
  return value;
}

/** `'group'` or `'group: reason'` entries to a map from group to reason. */
function parseSkips(entries: readonly string[]): Map<SuiteGroup, string> {
  const out = new Map<SuiteGroup, string>();
  for (const entry of entries) {
    const colon = entry.indexOf(':');
    const group = (colon < 0 ? entry : entry.slice(0, colon)).trim();
    const reason = colon < 0 ? 'no reason given' : entry.slice(colon + 1).trim() || 'no reason given';
    if (!(SUITE_GROUPS as readonly string[]).includes(group)) {
      throw new TypeError(`blockDriverSuite: unknown group '${group}' in skip; groups are ${SUITE_GROUPS.join(', ')}`);
    }
    out.set(group as SuiteGroup, reason);
  }
  return out;
}
