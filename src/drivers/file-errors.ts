/**
 * Turns Node's file-system errors into BlockErrors for FileDriver.
 */
import { BlockError, toBlockError, type BlockErrorDetails } from '../errors.js';

/**
 * System errors that mean "this path does not name a usable image". They only happen while
 * opening, and the caller can fix them, so they are EINVAL rather than the generic EIO that
 * `toBlockError` gives codes it does not know. The original error stays as `cause`.
 */
const BAD_PATH_CODES: ReadonlySet<string> = new Set(['ENOENT', 'ENOTDIR', 'EISDIR', 'ELOOP', 'ENAMETOOLONG', 'EEXIST']);

/**
 * A BlockError for a failed file operation. Known errno codes keep their meaning (ENOSPC, EDQUOT
 * and EFBIG → ENOSPC; EACCES, EPERM and EROFS → EPERM; EIO → EIO; …), path errors become EINVAL,
 * anything else EIO. `details` should name the operation, range, driver and path.
 */
export function fileError(err: unknown, details: BlockErrorDetails): BlockError {
  if (err instanceof BlockError) return err;
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && BAD_PATH_CODES.has(code)) {
    const message = (err as { message?: unknown }).message;
    return new BlockError('EINVAL', typeof message === 'string' ? message : code, { cause: err, details });
  }
  return toBlockError(err, details);
}
