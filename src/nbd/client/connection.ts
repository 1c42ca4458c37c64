/**
 * One NBD connection of a client: a socket, its negotiation, and the requests in flight on it,
 * matched to replies by cookie.
 *
 * Reads avoid copies: the socket reads through a caller-chosen buffer (`onread`), and while a
 * READ's payload is streaming in, the next socket read goes straight into the caller's target
 * buffer. Only the bytes that arrive together with a header are copied, once, out of a reusable
 * scratch buffer. Over TLS (see tls.ts) decrypted bytes arrive as buffers of Node's and are
 * copied into place once.
 *
 * A connection never retries anything itself. When it ends unexpectedly it hands its unanswered
 * requests, in submission order, to its host (the client), which replays or fails them.
 */
import { abortCode } from '../../abort-code.js';
import { connect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { BlockError, toBlockError } from '../../errors.js';
import {
  Cmd,
  CmdFlag,
  Err,
  Limits,
  NbdProtocolError,
  ReplyParser,
  writeRequestHeader,
  type DataChunk,
  type NbdReply,
  type ReplyMode,
  type SimpleReply,
} from '../protocol/index.js';
import type { NbdAddress } from './address.js';
import { startClientTls, tlsConnectOptions, type NbdClientTlsOptions } from './tls.js';
import type { Dispatchable } from './dispatch.js';
import { HandshakeReader } from './handshake-reader.js';
import { negotiate, type HandshakeChannel, type NegotiatedExport } from './negotiate.js';
import type { NbdNegotiationOptions } from './options.js';
import { ReadCoverage } from './read-coverage.js';
import { ReadPlacement } from './read-placement.js';
import type { NbdRequest } from './request.js';

/** Reusable receive buffer for headers and small payloads. */
const SCRATCH_SIZE = 256 * 1024;

/** The side of the client a connection reports to. */
export interface ConnectionHost {
  /**
   * The connection ended without being asked to. `unanswered` holds its requests without a reply,
   * in submission order, reset for a replay.
   */
  connectionLost(connection: NbdConnection, error: BlockError, unanswered: NbdRequest[]): void;
  /** The server refused `request` with ESHUTDOWN; it was not executed. The connection now drains. */
  requestRefusedByShutdown(connection: NbdConnection, request: NbdRequest): void;
}

/** How to open a connection. */
export interface ConnectionSettings {
  readonly address: NbdAddress;
  readonly exportName: string;
  readonly negotiation: Required<NbdNegotiationOptions>;
  /** ms for TCP connect plus negotiation; 0 for none. */
  readonly connectTimeout: number;
  /** ms a request may wait for its reply; 0 for none. */
  readonly requestTimeout: number;
  /** Largest read payload accepted (the client never asks for more). */
  readonly maxPayload: number;
  /** Speak TLS (STARTTLS first); undefined for plain text. */
  readonly tls: NbdClientTlsOptions | undefined;
  readonly signal?: AbortSignal;
}

type Phase = 'handshake' | 'ready' | 'draining' | 'closing' | 'closed';

/** An open, negotiated connection. Create with {@link NbdConnection.open}. */
export class NbdConnection implements Dispatchable {
  readonly #host: ConnectionHost;
  readonly #settings: ConnectionSettings;
  /** The TCP or Unix socket, replaced by its TLS wrapper once STARTTLS succeeds. */
  #socket: Socket;
  readonly #scratch = Buffer.allocUnsafe(SCRATCH_SIZE);
  readonly #requests = new Map<number, NbdRequest>();
  #phase: Phase = 'handshake';
  #negotiated: NegotiatedExport | undefined;
  #mode: ReplyMode = 'simple';
  #parser: ReplyParser | undefined;
  #nextCookie = 0;
  #corked = false;
  #discSent = false;
  #sweep: NodeJS.Timeout | undefined;
  readonly #closed: Promise<void>;
  #markClosed!: () => void;
  readonly #handshake = new HandshakeReader();
  readonly #placement = new ReadPlacement();
  /** The request whose reply is being parsed, to blame for a protocol violation. */
  #blame: NbdRequest | undefined;

  private constructor(settings: ConnectionSettings, host: ConnectionHost) {
    this.#settings = settings;
    this.#host = host;
    const a = settings.address;
    // A socket that TLS will wrap reads the ordinary way: TLS takes its bytes from there.
    const onread = settings.tls === undefined ? { buffer: this.#nextBuffer, callback: this.#onRead } : undefined;
    this.#socket =
      a.transport === 'tcp' ? connect({ host: a.host, port: a.port, noDelay: true, onread }) : connect({ path: a.path, onread });
    this.#closed = new Promise((resolve) => (this.#markClosed = resolve));
    if (onread === undefined) this.#socket.on('data', this.#onChunk);
    this.#watch(this.#socket);
  }

  /** Ends the connection when `socket` fails, ends or closes. */
  #watch(socket: Socket): void {
    socket.on('error', (err) => this.#socketEnded(err));
    // The server ending its side is the end of the connection, whether or not it also closes.
    socket.on('end', () => this.#socketEnded(undefined));
    socket.on('close', () => {
      this.#markClosed();
      this.#socketEnded(undefined);
    });
  }

  readonly #onChunk = (chunk: Buffer): void => {
    this.#onRead(chunk.length, chunk);
  };

  /** STARTTLS was acknowledged: the rest of the handshake, and everything after, goes over TLS. */
  async #startTls(tls: NbdClientTlsOptions): Promise<void> {
    const raw = this.#socket;
    raw.removeListener('data', this.#onChunk);
    // Bytes after the ACK came in plain text: nothing may be believed that did not come over TLS
    // (someone in the middle could append forged option replies to the ACK).
    if (this.#handshake.buffered > 0) {
      throw new BlockError('EIO', `nbd: ${this.#handshake.buffered} unencrypted bytes followed the STARTTLS acknowledgement`, { details: { op: 'connect' } });
    }
    let secure;
    try {
      secure = await startClientTls(tlsConnectOptions(tls, this.#settings.address, raw));
    } catch (err) {
      // A timeout or abort ends the handshake by destroying the socket: report that, not the
      // broken TLS handshake it causes.
      throw this.#handshake.failure ?? err;
    }
    if (this.#phase !== 'handshake') {
      secure.destroy();
      return;
    }
    this.#socket = secure;
    secure.on('data', this.#onChunk);
    this.#watch(secure);
  }

  /** Connects and negotiates. Rejects with a BlockError (EIO for transport and protocol trouble). */
  static async open(settings: ConnectionSettings, host: ConnectionHost): Promise<NbdConnection> {
    const c = new NbdConnection(settings, host);
    const { signal, connectTimeout } = settings;
    const timer =
      connectTimeout > 0
        ? setTimeout(() => c.#abortHandshake(new BlockError('ETIMEDOUT', `nbd: no connection within ${connectTimeout} ms`)), connectTimeout)
        : undefined;
    const onAbort = (): void => c.#abortHandshake(new BlockError(abortCode(signal), 'nbd: connect aborted', { cause: signal?.reason }));
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      if (signal?.aborted) onAbort();
      const tls = settings.tls;
      const channel: HandshakeChannel = {
        send: (bytes) => c.#socket.write(bytes),
        next: () => c.#handshake.next(),
        expectExportNameReply: (noZeroes) => c.#handshake.expectExportNameReply(noZeroes),
        ...(tls === undefined ? {} : { startTls: () => c.#startTls(tls) }),
      };
      const negotiated = await negotiate(channel, settings.exportName, settings.negotiation);
      c.#enterTransmission(negotiated);
      return c;
    } catch (err) {
      const error = toBlockError(err, { op: 'connect' });
      c.#phase = 'closed';
      c.#socket.destroy();
      throw error;
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    }
  }

  /** What negotiation agreed. */
  get negotiated(): NegotiatedExport {
    return this.#negotiated!;
  }

  /** Takes new requests. */
  get usable(): boolean {
    return this.#phase === 'ready';
  }

  /** Requests sent and not yet answered. */
  get outstanding(): number {
    return this.#requests.size;
  }

  /** Sends a request; its outcome arrives through the request's callbacks or the host. */
  send(req: NbdRequest): void {
    let cookie = this.#nextCookie;
    while (this.#requests.has(cookie)) cookie = (cookie + 1) >>> 0;
    this.#nextCookie = (cookie + 1) >>> 0;
    req.cookie = cookie;
    if (req.sends++ === 0 && this.#settings.requestTimeout > 0) req.firstSentAt = performance.now();
    if (req.command === Cmd.READ && this.#mode !== 'simple') req.coverage ??= new ReadCoverage(req.offset, req.length);
    this.#requests.set(cookie, req);
    const extended = this.#mode === 'extended';
    const header = Buffer.allocUnsafe(extended ? Limits.EXTENDED_REQUEST_SIZE : Limits.COMPACT_REQUEST_SIZE);
    const flags = extended && req.data !== undefined ? req.flags | CmdFlag.PAYLOAD_LEN : req.flags;
    writeRequestHeader(header, 0, extended, req.command, flags, 0, cookie, req.offset, req.length);
    this.#write(header);
    if (req.data !== undefined) this.#write(req.data);
  }

  /**
   * Ends the connection politely: NBD_CMD_DISC, then close. Requests still unanswered (the client
   * drains first, so normally none) fail with ESHUTDOWN.
   */
  async disconnect(): Promise<void> {
    if (this.#phase === 'closed') return this.#closed;
    if (this.#phase === 'ready' || this.#phase === 'draining') {
      this.#phase = 'closing';
      this.#sendDisc();
      if (!this.#socket.writableEnded) this.#socket.end();
    }
    this.#phase = 'closing';
    this.#stopSweep();
    for (const req of this.#requests.values()) req.reject(new BlockError('ESHUTDOWN', `${req.driver}: ${req.op} abandoned: connection closed`, { details: req.details }));
    this.#requests.clear();
    const guard = setTimeout(() => this.#socket.destroy(), 2000);
    await this.#closed;
    clearTimeout(guard);
    this.#phase = 'closed';
  }

  /**
   * Ends the connection at once, without NBD_CMD_DISC (the server stopped answering): requests
   * still unanswered fail with `error(req)`.
   */
  abort(error: (req: NbdRequest) => BlockError): Promise<void> {
    if (this.#phase === 'handshake') return this.#closed;
    this.#phase = 'closed';
    this.#stopSweep();
    this.#placement.reset();
    const left = [...this.#requests.values()];
    this.#requests.clear();
    this.#socket.destroy();
    for (const req of left) req.reject(error(req));
    return this.#closed;
  }

  // ---- handshake -----------------------------------------------------------------------------

  #abortHandshake(error: BlockError): void {
    if (this.#phase !== 'handshake') return;
    this.#handshake.fail(error);
    this.#socket.destroy();
  }

  #enterTransmission(negotiated: NegotiatedExport): void {
    this.#negotiated = negotiated;
    this.#mode = negotiated.replyMode;
    this.#parser = new ReplyParser(
      {
        simpleReplyLength: (hi, lo) => this.#simpleReplyLength(hi, lo),
        onData: (reply, at, data) => this.#onData(reply, at, data),
        onReply: (reply) => this.#onReply(reply),
        // A chunk that breaks the rules fails the request it answers (not replayed with the rest).
        onChunkHeader: (hi, lo) => (this.#blame = hi === 0 ? this.#requests.get(lo) : undefined),
      },
      { mode: negotiated.replyMode, maxPayload: this.#settings.maxPayload },
    );
    this.#phase = 'ready';
    const timeout = this.#settings.requestTimeout;
    if (timeout > 0) {
      this.#sweep = setInterval(() => this.#checkTimeouts(timeout), Math.max(5, Math.min(1000, timeout / 4)));
      this.#sweep.unref();
    }
    const rest = this.#handshake.takeRemainder();
    if (rest.length > 0) this.#push(rest);
  }

  // ---- socket --------------------------------------------------------------------------------

  /** Chooses where the next socket read lands (see the module comment). */
  readonly #nextBuffer = (): Uint8Array => this.#placement.nextBuffer(this.#scratch);

  readonly #onRead = (n: number, buf: Uint8Array): boolean => {
    if (n <= 0) return true;
    if (this.#phase === 'handshake') {
      this.#handshake.push(buf.subarray(0, n));
      return true;
    }
    if (this.#phase === 'closed') return true;
    this.#placement.consumed();
    this.#push(buf === this.#scratch ? this.#scratch.subarray(0, n) : Buffer.from(buf.buffer, buf.byteOffset, n));
    return true;
  };

  #push(chunk: Buffer): void {
    try {
      this.#parser!.push(chunk);
    } catch (err) {
      this.#violation(err);
    }
  }

  #write(bytes: Uint8Array): void {
    if (!this.#corked) {
      this.#corked = true;
      this.#socket.cork();
      process.nextTick(this.#uncork);
    }
    this.#socket.write(bytes);
  }

  readonly #uncork = (): void => {
    this.#corked = false;
    this.#socket.uncork();
  };

  #sendDisc(): void {
    if (this.#discSent) return;
    this.#discSent = true;
    const extended = this.#mode === 'extended';
    const header = Buffer.allocUnsafe(extended ? Limits.EXTENDED_REQUEST_SIZE : Limits.COMPACT_REQUEST_SIZE);
    writeRequestHeader(header, 0, extended, Cmd.DISC, 0, 0, 0, 0, 0);
    this.#socket.write(header);
  }

  #socketEnded(err: Error | undefined): void {
    if (this.#phase === 'handshake') {
      // Under TLS 1.3 the server checks the client's certificate after the client's side of the
      // handshake is done: its refusal arrives here, as a TLS alert, during option haggling.
      if (isTlsAlert(err)) {
        this.#handshake.fail(new BlockError('EPERM', `nbd: TLS refused by the server: ${err?.message ?? ''}`, { cause: err, details: { op: 'connect' } }));
        return;
      }
      const how = err === undefined ? 'closed' : `failed: ${err.message}`;
      this.#handshake.fail(new BlockError('EIO', `nbd: connection ${how} during negotiation`, { cause: err, details: { op: 'connect' } }));
      return;
    }
    if (this.#phase === 'closing' || this.#phase === 'closed') return;
    const why =
      err !== undefined ? err.message : this.#phase === 'draining' ? 'server is shutting down (ESHUTDOWN)' : 'server closed the connection';
    this.#drop(new BlockError('EIO', `nbd: connection lost: ${why}`, { cause: err }));
  }

  /** Tears the connection down and gives its unanswered requests back to the host. */
  #drop(error: BlockError): void {
    if (this.#phase === 'closed' || this.#phase === 'closing' || this.#phase === 'handshake') return;
    this.#phase = 'closed';
    this.#stopSweep();
    this.#placement.reset();
    this.#socket.destroy();
    const unanswered = [...this.#requests.values()].filter((r) => !r.settled).sort((a, b) => a.seq - b.seq);
    this.#requests.clear();
    for (const req of unanswered) req.reset();
    this.#host.connectionLost(this, error, unanswered);
  }

  #stopSweep(): void {
    if (this.#sweep !== undefined) clearInterval(this.#sweep);
    this.#sweep = undefined;
  }

  /**
   * Fails every request past its deadline (counted from its first send, so replays cannot stretch
   * it), then drops the connection as broken; the others are replayed elsewhere.
   */
  #checkTimeouts(timeout: number): void {
    const now = performance.now();
    let expired = false;
    for (const req of this.#requests.values()) {
      if (!req.expired(timeout, now)) continue;
      expired = true;
      this.#requests.delete(req.cookie);
      req.reject(req.timedOut(timeout));
    }
    if (expired) this.#drop(new BlockError('ETIMEDOUT', `nbd: connection considered broken: a request timed out after ${timeout} ms`));
  }

  // ---- replies -------------------------------------------------------------------------------

  #request(cookieHi: number, cookieLo: number): NbdRequest {
    const req = cookieHi === 0 ? this.#requests.get(cookieLo) : undefined;
    if (req === undefined) throw new NbdProtocolError('unknown-cookie', `reply for cookie ${cookieHi}:${cookieLo}, which is not in flight`);
    return req;
  }

  #simpleReplyLength(cookieHi: number, cookieLo: number): number {
    const req = this.#request(cookieHi, cookieLo);
    this.#blame = req;
    if (req.command !== Cmd.READ) return 0;
    if (this.#mode !== 'simple') throw fault('a simple reply to READ after structured replies were agreed');
    return req.length;
  }

  #onData(reply: SimpleReply | DataChunk, at: number, data: Buffer): void {
    this.#blame = this.#placement.place(reply, at, data, this.#lookup);
  }

  readonly #lookup = (reply: SimpleReply | DataChunk): NbdRequest => {
    const req = this.#request(reply.cookieHi, reply.cookieLo);
    this.#blame = req;
    return req;
  };

  #onReply(reply: NbdReply): void {
    this.#placement.reset();
    const req = this.#request(reply.cookieHi, reply.cookieLo);
    this.#blame = req;
    if (reply.kind === 'simple') {
      this.#requests.delete(req.cookie);
      if (reply.error === 0) {
        if (req.command === Cmd.BLOCK_STATUS) throw fault('a simple success reply to BLOCK_STATUS');
        req.resolve();
      } else {
        if (req.command === Cmd.READ && this.#mode !== 'simple') throw fault('a simple reply to READ after structured replies were agreed');
        if (reply.error === Err.ESHUTDOWN) this.#refusedByShutdown(req);
        else req.reject(req.errorFrom(reply.error, ''));
      }
    } else {
      const n = this.#negotiated!;
      const why = req.applyChunk(reply, n.metaContextId, n.size, n.blockSizes?.minimum ?? 1);
      if (why !== undefined) throw fault(why);
      if (reply.done) {
        this.#requests.delete(req.cookie);
        if (req.shutdown) this.#refusedByShutdown(req);
        else {
          const incomplete = req.finish();
          if (incomplete !== undefined) throw fault(incomplete);
        }
      }
    }
    this.#blame = undefined;
    if (this.#phase === 'draining' && this.#requests.size === 0) this.#finishDraining();
  }

  /** ESHUTDOWN: the spec asks the client to disconnect softly; the request was not done. */
  #refusedByShutdown(req: NbdRequest): void {
    if (this.#phase === 'ready') this.#phase = 'draining';
    req.reset();
    this.#host.requestRefusedByShutdown(this, req);
  }

  /** Nothing left in flight after ESHUTDOWN: disconnect softly. The 'close' that follows reports
   * the loss to the host, with nothing to replay. */
  #finishDraining(): void {
    this.#sendDisc();
    this.#socket.end();
  }

  #violation(err: unknown): void {
    const req = this.#blame;
    this.#blame = undefined;
    const message = err instanceof Error ? err.message : String(err);
    if (req !== undefined) {
      if (this.#requests.get(req.cookie) === req) this.#requests.delete(req.cookie);
      req.reject(
        new BlockError('EIO', `${req.driver}: protocol violation in the reply to ${req.label}: ${message}`, {
          cause: err,
          details: req.details,
        }),
      );
    }
    this.#drop(new BlockError('EIO', `nbd: protocol violation by the server: ${message}`, { cause: err }));
  }
}

function fault(message: string): NbdProtocolError {
  return new NbdProtocolError('invalid-message', message);
}

/** An error that OpenSSL raised for the TLS session (an alert from the peer, a failed check). */
function isTlsAlert(err: Error | undefined): boolean {
  const code = (err as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' && code.startsWith('ERR_SSL_');
}
