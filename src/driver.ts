/**
 * The BlockDriver contract.
 *
 * Public methods validate every request once (types, range, alignment, size limits, capability,
 * lifecycle) and then call a protected `_op` method, so implementations only ever receive clean
 * requests — the split nbdkit makes between its server and its plugins, and abstract-level between
 * `op` and `_op`. Offsets and lengths are JavaScript numbers: byte-exact up to 2^53 (8 PiB).
 */
import { brandedInstanceOf, hasBrand } from './brand.js';
import { reportListenerError } from './listener-error.js';
import { abortCode } from './abort-code.js';
import { EventEmitter } from 'node:events';
import { BlockError, isBlockError, toBlockError, type BlockErrorCode } from './errors.js';
import { normalizeExtents } from './extents.js';
import {
  DEFAULT_LIMITS,
  type BlockCapabilities,
  type BlockExtent,
  type BlockLimits,
  type DiscardOptions,
  type DriverState,
  type IoOptions,
  type ReadLease,
  type WriteOptions,
  type WriteZeroesOptions,
} from './types.js';

/**
 * Events every driver may emit. A subclass with events of its own types them by declaring
 * overloads in an interface merged with the class:
 * `interface Quorum { on<K extends keyof QuorumEvents>(e: K, l: (...a: QuorumEvents[K]) => void): this }`.
 */
export interface BlockDriverEvents {
  /**
   * The driver finished closing. A listener that throws is reported as a process warning (code
   * `BLOCKGRAPH_LISTENER`); the other listeners still run and `close()` still resolves.
   */
  close: [];
}

/** Options common to every driver. */
export interface BlockDriverOptions {
  /** Name used in errors and events. Each driver has its own default (e.g. 'memory', 'file', 'nbd', 'quorum'). */
  readonly name?: string;
}

type Op = 'read' | 'leaseRead' | 'write' | 'flush' | 'discard' | 'writeZeroes' | 'blockStatus' | 'cache';

const DRIVER_BRAND = Symbol.for('blockgraph.BlockDriver');

/** True for a {@link BlockDriver} built on any copy of this package (the ESM or CommonJS build, another install). */
export function isBlockDriver(value: unknown): value is BlockDriver {
  return hasBrand(value, DRIVER_BRAND);
}

/**
 * What an implementation hook returned, if it is a promise. A hook that forgot its `return` hands
 * back undefined: that fails the request with EIO instead of throwing a TypeError at the caller,
 * leaking an in-flight slot (close() would wait forever) or passing for an instant success.
 */
function promised<T>(driver: string, op: Op | 'close', work: Promise<T>): Promise<T> {
  if (typeof (work as Partial<Promise<T>> | null | undefined)?.then === 'function') return work;
  const got = work === null ? 'null' : typeof work;
  return Promise.reject(new BlockError('EIO', `${driver}: the ${op} implementation returned ${got}, not a promise (a missing return?)`, { details: { op, driver } }));
}

const ZERO_CHUNK = 1024 * 1024;
/** Options of a request that came without any (frozen: implementations must not change them). */
const NO_OPTIONS: IoOptions = Object.freeze({});
let sharedZeros: Uint8Array | undefined;
function zeros(length: number): Uint8Array {
  sharedZeros ??= new Uint8Array(ZERO_CHUNK);
  return length === ZERO_CHUNK ? sharedZeros : sharedZeros.subarray(0, length);
}

/**
 * Base class of every driver and filter.
 *
 * Implementations override the protected `_op` methods and the `size`, `capabilities` and `limits`
 * getters. They may rely on: offsets and lengths are safe non-negative integers, aligned to
 * `limits.minBlockSize`, inside the device, non-empty, and read/write lengths at most
 * `limits.maxTransfer` (rounded down to a multiple of `minBlockSize`); the operation is allowed by
 * `capabilities`; the driver is open, or closing and finishing requests accepted before close().
 * They must: fill the whole target of `_read`; reject only with {@link BlockError}s (anything
 * else becomes EIO); and own the caller's buffers only while the call is pending — once the
 * promise of `_read` settles, resolved or rejected, nothing may write into its `target` again,
 * and once the promise of `_write` settles nothing may read its `data` again (copy what must be
 * kept) unless the write was `immutable`. Callers such as Quorum reuse those buffers the moment a request settles, so a driver that
 * hands a buffer to work it cannot cancel (a socket reply, a worker, a slower child) must either
 * wait for that work before settling, even when aborted, or give it a buffer of its own and copy.
 */
