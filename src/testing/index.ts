/**
 * `blockgraph/testing`: fast-check arbitraries and helpers for property-testing block graphs.
 * fast-check is an optional peer dependency, needed only by this entry point.
 */
export {
  blockErrorCodeArb,
  caseBytes,
  childOutcomeSpecArb,
  corruptedCopy,
  corruptionRangeArb,
  outcomeOf,
  quorumCaseArb,
  voteInputOf,
  type ChildOutcomeSpec,
  type ChildOutcomeSpecArbOptions,
  type CorruptionRange,
  type QuorumCase,
  type QuorumCaseArbOptions,
} from './quorum.js';
