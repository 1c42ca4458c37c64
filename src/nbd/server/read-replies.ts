/**
 * Answering READs: the driver reads straight into a pooled buffer of exactly the read's size, and
 * the reply header goes out as a small buffer just before it under the same cork (one writev). A
 * header sharing the data's buffer would push power-of-two reads into the next pool bin. With structured replies, large reads
 * of partly sparse ranges go out as data and hole chunks instead (see sparse-read.ts).
 */
import type { BlockDriver } from '../../driver.js';
import type { BlockExtent } from '../../types.js';
import { CmdFlag, Limits, ReplyFlag, encodeNoneChunk, writeOffsetDataHeader, writeSimpleReply, type NbdRequest } from '../protocol/index.js';
import type { BufferPool } from '../../buffers/pool.js';
import { readInPieces } from './driver-pieces.js';
import { planSparseRead } from './reply-chunks.js';
import type { ReplyWriter } from './reply-writer.js';
import { HoleProbe, readPieces } from './sparse-read.js';

/** Reads shorter than this are never split into holes: the chunk overhead would not pay. */
const SPARSE_READ_MIN = 64 * 1024;
/** Zero runs shorter than this travel as data inside a sparse READ reply. */
const MIN_HOLE = 4096;

/** How a READ ended, for the transmission's bookkeeping (the reply is already sent). */
export interface ReadOutcome {
  readSent(req: NbdRequest): void;
  readFailed(req: NbdRequest, err: unknown): void;
  /** Our own bookkeeping threw: the connection must be dropped (never the process). */
  crashed(err: unknown): void;
}

/** Runs READs of one connection (see the module comment). */
export class ReadReplies {
  readonly #driver: BlockDriver;
  readonly #pool: BufferPool;
  readonly #replies: ReplyWriter;
  readonly #structured: boolean;
  readonly #extended: boolean;
  readonly #sparse: boolean;
  readonly #outcome: ReadOutcome;
  readonly #holes = new HoleProbe();
  readonly #head: number;

  constructor(
    driver: BlockDriver,
    pool: BufferPool,
    replies: ReplyWriter,
    mode: { readonly structured: boolean; readonly extended: boolean; readonly sparseReads: boolean },
    outcome: ReadOutcome,
  ) {
    this.#driver = driver;
    this.#pool = pool;
    this.#replies = replies;
    this.#structured = mode.structured;
    this.#extended = mode.extended;
    this.#sparse = mode.structured && mode.sparseReads;
    this.#outcome = outcome;
    this.#head = mode.structured ? (mode.extended ? Limits.EXTENDED_REPLY_SIZE : Limits.STRUCTURED_REPLY_SIZE) + 8 : Limits.SIMPLE_REPLY_SIZE;
  }

  /** Starts a checked, non-empty READ. */
  start(req: NbdRequest): void {
    const sparse =
      this.#sparse &&
      req.length >= SPARSE_READ_MIN &&
      (req.flags & CmdFlag.DF) === 0 &&
      this.#driver.capabilities.canBlockStatus &&
      this.#holes.shouldProbe();
    if (!sparse) return this.#whole(req);
    this.#driver
      .blockStatus(req.offset, req.length)
      .then(
        (extents) => this.#planned(req, extents),
        () => this.#whole(req), // no allocation answer: just read
      )
      .catch((err: unknown) => this.#outcome.crashed(err));
  }

  /** The driver reads straight into a pooled buffer; the header goes out just before it. */
  #whole(req: NbdRequest): void {
    const { offset, length } = req;
    const buf = this.#pool.take(length).subarray(0, length);
    readInPieces(this.#driver, offset, buf)
      .then(
        () => {
          const head = Buffer.allocUnsafe(this.#head);
          if (this.#structured) writeOffsetDataHeader(head, 0, this.#extended, req, ReplyFlag.DONE, offset, length);
          else writeSimpleReply(head, 0, req, 0);
          this.#replies.send(head);
          this.#replies.sendPooled(buf);
          this.#outcome.readSent(req);
        },
        (err: unknown) => {
          this.#pool.give(buf);
          this.#outcome.readFailed(req, err);
        },
      )
      .catch((err: unknown) => this.#outcome.crashed(err));
  }

  /** A reply of data and hole chunks, sent once every data piece is read. */
  #planned(req: NbdRequest, extents: BlockExtent[]): void {
    const plan = planSparseRead(extents, req.offset, req.length, MIN_HOLE, this.#driver.limits.minBlockSize);
    this.#holes.found(plan !== undefined);
    if (plan === undefined) return this.#whole(req);
    readPieces(this.#driver, this.#pool, this.#extended, req, plan)
      .then(
        (buffers) => {
          for (const b of buffers) this.#replies.sendPooled(b);
          // Everything is read, so no error can follow: a NONE chunk closes the reply.
          this.#replies.send(encodeNoneChunk(this.#extended, req));
          this.#outcome.readSent(req);
        },
        (err: unknown) => this.#outcome.readFailed(req, err),
      )
      .catch((err: unknown) => this.#outcome.crashed(err));
  }
}
