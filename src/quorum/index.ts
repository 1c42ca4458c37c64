/**
 * Quorum: N-way replication with voting reads, after QEMU's quorum driver (see docs/quorum.md).
 */
export { Quorum } from './quorum.js';
export type { AddChildOptions, QuorumOptions } from './options.js';
export type { QuorumMember } from './child.js';
export {
  QUORUM_CHANNELS,
  type QuorumEvents,
  type QuorumFailure,
  type QuorumReportBad,
  type QuorumReportType,
} from './events.js';
export {
  quorumVote,
  firstDifference,
  READ_PATTERNS,
  type ChildOutcome,
  type ReadPattern,
  type VoteInput,
  type VoteOp,
  type VoteReport,
  type VoteResult,
} from './vote.js';
