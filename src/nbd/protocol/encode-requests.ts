/**
 * What a client sends during transmission: request headers (the payload of a WRITE goes
 * separately, so the client can write header and data without concatenating them).
 */
import { BlockError } from '../../errors.js';
import { writeU16, writeU32, writeU64 } from './bytes.js';
import { Limits, Magic } from './constants.js';

/**
 * Writes a request header at `target[at]`: 28 bytes compact, 32 extended. Returns the bytes
 * written. `length` is the payload length for a WRITE (extended: set NBD_CMD_FLAG_PAYLOAD_LEN in
 * `flags`), otherwise the effect length; compact headers hold at most 2^32 - 1.
 */
export function writeRequestHeader(
  target: Uint8Array,
  at: number,
  extended: boolean,
  type: number,
  flags: number,
  cookieHi: number,
  cookieLo: number,
  offset: number,
  length: number,
): number {
  writeU16(target, at + 4, flags);
  writeU16(target, at + 6, type);
  writeU32(target, at + 8, cookieHi);
  writeU32(target, at + 12, cookieLo);
  writeU64(target, at + 16, offset);
  if (extended) {
    writeU32(target, at, Magic.EXTENDED_REQUEST);
    writeU64(target, at + 24, length);
    return Limits.EXTENDED_REQUEST_SIZE;
  }
  if (!(length >= 0 && length <= 0xffffffff) || Math.floor(length) !== length) {
    throw new BlockError('EINVAL', `length ${length} does not fit a compact request`);
  }
  writeU32(target, at, Magic.REQUEST);
  writeU32(target, at + 24, length);
  return Limits.COMPACT_REQUEST_SIZE;
}

/** A request header in a new buffer; see {@link writeRequestHeader}. */
export function encodeRequestHeader(
  extended: boolean,
  type: number,
  flags: number,
  cookieHi: number,
  cookieLo: number,
  offset: number,
  length: number,
): Buffer {
  const out = Buffer.allocUnsafe(extended ? Limits.EXTENDED_REQUEST_SIZE : Limits.COMPACT_REQUEST_SIZE);
  writeRequestHeader(out, 0, extended, type, flags, cookieHi, cookieLo, offset, length);
  return out;
}
