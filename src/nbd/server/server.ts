/**
 * NbdServer: serves BlockDrivers over the NBD protocol (fixed newstyle) on TCP, Unix sockets,
 * socket-activated descriptors or any connected socket handed to {@link NbdServer.handleSocket}.
 *
 * The server owns listeners and connections, never the drivers: removing an export or closing the
 * server leaves drivers open for their owner to close.
 */
import { EventEmitter } from 'node:events';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import type { BlockDriver } from '../../driver.js';
import { BlockError } from '../../errors.js';
import { BufferPool } from '../../buffers/pool.js';
import { NbdConnection, type ConnectionHost } from './connection.js';
import { adoptSocket, SHARED_READ_BUFFER_SIZE } from './socket-reader.js';
import { connectionChannel, disconnectChannel, errorChannel, negotiatedChannel } from './diagnostics.js';
import {
  ExportRegistry,
  type NbdExportOptions,
  type NbdExportRemoveMode,
  type NbdExportStats,
} from './export-registry.js';
import { resolveOptions, type NbdConnectionInfo, type NbdServerEvents, type NbdServerOptions, type ResolvedServerOptions } from './options.js';
import { checkTlsOptions, tlsServerOptions, type NbdServerTlsOptions } from './tls.js';
import type { TlsOptions } from 'node:tls';

/** Where `listen()` listens: TCP (`port`, `host`), a Unix socket `path`, or an inherited `fd`. */
export type NbdListenOptions =
  | { readonly port?: number; readonly host?: string; readonly backlog?: number }
  | { readonly path: string; readonly backlog?: number }
  | { readonly fd: number };

/** A summary of one export, from {@link NbdServer.exports}. */
export interface NbdExportInfo {
  readonly name: string;
  readonly description: string;
  readonly readOnly: boolean;
  readonly size: number;
  /** Clients in transmission phase on it. */
  readonly clients: number;
  readonly stats: Readonly<NbdExportStats>;
}

/** Options of {@link NbdServer.close}. */
export interface NbdServerCloseOptions {
  /** Abort the drain: remaining connections are dropped at once. */
  readonly signal?: AbortSignal;
}

/** Typed event methods of {@link NbdServer} (see {@link NbdServerEvents}). */
export interface NbdServer {
  on<K extends keyof NbdServerEvents>(event: K, listener: (...args: NbdServerEvents[K]) => void): this;
  once<K extends keyof NbdServerEvents>(event: K, listener: (...args: NbdServerEvents[K]) => void): this;
  off<K extends keyof NbdServerEvents>(event: K, listener: (...args: NbdServerEvents[K]) => void): this;
  emit<K extends keyof NbdServerEvents>(event: K, ...args: NbdServerEvents[K]): boolean;
}

/**
 * An NBD server. Add exports, `listen()`, and `close()` when done:
 * ```ts
 * const server = new NbdServer();
 * server.addExport('', new MemoryDriver({ size: 1 << 30 }));
 * const { port } = await server.listen({ port: 10809 });
 * ```
 */
export class NbdServer extends EventEmitter implements AsyncDisposable {
  readonly #registry = new ExportRegistry();
  readonly #options: ResolvedServerOptions;
  readonly #tls: NbdServerTlsOptions | undefined;
  readonly #tlsServerOptions: TlsOptions | undefined;
  readonly #listeners: Server[] = [];
  readonly #connections = new Set<NbdConnection>();
  /** Every plain connection reads into this one buffer (see socket-reader.ts). */
  readonly #readBuffer = Buffer.allocUnsafeSlow(SHARED_READ_BUFFER_SIZE);
  readonly #host: ConnectionHost;
  #nextId = 1;
  #closing: Promise<void> | undefined;

