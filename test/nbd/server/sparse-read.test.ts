/**
 * readPieces hands pooled buffers to several driver reads at once. When one of them fails, the
 * others may still be writing into their buffers (the contract lets a driver use its target until
 * its own promise settles), so no buffer may go back to the pool before every read has settled:
 * a buffer given back early can be taken by another client's READ and overwritten under it.
 */
import { describe, expect, it } from 'vitest';
import { BlockError } from '../../../src/errors.js';
import { MemoryDriver } from '../../../src/drivers/memory.js';
import type { BufferPool } from '../../../src/buffers/pool.js';
import type { IoOptions } from '../../../src/types.js';
import { readPieces } from '../../../src/nbd/server/sparse-read.js';
import type { NbdRequest } from '../../../src/nbd/protocol/index.js';

const KIB = 1024;

/** Fails the read at offset 0 at once; the read at `slowAt` finishes only when released. */
class FailFastSlowLater extends MemoryDriver {
  slowPending = false;
  #release: (() => void) | undefined;
  constructor(readonly slowAt: number) {
    super({ size: 1024 * KIB });
  }
  release(): void {
    this.#release?.();
  }
  protected override async _read(offset: number, target: Uint8Array, options: IoOptions): Promise<void> {
    if (offset === 0) throw new BlockError('EIO', 'first piece fails');
    if (offset !== this.slowAt) return super._read(offset, target, options);
    this.slowPending = true;
    await new Promise<void>((resolve) => (this.#release = resolve));
    target.fill(0xee); // still the driver's buffer: its promise has not settled
    this.slowPending = false;
  }
}

/** A pool that records, for each buffer given back, whether a driver read was still pending. */
function recordingPool(driver: FailFastSlowLater): { pool: BufferPool; givenWhilePending: number; given: number } {
  const state = { givenWhilePending: 0, given: 0, pool: undefined as unknown as BufferPool };
  state.pool = {
    take: (length: number) => Buffer.alloc(length),
    give: () => {
      state.given++;
      if (driver.slowPending) state.givenWhilePending++;
    },
  } as unknown as BufferPool;
  return state;
}

const request = { type: 0, flags: 0, cookieHi: 0, cookieLo: 7, offset: 0, length: 768 * KIB } as unknown as NbdRequest;

describe('readPieces', () => {
  it('gives no buffer back while another piece is still being read, and rejects with the first failure', async () => {
    const driver = new FailFastSlowLater(512 * KIB);
    const state = recordingPool(driver);
    const plan = [
      { hole: false, offset: 0, length: 256 * KIB },
      { hole: true, offset: 256 * KIB, length: 256 * KIB },
      { hole: false, offset: 512 * KIB, length: 256 * KIB },
    ];
    const outcome = readPieces(driver, state.pool, false, request, plan).then(
      () => 'resolved',
      (err: unknown) => err,
    );
    await new Promise((r) => setTimeout(r, 20));
    expect(driver.slowPending).toBe(true);
    expect(state.given).toBe(0); // nothing back while the slow piece still owns its buffer
    driver.release();
    const err = await outcome;
    expect(err).toBeInstanceOf(BlockError);
    expect((err as BlockError).code).toBe('EIO');
    expect((err as BlockError).message).toContain('first piece fails');
    expect(state.givenWhilePending).toBe(0);
    expect(state.given).toBe(3); // every chunk of the reply (pool.give ignores the non-pooled hole chunk)
  });
});
