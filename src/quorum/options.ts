/**
 * Quorum options and their validation. Every invalid combination is refused at construction with
 * an EINVAL BlockError that says which rule it breaks; wrong types are TypeErrors.
 */
import { MAX_TIMER_MS } from '../timer-limit.js';
import { BlockDriver, type BlockDriverOptions } from '../driver.js';
import { BlockError } from '../errors.js';
import { READ_PATTERNS, type ReadPattern } from './vote.js';
import { incompatibleLimits } from './capabilities.js';

/** Options of {@link Quorum}. */
export interface QuorumOptions extends BlockDriverOptions {
  /** The replicas, at least one, all of the same size. Their order matters: see docs/quorum.md. */
  readonly children: readonly BlockDriver[];
  /** Children that must succeed (and, for quorum reads, agree): 1 ≤ threshold ≤ children. */
  readonly threshold: number;
  /**
   * `quorum` (default) votes on every read. `fifo` reads child 0 and falls back in order.
   * `round-robin` and `least-pending` spread reads over trusted mirrors, with fifo's fallback.
   */
  readonly readPattern?: ReadPattern;
  /** Write the winning data back to children whose copy lost a vote (quorum pattern only). */
  readonly rewriteCorrupted?: boolean;
  /**
   * Fail a read with EIO on any difference between the two children, naming the first differing
   * offset (quorum pattern, exactly 2 children, threshold 2, not with rewriteCorrupted).
   */
  readonly blkverify?: boolean;
  /** Close the children when the quorum closes (default true). */
  readonly closeChildren?: boolean;
  /**
   * Rate limit, per child for `report-bad` and per quorum for `failure`: the first event goes out
   * at once and opens an interval of this many milliseconds; later ones are held, each replacing
   * the last, and the latest is delivered when the interval ends, with `suppressed` counting the
   * ones dropped in its favour (QEMU's event throttling). 0 (default) disables the limit; QEMU
   * uses one second.
   */
  readonly reportIntervalMs?: number;
  /**
   * Copy each write of at least 64 KiB once into memory of the quorum's own and send that one copy
   * to every child as `immutable`. Children that adopt such buffers (MemoryDriver) then share it —
   * writes cost one copy into a pooled buffer (reused once no child holds it), and voting reads
   * find shared memory equal without comparing it. Children that ignore the hint would pay one copy more per
   * write, so the default `'auto'` shares only when every child reports
   * `capabilities.canAdoptWrites` (see docs/quorum.md, "Performance").
   */
  readonly shareWrites?: boolean | 'auto';
}

/** Options of {@link Quorum.addChild}. */
export interface AddChildOptions {
  /**
   * Accept a child that changes the quorum's capabilities or binding limits (`minBlockSize`,
   * `maxBlockSize`, `maxTransfer`), e.g. a read-only child that turns `canWrite` off, or one with a
   * larger block size. Off by default: callers that already read the manifest (an NBD server that
   * negotiated it, say) would otherwise see it change under them.
   */
  readonly allowManifestChange?: boolean;
  /**
   * Brings the new child in line with the others at the one moment that is well defined: called
   * once the writes in flight have finished and while new writes are held, right before the child
   * is inserted. Reads (including voting reads through the quorum) still work meanwhile; a write
   * through the quorum would wait for the child to join, so `sync` must not await one. A rejection
   * abandons the addition (addChild rejects with it). Without `sync`, the new child must already
   * hold that data.
   */
  readonly sync?: () => Promise<void> | void;
  /**
   * Gives up (ECANCELED) if it has fired, or fires while the join waits for an earlier join or for
   * in-flight writes to finish; the child is then not added.
   */
  readonly signal?: AbortSignal;
}

/** The validated, defaulted options. */
export interface ResolvedQuorumOptions {
  readonly threshold: number;
  readonly readPattern: ReadPattern;
  readonly rewriteCorrupted: boolean;
  readonly blkverify: boolean;
  readonly closeChildren: boolean;
  readonly reportIntervalMs: number;
  readonly shareWrites: boolean | 'auto';
}

