/**
 * What the NBD server's and client's TLS settings have in common: PEM material as Node takes it,
 * and the cipher list for TLS with pre-shared keys. Node's default
 * list ends in `!PSK`, which in OpenSSL's syntax deletes PSK suites for good — appending them after
 * it does nothing — so the exclusion is dropped first. TLS 1.3 suites are not governed by this list
 * and work with PSK as they are; the TLS 1.2 ones below serve older peers (forward-secret first).
 */
import * as tls from 'node:tls';
import { asBuffer } from '../buffers/as-buffer.js';

const PSK_SUITES = [
  'ECDHE-PSK-AES256-CBC-SHA384',
  'ECDHE-PSK-AES128-CBC-SHA256',
  'DHE-PSK-AES256-GCM-SHA384',
  'DHE-PSK-AES128-GCM-SHA256',
  'PSK-AES256-GCM-SHA384',
  'PSK-AES128-GCM-SHA256',
];

/** PEM text or bytes as `node:tls` takes them (bytes as a Buffer over the same memory). */
export function toPem(value: string | Uint8Array | undefined): string | Buffer {
  if (value === undefined) return '';
  return typeof value === 'string' ? value : asBuffer(value);
}

/** One PEM value or several, as `node:tls` takes a `ca`. */
export function toPemList(value: string | Uint8Array | readonly (string | Uint8Array)[]): string | Buffer | (string | Buffer)[] {
  return Array.isArray(value) ? (value as (string | Uint8Array)[]).map((v) => toPem(v)) : toPem(value as string | Uint8Array);
}

/** Node's default suites with PSK ones allowed and added. */
export function pskCipherList(): string {
  const base = tls.DEFAULT_CIPHERS.split(':').filter((c) => c !== '!PSK');
  return [...PSK_SUITES, ...base].join(':');
}
