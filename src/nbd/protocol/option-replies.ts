/**
 * Decoding of the server's option replies into typed objects (the client side of option haggling).
 *
 * A reply whose content contradicts the spec (an NBD_INFO_EXPORT that is not 12 bytes, a name
 * length past the end) is a fatal {@link NbdProtocolError}: a client cannot answer a server's
 * mistake, only hang up. Unknown information types and unknown non-error reply types are returned
 * as such, because the spec tells clients to ignore what they do not understand.
 */
import { decodeLenientString, readU16, readU32, readU64 } from './bytes.js';
import { Info, REP_ERROR_BIT, Rep } from './constants.js';
import { NbdProtocolError } from './errors.js';

/** One piece of NBD_REP_INFO. */
export type InfoReply =
  | { readonly type: 'export'; readonly size: number; readonly transmissionFlags: number }
  | { readonly type: 'name'; readonly name: string }
  | { readonly type: 'description'; readonly description: string }
  | { readonly type: 'blockSize'; readonly minimum: number; readonly preferred: number; readonly maximum: number }
  | { readonly type: 'unknown'; readonly infoType: number; readonly data: Buffer };

/** One option reply. `option` is the option it answers. */
export type OptionReply =
  | { readonly kind: 'ack'; readonly option: number }
  | { readonly kind: 'server'; readonly option: number; readonly name: string; readonly description: string }
  | { readonly kind: 'info'; readonly option: number; readonly info: InfoReply }
  | { readonly kind: 'metaContext'; readonly option: number; readonly contextId: number; readonly name: string }
  /** An NBD_REP_ERR_* reply; `error` is the reply type (bit 31 set). */
  | { readonly kind: 'error'; readonly option: number; readonly error: number; readonly message: string }
  /** A non-error reply type this decoder does not know. */
  | { readonly kind: 'unknown'; readonly option: number; readonly replyType: number; readonly data: Buffer };

/**
 * Decodes the data of a reply of `replyType` to `option`. Sizes of 2^53 and more come back as the
 * nearest double (check `Number.isSafeInteger(size)` before using one). `data` may be a view of
 * a received chunk; returned `data` fields are copies.
 */
export function decodeOptionReply(option: number, replyType: number, data: Buffer): OptionReply {
  if (replyType >= REP_ERROR_BIT) return { kind: 'error', option, error: replyType, message: decodeLenientString(data) };
  switch (replyType) {
    case Rep.ACK:
      if (data.length !== 0) throw invalid('NBD_REP_ACK carries data');
      return { kind: 'ack', option };
    case Rep.SERVER: {
      if (data.length < 4) throw invalid('NBD_REP_SERVER shorter than 4 bytes');
      const nameLength = readU32(data, 0);
      if (nameLength > data.length - 4) throw invalid('NBD_REP_SERVER name runs past the reply');
      return {
        kind: 'server',
        option,
        name: decodeLenientString(data.subarray(4, 4 + nameLength)),
        description: decodeLenientString(data.subarray(4 + nameLength)),
      };
    }
    case Rep.INFO:
      return { kind: 'info', option, info: decodeInfo(data) };
    case Rep.META_CONTEXT:
      if (data.length < 4) throw invalid('NBD_REP_META_CONTEXT shorter than 4 bytes');
      return { kind: 'metaContext', option, contextId: readU32(data, 0), name: decodeLenientString(data.subarray(4)) };
    default:
      return { kind: 'unknown', option, replyType, data: Buffer.from(data) };
  }
}

function decodeInfo(data: Buffer): InfoReply {
  if (data.length < 2) throw invalid('NBD_REP_INFO shorter than 2 bytes');
  const infoType = readU16(data, 0);
  switch (infoType) {
    case Info.EXPORT:
      if (data.length !== 12) throw invalid(`NBD_INFO_EXPORT is ${data.length} bytes, not 12`);
      return { type: 'export', size: readU64(data, 2), transmissionFlags: readU16(data, 10) };
    case Info.NAME:
      return { type: 'name', name: decodeLenientString(data.subarray(2)) };
    case Info.DESCRIPTION:
      return { type: 'description', description: decodeLenientString(data.subarray(2)) };
    case Info.BLOCK_SIZE:
      if (data.length !== 14) throw invalid(`NBD_INFO_BLOCK_SIZE is ${data.length} bytes, not 14`);
      return { type: 'blockSize', minimum: readU32(data, 2), preferred: readU32(data, 6), maximum: readU32(data, 10) };
    default:
      return { type: 'unknown', infoType, data: Buffer.from(data.subarray(2)) };
  }
}

function invalid(message: string): NbdProtocolError {
  return new NbdProtocolError('invalid-message', message);
}
