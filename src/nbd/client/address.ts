/**
 * Where an NBD client connects: a parsed `nbd://` / `nbd+unix://` URI or an options object.
 *
 * The URI grammar is the one NBD's doc/uri.md defines and qemu and libnbd accept: the export name
 * is the percent-decoded path after its first `/`, TCP defaults to port 10809, and a Unix socket is
 * given by the `socket` query parameter with an empty authority. The TLS schemes (`nbds`,
 * `nbds+unix`) mark the address as needing TLS; vsock schemes are recognised so they can be refused
 * with a clear error rather than a parse failure.
 */
import { BlockError } from '../../errors.js';

/** The IANA-assigned NBD port. */
export const NBD_DEFAULT_PORT = 10809;

/** A TCP endpoint and the export to open on it. */
export interface NbdTcpAddress {
  readonly transport: 'tcp';
  readonly host: string;
  readonly port: number;
  readonly exportName: string;
  /** The URI's scheme asked for TLS (`nbds://`). */
  readonly tls?: boolean;
}

/** A Unix-domain socket and the export to open on it. */
export interface NbdUnixAddress {
  readonly transport: 'unix';
  readonly path: string;
  readonly exportName: string;
  /** The URI's scheme asked for TLS (`nbds+unix://`). */
  readonly tls?: boolean;
}

/** A resolved connection target. */
export type NbdAddress = NbdTcpAddress | NbdUnixAddress;

/**
 * The object form of a target: exactly one of `host` (TCP, with optional `port`) or `path`
 * (a Unix socket). `exportName` defaults to the empty (default) export.
 */
export interface NbdAddressOptions {
  readonly host?: string;
  readonly port?: number;
  readonly path?: string;
  readonly exportName?: string;
}

/** Longest string NBD allows in a negotiation message (export names included). */
const MAX_NBD_STRING = 4096;

function invalid(message: string, details: Record<string, unknown> = {}): BlockError {
  return new BlockError('EINVAL', `nbd: ${message}`, { details: { op: 'connect', ...details } });
}

/** A UTF-16 surrogate without its pair: no UTF-8 encoding exists (TextEncoder would send U+FFFD, another name). */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** An export name the protocol can carry: no NUL, valid UTF-8, at most 4096 bytes; EINVAL otherwise. */
export function checkExportName(name: string): string {
  if (name.includes('\0')) throw invalid('export name must not contain NUL');
  if (LONE_SURROGATE.test(name)) throw invalid('export name has a lone UTF-16 surrogate, which UTF-8 cannot encode');
  if (Buffer.byteLength(name, 'utf8') > MAX_NBD_STRING) throw invalid(`export name is longer than ${MAX_NBD_STRING} bytes`);
  return name;
}

function checkPort(port: number): number {
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw invalid(`port must be an integer from 1 to 65535, got ${port}`);
  return port;
}

function decode(part: string, what: string): string {
  try {
    return decodeURIComponent(part);
  } catch (cause) {
    throw new BlockError('EINVAL', `nbd: ${what} is not valid percent-encoding`, { cause, details: { op: 'connect' } });
  }
}

/**
 * Parses an NBD URI. Supported: `nbd://host[:port][/export]` and
 * `nbd+unix:///[export]?socket=/path`, and their TLS forms `nbds://` and `nbds+unix://` (the
 * address then has `tls: true`). `nbd+vsock` and `nbds+vsock` fail with ENOTSUP;
 * anything malformed fails with EINVAL. Unknown query parameters are ignored, as libnbd does.
 */
