// Micro-benchmark of the NBD protocol codec (src/nbd/protocol): parser and serializer cost per
// message on the shapes that matter for the server's targets (4 KiB random I/O at QD32, 1 MiB
// sequential), fed in 64 KiB chunks the way a socket delivers them. For context it also runs a
// naive parser (Buffer.concat of a growing buffer, then slice) on the same streams, alternating
// the two in rounds and quoting medians, since this machine's CPU steal time swings.
//
// Run: node bench/nbd-codec.mjs   (bundles the TypeScript source with esbuild; no build needed)
import { build } from 'esbuild';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dir = mkdtempSync(join(tmpdir(), 'nbd-codec-bench-'));
const outfile = join(dir, 'protocol.mjs');
await build({ entryPoints: [join(root, 'src/nbd/protocol/index.ts')], bundle: true, format: 'esm', platform: 'node', outfile, logLevel: 'error' });
const P = await import(pathToFileURL(outfile).href);
rmSync(dir, { recursive: true, force: true });

const ROUNDS = 7;
const CHUNK = 64 * 1024;

function chunks(stream) {
  const out = [];
  for (let i = 0; i < stream.length; i += CHUNK) out.push(stream.subarray(i, i + CHUNK));
  return out;
}

function writeStream(count, size) {
  const payload = Buffer.alloc(size, 7);
  const parts = [];
  for (let i = 0; i < count; i++) {
    parts.push(P.encodeRequestHeader(false, P.Cmd.WRITE, 0, 0, i, (i * size) % 2 ** 30, size), payload);
  }
  return Buffer.concat(parts);
}

function readStream(count) {
  const parts = [];
  for (let i = 0; i < count; i++) parts.push(P.encodeRequestHeader(false, P.Cmd.READ, 0, 0, i, i * 4096, 4096));
  return Buffer.concat(parts);
}

/** The approach the notes measured as 5–8× slower for 1 MiB writes: concat, then slice. */
function naiveParse(list, onRequest) {
  let buf = Buffer.alloc(0);
  for (const c of list) {
    buf = Buffer.concat([buf, c]);
    for (;;) {
      if (buf.length < 28) break;
      const type = buf.readUInt16BE(6);
      const length = buf.readUInt32BE(24);
      const total = 28 + (type === 1 ? length : 0);
      if (buf.length < total) break;
      onRequest({ type, cookie: buf.readBigUInt64BE(8), offset: Number(buf.readBigUInt64BE(16)), length, payload: type === 1 ? Buffer.from(buf.subarray(28, total)) : undefined });
      buf = buf.subarray(total);
    }
  }
}

// One parser per stream, as one per connection: V8 specialises the optimised parser on the
// handler it calls, and throws that code away when the parser is collected, so a fresh parser per
// round would measure re-optimisation rather than a long-lived connection.
const parsers = new Map();
function ours(list, onRequest) {
  let p = parsers.get(list);
  if (!p) parsers.set(list, (p = new P.RequestParser(onRequest)));
  for (const c of list) p.push(c);
}

