/**
 * The client's transmission-phase parser: turns the server's byte stream into replies.
 *
 * `push(chunk)` parses in place and calls the handler synchronously. Read data (a successful
 * simple reply's payload, an OFFSET_DATA chunk's data) is never buffered: it is streamed to
 * `onData` as views of the received chunks, with its position, so the client copies it once,
 * straight into the caller's read buffer. Other chunk payloads are small; one split across received
 * chunks is gathered into a buffer of exactly its announced size, after the size was checked
 * against the chunk type and `maxMetadataLength`.
 *
 * Simple replies carry no length, so for a successful one the parser asks the handler how long the
 * request's read was (`simpleReplyLength`). Extended headers and structured replies are
 * self-describing.
 */
import { BlockError } from '../../errors.js';
import { allocBytes, readU16, readU32, readU64 } from './bytes.js';
import { Limits, Magic, ReplyFlag, ReplyType } from './constants.js';
import { NbdProtocolError } from './errors.js';
import { checkChunkLength, decodeChunk, type ChunkFields, type DataChunk, type NbdReply, type SimpleReply } from './replies.js';

/**
 * Which replies the connection negotiated: `simple` (neither option), `structured`
 * (NBD_OPT_STRUCTURED_REPLY: simple replies and 20-byte chunks), `extended`
 * (NBD_OPT_EXTENDED_HEADERS: 32-byte chunks only).
 */
export type ReplyMode = 'simple' | 'structured' | 'extended';

/** Receives what a {@link ReplyParser} parses. All calls are synchronous, in stream order. */
export interface ReplyParserHandler {
  /**
   * The payload length of a successful simple reply to this cookie: the READ's length, 0 for
   * other commands, a negative number if no request with this cookie is in flight (fatal
   * `unknown-cookie`). May throw an {@link NbdProtocolError} to reject the reply (e.g. a simple
   * reply to a READ once structured replies were agreed).
   */
  simpleReplyLength(cookieHi: number, cookieLo: number): number;
  /**
   * Read data as it arrives, in order. `at` is the export offset for an OFFSET_DATA chunk and the
   * position within the request for a simple reply. `data` is a view of a received chunk: copy it
   * out before the call returns if the chunk's memory may be reused.
   */
  onData(reply: SimpleReply | DataChunk, at: number, data: Buffer): void;
  /** A complete simple reply or chunk (after all its data was passed to `onData`). */
  onReply(reply: NbdReply): void;
  /**
   * A structured chunk's header was read, before its length, type and body are checked: if any of
   * that breaks the protocol, this cookie's request is the one to blame.
   */
  onChunkHeader?(cookieHi: number, cookieLo: number): void;
}

/** Options of a {@link ReplyParser}. */
export interface ReplyParserOptions {
  /** Default `simple`; see {@link ReplyParser.mode}. */
  readonly mode?: ReplyMode;
  /** Longest read data accepted in one reply or chunk; longer is fatal. Default 32 MiB. */
  readonly maxPayload?: number;
  /** Longest non-data chunk payload accepted (block status, errors); longer is fatal. Default 16 MiB + 8. */
  readonly maxMetadataLength?: number;
}

const HEADER: number = 0;
const PREFIX: number = 1;
const DATA: number = 2;
const BODY: number = 3;
const TWO_32 = 4294967296;

/** Parses server replies (see the module comment). */
export class ReplyParser {
  readonly #handler: ReplyParserHandler;
  readonly #maxPayload: number;
  readonly #maxMetadata: number;
  readonly #scratch = Buffer.allocUnsafe(Limits.EXTENDED_REPLY_SIZE);
  #mode: ReplyMode;
  #state: number = HEADER;
  #fill = 0;
  /** Size of the header being gathered in #scratch (0 until its magic is known). */
  #headerSize = 0;
  #fields: ChunkFields | undefined;
  #length = 0;
  #dataReply: SimpleReply | DataChunk | undefined;
  #at = 0;
  #left = 0;
  #body: Buffer | undefined;
  #failure: NbdProtocolError | undefined;

