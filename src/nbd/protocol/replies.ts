/**
 * The reply messages a client receives in the transmission phase, as the {@link ReplyParser}
 * delivers them, and the decoding of non-data chunk payloads.
 */
import { decodeLenientString, readU16, readU32, readU64 } from './bytes.js';
import { ReplyType } from './constants.js';
import { NbdProtocolError } from './errors.js';

/** A simple reply. `length` is the payload that followed it (a successful READ's data), else 0. */
export interface SimpleReply {
  readonly kind: 'simple';
  readonly cookieHi: number;
  readonly cookieLo: number;
  /** NBD error value; 0 is success. */
  readonly error: number;
  readonly length: number;
  /** Always true: a simple reply is the whole reply. */
  readonly done: true;
}

/** Fields every structured or extended chunk has. */
export interface ChunkFields {
  readonly cookieHi: number;
  readonly cookieLo: number;
  /** NBD_REPLY_TYPE_* */
  readonly type: number;
  /** Reply flags (NBD_REPLY_FLAG_*). */
  readonly flags: number;
  /** NBD_REPLY_FLAG_DONE: the last chunk of this reply. */
  readonly done: boolean;
  /** Extended headers echo the request's offset here; undefined for structured chunks. */
  readonly requestOffset: number | undefined;
}

/** NBD_REPLY_TYPE_NONE: no content; the reply is complete. */
export interface NoneChunk extends ChunkFields {
  readonly kind: 'none';
}

/** NBD_REPLY_TYPE_OFFSET_DATA: `dataLength` bytes at export offset `dataOffset`, already streamed via `onData`. */
export interface DataChunk extends ChunkFields {
  readonly kind: 'data';
  readonly dataOffset: number;
  readonly dataLength: number;
}

/** NBD_REPLY_TYPE_OFFSET_HOLE: `holeLength` bytes at `holeOffset` read as zeroes. */
export interface HoleChunk extends ChunkFields {
  readonly kind: 'hole';
  readonly holeOffset: number;
  readonly holeLength: number;
}

/** One extent of a block-status chunk. Lengths are nonzero; 64-bit values are exact below 2^53. */
export interface ReplyExtent {
  readonly length: number;
  readonly flags: number;
}

/** NBD_REPLY_TYPE_BLOCK_STATUS, or BLOCK_STATUS_EXT when `wide`. */
export interface BlockStatusChunk extends ChunkFields {
  readonly kind: 'blockStatus';
  readonly wide: boolean;
  readonly contextId: number;
  readonly extents: readonly ReplyExtent[];
}

/** Any error chunk: ERROR, ERROR_OFFSET (with `errorOffset`), or an unknown type with bit 15 set. */
export interface ErrorChunk extends ChunkFields {
  readonly kind: 'error';
  /** Nonzero NBD error value (map it with `codeFromNbdError`). */
  readonly error: number;
  readonly message: string;
  readonly errorOffset: number | undefined;
}

/** A structured or extended reply chunk. */
export type ReplyChunk = NoneChunk | DataChunk | HoleChunk | BlockStatusChunk | ErrorChunk;

/** Anything the reply parser delivers. */
export type NbdReply = SimpleReply | ReplyChunk;

/**
 * Checks a chunk header's payload length against its type before any payload is read, so a bad
 * chunk fails before memory is committed to it. Throws {@link NbdProtocolError}.
 */
