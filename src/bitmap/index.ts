/**
 * Dirty bitmaps: which granules of a device changed, for mirror jobs, quorum resync and COLO.
 */
export {
  DirtyBitmap,
  DEFAULT_BITMAP_GRANULARITY,
  type DirtyBitmapOptions,
  type DirtyExtent,
} from './dirty-bitmap.js';
export { BITMAP_FORMAT_VERSION, BITMAP_MAGIC } from './format.js';
