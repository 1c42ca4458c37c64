/**
 * A deliberately small NBD client for server tests, built on the protocol codec: it can negotiate
 * step by step, send any request (valid or not) and collect replies by cookie. It is not the
 * library's NbdClient: it trusts nothing and hides nothing, so tests see exactly what the server sent.
 */
import { connect, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import {
  ClientFlag,
  Cmd,
  CmdFlag,
  encodeClientFlags,
  encodeInfoOption,
  encodeMetaContextOption,
  encodeOption,
  encodeRequestHeader,
  Opt,
  OptionReplyParser,
  ReplyParser,
  type NbdReply,
  type OptionReply,
  type ReplyMode,
} from '../../../src/nbd/protocol/index.js';

/** Everything the server answered to one request. */
export interface CollectedReply {
  /** NBD error value of the first error (simple reply error or error chunk), 0 if none. */
  readonly error: number;
  readonly message: string;
  /** Read data reassembled from data chunks / simple payload (holes filled with zeros). */
  readonly data: Buffer;
  readonly chunks: NbdReply[];
}

interface Pending {
  readonly type: number;
  readonly offset: number;
  readonly length: number;
  readonly data: Buffer;
  readonly chunks: NbdReply[];
  error: number;
  message: string;
  resolve: (r: CollectedReply) => void;
}

export interface GoOptions {
  readonly structured?: boolean;
  readonly extended?: boolean;
  readonly metaContexts?: readonly string[];
  readonly infoRequests?: readonly number[];
}

/**
 * A request header with the offset and length as exact u64 values: `encodeRequestHeader` takes
 * doubles, which cannot say 2^64 − 1. Compact headers keep the low 32 bits of `length`.
 */
export function encodeWideRequestHeader(extended: boolean, type: number, flags: number, cookie: bigint, offset: bigint, length: bigint): Buffer {
  const out = Buffer.alloc(extended ? 32 : 28);
  out.writeUInt32BE(extended ? 0x21e41c71 : 0x25609513, 0);
  out.writeUInt16BE(flags, 4);
  out.writeUInt16BE(type, 6);
  out.writeBigUInt64BE(cookie, 8);
  out.writeBigUInt64BE(offset, 16);
  if (extended) out.writeBigUInt64BE(length, 24);
  else out.writeUInt32BE(Number(length & 0xffffffffn), 24);
  return out;
}

export class RawClient {
  readonly socket: Socket;
  readonly #optionParser: OptionReplyParser;
  #replyParser: ReplyParser | undefined;
  #waiters: (() => void)[] = [];
  readonly #pending = new Map<string, Pending>();
  #nextCookie = 1;
  extended = false;
  structured = false;
  /** Transmission flags and size once in transmission. */
  size = 0;
  transmissionFlags = 0;
  contextId: number | undefined;
  readonly closed: Promise<void>;

  /** `parser`: the handshake parser to go on with (after STARTTLS, past the greeting). */
  private constructor(socket: Socket, parser = new OptionReplyParser()) {
    this.socket = socket;
    this.#optionParser = parser;
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.on('error', () => {});
    socket.on('data', (chunk: Buffer) => {
      if (this.#replyParser !== undefined) this.#replyParser.push(chunk);
      else this.#optionParser.push(chunk);
      for (const w of this.#waiters.splice(0)) w();
    });
    socket.on('close', () => {
      for (const w of this.#waiters.splice(0)) w();
    });
  }

  static connect(target: number | string): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const s = typeof target === 'number' ? connect(target, '127.0.0.1') : connect(target);
      s.once('connect', () => resolve(new RawClient(s)));
      s.once('error', reject);
    });
  }

  /** Waits for the next handshake message (or undefined if the server closed). */
  async nextMessage(timeoutMs = 5000): Promise<ReturnType<OptionReplyParser['next']>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = this.#optionParser.next();
      if (m !== undefined) return m;
      if (this.socket.destroyed || this.socket.readableEnded) return undefined;
      if (Date.now() > deadline) throw new Error('timed out waiting for the server');
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.max(1, deadline - Date.now()));
        this.#waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Reads the greeting and sends client flags. */
  async start(flags: number = ClientFlag.FIXED_NEWSTYLE | ClientFlag.NO_ZEROES): Promise<number> {
    const g = await this.nextMessage();
    if (g?.kind !== 'greeting') throw new Error(`expected a greeting, got ${JSON.stringify(g)}`);
    this.socket.write(encodeClientFlags(flags));
    return g.handshakeFlags;
  }

  /** Sends raw option bytes and collects replies up to the final one (ACK or error). */
  async option(bytes: Buffer): Promise<OptionReply[]> {
    this.socket.write(bytes);
    const replies: OptionReply[] = [];
    for (;;) {
      const m = await this.nextMessage();
      if (m === undefined) throw new Error('server closed during negotiation');
      if (m.kind !== 'reply') throw new Error(`unexpected ${m.kind}`);
      replies.push(m.reply);
      if (m.reply.kind === 'ack' && m.reply.option === Opt.STRUCTURED_REPLY) this.structured = true;
      if (m.reply.kind === 'ack' && m.reply.option === Opt.EXTENDED_HEADERS) this.extended = true;
      if (m.reply.kind === 'ack' || m.reply.kind === 'error') return replies;
    }
  }

  /** Sends STARTTLS and returns a client over the TLS connection that follows its ACK. */
  async startTls(options: ConnectionOptions): Promise<RawClient> {
    const r = await this.option(encodeOption(Opt.STARTTLS));
    if (r.at(-1)?.kind !== 'ack') throw new Error(`STARTTLS refused: ${JSON.stringify(r.at(-1))}`);
    return new Promise((resolve, reject) => {
      const secure = tlsConnect({ ...options, socket: this.socket });
      secure.once('secureConnect', () => resolve(new RawClient(secure, this.#optionParser)));
      secure.once('error', reject);
    });
  }

  /** Negotiates and enters transmission with NBD_OPT_GO. Throws on an error reply. */
  async go(name = '', options: GoOptions = {}): Promise<void> {
    if (options.extended === true) {
      const r = await this.option(encodeOption(Opt.EXTENDED_HEADERS));
      if (r.at(-1)?.kind !== 'ack') throw new Error('extended headers refused');
    } else if (options.structured === true) {
      const r = await this.option(encodeOption(Opt.STRUCTURED_REPLY));
      if (r.at(-1)?.kind !== 'ack') throw new Error('structured replies refused');
    }
    if (options.metaContexts !== undefined) {
      const r = await this.option(encodeMetaContextOption(Opt.SET_META_CONTEXT, name, options.metaContexts));
      const ctx = r.find((x) => x.kind === 'metaContext');
      this.contextId = ctx?.kind === 'metaContext' ? ctx.contextId : undefined;
    }
    const replies = await this.option(encodeInfoOption(Opt.GO, name, options.infoRequests ?? []));
    const last = replies.at(-1)!;
    if (last.kind !== 'ack') throw new Error(`GO failed: ${JSON.stringify(last)}`);
    for (const r of replies) {
      if (r.kind === 'info' && r.info.type === 'export') {
        this.size = r.info.size;
        this.transmissionFlags = r.info.transmissionFlags;
      }
    }
    const mode: ReplyMode = this.extended ? 'extended' : this.structured ? 'structured' : 'simple';
    this.#enterTransmission(mode);
  }

  #enterTransmission(mode: ReplyMode): void {
    const rest = this.#optionParser.takeRemainder();
    this.#replyParser = new ReplyParser(
      {
        simpleReplyLength: (hi, lo) => {
          const p = this.#pending.get(`${hi}:${lo}`);
          if (p === undefined) return -1;
          return p.type === Cmd.READ ? p.length : 0;
        },
        onData: (reply, at, data) => {
          const p = this.#pending.get(`${reply.cookieHi}:${reply.cookieLo}`)!;
          const pos = reply.kind === 'simple' ? at : at - p.offset;
          data.copy(p.data, pos);
        },
        onReply: (reply) => {
          const key = `${reply.cookieHi}:${reply.cookieLo}`;
          const p = this.#pending.get(key);
          if (p === undefined) return;
          p.chunks.push(reply);
          if (reply.kind === 'simple' && reply.error !== 0 && p.error === 0) p.error = reply.error;
          if (reply.kind === 'error' && p.error === 0) {
            p.error = reply.error;
            p.message = reply.message;
          }
          if (reply.kind === 'hole') p.data.fill(0, reply.holeOffset - p.offset, reply.holeOffset - p.offset + reply.holeLength);
          if (reply.done) {
            this.#pending.delete(key);
            p.resolve({ error: p.error, message: p.message, data: p.data, chunks: p.chunks });
          }
        },
      },
      { mode, maxPayload: 64 * 1024 * 1024 },
    );
    if (rest.length > 0) this.#replyParser.push(rest);
  }

  /** Sends one request (payload for WRITE) and resolves with its complete reply. */
  request(type: number, offset: number, length: number, options: { flags?: number; payload?: Uint8Array } = {}): Promise<CollectedReply> {
    const cookie = this.#nextCookie++;
    let flags = options.flags ?? 0;
    if (this.extended && options.payload !== undefined) flags |= CmdFlag.PAYLOAD_LEN;
    const effective = options.payload !== undefined ? options.payload.length : length;
    return new Promise((resolve) => {
      if (type !== Cmd.DISC) {
        this.#pending.set(`0:${cookie}`, {
          type,
          offset,
          length,
          data: Buffer.alloc(type === Cmd.READ && length <= 64 * 1024 * 1024 ? length : 0),
          chunks: [],
          error: 0,
          message: '',
          resolve,
        });
      }
      this.socket.write(encodeRequestHeader(this.extended, type, flags, 0, cookie, offset, effective));
      if (options.payload !== undefined && options.payload.length > 0) this.socket.write(options.payload);
      if (type === Cmd.DISC) resolve({ error: 0, message: '', data: Buffer.alloc(0), chunks: [] });
    });
  }

  /** Like `request` without a payload, with the offset and length as exact u64 values. */
  requestWide(type: number, offset: bigint, length: bigint, flags = 0): Promise<CollectedReply> {
    const cookie = this.#nextCookie++;
    return new Promise((resolve) => {
      const small = type === Cmd.READ && length <= 64n * 1024n * 1024n;
      this.#pending.set(`0:${cookie}`, { type, offset: Number(offset), length: Number(length), data: Buffer.alloc(small ? Number(length) : 0), chunks: [], error: 0, message: '', resolve });
      this.socket.write(encodeWideRequestHeader(this.extended, type, flags, BigInt(cookie), offset, length));
    });
  }

  read(offset: number, length: number, flags = 0): Promise<CollectedReply> {
    return this.request(Cmd.READ, offset, length, { flags });
  }

  write(offset: number, data: Uint8Array, flags = 0): Promise<CollectedReply> {
    return this.request(Cmd.WRITE, offset, data.length, { flags, payload: data });
  }

  /** Requests awaiting a reply. */
  get outstanding(): number {
    return this.#pending.size;
  }

  /** Sends DISC and waits for the server to close. */
  async disconnect(): Promise<void> {
    if (!this.socket.destroyed) {
      await this.request(Cmd.DISC, 0, 0);
      this.socket.end();
    }
    await this.closed;
  }

  destroy(): void {
    this.socket.destroy();
  }
}
