/**
 * Groups read copies into versions (sets of byte-identical copies).
 *
 * QEMU hashes every copy with SHA-256 once copies disagree. blockgraph compares bytes instead:
 * each copy is compared (memcmp through Buffer.equals, no copying) with one representative of each
 * version found so far. With N children and V versions that is at most N·V comparisons, each
 * cheaper than hashing a copy, and it is exact — no reliance on hash collisions being improbable.
 * When every copy agrees it costs N−1 comparisons and nothing else: the fast path.
 */
import { asBuffer } from '../buffers/as-buffer.js';

/**
 * Indexes of `copies` grouped by identical content. Versions are listed in the order of their
 * lowest member and each version's members are ascending.
 */
export function versionsOf(copies: readonly Uint8Array[]): number[][] {
  const views = copies.map(asBuffer);
  const versions: number[][] = [];
  for (let i = 0; i < views.length; i++) {
    const match = versions.find((v) => views[v[0]].equals(views[i]));
    if (match === undefined) versions.push([i]);
    else match.push(i);
  }
  return versions;
}
