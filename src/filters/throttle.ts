/**
 * Throttle: limits bandwidth and IOPS of reads, writes and both together, like QEMU's throttle
 * groups. Requests over the limit wait in FIFO order; a waiting request can be aborted.
 */
import type { BlockDriver } from '../driver.js';
import { FilterDriver, type FilterOptions } from '../filter.js';
import type { BlockCapabilities, BlockLimits, DiscardOptions, IoOptions, WriteOptions, WriteZeroesOptions } from '../types.js';
import { MAX_TIMER_MS, abortedError } from './abortable-sleep.js';
import { wholeRequestCapabilities, wholeRequestLimits } from './ops.js';
import { TokenBucket } from './token-bucket.js';

/**
 * Limits per second. Missing or 0 means unlimited. Reads and writes are each checked against
 * their own limits and the total ones.
 */
export interface ThrottleLimits {
  /** Read bandwidth, bytes per second. */
  readonly readBps?: number;
  /** Write bandwidth, bytes per second. */
  readonly writeBps?: number;
  /** Combined read and write bandwidth, bytes per second. */
  readonly totalBps?: number;
  /** Reads per second. */
  readonly readIops?: number;
  /** Writes (including discards and write-zeroes) per second. */
  readonly writeIops?: number;
  /** Reads and writes together per second. */
  readonly totalIops?: number;
  /** How many seconds' worth of each limit may pass at once after idling (default 1). */
  readonly burstSeconds?: number;
}

/** Options of {@link Throttle}: the filter options plus the initial limits. */
export interface ThrottleOptions extends FilterOptions, ThrottleLimits {}

type Direction = 'read' | 'write';
type LimitKey = 'readBps' | 'writeBps' | 'totalBps' | 'readIops' | 'writeIops' | 'totalIops';
const LIMIT_KEYS: readonly LimitKey[] = ['readBps', 'writeBps', 'totalBps', 'readIops', 'writeIops', 'totalIops'];

interface Waiter {
  readonly seq: number;
  /** The request, for the error if it is aborted. */
  readonly details: { readonly op: string; readonly offset: number; readonly length: number; readonly driver: string };
  readonly dir: Direction;
  readonly bytes: number;
  readonly resolve: () => void;
  readonly reject: (err: unknown) => void;
  readonly signal: AbortSignal | undefined;
  onAbort?: () => void;
}

/** One bucket a request of some direction draws from: its bytes or 1, and whether it is a total. */
interface Draw {
  readonly bucket: TokenBucket;
  readonly bytes: boolean;
  readonly shared: boolean;
}

/** What holds a request back: nothing, a limit of its own direction, or a shared total limit. */
type Blocker = 'none' | 'own' | 'shared';

