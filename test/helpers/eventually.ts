/** Bounded polling for tests that wait on something asynchronous they cannot await directly. */
import { sleep } from './peers.js';

/** Polls `condition` every 10 ms for at most `ms`; whether it came true. */
export async function eventually(condition: () => boolean | Promise<boolean>, ms: number): Promise<boolean> {
  for (let waited = 0; waited < ms; waited += 10) {
    if (await condition()) return true;
    await sleep(10);
  }
  return condition();
}
