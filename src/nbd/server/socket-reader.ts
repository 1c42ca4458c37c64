/**
 * Reading plain sockets into one reused buffer. Node gives every `read()` of an accepted socket a
 * fresh 64 KiB buffer; at gigabytes per second that is tens of thousands of allocations a second,
 * each freed again by the garbage collector and trimmed from the heap by malloc — measured here,
 * it costs large writes a quarter to half of their throughput. `net.Socket`'s `onread` option
 * reads into a caller's buffer instead, but Node offers it only for sockets it creates, so the
 * accepted socket's handle is moved into a new `net.Socket` that has it.
 *
 * Everything read this way is only valid until the callback returns: consumers copy what they
 * keep (the option parser's queue, WRITE payloads that arrive whole in one read).
 */
import { Socket } from 'node:net';

/** Bytes read per `read()` into the shared buffer. */
export const SHARED_READ_BUFFER_SIZE = 256 * 1024;

interface HandleOwner {
  _handle?: { readStart?: unknown; useUserBuffer?: unknown } | null;
}

/**
 * Moves an accepted, not yet reading socket (`pauseOnConnect`) onto a new socket that reads into
 * `buffer` and passes each read to `onChunk`. Returns undefined, leaving `raw` untouched, when
 * this Node does not allow it; the caller then reads `raw` the usual way.
 */
export function adoptSocket(raw: Socket, buffer: Buffer, onChunk: (chunk: Buffer) => void): Socket | undefined {
  const owner = raw as unknown as HandleOwner;
  const handle = owner._handle;
  if (handle == null || typeof handle.useUserBuffer !== 'function' || typeof handle.readStart !== 'function') return undefined;
  let adopted: Socket;
  try {
    adopted = new Socket({
      handle,
      allowHalfOpen: true,
      onread: {
        buffer,
        callback: (n: number, buf: Uint8Array) => {
          onChunk((buf as Buffer).subarray(0, n));
        },
      },
    } as ConstructorParameters<typeof Socket>[0]);
  } catch {
    return undefined;
  }
  // The old socket must let go of the handle without closing it; destroying it then settles the
  // server's connection count.
  owner._handle = null;
  raw.destroy();
  return adopted;
}
