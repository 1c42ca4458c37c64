/**
 * Decoding of the options a client sends during option haggling into typed objects.
 *
 * A malformed payload is not an exception: it decodes to `{ kind: 'invalid' }` so the server can
 * answer NBD_REP_ERR_INVALID and keep negotiating (only NBD_OPT_EXPORT_NAME cannot be answered
 * with an error; the server must disconnect instead).
 */
import { decodeStrictString, readU16, readU32 } from './bytes.js';
import { Opt } from './constants.js';

/** NBD_OPT_EXPORT_NAME: enter transmission on `name`; cannot be refused with an error reply. */
export interface ExportNameOption {
  readonly kind: 'exportName';
  readonly code: typeof Opt.EXPORT_NAME;
  readonly name: string;
}

/** An option without data: ABORT, LIST, STARTTLS, STRUCTURED_REPLY or EXTENDED_HEADERS. */
export interface BareOption {
  readonly kind: 'abort' | 'list' | 'startTls' | 'structuredReply' | 'extendedHeaders';
  readonly code: number;
}

/** NBD_OPT_INFO or NBD_OPT_GO: describe (and for GO, enter) export `name`. */
export interface InfoOption {
  readonly kind: 'info' | 'go';
  readonly code: typeof Opt.INFO | typeof Opt.GO;
  readonly name: string;
  /** The NBD_INFO_* types requested, in the client's order (possibly empty). */
  readonly infoRequests: readonly number[];
}

/** NBD_OPT_LIST_META_CONTEXT or NBD_OPT_SET_META_CONTEXT. */
export interface MetaContextOption {
  readonly kind: 'listMetaContext' | 'setMetaContext';
  readonly code: typeof Opt.LIST_META_CONTEXT | typeof Opt.SET_META_CONTEXT;
  readonly exportName: string;
  readonly queries: readonly string[];
}

/** An option code this parser does not know; answer NBD_REP_ERR_UNSUP. Its data was consumed. */
export interface UnknownOption {
  readonly kind: 'unknown';
  readonly code: number;
  readonly length: number;
}

/** A known option whose data breaks the spec; answer NBD_REP_ERR_INVALID (EXPORT_NAME: disconnect). */
export interface InvalidOption {
  readonly kind: 'invalid';
  readonly code: number;
  readonly reason: string;
}

/** An option longer than the parser accepts; its data was skipped. Answer NBD_REP_ERR_TOO_BIG. */
export interface TooBigOption {
  readonly kind: 'tooBig';
  readonly code: number;
  readonly length: number;
}

/** One option received from a client. */
export type NbdOption =
  | ExportNameOption
  | BareOption
  | InfoOption
  | MetaContextOption
  | UnknownOption
  | InvalidOption
  | TooBigOption;

const BARE_KINDS: ReadonlyMap<number, BareOption['kind']> = new Map([
  [Opt.LIST, 'list'],
  [Opt.STARTTLS, 'startTls'],
  [Opt.STRUCTURED_REPLY, 'structuredReply'],
  [Opt.EXTENDED_HEADERS, 'extendedHeaders'],
] as const);

/** Decodes the data of option `code` (already read completely). */
export function decodeOption(code: number, data: Uint8Array): NbdOption {
  switch (code) {
    case Opt.EXPORT_NAME: {
      const name = decodeStrictString(data);
      return name === undefined ? invalid(code, 'export name is not a valid NBD string') : { kind: 'exportName', code, name };
    }
    case Opt.ABORT:
      // The spec asks servers to ignore data sent with ABORT rather than reject it.
      return { kind: 'abort', code };
    case Opt.INFO:
    case Opt.GO:
      return decodeInfo(code, data);
    case Opt.LIST_META_CONTEXT:
    case Opt.SET_META_CONTEXT:
      return decodeMetaContext(code, data);
    default: {
      const kind = BARE_KINDS.get(code);
      if (kind === undefined) return { kind: 'unknown', code, length: data.length };
      return data.length === 0 ? { kind, code } : invalid(code, 'option takes no data');
    }
  }
}

function decodeInfo(code: typeof Opt.INFO | typeof Opt.GO, data: Uint8Array): NbdOption {
  if (data.length < 6) return invalid(code, 'data shorter than 6 bytes');
  const nameLength = readU32(data, 0);
  if (nameLength > data.length - 6) return invalid(code, 'name length exceeds the option data');
  const name = decodeStrictString(data.subarray(4, 4 + nameLength));
  if (name === undefined) return invalid(code, 'export name is not a valid NBD string');
  let at = 4 + nameLength;
  const count = readU16(data, at);
  at += 2;
  if (data.length - at !== count * 2) return invalid(code, 'information request count does not match the data length');
  const infoRequests: number[] = [];
  for (let i = 0; i < count; i++, at += 2) infoRequests.push(readU16(data, at));
  return { kind: code === Opt.GO ? 'go' : 'info', code, name, infoRequests };
}

function decodeMetaContext(code: typeof Opt.LIST_META_CONTEXT | typeof Opt.SET_META_CONTEXT, data: Uint8Array): NbdOption {
  if (data.length < 8) return invalid(code, 'data shorter than 8 bytes');
  const nameLength = readU32(data, 0);
  if (nameLength > data.length - 8) return invalid(code, 'export name length exceeds the option data');
  const exportName = decodeStrictString(data.subarray(4, 4 + nameLength));
  if (exportName === undefined) return invalid(code, 'export name is not a valid NBD string');
  let at = 4 + nameLength;
  const count = readU32(data, at);
  at += 4;
  // Each query needs at least its 4-byte length; a larger count cannot fit (and must not drive a loop).
  if (count > (data.length - at) / 4) return invalid(code, 'query count exceeds the option data');
  const queries: string[] = [];
  for (let i = 0; i < count; i++) {
    if (data.length - at < 4) return invalid(code, 'query length runs past the option data');
    const length = readU32(data, at);
    at += 4;
    if (length > data.length - at) return invalid(code, 'query runs past the option data');
    const query = decodeStrictString(data.subarray(at, at + length));
    if (query === undefined) return invalid(code, 'query is not a valid NBD string');
    queries.push(query);
    at += length;
  }
  if (at !== data.length) return invalid(code, 'trailing bytes after the last query');
  return { kind: code === Opt.SET_META_CONTEXT ? 'setMetaContext' : 'listMetaContext', code, exportName, queries };
}

function invalid(code: number, reason: string): InvalidOption {
  return { kind: 'invalid', code, reason };
}