/** Limits the rate of reads and writes passing to the child; see {@link ThrottleLimits}. */
export class Throttle extends FilterDriver {
  #limits: ThrottleLimits;
  readonly #buckets = new Map<LimitKey, TokenBucket>();
  readonly #queues: Record<Direction, Waiter[]> = { read: [], write: [] };
  readonly #draws: Record<Direction, Draw[]> = { read: [], write: [] };
  #seq = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(child: BlockDriver, options: ThrottleOptions = {}) {
    super(child, options);
    this.#limits = {};
    this.setLimits(options);
  }

  override get capabilities(): BlockCapabilities {
    return wholeRequestCapabilities(this.child.capabilities);
  }
  override get limits(): BlockLimits {
    return wholeRequestLimits(this.child.limits);
  }

  /** The limits in force (only the set ones, plus burstSeconds). */
  get throttleLimits(): ThrottleLimits {
    return this.#limits;
  }

  /** Requests waiting for their turn. */
  get queued(): number {
    return this.#queues.read.length + this.#queues.write.length;
  }

  /**
   * Replaces every limit (a limit left out becomes unlimited). Takes effect at once, also for
   * requests already waiting. A bucket keeps the tokens and debt it has; a new one starts full.
   */
  setLimits(limits: ThrottleLimits): void {
    const burst = limits.burstSeconds ?? 1;
    if (!(typeof burst === 'number' && Number.isFinite(burst) && burst > 0)) {
      throw new RangeError(`burstSeconds must be a positive number, got ${String(burst)}`);
    }
    for (const key of LIMIT_KEYS) {
      const v = limits[key];
      if (v !== undefined && !(typeof v === 'number' && Number.isFinite(v) && v >= 0)) {
        throw new RangeError(`${key} must be a finite number >= 0, got ${String(v)}`);
      }
    }
    const now = performance.now();
    const next: Partial<Record<LimitKey | 'burstSeconds', number>> = { burstSeconds: burst };
    for (const key of LIMIT_KEYS) {
      const rate = limits[key] ?? 0;
      const bucket = this.#buckets.get(key);
      if (rate === 0) {
        this.#buckets.delete(key);
        continue;
      }
      next[key] = rate;
      if (bucket === undefined) this.#buckets.set(key, new TokenBucket(rate, rate * burst, now));
      else bucket.reconfigure(rate, rate * burst, now);
    }
    this.#limits = Object.freeze(next);
    this.#plan();
    this.#pump();
  }

  protected override _read(offset: number, target: Uint8Array, options: IoOptions): Promise<void> {
    const turn = this.#admit('read', target.length, options.signal, 'read', offset);
    if (turn === undefined) return this.child.readInto(offset, target, options);
    return turn.then(() => this.child.readInto(offset, target, options));
  }
  protected override _write(offset: number, data: Uint8Array, options: WriteOptions): Promise<void> {
    const turn = this.#admit('write', data.length, options.signal, 'write', offset);
    if (turn === undefined) return this.child.write(offset, data, options);
    return turn.then(() => this.child.write(offset, data, options));
  }
  // Discard and write-zeroes carry no payload: they count as one write each but no bytes, so a
  // whole-device zeroing does not stall the queue for size / writeBps seconds.
  protected override async _discard(offset: number, length: number, options: DiscardOptions): Promise<void> {
    await this.#admit('write', 0, options.signal, 'discard', offset, length);
    return this.child.discard(offset, length, options);
  }
  protected override async _writeZeroes(offset: number, length: number, options: WriteZeroesOptions): Promise<void> {
    await this.#admit('write', 0, options.signal, 'writeZeroes', offset, length);
    return this.child.writeZeroes(offset, length, options);
  }

  protected override _close(): Promise<void> {
    // Nothing can be queued any more (close waits for in-flight requests), but be tidy.
    this.#clearTimer();
    return super._close();
  }

  /** Resolves when the request may go to the child; rejects with ECANCELED if aborted first. */
  #admit(
    dir: Direction,
    bytes: number,
    signal: AbortSignal | undefined,
    op: string,
    offset: number,
    length = bytes,
  ): Promise<void> | undefined {
    if (this.#buckets.size === 0) return undefined;
    const queues = this.#queues;
    // Fast path: nobody waiting and within limits, so no queue entry and no extra promise.
    if (queues.read.length === 0 && queues.write.length === 0) {
      this.#refill();
      if (this.#blocker(dir, bytes) === 'none') {
        this.#charge(dir, bytes);
        return undefined;
      }
    }
    return new Promise<void>((resolve, reject) => {
      const details = { op, offset, length, driver: this.name };
      const waiter: Waiter = { seq: this.#seq++, details, dir, bytes, resolve, reject, signal };
      if (signal !== undefined) {
        waiter.onAbort = () => this.#cancel(waiter);
        signal.addEventListener('abort', waiter.onAbort, { once: true });
      }
      queues[dir].push(waiter);
      this.#pump();
    });
  }

  #cancel(waiter: Waiter): void {
    const queue = this.#queues[waiter.dir];
    const i = queue.indexOf(waiter);
    if (i < 0) return;
    queue.splice(i, 1);
    waiter.reject(abortedError(waiter.signal as AbortSignal, waiter.details));
    // The cancelled request may have been the one holding the others back.
    this.#pump();
  }

  /**
   * Starts every request that may start, oldest first, then sets a timer for the next one.
   * A younger request may overtake an older one of the other direction only when the older one
   * waits for a limit of its own direction; one waiting for a total limit blocks everyone
   * younger, so the shared budget is handed out in arrival order.
   */
  #pump(): void {
    this.#clearTimer();
    this.#refill();
    const { read, write } = this.#queues;
    for (;;) {
      const heads = [read[0], write[0]].filter((w): w is Waiter => w !== undefined).sort((a, b) => a.seq - b.seq);
      let started = false;
      for (const w of heads) {
        const blocker = this.#blocker(w.dir, w.bytes);
        if (blocker === 'none') {
          this.#queues[w.dir].shift();
          this.#charge(w.dir, w.bytes);
          if (w.onAbort !== undefined) w.signal?.removeEventListener('abort', w.onAbort);
          w.resolve();
          started = true;
          break;
        }
        if (blocker === 'shared') break;
      }
      if (!started) break;
    }
    // Wake up when the first request that is allowed to go next can go: heads in arrival order,
    // up to the first one held by a shared limit (those behind it must wait for it anyway).
    let wait = Infinity;
    for (const w of [read[0], write[0]].filter((x): x is Waiter => x !== undefined).sort((a, b) => a.seq - b.seq)) {
      wait = Math.min(wait, this.#waitMs(w.dir, w.bytes));
      if (this.#blocker(w.dir, w.bytes) === 'shared') break;
    }
    if (wait === Infinity) return;
    // Past MAX_TIMER_MS Node would fire at once; waking early is harmless (the pump plans again).
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#pump();
    }, Math.min(MAX_TIMER_MS, Math.max(1, wait)));
  }

  #clearTimer(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #refill(): void {
    const now = performance.now();
    for (const bucket of this.#buckets.values()) bucket.refill(now);
  }

  /** Rebuilds, per direction, the list of buckets a request draws from (after a limit change). */
  #plan(): void {
    const draw = (key: LimitKey, shared: boolean): Draw[] => {
      const bucket = this.#buckets.get(key);
      return bucket === undefined ? [] : [{ bucket, bytes: key.endsWith('Bps'), shared }];
    };
    for (const dir of ['read', 'write'] as const) {
      this.#draws[dir] = [
        ...draw(dir === 'read' ? 'readBps' : 'writeBps', false),
        ...draw(dir === 'read' ? 'readIops' : 'writeIops', false),
        ...draw('totalBps', true),
        ...draw('totalIops', true),
      ];
    }
  }

  #blocker(dir: Direction, bytes: number): Blocker {
    let blocker: Blocker = 'none';
    for (const d of this.#draws[dir]) {
      if (d.bucket.ready(d.bytes ? bytes : 1)) continue;
      if (d.shared) return 'shared';
      blocker = 'own';
    }
    return blocker;
  }

  #charge(dir: Direction, bytes: number): void {
    for (const d of this.#draws[dir]) d.bucket.take(d.bytes ? bytes : 1);
  }

  #waitMs(dir: Direction, bytes: number): number {
    let wait = 0;
    for (const d of this.#draws[dir]) wait = Math.max(wait, d.bucket.waitMs(d.bytes ? bytes : 1));
    return wait;
  }
}
