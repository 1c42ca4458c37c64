/**
 * The server's transmission-phase parser: turns the client's byte stream into requests.
 *
 * Built for the hot path. `push(chunk)` parses in place from each received chunk and calls
 * `onRequest` synchronously for every complete request. A header split across chunks is gathered in
 * a 32-byte scratch buffer; nothing else is buffered. A WRITE payload that lies entirely inside the
 * received chunk is handed out as a view of it (zero copies); one that spans chunks is copied once,
 * as it arrives, into a buffer of exactly its size (from `allocatePayload` if given, so a server may
 * pool them). Requests are delivered when their payload is complete.
 *
 * Oversized payloads do not allocate: up to `maxDiscard` bytes are skipped as they arrive and the
 * request is delivered with `error` set so the server can answer it and keep the connection; beyond
 * that, and on a bad magic, `push` throws a fatal {@link NbdProtocolError}.
 */
import { BlockError } from '../../errors.js';
import { allocBytes, readU16, readU32 } from './bytes.js';
import { Cmd, CmdFlag, Limits, Magic } from './constants.js';
import { NbdProtocolError } from './errors.js';

/** One request from a client. */
export interface NbdRequest {
  /** NBD_CMD_* */
  readonly type: number;
  /** NBD_CMD_FLAG_* bits, unvalidated: the server checks them against what it advertised. */
  readonly flags: number;
  /** The opaque 64-bit cookie as two u32 halves, to echo in the reply. */
  readonly cookieHi: number;
  readonly cookieLo: number;
  /**
   * Export offset. Exact below 2^53; a larger wire value arrives as the nearest double (still
   * ≥ 2^53), so the server's ordinary bounds check rejects it with the spec's error for the command.
   */
  readonly offset: number;
  /** The offset's raw u32 halves, echoed by extended reply headers (see `ReplyTarget`). */
  readonly offsetHi: number;
  readonly offsetLo: number;
  /**
   * The header's length field: for a request with a payload (WRITE, or any request with
   * NBD_CMD_FLAG_PAYLOAD_LEN under extended headers) the payload length, otherwise the effect
   * length. Like `offset`, exact below 2^53.
   */
  readonly length: number;
  /** The payload, exactly `length` bytes, or undefined when the request has none or it was skipped. */
  readonly payload: Buffer | undefined;
  /**
   * Set when the parser had to refuse the request while keeping the stream in sync (payload over
   * `maxPayload`, extended WRITE without PAYLOAD_LEN): answer with this error without executing.
   */
  readonly error: 'EINVAL' | undefined;
  /** Why `error` is set, for logs. */
  readonly errorMessage: string | undefined;
}

/** Options of a {@link RequestParser}. */
export interface RequestParserOptions {
  /** Extended headers (NBD_OPT_EXTENDED_HEADERS agreed). Default false; see {@link RequestParser.extended}. */
  readonly extended?: boolean;
  /** Longest payload delivered. Default 32 MiB. */
  readonly maxPayload?: number;
  /**
   * Longest payload skipped when over `maxPayload` (the request then carries `error`); a longer one
   * is fatal. Default 64 MiB. Set it to `maxPayload` to disconnect on every oversized payload.
   */
  readonly maxDiscard?: number;
  /**
   * Supplies the buffer a payload spanning several chunks is gathered into; must return at least
   * `length` bytes. Default: a fresh uninitialised buffer.
   */
  readonly allocatePayload?: (length: number) => Buffer;
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

const HEADER: number = 0;
const PAYLOAD: number = 1;
const DISCARD: number = 2;
const TWO_32 = 4294967296;

/** Parses client requests (see the module comment). */
export class RequestParser {
  readonly #onRequest: (request: NbdRequest) => void;
  readonly #maxPayload: number;
  readonly #maxDiscard: number;
  readonly #allocate: ((length: number) => Buffer) | undefined;
  readonly #scratch = Buffer.allocUnsafe(Limits.EXTENDED_REQUEST_SIZE);
  #extended: boolean;
  #headerSize: number;
  #state: number = HEADER;
  /** Header bytes gathered in #scratch so far. */
  #fill = 0;
  /** Request whose payload is being gathered or skipped. */
  #current: Mutable<NbdRequest> | undefined;
  #target: Buffer | undefined;
  #targetFill = 0;
  #left = 0;
  #failure: NbdProtocolError | undefined;