  constructor(handler: ReplyParserHandler, options: ReplyParserOptions = {}) {
    this.#handler = handler;
    this.#mode = options.mode ?? 'simple';
    this.#maxPayload = options.maxPayload ?? Limits.DEFAULT_MAX_PAYLOAD;
    this.#maxMetadata = options.maxMetadataLength ?? 16 * 1024 * 1024 + 8;
  }

  /** The negotiated reply style. Changeable only between replies. */
  get mode(): ReplyMode {
    return this.#mode;
  }

  set mode(value: ReplyMode) {
    if (!this.idle) throw new BlockError('EINVAL', 'reply mode can only change between replies');
    this.#mode = value;
  }

  /** True when no partial reply is held. */
  get idle(): boolean {
    return this.#state === HEADER && this.#fill === 0;
  }

  /**
   * Parses `chunk`, calling the handler for what it completes. Throws {@link NbdProtocolError} on a
   * fatal violation; the parser then stays failed. Handler exceptions propagate and also leave the
   * parser failed.
   */
  push(chunk: Buffer): void {
    if (this.#failure) throw this.#failure;
    try {
      this.#parse(chunk);
    } catch (err) {
      this.#failure ??= err instanceof NbdProtocolError ? err : new NbdProtocolError('closed', 'reply handler threw; parser abandoned');
      throw err;
    }
  }

  #parse(chunk: Buffer): void {
    const end = chunk.length;
    let pos = 0;
    while (pos < end) {
      switch (this.#state) {
        case HEADER: {
          if (this.#fill === 0) {
            const size = this.#mode === 'extended' ? Limits.EXTENDED_REPLY_SIZE : end - pos >= 4 ? this.#compactSize(readU32(chunk, pos)) : 0;
            if (size !== 0 && end - pos >= size) {
              this.#header(chunk, pos);
              pos += size;
              break;
            }
          }
          if (this.#headerSize === 0) {
            if (this.#mode === 'extended') {
              this.#headerSize = Limits.EXTENDED_REPLY_SIZE;
            } else {
              pos += this.#gather(chunk, pos, 4);
              if (this.#fill < 4) return;
              this.#headerSize = this.#compactSize(readU32(this.#scratch, 0));
            }
          }
          pos += this.#gather(chunk, pos, this.#headerSize);
          if (this.#fill < this.#headerSize) return;
          this.#fill = 0;
          this.#headerSize = 0;
          this.#header(this.#scratch, 0);
          break;
        }
        case PREFIX: {
          if (this.#fill === 0 && end - pos >= 8) {
            this.#startData(readU64(chunk, pos));
            pos += 8;
          } else {
            pos += this.#gather(chunk, pos, 8);
            if (this.#fill < 8) return;
            this.#fill = 0;
            this.#startData(readU64(this.#scratch, 0));
          }
          break;
        }
        case DATA: {
          const k = Math.min(this.#left, end - pos);
          const reply = this.#dataReply!;
          const at = this.#at;
          this.#at += k;
          this.#left -= k;
          if (this.#left === 0) this.#state = HEADER;
          this.#handler.onData(reply, at, chunk.subarray(pos, pos + k));
          pos += k;
          if (this.#state === HEADER) {
            this.#dataReply = undefined;
            this.#handler.onReply(reply);
          }
          break;
        }
        case BODY: {
          const n = this.#length;
          if (this.#body === undefined && this.#fill === 0 && end - pos >= n) {
            pos += n;
            this.#finishBody(chunk.subarray(pos - n, pos));
            break;
          }
          this.#body ??= allocBytes(n);
          const k = Math.min(n - this.#fill, end - pos);
          chunk.copy(this.#body, this.#fill, pos, pos + k);
          this.#fill += k;
          pos += k;
          if (this.#fill < n) return;
          const body = this.#body;
          this.#body = undefined;
          this.#fill = 0;
          this.#finishBody(body);
          break;
        }
      }
    }
  }

  /** Copies bytes of `chunk` into #scratch until it holds `want`; returns the bytes taken. */
  #gather(chunk: Buffer, pos: number, want: number): number {
    const k = Math.min(want - this.#fill, chunk.length - pos);
    chunk.copy(this.#scratch, this.#fill, pos, pos + k);
    this.#fill += k;
    return k;
  }

  /** Header size for a compact-mode magic; rejects magics the negotiated mode does not allow. */
  #compactSize(magic: number): number {
    if (magic === Magic.SIMPLE_REPLY) return Limits.SIMPLE_REPLY_SIZE;
    if (magic === Magic.STRUCTURED_REPLY && this.#mode === 'structured') return Limits.STRUCTURED_REPLY_SIZE;
    throw new NbdProtocolError('bad-magic', `reply magic 0x${magic.toString(16)} is not valid with ${this.#mode} replies`);
  }

  #header(buf: Buffer, at: number): void {
    const magic = readU32(buf, at);
    const cookieHi = readU32(buf, at + 8);
    const cookieLo = readU32(buf, at + 12);
    if (magic === Magic.SIMPLE_REPLY && this.#mode !== 'extended') {
      this.#simple(cookieHi, cookieLo, readU32(buf, at + 4));
      return;
    }
    let requestOffset: number | undefined;
    if (magic === Magic.STRUCTURED_REPLY || magic === Magic.EXTENDED_REPLY) this.#handler.onChunkHeader?.(cookieHi, cookieLo);
    if (this.#mode === 'extended') {
      if (magic !== Magic.EXTENDED_REPLY) {
        throw new NbdProtocolError('bad-magic', `reply magic 0x${magic.toString(16)} is not the extended reply magic`);
      }
      requestOffset = readU64(buf, at + 16);
      const hi = readU32(buf, at + 24);
      this.#length = hi * TWO_32 + readU32(buf, at + 28);
    } else {
      this.#length = readU32(buf, at + 16);
    }
    const flags = readU16(buf, at + 4);
    const type = readU16(buf, at + 6);
    const fields: ChunkFields = { cookieHi, cookieLo, type, flags, done: (flags & ReplyFlag.DONE) !== 0, requestOffset };
    const length = this.#length;
    if (type === ReplyType.OFFSET_DATA) {
      if (length > this.#maxPayload + 8) throw tooLarge('OFFSET_DATA chunk', length - 8, this.#maxPayload);
    } else if (length > this.#maxMetadata) {
      throw tooLarge(`chunk of type ${type}`, length, this.#maxMetadata);
    }
    checkChunkLength(type, length, this.#mode === 'extended');
    this.#fields = fields;
    if (type === ReplyType.OFFSET_DATA) this.#state = PREFIX;
    else if (length === 0) this.#finishBody(this.#scratch.subarray(0, 0));
    else this.#state = BODY;
  }

  #simple(cookieHi: number, cookieLo: number, error: number): void {
    let length = 0;
    if (error === 0) {
      length = this.#handler.simpleReplyLength(cookieHi, cookieLo);
      if (!(length >= 0)) throw new NbdProtocolError('unknown-cookie', `simple reply for cookie ${cookieHi}:${cookieLo}, which is not in flight`);
      if (length > this.#maxPayload) throw tooLarge('simple reply', length, this.#maxPayload);
    }
    const reply: SimpleReply = { kind: 'simple', cookieHi, cookieLo, error, length, done: true };
    if (length === 0) {
      this.#handler.onReply(reply);
      return;
    }
    this.#dataReply = reply;
    this.#at = 0;
    this.#left = length;
    this.#state = DATA;
  }

  #startData(dataOffset: number): void {
    const dataLength = this.#length - 8;
    this.#dataReply = { ...this.#fields!, kind: 'data', dataOffset, dataLength };
    this.#fields = undefined;
    this.#at = dataOffset;
    this.#left = dataLength;
    this.#state = DATA;
  }

  #finishBody(body: Uint8Array): void {
    const reply = decodeChunk(this.#fields!, body);
    this.#fields = undefined;
    this.#state = HEADER;
    this.#handler.onReply(reply);
  }
}

function tooLarge(what: string, length: number, limit: number): NbdProtocolError {
  return new NbdProtocolError('too-large', `${what} of ${length} bytes exceeds the ${limit}-byte limit`);
}
