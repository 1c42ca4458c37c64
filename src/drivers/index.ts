export { MemoryDriver, type MemoryDriverOptions } from './memory.js';
export { FileDriver, type FileDriverOptions } from './file.js';
