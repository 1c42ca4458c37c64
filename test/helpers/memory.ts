/**
 * Measuring what a test makes this process hold. `process.memoryUsage().arrayBuffers` also counts
 * buffers already dropped but not yet collected, so a measurement forces a full collection first.
 */
import v8 from 'node:v8';
import vm from 'node:vm';

let gcFn: (() => void) | undefined;

/** Runs a full garbage collection (exposing `gc` for this process on first use). */
export function collectGarbage(): void {
  if (gcFn === undefined) {
    v8.setFlagsFromString('--expose-gc');
    gcFn = vm.runInNewContext('gc') as () => void;
  }
  gcFn();
  gcFn();
}

/** Bytes held in ArrayBuffers (Buffers included) after a full collection. */
export function liveArrayBufferBytes(): number {
  collectGarbage();
  return process.memoryUsage().arrayBuffers;
}
