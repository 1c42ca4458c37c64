/**
 * The transmission phase of one connection — the hot path. Requests are parsed in place from each
 * received chunk, checked, and handed to the driver at once; replies go out as each request
 * completes (so out of order when the driver completes out of order), corked together per turn of
 * the event loop. A READ's reply header and data share one buffer the driver reads straight into.
 *
 * Backpressure: at most `maxInFlight` requests run at once and the bytes held for READs, WRITEs and
 * unsent replies stay under `maxQueuedReplyBytes`; past either limit, parsed requests wait in a
 * queue and the socket is paused, so a client cannot make the server buffer without bound. Bytes
 * the socket has not yet sent count against the limit even when nothing runs, and 'drain' restarts
 * the queue. One request larger than the whole budget still runs, alone, once the socket drained.
 *
 * Nothing a client sends may take the process down: every entry point from the event loop (socket
 * events, timers, promise continuations) catches what our own code throws and drops this
 * connection only.
 */
import type { Duplex } from 'node:stream';
import { toBlockError, nbdErrorValue, type BlockErrorCode } from '../../errors.js';
import type { BlockDriver } from '../../driver.js';
import type { IoOptions } from '../../types.js';
import {
  Cmd,
  CmdFlag,
  Limits,
  ReplyFlag,
  RequestParser,
  encodeBlockStatusChunk,
  type NbdRequest,
} from '../protocol/index.js';
import { publishRequest, requestChannel } from './diagnostics.js';
import type { BufferPool } from '../../buffers/pool.js';
import { writeInPieces } from './driver-pieces.js';
import { countCommand, type ExportEntry, type NbdExportStats } from './export-registry.js';
import type { SessionParams } from './negotiation.js';
import type { ResolvedServerOptions } from './options.js';
import { statusExtents } from './reply-chunks.js';
import { ReplyWriter } from './reply-writer.js';
import { ReadReplies, type ReadOutcome } from './read-replies.js';
import { checkRequest, type RequestContext } from './request-checks.js';

/** What the transmission reports to its connection. */
export interface TransmissionHooks {
  /** The stream broke the protocol (bad magic, hostile length): drop the connection. */
  fatal(error: unknown): void;
  /** DISC, end of input or shutdown, and everything in flight is answered: end the connection. */
  finished(): void;
}

const NONE = 0;
const DISC = 1;
const SHUTDOWN = 2;

/**
 * READ data prepared per turn of the event loop. Reads run synchronously up to the copy into the
 * reply buffer, so eight pipelined 1 MiB reads would all be copied before the first reply could
 * leave, and client and server would take turns idling; past this budget the next READ waits for
 * the next turn, and the client consumes one reply while the server prepares the next.
 */
const TURN_READ_BUDGET = 512 * 1024;
/** Replies queued behind a full socket before reading stops (see `ReplyWriter.backlog`). */
const MAX_REPLY_BACKLOG = 1024;
/** Extents per BLOCK_STATUS chunk without REQ_ONE. */
const MAX_STATUS_EXTENTS = 4096;

const NO_OPTIONS: IoOptions = Object.freeze({});
const FUA_OPTIONS = Object.freeze({ fua: true });

