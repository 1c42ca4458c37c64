// A 2-of-3 quorum surviving one corrupted child: the smallest complete example.
import assert from 'node:assert/strict';
import { FaultInjector, MemoryDriver, Quorum, quorumVote } from '../dist/index.js';

const children = [0, 1, 2].map(() => new FaultInjector(new MemoryDriver({ size: 1 << 20 })));
const quorum = new Quorum({ children, threshold: 2 });
quorum.on('report-bad', ({ child, type, error }) => console.log(`report-bad: ${child} ${type}${error ? ` ${error.code}` : ''}`));

await quorum.write(0, Buffer.from('hello, replicated world'));
children[2].addRule({ ops: ['read'], corrupt: true }); // child 2 now lies on every read

const text = Buffer.from(await quorum.read(0, 23)).toString();
console.log(`read: ${text}`);
assert.equal(text, 'hello, replicated world');

// The same decision, without any I/O: the pure vote function.
const good = Buffer.from('abc');
const verdict = quorumVote({
  threshold: 2,
  outcomes: [{ ok: true, data: good }, { ok: true, data: good }, { ok: true, data: Buffer.from('xyz') }],
});
assert.deepEqual(verdict.reports, [{ child: 2 }]);
console.log(`quorumVote: ok=${verdict.ok}, source=children.${verdict.source}, reports=${JSON.stringify(verdict.reports)}`);

await quorum.close();
