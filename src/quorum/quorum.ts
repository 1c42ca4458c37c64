/**
 * Quorum: a block device replicated over N children, after QEMU's quorum driver. Writes go to every
 * child; reads either vote among all children or read one and fall back. The decision rules live in
 * the pure {@link quorumVote}; this class does the I/O, the events and the child bookkeeping.
 * The full semantics are tabulated in docs/quorum.md.
 */
import { BlockDriver } from '../driver.js';
import { BlockError, mostCommonCode, toBlockError } from '../errors.js';
import type {
  BlockCapabilities,
  BlockExtent,
  BlockLimits,
  DiscardOptions,
  IoOptions,
  WriteOptions,
  WriteZeroesOptions,
} from '../types.js';
import { mergeBlockStatus } from './block-status.js';
import { quorumCapabilities, quorumLimits } from './capabilities.js';
import { QuorumChild, type QuorumMember } from './child.js';
import {
  failureChannel,
  reportBadChannel,
  ReportLimiter,
  type QuorumEvents,
  type QuorumFailure,
  type QuorumReportBad,
  type QuorumReportType,
} from './events.js';
import { blkverifyMismatch, everyChildFailed, noMajority, tooFewSucceeded, type FailureContext } from './failures.js';
import { resolveQuorumOptions, type QuorumOptions, type ResolvedQuorumOptions } from './options.js';
import { readOrder } from './read-order.js';
import { RewriteGuard, type RewriteWatch } from './rewrite-guard.js';
import { ScratchPool } from './scratch.js';
import { quorumVote, type ChildOutcome, type ReadPattern, type VoteResult } from './vote.js';

type Settled<T> = PromiseSettledResult<T>;

/** Typed `on`/`once`/`off`/`emit` for {@link QuorumEvents}. */
export interface Quorum {
  on<K extends keyof QuorumEvents>(event: K, listener: (...args: QuorumEvents[K]) => void): this;
  once<K extends keyof QuorumEvents>(event: K, listener: (...args: QuorumEvents[K]) => void): this;
  off<K extends keyof QuorumEvents>(event: K, listener: (...args: QuorumEvents[K]) => void): this;
  emit<K extends keyof QuorumEvents>(event: K, ...args: QuorumEvents[K]): boolean;
}

/**
 * A replicated block device: `new Quorum({ children, threshold, readPattern, rewriteCorrupted,
 * blkverify })`. Emits `report-bad` for every child that fails or is outvoted and `failure` when a
 * request fails for lack of a quorum (also published on `node:diagnostics_channel`, see
 * {@link QUORUM_CHANNELS}).
 */
export class Quorum extends BlockDriver {
  readonly #options: ResolvedQuorumOptions;
  readonly #size: number;
  readonly #limiter: ReportLimiter;
  readonly #guard = new RewriteGuard();
  readonly #scratch = new ScratchPool(8);
  #members: QuorumChild[];
  #nextName = 0;
  #turn = 0;
  #caps: BlockCapabilities | undefined;
  #limits: BlockLimits | undefined;

  constructor(options: QuorumOptions) {
    const resolved = resolveQuorumOptions(options);
    super({ name: options.name ?? 'quorum' });
    this.#options = resolved;
    this.#size = options.children[0].size;
    this.#limiter = new ReportLimiter(resolved.reportIntervalMs);
    this.#members = options.children.map((d) => new QuorumChild(`children.${this.#nextName++}`, d));
  }

