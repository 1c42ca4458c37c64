/**
 * The payload form of NBD_CMD_BLOCK_STATUS (extended headers with NBD_FLAG_BLOCK_STATUS_PAYLOAD):
 * instead of an effect length in the header, the client sends a payload holding the effect length
 * and the metadata context ids it wants answers for.
 */
import { readU32, readU64, writeU32, writeU64 } from './bytes.js';

/** A decoded block-status filter payload. */
export interface BlockStatusFilter {
  /** How much of the export the client asks about. Exact below 2^53. */
  readonly effectLength: number;
  /** Context ids, from NBD_OPT_SET_META_CONTEXT, the reply is limited to. */
  readonly contextIds: readonly number[];
}

/** Encodes a filter payload: u64 effect length, then one u32 per context id. */
export function encodeBlockStatusFilter(filter: BlockStatusFilter): Buffer {
  const out = Buffer.allocUnsafe(8 + 4 * filter.contextIds.length);
  writeU64(out, 0, filter.effectLength);
  filter.contextIds.forEach((id, i) => writeU32(out, 8 + 4 * i, id));
  return out;
}

/**
 * Decodes a filter payload, or returns undefined when it is malformed (not 8 + 4n bytes, no ids,
 * or an id repeated) — the spec's answer to that is NBD_EINVAL.
 */
export function decodeBlockStatusFilter(payload: Uint8Array): BlockStatusFilter | undefined {
  if (payload.length < 12 || (payload.length - 8) % 4 !== 0) return undefined;
  const contextIds: number[] = [];
  const seen = new Set<number>();
  for (let at = 8; at < payload.length; at += 4) {
    const id = readU32(payload, at);
    if (seen.has(id)) return undefined;
    seen.add(id);
    contextIds.push(id);
  }
  return { effectLength: readU64(payload, 0), contextIds };
}