  /** `onRequest` is called synchronously from `push` for each complete request, in stream order. */
  constructor(onRequest: (request: NbdRequest) => void, options: RequestParserOptions = {}) {
    this.#onRequest = onRequest;
    this.#maxPayload = options.maxPayload ?? Limits.DEFAULT_MAX_PAYLOAD;
    this.#maxDiscard = Math.max(options.maxDiscard ?? 64 * 1024 * 1024, this.#maxPayload);
    this.#allocate = options.allocatePayload;
    this.#extended = options.extended ?? false;
    this.#headerSize = this.#extended ? Limits.EXTENDED_REQUEST_SIZE : Limits.COMPACT_REQUEST_SIZE;
  }

  /** Whether requests use extended (32-byte) headers. Changeable only between requests. */
  get extended(): boolean {
    return this.#extended;
  }

  set extended(value: boolean) {
    if (!this.idle) throw new BlockError('EINVAL', 'header style can only change between requests');
    this.#extended = value;
    this.#headerSize = value ? Limits.EXTENDED_REQUEST_SIZE : Limits.COMPACT_REQUEST_SIZE;
  }

  /** True when no partial request is held (a clean point to stop reading). */
  get idle(): boolean {
    return this.#state === HEADER && this.#fill === 0;
  }

  /**
   * Parses `chunk`, calling `onRequest` for each request it completes. The payload views handed
   * out alias `chunk`: do not reuse its memory while a request holds one. Throws
   * {@link NbdProtocolError} on a fatal violation; the parser then stays failed. An exception
   * thrown by `onRequest` propagates and also leaves the parser failed.
   */
  push(chunk: Buffer): void {
    if (this.#failure) throw this.#failure;
    try {
      this.#parse(chunk);
    } catch (err) {
      this.#failure ??=
        err instanceof NbdProtocolError ? err : new NbdProtocolError('closed', 'request handler threw; parser abandoned');
      throw err;
    }
  }

  #parse(chunk: Buffer): void {
    const end = chunk.length;
    let pos = 0;
    while (pos < end) {
      if (this.#state === HEADER) {
        const size = this.#headerSize;
        if (this.#fill === 0 && end - pos >= size) {
          this.#header(chunk, pos);
          pos += size;
        } else {
          const k = Math.min(size - this.#fill, end - pos);
          chunk.copy(this.#scratch, this.#fill, pos, pos + k);
          const before = this.#fill;
          this.#fill += k;
          pos += k;
          // Check the magic as soon as it is complete, so garbage fails without waiting for more bytes.
          if (before < 4 && this.#fill >= 4) this.#checkMagic(readU32(this.#scratch, 0));
          if (this.#fill < size) return;
          this.#fill = 0;
          this.#header(this.#scratch, 0);
        }
        if (this.#state === PAYLOAD) {
          const req = this.#current!;
          const n = req.length;
          if (end - pos >= n) {
            // Whole payload already here: hand out a view, no copy.
            req.payload = chunk.subarray(pos, pos + n);
            pos += n;
            this.#finish(req);
          } else {
            const target = this.#allocate ? this.#allocate(n) : allocBytes(n);
            if (target.length < n) throw new TypeError(`allocatePayload returned ${target.length} bytes for a ${n}-byte payload`);
            this.#target = target.length === n ? target : target.subarray(0, n);
            chunk.copy(this.#target, 0, pos, end);
            this.#targetFill = end - pos;
            pos = end;
          }
        }
      } else if (this.#state === PAYLOAD) {
        const target = this.#target!;
        const k = Math.min(target.length - this.#targetFill, end - pos);
        chunk.copy(target, this.#targetFill, pos, pos + k);
        this.#targetFill += k;
        pos += k;
        if (this.#targetFill === target.length) {
          const req = this.#current!;
          req.payload = target;
          this.#target = undefined;
          this.#finish(req);
        }
      } else {
        const k = Math.min(this.#left, end - pos);
        this.#left -= k;
        pos += k;
        if (this.#left === 0) this.#finish(this.#current!);
      }
    }
  }

  /** Decodes the header at `buf[at]` and sets up what follows it. */
  #header(buf: Buffer, at: number): void {
    const magic = readU32(buf, at);
    const flags = readU16(buf, at + 4);
    const type = readU16(buf, at + 6);
    const offsetHi = readU32(buf, at + 16);
    const offsetLo = readU32(buf, at + 20);
    const offset = offsetHi * TWO_32 + offsetLo;
    let length: number;
    let hasPayload: boolean;
    this.#checkMagic(magic);
    if (this.#extended) {
      length = readU32(buf, at + 24) * TWO_32 + readU32(buf, at + 28);
      hasPayload = (flags & CmdFlag.PAYLOAD_LEN) !== 0;
    } else {
      length = readU32(buf, at + 24);
      hasPayload = type === Cmd.WRITE;
    }
    const req: Mutable<NbdRequest> = {
      type,
      flags,
      cookieHi: readU32(buf, at + 8),
      cookieLo: readU32(buf, at + 12),
      offset,
      offsetHi,
      offsetLo,
      length,
      payload: undefined,
      error: undefined,
      errorMessage: undefined,
    };
    if (!hasPayload) {
      if (type !== Cmd.WRITE || length === 0) {
        if (type === Cmd.WRITE) this.#refuseUnflaggedWrite(req);
        this.#onRequest(req);
        return;
      }
      // A WRITE's data follows whatever its flags say: skip it, or it would be parsed as requests.
      if (length > this.#maxDiscard) {
        throw new NbdProtocolError('too-large', `extended WRITE of ${length} bytes without NBD_CMD_FLAG_PAYLOAD_LEN exceeds the ${this.#maxDiscard}-byte limit`);
      }
      this.#refuseUnflaggedWrite(req);
      this.#current = req;
      this.#state = DISCARD;
      this.#left = length;
      return;
    }
    if (length <= this.#maxPayload) {
      if (length === 0) {
        req.payload = Buffer.alloc(0);
        this.#onRequest(req);
        return;
      }
      this.#current = req;
      this.#state = PAYLOAD;
      this.#targetFill = 0;
      return;
    }
    if (length > this.#maxDiscard) {
      throw new NbdProtocolError('too-large', `request payload of ${length} bytes exceeds the ${this.#maxDiscard}-byte limit`);
    }
    req.error = 'EINVAL';
    req.errorMessage = `payload of ${length} bytes exceeds the maximum of ${this.#maxPayload}`;
    this.#current = req;
    this.#state = DISCARD;
    this.#left = length;
  }

  #refuseUnflaggedWrite(req: Mutable<NbdRequest>): void {
    req.error = 'EINVAL';
    req.errorMessage = 'extended WRITE without NBD_CMD_FLAG_PAYLOAD_LEN';
  }

  #finish(req: NbdRequest): void {
    this.#current = undefined;
    this.#state = HEADER;
    this.#onRequest(req);
  }

  #checkMagic(magic: number): void {
    if (magic === (this.#extended ? Magic.EXTENDED_REQUEST : Magic.REQUEST)) return;
    throw new NbdProtocolError('bad-magic', `request magic 0x${magic.toString(16)} is not ${this.#extended ? 'the extended' : 'the compact'} request magic`);
  }
}
