import { blockDriverSuite } from '../conformance/index.js';
import { FilterDriver } from '../../src/filter.js';
import { MemoryDriver } from '../../src/drivers/memory.js';
import { ToyDriver } from './toy-driver.js';

blockDriverSuite({
  name: 'FilterDriver over MemoryDriver',
  factory: ({ size }) => new FilterDriver(new MemoryDriver({ size })),
  discardReadsZeroes: true,
});

blockDriverSuite({
  name: 'FilterDriver over FilterDriver over ToyDriver',
  factory: ({ size }) => new FilterDriver(new FilterDriver(new ToyDriver({ size }))),
});
