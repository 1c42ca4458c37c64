// blockgraph demo: a 2-of-3 quorum survives a corrupted replica, names it, and repairs it.
// Run with `npm run demo` (builds dist/ first).
import { FaultInjector, MemoryDriver, Quorum } from '../dist/index.js';

const MiB = 1024 * 1024;
const ok = (text) => console.log(`  \u2714 ${text}`);
const step = (text) => console.log(`\n${text}`);
const fail = (text) => {
  console.error(`  \u2718 ${text}`);
  process.exit(1);
};
const same = (a, b) => Buffer.from(a).equals(Buffer.from(b));

step('1. Three in-memory disks of 4 MiB, each behind a fault injector, under a 2-of-3 quorum');
const disks = [0, 1, 2].map((i) => new MemoryDriver({ size: 4 * MiB, name: `disk${i}` }));
const faults = disks.map((d, i) => new FaultInjector(d, { name: `faulty-disk${i}` }));
const quorum = new Quorum({ children: faults, threshold: 2, rewriteCorrupted: true });
const reports = [];
quorum.on('report-bad', (e) => reports.push(e));
quorum.on('failure', (e) => console.log(`  (failure event: ${e.type} ${e.offset}+${e.length})`));
ok(`children: ${quorum.members.map((m) => m.name).join(', ')}; threshold ${quorum.threshold}, rewriteCorrupted on`);

step('2. Write 1 MiB of data through the quorum');
const data = new Uint8Array(MiB).map((_, i) => (i * 7 + 3) & 0xff);
await quorum.write(MiB, data);
for (const d of disks) if (!same(await d.read(MiB, MiB), data)) fail(`${d.name} did not get the write`);
ok('every disk holds the same bytes');

step('3. Disk 1 starts returning corrupted data (every byte flipped) on reads');
faults[1].addRule({ ops: ['read'], corrupt: true, range: { offset: MiB, length: MiB } });
const back = await quorum.read(MiB, MiB);
if (!same(back, data)) fail('the quorum returned corrupted data');
ok('the read still returns the right data: 2 good copies outvote 1 bad one');
const named = reports.map((r) => `${r.child} (${r.type}${r.error ? `, ${r.error.code}` : ', outvoted'})`);
if (named.length !== 1 || reports[0].child !== 'children.1' || reports[0].driver !== faults[1]) fail(`unexpected reports: ${named}`);
ok(`report-bad names the culprit: ${named.join(', ')}`);

step('4. The corruption is now on disk 1 itself (bit rot), not just in transit');
faults[1].clearRules();
const rot = new Uint8Array(4096).fill(0xee);
await disks[1].write(MiB + 8192, rot);
reports.length = 0;
const again = await quorum.read(MiB, MiB);
if (!same(again, data)) fail('the quorum returned corrupted data');
ok(`read correct again; reported: ${reports.map((r) => r.child).join(', ')}`);
if (!same(await disks[1].read(MiB, MiB), data)) fail('disk 1 was not repaired');
ok('rewriteCorrupted wrote the winning copy back: disk 1 is repaired');
reports.length = 0;
await quorum.read(MiB, MiB);
if (reports.length !== 0) fail('a repaired quorum still reports');
ok('the next read takes the fast path: all copies agree, no reports');

step('5. Two disks corrupted differently: no majority, so the quorum refuses to guess');
await disks[0].write(0, new Uint8Array(512).fill(1));
await disks[2].write(0, new Uint8Array(512).fill(2));
try {
  await quorum.read(0, 512);
  fail('a read without a majority succeeded');
} catch (err) {
  ok(`read fails with ${err.code}: ${err.message.replace(/^quorum: /, '')}`);
}

await quorum.close();
console.log('\nDone: the quorum kept serving correct data, named the bad replica and repaired it.');
