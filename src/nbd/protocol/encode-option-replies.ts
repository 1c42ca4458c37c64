/**
 * What a server sends during the handshake: the newstyle greeting, fixed-newstyle option replies,
 * and the reply that ends NBD_OPT_EXPORT_NAME. Each function returns one freshly allocated buffer.
 */
import { BlockError } from '../../errors.js';
import { checkU16, checkU32, encodeString, writeU16, writeU32, writeU64 } from './bytes.js';
import { Info, Limits, REP_ERROR_BIT, Rep } from './constants.js';

const NBDMAGIC_IHAVEOPT = Buffer.from('NBDMAGICIHAVEOPT', 'latin1');
const OPTION_REPLY_MAGIC = Buffer.from([0x00, 0x03, 0xe8, 0x89, 0x04, 0x55, 0x65, 0xa9]);
const TWO_63 = 2 ** 63;

/** The newstyle greeting: NBDMAGIC, IHAVEOPT and the 16-bit handshake flags. */
export function encodeGreeting(handshakeFlags: number): Buffer {
  checkU16(handshakeFlags, 'handshake flags');
  const out = Buffer.allocUnsafe(Limits.GREETING_SIZE);
  NBDMAGIC_IHAVEOPT.copy(out, 0);
  writeU16(out, 16, handshakeFlags);
  return out;
}

/**
 * The reply that ends NBD_OPT_EXPORT_NAME: export size, transmission flags, and 124 zero bytes
 * unless the client set NBD_FLAG_C_NO_ZEROES.
 */
export function encodeExportNameReply(size: number, transmissionFlags: number, noZeroes: boolean): Buffer {
  checkSize(size);
  checkU16(transmissionFlags, 'transmission flags');
  const out = Buffer.alloc(10 + (noZeroes ? 0 : Limits.EXPORT_NAME_PADDING));
  writeU64(out, 0, size);
  writeU16(out, 8, transmissionFlags);
  return out;
}

/** Any option reply: magic, the option it answers, the reply type and `data`. */
export function encodeOptionReply(option: number, replyType: number, data: Uint8Array = new Uint8Array(0)): Buffer {
  checkU32(option, 'option');
  checkU32(replyType, 'reply type');
  const out = Buffer.allocUnsafe(Limits.OPTION_REPLY_HEADER_SIZE + data.length);
  OPTION_REPLY_MAGIC.copy(out, 0);
  writeU32(out, 8, option);
  writeU32(out, 12, replyType);
  writeU32(out, 16, data.length);
  out.set(data, 20);
  return out;
}

/** NBD_REP_ACK: the option succeeded (or a list is complete). */
export function encodeAck(option: number): Buffer {
  return encodeOptionReply(option, Rep.ACK);
}

/** NBD_REP_SERVER for NBD_OPT_LIST: an export name, optionally followed by a human-readable description. */
export function encodeServerReply(option: number, name: string, description = ''): Buffer {
  const nameBytes = encodeString(name, 'export name');
  const descBytes = encodeString(description, 'export description');
  const data = Buffer.allocUnsafe(4 + nameBytes.length + descBytes.length);
  writeU32(data, 0, nameBytes.length);
  nameBytes.copy(data, 4);
  descBytes.copy(data, 4 + nameBytes.length);
  return encodeOptionReply(option, Rep.SERVER, data);
}

/** NBD_REP_INFO carrying NBD_INFO_EXPORT: the export size and transmission flags. */
export function encodeInfoExport(option: number, size: number, transmissionFlags: number): Buffer {
  checkSize(size);
  checkU16(transmissionFlags, 'transmission flags');
  const data = Buffer.allocUnsafe(12);
  writeU16(data, 0, Info.EXPORT);
  writeU64(data, 2, size);
  writeU16(data, 10, transmissionFlags);
  return encodeOptionReply(option, Rep.INFO, data);
}

/** NBD_REP_INFO carrying NBD_INFO_NAME: the export's canonical name. */
export function encodeInfoName(option: number, name: string): Buffer {
  return encodeInfoString(option, Info.NAME, encodeString(name, 'export name'));
}

/** NBD_REP_INFO carrying NBD_INFO_DESCRIPTION: a human-readable description. */
export function encodeInfoDescription(option: number, description: string): Buffer {
  return encodeInfoString(option, Info.DESCRIPTION, encodeString(description, 'export description'));
}

/** NBD_REP_INFO carrying NBD_INFO_BLOCK_SIZE: minimum, preferred and maximum block sizes. */
export function encodeInfoBlockSize(option: number, minimum: number, preferred: number, maximum: number): Buffer {
  checkU32(minimum, 'minimum block size');
  checkU32(preferred, 'preferred block size');
  checkU32(maximum, 'maximum block size');
  const data = Buffer.allocUnsafe(14);
  writeU16(data, 0, Info.BLOCK_SIZE);
  writeU32(data, 2, minimum);
  writeU32(data, 6, preferred);
  writeU32(data, 10, maximum);
  return encodeOptionReply(option, Rep.INFO, data);
}

/** NBD_REP_META_CONTEXT: a metadata context `name` and, for SET, the id it will carry in replies. */
export function encodeMetaContextReply(option: number, contextId: number, name: string): Buffer {
  checkU32(contextId, 'metadata context id');
  const nameBytes = encodeString(name, 'metadata context name');
  const data = Buffer.allocUnsafe(4 + nameBytes.length);
  writeU32(data, 0, contextId);
  nameBytes.copy(data, 4);
  return encodeOptionReply(option, Rep.META_CONTEXT, data);
}

/** An error reply (NBD_REP_ERR_*, bit 31 set) with an optional message for the user. */
export function encodeOptionError(option: number, errorType: number, message = ''): Buffer {
  if (!Number.isInteger(errorType) || errorType < REP_ERROR_BIT || errorType > 0xffffffff) {
    throw new BlockError('EINVAL', `option reply type 0x${errorType.toString(16)} is not an error type`);
  }
  return encodeOptionReply(option, errorType, encodeString(message, 'error message'));
}

function encodeInfoString(option: number, infoType: number, bytes: Buffer): Buffer {
  const data = Buffer.allocUnsafe(2 + bytes.length);
  writeU16(data, 0, infoType);
  bytes.copy(data, 2);
  return encodeOptionReply(option, Rep.INFO, data);
}

function checkSize(size: number): void {
  // The spec forbids advertising sizes of 2^63 or more.
  if (!Number.isInteger(size) || size < 0 || size >= TWO_63) throw new BlockError('EINVAL', `export size ${size} is not in [0, 2^63)`);
}
