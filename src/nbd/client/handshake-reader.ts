/**
 * The receiving half of a client handshake: bytes from the socket go in, the server's greeting
 * and option replies come out, one awaited message at a time.
 */
import { BlockError, toBlockError } from '../../errors.js';
import { OptionReplyParser, type OptionReplyParserEvent } from '../protocol/index.js';

/** Feeds an {@link OptionReplyParser} from socket reads and lets negotiation await its messages. */
export class HandshakeReader {
  readonly #parser = new OptionReplyParser();
  #wake: (() => void) | undefined;
  #failure: BlockError | undefined;

  /** Bytes received. They are copied: the socket's read buffer is reused. */
  push(bytes: Uint8Array): void {
    if (this.#failure !== undefined) return;
    try {
      this.#parser.push(Buffer.from(bytes));
    } catch (err) {
      this.fail(toBlockError(err, { op: 'connect' }));
      return;
    }
    this.#wakeUp();
  }

  /** Ends the handshake with `error` (the first failure wins); a pending `next()` rejects with it. */
  fail(error: BlockError): void {
    this.#failure ??= error;
    this.#wakeUp();
  }

  /** Why the handshake was ended (a timeout, an abort, a lost connection), if it was. */
  get failure(): BlockError | undefined {
    return this.#failure;
  }

  /** The next message from the server. Rejects with the failure, or a protocol violation. */
  async next(): Promise<OptionReplyParserEvent> {
    for (;;) {
      if (this.#failure !== undefined) throw this.#failure;
      const event = this.#parser.next();
      if (event !== undefined) return event;
      await new Promise<void>((resolve) => (this.#wake = resolve));
    }
  }

  /** Bytes received and not yet returned as a message. */
  get buffered(): number {
    return this.#parser.buffered;
  }

  /** See {@link OptionReplyParser.expectExportNameReply}. */
  expectExportNameReply(noZeroes: boolean): void {
    this.#parser.expectExportNameReply(noZeroes);
  }

  /** Ends handshake parsing; returns what arrived after the last message (the first replies). */
  takeRemainder(): Buffer {
    return this.#parser.takeRemainder();
  }

  #wakeUp(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }
}

