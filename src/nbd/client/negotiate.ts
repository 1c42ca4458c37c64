/**
 * The client side of NBD option haggling.
 *
 * Order: extended headers (which imply structured replies), else structured replies, then the
 * `base:allocation` context, then GO asking for block sizes. Every step degrades gracefully: an
 * error reply turns the feature off and negotiation goes on; a server without GO gets
 * NBD_OPT_EXPORT_NAME; a server without fixed newstyle gets nothing but EXPORT_NAME.
 */
import { BlockError, type BlockErrorCode } from '../../errors.js';
import {
  BaseAllocation,
  ClientFlag,
  HandshakeFlag,
  Info,
  NbdProtocolError,
  Opt,
  Rep,
  encodeClientFlags,
  encodeExportNameOption,
  encodeInfoOption,
  encodeMetaContextOption,
  encodeOption,
  nameOf,
  type OptionReply,
  type OptionReplyParserEvent,
  type ReplyMode,
} from '../protocol/index.js';
import type { NbdNegotiationOptions } from './options.js';

/** The transport a negotiation runs over. */
export interface HandshakeChannel {
  send(bytes: Uint8Array): void;
  /** The next message from the server; rejects if the connection fails. */
  next(): Promise<OptionReplyParserEvent>;
  /** Announces that the next message is the reply to NBD_OPT_EXPORT_NAME. */
  expectExportNameReply(noZeroes: boolean): void;
  /**
   * Present when the connection must use TLS: upgrades the transport after the server acknowledged
   * NBD_OPT_STARTTLS; rejects (EPERM) when the handshake fails.
   */
  startTls?(): Promise<void>;
}

/** The server's block-size constraints (NBD_INFO_BLOCK_SIZE). */
export interface NbdBlockSizes {
  readonly minimum: number;
  readonly preferred: number;
  readonly maximum: number;
}

/** What a negotiation agreed. */
export interface NegotiatedExport {
  readonly size: number;
  readonly transmissionFlags: number;
  readonly replyMode: ReplyMode;
  /** The id of `base:allocation`, when the server agreed to it. */
  readonly metaContextId: number | undefined;
  /** Block sizes, when the server sent them. */
  readonly blockSizes: NbdBlockSizes | undefined;
  /** True when the export was opened with NBD_OPT_GO, false with NBD_OPT_EXPORT_NAME. */
  readonly usedGo: boolean;
}

