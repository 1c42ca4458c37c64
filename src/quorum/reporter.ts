/**
 * Emits a quorum's `report-bad` and `failure` events — on the quorum and on
 * `node:diagnostics_channel` — through the optional rate limit.
 */
import type { BlockDriver } from '../driver.js';
import type { BlockError } from '../errors.js';
import type { QuorumChild } from './child.js';
import { failureChannel, reportBadChannel, type QuorumFailure, type QuorumReportBad, type QuorumReportType } from './events.js';
import { ReportLimiter } from './report-limiter.js';
import type { VoteResult } from './vote.js';

/** The rate-limit key of the failure stream; child names never start with a NUL. */
const FAILURE_KEY = '\0failure';

/** Turns vote results into events for one quorum. */
export class QuorumReporter {
  readonly #source: BlockDriver;
  readonly #limiter: ReportLimiter;

  constructor(source: BlockDriver, intervalMs: number) {
    this.#source = source;
    this.#limiter = new ReportLimiter(intervalMs);
  }

  /** Every report of a vote (in the vote's order), then its failure if any. */
  publish(
    vote: VoteResult,
    kids: readonly QuorumChild[],
    errors: readonly (BlockError | undefined)[] | undefined,
    type: QuorumReportType,
    offset: number,
    length: number,
  ): void {
    for (const r of vote.reports) this.reportBad(kids[r.child], type, offset, length, errors?.[r.child]);
    if (vote.failure) this.failure(type === 'read' ? 'read' : 'write', offset, length);
  }

  reportBad(child: QuorumChild, type: QuorumReportType, offset: number, length: number, error?: BlockError): void {
    this.#limiter.submit(child.name, (suppressed) => {
      const event: QuorumReportBad =
        error === undefined
          ? { child: child.name, driver: child.driver, type, offset, length, suppressed }
          : { child: child.name, driver: child.driver, type, offset, length, error, suppressed };
      this.#source.emit('report-bad', event);
      if (reportBadChannel.hasSubscribers) reportBadChannel.publish({ ...event, source: this.#source });
    });
  }

  failure(type: 'read' | 'write', offset: number, length: number): void {
    this.#limiter.submit(FAILURE_KEY, (suppressed) => {
      const event: QuorumFailure = { quorum: this.#source.name, type, offset, length, suppressed };
      this.#source.emit('failure', event);
      if (failureChannel.hasSubscribers) failureChannel.publish({ ...event, source: this.#source });
    });
  }

  /** A child left: deliver what is held about it and forget it. */
  forget(child: QuorumChild): void {
    this.#limiter.forget(child.name);
  }

  /** The quorum closes: deliver everything held now. */
  close(): void {
    this.#limiter.close();
  }
}
