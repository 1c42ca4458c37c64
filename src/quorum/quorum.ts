/**
 * Quorum: a block device replicated over N children, after QEMU's quorum driver. Writes go to every
 * child; reads either vote among all children or read one and fall back. The decision rules live in
 * vote.ts (the pure {@link quorumVote} and its unvalidated internal entry points); this class does
 * the I/O, the ordering of overlapping requests and the child bookkeeping.
 * The full semantics are tabulated in docs/quorum.md.
 */
import { copyInPieces } from '../buffers/copy.js';
import { BufferPool } from '../buffers/pool.js';
import { BlockDriver } from '../driver.js';
import { abortCode } from '../abort-code.js';
import { BlockError, toBlockError } from '../errors.js';
import type {
  BlockCapabilities,
  BlockExtent,
  BlockLimits,
  DiscardOptions,
  IoOptions,
  ReadLease,
  WriteOptions,
  WriteZeroesOptions,
} from '../types.js';
import { blockStatusOf } from './block-status.js';
import { incompatibleLimits, manifestChanges, quorumCapabilities, quorumLimits } from './capabilities.js';
import { QuorumChild, type QuorumMember } from './child.js';
import type { QuorumEvents } from './events.js';
import { childOptions, collectErrors, issue, issueCache, issueRead, settleAll, type FanOutOp } from './fan-out.js';
import { blkverifyMismatch, everyChildFailed, noMajority, readAborted, tooFewSucceeded, type FailureContext } from './failures.js';
import { resolveQuorumOptions, type AddChildOptions, type QuorumOptions, type ResolvedQuorumOptions } from './options.js';
import { RangeLock, type RangeClaim } from './range-lock.js';
import { firstChild, readOrder, type InOrderPattern } from './read-order.js';
import { JoinQueue } from './join.js';
import { QuorumReporter } from './reporter.js';
import { ScratchPool } from './scratch.js';
import { IMMUTABLE, IMMUTABLE_FUA, copyViews, leaseAll, releaseAll, sameBytes, sharedCopy, type LeasedRead } from './leases.js';
import { decideCompletion, decideRead, type ChildOutcome, type ReadPattern } from './vote.js';

