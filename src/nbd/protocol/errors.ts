/**
 * The error every NBD parser fails with when the peer breaks the protocol.
 *
 * A protocol error is fatal for the connection that produced it: the stream can no longer be
 * framed (bad magic, a length too large to skip) or the peer broke a MUST the spec answers with a
 * hard disconnect. Recoverable problems are not errors: they come back as typed results (an option
 * of kind `invalid`, a request whose `error` is set) so the peer can be answered and kept.
 */
import { BlockError, type BlockErrorCode } from '../../errors.js';

/** Why a stream was rejected; stable, for tests, logs and metrics. */
export type NbdProtocolErrorReason =
  /** A magic number was not the one this point of the stream requires. */
  | 'bad-magic'
  /** The peer speaks oldstyle negotiation, which is not supported. */
  | 'oldstyle'
  /** A length is larger than this side is configured to read or to skip. */
  | 'too-large'
  /** A message's content contradicts the spec (sizes that do not add up, zero where nonzero is required, …). */
  | 'invalid-message'
  /** A reply chunk type this side cannot interpret and may not skip. */
  | 'unknown-chunk'
  /** A reply names a cookie that has no request in flight. */
  | 'unknown-cookie'
  /** The peer sent more bytes than may be outstanding at this point. */
  | 'unexpected-data'
  /** The parser was used after it failed or was detached. */
  | 'closed';

/**
 * A fatal protocol violation by the peer. `code` is EIO: for the side that sees it, the
 * connection is broken. `reason` says how.
 */
export class NbdProtocolError extends BlockError {
  override readonly name = 'NbdProtocolError';
  readonly reason: NbdProtocolErrorReason;

  constructor(reason: NbdProtocolErrorReason, message: string, code: BlockErrorCode = 'EIO') {
    super(code, message, { details: { op: 'nbd-protocol', reason } });
    this.reason = reason;
  }
}