export abstract class BlockDriver extends EventEmitter
  implements AsyncDisposable
{
  /** Brands drivers of every copy of this package loaded in the process (see `Symbol.hasInstance`). */
  get [DRIVER_BRAND](): true {
    return true;
  }

  /**
   * `instanceof BlockDriver` holds for a driver built on any copy of this package — the ESM and
   * the CommonJS build loaded side by side, or two installs — so a driver from a CommonJS library
   * can join an ESM Quorum, filter or NBD export. Subclasses inherit this method and keep the
   * ordinary prototype check.
   */
  static override [Symbol.hasInstance](value: unknown): boolean {
    return brandedInstanceOf(this, BlockDriver, DRIVER_BRAND, value);
  }

  readonly name: string;
  #state: DriverState = 'open';
  #inFlight = 0;
  #drained: (() => void) | undefined;
  #closing: Promise<void> | undefined;

  constructor(options: BlockDriverOptions = {}) {
    super();
    this.name = options.name ?? this.constructor.name.toLowerCase();
  }

  /** Size of the device in bytes. */
  abstract get size(): number;
  /** What the driver can do; see {@link BlockCapabilities}. */
  abstract get capabilities(): BlockCapabilities;
  /** Request-size constraints; see {@link BlockLimits}. */
  get limits(): BlockLimits {
    return DEFAULT_LIMITS;
  }
  /** Drivers this one sits on (empty for a leaf). */
  get children(): readonly BlockDriver[] {
    return [];
  }
  /** `open`, then `closing` while in-flight requests drain, then `closed`. */
  get state(): DriverState {
    return this.#state;
  }
  /** Requests accepted and not yet finished. */
  get inFlight(): number {
    return this.#inFlight;
  }

  // ---- public, validated API -------------------------------------------------------------

  /**
   * Reads `length` bytes at `offset` into a new plain Uint8Array (not a Node Buffer). It owns its
   * memory: its `byteOffset` is 0 and its `buffer` holds exactly these bytes (never a slice of
   * Node's shared pool), so it can be transferred to a worker or kept without pinning anything.
   */
  read(offset: number, length: number, options?: IoOptions): Promise<Uint8Array> {
    return attempt(() => {
      if (this.#check('read', offset, length, options)) return Promise.resolve(new Uint8Array(0));
      const target = this.#allocate(offset, length);
      return this.#admit('read', offset, length, async () => {
        await this.#read(offset, target, options ?? NO_OPTIONS);
        return target;
      });
    });
  }

  /**
   * Reads `target.length` bytes at `offset` into `target` (no copy for drivers that can avoid one).
   * Once the promise settles, resolved or rejected (an abort included), the driver never writes to
   * `target` again, so the caller may reuse it at once. After a rejection its contents are
   * unspecified.
   */
  readInto(offset: number, target: Uint8Array, options?: IoOptions): Promise<void> {
    // As write(): no closures on the hottest path.
    try {
      checkBytes(target, 'target');
      if (this.#check('read', offset, target.length, options)) return Promise.resolve();
    } catch (err) {
      return Promise.reject(err);
    }
    this.#inFlight++;
    let work: Promise<void>;
    try {
      work = this.#read(offset, target, options ?? NO_OPTIONS);
    } catch (err) {
      work = Promise.reject(err);
    }
    return this.#settle(work, 'read', offset, target.length);
  }

  /**
   * Zero-copy read: read-only views of the driver's own memory for the range, or undefined when it
   * cannot lend (then use {@link BlockDriver.readInto}). Validated like `read` (ESHUTDOWN, EINVAL,
   * EOVERFLOW, ECANCELED); a zero-length range lends `{ views: [], release() {} }`, and a range
   * longer than `limits.maxTransfer` is never lent. The request counts as in flight only until its
   * promise settles: a lease may outlive close() (its views stay valid memory). The holder must
   * call `release()` once done; until then the driver copies before changing those bytes.
   */
  leaseRead(offset: number, length: number, options?: IoOptions): Promise<ReadLease | undefined> {
    return attempt(() => {
      if (this.#check('read', offset, length, options)) return Promise.resolve(EMPTY_LEASE);
      if (length > this.#pieceSize()) return Promise.resolve(undefined);
      return this.#admit('leaseRead', offset, length, () => promised(this.name, 'leaseRead', this._leaseRead(offset, length, options ?? NO_OPTIONS)));
    });
  }

  #read(offset: number, target: Uint8Array, options: IoOptions): Promise<void> {
    // As #write: the common case without an async frame of its own.
    if (target.length <= this.#pieceSize()) return promised(this.name, 'read', this._read(offset, target, options));
    return this.#readInPieces(offset, target, options);
  }

  async #readInPieces(offset: number, target: Uint8Array, options: IoOptions): Promise<void> {
    const max = this.#pieceSize();
    for (let done = 0; done < target.length; done += max) {
      if (done > 0) this.#throwIfAborted('read', offset, target.length, options);
      await promised(this.name, 'read', this._read(offset + done, target.subarray(done, Math.min(done + max, target.length)), options));
    }
  }

  /**
   * Writes `data` at `offset`. The driver neither reads nor keeps `data` after the promise
   * settles, resolved or rejected, so the caller may reuse it at once — unless the caller passed
   * `immutable: true`, promising never to change `data` again, which lets a driver keep it.
   * A rejected write may have reached some of the range (like a failed disk write), never more.
   */
  write(offset: number, data: Uint8Array, options: WriteOptions = NO_OPTIONS): Promise<void> {
    // Spelled out rather than through attempt()/#admit(): no closures on the hottest path.
    try {
      checkBytes(data, 'data');
      if (this.#check('write', offset, data.length, options)) return Promise.resolve();
    } catch (err) {
      return Promise.reject(err);
    }
    this.#inFlight++;
    let work: Promise<void>;
    try {
      work = this.#write(offset, data, options);
    } catch (err) {
      work = Promise.reject(err);
    }
    return this.#settle(work, 'write', offset, data.length);
  }

  #write(offset: number, data: Uint8Array, options: WriteOptions): Promise<void> {
    // The common case goes straight to the implementation: no async frame of its own (a shared
    // 1 MiB write to three replicas pays this three times).
    if ((options.fua !== true || this.capabilities.canFua) && data.length <= this.#pieceSize()) return promised(this.name, 'write', this._write(offset, data, options));
    return this.#writeInPieces(offset, data, options);
  }

  async #writeInPieces(offset: number, data: Uint8Array, options: WriteOptions): Promise<void> {
    const caps = this.capabilities;
    const nativeFua = options.fua === true && caps.canFua;
    const pieceOptions = options.fua === true && !nativeFua ? { ...options, fua: false } : options;
    const max = this.#pieceSize();
    if (data.length <= max) await promised(this.name, 'write', this._write(offset, data, pieceOptions));
    else {
      for (let done = 0; done < data.length; done += max) {
        // Stopping between pieces is allowed: a failed write may have reached part of its range.
        if (done > 0) this.#throwIfAborted('write', offset, data.length, options);
        await promised(this.name, 'write', this._write(offset + done, data.subarray(done, Math.min(done + max, data.length)), pieceOptions));
      }
    }
    if (options.fua === true && !nativeFua && caps.canFlush) await promised(this.name, 'flush', this._flush(options));
  }

  /** Makes every write that has completed durable. */
  flush(options: IoOptions = NO_OPTIONS): Promise<void> {
    return attempt(() => {
      if (this.#check('flush', 0, 0, options)) return Promise.resolve();
      return this.#admit('flush', 0, 0, async () => {
        if (this.capabilities.canFlush) await promised(this.name, 'flush', this._flush(options));
      });
    });
  }

  /**
   * Tells the driver the range is no longer needed (TRIM). Advisory: afterwards the range reads as
   * either its old contents or zeros, so callers must not rely on either.
   */
  discard(offset: number, length: number, options: DiscardOptions = NO_OPTIONS): Promise<void> {
    return attempt(() => {
      if (this.#check('discard', offset, length, options)) return Promise.resolve();
      if (!this.capabilities.canDiscard) return Promise.resolve();
      return this.#admit('discard', offset, length, () => this.#withFua(options, (o) => promised(this.name, 'discard', this._discard(offset, length, o))));
    });
  }

  /**
   * Makes the range read as zeros; with `mayUnmap` it may also be deallocated. With `fastZero` it
   * fails with ENOTSUP, before touching anything, unless the driver zeroes natively and fast.
   * Without `fastZero`, a native zeroing that turns out to be unsupported (ENOTSUP) falls back to
   * writing zeros, as QEMU does.
   */
  writeZeroes(offset: number, length: number, options: WriteZeroesOptions = NO_OPTIONS): Promise<void> {
    return attempt(() => {
      if (this.#check('writeZeroes', offset, length, options)) return Promise.resolve();
      const caps = this.capabilities;
      if (options.fastZero === true && !(caps.canZero && caps.canFastZero)) {
        throw new BlockError('ENOTSUP', `${this.name}: fast zeroing is not supported`, {
          details: { op: 'writeZeroes', offset, length, driver: this.name },
        });
      }
      return this.#admit('writeZeroes', offset, length, async () => {
        if (!caps.canZero) return this.#emulateZeroes(offset, length, options);
        try {
          await this.#withFua(options, (o) => promised(this.name, 'writeZeroes', this._writeZeroes(offset, length, o)));
        } catch (err) {
          if (options.fastZero === true || !isBlockError(err) || err.code !== 'ENOTSUP') throw err;
          await this.#emulateZeroes(offset, length, options);
        }
      });
    });
  }

  /**
   * Allocation state from `offset`: contiguous, non-empty extents starting exactly at `offset` and
   * ending at or before `offset + length`. The answer may stop short of the end (callers loop),
   * but always covers at least one byte.
   */
  blockStatus(offset: number, length: number, options: IoOptions = NO_OPTIONS): Promise<BlockExtent[]> {
    return attempt(() => {
      if (this.#check('blockStatus', offset, length, options)) return Promise.resolve([]);
      if (!this.capabilities.canBlockStatus) return Promise.resolve([{ offset, length, zero: false, allocated: true }]);
      return this.#admit('blockStatus', offset, length, async () =>
        normalizeExtents(await promised(this.name, 'blockStatus', this._blockStatus(offset, length, options)), offset, length, this.name),
      );
    });
  }

  /** Advises the driver to prefetch the range (NBD CACHE). */
  cache(offset: number, length: number, options: IoOptions = NO_OPTIONS): Promise<void> {
    return attempt(() => {
      if (this.#check('cache', offset, length, options)) return Promise.resolve();
      if (!this.capabilities.canCache) return Promise.resolve();
      return this.#admit('cache', offset, length, () => promised(this.name, 'cache', this._cache(offset, length, options)));
    });
  }

  /**
   * Stops accepting requests (they fail with ESHUTDOWN), waits for those in flight, then releases
   * the driver's resources. Idempotent: every call returns the same promise.
   */
  close(): Promise<void> {
    this.#closing ??= this.#doClose();
    return this.#closing;
  }

  /** Same as {@link BlockDriver.close}, for `await using`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  // ---- implementation hooks ----------------------------------------------------------------

  /**
   * Fills all of `target` with the bytes at `offset`. After the returned promise settles (also
   * when it rejects, e.g. on an abort), nothing may write into `target` any more.
   */
  protected abstract _read(offset: number, target: Uint8Array, options: IoOptions): Promise<void>;

  /**
   * Lends views of the range (see {@link BlockDriver.leaseRead}); the default cannot lend and
   * resolves undefined. An implementation that lends must keep the views' bytes unchanged until
   * the lease is released, and never lend memory it will write in place.
   */
  protected _leaseRead(_offset: number, _length: number, _options: IoOptions): Promise<ReadLease | undefined> {
    return Promise.resolve(undefined);
  }

  /**
   * Stores `data` at `offset`. Must neither modify `data` (it may be a buffer shared by the base
   * class, e.g. the zeros of an emulated writeZeroes) nor read or keep it after the returned
   * promise settles, resolved or rejected.
   */
  protected _write(_offset: number, _data: Uint8Array, _options: WriteOptions): Promise<void> {
    return Promise.reject(this.notSupported('write'));
  }
  protected _flush(_options: IoOptions): Promise<void> {
    return Promise.resolve();
  }
  protected _discard(_offset: number, _length: number, _options: DiscardOptions): Promise<void> {
    return Promise.resolve();
  }
  protected _writeZeroes(offset: number, length: number, options: WriteZeroesOptions): Promise<void> {
    return this.#emulateZeroes(offset, length, options);
  }
  protected _blockStatus(offset: number, length: number, _options: IoOptions): Promise<BlockExtent[]> {
    return Promise.resolve([{ offset, length, zero: false, allocated: true }]);
  }
  protected _cache(_offset: number, _length: number, _options: IoOptions): Promise<void> {
    return Promise.resolve();
  }
  /** Releases resources once nothing is in flight. Called once. */
  protected _close(): Promise<void> {
    return Promise.resolve();
  }

  /** An ENOTSUP error naming this driver, for implementations to throw. */
  protected notSupported(op: string): BlockError {
    return new BlockError('ENOTSUP', `${this.name}: ${op} is not supported`, { details: { op, driver: this.name } });
  }

  // ---- internals ---------------------------------------------------------------------------

  /** Validates a request; returns true when it is empty and needs no work. */
  #check(op: Op, offset: number, length: number, options: IoOptions | undefined): boolean {
    checkNumber(offset, 'offset');
    checkNumber(length, 'length');
    if (this.#state !== 'open') {
      throw new BlockError('ESHUTDOWN', `${this.name}: driver is ${this.#state}`, {
        details: { op, offset, length, driver: this.name },
      });
    }
    if (options !== undefined) this.#throwIfAborted(op, offset, length, options, ' before it started');
    const fail = (code: BlockErrorCode, why: string): never => {
      throw new BlockError(code, `${this.name}: ${op} ${why}`, { details: { op, offset, length, driver: this.name } });
    };
    if (!Number.isSafeInteger(offset) || offset < 0) fail('EINVAL', `offset ${offset} is not a non-negative safe integer`);
    if (!Number.isSafeInteger(length) || length < 0) fail('EINVAL', `length ${length} is not a non-negative safe integer`);
    const writes = op === 'write' || op === 'discard' || op === 'writeZeroes';
    if (writes && !this.capabilities.canWrite) fail('EPERM', 'on a read-only device');
    if (op === 'flush') return false;
    const size = this.size;
    if (offset + length > size || offset > size) {
      fail(op === 'write' || op === 'writeZeroes' ? 'ENOSPC' : 'EINVAL', `range ${offset}+${length} ends past the device size ${size}`);
    }
    const { minBlockSize, maxBlockSize } = this.limits;
    if (minBlockSize > 1 && (offset % minBlockSize !== 0 || length % minBlockSize !== 0)) {
      fail('EINVAL', `range ${offset}+${length} is not aligned to ${minBlockSize} bytes`);
    }
    if ((op === 'read' || op === 'write') && length > maxBlockSize) {
      fail('EOVERFLOW', `length ${length} exceeds the maximum block size ${maxBlockSize}`);
    }
    return length === 0;
  }

  /** The longest piece handed to `_read`/`_write`: `maxTransfer`, kept aligned to `minBlockSize`. */
  #pieceSize(): number {
    const { minBlockSize, maxTransfer } = this.limits;
    if (minBlockSize <= 1) return Math.max(1, maxTransfer);
    return Math.max(minBlockSize, maxTransfer - (maxTransfer % minBlockSize));
  }

  #throwIfAborted(op: Op, offset: number, length: number, options: IoOptions, when = ''): void {
    if (options.signal?.aborted !== true) return;
    const code = abortCode(options.signal);
    throw new BlockError(code, `${this.name}: ${op} ${code === 'ETIMEDOUT' ? 'timed out' : 'aborted'}${when}`, {
      cause: options.signal.reason,
      details: { op, offset, length, driver: this.name },
    });
  }

  /** A read buffer; a length the process cannot allocate is ENOMEM rather than a RangeError. */
  #allocate(offset: number, length: number): Uint8Array {
    try {
      // allocUnsafeSlow, not allocUnsafe: reads under 4 KiB would otherwise be slices of Node's
      // shared 8 KiB pool, whose `.buffer` exposes other data and cannot be transferred. It costs
      // a few hundred nanoseconds more per small read (measured against the pool), a fraction of
      // one request's own overhead; the memory is left uninitialised because `_read` fills it all.
      // Handed out as a plain Uint8Array over that memory, not a Buffer, so that `slice()` copies
      // as the declared type promises (Buffer's `slice` is a view).
      return new Uint8Array(Buffer.allocUnsafeSlow(length).buffer, 0, length);
    } catch (err) {
      throw new BlockError('ENOMEM', `${this.name}: cannot allocate ${length} bytes for a read`, {
        cause: err,
        details: { op: 'read', offset, length, driver: this.name },
      });
    }
  }

  /**
   * Runs an accepted request, counted in flight until its promise has settled. The request's own
   * promise settles first and only then does it leave the count: so when close() sees the count
   * reach zero, every accepted request has settled — no timer needed (fake timers cannot stall
   * close). Its callers' reactions may still run after `_close()` has begun (the state is
   * 'closing' by then); what they hold (leases, adopted buffers) stays valid until they release it.
   */
  #admit<T>(op: Op, offset: number, length: number, run: () => Promise<T>): Promise<T> {
    this.#inFlight++;
    let work: Promise<T>;
    try {
      work = run();
    } catch (err) {
      // An implementation hook that throws instead of rejecting must not leak an in-flight slot.
      work = Promise.reject(err);
    }
    return this.#settle(work, op, offset, length);
  }

  /** Ends an admitted request when `work` settles. One derived promise: every request pays for it. */
  #settle<T>(work: Promise<T>, op: Op, offset: number, length: number): Promise<T> {
    return work.then(
      this.#ended as (value: T) => T,
      (err: unknown) => {
        this.#end();
        throw wrap(err, this.name, op, offset, length);
      },
    );
  }

  /** The success handler of {@link BlockDriver.#settle}, made once: only a failure needs the request's details. */
  readonly #ended = (value: unknown): unknown => {
    this.#end();
    return value;
  };

  #end(): void {
    if (--this.#inFlight === 0 && this.#drained !== undefined) this.#drained();
  }

  async #withFua<O extends IoOptions & { readonly fua?: boolean }>(options: O, run: (o: O) => Promise<void>): Promise<void> {
    if (options.fua !== true || this.capabilities.canFua) return run(options);
    await run({ ...options, fua: false });
    if (this.capabilities.canFlush) await promised(this.name, 'flush', this._flush(options));
  }

  async #emulateZeroes(offset: number, length: number, options: WriteZeroesOptions): Promise<void> {
    // ZERO_CHUNK is a multiple of every legal minBlockSize, so every piece stays aligned.
    const step = Math.min(ZERO_CHUNK, this.#pieceSize());
    const fuaOff = { ...options, fua: false };
    for (let done = 0; done < length; done += step) {
      // Zeroing a huge range by writing can take long: honour an abort between pieces.
      if (done > 0) this.#throwIfAborted('writeZeroes', offset, length, options);
      await promised(this.name, 'write', this._write(offset + done, zeros(Math.min(step, length - done)), fuaOff));
    }
    if (options.fua === true && this.capabilities.canFlush) await promised(this.name, 'flush', this._flush(options));
  }

  async #doClose(): Promise<void> {
    if (this.#state === 'open') this.#state = 'closing';
    // #admit settles each request before it leaves the count, so once the count is zero every
    // accepted request has settled (its callers' reactions may still be queued).
    if (this.#inFlight > 0) await new Promise<void>((resolve) => (this.#drained = resolve));
    try {
      await promised(this.name, 'close', this._close());
    } catch (err) {
      throw toBlockError(err, { op: 'close', driver: this.name });
    } finally {
      this.#state = 'closed';
      this.#emitClose();
    }
  }

  /** 'close' to every listener; one that throws becomes a warning and the others still run. */
  #emitClose(): void {
    for (const listener of this.rawListeners('close') as ((...args: unknown[]) => unknown)[]) {
      try {
        listener.call(this);
      } catch (err) {
        reportListenerError(this.name, 'close', err, 'BLOCKGRAPH_LISTENER');
      }
    }
  }
}

/** The lease of an empty range: nothing to hold, nothing to release. */
const EMPTY_LEASE: ReadLease = Object.freeze({ views: Object.freeze([]) as readonly Uint8Array[], release(): void {} });

/** Runs `start`, turning a synchronous throw (a failed validation) into a rejected promise. */
function attempt<T>(start: () => Promise<T>): Promise<T> {
  try {
    return start();
  } catch (err) {
    return Promise.reject(err);
  }
}

function checkNumber(value: unknown, what: string): void {
  if (typeof value !== 'number') throw new TypeError(`${what} must be a number, got ${typeof value}`);
}

function checkBytes(value: unknown, what: string): void {
  if (!(value instanceof Uint8Array)) throw new TypeError(`${what} must be a Uint8Array`);
}

function wrap(err: unknown, driver: string, op: Op, offset: number, length: number): BlockError {
  return toBlockError(err, { op, offset, length, driver });
}

export { normalizeExtents } from './extents.js';
export { describeGraph, type DriverDescription } from './describe.js';

