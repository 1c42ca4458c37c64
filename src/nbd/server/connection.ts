/**
 * One client connection: greeting, option haggling (with an optional STARTTLS upgrade), then the
 * transmission phase, then an orderly or abrupt end. Everything that goes wrong here — a protocol
 * violation, a TLS failure, a reset — ends this connection only.
 */
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { TLSSocket, TlsOptions } from 'node:tls';
import { BlockError, isBlockError, toBlockError } from '../../errors.js';
import { HandshakeFlag, OptionParser, encodeGreeting } from '../protocol/index.js';
import type { BufferPool } from '../../buffers/pool.js';
import type { ExportEntry, ExportRegistry, ExportUser } from './export-registry.js';
import { Negotiator, type SessionParams } from './negotiation.js';
import type { NbdConnectionInfo, ResolvedServerOptions } from './options.js';
import { upgradeToTls } from './tls.js';
import { Transmission } from './transmission.js';

/** What a connection needs from its server. */
export interface ConnectionHost {
  readonly registry: ExportRegistry;
  readonly options: ResolvedServerOptions;
  /** Large buffers shared by the server's connections. */
  readonly pool: BufferPool;
  readonly tls:
    | { readonly required: boolean; readonly serverOptions: TlsOptions }
    | undefined;
  isClosing(): boolean;
  negotiated(connection: NbdConnection): void;
  failed(connection: NbdConnection, error: BlockError): void;
  closed(connection: NbdConnection, reason: BlockError | undefined): void;
}

const NEGOTIATING = 0;
const UPGRADING = 1;
const TRANSMISSION = 2;
const ENDING = 3;
const CLOSED = 4;

/**
 * Option replies queued in the socket past which no further option is answered until it drains: a
 * client pipelining options without reading replies must not grow our memory.
 */
const NEGOTIATION_BACKLOG = 1024 * 1024;
/** How long a negotiating client has, once shutdown begins, to send an option and see ERR_SHUTDOWN. */
const SHUTDOWN_GRACE_MS = 500;
/** Socket errors that only mean the client went away. */
const ORDINARY_SOCKET_ERRORS = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED', 'ERR_STREAM_PREMATURE_CLOSE']);

/** A client connection (see the module comment). */
export class NbdConnection implements ExportUser {
  readonly id: number;
  readonly #raw: Socket;
  #socket: Duplex;
  readonly #host: ConnectionHost;
  readonly #negotiator: Negotiator;
  #parser = new OptionParser();
  #transmission: Transmission | undefined;
  #entry: ExportEntry | undefined;
  #phase = NEGOTIATING;
  #tls = false;
  #timer: NodeJS.Timeout | undefined;
  /** Destroys the socket if an orderly end takes longer than `closeTimeoutMs`. */
  #deadline: NodeJS.Timeout | undefined;
  /** Option processing stopped until the socket drains (see NEGOTIATION_BACKLOG). */
  #blocked = false;
  readonly #unblock = (): void => {
    this.#blocked = false;
    if (this.#phase !== NEGOTIATING) return;
    this.#socket.resume();
    this.#processOptions();
  };
  #reason: BlockError | undefined;
  readonly #closed: Promise<void>;
  #resolveClosed!: () => void;

  /** Received bytes are views of a buffer reused by the next read (see socket-reader.ts). */
  readonly #volatile: ArrayBufferLike | undefined;

  /** Takes received bytes (the socket's 'data' events, or an `onread` callback). */
  readonly feed = (chunk: Buffer): void => {
    if (this.#phase === TRANSMISSION) this.#transmission!.push(chunk);
    // The option parser queues what it is given: a reused read buffer must be copied first.
    else if (this.#phase === NEGOTIATING) this.#negotiationData(this.#volatile === undefined ? chunk : Buffer.from(chunk));
  };
  readonly #onEnd = (): void => {
    if (this.#phase === TRANSMISSION) this.#transmission!.endOfInput();
    else this.#endGracefully();
  };
  readonly #onError = (err: Error): void => {
    const code = (err as { code?: unknown }).code;
    const e = toBlockError(err);
    this.#reason ??= e;
    if (typeof code !== 'string' || !ORDINARY_SOCKET_ERRORS.has(code)) this.#host.failed(this, e);
  };
  readonly #onClose = (): void => this.#finalize();

  /**
   * `readBuffer`: when given, `socket` reads into that shared buffer and its owner passes each
   * read to `feed` (nothing arrives as 'data' events).
   */
  constructor(socket: Socket, id: number, host: ConnectionHost, readBuffer?: Buffer) {
    this.id = id;
    this.#volatile = readBuffer?.buffer;
    this.#raw = socket;
    this.#socket = socket;
    this.#host = host;
    this.#closed = new Promise((resolve) => (this.#resolveClosed = resolve));
    this.#negotiator = new Negotiator({
      registry: host.registry,
      options: host.options,
      tls: host.tls,
      isClosing: host.isClosing,
      send: (bytes) => {
        if (this.#phase < ENDING) this.#socket.write(bytes);
      },
    });
  }

