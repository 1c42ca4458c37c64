/**
 * The errors a quorum request fails with. Each names the quorum, says which rule failed, and keeps
 * every child's error (by child name) in `details.children` so nothing is lost.
 */
import { abortCode } from '../abort-code.js';
import { BlockError, type BlockErrorCode } from '../errors.js';
import type { QuorumChild } from './child.js';

/** Facts about one failed quorum request. */
export interface FailureContext {
  readonly quorum: string;
  readonly op: string;
  readonly offset: number;
  readonly length: number;
  readonly children: readonly QuorumChild[];
  /** Error of each child, undefined where it succeeded. */
  readonly errors: readonly (BlockError | undefined)[];
}

function childErrors(ctx: FailureContext): Record<string, string> {
  const out: Record<string, string> = {};
  ctx.errors.forEach((e, i) => {
    if (e !== undefined) out[ctx.children[i].name] = e.code;
  });
  return out;
}

function details(ctx: FailureContext, extra: Record<string, unknown> = {}) {
  return { op: ctx.op, offset: ctx.offset, length: ctx.length, driver: ctx.quorum, children: childErrors(ctx), ...extra };
}

/** Too few children succeeded: the voted code, caused by the first child error with that code. */
export function tooFewSucceeded(ctx: FailureContext, code: BlockErrorCode, threshold: number): BlockError {
  const ok = ctx.errors.filter((e) => e === undefined).length;
  const cause = ctx.errors.find((e) => e?.code === code);
  const summary = Object.entries(childErrors(ctx))
    .map(([name, c]) => `${name} ${c}`)
    .join(', ');
  return new BlockError(
    code,
    `${ctx.quorum}: ${ctx.op} failed: ${ok} of ${ctx.children.length} children succeeded, ${threshold} needed (${summary})`,
    { cause, details: details(ctx, { threshold }) },
  );
}

/** Children succeeded but no version of the data reached the threshold. */
export function noMajority(ctx: FailureContext, threshold: number): BlockError {
  return new BlockError(
    'EIO',
    `${ctx.quorum}: read failed: the children disagree and no version of the data has ${threshold} votes`,
    { details: details(ctx, { threshold }) },
  );
}

/** blkverify: the two children returned different bytes. */
export function blkverifyMismatch(ctx: FailureContext, relative: number): BlockError {
  const at = ctx.offset + relative;
  return new BlockError(
    'EIO',
    `${ctx.quorum}: blkverify: contents mismatch at offset ${at} between ${ctx.children[0].name} and ${ctx.children[1].name} ` +
      `(read ${ctx.offset}+${ctx.length})`,
    { details: details(ctx, { mismatchOffset: at }) },
  );
}

/** Every child of a fifo-style read failed: the last error's code, caused by it. */
export function everyChildFailed(ctx: FailureContext, last: number): BlockError {
  const err = ctx.errors[last] as BlockError;
  return new BlockError(
    err.code,
    `${ctx.quorum}: read failed on every child; last was ${ctx.children[last].name}: ${err.message}`,
    { cause: err, details: details(ctx) },
  );
}

/**
 * The caller's signal fired while children were reading: whatever the children answered (a child
 * honouring the signal fails with ECANCELED), the read is the caller's to cancel, and nobody is blamed.
 */
export function readAborted(quorum: string, offset: number, length: number, signal: AbortSignal): BlockError {
  return new BlockError(abortCode(signal), `${quorum}: read aborted`, {
    cause: signal.reason,
    details: { op: 'read', offset, length, driver: quorum },
  });
}
