/**
 * Byte-level helpers shared by the NBD codecs: 64-bit fields as doubles, opaque cookies, protocol
 * strings, and a small queue of received chunks for the (not hot) handshake parsers.
 */
import { BlockError } from '../../errors.js';
import { Limits } from './constants.js';

const TWO_32 = 4294967296;
const TWO_64 = 18446744073709551616;

/**
 * Reads a big-endian u64 as a number. Exact below 2^53; larger values come back as the nearest
 * double, which is still ≥ 2^53 — larger than any size this library handles, so range checks
 * reject them instead of seeing a wrapped small value.
 */
export function readU64(buf: Uint8Array, at: number): number {
  const hi = ((buf[at] << 24) | (buf[at + 1] << 16) | (buf[at + 2] << 8) | buf[at + 3]) >>> 0;
  const lo = ((buf[at + 4] << 24) | (buf[at + 5] << 16) | (buf[at + 6] << 8) | buf[at + 7]) >>> 0;
  return hi * TWO_32 + lo;
}

/** Reads a big-endian u32. */
export function readU32(buf: Uint8Array, at: number): number {
  return ((buf[at] << 24) | (buf[at + 1] << 16) | (buf[at + 2] << 8) | buf[at + 3]) >>> 0;
}

/** Reads a big-endian u16. */
export function readU16(buf: Uint8Array, at: number): number {
  return (buf[at] << 8) | buf[at + 1];
}

/** Writes a big-endian u32 (the value is taken modulo 2^32). */
export function writeU32(buf: Uint8Array, at: number, value: number): void {
  buf[at] = value >>> 24;
  buf[at + 1] = value >>> 16;
  buf[at + 2] = value >>> 8;
  buf[at + 3] = value;
}

/** Writes a big-endian u16 (the value is taken modulo 2^16). */
export function writeU16(buf: Uint8Array, at: number, value: number): void {
  buf[at] = value >>> 8;
  buf[at + 1] = value;
}

/** Throws EINVAL unless `value` is an integer in [0, 2^32). */
export function checkU32(value: number, what: string): void {
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) throw new BlockError('EINVAL', `${what} is not a u32: ${value}`);
}

/** Throws EINVAL unless `value` is an integer in [0, 2^16). */
export function checkU16(value: number, what: string): void {
  if (!Number.isInteger(value) || value < 0 || value > 0xffff) throw new BlockError('EINVAL', `${what} is not a u16: ${value}`);
}

/** Writes a non-negative integer below 2^64 as a big-endian u64; anything else is an EINVAL. */
export function writeU64(buf: Uint8Array, at: number, value: number): void {
  if (!(value >= 0 && value < TWO_64) || Math.floor(value) !== value) {
    throw new BlockError('EINVAL', `not a u64 value: ${value}`);
  }
  const hi = Math.floor(value / TWO_32);
  writeU32(buf, at, hi);
  writeU32(buf, at + 4, value - hi * TWO_32);
}

/** Writes a 64-bit value given as two 32-bit halves. */
export function writeU64Parts(buf: Uint8Array, at: number, hi: number, lo: number): void {
  writeU32(buf, at, hi);
  writeU32(buf, at + 4, lo);
}

/**
 * An opaque 64-bit cookie as two unsigned 32-bit halves. Parsers hand cookies out this way because
 * two numbers cost nothing to read and echo, where a BigInt or a Buffer slice allocates.
 */
export interface CookieParts {
  readonly cookieHi: number;
  readonly cookieLo: number;
}

/** Joins a cookie's halves into a BigInt (for logs, maps keyed by cookie, tests). */
export function cookieToBigInt(cookieHi: number, cookieLo: number): bigint {
  return (BigInt(cookieHi >>> 0) << 32n) | BigInt(cookieLo >>> 0);
}

/** Splits a BigInt cookie (taken modulo 2^64) into halves. */
export function cookieFromBigInt(cookie: bigint): CookieParts {
  const c = BigInt.asUintN(64, cookie);
  return { cookieHi: Number(c >> 32n), cookieLo: Number(c & 0xffffffffn) };
}

