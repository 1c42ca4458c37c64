/**
 * Delay: adds latency before each request reaches the child, like a slow or distant disk.
 * Useful to widen race windows in tests and to model a remote replica.
 */
import type { BlockDriver } from '../driver.js';
import { BlockError } from '../errors.js';
import { FilterDriver, type FilterOptions } from '../filter.js';
import type {
  BlockCapabilities, BlockLimits,
  BlockExtent,
  DiscardOptions,
  IoOptions,
  WriteOptions,
  WriteZeroesOptions,
} from '../types.js';
import { abortableSleep } from './abortable-sleep.js';
import { BLOCK_OPS, wholeRequestCapabilities, wholeRequestLimits, type BlockOp } from './ops.js';

/** Milliseconds of delay per operation; missing operations are not delayed. */
export type DelayTable = { readonly [K in BlockOp]?: number };

/** Chooses the delay in milliseconds of one request (e.g. to add jitter or slow one range). */
export type DelayFunction = (op: BlockOp, offset: number, length: number) => number;

/** Options of {@link Delay}. */
export interface DelayOptions extends FilterOptions {
  /** A table of per-operation delays, or a function called for every request. */
  readonly delays: DelayTable | DelayFunction;
}

/** Holds each request back for a configurable time before passing it to the child. */
export class Delay extends FilterDriver {
  #delays: DelayTable | DelayFunction;

  constructor(child: BlockDriver, options: DelayOptions) {
    super(child, options);
    this.#delays = checkDelays(options?.delays);
  }

  override get capabilities(): BlockCapabilities {
    return wholeRequestCapabilities(this.child.capabilities);
  }
  override get limits(): BlockLimits {
    return wholeRequestLimits(this.child.limits);
  }

  /** The delays in force. */
  get delays(): DelayTable | DelayFunction {
    return this.#delays;
  }

  /** Replaces the delays; requests already waiting keep the delay they were given. */
  setDelays(delays: DelayTable | DelayFunction): void {
    this.#delays = checkDelays(delays);
  }

  protected override _read(offset: number, target: Uint8Array, options: IoOptions): Promise<void> {
    return after(this.#wait('read', offset, target.length, options), () => this.child.readInto(offset, target, options));
  }
  protected override _write(offset: number, data: Uint8Array, options: WriteOptions): Promise<void> {
    return after(this.#wait('write', offset, data.length, options), () => this.child.write(offset, data, options));
  }
  protected override _flush(options: IoOptions): Promise<void> {
    return after(this.#wait('flush', 0, 0, options), () => this.child.flush(options));
  }
  protected override _discard(offset: number, length: number, options: DiscardOptions): Promise<void> {
    return after(this.#wait('discard', offset, length, options), () => this.child.discard(offset, length, options));
  }
  protected override _writeZeroes(offset: number, length: number, options: WriteZeroesOptions): Promise<void> {
    return after(this.#wait('writeZeroes', offset, length, options), () => this.child.writeZeroes(offset, length, options));
  }
  protected override _blockStatus(offset: number, length: number, options: IoOptions): Promise<BlockExtent[]> {
    return after(this.#wait('blockStatus', offset, length, options), () => this.child.blockStatus(offset, length, options));
  }
  protected override _cache(offset: number, length: number, options: IoOptions): Promise<void> {
    return after(this.#wait('cache', offset, length, options), () => this.child.cache(offset, length, options));
  }

  #wait(op: BlockOp, offset: number, length: number, options: IoOptions): Promise<void> | undefined {
    const delays = this.#delays;
    const ms = typeof delays === 'function' ? delays(op, offset, length) : (delays[op] ?? 0);
    if (!isDelay(ms)) {
      return Promise.reject(
        new BlockError('EINVAL', `${this.name}: the delay function returned ${String(ms)} for ${op}`, {
          details: { op, offset, length, driver: this.name },
        }),
      );
    }
    // No timer at all for a zero delay, so a zero table is a true pass-through.
    if (ms === 0) return undefined;
    return abortableSleep(ms, options.signal, { op, offset, length, driver: this.name });
  }
}

/** Runs `request` once `wait` (if any) is over, without an extra promise when there is none. */
function after<T>(wait: Promise<void> | undefined, request: () => Promise<T>): Promise<T> {
  return wait === undefined ? request() : wait.then(request);
}

function isDelay(ms: unknown): ms is number {
  return typeof ms === 'number' && Number.isFinite(ms) && ms >= 0;
}

function checkDelays(delays: DelayTable | DelayFunction | undefined): DelayTable | DelayFunction {
  if (typeof delays === 'function') return delays;
  if (typeof delays !== 'object' || delays === null) throw new TypeError('delays must be a table of milliseconds or a function');
  for (const [op, ms] of Object.entries(delays)) {
    if (!BLOCK_OPS.includes(op as BlockOp)) throw new RangeError(`unknown operation ${op}`);
    if (ms !== undefined && !isDelay(ms)) throw new RangeError(`delay for ${op} must be a finite number of milliseconds >= 0, got ${String(ms)}`);
  }
  return Object.freeze({ ...delays });
}