  /** Size in bytes, the same as every child's. */
  get size(): number {
    return this.#size;
  }
  /** Combined from the children's; see docs/quorum.md ("Capabilities and limits"). */
  get capabilities(): BlockCapabilities {
    return (this.#caps ??= quorumCapabilities(this.children));
  }
  /** The strictest of the children's limits. */
  override get limits(): BlockLimits {
    return (this.#limits ??= quorumLimits(this.children));
  }
  /** The child drivers, in child order. */
  override get children(): readonly BlockDriver[] {
    return this.#members.map((m) => m.driver);
  }
  /** The children with their stable names and current pending counts (a snapshot). */
  get members(): readonly QuorumMember[] {
    return this.#members.map((m) => Object.freeze({ name: m.name, driver: m.driver, pending: m.pending }));
  }
  /** Children that must succeed (and, on voting reads, agree). */
  get threshold(): number {
    return this.#options.threshold;
  }
  /** How reads choose children; see docs/quorum.md. */
  get readPattern(): ReadPattern {
    return this.#options.readPattern;
  }

  /**
   * Adds a child at the end of the child order and returns its name. The caller promises the new
   * child already holds the same data as the others (e.g. a finished mirror): the quorum does not
   * copy anything, and a child that differs will be outvoted or, in fifo patterns, read as is.
   * Refused in blkverify mode (ENOTSUP), for a driver of another size or already a child (EINVAL),
   * and on a closing quorum (ESHUTDOWN).
   */
  addChild(driver: BlockDriver): string {
    if (!(driver instanceof BlockDriver)) throw new TypeError('addChild: driver must be a BlockDriver');
    const refuse = (code: 'EINVAL' | 'ENOTSUP' | 'ESHUTDOWN', why: string): never => {
      throw new BlockError(code, `${this.name}: cannot add child: ${why}`, { details: { op: 'addChild', driver: this.name } });
    };
    if (this.state !== 'open') refuse('ESHUTDOWN', `the quorum is ${this.state}`);
    if (this.#options.blkverify) refuse('ENOTSUP', 'children cannot be added in blkverify mode');
    if (driver.state !== 'open') refuse('EINVAL', `the driver is ${driver.state}`);
    if (driver.size !== this.#size) refuse('EINVAL', `its size ${driver.size} differs from the quorum's ${this.#size}`);
    if (this.#members.some((m) => m.driver === driver)) refuse('EINVAL', 'it is already a child');
    const member = new QuorumChild(`children.${this.#nextName++}`, driver);
    this.#members = [...this.#members, member];
    this.#invalidate();
    return member.name;
  }

  /**
   * Removes a child (by driver or by name) so that no new request reaches it, waits for the
   * requests already on it to settle, and hands the driver back unclosed. Refused (EINVAL) when it
   * is not a child or when fewer children than the threshold would remain.
   */
  async removeChild(child: BlockDriver | string): Promise<BlockDriver> {
    const member = this.#members.find((m) => m.driver === child || m.name === child);
    const refuse = (why: string): never => {
      throw new BlockError('EINVAL', `${this.name}: cannot remove child: ${why}`, { details: { op: 'removeChild', driver: this.name } });
    };
    if (member === undefined) refuse(`${typeof child === 'string' ? child : child.name} is not a child`);
    const m = member as QuorumChild;
    if (this.#members.length - 1 < this.#options.threshold) {
      refuse(`${this.#members.length - 1} children would remain, below the threshold ${this.#options.threshold}`);
    }
    this.#members = this.#members.filter((x) => x !== m);
    this.#invalidate();
    this.#limiter.forget(m.name);
    await m.idle();
    return m.driver;
  }

  // ---- reads -------------------------------------------------------------------------------

  protected _read(offset: number, target: Uint8Array, options: IoOptions): Promise<void> {
    if (this.#options.readPattern === 'quorum') return this.#readVote(offset, target, options);
    return this.#readInOrder(offset, target, options);
  }

  async #readVote(offset: number, target: Uint8Array, options: IoOptions): Promise<void> {
    if (!this.#options.rewriteCorrupted) return this.#vote(offset, target, options, undefined);
    const watch = this.#guard.watch(offset, target.length);
    try {
      return await this.#vote(offset, target, options, watch);
    } finally {
      this.#guard.unwatch(watch);
    }
  }

  async #vote(offset: number, target: Uint8Array, options: IoOptions, watch: RewriteWatch | undefined): Promise<void> {
    const kids = this.#members;
    const length = target.length;
    // Child 0 reads straight into the caller's buffer: when copies agree, nothing is copied.
    const scratch = kids.slice(1).map(() => this.#scratch.acquire(length));
    const buffers = [target, ...scratch];
    try {
      await this.#voteOn(kids, buffers, offset, options, watch);
    } finally {
      this.#scratch.release(scratch);
    }
  }

  async #voteOn(
    kids: readonly QuorumChild[],
    buffers: readonly Uint8Array[],
    offset: number,
    options: IoOptions,
    watch: RewriteWatch | undefined,
  ): Promise<void> {
    const target = buffers[0];
    const length = target.length;
    const settled = await Promise.allSettled(kids.map((c, i) => c.run((d) => d.readInto(offset, buffers[i], options))));
    const errors = errorsOf(settled);
    const outcomes: ChildOutcome[] = errors.map((e, i) => (e === undefined ? { ok: true, data: buffers[i] } : { ok: false, code: e.code }));
    const { threshold, blkverify, rewriteCorrupted } = this.#options;
    const vote = quorumVote({ outcomes, threshold, blkverify, rewriteCorrupted });
    this.#publish(vote, kids, errors, 'read', offset, length);
    const ctx: FailureContext = { quorum: this.name, op: 'read', offset, length, children: kids, errors };
    if (!vote.ok) {
      if (vote.mismatchOffset !== undefined) throw blkverifyMismatch(ctx, vote.mismatchOffset);
      if (errors.filter((e) => e === undefined).length < threshold) throw tooFewSucceeded(ctx, vote.code ?? 'EIO', threshold);
      throw noMajority(ctx, threshold);
    }
    if (vote.source !== 0) target.set(buffers[vote.source ?? 0]);
    if (vote.rewrite.length > 0 && watch !== undefined) {
      const losers = vote.rewrite.map((i) => kids[i]);
      await this.#guard.rewrite(watch, () => this.#rewrite(losers, offset, target));
    }
  }

  /** Writes the winning data back over outvoted copies; failures are reported, never returned. */
  async #rewrite(losers: readonly QuorumChild[], offset: number, data: Uint8Array): Promise<void> {
    const settled = await Promise.allSettled(losers.map((c) => c.run((d) => d.write(offset, data))));
    settled.forEach((s, i) => {
      if (s.status === 'rejected') this.#reportBad(losers[i], 'write', offset, data.length, toBlockError(s.reason));
    });
  }

  /** fifo-style read: the first attempt runs without extra frames; failures go to the fallback loop. */
  #readInOrder(offset: number, target: Uint8Array, options: IoOptions): Promise<void> {
    const kids = this.#members;
    const order = readOrder(this.#options.readPattern as Exclude<ReadPattern, 'quorum'>, kids, this.#turn++);
    return kids[order[0]]
      .run((d) => d.readInto(offset, target, options))
      .catch((err: unknown) => this.#fallBack(kids, order, err, offset, target, options));
  }

  async #fallBack(
    kids: readonly QuorumChild[],
    order: readonly number[],
    firstError: unknown,
    offset: number,
    target: Uint8Array,
    options: IoOptions,
  ): Promise<void> {
    const errors: (BlockError | undefined)[] = kids.map(() => undefined);
    let failure = firstError;
    for (let k = 0; ; ) {
      const failed = order[k];
      errors[failed] = toBlockError(failure);
      this.#reportBad(kids[failed], 'read', offset, target.length, errors[failed]);
      if (++k === order.length) break;
      // An abort between attempts is the caller's doing, not the next child's fault.
      if (options.signal?.aborted === true) {
        throw new BlockError('ECANCELED', `${this.name}: read aborted during fallback`, { cause: options.signal.reason });
      }
      try {
        return await kids[order[k]].run((d) => d.readInto(offset, target, options));
      } catch (err) {
        failure = err;
      }
    }
    const ctx: FailureContext = { quorum: this.name, op: 'read', offset, length: target.length, children: kids, errors };
    throw everyChildFailed(ctx, order[order.length - 1]);
  }

  // ---- writes and flush ----------------------------------------------------------------------

  protected override _write(offset: number, data: Uint8Array, options: WriteOptions): Promise<void> {
    return this.#fanOut('write', offset, data.length, (d) => d.write(offset, data, options));
  }
  protected override _writeZeroes(offset: number, length: number, options: WriteZeroesOptions): Promise<void> {
    return this.#fanOut('writeZeroes', offset, length, (d) => d.writeZeroes(offset, length, options));
  }
  protected override _discard(offset: number, length: number, options: DiscardOptions): Promise<void> {
    return this.#fanOut('discard', offset, length, (d) => d.discard(offset, length, options));
  }
  protected override _flush(options: IoOptions): Promise<void> {
    return this.#fanOut('flush', 0, 0, (d) => d.flush(options));
  }

  /** Sends one request to every child in parallel and votes on the outcome. */
  async #fanOut(op: string, offset: number, length: number, send: (d: BlockDriver) => Promise<void>): Promise<void> {
    const claim = op === 'flush' ? undefined : this.#guard.beginWrite(offset, length);
    let kids = this.#members;
    let settled: Settled<void>[];
    try {
      if (claim?.ready !== undefined) {
        await claim.ready;
        kids = this.#members;
      }
      settled = await Promise.allSettled(kids.map((c) => c.run(send)));
    } finally {
      claim?.done();
    }
    const errors = errorsOf(settled);
    const outcomes: ChildOutcome[] = errors.map((e) => (e === undefined ? { ok: true } : { ok: false, code: e.code }));
    const voteOp = op === 'flush' ? 'flush' : 'write';
    const vote = quorumVote({ op: voteOp, outcomes, threshold: this.#options.threshold });
    this.#publish(vote, kids, errors, voteOp, offset, length);
    if (!vote.ok) {
      const ctx: FailureContext = { quorum: this.name, op, offset, length, children: kids, errors };
      throw tooFewSucceeded(ctx, vote.code ?? 'EIO', this.#options.threshold);
    }
  }

  // ---- block status, cache, close -----------------------------------------------------------

  /** Zero only where every child says zero; allocated where any child is. Failed children count as data. */
  protected override async _blockStatus(offset: number, length: number, options: IoOptions): Promise<BlockExtent[]> {
    const kids = this.#members;
    const settled = await Promise.allSettled(kids.map((c) => c.run((d) => d.blockStatus(offset, length, options))));
    const answers = settled.map((s) => (s.status === 'fulfilled' ? s.value : [{ offset, length, zero: false, allocated: true }]));
    const errors = errorsOf(settled);
    if (errors.every((e) => e !== undefined)) {
      const code = mostCommonCode(errors.map((e) => (e as BlockError).code));
      throw tooFewSucceeded({ quorum: this.name, op: 'blockStatus', offset, length, children: kids, errors }, code, 1);
    }
    return mergeBlockStatus(answers, offset);
  }

  /** Advisory: forwarded to every child; a child's failure to prefetch is not an error. */
  protected override async _cache(offset: number, length: number, options: IoOptions): Promise<void> {
    await Promise.allSettled(this.#members.map((c) => c.run((d) => d.cache(offset, length, options))));
  }

  protected override async _close(): Promise<void> {
    if (!this.#options.closeChildren) return;
    const settled = await Promise.allSettled(this.#members.map((m) => m.driver.close()));
    const failed = settled.find((s) => s.status === 'rejected');
    if (failed !== undefined) throw toBlockError(failed.reason, { op: 'close', driver: this.name });
  }

  // ---- events -------------------------------------------------------------------------------

  #publish(
    vote: VoteResult,
    kids: readonly QuorumChild[],
    errors: readonly (BlockError | undefined)[],
    type: QuorumReportType,
    offset: number,
    length: number,
  ): void {
    for (const r of vote.reports) this.#reportBad(kids[r.child], type, offset, length, errors[r.child]);
    if (vote.failure) this.#failure(type === 'read' ? 'read' : 'write', offset, length);
  }

  #reportBad(child: QuorumChild, type: QuorumReportType, offset: number, length: number, error?: BlockError): void {
    const suppressed = this.#limiter.admit(child.name);
    if (suppressed === undefined) return;
    const event: QuorumReportBad =
      error === undefined
        ? { child: child.name, driver: child.driver, type, offset, length, suppressed }
        : { child: child.name, driver: child.driver, type, offset, length, error, suppressed };
    this.emit('report-bad', event);
    if (reportBadChannel.hasSubscribers) reportBadChannel.publish({ ...event, source: this });
  }

  #failure(type: 'read' | 'write', offset: number, length: number): void {
    const suppressed = this.#limiter.admit('\0failure');
    if (suppressed === undefined) return;
    const event: QuorumFailure = { quorum: this.name, type, offset, length, suppressed };
    this.emit('failure', event);
    if (failureChannel.hasSubscribers) failureChannel.publish({ ...event, source: this });
  }

  #invalidate(): void {
    this.#caps = undefined;
    this.#limits = undefined;
  }
}

function errorsOf(settled: readonly Settled<unknown>[]): (BlockError | undefined)[] {
  return settled.map((s) => (s.status === 'rejected' ? toBlockError(s.reason) : undefined));
}
