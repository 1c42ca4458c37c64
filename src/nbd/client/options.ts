/**
 * Options of {@link NbdClient} and their validation.
 */
import { optionalBoolean, timerMs } from '../../option-checks.js';
import type { BlockDriverOptions } from '../../driver.js';
import { checkExportName } from './address.js';
import { resolveBackoff, type Backoff, type BackoffOptions } from './backoff.js';
import { checkClientTlsOptions, type NbdClientTlsOptions } from './tls.js';

/** What the client asks for during negotiation; each can be turned off to talk to picky servers. */
export interface NbdNegotiationOptions {
  /** Ask for NBD_OPT_EXTENDED_HEADERS (64-bit lengths; only with structured replies); default true. */
  readonly extendedHeaders?: boolean;
  /** Ask for NBD_OPT_STRUCTURED_REPLY (sparse reads, error messages); default true. */
  readonly structuredReplies?: boolean;
  /** Ask for the `base:allocation` metadata context (block status); default true. */
  readonly blockStatus?: boolean;
}

/** Options of {@link NbdClient.connect}. */
export interface NbdClientOptions extends BlockDriverOptions, NbdNegotiationOptions {
  /**
   * Export to open; overrides the name in the URI or address object. Default: the URI's, else the
   * empty (default) export.
   */
  readonly exportName?: string;
  /**
   * Connections to open (default 1). More than one is used only when the server advertises
   * CAN_MULTI_CONN; otherwise the client stays on one, as the spec asks.
   */
  readonly connections?: number;
  /**
   * How long (ms) requests are held while the client reconnects after an unexpected disconnect
   * (default 0). Within it, requests in flight and new ones wait and are replayed in submission
   * order once a connection is back; after it, they fail with EIO. 0 fails them at once.
   */
  readonly reconnectDelay?: number;
  /**
   * Reconnect after an unexpected disconnect (default true). Attempts continue in the background,
   * with backoff, until the client closes — also after `reconnectDelay` has passed, so a client
   * whose server comes back serves requests again and emits `reconnected`.
   */
  readonly reconnect?: boolean;
  /** Schedule of reconnection attempts. */
  readonly backoff?: BackoffOptions;
  /**
   * How many times one request may be replayed after losing its connection (default 3). A request
   * whose connection is lost once more fails with EIO, so a server that breaks every connection
   * cannot keep requests pending for ever.
   */
  readonly replayLimit?: number;
  /**
   * Fail a request with ETIMEDOUT when it has no reply this long (ms; default 0, none) after it was
   * first sent; replays do not restart the clock. The connection is then dropped as broken: every
   * request on it past its deadline fails, the others are replayed.
   */
  readonly requestTimeout?: number;
  /**
   * How long (ms) close() waits for requests in flight (default 30000; 0 waits for ever). After it,
   * the sockets are destroyed and what is left fails with ESHUTDOWN.
   */
  readonly closeTimeout?: number;
  /** Give up a connection attempt (TCP connect plus negotiation) after this long (ms; default 30000). */
  readonly connectTimeout?: number;
  /**
   * Speak TLS (NBD_OPT_STARTTLS before anything else; never falls back to plain text). An
   * `nbds://` / `nbds+unix://` URI asks for it too, with Node's bundled CAs unless these say more.
   */
  readonly tls?: NbdClientTlsOptions;
  /** Cancels the initial connect. */
  readonly signal?: AbortSignal;
}

/** Options with defaults filled in. */
export interface ResolvedClientOptions {
  readonly name: string | undefined;
  readonly exportName: string | undefined;
  readonly connections: number;
  readonly reconnectDelay: number;
  readonly reconnect: boolean;
  readonly backoff: Backoff;
  readonly replayLimit: number;
  readonly requestTimeout: number;
  readonly closeTimeout: number;
  readonly connectTimeout: number;
  readonly negotiation: Required<NbdNegotiationOptions>;
  readonly tls: NbdClientTlsOptions | undefined;
}

/** Validates client options (RangeError/TypeError for programming mistakes) and fills defaults. */
export function resolveClientOptions(options: NbdClientOptions = {}): ResolvedClientOptions {
  const connections = options.connections ?? 1;
  if (!Number.isInteger(connections) || connections < 1 || connections > 64) {
    throw new RangeError(`connections must be an integer from 1 to 64, got ${connections}`);
  }
  const replayLimit = options.replayLimit ?? 3;
  if (!Number.isInteger(replayLimit) || replayLimit < 0) throw new RangeError(`replayLimit must be an integer ≥ 0, got ${replayLimit}`);
  if (options.exportName !== undefined && typeof options.exportName !== 'string') throw new TypeError('exportName must be a string');
  if (options.exportName !== undefined) checkExportName(options.exportName);
  if (options.tls !== undefined) checkClientTlsOptions(options.tls);
  // Checked before any socket opens: a bad signal found later would leave the connection behind.
  if (options.signal !== undefined && !(options.signal instanceof AbortSignal)) throw new TypeError('signal must be an AbortSignal');
  return {
    name: options.name,
    exportName: options.exportName,
    connections,
    reconnectDelay: timerMs(options.reconnectDelay, 0, 0, 'reconnectDelay'),
    reconnect: optionalBoolean(options.reconnect, true, 'reconnect'),
    backoff: resolveBackoff(options.backoff),
    replayLimit,
    requestTimeout: timerMs(options.requestTimeout, 0, 0, 'requestTimeout'),
    closeTimeout: timerMs(options.closeTimeout, 30_000, 0, 'closeTimeout'),
    connectTimeout: timerMs(options.connectTimeout, 30_000, 0, 'connectTimeout'),
    negotiation: {
      extendedHeaders: optionalBoolean(options.extendedHeaders, true, 'extendedHeaders'),
      structuredReplies: optionalBoolean(options.structuredReplies, true, 'structuredReplies'),
      blockStatus: optionalBoolean(options.blockStatus, true, 'blockStatus'),
    },
    tls: options.tls,
  };
}
