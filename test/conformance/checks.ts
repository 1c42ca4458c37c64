/**
 * Assertions and data helpers shared by the conformance groups. Byte comparisons report the first
 * differing offset instead of dumping megabytes of diff.
 */
import { expect } from 'vitest';
import type { BlockDriver } from '../../src/driver.js';
import { isBlockError, type BlockErrorCode } from '../../src/errors.js';
import type { BlockExtent, WriteOptions } from '../../src/types.js';

/**
 * Deterministic bytes that are never zero, so a write can be told apart from a hole, and that
 * differ with `seed` and with position, so a misplaced or shifted write is caught.
 */
export function pattern(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = (Math.imul(seed + 1, 0x9e3779b1) ^ 0x5bd1e995) >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = ((x >>> 0) % 255) + 1;
  }
  return out;
}

/** Fails with the first offset where `actual` differs from `expected`. */
export function expectBytes(actual: Uint8Array, expected: Uint8Array, what: string, base = 0): void {
  expect(actual.length, `${what}: length`).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    if (actual[i] !== expected[i]) {
      expect.fail(`${what}: byte at ${base + i} is ${actual[i]}, expected ${expected[i]}`);
    }
  }
}

/** Fails with the first offset of `bytes` that is not zero. */
export function expectZeros(bytes: Uint8Array, what: string, base = 0): void {
  const i = bytes.findIndex((b) => b !== 0);
  if (i >= 0) expect.fail(`${what}: byte at ${base + i} is ${bytes[i]}, expected 0`);
}

/** Fails unless every byte is either its old value or zero (what a discard may leave). */
export function expectOldOrZero(actual: Uint8Array, old: Uint8Array, what: string, base = 0): void {
  expect(actual.length, `${what}: length`).toBe(old.length);
  for (let i = 0; i < old.length; i++) {
    if (actual[i] !== old[i] && actual[i] !== 0) {
      expect.fail(`${what}: byte at ${base + i} is ${actual[i]}, expected its old value ${old[i]} or 0`);
    }
  }
}

/** Settles `run` (which may throw synchronously or reject) and returns what it threw. */
export async function failure(run: () => unknown): Promise<unknown> {
  try {
    await run();
  } catch (err) {
    return err;
  }
  return undefined;
}

/** Expects `run` to fail with a BlockError of exactly `code`. */
export async function expectCode(run: () => unknown, code: BlockErrorCode, what: string): Promise<void> {
  const err = await failure(run);
  expect(err, `${what}: should fail with ${code}`).toBeDefined();
  expect(isBlockError(err), `${what}: should fail with a BlockError, got ${String(err)}`).toBe(true);
  expect((err as { code: string }).code, `${what}: error code`).toBe(code);
}

/** Expects `run` to fail with a TypeError (a programming mistake, not an I/O failure). */
export async function expectTypeError(run: () => unknown, what: string): Promise<void> {
  const err = await failure(run);
  expect(err, `${what}: should fail with a TypeError, got ${String(err)}`).toBeInstanceOf(TypeError);
}

/**
 * Bytes read targets are pre-filled with, taken in turn: a driver that leaves part of a target
 * unfilled is caught whatever the expected data, because no expected byte equals all of them.
 */
const FILLS = [0xee, 0x11, 0xa5, 0x5a, 0xff, 0x01, 0x80, 0x7f];
let nextFill = 0;

/** A new buffer of `length` bytes, all one non-zero value that changes from call to call. */
export function filled(length: number): Uint8Array {
  const value = FILLS[nextFill++ % FILLS.length];
  return new Uint8Array(length).fill(value);
}

/**
 * A buffer that differs from every given buffer at every byte and is never zero there: the
 * pre-fill of a read whose possible results are known, so any byte left unfilled is caught, and
 * what a caller scribbles into a buffer it got back, so a driver still using it is caught.
 */
export function unlike(length: number, ...avoid: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) {
    let v = 0xee;
    // At most avoid.length + 1 values are excluded (0 and one per buffer), so this ends quickly.
    while (v === 0 || avoid.some((a) => a[i] === v)) v = (v + 0x3b) & 0xff;
    out[i] = v;
  }
  return out;
}

/** `readInto` a pre-filled buffer (see {@link filled}), so unfilled bytes cannot pass for data. */
export async function readFilled(driver: BlockDriver, offset: number, length: number): Promise<Uint8Array> {
  const target = filled(length);
  await driver.readInto(offset, target);
  return target;
}