function time(fn) {
  const t0 = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function compare(name, list, count, bytes) {
  const a = [];
  const b = [];
  let n = 0;
  const sink = () => n++;
  // Unmeasured rounds first: the parsers need ~100k messages before the JIT settles.
  for (let w = 0; w < 6; w++) ours(list, sink);
  for (let w = 0; w < 3; w++) naiveParse(list, sink);
  n = 0;
  for (let r = 0; r < ROUNDS; r++) {
    globalThis.gc?.();
    a.push(time(() => ours(list, sink)));
    globalThis.gc?.();
    b.push(time(() => naiveParse(list, sink)));
  }
  if (n !== 2 * ROUNDS * count) throw new Error(`${name}: parsed ${n} requests, expected ${2 * ROUNDS * count}`);
  if (process.env.BENCH_DEBUG) console.log(name, a.map((t) => Math.round(1e9 * t / count)), b.map((t) => Math.round(1e9 * t / count)));
  const ta = median(a);
  const tb = median(b);
  const rate = (t) => (bytes ? `${(bytes / t / 2 ** 30).toFixed(2)} GiB/s` : `${(count / t / 1e6).toFixed(2)} M req/s`);
  console.log(
    `${name.padEnd(28)} ours ${(1e9 * ta / count).toFixed(0).padStart(6)} ns/req ${rate(ta).padStart(12)} | naive ${(1e9 * tb / count).toFixed(0).padStart(7)} ns/req ${rate(tb).padStart(12)} | ours ${(tb / ta).toFixed(1)}× faster`,
  );
}

console.log(`NBD codec micro-benchmark, ${CHUNK / 1024} KiB chunks, median of ${ROUNDS} alternating rounds`);
compare('requests: 4 KiB WRITE', chunks(writeStream(20_000, 4096)), 20_000, 20_000 * 4096);
compare('requests: 1 MiB WRITE', chunks(writeStream(200, 1 << 20)), 200, 200 << 20);
compare('requests: 4 KiB READ hdrs', chunks(readStream(200_000)), 200_000, 0);

// Replies the client parses: simple 4 KiB read replies and 1 MiB structured data chunks.
{
  const data = Buffer.alloc(4096, 1);
  const parts = [];
  for (let i = 0; i < 20_000; i++) parts.push(P.encodeSimpleReply({ cookieHi: 0, cookieLo: i, offset: 0 }, 0), data);
  const list4k = chunks(Buffer.concat(parts));
  const big = Buffer.alloc(1 << 20, 2);
  const parts1m = [];
  for (let i = 0; i < 200; i++) {
    parts1m.push(P.encodeOffsetDataHeader(false, { cookieHi: 0, cookieLo: i, offset: 0 }, P.ReplyFlag.DONE, i << 20, big.length), big);
  }
  const list1m = chunks(Buffer.concat(parts1m));
  const target = Buffer.alloc(1 << 20);
  let replies = 0;
  const handler = { simpleReplyLength: () => 4096, onData: (r, at, d) => d.copy(target, r.kind === 'simple' ? at : 0), onReply: () => replies++ };
  const replyParsers = { simple: new P.ReplyParser(handler, { mode: 'simple' }), structured: new P.ReplyParser(handler, { mode: 'structured' }) };
  const run = (list, mode) => {
    for (const c of list) replyParsers[mode].push(c);
  };
  const t4 = [];
  const t1 = [];
  for (let w = 0; w < 3; w++) {
    run(list4k, 'simple');
    run(list1m, 'structured');
  }
  for (let r = 0; r < ROUNDS; r++) {
    t4.push(time(() => run(list4k, 'simple')));
    t1.push(time(() => run(list1m, 'structured')));
  }
  console.log(`${'replies: 4 KiB simple READ'.padEnd(28)} ours ${(1e9 * median(t4) / 20_000).toFixed(0).padStart(6)} ns/reply (incl. copy into the read buffer)`);
  console.log(`${'replies: 1 MiB OFFSET_DATA'.padEnd(28)} ours ${((200 << 20) / median(t1) / 2 ** 30).toFixed(2)} GiB/s (incl. copy into the read buffer)`);
}

// Reply headers the server writes per request.
{
  const n = 1_000_000;
  const req = { cookieHi: 1, cookieLo: 2, offset: 4096 };
  const buf = Buffer.allocUnsafe(64);
  const tw = [];
  const te = [];
  for (let r = 0; r <= ROUNDS; r++) {
    tw.push(time(() => { for (let i = 0; i < n; i++) P.writeOffsetDataHeader(buf, 0, false, req, 1, 4096, 4096); }));
    te.push(time(() => { for (let i = 0; i < n; i++) P.encodeSimpleReply(req, 0); }));
  }
  console.log(`${'writeOffsetDataHeader'.padEnd(28)} ${(1e9 * median(tw) / n).toFixed(0).padStart(6)} ns/header`);
  console.log(`${'encodeSimpleReply (alloc)'.padEnd(28)} ${(1e9 * median(te) / n).toFixed(0).padStart(6)} ns/header`);
}
