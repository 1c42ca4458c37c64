/**
 * A raw disk image in a regular file, through `fs.promises` positional I/O.
 *
 * Reads go straight into the caller's buffer (`pread` into `target`, no intermediate copy);
 * short reads and writes are continued until the whole range is done. Node has no portable way
 * to punch holes or ask for SEEK_DATA/SEEK_HOLE without native code, so the driver says so in its
 * capabilities instead of pretending: discard is not advertised (the base class makes it a no-op,
 * which the discard contract allows), write-zeroes is emulated by writing zeros, and block status
 * reports everything as data.
 */
import { constants as fsConstants } from 'node:fs';
import * as fsp from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { BlockDriver, type BlockDriverOptions } from '../driver.js';
import { BlockError } from '../errors.js';
import type { BlockCapabilities, BlockLimits, IoOptions, WriteOptions } from '../types.js';
import { fileError } from './file-errors.js';

/** Options of {@link FileDriver.open}. */
export interface FileDriverOptions extends BlockDriverOptions {
  /** Open the file read-only: writes, discards and write-zeroes fail with EPERM. */
  readonly readOnly?: boolean;
  /**
   * Create the file when it does not exist, `size` bytes long (sparse where the file system
   * allows). An existing file is opened as it is, never truncated or extended.
   */
  readonly create?: boolean;
  /**
   * Expected device size in bytes. For a file created by `create` this is its length (default 0);
   * for an existing file it must equal the file's length, otherwise `open` fails with EINVAL —
   * the driver never resizes an image that already holds data.
   */
  readonly size?: number;
}

/**
 * Largest piece handed to one `pread`/`pwrite`. Node refuses single transfers of 2 GiB or more,
 * and the base class splits longer requests into pieces of this size.
 */
const MAX_TRANSFER = 32 * 1024 * 1024;

const WRITABLE_CAPS: BlockCapabilities = Object.freeze({
  canWrite: true,
  canFlush: true,
  // FUA is done here as write + fdatasync, so a FUA write resolves only once it is durable.
  canFua: true,
  canDiscard: false,
  canZero: false,
  canFastZero: false,
  canBlockStatus: false,
  // One descriptor and the page cache are shared by every user; fdatasync covers all of them.
  canMultiConn: true,
  canCache: false,
});

const READ_ONLY_CAPS: BlockCapabilities = Object.freeze({
  ...WRITABLE_CAPS,
  canWrite: false,
  canFlush: false,
  canFua: false,
});

const LIMITS: BlockLimits = Object.freeze({
  minBlockSize: 1,
  preferredBlockSize: 4096,
  maxBlockSize: 2 ** 31,
  maxTransfer: MAX_TRANSFER,
});

/** A block device backed by a raw image file. Create one with {@link FileDriver.open}. */
export class FileDriver extends BlockDriver {
  /** Path the driver was opened with. */
  readonly path: string;
  readonly #handle: FileHandle;
  readonly #size: number;
  readonly #caps: BlockCapabilities;
  /** Some write ended (or failed half-way) since the last flush started: close must sync. */
  #dirty = false;
  /** The first fdatasync failure; once set, durability can no longer be confirmed (see #sync). */
  #syncFailure: BlockError | undefined;

  private constructor(handle: FileHandle, path: string, size: number, readOnly: boolean, name: string | undefined) {
    super({ name: name ?? 'file' });
    this.#handle = handle;
    this.path = path;
    this.#size = size;
    this.#caps = readOnly ? READ_ONLY_CAPS : WRITABLE_CAPS;
  }