export function checkChunkLength(type: number, length: number, extended: boolean): void {
  switch (type) {
    case ReplyType.NONE:
      if (length !== 0) throw invalid(`NONE chunk with ${length} payload bytes`);
      return;
    case ReplyType.OFFSET_DATA:
      if (length < 9) throw invalid(`OFFSET_DATA chunk of ${length} bytes (at least 9 required)`);
      return;
    case ReplyType.OFFSET_HOLE:
      if (length !== 12) throw invalid(`OFFSET_HOLE chunk of ${length} bytes (12 required)`);
      return;
    case ReplyType.BLOCK_STATUS:
      if (length < 12 || (length - 4) % 8 !== 0) throw invalid(`BLOCK_STATUS chunk of ${length} bytes`);
      return;
    case ReplyType.BLOCK_STATUS_EXT:
      if (!extended) throw new NbdProtocolError('unknown-chunk', 'BLOCK_STATUS_EXT chunk without extended headers');
      if (length < 24 || (length - 8) % 16 !== 0) throw invalid(`BLOCK_STATUS_EXT chunk of ${length} bytes`);
      return;
    case ReplyType.ERROR_OFFSET:
      if (length < 14) throw invalid(`ERROR_OFFSET chunk of ${length} bytes (at least 14 required)`);
      // The message length is a 16-bit field: anything longer is not an error chunk.
      if (length > 14 + 0xffff) throw invalid(`ERROR_OFFSET chunk of ${length} bytes (at most ${14 + 0xffff})`);
      return;
    case ReplyType.ERROR:
      if (length < 6) throw invalid(`error chunk of ${length} bytes (at least 6 required)`);
      if (length > 6 + 0xffff) throw invalid(`ERROR chunk of ${length} bytes (at most ${6 + 0xffff})`);
      return;
    default:
      // Other error types (bit 15) can be skipped by a client that does not know them; other types cannot.
      if ((type & 0x8000) === 0) throw new NbdProtocolError('unknown-chunk', `unknown reply chunk type ${type}`);
      if (length < 6) throw invalid(`error chunk of ${length} bytes (at least 6 required)`);
  }
}

/** Decodes the payload of a non-data chunk whose length passed {@link checkChunkLength}. */
export function decodeChunk(fields: ChunkFields, body: Uint8Array): ReplyChunk {
  const { type } = fields;
  switch (type) {
    case ReplyType.NONE:
      if (!fields.done) throw invalid('NONE chunk without the DONE flag');
      return { ...fields, kind: 'none' };
    case ReplyType.OFFSET_HOLE: {
      const holeLength = readU32(body, 8);
      if (holeLength === 0) throw invalid('OFFSET_HOLE chunk of zero length');
      return { ...fields, kind: 'hole', holeOffset: readU64(body, 0), holeLength };
    }
    case ReplyType.BLOCK_STATUS: {
      const extents: ReplyExtent[] = [];
      for (let at = 4; at < body.length; at += 8) extents.push(extent(readU32(body, at), readU32(body, at + 4)));
      return { ...fields, kind: 'blockStatus', wide: false, contextId: readU32(body, 0), extents };
    }
    case ReplyType.BLOCK_STATUS_EXT: {
      const count = readU32(body, 4);
      const n = (body.length - 8) / 16;
      // The count may be 0 (derive it from the length) or must match the length.
      if (count !== 0 && count !== n) throw invalid(`BLOCK_STATUS_EXT announces ${count} descriptors but carries ${n}`);
      const extents: ReplyExtent[] = [];
      for (let at = 8; at < body.length; at += 16) extents.push(extent(readU64(body, at), readU64(body, at + 8)));
      return { ...fields, kind: 'blockStatus', wide: true, contextId: readU32(body, 0), extents };
    }
    default: {
      const error = readU32(body, 0);
      if (error === 0) throw invalid('error chunk with error value 0');
      const messageLength = readU16(body, 4);
      const tail = type === ReplyType.ERROR_OFFSET ? 8 : 0;
      if (messageLength > body.length - 6 - tail) throw invalid('error message runs past the chunk');
      const message = decodeLenientString(body.subarray(6, 6 + messageLength));
      const errorOffset = tail === 0 ? undefined : readU64(body, 6 + messageLength);
      return { ...fields, kind: 'error', error, message, errorOffset };
    }
  }
}

function extent(length: number, flags: number): ReplyExtent {
  if (length === 0) throw invalid('block-status extent of zero length');
  return { length, flags };
}

function invalid(message: string): NbdProtocolError {
  return new NbdProtocolError('invalid-message', message);
}
