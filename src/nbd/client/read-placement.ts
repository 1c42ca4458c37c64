/**
 * Where the bytes of READ replies go. Data streams in from the reply parser as views of socket
 * reads; this places each piece at its spot in the request's target buffer, checks a structured
 * chunk against the request when its first byte arrives, and — while a payload is still coming —
 * offers the rest of its spot in the target as the buffer for the next socket read, so that the
 * kernel writes those bytes in place and no copy is needed at all.
 */
import { Cmd, NbdProtocolError, type DataChunk, type SimpleReply } from '../protocol/index.js';
import type { NbdRequest } from './request.js';

/** Below this, a payload remainder is read through the scratch buffer (one syscall for many replies). */
const DIRECT_MIN = 32 * 1024;

/** Places read data for one connection. */
export class ReadPlacement {
  #reply: SimpleReply | DataChunk | undefined;
  #request: NbdRequest | undefined;
  #direct: Uint8Array | undefined;
  #directAt = 0;
  #directLeft = 0;

  /**
   * The buffer the next socket read should fill: the unfilled rest of the payload being received
   * when it is large enough, else `scratch`. Called by the socket before every read.
   */
  nextBuffer(scratch: Uint8Array): Uint8Array {
    const t = this.#direct;
    return t === undefined ? scratch : t.subarray(this.#directAt, this.#directAt + this.#directLeft);
  }

  /** A socket read completed; the offer of a direct buffer was used up. */
  consumed(): void {
    this.#direct = undefined;
  }

  /**
   * A piece of read data. `lookup` finds the request of a reply; a violation (an OFFSET_DATA
   * chunk for another command, outside the request, overlapping data) throws NbdProtocolError.
   */
  place(reply: SimpleReply | DataChunk, at: number, data: Buffer, lookup: (reply: SimpleReply | DataChunk) => NbdRequest): NbdRequest {
    let req = this.#request;
    if (reply !== this.#reply || req === undefined) {
      req = lookup(reply);
      if (reply.kind === 'data') {
        if (req.command !== Cmd.READ) throw violation(`OFFSET_DATA chunk in the reply to ${req.op}`);
        const why = req.coverage!.add(reply.dataOffset, reply.dataLength);
        if (why !== undefined) throw violation(why);
      }
      this.#reply = reply;
      this.#request = req;
    }
    const target = req.target!;
    const index = reply.kind === 'simple' ? at : at - req.offset;
    // Skip the copy when the socket already read these bytes into place.
    if (data.buffer !== target.buffer || data.byteOffset !== target.byteOffset + index) target.set(data, index);
    const end = reply.kind === 'simple' ? reply.length : reply.dataOffset + reply.dataLength;
    const left = end - at - data.length;
    if (left >= DIRECT_MIN) {
      this.#direct = target;
      this.#directAt = index + data.length;
      this.#directLeft = left;
    }
    return req;
  }

  /** The reply in progress is complete, or the connection is gone: forget it. */
  reset(): void {
    this.#reply = undefined;
    this.#request = undefined;
    this.#direct = undefined;
  }
}

function violation(message: string): NbdProtocolError {
  return new NbdProtocolError('invalid-message', message);
}
