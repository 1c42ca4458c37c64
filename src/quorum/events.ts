/**
 * Quorum events: their payloads, the diagnostics channels they are also published on, and the
 * optional per-child rate limit.
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
  /** Reports about this child dropped by the rate limit since the last one emitted (0 without a limit). */
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
  /** Failure events dropped by the rate limit since the last one emitted. */
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

/**
 * Lets at most one event per key through per interval, counting the ones it drops so the next
 * event can say how many were suppressed. An interval of 0 lets everything through.
 */
export class ReportLimiter {
  readonly #intervalMs: number;
  readonly #last = new Map<string, { at: number; dropped: number }>();

  constructor(intervalMs: number) {
    this.#intervalMs = intervalMs;
  }

  /** Returns the number suppressed before this event when it may go out, or undefined to drop it. */
  admit(key: string): number | undefined {
    if (this.#intervalMs <= 0) return 0;
    const now = Date.now();
    const entry = this.#last.get(key);
    if (entry !== undefined && now - entry.at < this.#intervalMs) {
      entry.dropped++;
      return undefined;
    }
    this.#last.set(key, { at: now, dropped: 0 });
    return entry?.dropped ?? 0;
  }

  /** Forgets a key (a removed child), so a later child of the same name starts fresh. */
  forget(key: string): void {
    this.#last.delete(key);
  }
}
