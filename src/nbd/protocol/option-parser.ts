/**
 * The server's parser for what a client sends during the handshake: its client flags, then options.
 *
 * It is pull-based: `push()` stores received bytes, `next()` returns the next complete message or
 * undefined. The server calls `next()` only when it is ready for the next option (after answering
 * the previous one, possibly asynchronously), so options are handled strictly in order without any
 * pause/resume protocol. When negotiation ends (EXPORT_NAME, a successful GO, or STARTTLS) the
 * server calls `takeRemainder()` to hand any bytes already received to the next stage.
 *
 * Memory is bounded: an option longer than `maxOptionLength` is skipped as it arrives (never
 * buffered) and reported as `tooBig` (as `unknown` when its code is not one this side knows:
 * the length of an option nobody parses does not matter); one longer than `maxSkipLength` is a fatal error without a
 * single byte of it being allocated; and a client that keeps sending while the server is busy is
 * cut off after `maxBuffered` bytes.
 */
import { ByteQueue, readU32 } from './bytes.js';
import { Limits } from './constants.js';
import { NbdProtocolError } from './errors.js';
import { decodeOption, type NbdOption } from './options.js';

const EMPTY = new Uint8Array(0);

/** Limits of an {@link OptionParser}, in bytes. */
export interface OptionParserOptions {
  /** Longest option data decoded; longer options are skipped and reported as `tooBig`. Default 64 KiB. */
  readonly maxOptionLength?: number;
  /** Longest option data skipped; a longer one is fatal (`too-large`). Default 1 MiB. */
  readonly maxSkipLength?: number;
  /** Most unconsumed bytes held at once; more is fatal (`unexpected-data`). Default maxOptionLength + 1 MiB. */
  readonly maxBuffered?: number;
  /**
   * Start at the first option header instead of the client flags: option haggling resumes this
   * way after a STARTTLS upgrade, where the client sends no flags again. Default false.
   */
  readonly afterStartTls?: boolean;
}

/** What {@link OptionParser.next} returns: first the client flags, then one option at a time. */
export type OptionParserEvent =
  | { readonly kind: 'clientFlags'; readonly flags: number }
  | { readonly kind: 'option'; readonly option: NbdOption };

const IHAVEOPT_HI = 0x49484156;
const IHAVEOPT_LO = 0x454f5054;

type State = 'flags' | 'header' | 'data' | 'skip';

/** Parses client flags and options (see the module comment for the flow). */
export class OptionParser {
  readonly #maxOptionLength: number;
  readonly #maxSkipLength: number;
  readonly #maxBuffered: number;
  readonly #queue = new ByteQueue();
  #state: State = 'flags';
  #code = 0;
  #length = 0;
  #skipLeft = 0;
  #failure: NbdProtocolError | undefined;

  constructor(options: OptionParserOptions = {}) {
    this.#maxOptionLength = options.maxOptionLength ?? Limits.DEFAULT_MAX_OPTION_LENGTH;
    this.#maxSkipLength = Math.max(options.maxSkipLength ?? 1024 * 1024, this.#maxOptionLength);
    if (options.afterStartTls === true) this.#state = 'header';
    this.#maxBuffered = Math.max(options.maxBuffered ?? this.#maxOptionLength + 1024 * 1024, this.#maxOptionLength + Limits.OPTION_HEADER_SIZE);
  }

  /** Bytes received and not yet consumed. */
  get buffered(): number {
    return this.#queue.length;
  }

  /** Stores received bytes. Throws {@link NbdProtocolError} if the parser failed or holds too much. */
  push(chunk: Buffer): void {
    if (this.#failure) throw this.#failure;
    let data = chunk;
    if (this.#state === 'skip' && this.#queue.length === 0) {
      // Skipped option data is dropped on arrival so an oversized option never occupies memory.
      const k = Math.min(this.#skipLeft, data.length);
      this.#skipLeft -= k;
      data = data.subarray(k);
    }
    this.#queue.push(data);
    if (this.#queue.length > this.#maxBuffered) {
      this.#fail(new NbdProtocolError('unexpected-data', `client sent ${this.#queue.length} bytes without waiting for replies`));
    }
  }

  /**
   * The next complete message, or undefined until more bytes arrive. Throws
   * {@link NbdProtocolError} (and stays failed) on a bad magic or an option too long to skip.
   */
  next(): OptionParserEvent | undefined {
    if (this.#failure) throw this.#failure;
    const q = this.#queue;
    for (;;) {
      switch (this.#state) {
        case 'flags': {
          if (q.length < 4) return undefined;
          this.#state = 'header';
          return { kind: 'clientFlags', flags: readU32(q.take(4), 0) };
        }
        case 'header': {
          if (q.length < Limits.OPTION_HEADER_SIZE) return undefined;
          const h = q.take(Limits.OPTION_HEADER_SIZE);
          if (readU32(h, 0) !== IHAVEOPT_HI || readU32(h, 4) !== IHAVEOPT_LO) {
            this.#fail(new NbdProtocolError('bad-magic', 'option does not start with IHAVEOPT'));
          }
          this.#code = readU32(h, 8);
          this.#length = readU32(h, 12);
          if (this.#length <= this.#maxOptionLength) {
            this.#state = 'data';
          } else if (this.#length <= this.#maxSkipLength) {
            this.#state = 'skip';
            this.#skipLeft = this.#length;
          } else {
            this.#fail(new NbdProtocolError('too-large', `option ${this.#code} has ${this.#length} bytes of data; at most ${this.#maxSkipLength} are accepted`));
          }
          continue;
        }
        case 'data': {
          if (q.length < this.#length) return undefined;
          this.#state = 'header';
          return { kind: 'option', option: decodeOption(this.#code, q.take(this.#length)) };
        }
        case 'skip': {
          this.#skipLeft -= q.skip(this.#skipLeft);
          if (this.#skipLeft > 0) return undefined;
          this.#state = 'header';
          // An option this side does not know is unknown whatever its length (servers answer
          // ERR_UNSUP, as the spec requires); only a known one is too big. Decoding no data
          // says which, without a second list of option codes.
          const unknown = decodeOption(this.#code, EMPTY).kind === 'unknown';
          return { kind: 'option', option: unknown ? { kind: 'unknown', code: this.#code, length: this.#length } : { kind: 'tooBig', code: this.#code, length: this.#length } };
        }
      }
    }
  }

  /**
   * Ends option parsing and returns the bytes received after the last message returned (requests
   * a client pipelined after EXPORT_NAME, say). The parser cannot be used afterwards.
   */
  takeRemainder(): Buffer {
    if (this.#failure) throw this.#failure;
    const rest = this.#queue.takeAll();
    this.#failure = new NbdProtocolError('closed', 'option parser was detached');
    return rest;
  }

  #fail(error: NbdProtocolError): never {
    this.#failure = error;
    throw error;
  }
}
