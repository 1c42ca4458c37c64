// blockgraph's NbdServer over a MemoryDriver vs `nbdkit memory`, driven by the same fio client
// (ioengine=nbd, loopback TCP, one job, one connection). Four workloads: 4 KiB randread QD32,
// 4 KiB randwrite QD32, 1 MiB sequential read QD8, 1 MiB sequential write QD8.
//
// Both servers run side by side (an idle one costs nothing) and each workload alternates between
// them A B B A, so a drift in CPU steal on a shared host (it swings within minutes) hits both
// sides alike; each round's ratio is the mean of our two runs over the mean of theirs, and the
// table quotes medians over rounds. Our server runs in its own process so fio and the server do
// not share a JavaScript thread; the machine has 2 cores, so fio and the server each get about one.
//
// The verdict is under this host's TCP congestion control. When that is not cubic (these machines
// run BBR, which paces every burst with timers), the sequential read is measured once more with
// both servers behind listening sockets set to cubic, for information: pacing costs a server that
// sends everything from one thread more than nbdkit, which sends from many.
//
//   npx tsup && node bench/nbd-server.mjs            (BENCH_ROUNDS=2 BENCH_SECONDS=5 by default)
//   BENCH_ONLY="seq read" node bench/nbd-server.mjs    (only the workloads whose name contains it)
//   node bench/nbd-server.mjs --serve PORT SIZE      (internal: the server child)
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { fileURLToPath } from 'node:url';

const SIZE = 256 * 1024 * 1024;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);

// BENCH_ONLY=read (a substring of the workload names) runs only the workloads that match.
const WORKLOADS = [
  { name: '4 KiB randread QD32', rw: 'randread', bs: '4k', depth: 32, unit: 'IOPS' },
  { name: '4 KiB randwrite QD32', rw: 'randwrite', bs: '4k', depth: 32, unit: 'IOPS' },
  { name: '1 MiB seq read QD8', rw: 'read', bs: '1m', depth: 8, unit: 'MiB/s' },
  { name: '1 MiB seq write QD8', rw: 'write', bs: '1m', depth: 8, unit: 'MiB/s' },
].filter((w) => w.name.includes(process.env.BENCH_ONLY ?? ''));

/**
 * Runs a server behind a listening socket whose TCP congestion control is `cc`, handed over by
 * socket activation (LISTEN_FDS): accepted connections inherit it from the listener. Node cannot
 * set socket options, so a few lines of Python make the socket and exec the server in place.
 */
const CC_LAUNCHER = `
import os, socket, sys
cc, port, cmd = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, cc.encode())
s.bind(('127.0.0.1', port))
s.listen(128)
if s.fileno() != 3:
    os.dup2(s.fileno(), 3)
os.set_inheritable(3, True)
os.environ['LISTEN_FDS'] = '1'
os.environ['LISTEN_PID'] = str(os.getpid())
os.execvp(cmd[0], cmd)
`;

if (process.argv[2] === '--serve') {
  await serve(Number(process.argv[3]), Number(process.argv[4]));
} else {
  await main();
}

