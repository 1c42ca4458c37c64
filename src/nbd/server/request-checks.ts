/**
 * Validation of transmission requests before they reach a driver: flags a command does not take,
 * ranges past the export, misalignment, oversized payloads and writes to read-only exports get the
 * error the NBD spec names, and the driver is never called for them.
 */
import type { BlockErrorCode } from '../../errors.js';
import { Cmd, CmdFlag, TransmissionFlag, type NbdRequest } from '../protocol/index.js';

/** What a request is checked against: the export as negotiated. */
export interface RequestContext {
  readonly size: number;
  /** Transmission flags sent to the client. */
  readonly flags: number;
  readonly structured: boolean;
  readonly extended: boolean;
  /** base:allocation was selected for this export. */
  readonly allocationSelected: boolean;
  /** Advertised (or enforced) minimum block size: offsets and lengths must be multiples. */
  readonly minBlockSize: number;
  /** Largest READ or WRITE payload. */
  readonly maxPayload: number;
}

/** A refused request: the BlockError code to answer with (mapped to NBD by `nbdErrorValue`). */
export interface RequestRefusal {
  readonly code: BlockErrorCode;
  readonly message: string;
}

const KNOWN_FLAGS = CmdFlag.FUA | CmdFlag.NO_HOLE | CmdFlag.DF | CmdFlag.REQ_ONE | CmdFlag.FAST_ZERO | CmdFlag.PAYLOAD_LEN;

/** Flags each command accepts besides FUA (which every command may carry, as qemu's server allows). */
function allowedFlags(type: number, ctx: RequestContext): number {
  let allowed = CmdFlag.FUA;
  if (ctx.extended && type === Cmd.WRITE) allowed |= CmdFlag.PAYLOAD_LEN;
  switch (type) {
    case Cmd.READ:
      if (ctx.structured) allowed |= CmdFlag.DF;
      break;
    case Cmd.WRITE_ZEROES:
      allowed |= CmdFlag.NO_HOLE;
      if ((ctx.flags & TransmissionFlag.SEND_FAST_ZERO) !== 0) allowed |= CmdFlag.FAST_ZERO;
      break;
    case Cmd.BLOCK_STATUS:
      allowed |= CmdFlag.REQ_ONE;
      break;
  }
  return allowed;
}

function refuse(code: BlockErrorCode, message: string): RequestRefusal {
  return { code, message };
}

/**
 * Checks one request (not DISC). Returns undefined when the driver may run it, or the refusal to
 * send back. Requests of length 0 pass: they succeed without work (peers differ; disconnecting is
 * the one thing the spec rules out).
 */
export function checkRequest(req: NbdRequest, ctx: RequestContext): RequestRefusal | undefined {
  const { type, flags, offset, length } = req;
  if (req.error !== undefined) return refuse(req.error, req.errorMessage ?? 'invalid request');
  const isKnown = type <= Cmd.BLOCK_STATUS && type !== Cmd.DISC;
  if (!isKnown) return refuse('EINVAL', `unknown command ${type}`);
  if ((flags & ~KNOWN_FLAGS) !== 0) return refuse('EINVAL', `unknown command flags 0x${flags.toString(16)}`);
  const bad = flags & ~allowedFlags(type, ctx);
  if (bad !== 0) return refuse('EINVAL', `flags 0x${bad.toString(16)} are not valid for command ${type}`);
  // Under extended headers any command may carry a payload the parser consumed; only WRITE takes one.
  if (type !== Cmd.WRITE && (flags & CmdFlag.PAYLOAD_LEN) !== 0) return refuse('EINVAL', `command ${type} takes no payload`);
  // FLUSH has no range; the spec has clients send zero offset and length, and we hold them to it.
  if (type === Cmd.FLUSH) return offset !== 0 || length !== 0 ? refuse('EINVAL', 'FLUSH with a nonzero offset or length') : undefined;

  const readOnly = (ctx.flags & TransmissionFlag.READ_ONLY) !== 0;
  const writes = type === Cmd.WRITE || type === Cmd.TRIM || type === Cmd.WRITE_ZEROES;
  if (writes && readOnly) return refuse('EPERM', 'export is read-only');
  if ((type === Cmd.READ || type === Cmd.WRITE) && length > ctx.maxPayload) {
    return refuse('EINVAL', `length ${length} exceeds the maximum payload ${ctx.maxPayload}`);
  }
  if (offset > ctx.size || length > ctx.size - offset) {
    const code = type === Cmd.WRITE || type === Cmd.WRITE_ZEROES ? 'ENOSPC' : 'EINVAL';
    return refuse(code, `range ${offset}+${length} ends past the export size ${ctx.size}`);
  }
  const min = ctx.minBlockSize;
  if (min > 1 && (offset % min !== 0 || length % min !== 0)) {
    return refuse('EINVAL', `range ${offset}+${length} is not aligned to ${min} bytes`);
  }
  if (type === Cmd.BLOCK_STATUS) {
    if (!ctx.allocationSelected) return refuse('EINVAL', 'no metadata context was negotiated');
    if (length === 0) return refuse('EINVAL', 'block status of an empty range');
  }
  return undefined;
}
