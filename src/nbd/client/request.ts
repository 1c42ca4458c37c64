/**
 * One request of an NBD client, from submission until it settles — possibly across several
 * connections when it is replayed after a disconnect.
 *
 * The reply rules live here: which chunks a command may get, how an OFFSET_DATA or OFFSET_HOLE
 * chunk lands in the caller's buffer, what DONE means. A broken rule is reported as a violation
 * string; the connection turns it into an EIO for this request and drops itself.
 */
import { performance } from 'node:perf_hooks';
import { BlockError, codeFromNbdError } from '../../errors.js';
import type { BlockExtent } from '../../types.js';
import { BaseAllocation, Cmd, Err, nameOf, type ReplyChunk, type ReplyExtent } from '../protocol/index.js';
import { alignExtents } from '../../align-extents.js';
import { ReadCoverage } from './read-coverage.js';

const OP_NAMES: Readonly<Record<number, string>> = {
  [Cmd.READ]: 'read',
  [Cmd.WRITE]: 'write',
  [Cmd.FLUSH]: 'flush',
  [Cmd.TRIM]: 'discard',
  [Cmd.CACHE]: 'cache',
  [Cmd.WRITE_ZEROES]: 'writeZeroes',
  [Cmd.BLOCK_STATUS]: 'blockStatus',
};

/** What settles a request. */
export interface RequestCallbacks {
  resolve(extents: BlockExtent[] | undefined): void;
  reject(error: BlockError): void;
}

/** A request and its per-attempt reply state. */
export class NbdRequest {
  /** Submission order, for replaying in the order the caller issued requests. */
  readonly seq: number;
  readonly command: number;
  readonly flags: number;
  readonly offset: number;
  /** Effect length (for WRITE the payload length). */
  readonly length: number;
  /** Payload of a WRITE, held until the request settles so it can be replayed. */
  readonly data: Uint8Array | undefined;
  /** Destination of a READ. */
  readonly target: Uint8Array | undefined;
  readonly #callbacks: RequestCallbacks;
  #settled = false;
  /** Times it was sent, the first included. */
  sends = 0;
  /** Losses counted against `replayLimit` (see ConnectionPool's replay). */
  losses = 0;
  /** The pool's count of connections made when this request was last lost; -1 before any loss. */
  lostAt = -1;
  /** When it was first sent (performance.now() ms): the request timeout runs from here. */
  firstSentAt = 0;

  // ---- per-attempt state, cleared by reset() before a replay ----
  /** Cookie on the connection it was last sent on. */
  cookie = 0;
  /** Structured READ: bytes covered so far. */
  coverage: ReadCoverage | undefined;
  /** First error chunk of a structured reply; reported when DONE arrives. */
  error: BlockError | undefined;
  /** BLOCK_STATUS: the extents of the negotiated context. */
  extents: BlockExtent[] | undefined;
  /** The server answered with ESHUTDOWN: the request was not done and may be retried elsewhere. */
  shutdown = false;

  /** The caller's abort signal; honoured while the request waits for a connection (never on the wire). */
  signal: AbortSignal | undefined;
  /** The client's name (its `name` option), for the errors of this request. */
  driver = 'nbd';

  /** "op offset+length", as errors name the request. */
  get label(): string {
    return `${this.op} ${this.offset}+${this.length}`;
  }

  /** What errors of this request carry in `details`. */
  get details(): { op: string; offset: number; length: number; driver: string } {
    return { op: this.op, offset: this.offset, length: this.length, driver: this.driver };
  }
  /** While held: the listener that takes the request out of the hold when `signal` aborts. */
  onAbortWhileHeld: (() => void) | undefined;

  constructor(
    seq: number,
    command: number,
    flags: number,
    offset: number,
    length: number,
    data: Uint8Array | undefined,
    target: Uint8Array | undefined,
    callbacks: RequestCallbacks,
  ) {
    this.seq = seq;
    this.command = command;
    this.flags = flags;
    this.offset = offset;
    this.length = length;
    this.data = data;
    this.target = target;
    this.#callbacks = callbacks;
  }

  get settled(): boolean {
    return this.#settled;
  }

  /** The BlockDriver operation this request serves (`read`, `discard`, …), for errors and messages. */
  get op(): string {
    return OP_NAMES[this.command] ?? nameOf(Cmd, this.command);
  }

  /** Forgets what a previous attempt received. */
  reset(): void {
    this.coverage?.reset();
    this.error = undefined;
    this.extents = undefined;
    this.shutdown = false;
  }