  /**
   * Opens (or with `create`, creates) a raw image. Fails with EINVAL when the path does not name a
   * regular file or its length differs from `size`, ENOTSUP for block and character devices, EPERM
   * when access is denied, and otherwise with the mapped system error.
   */
  static async open(path: string, options: FileDriverOptions = {}): Promise<FileDriver> {
    if (typeof path !== 'string' || path === '') throw new TypeError('path must be a non-empty string');
    if (path.includes('\0')) throw new TypeError('path must not contain NUL characters');
    const { readOnly = false, create = false, size } = options;
    if (size !== undefined && (!Number.isSafeInteger(size) || size < 0)) {
      throw new RangeError(`size must be a non-negative safe integer, got ${size}`);
    }
    if (readOnly && create) throw new TypeError('readOnly and create cannot be combined');
    const name = options.name ?? 'file';
    const details = { op: 'open', driver: name, path };

    // O_NONBLOCK keeps opening a FIFO from blocking a thread-pool thread until a writer comes
    // (the fstat below then refuses it); on regular files it has no effect.
    const { O_RDONLY, O_RDWR, O_CREAT, O_EXCL, O_NONBLOCK } = fsConstants;
    let handle: FileHandle;
    let created = false;
    try {
      if (readOnly) handle = await fsp.open(path, O_RDONLY | O_NONBLOCK);
      else if (create) {
        try {
          handle = await fsp.open(path, O_RDWR | O_CREAT | O_EXCL);
          created = true;
        } catch (err) {
          if ((err as { code?: unknown }).code !== 'EEXIST') throw err;
          handle = await fsp.open(path, O_RDWR | O_NONBLOCK);
        }
      } else handle = await fsp.open(path, O_RDWR | O_NONBLOCK);
    } catch (err) {
      // Linux refuses to open a socket (and a device without a driver) with ENXIO.
      if ((err as { code?: unknown }).code === 'ENXIO') throw new BlockError('ENOTSUP', `${name}: ${path} is not a regular file`, { cause: err, details });
      throw fileError(err, details);
    }

    try {
      const stat = await handle.stat();
      if (stat.isDirectory()) throw new BlockError('EINVAL', `${name}: ${path} is a directory`, { details });
      if (!stat.isFile()) {
        // Devices report length 0 from fstat; sizing them needs an ioctl Node does not offer.
        throw new BlockError('ENOTSUP', `${name}: ${path} is not a regular file`, { details });
      }
      let length = stat.size;
      if (created) {
        length = size ?? 0;
        if (length > 0) await handle.truncate(length);
        // Without this a flushed write could still vanish in a crash together with the new file:
        // fdatasync covers the file's data and length, not its directory entry.
        await handle.datasync();
        await syncDirectory(dirname(path));
      } else if (size !== undefined && size !== length) {
        throw new BlockError('EINVAL', `${name}: ${path} is ${length} bytes, expected ${size}`, {
          details: { ...details, fileSize: length, size },
        });
      }
      return new FileDriver(handle, path, length, readOnly, options.name);
    } catch (err) {
      await handle.close().catch(() => undefined);
      // Leave no half-made image behind: the caller asked for a device of `size` bytes.
      if (created) await fsp.unlink(path).catch(() => undefined);
      throw fileError(err, details);
    }
  }

  get size(): number {
    return this.#size;
  }
  get capabilities(): BlockCapabilities {
    return this.#caps;
  }
  override get limits(): BlockLimits {
    return LIMITS;
  }
  /** True when opened with `readOnly`. */
  get readOnly(): boolean {
    return !this.#caps.canWrite;
  }

