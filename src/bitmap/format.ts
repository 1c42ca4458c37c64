/**
 * The serialized form of a dirty bitmap (version 1). Every integer is little-endian.
 *
 * | offset | bytes | field                                                                   |
 * | ------ | ----- | ----------------------------------------------------------------------- |
 * | 0      | 4     | magic, ASCII `BGDB`                                                     |
 * | 4      | 1     | version, 1                                                              |
 * | 5      | 1     | log2 of the granularity, 9 to 31                                        |
 * | 6      | 2     | reserved, 0                                                             |
 * | 8      | 8     | device size in bytes, at most 2^53 - 1                                  |
 * | 16     | N     | the bits: granule g is bit g % 8 of byte floor(g / 8); N = ceil(G / 8) |
 * | 16 + N | 4     | CRC-32 (IEEE) of bytes 0 to 16 + N                                      |
 *
 * G is ceil(size / granularity). Bits past G in the last byte are 0. The total length is exact:
 * a reader checks it against the header before it allocates anything, so a damaged size field
 * cannot make it reserve memory the image does not back.
 */
import { BlockError } from '../errors.js';
import { crc32 } from './crc32.js';

/** The magic the codec writes and checks: a private copy, so a caller writing into the exported one changes nothing. */
const MAGIC = Uint8Array.of(0x42, 0x47, 0x44, 0x42);
/** `BGDB`: blockgraph dirty bitmap (a copy for reference; the codec does not read it). */
export const BITMAP_MAGIC = MAGIC.slice();
/** The format version this code writes and the only one it reads. */
export const BITMAP_FORMAT_VERSION = 1;
/** Bytes before the bits. */
export const BITMAP_HEADER_BYTES = 16;
/** Bytes after the bits (the CRC). */
export const BITMAP_TRAILER_BYTES = 4;

export const MIN_GRANULARITY_LOG2 = 9;
export const MAX_GRANULARITY_LOG2 = 31;

/** What an image holds once it has been checked. */
export interface DecodedBitmap {
  readonly size: number;
  readonly granularity: number;
  /** ceil(size / granularity). */
  readonly granules: number;
  /** The N bytes of bits, a view into the input. */
  readonly bits: Uint8Array;
}

const LITTLE_ENDIAN_HOST = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1;

/** Encodes a bitmap whose bits are in `words` (bit layout of `./bits.ts`). */
export function encodeBitmap(size: number, granularity: number, granules: number, words: Uint32Array): Uint8Array {
  const n = Math.ceil(granules / 8);
  const out = new Uint8Array(BITMAP_HEADER_BYTES + n + BITMAP_TRAILER_BYTES);
  const view = new DataView(out.buffer);
  out.set(MAGIC, 0);
  out[4] = BITMAP_FORMAT_VERSION;
  out[5] = Math.log2(granularity);
  view.setUint32(8, size % 2 ** 32, true);
  view.setUint32(12, Math.floor(size / 2 ** 32), true);
  wordsToLeBytes(words, out.subarray(BITMAP_HEADER_BYTES, BITMAP_HEADER_BYTES + n));
  view.setUint32(BITMAP_HEADER_BYTES + n, crc32(out.subarray(0, BITMAP_HEADER_BYTES + n)), true);
  return out;
}

/** Checks and decodes an image; anything malformed is a BlockError EINVAL saying what is wrong. */
export function decodeBitmap(bytes: Uint8Array): DecodedBitmap {
  if (!(bytes instanceof Uint8Array)) throw new TypeError('bytes must be a Uint8Array');
  const minimum = BITMAP_HEADER_BYTES + BITMAP_TRAILER_BYTES;
  if (bytes.length < minimum) bad(`${bytes.length} bytes is shorter than the ${minimum}-byte minimum`);
  for (let i = 0; i < MAGIC.length; i++) {
    if (bytes[i] !== MAGIC[i]) bad('bad magic (not a blockgraph dirty bitmap)');
  }
  if (bytes[4] !== BITMAP_FORMAT_VERSION) bad(`unsupported version ${bytes[4]}`);
  const log2 = bytes[5];
  if (log2 < MIN_GRANULARITY_LOG2 || log2 > MAX_GRANULARITY_LOG2) bad(`granularity 2^${log2} is out of range`);
  if (bytes[6] !== 0 || bytes[7] !== 0) bad('reserved bytes are not zero');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const high = view.getUint32(12, true);
  if (high >= 2 ** 21) bad('size is larger than 2^53 - 1');
  const size = high * 2 ** 32 + view.getUint32(8, true);
  const granularity = 2 ** log2;
  const granules = Math.ceil(size / granularity);
  const n = Math.ceil(granules / 8);
  if (bytes.length !== minimum + n) bad(`length ${bytes.length} does not match the ${minimum + n} bytes its header implies`);
  const end = BITMAP_HEADER_BYTES + n;
  if (crc32(bytes.subarray(0, end)) !== view.getUint32(end, true)) bad('checksum mismatch');
  const bits = bytes.subarray(BITMAP_HEADER_BYTES, end);
  const spare = n * 8 - granules;
  // The CRC covers these bits, but a writer that left them set would still break the bit count.
  if (spare > 0 && (bits[n - 1] >>> (8 - spare)) !== 0) bad('bits past the last granule are set');
  return { size, granularity, granules, bits };
}

/** Copies the first `target.length` bytes of `words` in little-endian order. */
export function wordsToLeBytes(words: Uint32Array, target: Uint8Array): void {
  if (LITTLE_ENDIAN_HOST) {
    target.set(new Uint8Array(words.buffer, words.byteOffset, target.length));
    return;
  }
  for (let i = 0; i < target.length; i++) target[i] = (words[Math.floor(i / 4)] >>> ((i % 4) * 8)) & 0xff;
}

/** Fills `words` (zeroed, long enough) from little-endian bytes. */
export function leBytesToWords(source: Uint8Array, words: Uint32Array): void {
  if (LITTLE_ENDIAN_HOST) {
    new Uint8Array(words.buffer, words.byteOffset, source.length).set(source);
    return;
  }
  for (let i = 0; i < source.length; i++) words[Math.floor(i / 4)] |= source[i] << ((i % 4) * 8);
}

function bad(why: string): never {
  throw new BlockError('EINVAL', `dirty bitmap image: ${why}`, { details: { op: 'deserialize' } });
}
