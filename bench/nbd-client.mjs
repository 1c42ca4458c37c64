// NbdClient sequential read throughput vs nbdcopy (libnbd), both reading 1 GiB from
// `nbdkit pattern 1G` (every byte computed, so neither side reads sparse holes) into a null sink
// over a Unix socket. Rounds alternate the two clients; the reported figure is the median ratio.
// Our side: NbdClient with multi-conn (nbdkit pattern advertises it), many requests in flight,
// readInto() into reusable buffers. nbdcopy runs with its defaults. Both timings include
// connecting and disconnecting.
//
//   npx tsup && node bench/nbd-client.mjs [--rounds N] [--size BYTES] [--connections N]
//                                         [--depth N] [--request BYTES]
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';

// BLOCKGRAPH_DIST points at another build (e.g. a private `tsup --out-dir`), default ../dist.
const dist = process.env.BLOCKGRAPH_DIST ?? new URL('../dist/', import.meta.url).pathname;
const { NbdClient } = await import(join(dist, 'index.js'));

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const ROUNDS = option('rounds', 7);
const SIZE = option('size', 1024 ** 3);
const CONNECTIONS = option('connections', 4);
const DEPTH = option('depth', 16);
const REQUEST = option('request', 1024 * 1024);

for (const tool of ['nbdkit', 'nbdcopy']) {
  if (spawnSync(tool, ['--version'], { stdio: 'ignore' }).status !== 0) {
    console.log(`skipped: ${tool} is not installed`);
    process.exit(0);
  }
}

const dir = mkdtempSync(join(tmpdir(), 'bg-bench-'));
const socket = join(dir, 'nbdkit.sock');
const uri = `nbd+unix:///?socket=${socket}`;
const server = spawn('nbdkit', ['-f', '-U', socket, 'pattern', String(SIZE)], { stdio: 'ignore' });

async function waitForSocket() {
  for (let i = 0; i < 500; i++) {
    const ok = await new Promise((resolve) => {
      const s = connect(socket);
      s.once('connect', () => (s.destroy(), resolve(true)));
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error('nbdkit did not start');
}

async function ours() {
  const started = performance.now();
  const client = await NbdClient.connect(uri, { connections: CONNECTIONS });
  let next = 0;
  const worker = async () => {
    const buffer = Buffer.allocUnsafe(REQUEST);
    for (;;) {
      const offset = next;
      if (offset >= SIZE) return;
      next += REQUEST;
      const length = Math.min(REQUEST, SIZE - offset);
      await client.readInto(offset, length === REQUEST ? buffer : buffer.subarray(0, length));
    }
  };
  await Promise.all(Array.from({ length: DEPTH }, worker));
  await client.close();
  return (performance.now() - started) / 1000;
}

function nbdcopy() {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn('nbdcopy', [uri, 'null:'], { stdio: 'ignore' });
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolve((performance.now() - started) / 1000) : reject(new Error(`nbdcopy exited ${code}`))));
  });
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const gib = SIZE / 1024 ** 3;

try {
  await waitForSocket();
  await ours(); // warm-up: JIT, page cache of nbdkit's plugin, socket buffers
  await nbdcopy();
  const rows = [];
  for (let r = 0; r < ROUNDS; r++) {
    // Alternate which side goes first so drifting CPU steal hits both evenly.
    const first = r % 2 === 0 ? 'ours' : 'nbdcopy';
    const a = first === 'ours' ? await ours() : await nbdcopy();
    const b = first === 'ours' ? await nbdcopy() : await ours();
    const [tOurs, tCopy] = first === 'ours' ? [a, b] : [b, a];
    rows.push({ round: r + 1, nbdcopy: tCopy, ours: tOurs, ratio: tCopy / tOurs });
  }
  console.log(`NbdClient vs nbdcopy: read ${gib} GiB from nbdkit pattern, Unix socket`);
  console.log(`ours: ${CONNECTIONS} connection(s) if multi-conn, ${DEPTH} × ${REQUEST / 1048576} MiB readInto in flight; nbdcopy: defaults`);
  console.log('round | nbdcopy s | GiB/s | NbdClient s | GiB/s | ratio (nbdcopy time / ours)');
  for (const row of rows) {
    console.log(
      `${String(row.round).padStart(5)} | ${row.nbdcopy.toFixed(3).padStart(9)} | ${(gib / row.nbdcopy).toFixed(2).padStart(5)} | ` +
        `${row.ours.toFixed(3).padStart(11)} | ${(gib / row.ours).toFixed(2).padStart(5)} | ${row.ratio.toFixed(2)}×`,
    );
  }
  console.log(
    `median | ${median(rows.map((r) => r.nbdcopy)).toFixed(3).padStart(8)} | ${(gib / median(rows.map((r) => r.nbdcopy))).toFixed(2).padStart(5)} | ` +
      `${median(rows.map((r) => r.ours)).toFixed(3).padStart(11)} | ${(gib / median(rows.map((r) => r.ours))).toFixed(2).padStart(5)} | ` +
      `${median(rows.map((r) => r.ratio)).toFixed(2)}× (median ratio; target ≥ 1.00×)`,
  );
} finally {
  server.kill('SIGTERM');
  await new Promise((resolve) => {
    const t = setTimeout(() => (server.kill('SIGKILL'), resolve()), 3000);
    server.once('exit', () => (clearTimeout(t), resolve()));
  });
  rmSync(dir, { recursive: true, force: true });
}
