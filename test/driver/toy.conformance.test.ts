import { blockDriverSuite } from '../conformance/index.js';
import { ToyDriver } from './toy-driver.js';

// 512-byte sectors, 4 KiB per call, 64 KiB per request, FUA and zeroing emulated by the base
// class, discard a no-op: the suite passing proves the base class splits and aligns correctly.
blockDriverSuite({
  name: 'ToyDriver (512 B sectors, advisory discard, emulated zeroes)',
  factory: ({ size }) => new ToyDriver({ size }),
});

// No block status, discard that deallocates, and a native zeroing that fails with ENOTSUP so
// every writeZeroes goes through the base class fallback.
blockDriverSuite({
  name: 'ToyDriver (no block status, zeroing discard, ENOTSUP zeroing fallback)',
  factory: ({ size }) => new ToyDriver({ size, blockStatus: false, discard: 'zero', zeroFailsNotSup: true }),
  discardReadsZeroes: true,
});
