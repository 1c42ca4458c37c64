/**
 * Waiting for the pieces of one request. A request cut into pieces settles only once every piece
 * has: a piece still running after the request failed could write into a buffer already given
 * back, or land after a later request the caller issued once this one had settled.
 */

/** Settles once every piece has; rejects with the first failure (in piece order). */
export async function allPieces(pieces: readonly Promise<unknown>[]): Promise<void> {
  const settled = await Promise.allSettled(pieces);
  const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed !== undefined) throw failed.reason;
}
