/**
 * Quorum events: their payloads and the diagnostics channels they are also published on. The
 * optional rate limit is in report-limiter.ts.
 */
import diagnosticsChannel from 'node:diagnostics_channel';
import type { BlockDriver, BlockDriverEvents } from '../driver.js';
import type { BlockError } from '../errors.js';

/** Operation a `report-bad` is about. Discard and write-zeroes count as `write`, as in QEMU. */
export type QuorumReportType = 'read' | 'write' | 'flush';

/** A child failed a request or returned data that lost a vote (QEMU's QUORUM_REPORT_BAD). */
export interface QuorumReportBad {
  /** Stable name of the child, `children.<n>`. */
  readonly child: string;
  /** The child's driver. */
  readonly driver: BlockDriver;
  readonly type: QuorumReportType;
  /** Range of the request (0 and 0 for a flush). */
  readonly offset: number;
  readonly length: number;
  /** The child's error; absent when the child answered data that lost the vote. */
  readonly error?: BlockError;
  /**
   * Reports about this child dropped by the rate limit in favour of this one since the last one
   * emitted (always 0 without a limit).
   */
  readonly suppressed: number;
}

/** A request failed because too few children succeeded or agreed (QEMU's QUORUM_FAILURE). */
export interface QuorumFailure {
  /** Name of the quorum node. */
  readonly quorum: string;
  /** `read` or `write` (discard and write-zeroes count as `write`). */
  readonly type: 'read' | 'write';
  readonly offset: number;
  readonly length: number;
  /** Failure events dropped by the rate limit in favour of this one since the last one emitted. */
  readonly suppressed: number;
}

/** Events of a {@link Quorum} in addition to every driver's. */
export interface QuorumEvents extends BlockDriverEvents {
  'report-bad': [QuorumReportBad];
  failure: [QuorumFailure];
}

/**
 * `node:diagnostics_channel` names. Messages are the event payloads plus `source`, the Quorum
 * instance, so one subscriber can watch every quorum in a process.
 */
export const QUORUM_CHANNELS = Object.freeze({
  reportBad: 'blockgraph:quorum:report-bad',
  failure: 'blockgraph:quorum:failure',
});

/** The channels, created once per process (diagnostics_channel returns the same object per name). */
export const reportBadChannel = diagnosticsChannel.channel(QUORUM_CHANNELS.reportBad);
export const failureChannel = diagnosticsChannel.channel(QUORUM_CHANNELS.failure);