/** Validates quorum options; throws EINVAL (or TypeError for wrong types) on the first broken rule. */
export function resolveQuorumOptions(options: QuorumOptions): ResolvedQuorumOptions {
  if (typeof options !== 'object' || options === null) throw new TypeError('Quorum options must be an object');
  const { children } = options;
  if (!Array.isArray(children)) throw new TypeError('Quorum: children must be an array of BlockDrivers');
  children.forEach((c, i) => {
    if (!(c instanceof BlockDriver)) throw new TypeError(`Quorum: children[${i}] is not a BlockDriver`);
  });
  const invalid = (why: string): never => {
    throw new BlockError('EINVAL', `Quorum: ${why}`, { details: { op: 'open', driver: options.name ?? 'quorum' } });
  };
  const n = children.length;
  if (n < 1) invalid('at least one child is required');
  if (new Set(children).size !== n) invalid('the same driver appears twice among the children');
  const threshold = options.threshold;
  if (threshold === undefined) invalid('threshold is required');
  typed('threshold', threshold, 'number');
  if (!Number.isSafeInteger(threshold) || threshold < 1 || threshold > n) {
    invalid(`threshold ${String(threshold)} must be an integer from 1 to the number of children (${n})`);
  }
  const readPattern = typed('readPattern', options.readPattern ?? 'quorum', 'string');
  if (!READ_PATTERNS.includes(readPattern)) {
    invalid(`readPattern ${String(readPattern)} is not one of ${READ_PATTERNS.join(', ')}`);
  }
  const rewriteCorrupted = typed('rewriteCorrupted', options.rewriteCorrupted ?? false, 'boolean');
  const blkverify = typed('blkverify', options.blkverify ?? false, 'boolean');
  if (rewriteCorrupted && readPattern !== 'quorum') invalid(`rewriteCorrupted needs readPattern 'quorum', not '${readPattern}'`);
  if (blkverify) {
    if (readPattern !== 'quorum') invalid(`blkverify needs readPattern 'quorum', not '${readPattern}'`);
    if (n !== 2 || threshold !== 2) invalid(`blkverify needs exactly 2 children and threshold 2 (got ${n} and ${threshold})`);
    if (rewriteCorrupted) invalid('blkverify and rewriteCorrupted exclude each other');
  }
  const size = children[0].size;
  children.forEach((c, i) => {
    if (c.size !== size) invalid(`children differ in size: children[0] has ${size} bytes, children[${i}] has ${c.size}`);
    if (c.state !== 'open') invalid(`children[${i}] is ${c.state}`);
  });
  const limitsConflict = incompatibleLimits(children);
  if (limitsConflict !== undefined) invalid(`the children cannot serve one block size together: ${limitsConflict}`);
  const shareWrites = options.shareWrites ?? 'auto';
  if (typeof shareWrites !== 'boolean' && typeof shareWrites !== 'string') throw new TypeError(`Quorum: shareWrites must be true, false or 'auto', got ${typeof shareWrites}`);
  if (shareWrites !== 'auto' && typeof shareWrites !== 'boolean') invalid(`shareWrites ${String(shareWrites)} must be true, false or 'auto'`);
  const reportIntervalMs = typed('reportIntervalMs', options.reportIntervalMs ?? 0, 'number');
  if (!(Number.isFinite(reportIntervalMs) && reportIntervalMs >= 0 && reportIntervalMs <= MAX_TIMER_MS)) {
    invalid(`reportIntervalMs ${reportIntervalMs} must be a number of ms from 0 to ${MAX_TIMER_MS} (Node's longest timer)`);
  }
  return {
    threshold,
    readPattern,
    rewriteCorrupted,
    blkverify,
    closeChildren: typed('closeChildren', options.closeChildren ?? true, 'boolean'),
    reportIntervalMs,
    shareWrites,
  };
}

/** `value` if it has the JavaScript type `type`; a TypeError naming the option otherwise (plain-JavaScript callers). */
function typed<T>(name: string, value: T, type: 'number' | 'string' | 'boolean'): T {
  if (typeof value !== type) throw new TypeError(`Quorum: ${name} must be a ${type}, got ${typeof value}`);
  return value;
}
