/**
 * Errors raised by block drivers.
 *
 * Every failure of an I/O operation is a {@link BlockError} with a stable, errno-like `code`.
 * Codes are part of the public API (see README, "Error codes"); messages are not and may change.
 * Programming mistakes — an argument of the wrong type — are plain `TypeError`s instead.
 */

import { brandedInstanceOf, hasBrand } from './brand.js';
import { constants as osConstants } from 'node:os';
import { Err as NbdErr } from './nbd/protocol/constants.js';

/** The stable error codes a block operation can fail with. */
export type BlockErrorCode =
  | 'EIO'
  | 'EINVAL'
  | 'ENOSPC'
  | 'EPERM'
  | 'ENOTSUP'
  | 'ESHUTDOWN'
  | 'EOVERFLOW'
  | 'ENOMEM'
  | 'ECANCELED'
  | 'ETIMEDOUT';

/** Every {@link BlockErrorCode}, in a fixed order (useful for property-test generators). */
export const BLOCK_ERROR_CODES: readonly BlockErrorCode[] = Object.freeze([
  'EIO',
  'EINVAL',
  'ENOSPC',
  'EPERM',
  'ENOTSUP',
  'ESHUTDOWN',
  'EOVERFLOW',
  'ENOMEM',
  'ECANCELED',
  'ETIMEDOUT',
]);

/**
 * The NBD wire value for each code. NBD defines only eight errors; the two codes it lacks are
 * sent as the nearest NBD error a peer can act on (a cancelled or timed-out request is, for the
 * remote side, an I/O failure it may retry).
 */
export const NBD_ERROR_VALUES: Readonly<Record<BlockErrorCode, number>> = Object.freeze({
  ...NbdErr,
  ECANCELED: NbdErr.EIO,
  ETIMEDOUT: NbdErr.EIO,
});

const CODE_BY_NBD_VALUE: ReadonlyMap<number, BlockErrorCode> = new Map(
  Object.entries(NbdErr).map(([code, value]) => [value, code as BlockErrorCode]),
);

/** The NBD error value for a code (EIO for codes NBD lacks). */
export function nbdErrorValue(code: BlockErrorCode): number {
  return NBD_ERROR_VALUES[code];
}

/** The code for an NBD error value. The spec tells clients to treat unknown values as EINVAL. */
export function codeFromNbdError(value: number): BlockErrorCode {
  return CODE_BY_NBD_VALUE.get(value) ?? 'EINVAL';
}

/** Structured facts about a failed request, for logs and events. */
export interface BlockErrorDetails {
  /** Operation that failed, e.g. `read`, `write`, `flush`. */
  readonly op?: string;
  readonly offset?: number;
  readonly length?: number;
  /** Name of the driver or child that failed. */
  readonly driver?: string;
  readonly [key: string]: unknown;
}

/** Options of the {@link BlockError} constructor. */
export interface BlockErrorOptions {
  /** What caused the failure (kept as the standard `Error.cause`). */
  readonly cause?: unknown;
  /** Structured facts about the request; frozen on the error. */
  readonly details?: BlockErrorDetails;
}

// A global symbol brands instances so `isBlockError` works across duplicate installs of the package.
const BRAND = Symbol.for('blockgraph.BlockError');

/** The error every block operation fails with. */
export class BlockError extends Error {
  override readonly name: string = 'BlockError';
  readonly code: BlockErrorCode;
  readonly details: BlockErrorDetails;

  constructor(code: BlockErrorCode, message: string, options: BlockErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.details = Object.freeze({ ...(options.details ?? {}) });
  }

  /** The NBD wire value of this error's code. */
  get nbdError(): number {
    return nbdErrorValue(this.code);
  }

  get [BRAND](): true {
    return true;
  }

  /**
   * `instanceof BlockError` holds for a BlockError from any copy of this package (the brand), but
   * a subclass (e.g. NbdProtocolError) inherits this method and must keep the ordinary prototype
   * check: not every BlockError is one of it.
   */
  static override [Symbol.hasInstance](value: unknown): boolean {
    return brandedInstanceOf(this, BlockError, BRAND, value);
  }
}

/** True for a {@link BlockError} from any copy of this package. */
export function isBlockError(value: unknown): value is BlockError {
  return hasBrand(value, BRAND);
}

