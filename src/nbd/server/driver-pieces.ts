/**
 * READ and WRITE against a driver whose `maxBlockSize` is below what the server accepts: a client
 * that did not ask for block sizes (the kernel does not) may send up to the payload limit, and the
 * spec asks the server to take it. Longer requests go to the driver in pieces it accepts.
 */
import type { BlockDriver } from '../../driver.js';
import type { WriteOptions } from '../../types.js';
import { allPieces } from '../../all-pieces.js';

/** The longest piece `driver` takes, kept a multiple of its minimum block size. */
function pieceSize(driver: BlockDriver): number {
  const { minBlockSize, maxBlockSize } = driver.limits;
  return Math.max(minBlockSize, maxBlockSize - (maxBlockSize % minBlockSize));
}

/** `driver.readInto(offset, target)`, in pieces when the driver needs them. */
export function readInPieces(driver: BlockDriver, offset: number, target: Uint8Array): Promise<void> {
  const max = pieceSize(driver);
  if (target.length <= max) return driver.readInto(offset, target);
  const pieces: Promise<void>[] = [];
  for (let at = 0; at < target.length; at += max) pieces.push(driver.readInto(offset + at, target.subarray(at, Math.min(at + max, target.length))));
  return allPieces(pieces);
}

/** `driver.write(offset, data, options)`, in pieces when the driver needs them. */
export function writeInPieces(driver: BlockDriver, offset: number, data: Uint8Array, options: WriteOptions): Promise<void> {
  const max = pieceSize(driver);
  if (data.length <= max) return driver.write(offset, data, options);
  const pieces: Promise<void>[] = [];
  for (let at = 0; at < data.length; at += max) pieces.push(driver.write(offset + at, data.subarray(at, Math.min(at + max, data.length)), options));
  return allPieces(pieces);
}
