/**
 * Large copies in pieces. Past a size threshold glibc's memcpy switches to non-temporal stores,
 * which bypass the cache: here one 1 MiB copy took about a quarter longer than the same bytes
 * copied in 256 KiB pieces (or the 64 KiB chunks a MemoryDriver copies).
 */
const COPY_PIECE = 256 * 1024;

/** `target.set(source, at)`, in pieces of at most 256 KiB. */
export function copyInPieces(target: Uint8Array, source: Uint8Array, at = 0): void {
  const n = source.length;
  if (n <= COPY_PIECE) {
    target.set(source, at);
    return;
  }
  for (let from = 0; from < n; from += COPY_PIECE) target.set(source.subarray(from, Math.min(n, from + COPY_PIECE)), at + from);
}
