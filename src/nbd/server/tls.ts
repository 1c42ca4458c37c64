/**
 * TLS for the NBD server: STARTTLS upgrades a plain socket in the middle of option haggling, so the
 * server wraps the existing socket (`new tls.TLSSocket(socket, { isServer: true })`) after sending
 * the ACK. Both x509 certificates and pre-shared keys (the `username:hexkey` files qemu's
 * tls-creds-psk and nbdkit's --tls-psk read) are supported.
 */
import { readFile } from 'node:fs/promises';
import type { Socket } from 'node:net';
import * as tls from 'node:tls';
import { BlockError } from '../../errors.js';

/** Pre-shared keys by identity (user name). */
export type PskKeys = ReadonlyMap<string, Uint8Array>;

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
  /** Require a client certificate signed by `ca` (qemu's `verify-peer=on`). Default false. */
  readonly verifyClient?: boolean;
  /** Pre-shared keys by identity; see {@link parsePskFile}. */
  readonly psk?: PskKeys;
  /** How long a TLS handshake may take before the connection is dropped (default 10 s). */
  readonly handshakeTimeoutMs?: number;
  /** Extra options for `tls.TLSSocket` (cipher lists, protocol versions…); applied last. */
  readonly socketOptions?: tls.TLSSocketOptions;
}

/** Parses a PSK keys file: one `identity:hexkey` per line, as qemu and nbdkit read them. */
export function parsePskFile(text: string): Map<string, Uint8Array> {
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
    keys.set(identity, Buffer.from(hex, 'hex'));
  }
  return keys;
}

/** Reads and parses a PSK keys file. */
export async function loadPskFile(path: string): Promise<Map<string, Uint8Array>> {
  return parsePskFile(await readFile(path, 'utf8'));
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
}

// PSK suites are left out of OpenSSL's default list; add them (with forward secrecy first) when
// PSK keys are configured, after the default certificate suites.
const PSK_CIPHERS = 'ECDHE-PSK-AES256-CBC-SHA384:ECDHE-PSK-AES128-CBC-SHA256:DHE-PSK-AES256-GCM-SHA384:DHE-PSK-AES128-GCM-SHA256:PSK-AES256-GCM-SHA384:PSK-AES128-GCM-SHA256';

/**
 * `tls.TLSSocket` reads `pskCallback` in server mode too (as `tls.createServer` passes it down),
 * though its option type only lists it for servers.
 */
type ServerSocketOptions = tls.TLSSocketOptions & Pick<tls.TlsOptions, 'pskCallback' | 'pskIdentityHint'>;

/** Builds the `tls.TLSSocket` options for a server-side upgrade. */
export function tlsSocketOptions(options: NbdServerTlsOptions): tls.TLSSocketOptions {
  const x509 = options.key !== undefined && options.cert !== undefined;
  const psk = options.psk;
  const context: tls.SecureContextOptions = {
    minVersion: 'TLSv1.2',
  };
  if (x509) {
    context.key = toPem(options.key);
    context.cert = toPem(options.cert);
    if (options.ca !== undefined) {
      context.ca = Array.isArray(options.ca) ? (options.ca as (string | Uint8Array)[]).map(toPem) : toPem(options.ca as string | Uint8Array);
    }
  }
  if (psk !== undefined && psk.size > 0) {
    context.ciphers = `${tls.DEFAULT_CIPHERS}:${PSK_CIPHERS}`;
  }
  const result: ServerSocketOptions = {
    isServer: true,
    secureContext: tls.createSecureContext(context),
    requestCert: x509 && options.verifyClient === true,
    rejectUnauthorized: x509 && options.verifyClient === true,
  };
  if (psk !== undefined && psk.size > 0) {
    result.pskCallback = (_socket: tls.TLSSocket, identity: string) => {
      const key = psk.get(identity);
      return key === undefined ? null : Buffer.from(key.buffer, key.byteOffset, key.byteLength);
    };
  }
  return { ...result, ...options.socketOptions };
}

function toPem(value: string | Uint8Array | undefined): string | Buffer {
  if (value === undefined) return '';
  return typeof value === 'string' ? value : Buffer.from(value.buffer, value.byteOffset, value.byteLength);
}

/**
 * Wraps a plain socket whose STARTTLS ACK has been flushed and waits for the handshake. Rejects
 * (and destroys both sockets) on a failed or slow handshake.
 */
export function upgradeToTls(socket: Socket, socketOptions: tls.TLSSocketOptions, timeoutMs: number): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const secure = new tls.TLSSocket(socket, socketOptions);
    const timer = setTimeout(() => fail(new BlockError('ETIMEDOUT', `TLS handshake took longer than ${timeoutMs} ms`)), timeoutMs);
    const fail = (err: unknown): void => {
      clearTimeout(timer);
      secure.removeListener('secure', done);
      secure.destroy();
      socket.destroy();
      reject(err);
    };
    const done = (): void => {
      clearTimeout(timer);
      secure.removeListener('error', fail);
      secure.removeListener('close', closed);
      resolve(secure);
    };
    const closed = (): void => fail(new BlockError('EIO', 'connection closed during the TLS handshake'));
    secure.once('secure', done);
    secure.once('error', fail);
    secure.once('close', closed);
  });
}
