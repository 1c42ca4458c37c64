/**
 * The standard filters: each wraps one child and changes one thing about it.
 */
export { BLOCK_OPS, type BlockOp } from './ops.js';
export {
  FaultInjector,
  type FaultEvent,
  type FaultInjectorEvents,
  type FaultInjectorOptions,
  type FaultOp,
  type FaultRule,
} from './fault-injector.js';
export { Delay, type DelayFunction, type DelayOptions, type DelayTable } from './delay.js';
export { Throttle, type ThrottleLimits, type ThrottleOptions } from './throttle.js';
export { Slice, type SliceOptions } from './slice.js';
export { Offset, type OffsetOptions } from './offset.js';
export { ReadOnly } from './read-only.js';
export { Stats, type OpStats, type StatsOptions, type StatsSnapshot } from './stats.js';
