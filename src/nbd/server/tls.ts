/**
 * TLS for the NBD server: STARTTLS upgrades a plain socket in the middle of option haggling, so the
 * server wraps the existing socket (`new tls.TLSSocket(socket, { isServer: true })`) after sending
 * the ACK. Both x509 certificates and pre-shared keys (the `username:hexkey` files qemu's
 * tls-creds-psk and nbdkit's --tls-psk read) are supported.
 */
import { readFile } from 'node:fs/promises';
import type { Socket } from 'node:net';
import * as tls from 'node:tls';
import { asBuffer } from '../../buffers/as-buffer.js';
import { BlockError } from '../../errors.js';
import { pskCipherList, toPem, toPemList } from '../tls-common.js';

/** Pre-shared keys by identity (user name). */
export type NbdPskKeys = ReadonlyMap<string, Uint8Array>;

/** TLS settings of an {@link NbdServer}. Give x509 material, PSK keys, or both. */
export interface NbdServerTlsOptions {
  /**
   * FORCEDTLS (the default): every option but STARTTLS and ABORT is refused with
   * `NBD_REP_ERR_TLS_REQD` until TLS is up. With `false` clients may upgrade but need not.
   */
  readonly required?: boolean;
  /** Server private key (PEM). */
  readonly key?: string | Uint8Array;
  /** Server certificate chain (PEM). */
  readonly cert?: string | Uint8Array;
  /** CA certificates used to verify client certificates (PEM). */
  readonly ca?: string | Uint8Array | readonly (string | Uint8Array)[];
  /** Require a client certificate signed by `ca` (qemu's `verify-peer=on`; `ca` is then required). Default false. */
  readonly verifyClient?: boolean;
  /** Pre-shared keys by identity; see {@link parseNbdPskFile}. */
  readonly psk?: NbdPskKeys;
  /** How long a TLS handshake may take before the connection is dropped (default 10 s). */
  readonly handshakeTimeoutMs?: number;
  /** Extra `tls.createServer` options (cipher lists, protocol versions…); applied last. */
  readonly serverOptions?: tls.TlsOptions;
}

/** Parses a PSK keys file: one `identity:hexkey` per line, as qemu and nbdkit read them. */
export function parseNbdPskFile(text: string): Map<string, Uint8Array> {
  const keys = new Map<string, Uint8Array>();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const colon = line.indexOf(':');
    const identity = line.slice(0, colon);
    const hex = line.slice(colon + 1);
    if (colon <= 0 || hex.length === 0 || hex.length % 2 !== 0 || !/^[0-9a-fA-F]+$/.test(hex)) {
      throw new BlockError('EINVAL', `bad PSK line (want identity:hexkey): ${JSON.stringify(line.slice(0, 40))}`);
    }
    // A repeated identity: the first line counts, as in GnuTLS (qemu, nbdkit) reading the same file.
    if (!keys.has(identity)) keys.set(identity, Buffer.from(hex, 'hex'));
  }
  return keys;
}

/** Reads and parses a PSK keys file. */
export async function loadNbdPskFile(path: string): Promise<Map<string, Uint8Array>> {
  return parseNbdPskFile(await readFile(path, 'utf8'));
}

/** Checks that TLS options can serve at least one kind of credential. */
export function checkTlsOptions(options: NbdServerTlsOptions): void {
  const x509 = options.key !== undefined && options.cert !== undefined;
  const psk = options.psk !== undefined && options.psk.size > 0;
  if (!x509 && !psk) {
    throw new BlockError('EINVAL', 'tls needs a key and certificate, or PSK keys');
  }
  if ((options.key === undefined) !== (options.cert === undefined)) {
    throw new BlockError('EINVAL', 'tls key and cert must be given together');
  }
  // Without a CA Node would verify client certificates against its default store (the public
  // CAs): any publicly issued client certificate would get in. qemu requires a CA for this too.
  if (options.verifyClient === true && options.ca === undefined && options.serverOptions?.ca === undefined) {
    throw new BlockError('EINVAL', 'tls verifyClient needs the CA that signs client certificates (ca)');
  }
}

/**
 * Options of the (never listening) `tls.Server` that performs each STARTTLS upgrade. A server
 * rather than a bare `TLSSocket` because only `tls.Server` enforces `rejectUnauthorized` on client
 * certificates and reports handshake failures and timeouts as events.
 */
export function tlsServerOptions(options: NbdServerTlsOptions): tls.TlsOptions {
  const x509 = options.key !== undefined && options.cert !== undefined;
  const psk = options.psk;
  const result: tls.TlsOptions = {
    minVersion: 'TLSv1.2',
    requestCert: x509 && options.verifyClient === true,
    rejectUnauthorized: x509 && options.verifyClient === true,
    handshakeTimeout: options.handshakeTimeoutMs ?? 10_000,
  };
  if (x509) {
    result.key = toPem(options.key);
    result.cert = toPem(options.cert);
    if (options.ca !== undefined) {
      result.ca = toPemList(options.ca);
    }
  }
  if (psk !== undefined && psk.size > 0) {
    result.ciphers = pskCipherList();
    result.pskCallback = (_socket: tls.TLSSocket, identity: string) => {
      const key = psk.get(identity);
      return key === undefined ? null : asBuffer(key);
    };
  }
  return { ...result, ...options.serverOptions };
}

/**
 * Upgrades a plain socket whose STARTTLS ACK has been flushed, and waits for the handshake (client
 * certificate checked when required). Rejects on a failed or slow handshake; the caller destroys
 * the socket then.
 */
export function upgradeToTls(socket: Socket, serverOptions: tls.TlsOptions): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const server = tls.createServer(serverOptions);
    server.once('secureConnection', (secure: tls.TLSSocket) => {
      server.removeAllListeners('tlsClientError');
      resolve(secure);
    });
    server.once('tlsClientError', (err: Error, secure: tls.TLSSocket) => {
      server.removeAllListeners('secureConnection');
      secure.destroy();
      reject(new BlockError('EPERM', `TLS handshake failed: ${err.message}`, { cause: err }));
    });
    // The documented way to hand an accepted socket to a TLS server that does not listen itself.
    server.emit('connection', socket);
  });
}
