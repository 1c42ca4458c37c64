export { MemoryDriver, type MemoryDriverOptions } from './memory.js';