  resolve(extents?: BlockExtent[]): void {
    if (this.#settled) return;
    this.#settled = true;
    this.#callbacks.resolve(extents);
  }

  reject(error: BlockError): void {
    if (this.#settled) return;
    this.#settled = true;
    this.#callbacks.reject(error);
  }

  /** Sent, and `timeout` ms (> 0) have passed since its first send: replays do not restart the clock. */
  expired(timeout: number, now: number = performance.now()): boolean {
    return this.sends > 0 && now - this.firstSentAt >= timeout;
  }

  /** The error of a request {@link NbdRequest.expired} without a reply. */
  timedOut(timeout: number): BlockError {
    return new BlockError('ETIMEDOUT', `${this.driver}: ${this.label} got no reply within ${timeout} ms`, {
      details: this.details,
    });
  }

  /** An error reply (simple or chunk) with NBD error value `value`. */
  errorFrom(value: number, message: string): BlockError {
    const text = message === '' ? '' : `: ${message}`;
    return new BlockError(codeFromNbdError(value), `${this.driver}: server failed ${this.label} (error ${value})${text}`, {
      details: { ...this.details, nbdError: value },
    });
  }

  /**
   * Applies a non-data structured chunk (data chunks are applied as they stream, by the
   * connection). Returns a violation, or undefined. `contextId` is the negotiated
   * `base:allocation` id; `minBlockSize` the export's, to which extents are aligned.
   */
  applyChunk(chunk: ReplyChunk, contextId: number | undefined, exportSize: number, minBlockSize = 1): string | undefined {
    // Only extended headers carry the request's offset back; a different one means a confused server.
    if (chunk.requestOffset !== undefined) {
      if (chunk.requestOffset !== this.offset) return `the reply echoes offset ${chunk.requestOffset}, not the request's ${this.offset}`;
      if (chunk.kind === 'blockStatus' && !chunk.wide) return 'a 32-bit BLOCK_STATUS chunk under extended headers (BLOCK_STATUS_EXT expected)';
    }
    switch (chunk.kind) {
      case 'none':
        return undefined;
      case 'data':
        return this.command === Cmd.READ ? undefined : `OFFSET_DATA chunk in the reply to ${this.op}`;
      case 'hole': {
        if (this.command !== Cmd.READ) return `OFFSET_HOLE chunk in the reply to ${this.op}`;
        const why = this.coverage!.add(chunk.holeOffset, chunk.holeLength);
        if (why !== undefined) return why;
        const at = chunk.holeOffset - this.offset;
        this.target!.fill(0, at, at + chunk.holeLength);
        return undefined;
      }
      case 'blockStatus': {
        if (this.command !== Cmd.BLOCK_STATUS) return `block-status chunk in the reply to ${this.op}`;
        if (chunk.contextId !== contextId) return undefined; // a context we did not ask for: ignore it
        if (this.extents !== undefined) return 'two block-status chunks for the same context';
        const extents = toExtents(chunk.extents, this.offset, Math.min(exportSize, this.offset + this.length));
        if (typeof extents === 'string') return extents;
        this.extents = alignExtents(extents, minBlockSize);
        return undefined;
      }
      case 'error': {
        if (chunk.errorOffset !== undefined && (chunk.errorOffset < this.offset || chunk.errorOffset >= this.offset + this.length)) {
          return `error offset ${chunk.errorOffset} lies outside the request`;
        }
        if (chunk.error === Err.ESHUTDOWN) this.shutdown = true;
        this.error ??= this.errorFrom(chunk.error, chunk.message);
        return undefined;
      }
    }
  }

  /** The reply is complete (DONE): settles, or returns a violation. */
  finish(): string | undefined {
    if (this.error !== undefined) {
      this.reject(this.error);
      return undefined;
    }
    if (this.coverage !== undefined && !this.coverage.complete) {
      return `DONE after ${this.coverage.covered} of ${this.length} bytes of a read`;
    }
    if (this.command === Cmd.BLOCK_STATUS) {
      if (this.extents === undefined) return `no ${BaseAllocation.NAME} extents in the block-status reply`;
      this.resolve(this.extents);
      return undefined;
    }
    this.resolve();
    return undefined;
  }
}

/**
 * Turns base:allocation extents into ours, clamped to `end` (the end of the request within the
 * export): what a server says beyond the range asked about is not kept. A string is a violation.
 */
function toExtents(extents: readonly ReplyExtent[], offset: number, end: number): BlockExtent[] | string {
  const out: BlockExtent[] = [];
  let pos = offset;
  for (const e of extents) {
    if (pos >= end) break;
    const length = Math.min(e.length, end - pos);
    out.push({
      offset: pos,
      length,
      allocated: (e.flags & BaseAllocation.STATE_HOLE) === 0,
      zero: (e.flags & BaseAllocation.STATE_ZERO) !== 0,
    });
    pos += length;
  }
  return out.length === 0 ? 'block-status chunk without extents' : out;
}