/** Reads a range of any length in pieces of at most `maxIo` bytes, into a pre-filled buffer. */
export async function readAll(driver: BlockDriver, offset: number, length: number, maxIo: number): Promise<Uint8Array> {
  const out = filled(length);
  for (let done = 0; done < length; done += maxIo) {
    const n = Math.min(maxIo, length - done);
    await driver.readInto(offset + done, out.subarray(done, done + n));
  }
  return out;
}

/** Writes `data` in pieces of at most `maxIo` bytes. */
export async function writeAll(driver: BlockDriver, offset: number, data: Uint8Array, maxIo: number): Promise<void> {
  for (let done = 0; done < data.length; done += maxIo) {
    await driver.write(offset + done, data.subarray(done, Math.min(done + maxIo, data.length)));
  }
}

/**
 * Checks one blockStatus answer against the contract: non-empty, starting at `offset`, contiguous,
 * every extent non-empty with boolean flags and aligned to `unit`, inside the request, and
 * neighbours differing in flags (the base class merges equal ones). Returns the end it reached.
 */
export function checkExtents(extents: readonly BlockExtent[], offset: number, length: number, unit: number): number {
  const where = `blockStatus(${offset}, ${length})`;
  expect(Array.isArray(extents), `${where}: returns an array`).toBe(true);
  expect(extents.length, `${where}: covers at least one byte`).toBeGreaterThan(0);
  let pos = offset;
  let prev: BlockExtent | undefined;
  for (const e of extents) {
    expect(e.offset, `${where}: extents are contiguous from the offset`).toBe(pos);
    expect(Number.isSafeInteger(e.length) && e.length > 0, `${where}: extent length ${e.length} is positive`).toBe(true);
    expect(typeof e.zero === 'boolean' && typeof e.allocated === 'boolean', `${where}: flags are booleans`).toBe(true);
    expect(e.length % unit === 0 || e.offset + e.length === offset + length, `${where}: extent ${e.offset}+${e.length} is aligned to ${unit}`).toBe(true);
    if (prev !== undefined) {
      const merged = prev.zero === e.zero && prev.allocated === e.allocated;
      expect(merged, `${where}: neighbours at ${e.offset} with equal flags are merged`).toBe(false);
    }
    pos += e.length;
    prev = e;
  }
  expect(pos, `${where}: answer ends inside the request`).toBeLessThanOrEqual(offset + length);
  return pos;
}

/**
 * Walks `offset..offset+length` with repeated blockStatus calls (an answer may stop short),
 * checking each answer and that extents flagged `zero` really read as zeros.
 */
export async function walkExtents(
  driver: BlockDriver,
  offset: number,
  length: number,
  unit: number,
  maxIo: number,
): Promise<BlockExtent[]> {
  const end = offset + length;
  const all: BlockExtent[] = [];
  let pos = offset;
  // Every answer covers at least one unit, so this bounds the loop.
  for (let calls = 0; pos < end; calls++) {
    expect(calls, 'blockStatus makes progress').toBeLessThanOrEqual(Math.ceil(length / unit));
    const extents = await driver.blockStatus(pos, end - pos);
    const reached = checkExtents(extents, pos, end - pos, unit);
    for (const e of extents) {
      if (e.zero) expectZeros(await readAll(driver, e.offset, e.length, maxIo), `extent ${e.offset}+${e.length} flagged zero`, e.offset);
    }
    all.push(...extents);
    pos = reached;
  }
  return all;
}

/**
 * Writes `data` and checks the driver left the caller's buffer as it was (the contract forbids
 * changing it); returns a copy of what was written, for the caller's model.
 */
export async function writeChecked(driver: BlockDriver, offset: number, data: Uint8Array, options?: WriteOptions): Promise<Uint8Array> {
  const expected = data.slice();
  await driver.write(offset, data, options);
  expectBytes(data, expected, `the caller's buffer after a write at ${offset}${options?.fua === true ? ' (FUA)' : ''} (a driver must not change it)`, offset);
  return expected;
}

/** Flushes when the driver can: a driver must not read a caller's buffer again when it flushes. */
export async function flushIfAble(driver: BlockDriver): Promise<void> {
  if (driver.capabilities.canFlush) await driver.flush();
}