/**
 * A buffer of `n` uninitialised bytes. Small sizes come from Node's shared pool; from 4 KiB up,
 * `allocUnsafe` gains nothing from the pool and costs about twice `allocUnsafeSlow` (measured on
 * Node 20), so those get a buffer of their own.
 */
export function allocBytes(n: number): Buffer {
  return n < 4096 ? Buffer.allocUnsafe(n) : Buffer.allocUnsafeSlow(n);
}

// ignoreBOM: a leading U+FEFF is part of a name (the decoder would drop it by default, and an
// export named with one could never be reached, or another export would answer for it).
const strictDecoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const lenientDecoder = new TextDecoder('utf-8', { ignoreBOM: true });

/**
 * Encodes a protocol string: UTF-8, at most 4096 bytes, no NUL. A string that breaks a rule is a
 * caller bug, reported as EINVAL naming `what`.
 */
export function encodeString(value: string, what: string): Buffer {
  if (typeof value !== 'string') throw new TypeError(`${what} must be a string`);
  const bytes = Buffer.from(value, 'utf8');
  if (bytes.length > Limits.MAX_STRING) {
    throw new BlockError('EINVAL', `${what} is ${bytes.length} bytes; NBD strings are at most ${Limits.MAX_STRING}`);
  }
  if (bytes.includes(0)) throw new BlockError('EINVAL', `${what} contains a NUL character`);
  return bytes;
}

/**
 * Decodes a string the peer sent where the spec's string rules matter (names, queries): returns
 * undefined for invalid UTF-8, a NUL, or more than 4096 bytes.
 */
export function decodeStrictString(bytes: Uint8Array): string | undefined {
  if (bytes.length > Limits.MAX_STRING || bytes.includes(0)) return undefined;
  try {
    return strictDecoder.decode(bytes);
  } catch {
    return undefined;
  }
}

/** Decodes human-readable text (messages, descriptions), replacing invalid UTF-8 rather than failing. */
export function decodeLenientString(bytes: Uint8Array): string {
  return lenientDecoder.decode(bytes);
}

/**
 * The unconsumed bytes of a connection, kept as the chunks they arrived in. Handshake parsers read
 * fixed-size pieces from it; a piece inside one chunk is a view, a piece spanning chunks is copied
 * once into a buffer of exactly its size.
 */
export class ByteQueue {
  #chunks: Buffer[] = [];
  #head = 0;
  #length = 0;

  /** Bytes held. */
  get length(): number {
    return this.#length;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.#chunks.push(chunk);
    this.#length += chunk.length;
  }

  /** Removes and returns the next `n` bytes; the caller has checked `length >= n`. */
  take(n: number): Buffer {
    const first = this.#chunks[0];
    if (n === 0) return Buffer.alloc(0);
    if (first.length - this.#head >= n) {
      const view = first.subarray(this.#head, this.#head + n);
      this.#advance(n);
      return view;
    }
    const out = allocBytes(n);
    let filled = 0;
    while (filled < n) {
      const chunk = this.#chunks[0];
      const k = Math.min(n - filled, chunk.length - this.#head);
      chunk.copy(out, filled, this.#head, this.#head + k);
      filled += k;
      this.#advance(k);
    }
    return out;
  }

  /** Drops up to `n` bytes; returns how many were dropped. */
  skip(n: number): number {
    let left = Math.min(n, this.#length);
    const dropped = left;
    while (left > 0) {
      const k = Math.min(left, this.#chunks[0].length - this.#head);
      this.#advance(k);
      left -= k;
    }
    return dropped;
  }

  /** Removes and returns everything held, as one buffer. */
  takeAll(): Buffer {
    return this.#length === 0 ? Buffer.alloc(0) : this.take(this.#length);
  }

  #advance(n: number): void {
    this.#head += n;
    this.#length -= n;
    if (this.#head === this.#chunks[0].length) {
      this.#chunks.shift();
      this.#head = 0;
    }
  }
}
