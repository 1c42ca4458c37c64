// A 2-of-2 replicated disk whose second replica lives behind an NBD server, reached over TLS with
// a pre-shared key — the shape of a primary forwarding every write to a secondary. Both ends run
// in this process on loopback here; in practice the server runs on the other machine.
//
//   node examples/nbd-replica-over-tls.mjs
//
// Run `npx tsup` first: the example imports the built package.
import { randomBytes } from 'node:crypto';
import { MemoryDriver, NbdClient, NbdServer, Quorum } from 'blockgraph';

const MiB = 1024 * 1024;
const key = randomBytes(32); // in a real deployment: the `identity:hexkey` file both ends read

// The secondary: an NBD export that only TLS clients holding the key may open.
const secondaryDisk = new MemoryDriver({ size: 64 * MiB });
const server = new NbdServer({ tls: { psk: new Map([['primary', key]]) } });
server.addExport('replica', secondaryDisk);
const { port } = await server.listen({ port: 0, host: '127.0.0.1' });

// The primary: its own disk plus the remote replica, every write acknowledged by both.
const remote = await NbdClient.connect(`nbds://127.0.0.1:${port}/replica`, { tls: { psk: { identity: 'primary', key } } });
console.log('remote replica:', remote.info.uri, `tls=${remote.info.tls}`, `replies=${remote.info.replyMode}`);
const disk = new Quorum({ children: [new MemoryDriver({ size: 64 * MiB }), remote], threshold: 2, closeChildren: true });

const data = randomBytes(4 * MiB);
await disk.write(8 * MiB, data, { fua: true });
const back = await secondaryDisk.read(8 * MiB, data.length);
const same = Buffer.from(back).equals(data);
console.log(`wrote 4 MiB through the quorum; the secondary holds the same bytes: ${same}`);

// A client without the key gets nowhere.
const intruder = await NbdClient.connect(`nbds://127.0.0.1:${port}/replica`, { tls: { psk: { identity: 'primary', key: randomBytes(32) } } }).then(
  (client) => client,
  (err) => {
    console.log(`wrong key refused: ${err.code}`);
    return undefined;
  },
);
if (intruder !== undefined) {
  await intruder.close();
  throw new Error('a wrong key was accepted');
}

await disk.close();
await server.close();
await secondaryDisk.close();
if (!same) process.exit(1);
