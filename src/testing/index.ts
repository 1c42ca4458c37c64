/**
 * `blockgraph/testing`: fast-check arbitraries and helpers for property-testing block graphs.
 * fast-check is an optional peer dependency, needed only by this entry point.
 */
export {
  blockErrorCodeArb,
  childOutcomeSpecArb,
  corruptedCopy,
  outcomeOf,
  quorumCaseArb,
  voteInputOf,
  type ChildOutcomeSpec,
  type ChildOutcomeSpecArbOptions,
  type QuorumCase,
  type QuorumCaseArbOptions,
} from './quorum.js';
