/**
 * Small real drivers for server tests: one that records every call reaching it, one that holds
 * requests until released (to control completion order and concurrency), and one that fails.
 */
import { FilterDriver } from '../../../src/filter.js';
import { BlockError } from '../../../src/errors.js';
import type { BlockCapabilities, BlockExtent, DiscardOptions, IoOptions, WriteOptions, WriteZeroesOptions } from '../../../src/types.js';

export interface RecordedCall {
  readonly op: string;
  readonly offset: number;
  readonly length: number;
  readonly options: unknown;
}

/** Passes everything through and records each call that reached the implementation. */
export class SpyDriver extends FilterDriver {
  readonly calls: RecordedCall[] = [];
  #caps: BlockCapabilities | undefined;

  /** Overrides capabilities (e.g. to turn fast zero off). */
  setCapabilities(caps: Partial<BlockCapabilities>): void {
    this.#caps = { ...this.child.capabilities, ...caps };
  }
  override get capabilities(): BlockCapabilities {
    return this.#caps ?? this.child.capabilities;
  }
  protected override _read(offset: number, target: Uint8Array, options: IoOptions): Promise<void> {
    this.calls.push({ op: 'read', offset, length: target.length, options });
    return super._read(offset, target, options);
  }
  protected override _write(offset: number, data: Uint8Array, options: WriteOptions): Promise<void> {
    this.calls.push({ op: 'write', offset, length: data.length, options });
    return super._write(offset, data, options);
  }
  protected override _flush(options: IoOptions): Promise<void> {
    this.calls.push({ op: 'flush', offset: 0, length: 0, options });
    return super._flush(options);
  }
  protected override _discard(offset: number, length: number, options: DiscardOptions): Promise<void> {
    this.calls.push({ op: 'discard', offset, length, options });
    return super._discard(offset, length, options);
  }
  protected override _writeZeroes(offset: number, length: number, options: WriteZeroesOptions): Promise<void> {
    this.calls.push({ op: 'writeZeroes', offset, length, options });
    return super._writeZeroes(offset, length, options);
  }
  protected override _blockStatus(offset: number, length: number, options: IoOptions): Promise<BlockExtent[]> {
    this.calls.push({ op: 'blockStatus', offset, length, options });
    return super._blockStatus(offset, length, options);
  }
  protected override _cache(offset: number, length: number, options: IoOptions): Promise<void> {
    this.calls.push({ op: 'cache', offset, length, options });
    return super._cache(offset, length, options);
  }
}

/**
 * Holds every read and write until `release()` lets it (or all) through, so a test decides the
 * order in which requests complete and can observe how many run at once.
 */
export class GateDriver extends FilterDriver {
  readonly #held: { offset: number; run: () => void }[] = [];
  running = 0;
  maxRunning = 0;
  #waiters: (() => void)[] = [];

  /** Requests currently held. */
  get held(): number {
    return this.#held.length;
  }

  /** Resolves once at least `n` requests are held. */
  async whenHeld(n: number): Promise<void> {
    while (this.#held.length < n) await new Promise<void>((r) => this.#waiters.push(r));
  }

  /** Releases held requests: those at `offset` if given, otherwise all. */
  release(offset?: number): void {
    for (let i = this.#held.length - 1; i >= 0; i--) {
      if (offset === undefined || this.#held[i].offset === offset) this.#held.splice(i, 1)[0].run();
    }
  }

  #gate<T>(offset: number, op: () => Promise<T>): Promise<T> {
    this.running++;
    this.maxRunning = Math.max(this.maxRunning, this.running);
    return new Promise<T>((resolve, reject) => {
      this.#held.push({
        offset,
        run: () => {
          op().then(resolve, reject).finally(() => this.running--);
        },
      });
      for (const w of this.#waiters.splice(0)) w();
    });
  }

  protected override _read(offset: number, target: Uint8Array, options: IoOptions): Promise<void> {
    return this.#gate(offset, () => super._read(offset, target, options));
  }
  protected override _write(offset: number, data: Uint8Array, options: WriteOptions): Promise<void> {
    const copy = Uint8Array.from(data);
    return this.#gate(offset, () => super._write(offset, copy, options));
  }
}

/** Fails reads (and writes) in a range with a given code. */
export class FailingDriver extends FilterDriver {
  constructor(
    child: ConstructorParameters<typeof FilterDriver>[0],
    readonly failFrom: number,
    readonly code: BlockError['code'] = 'EIO',
  ) {
    super(child);
  }
  protected override _read(offset: number, target: Uint8Array, options: IoOptions): Promise<void> {
    if (offset + target.length > this.failFrom) return Promise.reject(new BlockError(this.code, 'injected read failure'));
    return super._read(offset, target, options);
  }
  protected override _write(offset: number, data: Uint8Array, options: WriteOptions): Promise<void> {
    if (offset + data.length > this.failFrom) return Promise.reject(new BlockError(this.code, 'injected write failure'));
    return super._write(offset, data, options);
  }
}
