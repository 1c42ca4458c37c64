// Quorum overhead benchmark: 1 MiB requests through a 3-child Quorum versus one MemoryDriver.
// Run after a build: `node bench/quorum.mjs` (or through `npm run bench`).
//
// Each round times a short batch on the baseline and on the quorum back to back (in alternating
// order, so neither always runs on a warmer heap) and records throughput(quorum) /
// throughput(baseline). The printed figure is the median ratio over the rounds, which keeps
// it steady on a machine shared with other work.
//
// Two settings:
// - "in-memory": children are bare MemoryDrivers. Every child costs a real 1 MiB memcpy on the one
//   JavaScript thread, so a quorum of 3 cannot overlap them: this shows the CPU cost of replication.
// - "device latency": every request to a disk (the baseline's and each child's) first waits
//   LATENCY_MS, like a local SSD or a network replica. Here children work in parallel, which is
//   what the targets describe: the quorum should cost little more than one disk.
import { performance } from 'node:perf_hooks';
import { BlockDriver, Delay, MemoryDriver, Quorum } from '../dist/index.js';

const MiB = 1024 * 1024;
const SIZE = 64 * MiB;
const ROUNDS = Number(process.env.ROUNDS ?? 41);
const LATENCY_MS = Number(process.env.LATENCY_MS ?? 1);

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
};

/** A disk: a MemoryDriver, optionally behind a fixed per-request delay. */
function disk(latency) {
  const mem = new MemoryDriver({ size: SIZE });
  return latency > 0 ? new Delay(mem, { delays: { read: latency, write: latency } }) : mem;
}

async function prefill(driver, data) {
  for (let off = 0; off < SIZE; off += MiB) await driver.write(off, data);
}

/** Bytes per millisecond of `op` over `n` requests at queue depth `depth`. */
async function throughput(op, n, depth) {
  let next = 0;
  const t0 = performance.now();
  const worker = async () => {
    while (next < n) {
      const i = next++;
      await op((i * MiB) % SIZE);
    }
  };
  await Promise.all(Array.from({ length: depth }, worker));
  return (n * MiB) / (performance.now() - t0);
}

async function compare(label, target, { latency, batch, depth }) {
  const data = new Uint8Array(MiB).map((_, i) => i & 0xff);
  const single = disk(latency);
  const children = [disk(latency), disk(latency), disk(latency)];
  const quorum = new Quorum({ children, threshold: 2, readPattern: target === 'fifo read' ? 'fifo' : 'quorum' });
  await prefill(single, data);
  await prefill(quorum, data);
  const buf = new Uint8Array(MiB);
  const run = (d) => (target === 'write' ? (off) => d.write(off, data) : (off) => d.readInto(off, buf));
  // Short interleaved batches: a load spike from another process hits both sides of a pair alike.
  const ratios = [];
  for (let round = 0; round < ROUNDS + 2; round++) {
    const [first, second] = round % 2 === 0 ? [single, quorum] : [quorum, single];
    const t1 = await throughput(run(first), batch, depth);
    const t2 = await throughput(run(second), batch, depth);
    const [b, q] = first === single ? [t1, t2] : [t2, t1];
    if (round >= 2) ratios.push(q / b); // the first two rounds warm up the JIT
  }
  await quorum.close();
  await single.close();
  const r = median(ratios);
  console.log(`  ${label.padEnd(56)} ${r.toFixed(2)}x`);
  return r;
}

const targets = { write: 0.9, 'fifo read': 0.95, 'vote read': 0.5 };
// What a single thread can do at best in memory: a write copies N MiB instead of 1; a vote read
// copies N MiB and compares N − 1 copies instead of copying 1 MiB.
const cpuBound = { write: '≈ 1/3 (3 copies)', 'fifo read': '≈ 1 (one child read)', 'vote read': '≈ 1/5 (3 copies + 2 compares)' };
if (!(BlockDriver && Delay)) throw new Error('build dist/ first (npm run build)');

console.log(`Quorum of 3 vs one MemoryDriver, 1 MiB requests, median of ${ROUNDS} interleaved rounds (throughput ratio)`);
console.log(`\nin-memory, queue depth 1 (the children's memcpy all run on the one JavaScript thread):`);
for (const t of Object.keys(targets)) await compare(`${t} [best possible ${cpuBound[t]}]`, t, { latency: 0, batch: 16, depth: 1 });

console.log(`\ndevice latency ${LATENCY_MS} ms per request, queue depth 1 (issue targets in brackets):`);
let met = true;
for (const [t, goal] of Object.entries(targets)) {
  const r = await compare(`${t} [≥ ${goal}x]`, t, { latency: LATENCY_MS, batch: 8, depth: 1 });
  if (r < goal) met = false;
}
console.log(met ? '\nall latency targets met' : '\nsome latency targets NOT met');
