/**
 * NbdClient: a BlockDriver whose storage is an export on an NBD server.
 *
 * The base class validates requests against what negotiation learned — size, capabilities from
 * the transmission flags, limits from the server's block sizes — and cuts reads and writes at the
 * server's maximum payload. The client cuts TRIM and WRITE_ZEROES itself when compact headers
 * cannot express their length, or at the maximum block size once the server refused a longer one
 * (and CACHE at the maximum payload, like a read), pipelines everything, and leaves connection
 * trouble to its {@link ConnectionPool}.
 */
import { BlockDriver, type BlockDriverEvents } from '../../driver.js';
import { allPieces } from '../../all-pieces.js';
import { isBlockError } from '../../errors.js';
import {
  DEFAULT_LIMITS,
  type BlockCapabilities,
  type BlockExtent,
  type BlockLimits,
  type DiscardOptions,
  type IoOptions,
  type WriteOptions,
  type WriteZeroesOptions,
} from '../../types.js';
import { Cmd, CmdFlag, Limits, TransmissionFlag } from '../protocol/index.js';
import { formatNbdUri, resolveNbdAddress, type NbdAddress, type NbdAddressOptions } from './address.js';
import type { NegotiatedExport } from './negotiate.js';
import { resolveClientOptions, type NbdClientOptions, type ResolvedClientOptions } from './options.js';
import { ConnectionPool, type PoolEvents } from './pool.js';
import { NbdRequest } from './request.js';
import { MAX_COMPACT_LENGTH, largestAlignedPiece, splitRange } from './split.js';

/** Events of an {@link NbdClient}, on top of the base `close`. */
export interface NbdClientEvents extends BlockDriverEvents, PoolEvents {}

/** Typed `on`/`once`/`off`/`emit` for {@link NbdClientEvents}. */
export interface NbdClient {
  on<K extends keyof NbdClientEvents>(event: K, listener: (...args: NbdClientEvents[K]) => void): this;
  once<K extends keyof NbdClientEvents>(event: K, listener: (...args: NbdClientEvents[K]) => void): this;
  off<K extends keyof NbdClientEvents>(event: K, listener: (...args: NbdClientEvents[K]) => void): this;
  emit<K extends keyof NbdClientEvents>(event: K, ...args: NbdClientEvents[K]): boolean;
}

/** What the client agreed with the server, for diagnostics. */
export interface NbdClientInfo {
  readonly uri: string;
  readonly exportName: string;
  readonly size: number;
  readonly transmissionFlags: number;
  /** `simple`, `structured` or `extended` (64-bit) replies. */
  readonly replyMode: 'simple' | 'structured' | 'extended';
  /** `base:allocation` was agreed. */
  readonly blockStatus: boolean;
  /** The server's block sizes, when it sent them. */
  readonly blockSizes: { readonly minimum: number; readonly preferred: number; readonly maximum: number } | undefined;
  /** NBD_OPT_GO (true) or the NBD_OPT_EXPORT_NAME fallback (false). */
  readonly usedGo: boolean;
  /** Connections open when healthy. */
  readonly connections: number;
  /** Every connection runs over TLS (STARTTLS). */
  readonly tls: boolean;
}

/**
 * A block device on an NBD server. Open with {@link NbdClient.connect}; see docs/nbd-client.md
 * for options, errors and events.
 */
export class NbdClient extends BlockDriver {
  readonly #pool: ConnectionPool;
  readonly #negotiated: NegotiatedExport;
  readonly #caps: BlockCapabilities;
  readonly #limits: BlockLimits;
  readonly #uri: string;
  readonly #tls: boolean;
  readonly #exportName: string;
  /** Longest TRIM / WRITE_ZEROES / BLOCK_STATUS / CACHE the wire can carry in one request. */
  readonly #maxEffect: number;
  /** ms close() waits for requests in flight before abandoning them; 0 for ever. */
  readonly #closeTimeout: number;
  /** The server refused a TRIM or WRITE_ZEROES longer than its maximum block size. */
  #cutEffects = false;
  #seq = 0;

