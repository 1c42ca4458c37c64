/**
 * What a server sends during transmission: simple replies and structured/extended reply chunks.
 *
 * The hot-path headers have `write*` forms that fill a caller's buffer and return the byte count,
 * and `encode*` forms that return a small fresh buffer (Node pools allocations this small). Read
 * data is never copied here: the server writes the header, then the data buffer, under one cork.
 * With `extended` set, chunk headers use the 32-byte extended form, which echoes the request's
 * offset; otherwise the 20-byte structured form.
 */
import { BlockError } from '../../errors.js';
import { encodeString, writeU16, writeU32, writeU64, writeU64Parts } from './bytes.js';
import { Limits, Magic, ReplyFlag, ReplyType } from './constants.js';
import type { NbdRequest } from './request-parser.js';

/** The parts of a request a reply echoes; an {@link NbdRequest} will do. */
export interface ReplyTarget {
  readonly cookieHi: number;
  readonly cookieLo: number;
  /** The request's offset; extended reply headers repeat it. */
  readonly offset: number;
  /**
   * The offset's raw u32 halves as received. When present, extended headers echo these instead of
   * `offset`, so a request whose offset does not fit a double exactly (≥ 2^53, up to 2^64 − 1)
   * still gets a reply echoing exactly what it sent.
   */
  readonly offsetHi?: number;
  readonly offsetLo?: number;
}

/** One extent of a block-status chunk. */
export interface StatusExtent {
  /** Nonzero; below 2^32 unless the chunk is the 64-bit (BLOCK_STATUS_EXT) form. */
  readonly length: number;
  /** Status flags defined by the metadata context (base:allocation: HOLE 1, ZERO 2). */
  readonly flags: number;
}

/** Writes a simple reply header (16 bytes) at `target[at]`; returns 16. `error` 0 is success. */
export function writeSimpleReply(target: Uint8Array, at: number, req: ReplyTarget, error: number): number {
  writeU32(target, at, Magic.SIMPLE_REPLY);
  writeU32(target, at + 4, error);
  writeU32(target, at + 8, req.cookieHi);
  writeU32(target, at + 12, req.cookieLo);
  return Limits.SIMPLE_REPLY_SIZE;
}

/** A simple reply header in a new buffer. A successful READ's data follows it on the wire. */
export function encodeSimpleReply(req: ReplyTarget, error: number): Buffer {
  const out = Buffer.allocUnsafe(Limits.SIMPLE_REPLY_SIZE);
  writeSimpleReply(out, 0, req, error);
  return out;
}

/** Writes a chunk header (20 bytes, or 32 extended) announcing `length` payload bytes; returns its size. */
export function writeChunkHeader(
  target: Uint8Array,
  at: number,
  extended: boolean,
  req: ReplyTarget,
  flags: number,
  type: number,
  length: number,
): number {
  writeU16(target, at + 4, flags);
  writeU16(target, at + 6, type);
  writeU32(target, at + 8, req.cookieHi);
  writeU32(target, at + 12, req.cookieLo);
  if (extended) {
    writeU32(target, at, Magic.EXTENDED_REPLY);
    if (req.offsetHi !== undefined && req.offsetLo !== undefined) writeU64Parts(target, at + 16, req.offsetHi, req.offsetLo);
    else writeU64(target, at + 16, req.offset);
    writeU64(target, at + 24, length);
    return Limits.EXTENDED_REPLY_SIZE;
  }
  if (!(length >= 0 && length <= 0xffffffff)) throw new BlockError('EINVAL', `chunk length ${length} does not fit a structured reply`);
  writeU32(target, at, Magic.STRUCTURED_REPLY);
  writeU32(target, at + 16, length);
  return Limits.STRUCTURED_REPLY_SIZE;
}

/** A chunk header in a new buffer; see {@link writeChunkHeader}. */
export function encodeChunkHeader(extended: boolean, req: ReplyTarget, flags: number, type: number, length: number): Buffer {
  const out = Buffer.allocUnsafe(extended ? Limits.EXTENDED_REPLY_SIZE : Limits.STRUCTURED_REPLY_SIZE);
  writeChunkHeader(out, 0, extended, req, flags, type, length);
  return out;
}

/**
 * Writes the header of an OFFSET_DATA chunk plus its 8-byte data offset (28 bytes, or 40
 * extended); the `dataLength` bytes of data are sent next, unchanged. Returns the bytes written.
 */
export function writeOffsetDataHeader(
  target: Uint8Array,
  at: number,
  extended: boolean,
  req: ReplyTarget,
  flags: number,
  dataOffset: number,
  dataLength: number,
): number {
  if (!(dataLength > 0)) throw new BlockError('EINVAL', 'an OFFSET_DATA chunk carries at least one byte');
  const n = writeChunkHeader(target, at, extended, req, flags, ReplyType.OFFSET_DATA, dataLength + 8);
  writeU64(target, at + n, dataOffset);
  return n + 8;
}

