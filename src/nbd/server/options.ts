/**
 * Options and event types of {@link NbdServer}, and their defaults.
 */
import { optionalBoolean, timerMs } from '../../option-checks.js';
import type { BlockError } from '../../errors.js';
import type { NbdServerTlsOptions } from './tls.js';

/** Options of `new NbdServer()`. */
export interface NbdServerOptions {
  /**
   * Address TCP listeners bind to when `listen()` names none. Default `127.0.0.1`: exposing a
   * disk beyond the machine must be asked for.
   */
  readonly host?: string;
  /** TLS credentials and mode; without it the server is NOTLS and answers STARTTLS with ERR_POLICY. */
  readonly tls?: NbdServerTlsOptions;
  /**
   * Largest READ or WRITE payload accepted, in bytes (64 KiB to 2 GiB; default 32 MiB, like
   * qemu-nbd). Advertised as
   * the maximum block size; bigger READs get EINVAL, and a bigger WRITE payload is read and
   * dropped before its EINVAL. TRIM, WRITE_ZEROES and BLOCK_STATUS carry no payload and are not
   * limited by it.
   */
  readonly maxPayload?: number;
  /**
   * Requests one connection may have in flight (default 64). At the limit the server stops
   * reading that socket until a reply goes out, so a client cannot queue unbounded work.
   */
  readonly maxInFlight?: number;
  /**
   * Bytes of replies one connection may have queued in the socket before the server stops reading
   * new requests from it (default 64 MiB): a client that does not read its replies stalls itself.
   * The socket's own buffer (16 KiB) is the floor: below it the server does not stop reading.
   */
  readonly maxQueuedReplyBytes?: number;
  /** Time a client has to finish option haggling, in milliseconds (default 30 s). */
  readonly negotiationTimeoutMs?: number;
  /**
   * Reply to large READs of sparse regions with `OFFSET_HOLE` chunks when structured replies are
   * on and the driver reports allocation (default true). Reads shorter than 64 KiB never are.
   */
  readonly sparseReads?: boolean;
  /** Allow `NBD_OPT_LIST` (default true). When false it is answered with ERR_POLICY. */
  readonly allowList?: boolean;
  /**
   * Once the server ends a connection (shutdown, DISC, abort), how long its unsent replies and the
   * client's own close may take before the socket is destroyed, in milliseconds (default 2000).
   * This is what bounds `close()` when a client stops reading.
   */
  readonly closeTimeoutMs?: number;
  /**
   * Connections served at once, negotiating or not (default 1024). Past it a new connection is
   * closed at once (reported on the error diagnostics channel): each connection may hold up to
   * `maxQueuedReplyBytes`, so this bounds the server's memory as a whole.
   */
  readonly maxConnections?: number;
  /**
   * Disconnect a client in transmission that has sent nothing and has nothing in flight for this
   * long, in milliseconds (default 0: never).
   */
  readonly idleTimeoutMs?: number;
  /**
   * Read plain (non-TLS) connections into one shared buffer (default true), which saves an
   * allocation per read. Node offers this only for sockets it creates itself, so the accepted
   * socket's internal handle is moved onto a new socket; set false if that ever misbehaves with
   * your Node version or another library that wraps sockets.
   */
  readonly fastSocketReads?: boolean;
}

/** Resolved options with every default applied. */
export interface ResolvedServerOptions {
  readonly host: string;
  readonly maxPayload: number;
  readonly maxInFlight: number;
  readonly maxQueuedReplyBytes: number;
  readonly negotiationTimeoutMs: number;
  readonly sparseReads: boolean;
  readonly allowList: boolean;
  readonly closeTimeoutMs: number;
  readonly maxConnections: number;
  readonly idleTimeoutMs: number;
  readonly fastSocketReads: boolean;
}

/** qemu-nbd's NBD_MAX_BUFFER_SIZE, and the size the NBD spec says no client should exceed. */
export const DEFAULT_MAX_PAYLOAD = 32 * 1024 * 1024;

export function resolveOptions(options: NbdServerOptions): ResolvedServerOptions {
  const maxPayload = options.maxPayload ?? DEFAULT_MAX_PAYLOAD;
  // A READ reply's data chunk carries 8 bytes of offset besides the data in a 32-bit length, and
  // nobody needs more than 2 GiB in one request: cap there.
  if (!Number.isSafeInteger(maxPayload) || maxPayload < 65536 || maxPayload > 2 ** 31) {
    throw new RangeError(`maxPayload must be an integer from 65536 to 2^31, got ${maxPayload}`);
  }
  const maxInFlight = options.maxInFlight ?? 64;
  if (!Number.isSafeInteger(maxInFlight) || maxInFlight < 1) throw new RangeError(`maxInFlight must be a positive integer, got ${maxInFlight}`);
  const maxQueuedReplyBytes = options.maxQueuedReplyBytes ?? 64 * 1024 * 1024;
  if (!Number.isSafeInteger(maxQueuedReplyBytes) || maxQueuedReplyBytes < 1) {
    throw new RangeError(`maxQueuedReplyBytes must be a positive integer, got ${maxQueuedReplyBytes}`);
  }
  const negotiationTimeoutMs = timerMs(options.negotiationTimeoutMs, 30_000, 1, 'negotiationTimeoutMs');
  const closeTimeoutMs = timerMs(options.closeTimeoutMs, 2000, 0, 'closeTimeoutMs');
  const maxConnections = options.maxConnections ?? 1024;
  if (!Number.isSafeInteger(maxConnections) || maxConnections < 1) throw new RangeError(`maxConnections must be a positive integer, got ${maxConnections}`);
  const idleTimeoutMs = timerMs(options.idleTimeoutMs, 0, 0, 'idleTimeoutMs', ' (none)');
  const host = options.host ?? '127.0.0.1';
  if (typeof host !== 'string') throw new TypeError(`host must be a string, got ${typeof host}`);
  return {
    closeTimeoutMs,
    maxConnections,
    idleTimeoutMs,
    fastSocketReads: optionalBoolean(options.fastSocketReads, true, 'fastSocketReads'),
    host,
    maxPayload,
    maxInFlight,
    maxQueuedReplyBytes,
    negotiationTimeoutMs,
    sparseReads: optionalBoolean(options.sparseReads, true, 'sparseReads'),
    allowList: optionalBoolean(options.allowList, true, 'allowList'),
  };
}

/** Describes one client connection in events. */
export interface NbdConnectionInfo {
  /** Unique per server, increasing. */
  readonly id: number;
  /** Peer address for TCP, `undefined` for Unix sockets and socket pairs. */
  readonly remoteAddress: string | undefined;
  readonly remotePort: number | undefined;
  /** The export chosen, once the client reached transmission. */
  readonly export: string | undefined;
  /** TLS is running on the connection. */
  readonly tls: boolean;
}

/** Events of {@link NbdServer}. */
export interface NbdServerEvents {
  /** A client connected. */
  connection: [info: NbdConnectionInfo];
  /** A client reached transmission phase on an export. */
  negotiated: [info: NbdConnectionInfo];
  /** A client went away; `reason` is set when the server dropped it or the socket failed. */
  disconnect: [info: NbdConnectionInfo, reason: BlockError | undefined];
  /**
   * A connection failed: protocol violation, socket error, TLS failure. Only that connection is
   * affected. Emitted only when someone listens, so an unobserved server never crashes on it.
   */
  error: [error: BlockError, info: NbdConnectionInfo];
  /** Every listener stopped and every connection ended after `close()`. */
  close: [];
}