  private constructor(options: ResolvedClientOptions, address: NbdAddress, uri: string, pool: ConnectionPool, negotiated: NegotiatedExport) {
    super({ name: options.name ?? 'nbd' });
    this.#pool = pool;
    this.#negotiated = negotiated;
    this.#uri = uri;
    this.#tls = address.tls === true;
    this.#exportName = address.exportName;
    this.#closeTimeout = options.closeTimeout;
    this.#caps = capabilitiesOf(negotiated);
    this.#limits = limitsOf(negotiated);
    this.#maxEffect =
      negotiated.replyMode === 'extended'
        ? Number.MAX_SAFE_INTEGER
        : largestAlignedPiece(MAX_COMPACT_LENGTH, Math.max(this.#limits.minBlockSize, this.#limits.preferredBlockSize));
    pool.emitter = (event, ...args) => void (this.emit as (e: string, ...a: unknown[]) => boolean)(event, ...args);
  }

  /**
   * Connects to `target` (an `nbd://host:port/export` or `nbd+unix:///export?socket=PATH` URI, or
   * `{ host, port }` / `{ path }` with `exportName`; `nbds://` and `nbds+unix://` need TLS) and
   * negotiates. Rejects with a BlockError: EINVAL for a bad URI or unknown export, ENOTSUP when the
   * server requires TLS and none was asked for, EPERM when refused by policy or when TLS fails
   * (STARTTLS refused, handshake or certificate check failed), EIO for transport and protocol
   * failures, ETIMEDOUT after `connectTimeout`, ECANCELED on abort.
   */
  static async connect(target: string | NbdAddressOptions, options: NbdClientOptions = {}): Promise<NbdClient> {
    const resolved = resolveClientOptions(options);
    const parsed = resolveNbdAddress(target);
    const secure = resolved.tls !== undefined || parsed.tls === true;
    const address: NbdAddress = { ...parsed, exportName: resolved.exportName ?? parsed.exportName, ...(secure ? { tls: true } : {}) };
    // Everything that can refuse the address does so before a socket opens.
    const uri = formatNbdUri(address);
    const pool = new ConnectionPool(
      {
        address,
        exportName: address.exportName,
        negotiation: resolved.negotiation,
        connectTimeout: resolved.connectTimeout,
        requestTimeout: resolved.requestTimeout,
        maxPayload: Limits.DEFAULT_MAX_PAYLOAD,
        tls: resolved.tls ?? (secure ? {} : undefined),
        signal: options.signal,
      },
      resolved,
    );
    const negotiated = await pool.start();
    return new NbdClient(resolved, address, uri, pool, negotiated);
  }

  get size(): number {
    return this.#negotiated.size;
  }
  get capabilities(): BlockCapabilities {
    return this.#caps;
  }
  override get limits(): BlockLimits {
    return this.#limits;
  }

  /** What negotiation agreed. */
  get info(): NbdClientInfo {
    const n = this.#negotiated;
    return {
      uri: this.#uri,
      exportName: this.#exportName,
      size: n.size,
      transmissionFlags: n.transmissionFlags,
      replyMode: n.replyMode,
      blockStatus: n.metaContextId !== undefined,
      blockSizes: n.blockSizes,
      usedGo: n.usedGo,
      connections: this.#pool.connections,
      tls: this.#tls,
    };
  }

  /** Connections usable right now (0 while reconnecting). */
  get liveConnections(): number {
    return this.#pool.liveConnections;
  }

  /**
   * Stops accepting requests, lets those in flight finish (requests held during a disconnect fail
   * with ESHUTDOWN instead), sends NBD_CMD_DISC on every connection and closes them. Idempotent.
   * A server that stops answering cannot hold it up beyond `closeTimeout`: then the sockets are
   * destroyed and the requests still in flight fail with ESHUTDOWN.
   */
  override close(): Promise<void> {
    if (this.state !== 'open') return super.close();
    // The base class waits for requests in flight before it calls _close(), so the deadline has
    // to be armed here, when closing begins.
    const closing = super.close();
    this.#pool.beginClose();
    if (this.#closeTimeout > 0) {
      const deadline = setTimeout(() => void this.#pool.abortAll(), this.#closeTimeout);
      void closing.then(
        () => clearTimeout(deadline),
        () => clearTimeout(deadline),
      );
    }
    return closing;
  }

  // ---- operations ----------------------------------------------------------------------------

  protected _read(offset: number, target: Uint8Array, options: IoOptions): Promise<void> {
    return this.#send(Cmd.READ, 0, offset, target.length, undefined, target, options.signal) as Promise<void>;
  }

  protected override _write(offset: number, data: Uint8Array, options: WriteOptions): Promise<void> {
    return this.#send(Cmd.WRITE, options.fua === true ? CmdFlag.FUA : 0, offset, data.length, data, undefined, options.signal) as Promise<void>;
  }

  /**
   * One FLUSH on one connection. With several connections the server advertised CAN_MULTI_CONN,
   * which obliges it to make a flush on any connection cover the completed writes of all of them.
   */
  protected override _flush(options: IoOptions): Promise<void> {
    return this.#send(Cmd.FLUSH, 0, 0, 0, undefined, undefined, options.signal) as Promise<void>;
  }

  protected override _discard(offset: number, length: number, options: DiscardOptions): Promise<void> {
    return this.#effect(Cmd.TRIM, options.fua === true ? CmdFlag.FUA : 0, offset, length, options.signal);
  }

  protected override _writeZeroes(offset: number, length: number, options: WriteZeroesOptions): Promise<void> {
    const flags =
      (options.fua === true ? CmdFlag.FUA : 0) | (options.mayUnmap === true ? 0 : CmdFlag.NO_HOLE) | (options.fastZero === true ? CmdFlag.FAST_ZERO : 0);
    return this.#effect(Cmd.WRITE_ZEROES, flags, offset, length, options.signal);
  }

  /** One request, cut to what the wire carries; the answer may stop short and callers loop. */
  protected override _blockStatus(offset: number, length: number, options: IoOptions): Promise<BlockExtent[]> {
    return this.#send(Cmd.BLOCK_STATUS, 0, offset, Math.min(length, this.#maxEffect), undefined, undefined, options.signal) as Promise<BlockExtent[]>;
  }

  protected override _cache(offset: number, length: number, options: IoOptions): Promise<void> {
    // Servers may hold CACHE to the maximum payload, like a read.
    return this.#pieces(Cmd.CACHE, 0, offset, length, this.#limits.maxTransfer, options.signal);
  }

  protected override async _close(): Promise<void> {
    await this.#pool.disconnectAll();
  }

  // ---- plumbing ------------------------------------------------------------------------------

  #send(
    command: number,
    flags: number,
    offset: number,
    length: number,
    data: Uint8Array | undefined,
    target: Uint8Array | undefined,
    signal: AbortSignal | undefined,
  ): Promise<BlockExtent[] | undefined> {
    return new Promise((resolve, reject) => {
      const req = new NbdRequest(this.#seq++, command, flags, offset, length, data, target, { resolve, reject });
      req.signal = signal;
      req.driver = this.name;
      this.#pool.dispatch(req);
    });
  }

  /**
   * TRIM and WRITE_ZEROES carry no payload, so the spec lets them exceed the maximum block size,
   * and lets a server refuse such a request with EOVERFLOW or EINVAL. Refused once, they are sent
   * in pieces of the maximum block size from then on (both are safe to repeat).
   */
  async #effect(command: number, flags: number, offset: number, length: number, signal: AbortSignal | undefined): Promise<void> {
    // maxTransfer is the server's maximum block size (what BlockLimits calls maxBlockSize bounds every request).
    const max = this.#limits.maxTransfer;
    if (length > max && this.#cutEffects) return this.#pieces(command, flags, offset, length, max, signal);
    try {
      await this.#pieces(command, flags, offset, length, this.#maxEffect, signal);
    } catch (err) {
      if (length <= max || !isBlockError(err) || (err.code !== 'EINVAL' && err.code !== 'EOVERFLOW')) throw err;
      this.#cutEffects = true;
      await this.#pieces(command, flags, offset, length, max, signal);
    }
  }

  async #pieces(command: number, flags: number, offset: number, length: number, maxPiece: number, signal: AbortSignal | undefined): Promise<void> {
    if (length <= maxPiece) {
      await this.#send(command, flags, offset, length, undefined, undefined, signal);
      return;
    }
    await allPieces(splitRange(offset, length, maxPiece).map((p) => this.#send(command, flags, p.offset, p.length, undefined, undefined, signal)));
  }
}

function capabilitiesOf(n: NegotiatedExport): BlockCapabilities {
  // Without HAS_FLAGS the other bits mean nothing (very old servers): assume no features.
  const f = (n.transmissionFlags & TransmissionFlag.HAS_FLAGS) !== 0 ? n.transmissionFlags : 0;
  const has = (bit: number): boolean => (f & bit) !== 0;
  return Object.freeze({
    canWrite: !has(TransmissionFlag.READ_ONLY),
    canFlush: has(TransmissionFlag.SEND_FLUSH),
    canFua: has(TransmissionFlag.SEND_FUA),
    canDiscard: has(TransmissionFlag.SEND_TRIM),
    canZero: has(TransmissionFlag.SEND_WRITE_ZEROES),
    canFastZero: has(TransmissionFlag.SEND_WRITE_ZEROES) && has(TransmissionFlag.SEND_FAST_ZERO),
    canBlockStatus: n.metaContextId !== undefined,
    canMultiConn: has(TransmissionFlag.CAN_MULTI_CONN),
    canCache: has(TransmissionFlag.SEND_CACHE),
  });
}

/**
 * Limits from NBD_INFO_BLOCK_SIZE. Without it: byte granularity, 4 KiB preferred and the 32 MiB
 * every server must accept. Reads and writes are cut at the server's maximum, capped at 32 MiB
 * (larger payloads buy nothing and cost memory on both sides).
 */
function limitsOf(n: NegotiatedExport): BlockLimits {
  const b = n.blockSizes;
  const minBlockSize = b?.minimum ?? 1;
  const preferredBlockSize = Math.max(b?.preferred ?? 4096, minBlockSize);
  const serverMax = Math.min(b?.maximum ?? Limits.DEFAULT_MAX_PAYLOAD, Limits.DEFAULT_MAX_PAYLOAD);
  const maxTransfer = Math.max(minBlockSize, Math.floor(serverMax / minBlockSize) * minBlockSize);
  return Object.freeze({
    minBlockSize,
    preferredBlockSize,
    maxBlockSize: Math.floor(DEFAULT_LIMITS.maxBlockSize / minBlockSize) * minBlockSize,
    maxTransfer,
  });
}
