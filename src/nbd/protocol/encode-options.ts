/**
 * What a client sends during the handshake: its client flags and its options. Each function
 * returns one freshly allocated buffer holding the complete message.
 */
import { BlockError } from '../../errors.js';
import { checkU16, checkU32, encodeString, writeU16, writeU32 } from './bytes.js';
import { Opt } from './constants.js';

const IHAVEOPT = Buffer.from('IHAVEOPT', 'latin1');

/** The client's 32-bit flags (NBD_FLAG_C_*), sent once after the server's greeting. */
export function encodeClientFlags(flags: number): Buffer {
  const out = Buffer.allocUnsafe(4);
  writeU32(out, 0, flags);
  return out;
}

/** Any option: the IHAVEOPT header followed by `data` (empty for options without data). */
export function encodeOption(code: number, data: Uint8Array = new Uint8Array(0)): Buffer {
  checkU32(code, 'option code');
  const out = Buffer.allocUnsafe(16 + data.length);
  IHAVEOPT.copy(out, 0);
  writeU32(out, 8, code);
  writeU32(out, 12, data.length);
  out.set(data, 16);
  return out;
}

/** NBD_OPT_EXPORT_NAME: the name alone is the data (empty selects the default export). */
export function encodeExportNameOption(name: string): Buffer {
  return encodeOption(Opt.EXPORT_NAME, encodeString(name, 'export name'));
}

/** NBD_OPT_INFO or NBD_OPT_GO for `name`, asking for the NBD_INFO_* types in `infoRequests`. */
export function encodeInfoOption(code: typeof Opt.INFO | typeof Opt.GO, name: string, infoRequests: readonly number[] = []): Buffer {
  if (code !== Opt.INFO && code !== Opt.GO) throw new BlockError('EINVAL', `option ${code} is not INFO or GO`);
  if (infoRequests.length > 0xffff) throw new BlockError('EINVAL', 'too many information requests');
  const nameBytes = encodeString(name, 'export name');
  const data = Buffer.allocUnsafe(4 + nameBytes.length + 2 + 2 * infoRequests.length);
  writeU32(data, 0, nameBytes.length);
  nameBytes.copy(data, 4);
  let at = 4 + nameBytes.length;
  writeU16(data, at, infoRequests.length);
  at += 2;
  for (const info of infoRequests) {
    checkU16(info, 'information request');
    writeU16(data, at, info);
    at += 2;
  }
  return encodeOption(code, data);
}

/** NBD_OPT_LIST_META_CONTEXT or NBD_OPT_SET_META_CONTEXT for `exportName` with `queries`. */
export function encodeMetaContextOption(
  code: typeof Opt.LIST_META_CONTEXT | typeof Opt.SET_META_CONTEXT,
  exportName: string,
  queries: readonly string[],
): Buffer {
  if (code !== Opt.LIST_META_CONTEXT && code !== Opt.SET_META_CONTEXT) {
    throw new BlockError('EINVAL', `option ${code} is not LIST_META_CONTEXT or SET_META_CONTEXT`);
  }
  const nameBytes = encodeString(exportName, 'export name');
  const queryBytes = queries.map((q) => encodeString(q, 'metadata context query'));
  const size = 8 + nameBytes.length + queryBytes.reduce((n, q) => n + 4 + q.length, 0);
  const data = Buffer.allocUnsafe(size);
  writeU32(data, 0, nameBytes.length);
  nameBytes.copy(data, 4);
  let at = 4 + nameBytes.length;
  writeU32(data, at, queryBytes.length);
  at += 4;
  for (const q of queryBytes) {
    writeU32(data, at, q.length);
    q.copy(data, at + 4);
    at += 4 + q.length;
  }
  return encodeOption(code, data);
}