/** Runs the whole handshake for `exportName`. Failures are BlockErrors (protocol ones EIO). */
export async function negotiate(ch: HandshakeChannel, exportName: string, want: Required<NbdNegotiationOptions>): Promise<NegotiatedExport> {
  const greeting = await ch.next();
  if (greeting.kind !== 'greeting') throw violation('expected the server greeting');
  const fixed = (greeting.handshakeFlags & HandshakeFlag.FIXED_NEWSTYLE) !== 0;
  const noZeroes = (greeting.handshakeFlags & HandshakeFlag.NO_ZEROES) !== 0;
  ch.send(encodeClientFlags((fixed ? ClientFlag.FIXED_NEWSTYLE : 0) | (noZeroes ? ClientFlag.NO_ZEROES : 0)));
  if (ch.startTls !== undefined) {
    // STARTTLS exists only in fixed newstyle; everything from here on runs over TLS.
    if (!fixed) throw new BlockError('EPERM', 'nbd: TLS was asked for, but the server is not fixed newstyle (no STARTTLS)', { details: { op: 'connect' } });
    ch.send(encodeOption(Opt.STARTTLS));
    const r = await replyTo(ch, Opt.STARTTLS);
    if (r.kind === 'error') {
      throw new BlockError('EPERM', `nbd: server refused STARTTLS: ${refusalText(r)}`, { details: { op: 'connect', nbdReply: r.error } });
    }
    if (r.kind !== 'ack') throw violation(`unexpected ${r.kind} reply to NBD_OPT_STARTTLS`);
    await ch.startTls();
  } else if (!fixed) return exportNameFallback(ch, exportName, noZeroes, 'simple', undefined);

  let replyMode: ReplyMode = 'simple';
  // Extended headers imply structured replies: a caller who turned those off gets neither (as libnbd).
  if (want.extendedHeaders && want.structuredReplies) {
    ch.send(encodeOption(Opt.EXTENDED_HEADERS));
    const r = await replyTo(ch, Opt.EXTENDED_HEADERS);
    if (r.kind === 'ack') replyMode = 'extended';
    else expectRefusal(r);
  }
  // One option at a time: the spec forbids sending an option before the final reply to the last
  // one, and SET_META_CONTEXT before structured replies or extended headers are agreed.
  if (replyMode === 'simple' && want.structuredReplies) {
    ch.send(encodeOption(Opt.STRUCTURED_REPLY));
    const r = await replyTo(ch, Opt.STRUCTURED_REPLY);
    if (r.kind === 'ack') replyMode = 'structured';
    else expectRefusal(r);
  }

  let metaContextId: number | undefined;
  if (want.blockStatus && replyMode !== 'simple') {
    ch.send(encodeMetaContextOption(Opt.SET_META_CONTEXT, exportName, [BaseAllocation.NAME]));
    for (;;) {
      const r = await replyTo(ch, Opt.SET_META_CONTEXT);
      if (r.kind === 'metaContext') {
        // Only the context asked for counts; a server echoing another one is ignored, as qemu does.
        if (r.name === BaseAllocation.NAME) metaContextId = r.contextId;
        continue;
      }
      if (r.kind === 'ack') break;
      expectRefusal(r);
      metaContextId = undefined;
      break;
    }
  }

  ch.send(encodeInfoOption(Opt.GO, exportName, [Info.BLOCK_SIZE]));
  let size: number | undefined;
  let transmissionFlags = 0;
  let blockSizes: NbdBlockSizes | undefined;
  for (;;) {
    const r = await replyTo(ch, Opt.GO);
    if (r.kind === 'info') {
      if (r.info.type === 'export') {
        size = r.info.size;
        transmissionFlags = r.info.transmissionFlags;
      } else if (r.info.type === 'blockSize') {
        blockSizes = { minimum: r.info.minimum, preferred: r.info.preferred, maximum: r.info.maximum };
      }
      continue;
    }
    if (r.kind === 'ack') break;
    if (r.kind === 'error' && r.error === Rep.ERR_UNSUP) {
      // The spec forbids EXPORT_NAME once extended headers are agreed (a server that offers them
      // knows GO): this server contradicts itself.
      if (replyMode === 'extended') throw violation('NBD_OPT_GO unsupported by a server that agreed to extended headers');
      // A fixed-newstyle server older than GO: options agreed so far still hold.
      return exportNameFallback(ch, exportName, noZeroes, replyMode, metaContextId);
    }
    if (r.kind === 'error') throw refusedExport(r, exportName);
    // Other reply kinds to GO are meaningless; the spec tells clients to ignore what they do not know.
  }
  if (size === undefined) throw violation('NBD_OPT_GO succeeded without NBD_INFO_EXPORT');
  const checked = checkBlockSizes(blockSizes);
  // The spec only asks (SHOULD) that the size be a multiple of the minimum block size; the tail
  // beyond the last whole block cannot be reached by an aligned request, so the device ends
  // before it, as qemu's does (nbdinfo and qemu-io open such exports too).
  const usable = checked === undefined ? checkSize(size) : checkSize(size) - (size % checked.minimum);
  return { size: usable, transmissionFlags, replyMode, metaContextId, blockSizes: checked, usedGo: true };
}

