/**
 * blockgraph: composable block drivers for Node.js.
 *
 * @packageDocumentation
 */
export {
  BlockError,
  BLOCK_ERROR_CODES,
  NBD_ERROR_VALUES,
  codeFromNbdError,
  isBlockError,
  mostCommonCode,
  nbdErrorValue,
  toBlockError,
  type BlockErrorCode,
  type BlockErrorDetails,
  type BlockErrorOptions,
} from './errors.js';
export {
  DEFAULT_LIMITS,
  NO_CAPABILITIES,
  type BlockCapabilities,
  type BlockExtent,
  type BlockLimits,
  type DiscardOptions,
  type DriverState,
  type IoOptions,
  type ReadLease,
  type WriteOptions,
  type WriteZeroesOptions,
} from './types.js';
export { BlockDriver, isBlockDriver, type BlockDriverEvents, type BlockDriverOptions } from './driver.js';
export { normalizeExtents } from './extents.js';
export { describeGraph, type DriverDescription } from './describe.js';
export { FilterDriver, type FilterOptions } from './filter.js';
export * from './drivers/index.js';
export * from './filters/index.js';
export * from './bitmap/index.js';
export * from './quorum/index.js';
export * from './nbd/index.js';
export * from './buffers/index.js';
