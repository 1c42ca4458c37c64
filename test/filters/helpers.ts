/**
 * Test helpers for the filter tests: a child whose manifest can be narrowed, and byte utilities.
 */
import { FilterDriver } from '../../src/filter.js';
import type { BlockDriver } from '../../src/driver.js';
import type { BlockCapabilities, BlockLimits } from '../../src/types.js';

/**
 * Passes everything to a real child but reports different capabilities or limits, to stand in
 * for drivers that cannot zero natively or have a larger block size. Only narrowing is honest.
 */
export class Reshape extends FilterDriver {
  readonly #caps: Partial<BlockCapabilities>;
  readonly #limits: Partial<BlockLimits>;
  constructor(child: BlockDriver, options: { caps?: Partial<BlockCapabilities>; limits?: Partial<BlockLimits> }) {
    super(child);
    this.#caps = options.caps ?? {};
    this.#limits = options.limits ?? {};
  }
  override get capabilities(): BlockCapabilities {
    return { ...this.child.capabilities, ...this.#caps };
  }
  override get limits(): BlockLimits {
    return { ...this.child.limits, ...this.#limits };
  }
}

/** True when two byte arrays hold the same bytes. */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

/** Lets queued promise callbacks run (several hops deep). */
export async function settle(rounds = 20): Promise<void> {
  for (let i = 0; i < rounds; i++) await Promise.resolve();
}