/** The transmission phase of one connection (see the module comment). */
export class Transmission implements ReadOutcome {
  readonly #socket: Duplex;
  readonly #driver: BlockDriver;
  readonly #entry: ExportEntry;
  readonly #stats: NbdExportStats;
  readonly #ctx: RequestContext;
  readonly #structured: boolean;
  readonly #extended: boolean;
  readonly #allocationContext: number;
  readonly #options: ResolvedServerOptions;
  readonly #hooks: TransmissionHooks;
  readonly #connectionId: number;
  readonly #parser: RequestParser;
  readonly #pool: BufferPool;
  /** Memory of the shared read buffer: WRITE payloads viewing it must be copied out at once. */
  readonly #volatile: ArrayBufferLike | undefined;
  readonly #pending: NbdRequest[] = [];
  #pendingHead = 0;
  #inFlight = 0;
  #inFlightBytes = 0;
  #stopping = NONE;
  #paused = false;
  #dead = false;
  /** READ bytes started in this turn (see TURN_READ_BUDGET); reset by `#nextTurn`. */
  #turnBytes = 0;
  #turnScheduled = false;
  /** A READ waits for the next turn (not backpressure: the socket keeps being read). */
  #waitingForTurn = false;
  readonly #nextTurn = (): void => {
    this.#turnScheduled = false;
    this.#turnBytes = 0;
    this.#waitingForTurn = false;
    if (this.#pendingHead < this.#pending.length) this.#pump();
  };
  /** A bug or an unencodable reply surfaced outside a request's own error path: drop us only. */
  readonly #crash = (err: unknown): void => {
    if (!this.#dead) this.#hooks.fatal(err);
  };
  readonly #replies: ReplyWriter;
  readonly #reads: ReadReplies;
  readonly #onDrain = (): void => {
    this.#replies.drained();
    this.#pump();
  };

  constructor(
    socket: Duplex,
    session: SessionParams,
    options: ResolvedServerOptions,
    pool: BufferPool,
    connectionId: number,
    volatile: ArrayBufferLike | undefined,
    hooks: TransmissionHooks,
  ) {
    this.#socket = socket;
    this.#volatile = volatile;
    this.#pool = pool;
    this.#replies = new ReplyWriter(socket, pool, session.structured, session.extended);
    this.#reads = new ReadReplies(session.entry.driver, pool, this.#replies, { ...session, sparseReads: options.sparseReads }, this);
    this.#entry = session.entry;
    this.#driver = session.entry.driver;
    this.#stats = session.entry.stats;
    this.#structured = session.structured;
    this.#extended = session.extended;
    this.#allocationContext = session.allocationContext ?? 0;
    this.#options = options;
    this.#hooks = hooks;
    this.#connectionId = connectionId;
    this.#ctx = {
      size: session.entry.driver.size,
      flags: session.flags,
      structured: session.structured,
      extended: session.extended,
      allocationSelected: session.allocationContext !== undefined,
      minBlockSize: session.sizes.minimum,
      // Not the driver's maximum: longer READs and WRITEs go to it in pieces (driver-pieces.ts).
      maxPayload: options.maxPayload,
    };
    this.#parser = new RequestParser((req) => this.#onRequest(req), {
      extended: session.extended,
      maxPayload: this.#ctx.maxPayload,
      // Oversized payloads up to twice the limit are read and dropped so the client gets an
      // EINVAL and keeps its connection; beyond that the spec allows a hard disconnect.
      maxDiscard: Math.max(2 * this.#ctx.maxPayload, Limits.DEFAULT_MAX_PAYLOAD),
      // Payloads spanning socket chunks are gathered into pooled buffers, given back once written.
      allocatePayload: (length) => pool.take(length),
    });
    socket.on('drain', this.#onDrain);
  }

  /** Feeds received bytes (the socket's 'data' events, and what negotiation read ahead). */
  push(chunk: Buffer): void {
    if (this.#dead || this.#stopping === DISC) return;
    try {
      this.#parser.push(chunk);
    } catch (err) {
      this.#hooks.fatal(err);
    }
  }

  /** Nothing is running or queued. */
  get idle(): boolean {
    return this.#inFlight === 0 && this.#pendingHead >= this.#pending.length;
  }

  /** The client closed its side: answer what is in flight, then finish. */
  endOfInput(): void {
    if (this.#stopping === NONE) this.#stopping = DISC;
    this.#maybeFinish();
  }

  /**
   * Server shutdown: stop reading, and run every request already received (queued ones as the
   * limits allow) before finishing. Requests parsed after this point are refused with ESHUTDOWN.
   */
  shutdown(): void {
    if (this.#stopping === SHUTDOWN || this.#dead) return;
    this.#stopping = SHUTDOWN;
    this.#pause();
    this.#pump();
  }

  /**
   * Shutdown is taking too long (a client not reading its replies keeps queued requests from
   * starting): answer what is still queued with ESHUTDOWN; running requests still complete.
   */
  abandonQueued(): void {
    if (this.#dead) return;
    try {
      while (this.#pendingHead < this.#pending.length) {
        const req = this.#pending[this.#pendingHead++];
        this.#received(req);
        this.#releasePayload(req);
        this.#refuse(req, 'ESHUTDOWN', 'server is shutting down');
      }
      this.#pending.length = 0;
      this.#pendingHead = 0;
      this.#maybeFinish();
    } catch (err) {
      this.#crash(err);
    }
  }

  /** The connection is gone: late completions are dropped. */
  kill(): void {
    this.#dead = true;
    this.#replies.kill();
    this.#socket.off('drain', this.#onDrain);
    for (let i = this.#pendingHead; i < this.#pending.length; i++) this.#releasePayload(this.#pending[i]);
    this.#pending.length = 0;
    this.#pendingHead = 0;
  }

  // ---- intake -------------------------------------------------------------------------------

  #onRequest(req: NbdRequest): void {
    const payload = req.payload;
    if (payload !== undefined && payload.buffer === this.#volatile && payload.length > 0) {
      // The parser hands out a view when the payload came whole in one read; the next read
      // overwrites it. (Its request object is ours to adjust: the parser made it for us.)
      const copy = this.#pool.take(payload.length).subarray(0, payload.length);
      payload.copy(copy);
      (req as { payload: Buffer | undefined }).payload = copy;
    }
    if (this.#stopping !== NONE) {
      // Nothing may follow DISC; after shutdown began, late requests are refused.
      this.#releasePayload(req);
      if (this.#stopping === SHUTDOWN && req.type !== Cmd.DISC) {
        this.#received(req);
        this.#refuse(req, 'ESHUTDOWN', 'server is shutting down');
      }
      return;
    }
    if (req.type === Cmd.DISC) {
      this.#stopping = DISC;
      this.#pause();
      this.#maybeFinish();
      return;
    }
    if (this.#pendingHead < this.#pending.length || !this.#canStart(req)) {
      this.#pending.push(req);
      // Waiting for the next turn needs no pause, unless the queue grows past the in-flight limit.
      if (!this.#waitingForTurn || this.#pending.length - this.#pendingHead > this.#options.maxInFlight) this.#pause();
      return;
    }
    this.#start(req);
  }

  #cost(req: NbdRequest): number {
    return req.type === Cmd.READ || req.type === Cmd.WRITE ? req.length : 0;
  }

  #canStart(req: NbdRequest): boolean {
    if (this.#replies.backlog >= MAX_REPLY_BACKLOG) return false;
    if (req.type === Cmd.READ && this.#turnBytes >= TURN_READ_BUDGET) {
      this.#waitingForTurn = true;
      return false;
    }
    if (this.#inFlight >= this.#options.maxInFlight) return false;
    const held = this.#inFlightBytes + this.#socket.writableLength + this.#cost(req);
    if (held <= this.#options.maxQueuedReplyBytes) return true;
    // A request bigger than the whole budget may run alone once the socket has drained; while the
    // socket needs a drain, its 'drain' event restarts the queue.
    return this.#inFlight === 0 && !this.#socket.writableNeedDrain;
  }

  /** Starts queued requests while limits allow, then resumes reading if nothing waits. */
  #pump(): void {
    if (this.#dead) return;
    try {
      this.#pumpQueue();
    } catch (err) {
      this.#crash(err);
    }
  }

  #pumpQueue(): void {
    while (this.#pendingHead < this.#pending.length) {
      const req = this.#pending[this.#pendingHead];
      if (!this.#canStart(req)) return;
      this.#pendingHead++;
      this.#start(req);
    }
    this.#pending.length = 0;
    this.#pendingHead = 0;
    if (
      this.#stopping === NONE &&
      this.#paused &&
      this.#replies.backlog < MAX_REPLY_BACKLOG &&
      // Past the budget, wait for 'drain' — but Node emits it only once a write has crossed the
      // socket's high-water mark, so below that mark there is nothing to wait for.
      (this.#socket.writableLength <= this.#options.maxQueuedReplyBytes || !this.#socket.writableNeedDrain)
    ) {
      this.#paused = false;
      this.#socket.resume();
    }
    this.#maybeFinish();
  }

  #pause(): void {
    if (this.#paused) return;
    this.#paused = true;
    this.#socket.pause();
  }

  // ---- dispatch -----------------------------------------------------------------------------

  #start(req: NbdRequest): void {
    this.#received(req);
    const refusal = checkRequest(req, this.#ctx);
    if (refusal !== undefined) {
      this.#releasePayload(req);
      this.#refuse(req, refusal.code, refusal.message);
      return;
    }
    const d = this.#driver;
    const { offset, length, flags } = req;
    const fua = (flags & CmdFlag.FUA) !== 0 ? FUA_OPTIONS : NO_OPTIONS;
    switch (req.type) {
      case Cmd.READ:
        this.#read(req);
        return;
      case Cmd.WRITE:
        if (length === 0) return this.#replyOk(req);
        this.#track(req, writeInPieces(d, offset, req.payload!, fua), length);
        return;
      case Cmd.FLUSH:
        this.#track(req, d.flush(), 0);
        return;
      case Cmd.TRIM:
        if (length === 0) return this.#replyOk(req);
        this.#track(req, d.discard(offset, length, fua), 0);
        return;
      case Cmd.WRITE_ZEROES: {
        if (length === 0) return this.#replyOk(req);
        const options = {
          fua: (flags & CmdFlag.FUA) !== 0,
          mayUnmap: (flags & CmdFlag.NO_HOLE) === 0,
          fastZero: (flags & CmdFlag.FAST_ZERO) !== 0,
        };
        this.#track(req, d.writeZeroes(offset, length, options), 0);
        return;
      }
      case Cmd.CACHE:
        if (length === 0) return this.#replyOk(req);
        this.#track(req, d.cache(offset, length), 0);
        return;
      case Cmd.BLOCK_STATUS:
        this.#blockStatus(req);
        return;
    }
  }

  /** Counts a request in the export's statistics (every one but DISC, whatever its outcome). */
  #received(req: NbdRequest): void {
    this.#stats.requests++;
    countCommand(this.#stats, req.type);
  }

  /** A WRITE that will not run: its pooled payload goes back (the pool ignores other buffers). */
  #releasePayload(req: NbdRequest): void {
    if (req.type === Cmd.WRITE && req.payload !== undefined) this.#pool.give(req.payload);
  }

  /** Runs a request whose success reply carries no data. */
  #track(req: NbdRequest, op: Promise<void>, cost: number): void {
    this.#begin(cost);
    op.then(
      () => {
        if (req.type === Cmd.WRITE) {
          this.#stats.bytesWritten += req.length;
          this.#pool.give(req.payload!);
        }
        this.#replyOk(req);
        this.#end(cost);
      },
      (err: unknown) => {
        if (req.type === Cmd.WRITE) this.#pool.give(req.payload!);
        this.#fail(req, err);
        this.#end(cost);
      },
    ).catch(this.#crash);
  }

  #begin(cost: number): void {
    this.#inFlight++;
    this.#inFlightBytes += cost;
  }

  #end(cost: number): void {
    this.#inFlight--;
    this.#inFlightBytes -= cost;
    if (this.#pendingHead < this.#pending.length || this.#paused || this.#stopping !== NONE) this.#pump();
  }

  #maybeFinish(): void {
    if (this.#stopping !== NONE && !this.#dead && this.#inFlight === 0 && this.#pendingHead >= this.#pending.length) {
      this.#hooks.finished();
    }
  }

  // ---- READ ---------------------------------------------------------------------------------

  #read(req: NbdRequest): void {
    const length = req.length;
    if (length === 0) return this.#replyOk(req);
    this.#turnBytes += length;
    if (!this.#turnScheduled) {
      this.#turnScheduled = true;
      setImmediate(this.#nextTurn);
    }
    this.#begin(length);
    this.#reads.start(req);
  }

  /** A READ reply went out (called by ReadReplies). */
  readSent(req: NbdRequest): void {
    this.#stats.bytesRead += req.length;
    this.#published(req, 0);
    this.#end(req.length);
  }

  /** Our bookkeeping threw while answering a READ (called by ReadReplies). */
  crashed(err: unknown): void {
    this.#crash(err);
  }

  /** A READ failed; its error reply is still to send (called by ReadReplies). */
  readFailed(req: NbdRequest, err: unknown): void {
    this.#fail(req, err);
    this.#end(req.length);
  }

  // ---- BLOCK_STATUS -------------------------------------------------------------------------

  #blockStatus(req: NbdRequest): void {
    this.#begin(0);
    this.#driver.blockStatus(req.offset, req.length).then(
      (extents) => {
        const one = (req.flags & CmdFlag.REQ_ONE) !== 0;
        const list = statusExtents(extents, req.offset, req.length, this.#ctx.minBlockSize, one ? 1 : MAX_STATUS_EXTENTS, this.#extended);
        this.#replies.send(encodeBlockStatusChunk(this.#extended, req, ReplyFlag.DONE, this.#allocationContext, list));
        this.#published(req, 0);
        this.#end(0);
      },
      (err: unknown) => {
        this.#fail(req, err);
        this.#end(0);
      },
    ).catch(this.#crash);
  }

  // ---- replies ------------------------------------------------------------------------------

  #replyOk(req: NbdRequest): void {
    this.#replies.ok(req);
    this.#published(req, 0);
  }

  #fail(req: NbdRequest, err: unknown): void {
    const e = toBlockError(err);
    // NBD_ESHUTDOWN tells a client the server is going away (ours then reconnects and replays). A
    // driver that was closed under a running server (a quorum voting up a closed child's error)
    // is a failed request on a connection that stays: EIO.
    const code = e.code === 'ESHUTDOWN' && this.#stopping !== SHUTDOWN ? 'EIO' : e.code;
    this.#refuse(req, code, e.message);
  }

  /** Answers `req` with an error without running it. */
  #refuse(req: NbdRequest, code: BlockErrorCode, message: string): void {
    this.#stats.errors++;
    const value = nbdErrorValue(code);
    this.#replies.error(req, value, message);
    this.#published(req, value);
  }

  #published(req: NbdRequest, error: number): void {
    if (requestChannel.hasSubscribers) publishRequest(this.#connectionId, this.#entry.name, req, error);
  }
}
