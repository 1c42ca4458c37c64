export { bufferHolds, releaseBuffer, retainBuffer, trackBuffer } from './ownership.js';
export { BufferPool } from './pool.js';