/**
 * Turns anything thrown into a {@link BlockError}: block errors pass through, Node system errors
 * keep their errno code when it is one of ours (or its nearest, e.g. EACCES → EPERM), an abort
 * becomes ECANCELED, a timeout (`AbortSignal.timeout`'s TimeoutError) ETIMEDOUT, V8's failure to
 * allocate a buffer ENOMEM, everything else EIO.
 */
export function toBlockError(err: unknown, details?: BlockErrorDetails): BlockError {
  if (isBlockError(err)) return err;
  const anyErr = err as { code?: unknown; name?: unknown; message?: unknown } | null;
  const message = typeof anyErr?.message === 'string' ? anyErr.message : describe(err);
  if (anyErr?.name === 'AbortError') {
    return new BlockError('ECANCELED', message, { cause: err, details });
  }
  if (anyErr?.name === 'TimeoutError') {
    return new BlockError('ETIMEDOUT', message, { cause: err, details });
  }
  if (isAllocationFailure(err)) {
    return new BlockError('ENOMEM', message, { cause: err, details });
  }
  const code = typeof anyErr?.code === 'string' ? anyErr.code : undefined;
  // Own properties only: a code such as 'constructor' must not find Object.prototype's.
  const mapped = code !== undefined && Object.hasOwn(SYSTEM_CODES, code) ? SYSTEM_CODES[code] : unnamedSystemError(anyErr);
  return new BlockError(mapped ?? 'EIO', message, { cause: err, details });
}

/**
 * The code of a system error libuv has no name for: its `code` is then "Unknown system error
 * -122" (Linux's EDQUOT is one), and the number, looked up among the platform's errno constants,
 * is the only reliable part. Other errors' `errno` may be a library's own status (zlib's), so it
 * is not read for them.
 */
function unnamedSystemError(err: { code?: unknown; errno?: unknown } | null): BlockErrorCode | undefined {
  if (typeof err?.code !== 'string' || !err.code.startsWith('Unknown system error')) return undefined;
  const errno = err.errno;
  if (typeof errno !== 'number') return undefined;
  errnoNames ??= new Map(Object.entries(osConstants.errno).map(([name, value]) => [value, name]));
  const name = errnoNames.get(-errno);
  return name === undefined ? undefined : SYSTEM_CODES[name];
}
let errnoNames: Map<number, string> | undefined;

/** `String(value)`, except that it cannot throw (e.g. for an object whose toString is not a function). */
function describe(value: unknown): string {
  try {
    return String(value);
  } catch {
    return Object.prototype.toString.call(value);
  }
}

/**
 * V8 reports a buffer it cannot allocate as a RangeError with this message (distinct from the
 * "Invalid typed array length" of a length no buffer may have, which stays a programming error).
 */
function isAllocationFailure(err: unknown): boolean {
  return err instanceof RangeError && /allocation failed/i.test(err.message);
}

const SYSTEM_CODES: Readonly<Record<string, BlockErrorCode>> = {
  EIO: 'EIO',
  EINVAL: 'EINVAL',
  ENOSPC: 'ENOSPC',
  EDQUOT: 'ENOSPC',
  EFBIG: 'ENOSPC',
  EPERM: 'EPERM',
  EACCES: 'EPERM',
  EROFS: 'EPERM',
  ENOTSUP: 'ENOTSUP',
  EOPNOTSUPP: 'ENOTSUP',
  ESHUTDOWN: 'ESHUTDOWN',
  EOVERFLOW: 'EOVERFLOW',
  ENOMEM: 'ENOMEM',
  ENOBUFS: 'ENOMEM',
  ECANCELED: 'ECANCELED',
  ABORT_ERR: 'ECANCELED',
  ETIMEDOUT: 'ETIMEDOUT',
};

/**
 * Most common code among failures. Ties go to the tied code that appears first in `codes`
 * (a documented, stable rule: callers pass failures in child order).
 */
export function mostCommonCode(codes: readonly BlockErrorCode[]): BlockErrorCode {
  const counts = new Map<BlockErrorCode, number>();
  for (const code of codes) counts.set(code, (counts.get(code) ?? 0) + 1);
  let best: BlockErrorCode = 'EIO';
  let bestCount = 0;
  // Map iteration follows first insertion, so a strict `>` keeps the earliest of tied codes.
  for (const [code, n] of counts) {
    if (n > bestCount) {
      best = code;
      bestCount = n;
    }
  }
  return best;
}
