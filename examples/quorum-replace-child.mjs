// Replacing a failed replica while writes keep coming: removeChild, then addChild with `sync`,
// which runs while writes are held, so the copy it makes is exact.
import assert from 'node:assert/strict';
import { Delay, FaultInjector, MemoryDriver, Quorum } from '../dist/index.js';

const SIZE = 1 << 20;
const disk = (name) => new FaultInjector(new Delay(new MemoryDriver({ size: SIZE, name }), { delays: { write: 2 } }));
const children = [disk('a'), disk('b'), disk('c')];
const quorum = new Quorum({ children, threshold: 2 });
quorum.on('report-bad', ({ child, type, error }) => console.log(`report-bad: ${child} ${type} ${error?.code ?? 'outvoted'}`));

// A writer that never stops while the replica is replaced.
let writing = true;
let written = 0;
const writer = (async () => {
  for (let i = 0; writing; i++, written++) await quorum.write((i % 64) * 4096, new Uint8Array(4096).fill(i & 0xff));
})();

await new Promise((r) => setTimeout(r, 20));
children[1].failAll('EIO'); // disk b dies; writes still succeed 2 of 3
await new Promise((r) => setTimeout(r, 20));
await quorum.removeChild(children[1]);
console.log(`removed children.1; ${written} writes so far`);

const fresh = new MemoryDriver({ size: SIZE, name: 'd' });
const name = await quorum.addChild(fresh, {
  // Runs once the writes in flight have finished and while new ones are held: copy a good replica.
  sync: async () => fresh.write(0, await children[0].read(0, SIZE)),
});
console.log(`added ${name}; ${written} writes so far`);

await new Promise((r) => setTimeout(r, 20));
writing = false;
await writer;

// Every replica is identical, the new one included, though writes never paused for long.
const want = Buffer.from(await children[0].read(0, SIZE));
for (const d of quorum.children) assert.ok(want.equals(await d.read(0, SIZE)), `${d.name} differs`);
console.log(`${written} writes in all; ${quorum.members.map((m) => m.name).join(', ')} hold identical data`);
await quorum.close();
