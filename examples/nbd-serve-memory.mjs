// Serves a sparse in-memory disk over NBD.
//
//   node examples/nbd-serve-memory.mjs 1G --port 10809     serve on 127.0.0.1:10809 until Ctrl-C
//   node examples/nbd-serve-memory.mjs 1G --unix /tmp/nbd.sock
//   nbdinfo --json -- [ node examples/nbd-serve-memory.mjs 1M ]
//                                                           socket activation: the launcher passes
//                                                           a listening socket as fd 3 (LISTEN_FDS)
//   node examples/nbd-serve-memory.mjs                      no launcher, no --port: a short self-test
//                                                           that serves on a free port, connects,
//                                                           shows the greeting and exits
//
// Run `npx tsup` first: the example imports the built package.
import { connect } from 'node:net';
import { MemoryDriver, NbdServer, socketActivationFds } from 'blockgraph';

const args = process.argv.slice(2);
// The size is the first argument that is neither a --flag nor a flag's value.
const sizeArg = args.find((a, i) => !a.startsWith('--') && !(args[i - 1] ?? '').startsWith('--')) ?? '64M';
const size = parseSize(sizeArg);
const option = (name) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};

const server = new NbdServer();
server.addExport('', new MemoryDriver({ size }), { description: `blockgraph memory disk (${sizeArg})` });

const stop = async () => {
  await server.close();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

const fds = socketActivationFds();
if (fds.length > 0) {
  // Launched by systemd, nbdinfo, nbdcopy…: serve on the inherited sockets until killed.
  for (const fd of fds) await server.listen({ fd });
} else if (option('--port') !== undefined) {
  const addr = await server.listen({ port: Number(option('--port')) });
  console.log(`serving ${size} bytes on nbd://${addr.address}:${addr.port}/`);
} else if (option('--unix') !== undefined) {
  await server.listen({ path: option('--unix') });
  console.log(`serving ${size} bytes on nbd+unix:///?socket=${option('--unix')}`);
} else {
  const addr = await server.listen({ port: 0 });
  const greeting = await new Promise((resolve, reject) => {
    const s = connect(addr.port, addr.address);
    s.once('data', (b) => {
      s.destroy();
      resolve(b);
    });
    s.once('error', reject);
  });
  console.log(`self-test: nbd://${addr.address}:${addr.port}/ greets with ${greeting.subarray(0, 16).toString('latin1')}`);
  await server.close();
}

function parseSize(text) {
  const m = /^(\d+)([KMGT]?)$/i.exec(text);
  if (m === null) throw new Error(`bad size ${text}: use e.g. 1048576, 64K, 1M, 2G`);
  const shift = { '': 0, K: 10, M: 20, G: 30, T: 40 }[m[2].toUpperCase()];
  return Number(m[1]) * 2 ** shift;
}