async function serve(port, size) {
  // BLOCKGRAPH_DIST points at another build (a private copy while others rebuild dist/).
  const { NbdServer, MemoryDriver, socketActivationFds } = await import(process.env.BLOCKGRAPH_DIST ?? '../dist/index.js');
  const server = new NbdServer();
  server.addExport('', new MemoryDriver({ size }));
  // A launcher may hand over the listening socket (see withCongestionControl).
  const fds = socketActivationFds();
  if (fds.length > 0) await server.listen({ fd: fds[0] });
  else await server.listen({ port, host: '127.0.0.1' });
  process.stdout.write('ready\n');
  const stop = () => server.close().then(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

function which(cmd) {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).status === 0;
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function waitForPort(port, child) {
  for (let i = 0; i < 200; i++) {
    if (child.exitCode !== null) throw new Error(`server exited early (${child.exitCode})`);
    const ok = await new Promise((resolve) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`server on port ${port} never came up`);
}

async function startServer(kind, cc = undefined) {
  const port = await freePort();
  const stdio = ['ignore', 'ignore', 'inherit'];
  const command =
    kind === 'blockgraph'
      ? [process.execPath, fileURLToPath(import.meta.url), '--serve', String(port), String(SIZE)]
      : ['nbdkit', '--foreground', '--exit-with-parent', ...(cc === undefined ? ['--ipaddr', '127.0.0.1', '--port', String(port)] : []), 'memory', `size=${SIZE}`];
  const child =
    cc === undefined ? spawn(command[0], command.slice(1), { stdio }) : spawn('python3', ['-c', CC_LAUNCHER, cc, String(port), ...command], { stdio });
  await waitForPort(port, child);
  return {
    uri: `nbd://127.0.0.1:${port}/`,
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
        setTimeout(() => child.kill('SIGKILL'), 3000).unref();
      }),
  };
}

function fio(uri, w, timed) {
  const args = [
    '--name=bench',
    '--ioengine=nbd',
    `--uri=${uri}`,
    `--rw=${w.rw}`,
    `--bs=${w.bs}`,
    `--iodepth=${w.depth}`,
    `--size=${SIZE}`,
    '--numjobs=1',
    '--output-format=json',
    '--randrepeat=0',
  ];
  if (timed) args.push('--time_based', `--runtime=${SECONDS}`, '--ramp_time=1');
  const r = spawnSync('fio', args, { encoding: 'utf8', timeout: (SECONDS + 60) * 1000 });
  if (r.status !== 0) throw new Error(`fio failed (${r.status}): ${r.stderr}`);
  const job = JSON.parse(r.stdout.slice(r.stdout.indexOf('{'))).jobs[0];
  const side = w.rw.includes('read') ? job.read : job.write;
  return w.unit === 'IOPS' ? side.iops : side.bw_bytes / (1024 * 1024);
}

function median(values) {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function fmt(v, unit) {
  return unit === 'IOPS' ? `${(v / 1000).toFixed(1)}k IOPS` : `${(v / 1024).toFixed(2)} GiB/s`;
}

async function main() {
  for (const tool of ['fio', 'nbdkit']) {
    if (!which(tool)) {
      console.log(`bench/nbd-server: ${tool} not installed, skipping`);
      return;
    }
  }
  const hostCc = readFileSync('/proc/sys/net/ipv4/tcp_congestion_control', 'utf8').trim();
  console.log(`fio ioengine=nbd, loopback TCP, 1 job, ${SIZE / 2 ** 20} MiB, ${SECONDS} s per run, ${ROUNDS} rounds of A B B A per workload`);
  console.log(`TCP congestion control: ${hostCc} (this host's default)`);
  table(await measure(WORKLOADS));
  // Pacing congestion controls (BBR) cost a server that does all its sending on one thread more
  // than one that sends from many: show the sequential read again under Linux's stock default,
  // both servers alike, so the figure above can be read for what it is. Information only.
  const seqRead = WORKLOADS.filter((w) => w.rw === 'read');
  const available = readFileSync('/proc/sys/net/ipv4/tcp_available_congestion_control', 'utf8').split(/\s+/);
  if (hostCc !== 'cubic' && seqRead.length > 0) {
    if (!available.includes('cubic') || !which('python3')) {
      console.log('\n(info row skipped: needs python3 and the cubic congestion control module)');
    } else {
      console.log(`\nInformation only — both servers behind listeners set to TCP_CONGESTION=cubic (Linux's default; this host uses ${hostCc}):`);
      table(await measure(seqRead, 'cubic'));
    }
  }
}

/** Runs `workloads` against both servers, ROUNDS rounds of A B B A each. */
async function measure(workloads, cc = undefined) {
  const results = { blockgraph: workloads.map(() => []), nbdkit: workloads.map(() => []) };
  const ratios = workloads.map(() => []);
  for (let round = 0; round < ROUNDS; round++) {
    const servers = { blockgraph: await startServer('blockgraph', cc), nbdkit: await startServer('nbdkit', cc) };
    try {
      // Fill both disks first so reads move real data rather than zeros of a sparse map.
      for (const kind of ['blockgraph', 'nbdkit']) fio(servers[kind].uri, { rw: 'write', bs: '1m', depth: 8, unit: 'MiB/s' }, false);
      workloads.forEach((w, i) => {
        // A B B A, with A alternating per workload and round so neither side always opens.
        const [a, b] = (round + i) % 2 === 0 ? ['blockgraph', 'nbdkit'] : ['nbdkit', 'blockgraph'];
        const runs = { blockgraph: [], nbdkit: [] };
        for (const kind of [a, b, b, a]) runs[kind].push(fio(servers[kind].uri, w, true));
        const ours = mean(runs.blockgraph);
        const theirs = mean(runs.nbdkit);
        results.blockgraph[i].push(ours);
        results.nbdkit[i].push(theirs);
        ratios[i].push(ours / theirs);
        console.log(
          `round ${round + 1} ${w.name.padEnd(22)} blockgraph ${fmt(ours, w.unit).padStart(14)}  nbdkit ${fmt(theirs, w.unit).padStart(14)}  ratio ${(ours / theirs).toFixed(2)}`,
        );
      });
    } finally {
      await servers.blockgraph.stop();
      await servers.nbdkit.stop();
    }
  }
  return { workloads, results, ratios };
}

function table({ workloads, results, ratios }) {
  console.log(`\nMedians over ${ROUNDS} rounds; each round's figure is the mean of its two runs per side.`);
  console.log('| workload | blockgraph (median of rounds) | nbdkit memory (median of rounds) | blockgraph / nbdkit (median of per-round ratios) |');
  console.log('|---|---|---|---|');
  workloads.forEach((w, i) => {
    console.log(
      `| ${w.name} | ${fmt(median(results.blockgraph[i]), w.unit)} | ${fmt(median(results.nbdkit[i]), w.unit)} | ${median(ratios[i]).toFixed(2)}× |`,
    );
  });
}

function mean(values) {
  return values.reduce((a, b) => a + b, 0) / values.length;
}