/** Idle scratch buffers a quorum keeps for voting reads (dropped on close). */
const SCRATCH_BYTES = 16 * 1024 * 1024;

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
  readonly #reporter: QuorumReporter;
  readonly #lock = new RangeLock();
  readonly #scratch = new ScratchPool(SCRATCH_BYTES);
  /** Buffers of shared writes (see sharedCopy), reused once no child holds them. */
  readonly #pool = new BufferPool();
  #members: readonly QuorumChild[];
  #drivers: readonly BlockDriver[];
  /** Joins, one at a time, and the writes held while one runs (see addChild). */
  readonly #joins = new JoinQueue();
  #nextName = 0;
  #turn = 0;
  #caps: BlockCapabilities | undefined;
  #limits: BlockLimits | undefined;

  constructor(options: QuorumOptions) {
    const resolved = resolveQuorumOptions(options);
    super({ name: options.name ?? 'quorum' });
    this.#options = resolved;
    this.#size = options.children[0].size;
    this.#reporter = new QuorumReporter(this, resolved.reportIntervalMs);
    this.#members = options.children.map((d) => new QuorumChild(`children.${this.#nextName++}`, d));
    this.#drivers = this.#members.map((m) => m.driver);
  }

  /** Size in bytes, the same as every child's. */
  get size(): number {
    return this.#size;
  }
  /** Combined from the children's; see docs/quorum.md ("Capabilities and limits"). */
  get capabilities(): BlockCapabilities {
    return (this.#caps ??= quorumCapabilities(this.#drivers));
  }
  /** The strictest of the children's limits. */
  override get limits(): BlockLimits {
    return (this.#limits ??= quorumLimits(this.#drivers));
  }
  /** The child drivers, in child order. */
  override get children(): readonly BlockDriver[] {
    return this.#drivers;
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
   * Adds a child at the end of the child order and resolves with its name. The caller promises the
   * new child already holds the same data as the others (e.g. a finished mirror): the quorum does
   * not copy anything, and a child that differs will be outvoted or, in fifo patterns, read as is.
   *
   * Writes are held while the child joins, as QEMU drains a node around a graph change: writes
   * issued before the call finish first (on the old children only), then `options.sync` runs if
   * given, then the child is inserted, then the held writes — every write issued after the call —
   * go out to every child including the new one. So the new child must hold the others' data as
   * it stands once the earlier writes have finished; no write is ever half-applied when it joins.
   * Reads are not held.
   *
   * Refused (rejects) in blkverify mode (ENOTSUP); with EINVAL for a driver of another size, a closed
   * driver, one already a child, or one that would change the quorum's capabilities or binding
   * limits (unless `allowManifestChange`); with ESHUTDOWN on a closing quorum; with ECANCELED when
   * `signal` has fired or fires while the join waits (for an earlier join, or for in-flight writes
   * to drain). A non-BlockDriver is a TypeError.
   */
  async addChild(driver: BlockDriver, options: AddChildOptions = {}): Promise<string> {
    if (!(driver instanceof BlockDriver)) throw new TypeError('addChild: driver must be a BlockDriver');
    this.#checkNewChild(driver, options);
    // One join at a time; writes issued from now on are held until this one ends.
    await this.#joins.enter(options.signal, { op: 'addChild', driver: this.name });
    let claim: RangeClaim | undefined;
    try {
      this.#checkNewChild(driver, options);
      claim = this.#lock.acquire(0, Math.max(this.#size, 1), true);
      await this.#lock.wait(claim, options.signal, { op: 'addChild', driver: this.name });
      // The wait above returns at once when nothing was in flight, without looking at the signal.
      const signal = options.signal;
      if (signal?.aborted === true) {
        throw new BlockError(abortCode(signal), `${this.name}: addChild aborted`, { cause: signal.reason, details: { op: 'addChild', driver: this.name } });
      }
      if (options.sync !== undefined) {
        try {
          await options.sync();
        } catch (err) {
          throw toBlockError(err, { op: 'addChild', driver: this.name });
        }
      }
      // Anything may have changed while in-flight writes drained.
      this.#checkNewChild(driver, options);
      const member = new QuorumChild(`children.${this.#nextName++}`, driver);
      this.#setMembers([...this.#members, member]);
      return member.name;
    } finally {
      if (claim !== undefined) this.#lock.release(claim);
      this.#joins.leave();
    }
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
    this.#setMembers(this.#members.filter((x) => x !== m));
    m.removed = true;
    this.#reporter.forget(m);
    await m.idle();
    return m.driver;
  }

  #checkNewChild(driver: BlockDriver, options: AddChildOptions): void {
    const refuse = (code: 'EINVAL' | 'ENOTSUP' | 'ESHUTDOWN', why: string): never => {
      throw new BlockError(code, `${this.name}: cannot add child ${driver.name}: ${why}`, { details: { op: 'addChild', driver: this.name } });
    };
    if (this.state !== 'open') refuse('ESHUTDOWN', `the quorum is ${this.state}`);
    if (this.#options.blkverify) refuse('ENOTSUP', 'children cannot be added in blkverify mode');
    if (driver.state !== 'open') refuse('EINVAL', `the driver is ${driver.state}`);
    if (driver.size !== this.#size) refuse('EINVAL', `its size ${driver.size} differs from the quorum's ${this.#size}`);
    if (this.#drivers.includes(driver)) refuse('EINVAL', 'it is already a child');
    const conflict = incompatibleLimits([...this.#drivers, driver]);
    if (conflict !== undefined) refuse('EINVAL', `the children could not serve one block size together: ${conflict}`);
    if (options.allowManifestChange !== true) {
      const changes = manifestChanges(this.#drivers, [...this.#drivers, driver]);
      if (changes.length > 0) {
        refuse('EINVAL', `it would change the quorum's capabilities or limits (${changes.join(', ')}); pass { allowManifestChange: true } to accept that`);
      }
    }
  }

  #setMembers(members: readonly QuorumChild[]): void {
    this.#members = members;
    this.#drivers = members.map((m) => m.driver);
    this.#caps = undefined;
    this.#limits = undefined;
  }

  // ---- reads -------------------------------------------------------------------------------

  protected _read(offset: number, target: Uint8Array, options: IoOptions): Promise<void> {
    if (this.#options.readPattern === 'quorum') return this.#readVote(offset, target, options);
    return this.#readInOrder(offset, target, options);
  }

  /**
   * Voting read. It holds a shared claim on its range: it waits for overlapping writes in flight,
   * and overlapping writes arriving meanwhile wait for it — including its write-back — so the
   * children are never compared halfway through a write, and a repair never lands after a write.
   */
  async #readVote(offset: number, target: Uint8Array, options: IoOptions): Promise<void> {
    const length = target.length;
    const claim = this.#lock.acquire(offset, offset + length, true);
    try {
      if (claim.blockers > 0) await this.#lock.wait(claim, options.signal, { op: 'read', offset, length, driver: this.name });
      let kids = this.#members;
      const leased = await leaseAll(kids, offset, length, options);
      if (leased !== undefined) {
        try {
          await this.#voteLeased(kids, leased, offset, target, options);
        } finally {
          releaseAll(leased.leases);
        }
        return;
      }
      // Some child cannot lend: read copies. Child 0 reads straight into the caller's buffer: when copies agree, nothing is copied.
      // A child removed while the leases were asked for belongs to the caller now: read the members.
      if (kids.some((k) => k.removed)) kids = this.#members;
      const n = kids.length;
      await this.#withCopies(target, n, async (buffers) => {
        const pending = new Array<Promise<void>>(n);
        for (let i = 0; i < n; i++) pending[i] = issueRead(kids[i], offset, buffers[i], options);
        const errors = await settleAll(kids, pending);
        // Fast path: every copy byte-identical (memcmp, no hashing, nothing allocated).
        if (errors === undefined && allEqual(buffers)) return;
        await this.#voteSlow(kids, buffers, errors, offset, options);
      });
    } finally {
      this.#lock.release(claim);
    }
  }

  /**
   * Voting on lent views: when every child lent identical bytes, the one copy made is child 0's
   * into the caller's buffer. Otherwise (rare) the views are copied out as the copy path would have
   * read them, the leases are released, and the vote goes on exactly as on that path.
   */
  async #voteLeased(kids: readonly QuorumChild[], leased: LeasedRead, offset: number, target: Uint8Array, options: IoOptions): Promise<void> {
    const { leases, errors } = leased;
    const n = kids.length;
    if (errors === undefined) {
      const first = (leases[0] as ReadLease).views;
      let equal = true;
      for (let i = 1; i < n && equal; i++) equal = sameBytes(first, (leases[i] as ReadLease).views);
      if (equal) {
        copyViews(first, target);
        return;
      }
    }
    await this.#withCopies(target, n, async (buffers) => {
      for (let i = 0; i < n; i++) {
        const lease = leases[i];
        if (lease !== undefined) copyViews(lease.views, buffers[i]);
      }
      releaseAll(leases);
      await this.#voteSlow(kids, buffers, errors, offset, options);
    });
  }

  /**
   * Runs `vote` over one buffer per child: the caller's `target` for child 0, scratch buffers of
   * the same length for the others, which go back to the scratch pool afterwards.
   */
  async #withCopies(target: Uint8Array, n: number, vote: (buffers: Uint8Array[]) => Promise<void>): Promise<void> {
    const buffers = new Array<Uint8Array>(n);
    buffers[0] = target;
    for (let i = 1; i < n; i++) buffers[i] = this.#scratch.acquire(target.length);
    try {
      await vote(buffers);
    } finally {
      for (let i = 1; i < n; i++) this.#scratch.release(buffers[i]);
    }
  }

  async #voteSlow(
    kids: readonly QuorumChild[],
    buffers: readonly Uint8Array[],
    errors: readonly (BlockError | undefined)[] | undefined,
    offset: number,
    options: IoOptions,
  ): Promise<void> {
    const target = buffers[0];
    const length = target.length;
    if (errors !== undefined && options.signal?.aborted === true) throw readAborted(this.name, offset, length, options.signal);
    const outcomes = buffers.map((data, i): ChildOutcome => {
      const e = errors?.[i];
      return e === undefined ? { ok: true, data } : { ok: false, code: e.code };
    });
    const { threshold, blkverify, rewriteCorrupted } = this.#options;
    const vote = decideRead(outcomes, threshold, rewriteCorrupted, blkverify);
    this.#reporter.publish(vote, kids, errors, 'read', offset, length);
    if (!vote.ok) {
      const ctx: FailureContext = { quorum: this.name, op: 'read', offset, length, children: kids, errors: errors ?? kids.map(() => undefined) };
      if (vote.mismatchOffset !== undefined) throw blkverifyMismatch(ctx, vote.mismatchOffset);
      if (outcomes.filter((o) => o.ok).length < threshold) throw tooFewSucceeded(ctx, vote.code ?? 'EIO', threshold);
      throw noMajority(ctx, threshold);
    }
    const source = vote.source ?? 0;
    if (source !== 0) copyInPieces(target, buffers[source]);
    if (vote.rewrite.length > 0) await this.#rewrite(vote.rewrite.map((i) => kids[i]), offset, target);
  }

  /** Writes the winning data back over outvoted copies; failures are reported, never returned. */
  async #rewrite(outvoted: readonly QuorumChild[], offset: number, data: Uint8Array): Promise<void> {
    // A child removed during the vote belongs to the caller now: it is not repaired.
    const losers = outvoted.filter((c) => !c.removed);
    const pending = losers.map((c) => issue(c, 'write', offset, data.length, data, {}));
    const errors = await settleAll(losers, pending);
    errors?.forEach((e, i) => {
      if (e !== undefined) this.#reporter.reportBad(losers[i], 'write', offset, data.length, e);
    });
  }

  /** fifo-style read: one child; only a failure builds the rest of the try order. */
  #readInOrder(offset: number, target: Uint8Array, options: IoOptions): Promise<void> {
    const kids = this.#members;
    const pattern = this.#options.readPattern as InOrderPattern;
    const first = pattern === 'fifo' ? 0 : firstChild(pattern, kids, this.#turn++);
    const child = kids[first];
    // A plain promise chain rather than an async frame: on the common path this is all a fifo
    // read adds to its child's (measured against one MemoryDriver, it shows).
    return issueRead(child, offset, target, options).then(
      () => child.end(),
      (err: unknown) => {
        child.end();
        return this.#fallBack(kids, pattern, first, err, offset, target, options);
      },
    );
  }

  async #fallBack(
    kids: readonly QuorumChild[],
    pattern: InOrderPattern,
    first: number,
    firstError: unknown,
    offset: number,
    target: Uint8Array,
    options: IoOptions,
  ): Promise<void> {
    const order = readOrder(pattern, kids, first);
    const errors = new Array<BlockError | undefined>(kids.length).fill(undefined);
    let failure = firstError;
    let failed = order[0];
    for (let k = 0; ; ) {
      // The caller gave up: neither blame this child nor try the next.
      if (options.signal?.aborted === true) throw readAborted(this.name, offset, target.length, options.signal);
      const error = toBlockError(failure);
      errors[failed] = error;
      if (!kids[failed].removed) this.#reporter.reportBad(kids[failed], 'read', offset, target.length, error);
      // Children removed since this read began belong to the caller now: they are not tried.
      do k++;
      while (k < order.length && kids[order[k]].removed);
      if (k === order.length) break;
      const next = kids[order[k]];
      next.begin();
      try {
        await next.driver.readInto(offset, target, options);
        next.end();
        return;
      } catch (err) {
        next.end();
        failure = err;
        failed = order[k];
      }
    }
    const ctx: FailureContext = { quorum: this.name, op: 'read', offset, length: target.length, children: kids, errors };
    throw everyChildFailed(ctx, failed);
  }

  // ---- writes and flush ----------------------------------------------------------------------

  protected override _write(offset: number, data: Uint8Array, options: WriteOptions): Promise<void> {
    return this.#fanOut('write', offset, data.length, data, options);
  }
  protected override _writeZeroes(offset: number, length: number, options: WriteZeroesOptions): Promise<void> {
    return this.#fanOut('writeZeroes', offset, length, undefined, options);
  }
  /** Sent to children as write-zeroes with `mayUnmap`, so every replica reads back zeros. */
  protected override _discard(offset: number, length: number, options: DiscardOptions): Promise<void> {
    return this.#fanOut('discard', offset, length, undefined, options);
  }
  protected override _flush(options: IoOptions): Promise<void> {
    return this.#fanOut('flush', 0, 0, undefined, options);
  }

  /**
   * Sends one request to every child in parallel and votes on the outcome. A write, write-zeroes
   * or discard first waits for every earlier overlapping write or voting read (so all children
   * apply overlapping writes in the same order); an abort during that wait fails it with
   * ECANCELED before anything is sent. Once sent, it is not cancelled.
   */
  #fanOut(op: FanOutOp, offset: number, length: number, data: Uint8Array | undefined, options: IoOptions): Promise<void> {
    if (this.#joins.busy && op !== 'flush') {
      const send = (): Promise<void> => this.#fanOutLocked(op, offset, length, data, options);
      return this.#joins.hold(send, options.signal, { op, offset, length, driver: this.name });
    }
    return this.#fanOutLocked(op, offset, length, data, options);
  }

  /** Takes the request's range claim (none for a flush), waits for it if needed, and sends. */
  #fanOutLocked(op: FanOutOp, offset: number, length: number, data: Uint8Array | undefined, options: IoOptions): Promise<void> {
    const claim = op === 'flush' ? undefined : this.#lock.acquire(offset, offset + length, false);
    if (claim !== undefined && claim.blockers > 0) return this.#fanOutWhenGranted(claim, op, offset, length, data, options);
    return this.#send(claim, op, offset, length, data, options);
  }

  async #fanOutWhenGranted(claim: RangeClaim, op: FanOutOp, offset: number, length: number, data: Uint8Array | undefined, options: IoOptions): Promise<void> {
    try {
      await this.#lock.wait(claim, options.signal, { op, offset, length, driver: this.name });
    } catch (err) {
      this.#lock.release(claim);
      throw err;
    }
    return this.#send(claim, op, offset, length, data, options);
  }

  /**
   * Issues the request to every child and settles it once all have answered, then releases
   * `claim`. Spelled with one `then` rather than async functions: this is every write's path, and
   * the success case then costs one derived promise.
   */
  #send(claim: RangeClaim | undefined, op: FanOutOp, offset: number, length: number, data: Uint8Array | undefined, options: IoOptions): Promise<void> {
    const kids = this.#members;
    const n = kids.length;
    let shared: Uint8Array | undefined;
    const pending = new Array<Promise<void>>(n);
    try {
      let sent = childOptions(op, options);
      let payload = data;
      shared = op === 'write' && this.#sharesWrites() ? sharedCopy(this.#pool, data as Uint8Array, sent, n) : undefined;
      if (shared !== undefined) {
        payload = shared;
        sent = sent.fua === true ? IMMUTABLE_FUA : IMMUTABLE;
      }
      for (let i = 0; i < n; i++) pending[i] = issue(kids[i], op, offset, length, payload, sent);
    } catch (err) {
      // Only preparing the request can throw (issue() turns a child's throw into its rejection),
      // and then nothing was issued.
      if (shared !== undefined) this.#pool.give(shared);
      if (claim !== undefined) this.#lock.release(claim);
      return Promise.reject(err);
    }
    return Promise.all(pending).then(
      () => {
        for (let i = 0; i < n; i++) kids[i].end();
        if (shared !== undefined) this.#pool.give(shared);
        if (claim !== undefined) this.#lock.release(claim);
      },
      () => this.#sendFailed(claim, op, offset, length, kids, pending, shared),
    );
  }

  async #sendFailed(
    claim: RangeClaim | undefined,
    op: FanOutOp,
    offset: number,
    length: number,
    kids: readonly QuorumChild[],
    pending: readonly Promise<void>[],
    shared: Uint8Array | undefined,
  ): Promise<void> {
    try {
      const errors = await collectErrors(kids, pending);
      if (shared !== undefined) this.#pool.give(shared);
      this.#completionFailed(op, kids, errors, offset, length);
    } finally {
      if (claim !== undefined) this.#lock.release(claim);
    }
  }

  /**
   * Whether writes go out as one shared immutable copy (see QuorumOptions.shareWrites). 'auto' is
   * the quorum's own `canAdoptWrites`: every child adopts (a write only comes here when it can write).
   */
  #sharesWrites(): boolean {
    const mode = this.#options.shareWrites;
    return mode === 'auto' ? this.capabilities.canAdoptWrites === true : mode;
  }

  #completionFailed(op: FanOutOp, kids: readonly QuorumChild[], errors: readonly (BlockError | undefined)[], offset: number, length: number): void {
    const type = op === 'flush' ? 'flush' : 'write';
    const { threshold } = this.#options;
    const vote = decideCompletion(errors.map((e) => e?.code), threshold, type === 'write');
    this.#reporter.publish(vote, kids, errors, type, offset, length);
    if (!vote.ok) throw tooFewSucceeded({ quorum: this.name, op, offset, length, children: kids, errors }, vote.code ?? 'EIO', threshold);
  }

  // ---- block status, cache, close -----------------------------------------------------------

  /** See {@link blockStatusOf}: zero only where every child says zero; failing children are reported. */
  protected override _blockStatus(offset: number, length: number, options: IoOptions): Promise<BlockExtent[]> {
    return blockStatusOf(this.name, this.#members, this.#reporter, offset, length, options, this.limits.minBlockSize);
  }

  /** Advisory: forwarded to every child; a child's failure to prefetch is not an error. */
  protected override async _cache(offset: number, length: number, options: IoOptions): Promise<void> {
    const kids = this.#members;
    await settleAll(kids, kids.map((c) => issueCache(c, offset, length, options)));
  }

  protected override async _close(): Promise<void> {
    this.#reporter.close();
    this.#scratch.clear();
    this.#pool.close();
    if (!this.#options.closeChildren) return;
    const settled = await Promise.allSettled(this.#members.map((m) => m.driver.close()));
    const failed = settled.find((s) => s.status === 'rejected');
    if (failed !== undefined) throw toBlockError(failed.reason, { op: 'close', driver: this.name });
  }
}

/** Every copy byte-identical to the first (memcmp; a Uint8Array needs no Buffer view). */
function allEqual(buffers: readonly Uint8Array[]): boolean {
  const first = buffers[0];
  for (let i = 1; i < buffers.length; i++) if (Buffer.compare(first, buffers[i]) !== 0) return false;
  return true;
}

