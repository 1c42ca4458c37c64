/**
 * The cipher list for TLS with pre-shared keys, shared by the NBD server and client. Node's default
 * list ends in `!PSK`, which in OpenSSL's syntax deletes PSK suites for good — appending them after
 * it does nothing — so the exclusion is dropped first. TLS 1.3 suites are not governed by this list
 * and work with PSK as they are; the TLS 1.2 ones below serve older peers (forward-secret first).
 */
import * as tls from 'node:tls';

const PSK_SUITES = [
  'ECDHE-PSK-AES256-CBC-SHA384',
  'ECDHE-PSK-AES128-CBC-SHA256',
  'DHE-PSK-AES256-GCM-SHA384',
  'DHE-PSK-AES128-GCM-SHA256',
  'PSK-AES256-GCM-SHA384',
  'PSK-AES128-GCM-SHA256',
];

/** Node's default suites with PSK ones allowed and added. */
export function pskCipherList(): string {
  const base = tls.DEFAULT_CIPHERS.split(':').filter((c) => c !== '!PSK');
  return [...PSK_SUITES, ...base].join(':');
}