async function exportNameFallback(
  ch: HandshakeChannel,
  exportName: string,
  noZeroes: boolean,
  replyMode: ReplyMode,
  metaContextId: number | undefined,
): Promise<NegotiatedExport> {
  ch.send(encodeExportNameOption(exportName));
  ch.expectExportNameReply(noZeroes);
  let event: OptionReplyParserEvent;
  try {
    event = await ch.next();
  } catch (err) {
    // EXPORT_NAME cannot be refused politely: a server without the export just hangs up.
    throw new BlockError('EINVAL', `nbd: server closed the connection on export ${JSON.stringify(exportName)} (no such export?)`, {
      cause: err,
      details: { op: 'connect', exportName },
    });
  }
  if (event.kind !== 'exportName') throw violation('expected the reply to NBD_OPT_EXPORT_NAME');
  return { size: checkSize(event.size), transmissionFlags: event.transmissionFlags, replyMode, metaContextId, blockSizes: undefined, usedGo: false };
}

async function replyTo(ch: HandshakeChannel, option: number): Promise<OptionReply> {
  const event = await ch.next();
  if (event.kind !== 'reply') throw violation(`expected a reply to ${nameOf(Opt, option)}`);
  if (event.reply.option !== option) {
    throw violation(`reply to ${nameOf(Opt, event.reply.option)} while waiting for ${nameOf(Opt, option)}`);
  }
  return event.reply;
}

/** A feature option may be refused with any error; only a non-error non-ACK reply is wrong. */
function expectRefusal(r: OptionReply): void {
  if (r.kind !== 'error') throw violation(`unexpected ${r.kind} reply to ${nameOf(Opt, r.option)}`);
}

const REFUSAL_CODES: ReadonlyMap<number, BlockErrorCode> = new Map<number, BlockErrorCode>([
  [Rep.ERR_UNKNOWN, 'EINVAL'],
  [Rep.ERR_INVALID, 'EINVAL'],
  [Rep.ERR_POLICY, 'EPERM'],
  [Rep.ERR_TLS_REQD, 'ENOTSUP'],
  [Rep.ERR_PLATFORM, 'ENOTSUP'],
  [Rep.ERR_SHUTDOWN, 'ESHUTDOWN'],
  [Rep.ERR_TOO_BIG, 'EINVAL'],
]);

/** An option's error reply as text: the reply's name, and the server's message when it sent one. */
function refusalText(r: Extract<OptionReply, { kind: 'error' }>): string {
  return r.message === '' ? nameOf(Rep, r.error) : `${nameOf(Rep, r.error)}: ${r.message}`;
}

function refusedExport(r: Extract<OptionReply, { kind: 'error' }>, exportName: string): BlockError {
  const code = REFUSAL_CODES.get(r.error) ?? 'EIO';
  const hint = r.error === Rep.ERR_TLS_REQD ? ' (the server requires TLS: give the tls option or an nbds:// URI)' : '';
  return new BlockError(code, `nbd: server refused export ${JSON.stringify(exportName)}: ${refusalText(r)}${hint}`, {
    details: { op: 'connect', exportName, nbdReply: r.error },
  });
}

function checkSize(size: number): number {
  if (!Number.isSafeInteger(size)) {
    throw new BlockError('EOVERFLOW', `nbd: export size ${size} is beyond 2^53 bytes, which this client cannot address`, {
      details: { op: 'connect' },
    });
  }
  return size;
}

const isPowerOfTwo = (n: number): boolean => n > 0 && (n & (n - 1)) === 0;

function checkBlockSizes(b: NbdBlockSizes | undefined): NbdBlockSizes | undefined {
  if (b === undefined) return undefined;
  const { minimum, preferred, maximum } = b;
  if (!isPowerOfTwo(minimum) || minimum > 65536) throw violation(`minimum block size ${minimum} is not a power of two up to 64 KiB`);
  if (!isPowerOfTwo(preferred) || preferred < Math.max(minimum, 512)) {
    throw violation(`preferred block size ${preferred} is not a power of two ≥ max(minimum, 512)`);
  }
  if (maximum < preferred || (maximum !== 0xffffffff && maximum % minimum !== 0)) {
    throw violation(`maximum block size ${maximum} is below the preferred size or not a multiple of the minimum`);
  }
  return b;
}

function violation(message: string): NbdProtocolError {
  return new NbdProtocolError('invalid-message', `nbd: protocol violation during negotiation: ${message}`);
}