  constructor(options: NbdServerOptions = {}) {
    super();
    this.#options = resolveOptions(options);
    if (options.tls !== undefined) {
      checkTlsOptions(options.tls);
      this.#tls = options.tls;
      this.#tlsServerOptions = tlsServerOptions(options.tls);
    }
    this.#host = {
      registry: this.#registry,
      options: this.#options,
      // Idle large buffers kept for reuse across all connections.
      pool: new BufferPool(2 * this.#options.maxPayload),
      tls:
        this.#tls === undefined || this.#tlsServerOptions === undefined
          ? undefined
          : { required: this.#tls.required !== false, serverOptions: this.#tlsServerOptions },
      isClosing: () => this.#closing !== undefined,
      negotiated: (c) => this.#negotiated(c),
      failed: (c, err) => this.#failed(c, err),
      closed: (c, reason) => this.#closed(c, reason),
    };
  }

  // ---- exports ------------------------------------------------------------------------------

  /** Serves `driver` as export `name` ('' is the default export). The server does not own it. */
  addExport(name: string, driver: BlockDriver, options: NbdExportOptions = {}): void {
    this.#registry.add(name, driver, options);
  }

  /**
   * Stops serving an export. `safe` (default) throws EPERM while a client uses it; `hard` drops
   * those clients. Clients still negotiating can no longer select it. The driver stays open.
   */
  removeExport(name: string, options: { readonly mode?: NbdExportRemoveMode } = {}): void {
    this.#registry.remove(name, options.mode ?? 'safe');
  }

  /** True when an export of that name is served. */
  hasExport(name: string): boolean {
    return this.#registry.has(name);
  }

  /** Every export with its client count and statistics (a snapshot). */
  exports(): NbdExportInfo[] {
    return this.#registry.list().map((e) => ({
      name: e.name,
      description: e.description,
      readOnly: e.readOnly,
      size: e.driver.size,
      clients: e.users.size,
      stats: { ...e.stats },
    }));
  }

  /** A snapshot of one export's counters; EINVAL if there is no such export. */
  exportStats(name: string): NbdExportStats {
    const e = this.#registry.get(name);
    if (e === undefined) throw new BlockError('EINVAL', `no export named ${JSON.stringify(name)}`);
    return { ...e.stats };
  }

  // ---- listening ----------------------------------------------------------------------------

  /**
   * Starts accepting clients. TCP binds to the server's `host` (loopback by default) unless
   * `host` is given; port 0 picks a free port. Can be called several times (e.g. TCP and Unix).
   * Resolves with the bound address.
   */
  listen(options: NbdListenOptions = {}): Promise<AddressInfo | string> {
    if (this.#closing !== undefined) return Promise.reject(new BlockError('ESHUTDOWN', 'NbdServer is closed'));
    // pauseOnConnect: an accepted socket must not read before `#accept` chose how it reads.
    const listener = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (socket) => this.#accept(socket));
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => {
        listener.close();
        reject(err);
      };
      listener.once('error', onError);
      const done = (): void => {
        listener.off('error', onError);
        // close() began while this listener was binding: it did not see it, so it must not stay.
        if (this.#closing !== undefined) {
          listener.close();
          reject(new BlockError('ESHUTDOWN', 'NbdServer closed while listen() was in progress'));
          return;
        }
        // A listener error after startup (EMFILE on accept…) must not crash the process.
        listener.on('error', (err) => this.#emitError(new BlockError('EIO', `listener: ${err.message}`, { cause: err }), undefined));
        this.#listeners.push(listener);
        const addr = listener.address();
        resolve(addr ?? '');
      };
      if ('fd' in options) listener.listen({ fd: options.fd }, done);
      else if ('path' in options) listener.listen({ path: options.path, backlog: options.backlog }, done);
      else listener.listen({ port: options.port ?? 10809, host: options.host ?? this.#options.host, backlog: options.backlog }, done);
    });
  }

  /** Address of the first listener (undefined before `listen()`). */
  address(): AddressInfo | string | undefined {
    return this.#listeners[0]?.address() ?? undefined;
  }

  /**
   * Serves an already-connected socket (a socket pair, an accepted socket from elsewhere, a
   * socket-activated connection). The server takes ownership of it.
   */
  handleSocket(socket: Socket): void {
    this.#serve(socket, undefined);
    socket.resume();
  }

  /**
   * A socket from one of our listeners. Without TLS (whose upgrade needs an ordinary socket) it
   * is moved onto the shared read buffer when Node allows it.
   */
  #accept(raw: Socket): void {
    if (this.#closing === undefined && this.#tlsServerOptions === undefined && this.#options.fastSocketReads) {
      let connection: NbdConnection | undefined;
      const adopted = adoptSocket(raw, this.#readBuffer, (chunk) => connection?.feed(chunk));
      if (adopted !== undefined) {
        connection = this.#serve(adopted, this.#readBuffer);
        adopted.resume();
        return;
      }
    }
    this.handleSocket(raw);
  }

  #serve(socket: Socket, readBuffer: Buffer | undefined): NbdConnection | undefined {
    if (this.#closing !== undefined) {
      socket.destroy();
      return undefined;
    }
    if (this.#connections.size >= this.#options.maxConnections) {
      socket.destroy();
      this.#emitError(new BlockError('EPERM', `connection refused: ${this.#connections.size} connections is the limit`), undefined);
      return undefined;
    }
    const connection = new NbdConnection(socket, this.#nextId++, this.#host, readBuffer);
    this.#connections.add(connection);
    const info = connection.info;
    if (connectionChannel.hasSubscribers) connectionChannel.publish({ server: this, connectionId: info.id, remoteAddress: info.remoteAddress });
    this.emit('connection', info);
    connection.start();
    return connection;
  }

  /** Connections currently open (negotiating or in transmission). */
  get connectionCount(): number {
    return this.#connections.size;
  }

  // ---- shutdown -----------------------------------------------------------------------------

  /**
   * Stops listening, lets every connection finish the requests it has in flight (new ones are
   * not read; clients still negotiating get ERR_SHUTDOWN), then closes them. Aborting `signal`
   * drops whatever is left — also the signal of a later call, while an earlier close is under
   * way. Idempotent: every call resolves when the one close has finished.
   */
  close(options: NbdServerCloseOptions = {}): Promise<void> {
    if (this.#closing === undefined) {
      this.#closing = this.#close(options.signal);
      return this.#closing;
    }
    // A later caller's signal bounds the close already under way (a SIGTERM handler began it).
    const signal = options.signal;
    if (signal !== undefined) {
      const drop = (): void => void this.destroy();
      if (signal.aborted) drop();
      else {
        signal.addEventListener('abort', drop, { once: true });
        void this.#closing.finally(() => signal.removeEventListener('abort', drop));
      }
    }
    return this.#closing;
  }

  /** Closes at once: listeners stop and every connection is dropped without draining. */
  destroy(): Promise<void> {
    const controller = new AbortController();
    controller.abort();
    if (this.#closing === undefined) return this.close({ signal: controller.signal });
    for (const c of this.#connections) c.drop(new BlockError('ESHUTDOWN', 'server destroyed'));
    return this.#closing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async #close(signal: AbortSignal | undefined): Promise<void> {
    const listenersClosed = this.#listeners.map((l) => new Promise<void>((resolve) => l.close(() => resolve())));
    const dropAll = (): void => {
      for (const c of this.#connections) c.drop(new BlockError('ESHUTDOWN', 'server close aborted'));
    };
    if (signal?.aborted === true) dropAll();
    else signal?.addEventListener('abort', dropAll, { once: true });
    try {
      await Promise.all([...this.#connections].map((c) => c.shutdown()));
      await Promise.all(listenersClosed);
    } finally {
      signal?.removeEventListener('abort', dropAll);
    }
    // Every connection is gone: the idle buffers kept for them (up to 2 × maxPayload) go too.
    this.#host.pool.close();
    this.emit('close');
  }

  // ---- connection callbacks -----------------------------------------------------------------

  #negotiated(c: NbdConnection): void {
    const info = c.info;
    if (negotiatedChannel.hasSubscribers) {
      negotiatedChannel.publish({ server: this, connectionId: info.id, export: info.export, ...c.negotiation() });
    }
    this.emit('negotiated', info);
  }

  #failed(c: NbdConnection, err: BlockError): void {
    this.#emitError(err, c.info);
  }

  #emitError(err: BlockError, info: NbdConnectionInfo | undefined): void {
    if (errorChannel.hasSubscribers) errorChannel.publish({ server: this, connectionId: info?.id, error: err });
    // An 'error' event with no listener would throw and take the whole server down.
    if (this.listenerCount('error') > 0 && info !== undefined) this.emit('error', err, info);
  }

  #closed(c: NbdConnection, reason: BlockError | undefined): void {
    if (!this.#connections.delete(c)) return;
    const info = c.info;
    if (disconnectChannel.hasSubscribers) disconnectChannel.publish({ server: this, connectionId: info.id, export: info.export, reason });
    this.emit('disconnect', info, reason);
  }
}