  protected async _read(offset: number, target: Uint8Array, _options: IoOptions): Promise<void> {
    let done = 0;
    try {
      while (done < target.length) {
        const { bytesRead } = await this.#handle.read(target, done, target.length - done, offset + done);
        if (bytesRead === 0) {
          throw new BlockError(
            'EIO',
            `${this.name}: ${this.path} ends at ${offset + done}, before the device size ${this.#size} (truncated by someone else?)`,
            { details: this.#details('read', offset, target.length) },
          );
        }
        done += bytesRead;
      }
    } catch (err) {
      throw fileError(err, this.#details('read', offset, target.length));
    }
  }

  protected override async _write(offset: number, data: Uint8Array, options: WriteOptions): Promise<void> {
    // Fail a FUA write before it writes anything: its sync could no longer prove it durable.
    if (options.fua === true) this.#throwIfSyncFailed('write', offset, data.length);
    let durable = false;
    try {
      let done = 0;
      while (done < data.length) {
        const { bytesWritten } = await this.#handle.write(data, done, data.length - done, offset + done);
        // pwrite returning 0 for a non-empty buffer would loop forever; treat it as a device error.
        if (bytesWritten === 0) {
          throw new BlockError('EIO', `${this.name}: ${this.path} accepted no bytes at ${offset + done}`, {
            details: this.#details('write', offset, data.length),
          });
        }
        done += bytesWritten;
      }
      if (options.fua === true) {
        await this.#sync('write', offset, data.length);
        durable = true;
      }
    } catch (err) {
      throw fileError(err, this.#details('write', offset, data.length));
    } finally {
      // Marked when the write ends (even a failed one may have landed in part): a flush that
      // started while it was running need not cover it, so close must sync again.
      if (!durable) this.#dirty = true;
    }
  }

  protected override async _flush(_options: IoOptions): Promise<void> {
    this.#throwIfSyncFailed('flush', 0, 0);
    // Cleared before the sync so that a write finishing during it marks the file dirty again.
    this.#dirty = false;
    try {
      await this.#sync('flush', 0, 0);
    } catch (err) {
      this.#dirty = true;
      throw err;
    }
  }

  /**
   * Closing makes written data durable first (like a disk's cache flush on shutdown), then
   * releases the descriptor. If that flush fails, or an earlier one did, the descriptor is still
   * closed and close() rejects, so a lost write is never silent.
   */
  protected override async _close(): Promise<void> {
    let flushError: unknown;
    try {
      this.#throwIfSyncFailed('close', 0, 0);
      if (this.#dirty) await this.#sync('close', 0, 0);
    } catch (err) {
      flushError = err;
    }
    try {
      await this.#handle.close();
    } catch (err) {
      flushError ??= fileError(err, this.#details('close', 0, 0));
    }
    if (flushError !== undefined) throw flushError;
  }

  /**
   * fdatasync, remembering a failure for good. On Linux a failed writeback is reported once, and
   * the pages that failed are then marked clean (dropped or kept, but no longer dirty): a retried
   * fdatasync returns 0 without having written them. So after one failure no later sync can
   * prove anything durable, and every flush, FUA write and close fails with EIO instead (QEMU's
   * file-posix does the same with its page_cache_inconsistent flag). Reopening the image and
   * checking it is the only way back. A sync that succeeded while another one failed is not
   * trusted either: the failure may concern pages it was meant to cover.
   */
  async #sync(op: string, offset: number, length: number): Promise<void> {
    try {
      await this.#handle.datasync();
    } catch (err) {
      const mapped = fileError(err, this.#details(op, offset, length));
      this.#syncFailure ??= mapped;
      throw mapped;
    }
    this.#throwIfSyncFailed(op, offset, length);
  }

  #throwIfSyncFailed(op: string, offset: number, length: number): void {
    const failure = this.#syncFailure;
    if (failure === undefined) return;
    const what = op === 'write' ? 'FUA write' : op;
    throw new BlockError(
      'EIO',
      `${this.name}: ${what} refused with EIO: an earlier fdatasync of ${this.path} failed (${failure.code}), after which ` +
        'the kernel may have dropped unwritten pages, so no later sync can confirm durability; reopen and check the image',
      { cause: failure, details: { ...this.#details(op, offset, length), syncFailure: failure.code } },
    );
  }

  #details(op: string, offset: number, length: number): Record<string, unknown> {
    return { op, offset, length, driver: this.name, path: this.path };
  }
}

/**
 * Makes a directory's entries durable. Some file systems refuse fsync on a directory (EINVAL,
 * EBADF, EISDIR, ENOTSUP); there the entry is as durable as that file system makes it anyway. A
 * directory we may write in but not read (mode 0333) cannot be opened to sync: the file was
 * created all the same, as it is by tools that never sync the directory.
 */
async function syncDirectory(path: string): Promise<void> {
  let dir: FileHandle;
  try {
    dir = await fsp.open(path, fsConstants.O_RDONLY);
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (code === 'EACCES' || code === 'EPERM') return;
    throw err;
  }
  try {
    await dir.sync();
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (code !== 'EINVAL' && code !== 'EBADF' && code !== 'EISDIR' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP') throw err;
  } finally {
    await dir.close();
  }
}
