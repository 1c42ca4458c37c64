/**
 * The exports an {@link NbdServer} serves, by name, with the connections using each and their
 * per-export statistics. Removal is `safe` (refused while a client uses the export) or `hard`
 * (clients using it are dropped); the driver itself stays open: the caller owns it.
 */
import { BlockDriver } from '../../driver.js';
import { BlockError } from '../../errors.js';
import { Cmd } from '../protocol/constants.js';
import { blockSizes } from './export-flags.js';

/** Options of `NbdServer.addExport`. */
export interface NbdExportOptions {
  /** Serve the export read-only even if the driver can write (default false). */
  readonly readOnly?: boolean;
  /** Human-readable description sent with `NBD_OPT_LIST` and `NBD_INFO_DESCRIPTION`. */
  readonly description?: string;
}

/** How `NbdServer.removeExport` treats clients still using the export. */
export type NbdExportRemoveMode = 'safe' | 'hard';

/** Counters per export. Requests that failed count in `errors` as well as under their command. */
export interface NbdExportStats {
  /** Every request received (all commands but DISC). */
  requests: number;
  reads: number;
  writes: number;
  flushes: number;
  trims: number;
  writeZeroes: number;
  blockStatus: number;
  caches: number;
  /** Requests answered with an error. */
  errors: number;
  /** Payload bytes sent to clients by READ. */
  bytesRead: number;
  /** Payload bytes received from clients by WRITE. */
  bytesWritten: number;
}

/** Counts a request under its command (the caller counts `requests` and `errors`). */
export function countCommand(stats: NbdExportStats, type: number): void {
  if (type === Cmd.READ) stats.reads++;
  else if (type === Cmd.WRITE) stats.writes++;
  else if (type === Cmd.FLUSH) stats.flushes++;
  else if (type === Cmd.TRIM) stats.trims++;
  else if (type === Cmd.WRITE_ZEROES) stats.writeZeroes++;
  else if (type === Cmd.CACHE) stats.caches++;
  else if (type === Cmd.BLOCK_STATUS) stats.blockStatus++;
}

/** What the registry needs of a connection to drop it. */
export interface ExportUser {
  /** Disconnects the client at once (hard removal, server destroy). */
  drop(reason: BlockError): void;
}

/** One export as the connections see it. */
export class ExportEntry {
  readonly name: string;
  readonly driver: BlockDriver;
  readonly readOnly: boolean;
  readonly description: string;
  readonly stats: NbdExportStats = newStats();
  /** Connections in transmission phase on this export. */
  readonly users = new Set<ExportUser>();

  constructor(name: string, driver: BlockDriver, options: NbdExportOptions) {
    this.name = name;
    this.driver = driver;
    this.readOnly = options.readOnly === true || !driver.capabilities.canWrite;
    this.description = options.description ?? '';
  }
}

function newStats(): NbdExportStats {
  return {
    requests: 0,
    reads: 0,
    writes: 0,
    flushes: 0,
    trims: 0,
    writeZeroes: 0,
    blockStatus: 0,
    caches: 0,
    errors: 0,
    bytesRead: 0,
    bytesWritten: 0,
  };
}

/** NBD strings are at most 4096 bytes of UTF-8 without NUL. */
const MAX_STRING = 4096;

/** A valid NBD string or an EINVAL naming `what`. */
export function checkNbdString(value: unknown, what: string): string {
  if (typeof value !== 'string') throw new TypeError(`${what} must be a string`);
  if (value.includes('\0')) throw new BlockError('EINVAL', `${what} must not contain NUL`);
  if (Buffer.byteLength(value, 'utf8') > MAX_STRING) throw new BlockError('EINVAL', `${what} is longer than ${MAX_STRING} bytes`);
  return value;
}

/** Exports by name. */
export class ExportRegistry {
  readonly #exports = new Map<string, ExportEntry>();

  add(name: string, driver: BlockDriver, options: NbdExportOptions = {}): ExportEntry {
    checkNbdString(name, 'export name');
    if (!(driver instanceof BlockDriver)) throw new TypeError('driver must be a BlockDriver');
    if (options.description !== undefined) checkNbdString(options.description, 'export description');
    if (this.#exports.has(name)) throw new BlockError('EINVAL', `export ${JSON.stringify(name)} already exists`);
    // Sizes at or above 2^63 cannot be sent; a JavaScript driver is capped at 2^53 anyway.
    if (!Number.isSafeInteger(driver.size) || driver.size < 0) {
      throw new BlockError('EINVAL', `export ${JSON.stringify(name)}: driver size ${driver.size} is not a safe integer`);
    }
    // The spec asks for a size that is a multiple of the minimum block (its tail could not be
    // reached by aligned requests; clients such as qemu and ours cut it off), and so does the
    // driver contract: a driver that breaks it is refused rather than served short.
    const { minimum } = blockSizes(driver.limits, 2 ** 31);
    if (driver.size % minimum !== 0) {
      throw new BlockError('EINVAL', `export ${JSON.stringify(name)}: size ${driver.size} is not a multiple of the minimum block size ${minimum}`);
    }
    const entry = new ExportEntry(name, driver, options);
    this.#exports.set(name, entry);
    return entry;
  }

  get(name: string): ExportEntry | undefined {
    return this.#exports.get(name);
  }

  has(name: string): boolean {
    return this.#exports.has(name);
  }

  /** All exports in insertion order. */
  list(): ExportEntry[] {
    return [...this.#exports.values()];
  }

  /**
   * Removes an export. `safe` refuses (EPERM) while a client is in transmission on it; `hard`
   * drops those clients. Either way negotiations still in progress can no longer pick it.
   */
  remove(name: string, mode: NbdExportRemoveMode): ExportEntry {
    const entry = this.#exports.get(name);
    if (entry === undefined) throw new BlockError('EINVAL', `no export named ${JSON.stringify(name)}`);
    if (mode !== 'safe' && mode !== 'hard') throw new TypeError(`mode must be 'safe' or 'hard', got ${String(mode)}`);
    if (mode === 'safe' && entry.users.size > 0) {
      throw new BlockError('EPERM', `export ${JSON.stringify(name)} is in use by ${entry.users.size} client(s)`, {
        details: { op: 'removeExport', export: name, clients: entry.users.size },
      });
    }
    this.#exports.delete(name);
    const reason = new BlockError('ESHUTDOWN', `export ${JSON.stringify(name)} was removed`);
    for (const user of [...entry.users]) user.drop(reason);
    return entry;
  }
}
