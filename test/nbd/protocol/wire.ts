/**
 * Test helpers for the NBD codec tests: an independent byte builder (fixtures are written from the
 * spec with it, never with the serializers under test), stream chunking, and an allocation probe.
 */
import fc from 'fast-check';
import { vi } from 'vitest';

/** Builds big-endian byte strings field by field, the way the spec lists them. */
export class Wire {
  readonly #bytes: number[] = [];

  u8(v: number): this {
    this.#bytes.push(v & 0xff);
    return this;
  }

  u16(v: number): this {
    return this.u8(v >>> 8).u8(v);
  }

  u32(v: number): this {
    return this.u16(Math.floor(v / 65536) & 0xffff).u16(v & 0xffff);
  }

  u64(v: bigint | number): this {
    let b = BigInt.asUintN(64, BigInt(v));
    const out: number[] = [];
    for (let i = 0; i < 8; i++) {
      out.unshift(Number(b & 0xffn));
      b >>= 8n;
    }
    for (const x of out) this.u8(x);
    return this;
  }

  /** ASCII text such as a magic spelled as letters. */
  ascii(s: string): this {
    for (const c of s) this.u8(c.charCodeAt(0));
    return this;
  }

  utf8(s: string): this {
    return this.bytes(new TextEncoder().encode(s));
  }

  bytes(b: ArrayLike<number>): this {
    for (let i = 0; i < b.length; i++) this.u8(b[i]);
    return this;
  }

  zeros(n: number): this {
    for (let i = 0; i < n; i++) this.u8(0);
    return this;
  }

  get length(): number {
    return this.#bytes.length;
  }

  build(): Buffer {
    return Buffer.from(this.#bytes);
  }
}

export const wire = (): Wire => new Wire();

/** UTF-8 byte length of a string. */
export const utf8Length = (s: string): number => new TextEncoder().encode(s).length;

/** Splits `buf` at the given cut positions (any numbers; taken modulo length+1, sorted, deduplicated). */
export function chunk(buf: Buffer, cuts: readonly number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (buf.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const p of points) {
    out.push(buf.subarray(prev, p));
    prev = p;
  }
  out.push(buf.subarray(prev));
  return out;
}

/** Arbitrary cut points for {@link chunk}. */
export const cutsArb = fc.array(fc.nat(), { maxLength: 12 });

/** Every way to split `buf` in two, plus byte-by-byte. */
export function splits(buf: Buffer): Buffer[][] {
  const out: Buffer[][] = [];
  for (let i = 0; i <= buf.length; i++) out.push([buf.subarray(0, i), buf.subarray(i)]);
  out.push([...buf].map((b) => Buffer.from([b])));
  return out;
}

/**
 * Runs `fn` while watching Buffer allocations; returns the largest size requested. Parsers must
 * not let a length field they have not validated drive an allocation.
 */
export function largestAllocation(fn: () => void): number {
  let largest = 0;
  const spies = (['alloc', 'allocUnsafe', 'allocUnsafeSlow'] as const).map((name) => {
    const original = Buffer[name].bind(Buffer) as (n: number) => Buffer;
    return vi.spyOn(Buffer, name).mockImplementation(((n: number, ...rest: unknown[]) => {
      largest = Math.max(largest, n);
      return (original as (...a: unknown[]) => Buffer)(n, ...rest);
    }) as never);
  });
  try {
    fn();
  } finally {
    for (const s of spies) s.mockRestore();
  }
  return largest;
}

/** Returns the error `fn` throws (failing the test if it does not throw). */
export function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected an exception');
}

/** A u64 arbitrary biased to the edges that matter (2^32, 2^53, 2^63, 2^64 - 1). */
export const u64Arb = fc.oneof(
  fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
  fc.constantFrom(0n, 2n ** 32n - 1n, 2n ** 32n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 53n + 1n, 2n ** 63n, 2n ** 64n - 1n),
  fc.bigInt({ min: 0n, max: 2n ** 40n }),
);

/** A cookie as BigInt. */
export const cookieArb = fc.bigInt({ min: 0n, max: 2n ** 64n - 1n });

/** Splits a BigInt cookie into halves (independently of the code under test). */
export const halves = (c: bigint): { cookieHi: number; cookieLo: number } => ({
  cookieHi: Number(c >> 32n),
  cookieLo: Number(c & 0xffffffffn),
});

/** An NBD string: at most 4096 UTF-8 bytes, no NUL. */
export const nbdStringArb = fc
  .string({ unit: 'binary', maxLength: 40 })
  .filter((s) => !s.includes('\0') && utf8Length(s) <= 4096);
