// Micro-benchmark of DirtyBitmap on a 1 TiB device at 64 KiB granules (2 MiB of bits).
// Run: `npm run build && node bench/bitmap.mjs`. BLOCKGRAPH_MODULE=<path> benchmarks another build.
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';

const target = process.env.BLOCKGRAPH_MODULE
  ? pathToFileURL(process.env.BLOCKGRAPH_MODULE).href
  : new URL('../dist/index.js', import.meta.url).href;
const { DirtyBitmap } = await import(target);

const TiB = 2 ** 40;
const G = 64 * 1024;

// A fixed-seed generator so every run measures the same work.
let seed = 0x12345678;
function random() {
  seed ^= seed << 13;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  return (seed >>> 0) / 2 ** 32;
}

function time(label, units, unitName, fn) {
  fn(); // warm up
  const start = performance.now();
  const reps = 5;
  for (let i = 0; i < reps; i++) fn();
  const ms = (performance.now() - start) / reps;
  const rate = units > 0 ? `  ${((units / ms) * 1000).toExponential(2)} ${unitName}/s` : '';
  console.log(`${label.padEnd(58)} ${ms.toFixed(3).padStart(9)} ms${rate}`);
}

const b = new DirtyBitmap({ size: TiB, granularity: G });
console.log(`1 TiB at 64 KiB granules: ${b.granules} bits in ${b.byteLength} bytes`);

const writes = Array.from({ length: 100_000 }, () => Math.floor(random() * (TiB / 4096)) * 4096);
time('set: 100k random 4 KiB writes', 100_000, 'ops', () => {
  for (const off of writes) b.set(off, 4096);
});
time('test: 100k random 4 KiB ranges', 100_000, 'ops', () => {
  for (const off of writes) b.test(off, 4096);
});
time('extents: iterate the ~100k runs', 100_000, 'runs', () => {
  let n = 0;
  for (const _ of b.extents()) n++;
  if (n === 0) throw new Error('no runs');
});
time('count + dirtyBytes: 1M reads', 1_000_000, 'reads', () => {
  let s = 0;
  for (let i = 0; i < 1_000_000; i++) s += b.count + b.dirtyBytes;
  if (s < 0) throw new Error('impossible');
});

const empty = new DirtyBitmap({ size: TiB, granularity: G });
empty.set(TiB - 1, 1);
time('nextDirty: scan 1 TiB of clean bits to the last granule', 0, '', () => {
  if (empty.nextDirty(0) !== TiB - G) throw new Error('wrong answer');
});
const full = new DirtyBitmap({ size: TiB, granularity: G });
full.setAll();
full.clear(TiB - G, G);
time('nextClean: scan 1 TiB of dirty bits to the last granule', 0, '', () => {
  if (full.nextClean(0) !== TiB - G) throw new Error('wrong answer');
});
time('setAll + clearAll on 1 TiB', 0, '', () => {
  full.setAll();
  full.clearAll();
});

time('mirror loop: nextExtent(cursor, 16 MiB) + clear until empty', 100_000, 'extents', () => {
  const m = b.clone();
  let cursor = 0;
  for (let x = m.nextExtent(cursor, 16 * 2 ** 20); x !== undefined; x = m.nextExtent(cursor, 16 * 2 ** 20)) {
    m.clear(x.offset, x.length);
    cursor = x.offset + x.length;
  }
});

let image;
time('serialize (2 MiB image with CRC-32)', 0, '', () => {
  image = b.serialize();
});
time('deserialize (check CRC, rebuild count)', 0, '', () => {
  DirtyBitmap.deserialize(image);
});
const other = new DirtyBitmap({ size: TiB, granularity: G });
other.setAll();
time('merge two 1 TiB bitmaps', 0, '', () => {
  const c = b.clone();
  c.merge(other);
});
