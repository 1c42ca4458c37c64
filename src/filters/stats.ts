/**
 * Stats: counts what passes through — requests, bytes, errors and latency per operation.
 */
import type { BlockDriver } from '../driver.js';
import { isBlockError, type BlockErrorCode } from '../errors.js';
import { FilterDriver, type FilterOptions } from '../filter.js';
import type {
  BlockCapabilities, BlockLimits,
  BlockExtent,
  DiscardOptions,
  IoOptions,
  WriteOptions,
  WriteZeroesOptions,
} from '../types.js';
import { BLOCK_OPS, wholeRequestCapabilities, wholeRequestLimits, type BlockOp } from './ops.js';

/** Figures for one operation. Requests still in flight are not included. */
export interface OpStats {
  /** Requests that finished, successfully or not. */
  readonly calls: number;
  /** Requests that failed. */
  readonly errors: number;
  /** Failures by code. */
  readonly errorCodes: Readonly<Partial<Record<BlockErrorCode, number>>>;
  /** Bytes covered by successful requests (0 for flush). */
  readonly bytes: number;
  /** Sum of the latencies of finished requests, in milliseconds (divide by `calls` for the mean). */
  readonly latencySumMs: number;
  /** Longest latency of a finished request, in milliseconds. */
  readonly latencyMaxMs: number;
}

/** A copy of every operation's figures at one moment. */
export type StatsSnapshot = { readonly [K in BlockOp]: OpStats };

interface Counter {
  calls: number;
  errors: number;
  errorCodes: Partial<Record<BlockErrorCode, number>>;
  bytes: number;
  latencySumMs: number;
  latencyMaxMs: number;
}

/** Options of {@link Stats}. */
export type StatsOptions = FilterOptions;

/**
 * Measures every request that reaches it, i.e. after the base class has validated it: a request
 * rejected for a bad range is not counted, one that the child fails is. Latency runs from the
 * filter receiving the request to its settling, so it includes the whole graph below.
 */
export class Stats extends FilterDriver {
  #counters = emptyCounters();

  constructor(child: BlockDriver, options: StatsOptions = {}) {
    super(child, options);
  }

  override get capabilities(): BlockCapabilities {
    return wholeRequestCapabilities(this.child.capabilities);
  }
  override get limits(): BlockLimits {
    return wholeRequestLimits(this.child.limits);
  }

  /** A frozen copy of the figures since construction or the last `reset()`. */
  snapshot(): StatsSnapshot {
    const out = {} as Record<BlockOp, OpStats>;
    for (const op of BLOCK_OPS) {
      const c = this.#counters[op];
      out[op] = Object.freeze({ ...c, errorCodes: Object.freeze({ ...c.errorCodes }) });
    }
    return Object.freeze(out);
  }

  /** Starts counting afresh. Requests in flight at the time count towards the new period. */
  reset(): void {
    this.#counters = emptyCounters();
  }

  protected override _read(offset: number, target: Uint8Array, options: IoOptions): Promise<void> {
    return this.#measure('read', target.length, this.child.readInto(offset, target, options));
  }
  protected override _write(offset: number, data: Uint8Array, options: WriteOptions): Promise<void> {
    return this.#measure('write', data.length, this.child.write(offset, data, options));
  }
  protected override _flush(options: IoOptions): Promise<void> {
    return this.#measure('flush', 0, this.child.flush(options));
  }
  protected override _discard(offset: number, length: number, options: DiscardOptions): Promise<void> {
    return this.#measure('discard', length, this.child.discard(offset, length, options));
  }
  protected override _writeZeroes(offset: number, length: number, options: WriteZeroesOptions): Promise<void> {
    return this.#measure('writeZeroes', length, this.child.writeZeroes(offset, length, options));
  }
  protected override _blockStatus(offset: number, length: number, options: IoOptions): Promise<BlockExtent[]> {
    return this.#measure('blockStatus', length, this.child.blockStatus(offset, length, options));
  }
  protected override _cache(offset: number, length: number, options: IoOptions): Promise<void> {
    return this.#measure('cache', length, this.child.cache(offset, length, options));
  }

  async #measure<T>(op: BlockOp, bytes: number, request: Promise<T>): Promise<T> {
    // The child call has already started (synchronously), so the clock starts as it is issued.
    const start = performance.now();
    let code: BlockErrorCode | undefined;
    try {
      return await request;
    } catch (err) {
      code = isBlockError(err) ? err.code : 'EIO';
      throw err;
    } finally {
      const c = this.#counters[op];
      const ms = performance.now() - start;
      c.calls++;
      c.latencySumMs += ms;
      if (ms > c.latencyMaxMs) c.latencyMaxMs = ms;
      if (code === undefined) c.bytes += bytes;
      else {
        c.errors++;
        c.errorCodes[code] = (c.errorCodes[code] ?? 0) + 1;
      }
    }
  }
}

function emptyCounters(): Record<BlockOp, Counter> {
  const out = {} as Record<BlockOp, Counter>;
  for (const op of BLOCK_OPS) out[op] = { calls: 0, errors: 0, errorCodes: {}, bytes: 0, latencySumMs: 0, latencyMaxMs: 0 };
  return out;
}