export function parseNbdUri(uri: string): NbdAddress {
  if (typeof uri !== 'string') throw new TypeError('uri must be a string');
  // Split by hand rather than with WHATWG URL: URL would resolve `.`/`..` segments and so
  // rewrite export names such as "a/../b", which NBD passes to the server verbatim.
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)([^?#]*)(?:\?([^#]*))?(#.*)?$/.exec(uri);
  const scheme = (m?.[1] ?? /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(uri)?.[1] ?? '').toLowerCase();
  if (scheme === 'nbd+vsock' || scheme === 'nbds+vsock') {
    throw new BlockError('ENOTSUP', `nbd: ${scheme}:// is not supported (no vsock transport)`, {
      details: { op: 'connect', uri },
    });
  }
  const secure = scheme === 'nbds' || scheme === 'nbds+unix';
  const unix = scheme === 'nbd+unix' || scheme === 'nbds+unix';
  if (scheme !== 'nbd' && !unix && !secure) throw invalid(`not an nbd://, nbds://, nbd+unix:// or nbds+unix:// URI: ${JSON.stringify(uri)}`, { uri });
  if (m === null) throw invalid(`malformed URI ${JSON.stringify(uri)}`, { uri });
  // A fragment is ignored, as libnbd does. So is user information (libnbd takes it as the TLS
  // user name; here a PSK identity comes with the key, in the `tls` option).
  const [, , userAndAuthority, path, query] = m;
  const authority = userAndAuthority.slice(userAndAuthority.lastIndexOf('@') + 1);
  const params = parseQuery(query ?? '');
  // The first '/' separates authority from export name and is not part of the name.
  const exportName = checkExportName(decode(path.startsWith('/') ? path.slice(1) : path, 'export name'));
  const tls = secure ? { tls: true } : {};
  if (unix) {
    if (authority !== '') throw invalid(`${scheme}:// must have an empty authority (${scheme}:///export?socket=PATH)`, { uri });
    const sockets = params.get('socket') ?? [];
    if (sockets.length !== 1 || sockets[0] === '') throw invalid(`${scheme}:// needs exactly one non-empty socket= parameter`, { uri });
    return { transport: 'unix', path: sockets[0], exportName, ...tls };
  }
  if (params.has('socket')) throw invalid('socket= is only valid with nbd+unix:// or nbds+unix://', { uri });
  const { host, port } = parseAuthority(authority, uri);
  return { transport: 'tcp', host, port, exportName, ...tls };
}

function parseAuthority(authority: string, uri: string): { host: string; port: number } {
  let host: string;
  let rest: string;
  if (authority.startsWith('[')) {
    const close = authority.indexOf(']');
    if (close < 0) throw invalid('unterminated IPv6 literal', { uri });
    // A zone id is written %25 in a URI (RFC 6874): fe80::1%25eth0 is fe80::1%eth0.
    host = authority.slice(1, close).replace(/%25/g, '%');
    rest = authority.slice(close + 1);
    if (!/^[0-9A-Fa-f:.]+(%.+)?$/.test(host)) throw invalid(`bad IPv6 literal [${host}]`, { uri });
  } else {
    const colon = authority.indexOf(':');
    // An IPv6 address needs brackets: without them its colons cannot be told from the port's.
    if (colon >= 0 && authority.indexOf(':', colon + 1) >= 0) throw invalid(`an IPv6 address needs brackets: nbd://[${authority}]/`, { uri });
    host = decode(colon < 0 ? authority : authority.slice(0, colon), 'host');
    rest = colon < 0 ? '' : authority.slice(colon);
  }
  if (rest !== '' && !rest.startsWith(':')) throw invalid(`unexpected ${JSON.stringify(rest)} after the host`, { uri });
  const portText = rest.slice(1);
  // Leading zeros are allowed (libnbd reads 010809 as 10809); the range is checked below.
  if (rest !== '' && !/^[0-9]+$/.test(portText)) throw invalid(`bad port ${JSON.stringify(portText)}`, { uri });
  const port = portText === '' ? NBD_DEFAULT_PORT : checkPort(Number(portText));
  return { host: host === '' ? 'localhost' : host, port };
}

function parseQuery(query: string): Map<string, string[]> {
  const params = new Map<string, string[]>();
  if (query === '') return params;
  // `;` separates parameters too, as in libnbd (and old HTML forms).
  for (const pair of query.split(/[&;]/)) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    const key = decode(eq < 0 ? pair : pair.slice(0, eq), 'query parameter');
    const value = eq < 0 ? '' : decode(pair.slice(eq + 1), 'query parameter');
    params.set(key, [...(params.get(key) ?? []), value]);
  }
  return params;
}

/** Validates the object form of a target. */
export function addressFromOptions(options: NbdAddressOptions): NbdAddress {
  if (typeof options !== 'object' || options === null) throw new TypeError('address must be a URI string or an object');
  const exportName = checkExportName(options.exportName ?? '');
  const hasHost = options.host !== undefined;
  const hasPath = options.path !== undefined;
  if (hasHost === hasPath) throw invalid('give exactly one of host (TCP) or path (Unix socket)');
  if (hasPath) {
    if (typeof options.path !== 'string' || options.path === '') throw invalid('path must be a non-empty string');
    if (options.port !== undefined) throw invalid('port is meaningless with a Unix socket path');
    return { transport: 'unix', path: options.path, exportName };
  }
  if (typeof options.host !== 'string' || options.host === '') throw invalid('host must be a non-empty string');
  return { transport: 'tcp', host: options.host, port: checkPort(options.port ?? NBD_DEFAULT_PORT), exportName };
}

/** Accepts either form. */
export function resolveNbdAddress(target: string | NbdAddressOptions): NbdAddress {
  return typeof target === 'string' ? parseNbdUri(target) : addressFromOptions(target);
}

/** Formats an address as the canonical URI (inverse of {@link parseNbdUri}). */
export function formatNbdUri(address: NbdAddress): string {
  // Slashes stay readable (`socket=/run/nbd.sock`, as qemu and libnbd print them).
  const encode = (text: string): string => encodeURIComponent(text).replace(/%2F/g, '/');
  const name = encode(address.exportName);
  const s = address.tls === true ? 's' : '';
  if (address.transport === 'unix') {
    return `nbd${s}+unix:///${name}?socket=${encode(address.path)}`;
  }
  const host = address.host.includes(':') ? `[${address.host.replace(/%/g, '%25')}]` : encodeURIComponent(address.host);
  const port = address.port === NBD_DEFAULT_PORT ? '' : `:${address.port}`;
  return `nbd${s}://${host}${port}/${name}`;
}
