/**
 * TLS for the NBD client: NBD upgrades a plain connection in the middle of option haggling
 * (NBD_OPT_STARTTLS), so the client wraps its connected socket with `tls.connect({ socket })` once
 * the server has acknowledged, and negotiates everything else over TLS. A client given TLS
 * settings never falls back to plain text (as qemu with tls-creds): a server that refuses
 * STARTTLS is refused in turn.
 */
import type { Socket } from 'node:net';
import { isIP } from 'node:net';
import * as tls from 'node:tls';
import { asBuffer } from '../../buffers/as-buffer.js';
import { BlockError } from '../../errors.js';
import { pskCipherList, toPem, toPemList } from '../tls-common.js';
import type { NbdAddress } from './address.js';

/** A pre-shared key, as one `identity:hexkey` line of the files qemu and nbdkit read. */
export interface NbdClientPsk {
  readonly identity: string;
  readonly key: Uint8Array;
}

/** TLS settings of an {@link NbdClient}: x509 verification of the server, a client certificate, or a PSK. */
export interface NbdClientTlsOptions {
  /** CA certificates that sign the server's certificate (PEM). Default: Node's bundled CAs. */
  readonly ca?: string | Uint8Array | readonly (string | Uint8Array)[];
  /** Client certificate chain (PEM), for servers that verify clients (qemu `verify-peer=on`). */
  readonly cert?: string | Uint8Array;
  /** Client private key (PEM); with `cert`. */
  readonly key?: string | Uint8Array;
  /**
   * Name the server's certificate must carry (and the SNI sent). Default: the host of a TCP
   * address (an IP address is checked against the certificate's IP entries), `localhost` for a
   * Unix socket — like qemu's `tls-hostname`.
   */
  readonly servername?: string;
  /** Use a pre-shared key instead of certificates (as qemu's tls-creds-psk). */
  readonly psk?: NbdClientPsk;
  /** Verify the server's certificate (default true). Turning it off gives encryption without authentication. */
  readonly rejectUnauthorized?: boolean;
  /** Extra `tls.connect` options (cipher lists, protocol versions…); applied last. */
  readonly connectOptions?: tls.ConnectionOptions;
}

/** Checks TLS options early (EINVAL), before any connection is made. */
export function checkClientTlsOptions(options: NbdClientTlsOptions): void {
  if (typeof options !== 'object' || options === null) throw new TypeError('tls must be an object');
  if ((options.cert === undefined) !== (options.key === undefined)) {
    throw new BlockError('EINVAL', 'nbd: tls cert and key must be given together');
  }
  const psk = options.psk;
  if (psk !== undefined) {
    if (typeof psk.identity !== 'string' || psk.identity === '' || !(psk.key instanceof Uint8Array) || psk.key.length === 0) {
      throw new BlockError('EINVAL', 'nbd: tls psk needs a non-empty identity and key');
    }
  }
}

/** The `tls.connect` options for one upgrade of `socket` to `address`. */
export function tlsConnectOptions(options: NbdClientTlsOptions, address: NbdAddress, socket: Socket): tls.ConnectionOptions {
  const host = address.transport === 'tcp' ? address.host : 'localhost';
  const name = options.servername ?? host;
  const result: tls.ConnectionOptions = {
    socket,
    minVersion: 'TLSv1.2',
    rejectUnauthorized: options.rejectUnauthorized !== false,
    // `host` drives the certificate check; SNI must not carry an IP address.
    host: name,
    servername: isIP(name) === 0 ? name : undefined,
  };
  if (options.ca !== undefined) {
    result.ca = toPemList(options.ca);
  }
  if (options.cert !== undefined) {
    result.cert = toPem(options.cert);
    result.key = toPem(options.key);
  }
  const psk = options.psk;
  if (psk !== undefined) {
    result.ciphers = pskCipherList();
    result.pskCallback = () => ({ identity: psk.identity, psk: asBuffer(psk.key) });
    // A PSK proves the server; there is no certificate to check.
    if (options.ca === undefined) result.checkServerIdentity = () => undefined;
  }
  return { ...result, ...options.connectOptions };
}

/**
 * Upgrades the connected socket in `options.socket`, whose STARTTLS the server acknowledged;
 * resolves once the handshake (and the server's certificate check) succeeded, rejects with EPERM
 * otherwise, the socket destroyed.
 */
export function startClientTls(options: tls.ConnectionOptions): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const secure = tls.connect(options);
    const cleanup = (): void => {
      secure.removeListener('secureConnect', done);
      secure.removeListener('error', failed);
      secure.removeListener('close', closed);
    };
    function failed(err: Error): void {
      cleanup();
      secure.destroy();
      reject(new BlockError('EPERM', `nbd: TLS handshake failed: ${err.message}`, { cause: err, details: { op: 'connect' } }));
    }
    function closed(): void {
      failed(new Error('the server closed the connection during the handshake'));
    }
    function done(): void {
      cleanup();
      resolve(secure);
    }
    secure.once('secureConnect', done);
    secure.once('error', failed);
    secure.once('close', closed);
  });
}
