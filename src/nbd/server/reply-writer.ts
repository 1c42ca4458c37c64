/**
 * Sends transmission replies on one socket: the reply forms the negotiated mode calls for (simple,
 * structured or extended), and corking so that every reply produced in one turn of the event loop
 * leaves in a single writev — with TCP_NODELAY on, that is what keeps small replies from costing a
 * packet each while never waiting on Nagle.
 */
import type { Duplex } from 'node:stream';
import {
  Cmd,
  Limits,
  ReplyFlag,
  encodeErrorChunk,
  encodeNoneChunk,
  writeSimpleReply,
  type NbdRequest,
} from '../protocol/index.js';
import type { BufferPool } from '../../buffers/pool.js';

/** Replies at least this long are flushed at once instead of waiting for the end of the turn. */
const FLUSH_AT = 64 * 1024;
/** Error messages are cut to this many characters; qemu drops long non-data chunks. */
const MAX_MESSAGE = 200;

/** Writes replies for one connection (see the module comment). */
export class ReplyWriter {
  readonly #socket: Duplex;
  readonly #pool: BufferPool;
  readonly #structured: boolean;
  readonly #extended: boolean;
  #corked = false;
  #dead = false;
  /**
   * Replies queued while the socket wanted a drain. Bytes alone do not bound memory here: a
   * client that never reads could pile up millions of 16-byte replies, each a Buffer and a queue
   * entry, long before their bytes add up to anything.
   */
  backlog = 0;
  readonly #uncork = (): void => {
    this.#corked = false;
    if (!this.#dead) this.#socket.uncork();
  };

  constructor(socket: Duplex, pool: BufferPool, structured: boolean, extended: boolean) {
    this.#socket = socket;
    this.#pool = pool;
    this.#structured = structured;
    this.#extended = extended;
  }

  /** Drops everything sent from now on (the connection is gone). */
  kill(): void {
    this.#dead = true;
  }

  /** The success reply of a request without data (or a zero-length READ). */
  ok(req: NbdRequest): void {
    if (this.#extended) this.send(encodeNoneChunk(true, req));
    else if (this.#structured && req.type === Cmd.READ) this.send(encodeNoneChunk(false, req));
    else {
      const buf = Buffer.allocUnsafe(Limits.SIMPLE_REPLY_SIZE);
      writeSimpleReply(buf, 0, req, 0);
      this.send(buf);
    }
  }

  /** An error reply: a structured error chunk with a message when agreed, else a simple reply. */
  error(req: NbdRequest, value: number, message: string): void {
    if (this.#structured) {
      this.send(encodeErrorChunk(this.#extended, req, ReplyFlag.DONE, value, cleanMessage(message)));
    } else {
      const buf = Buffer.allocUnsafe(Limits.SIMPLE_REPLY_SIZE);
      writeSimpleReply(buf, 0, req, value);
      this.send(buf);
    }
  }

  /** The socket drained: the backlog is gone. */
  drained(): void {
    this.backlog = 0;
  }

  /** Queues reply bytes under this turn's cork. */
  send(buf: Buffer): void {
    if (this.#dead || this.#socket.writableEnded) return;
    if (this.#socket.writableNeedDrain) this.backlog++;
    this.#cork();
    this.#socket.write(buf);
  }

  /** Like `send`, for a buffer from the pool: it goes back once the socket is done with it. */
  sendPooled(buf: Buffer): void {
    if (this.#dead || this.#socket.writableEnded) {
      this.#pool.give(buf);
      return;
    }
    if (this.#socket.writableNeedDrain) this.backlog++;
    this.#cork();
    this.#socket.write(buf, () => this.#pool.give(buf));
    // A large reply leaves at once: the client can take it in while the next one is prepared.
    if (buf.length >= FLUSH_AT) this.#flush();
  }

  #flush(): void {
    if (!this.#corked) return;
    this.#corked = false;
    this.#socket.uncork();
  }

  #cork(): void {
    if (this.#corked) return;
    this.#corked = true;
    this.#socket.cork();
    process.nextTick(this.#uncork);
  }
}

/** Error messages: short, no NUL, valid for an NBD string. */
function cleanMessage(message: string): string {
  const text = message.replaceAll('\0', ' ');
  return text.length > MAX_MESSAGE ? `${text.slice(0, MAX_MESSAGE - 1)}…` : text;
}
