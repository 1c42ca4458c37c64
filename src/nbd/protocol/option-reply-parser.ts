/**
 * The client's parser for what a server sends during the handshake: the greeting, option replies,
 * and the reply to NBD_OPT_EXPORT_NAME.
 *
 * Like {@link OptionParser} it is pull-based: `push()` stores bytes, `next()` returns the next
 * complete message or undefined. The bytes of an export-name reply cannot be told apart from an
 * option reply, so after sending NBD_OPT_EXPORT_NAME the client calls `expectExportNameReply()`.
 * When transmission starts (export-name reply, or NBD_REP_ACK to NBD_OPT_GO) the client calls
 * `takeRemainder()` and feeds the result to its {@link ReplyParser}.
 */
import { BlockError } from '../../errors.js';
import { ByteQueue, readU16, readU32, readU64 } from './bytes.js';
import { Limits } from './constants.js';
import { NbdProtocolError } from './errors.js';
import { decodeOptionReply, type OptionReply } from './option-replies.js';

/** Limits of an {@link OptionReplyParser}, in bytes. */
export interface OptionReplyParserOptions {
  /** Longest option reply data accepted; longer is fatal (`too-large`). Default 64 KiB. */
  readonly maxReplyLength?: number;
  /** Most unconsumed bytes held at once; more is fatal (`unexpected-data`). Default maxReplyLength + 1 MiB. */
  readonly maxBuffered?: number;
}

/** What {@link OptionReplyParser.next} returns. */
export type OptionReplyParserEvent =
  | { readonly kind: 'greeting'; readonly handshakeFlags: number }
  | { readonly kind: 'reply'; readonly reply: OptionReply }
  /** The reply to NBD_OPT_EXPORT_NAME; `size` is exact below 2^53. */
  | { readonly kind: 'exportName'; readonly size: number; readonly transmissionFlags: number };

const NBDMAGIC = [0x4e42444d, 0x41474943] as const;
const IHAVEOPT = [0x49484156, 0x454f5054] as const;
const OLDSTYLE = [0x00004202, 0x81861253] as const;
const REPLY_MAGIC = [0x0003e889, 0x045565a9] as const;

type State = 'greeting' | 'header' | 'data' | 'exportName';

/** Parses the server's side of the handshake (see the module comment for the flow). */
export class OptionReplyParser {
  readonly #maxReplyLength: number;
  readonly #maxBuffered: number;
  readonly #queue = new ByteQueue();
  #state: State = 'greeting';
  #option = 0;
  #replyType = 0;
  #length = 0;
  #exportReplySize = 0;
  #failure: NbdProtocolError | undefined;

  constructor(options: OptionReplyParserOptions = {}) {
    this.#maxReplyLength = options.maxReplyLength ?? Limits.DEFAULT_MAX_OPTION_LENGTH;
    this.#maxBuffered = Math.max(options.maxBuffered ?? this.#maxReplyLength + 1024 * 1024, this.#maxReplyLength + Limits.OPTION_REPLY_HEADER_SIZE);
  }

  /** Bytes received and not yet consumed. */
  get buffered(): number {
    return this.#queue.length;
  }

  /** Stores received bytes. Throws {@link NbdProtocolError} if the parser failed or holds too much. */
  push(chunk: Buffer): void {
    if (this.#failure) throw this.#failure;
    this.#queue.push(chunk);
    if (this.#queue.length > this.#maxBuffered) {
      this.#fail(new NbdProtocolError('unexpected-data', `server sent ${this.#queue.length} unsolicited bytes`));
    }
  }

  /**
   * Makes the next message the reply to NBD_OPT_EXPORT_NAME (10 bytes, or 134 unless the client
   * negotiated NO_ZEROES). Call it right after sending that option, at a message boundary.
   */
  expectExportNameReply(noZeroes: boolean): void {
    if (this.#failure) throw this.#failure;
    if (this.#state !== 'header') throw new BlockError('EINVAL', 'an export-name reply can only follow the greeting or a complete option reply');
    this.#state = 'exportName';
    this.#exportReplySize = 10 + (noZeroes ? 0 : Limits.EXPORT_NAME_PADDING);
  }

  /**
   * The next complete message, or undefined until more bytes arrive. Throws
   * {@link NbdProtocolError} (and stays failed) on a bad magic, an oldstyle server, an oversized
   * or malformed reply.
   */
  next(): OptionReplyParserEvent | undefined {
    if (this.#failure) throw this.#failure;
    const q = this.#queue;
    for (;;) {
      switch (this.#state) {
        case 'greeting': {
          if (q.length < Limits.GREETING_SIZE) return undefined;
          const g = q.take(Limits.GREETING_SIZE);
          if (!is64(g, 0, NBDMAGIC)) this.#fail(new NbdProtocolError('bad-magic', 'server greeting does not start with NBDMAGIC'));
          if (is64(g, 8, OLDSTYLE)) this.#fail(new NbdProtocolError('oldstyle', 'server uses oldstyle negotiation'));
          if (!is64(g, 8, IHAVEOPT)) this.#fail(new NbdProtocolError('bad-magic', 'server greeting lacks IHAVEOPT'));
          this.#state = 'header';
          return { kind: 'greeting', handshakeFlags: readU16(g, 16) };
        }
        case 'header': {
          if (q.length < Limits.OPTION_REPLY_HEADER_SIZE) return undefined;
          const h = q.take(Limits.OPTION_REPLY_HEADER_SIZE);
          if (!is64(h, 0, REPLY_MAGIC)) this.#fail(new NbdProtocolError('bad-magic', 'option reply has a bad magic'));
          this.#option = readU32(h, 8);
          this.#replyType = readU32(h, 12);
          this.#length = readU32(h, 16);
          if (this.#length > this.#maxReplyLength) {
            this.#fail(new NbdProtocolError('too-large', `option reply of ${this.#length} bytes; at most ${this.#maxReplyLength} are accepted`));
          }
          this.#state = 'data';
          continue;
        }
        case 'data': {
          if (q.length < this.#length) return undefined;
          this.#state = 'header';
          return { kind: 'reply', reply: this.#decode(q.take(this.#length)) };
        }
        case 'exportName': {
          if (q.length < this.#exportReplySize) return undefined;
          const r = q.take(this.#exportReplySize);
          this.#state = 'header';
          return { kind: 'exportName', size: readU64(r, 0), transmissionFlags: readU16(r, 8) };
        }
      }
    }
  }

  /** Ends handshake parsing and returns the bytes received after the last message returned. */
  takeRemainder(): Buffer {
    if (this.#failure) throw this.#failure;
    const rest = this.#queue.takeAll();
    this.#failure = new NbdProtocolError('closed', 'option reply parser was detached');
    return rest;
  }

  #decode(data: Buffer): OptionReply {
    try {
      return decodeOptionReply(this.#option, this.#replyType, data);
    } catch (err) {
      this.#fail(err as NbdProtocolError);
    }
  }

  #fail(error: NbdProtocolError): never {
    this.#failure = error;
    throw error;
  }
}

function is64(buf: Uint8Array, at: number, magic: readonly [number, number]): boolean {
  return readU32(buf, at) === magic[0] && readU32(buf, at + 4) === magic[1];
}