  /** What events say about this connection. */
  get info(): NbdConnectionInfo {
    return {
      id: this.id,
      remoteAddress: this.#raw.remoteAddress,
      remotePort: this.#raw.remotePort,
      export: this.#entry?.name,
      tls: this.#tls,
    };
  }

  /** Negotiated features, for diagnostics. */
  negotiation(): { structuredReplies: boolean; extendedHeaders: boolean; tls: boolean } {
    return this.#negotiator.state;
  }

  /** Sends the greeting and starts reading. */
  start(): void {
    const s = this.#raw;
    // Replies are small and latency-bound: Nagle plus delayed ACK would stall a pipelined client.
    s.setNoDelay(true);
    this.#attach(s);
    this.#timer = setTimeout(() => {
      this.#fail(new BlockError('ETIMEDOUT', `negotiation not finished within ${this.#host.options.negotiationTimeoutMs} ms`));
    }, this.#host.options.negotiationTimeoutMs);
    this.#timer.unref();
    s.write(encodeGreeting(HandshakeFlag.FIXED_NEWSTYLE | HandshakeFlag.NO_ZEROES));
  }

  /**
   * Ends the connection in order: a client still negotiating gets NBD_REP_ERR_SHUTDOWN for the
   * option it sends next (if it sends one within a short grace period) and is then disconnected;
   * one in transmission stops being read, and every request already received is run and answered
   * (those still queued after `closeTimeoutMs` fail with ESHUTDOWN). Resolves once closed; the
   * socket is destroyed `closeTimeoutMs` after our side ended at the latest.
   */
  shutdown(): Promise<void> {
    if (this.#phase === TRANSMISSION) {
      const t = this.#transmission!;
      t.shutdown();
      // Queued requests get closeTimeoutMs to start; then they are refused so the end can begin.
      clearTimeout(this.#timer);
      this.#timer = setTimeout(() => t.abandonQueued(), this.#host.options.closeTimeoutMs);
      this.#timer.unref();
    } else if (this.#phase === NEGOTIATING) this.#shutdownNegotiation();
    else if (this.#phase === UPGRADING) this.drop(new BlockError('ESHUTDOWN', 'server closed during the TLS handshake'));
    return this.#closed;
  }

  /** Disconnects at once; requests still running complete into the void. */
  drop(reason?: BlockError): void {
    if (this.#phase === CLOSED) return;
    this.#reason ??= reason;
    this.#transmission?.kill();
    this.#socket.destroy();
    if (this.#socket !== this.#raw) this.#raw.destroy();
    // A socket wrapped for TLS may already be detached from its listeners; finish here too.
    this.#finalize();
  }

  /** Resolves when the connection has closed. */
  get closed(): Promise<void> {
    return this.#closed;
  }

  // ---- negotiation --------------------------------------------------------------------------

  #negotiationData(chunk: Buffer): void {
    try {
      this.#parser.push(chunk);
    } catch (err) {
      this.#fail(err);
      return;
    }
    this.#processOptions();
  }

  #processOptions(): void {
    for (;;) {
      if (this.#phase !== NEGOTIATING || this.#blocked) return;
      if (this.#socket.writableLength > NEGOTIATION_BACKLOG) {
        this.#blocked = true;
        this.#socket.pause();
        this.#socket.once('drain', this.#unblock);
        return;
      }
      let step;
      try {
        const event = this.#parser.next();
        if (event === undefined) return;
        if (event.kind === 'clientFlags') {
          const bad = this.#negotiator.clientFlags(event.flags);
          if (bad !== undefined) return this.#fail(new BlockError('EINVAL', bad));
          continue;
        }
        step = this.#negotiator.handle(event.option);
      } catch (err) {
        return this.#fail(err);
      }
      switch (step.kind) {
        case 'continue':
          // The option was answered with ERR_SHUTDOWN: that was the client's notice; now end.
          if (this.#host.isClosing()) return this.#endGracefully();
          continue;
        case 'abort':
          return this.#endGracefully();
        case 'disconnect':
          return this.#fail(new BlockError('EINVAL', step.reason));
        case 'startTls':
          return this.#startTls();
        case 'transmission':
          try {
            return this.#enterTransmission(step.session);
          } catch (err) {
            // Called from a socket event: our own failure must end this connection, not the process.
            return this.#fail(err);
          }
      }
    }
  }

  #startTls(): void {
    const tls = this.#host.tls!;
    this.#phase = UPGRADING;
    let early: Buffer;
    try {
      early = this.#parser.takeRemainder();
    } catch (err) {
      return this.#fail(err);
    }
    // The client must wait for the ACK before its TLS hello; plaintext after STARTTLS is an attack.
    if (early.length > 0) return this.#fail(new BlockError('EINVAL', 'client sent data after STARTTLS before the ACK'));
    const raw = this.#raw;
    raw.pause();
    this.#detach(raw);
    // The raw socket may still report errors once TLS owns it; they must not go unhandled.
    raw.on('error', () => {});
    // Our listeners are off the raw socket now: a close during the handshake must still end us.
    raw.once('close', () => {
      if (this.#phase === UPGRADING) this.#fail(new BlockError('EIO', 'connection closed during the TLS handshake'));
      else if (this.#phase === ENDING) this.#finalize();
    });
    // TLS takes over the raw socket's reads, so its 'end' never reaches us. Not half-open during
    // the handshake, the TLS socket answers a client's end with ours, and the close that follows
    // fails the handshake at once instead of at its timeout.
    raw.allowHalfOpen = false;
    const upgrade = (): void => {
      upgradeToTls(raw, tls.serverOptions).then(
        (secure: TLSSocket) => {
          if (this.#phase !== UPGRADING) {
            secure.destroy();
            return;
          }
          // Half-open again, as plain connections are: a client's end must not cut off the replies it awaits.
          secure.allowHalfOpen = true;
          this.#socket = secure;
          this.#tls = true;
          this.#negotiator.tlsStarted();
          // After STARTTLS option haggling resumes without client flags.
          this.#parser = new OptionParser({ afterStartTls: true });
          this.#phase = NEGOTIATING;
          this.#attach(secure);
        },
        (err: unknown) => this.#fail(err),
      );
    };
    // An empty write completes after everything before it: the ACK is on the wire by then.
    raw.write(Buffer.alloc(0), (err) => (err ? this.#fail(err) : upgrade()));
  }

  #enterTransmission(session: SessionParams): void {
    clearTimeout(this.#timer);
    let rest: Buffer;
    try {
      rest = this.#parser.takeRemainder();
    } catch (err) {
      return this.#fail(err);
    }
    this.#entry = session.entry;
    session.entry.users.add(this);
    this.#phase = TRANSMISSION;
    this.#transmission = new Transmission(this.#socket, session, this.#host.options, this.#host.pool, this.id, this.#volatile, {
      fatal: (err) => this.#fail(err),
      finished: () => this.#endGracefully(),
    });
    const idleMs = this.#host.options.idleTimeoutMs;
    if (idleMs > 0) {
      // The socket's timer restarts on every read and write; a long request still running is not idleness.
      (this.#socket as Socket).setTimeout(idleMs);
      this.#socket.on('timeout', () => {
        if (this.#phase === TRANSMISSION && this.#transmission!.idle) {
          this.#reason ??= new BlockError('ETIMEDOUT', `client idle for ${idleMs} ms`);
          this.#endGracefully();
        }
      });
    }
    this.#host.negotiated(this);
    if (rest.length > 0) this.#transmission.push(rest);
  }

  // ---- lifecycle ----------------------------------------------------------------------------

  #attach(s: Duplex): void {
    s.on('data', this.feed);
    s.on('end', this.#onEnd);
    s.on('error', this.#onError);
    s.on('close', this.#onClose);
  }

  #detach(s: Duplex): void {
    s.off('data', this.feed);
    s.off('end', this.#onEnd);
    s.off('error', this.#onError);
    s.off('close', this.#onClose);
  }

  /** A protocol violation or failure: report it and drop the connection. */
  #fail(err: unknown): void {
    if (this.#phase >= ENDING) return;
    const e = isBlockError(err) ? err : toBlockError(err);
    this.#reason ??= e;
    this.#host.failed(this, e);
    this.drop(e);
  }

  /** Shutdown while negotiating: wait briefly for an option to refuse with ERR_SHUTDOWN. */
  #shutdownNegotiation(): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.#endGracefully(), SHUTDOWN_GRACE_MS);
    this.#timer.unref();
    // Options already received get their ERR_SHUTDOWN now.
    this.#processOptions();
  }

  /**
   * Ends our side after queued replies are flushed; the socket closes when the client closes too.
   * The deadline starts now, not once our replies are flushed: a client that stops reading would
   * otherwise hold the connection (and `close()`) forever.
   */
  #endGracefully(): void {
    if (this.#phase >= ENDING) return;
    this.#phase = ENDING;
    clearTimeout(this.#timer);
    this.#socket.end();
    // Read on (and discard) until the client's end arrives: a paused socket never sees it, so it
    // would only close at the deadline.
    this.#socket.resume();
    const ms = this.#host.options.closeTimeoutMs;
    const s = this.#socket;
    this.#deadline = setTimeout(() => {
      // Replies still unsent means the client stopped reading: worth a reason. A client that just
      // kept its side open after ours closed is an ordinary end.
      this.drop(s.writableFinished ? undefined : new BlockError('ETIMEDOUT', `replies not taken within ${ms} ms of ending the connection`));
    }, ms);
    this.#deadline.unref();
  }

  #finalize(): void {
    if (this.#phase === CLOSED) return;
    this.#phase = CLOSED;
    clearTimeout(this.#timer);
    clearTimeout(this.#deadline);
    this.#socket.off('drain', this.#unblock);
    this.#transmission?.kill();
    this.#entry?.users.delete(this);
    this.#host.closed(this, this.#reason);
    this.#resolveClosed();
  }
}