/** The OFFSET_DATA prefix in a new buffer; see {@link writeOffsetDataHeader}. */
export function encodeOffsetDataHeader(extended: boolean, req: ReplyTarget, flags: number, dataOffset: number, dataLength: number): Buffer {
  const out = Buffer.allocUnsafe((extended ? Limits.EXTENDED_REPLY_SIZE : Limits.STRUCTURED_REPLY_SIZE) + 8);
  writeOffsetDataHeader(out, 0, extended, req, flags, dataOffset, dataLength);
  return out;
}

/** A NONE chunk: no payload, always final (DONE is set). */
export function encodeNoneChunk(extended: boolean, req: ReplyTarget): Buffer {
  return encodeChunkHeader(extended, req, ReplyFlag.DONE, ReplyType.NONE, 0);
}

/** An OFFSET_HOLE chunk: `holeLength` (1 to 2^32 - 1) bytes at `holeOffset` read as zeroes. */
export function encodeHoleChunk(extended: boolean, req: ReplyTarget, flags: number, holeOffset: number, holeLength: number): Buffer {
  if (!(holeLength >= 1 && holeLength <= 0xffffffff) || Math.floor(holeLength) !== holeLength) {
    throw new BlockError('EINVAL', `hole length ${holeLength} is not in [1, 2^32)`);
  }
  const head = extended ? Limits.EXTENDED_REPLY_SIZE : Limits.STRUCTURED_REPLY_SIZE;
  const out = Buffer.allocUnsafe(head + 12);
  writeChunkHeader(out, 0, extended, req, flags, ReplyType.OFFSET_HOLE, 12);
  writeU64(out, head, holeOffset);
  writeU32(out, head + 8, holeLength);
  return out;
}

/**
 * A block-status chunk for `contextId`. `wide` selects NBD_REPLY_TYPE_BLOCK_STATUS_EXT (64-bit
 * lengths, extended headers only); it defaults to `extended`, which is what the spec expects.
 */
export function encodeBlockStatusChunk(
  extended: boolean,
  req: ReplyTarget,
  flags: number,
  contextId: number,
  extents: readonly StatusExtent[],
  wide: boolean = extended,
): Buffer {
  if (extents.length === 0) throw new BlockError('EINVAL', 'a block-status chunk needs at least one extent');
  if (wide && !extended) throw new BlockError('EINVAL', 'BLOCK_STATUS_EXT requires extended headers');
  const head = extended ? Limits.EXTENDED_REPLY_SIZE : Limits.STRUCTURED_REPLY_SIZE;
  const size = wide ? 8 + 16 * extents.length : 4 + 8 * extents.length;
  const out = Buffer.allocUnsafe(head + size);
  writeChunkHeader(out, 0, extended, req, flags, wide ? ReplyType.BLOCK_STATUS_EXT : ReplyType.BLOCK_STATUS, size);
  writeU32(out, head, contextId);
  let at = head + 4;
  if (wide) {
    writeU32(out, at, extents.length);
    at += 4;
  }
  for (const e of extents) {
    if (!(e.length >= 1) || (!wide && e.length > 0xffffffff)) {
      throw new BlockError('EINVAL', `extent length ${e.length} is not valid in a ${wide ? '64' : '32'}-bit block-status chunk`);
    }
    if (wide) {
      writeU64(out, at, e.length);
      writeU64(out, at + 8, e.flags);
      at += 16;
    } else {
      writeU32(out, at, e.length);
      writeU32(out, at + 4, e.flags);
      at += 8;
    }
  }
  return out;
}

/**
 * An error chunk: ERROR, or ERROR_OFFSET when `errorOffset` is given. `error` is a nonzero NBD
 * error value; keep `message` short (qemu drops non-data chunks over 1000 bytes).
 */
export function encodeErrorChunk(
  extended: boolean,
  req: ReplyTarget,
  flags: number,
  error: number,
  message = '',
  errorOffset?: number,
): Buffer {
  if (!Number.isInteger(error) || error <= 0 || error > 0xffffffff) throw new BlockError('EINVAL', `error value ${error} is not a nonzero u32`);
  const text = encodeString(message, 'error message');
  const head = extended ? Limits.EXTENDED_REPLY_SIZE : Limits.STRUCTURED_REPLY_SIZE;
  const size = 6 + text.length + (errorOffset === undefined ? 0 : 8);
  const out = Buffer.allocUnsafe(head + size);
  writeChunkHeader(out, 0, extended, req, flags, errorOffset === undefined ? ReplyType.ERROR : ReplyType.ERROR_OFFSET, size);
  writeU32(out, head, error);
  writeU16(out, head + 4, text.length);
  text.copy(out, head + 6);
  if (errorOffset !== undefined) writeU64(out, head + 6 + text.length, errorOffset);
  return out;
}
