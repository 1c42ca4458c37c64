/** Normalization of blockStatus answers, shared by the base class and multi-child drivers. */
import { BlockError } from './errors.js';
import type { BlockExtent } from './types.js';

/**
 * Clamps a driver's extents to the request and merges neighbours with equal flags. The answer
 * starts exactly at `offset`: an extent that begins earlier is cut at `offset`, extents wholly
 * before it are skipped, and the answer stops at the first gap, overlap or malformed extent (the
 * caller asks again from where it stops). Flags are made strictly boolean, erring on the safe
 * side: only `zero === true` claims zeros, only `allocated === false` claims a hole. A driver that
 * answers nothing usable is a bug: EIO.
 */
export function normalizeExtents(
  extents: readonly BlockExtent[],
  offset: number,
  length: number,
  driver = 'driver',
): BlockExtent[] {
  const end = offset + length;
  const out: BlockExtent[] = [];
  let pos = offset;
  for (const e of extents) {
    if (pos >= end) break;
    if (typeof e !== 'object' || e === null) break;
    if (!Number.isFinite(e.offset) || !Number.isFinite(e.length) || !(e.length > 0)) break;
    const eEnd = e.offset + e.length;
    if (out.length > 0 ? e.offset !== pos : e.offset > pos) break;
    // Only before the first kept extent may an extent start early: skip it or cut it at offset.
    if (eEnd <= pos) continue;
    const len = Math.min(eEnd, end) - pos;
    const zero = e.zero === true;
    const allocated = e.allocated !== false;
    const last = out[out.length - 1];
    if (last !== undefined && last.zero === zero && last.allocated === allocated) {
      out[out.length - 1] = { offset: last.offset, length: last.length + len, zero, allocated };
    } else {
      out.push({ offset: pos, length: len, zero, allocated });
    }
    pos += len;
  }
  if (out.length === 0) {
    throw new BlockError('EIO', `${driver}: blockStatus returned no extent at ${offset}`, {
      details: { op: 'blockStatus', offset, length, driver },
    });
  }
  return out;
}

