import diagnosticsChannel from 'node:diagnostics_channel';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { MemoryDriver } from '../../src/drivers/memory.js';
import { FaultInjector } from '../../src/filters/fault-injector.js';
import { QUORUM_CHANNELS, type QuorumFailure, type QuorumReportBad } from '../../src/quorum/events.js';
import { Quorum } from '../../src/quorum/quorum.js';

function brokenQuorum(reportIntervalMs?: number) {
  const mems = Array.from({ length: 3 }, () => new MemoryDriver({ size: 4096 }));
  const faults = mems.map((m) => new FaultInjector(m));
  const q = new Quorum({ children: faults, threshold: 2, reportIntervalMs });
  faults[2].failAll('EIO');
  return { q, faults };
}

afterEach(() => {
  vi.useRealTimers();
});

describe('events', () => {
  it('report-bad carries the child name, its driver, type, range and error; nothing is limited by default', async () => {
    const { q, faults } = brokenQuorum();
    const seen: QuorumReportBad[] = [];
    q.on('report-bad', (e) => seen.push(e));
    for (let i = 0; i < 5; i++) await q.read(512, 100);
    expect(seen).toHaveLength(5);
    expect(seen[0]).toMatchObject({ child: 'children.2', driver: faults[2], type: 'read', offset: 512, length: 100, suppressed: 0 });
    expect(seen[0].error?.code).toBe('EIO');
  });

  it('with reportIntervalMs: the first report goes out at once, the latest of a burst at the end of the interval', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
    const { q, faults } = brokenQuorum(1000);
    const seen: QuorumReportBad[] = [];
    q.on('report-bad', (e) => seen.push(e));
    for (let i = 0; i < 4; i++) await q.read(i, 1); // four reports about children.2 in one interval
    faults[1].failAll('ENOSPC'); // another child has its own allowance
    await expect(q.read(9, 1)).rejects.toMatchObject({ code: 'ENOSPC' }); // 1–1 tie: the first failing child's code
    expect(seen.map((e) => [e.child, e.offset, e.suppressed])).toEqual([
      ['children.2', 0, 0],
      ['children.1', 9, 0],
    ]);
    vi.advanceTimersByTime(999);
    expect(seen).toHaveLength(2);
    vi.advanceTimersByTime(1);
    // Interval over: the latest held report about each child, with the count dropped in its favour.
    expect(seen.slice(2).map((e) => [e.child, e.offset, e.suppressed])).toEqual([['children.2', 9, 3]]);
    vi.advanceTimersByTime(1000);
    // A new interval started with that delivery; nothing more was held, so it ends quietly.
    expect(seen).toHaveLength(3);
    await expect(q.read(20, 1)).rejects.toThrow();
    expect(seen.slice(3).map((e) => [e.child, e.offset, e.suppressed])).toEqual([
      ['children.1', 20, 0],
      ['children.2', 20, 0],
    ]);
    await q.close();
  });

  it('held reports are delivered when the quorum closes or the child is removed, never lost', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
    const { q } = brokenQuorum(60_000);
    const seen: QuorumReportBad[] = [];
    q.on('report-bad', (e) => seen.push(e));
    await q.read(0, 1);
    await q.read(1, 1);
    await q.read(2, 1);
    expect(seen.map((e) => e.offset)).toEqual([0]);
    await q.removeChild('children.2');
    expect(seen.map((e) => [e.offset, e.suppressed])).toEqual([
      [0, 0],
      [2, 1],
    ]);
    await q.close();
    expect(vi.getTimerCount()).toBe(0);
  });

  it('failure events are limited too, as one stream per quorum', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
    const { q, faults } = brokenQuorum(1000);
    faults[1].failAll('EIO');
    const failures: QuorumFailure[] = [];
    q.on('failure', (e) => failures.push(e));
    for (let i = 0; i < 3; i++) await expect(q.write(i, new Uint8Array(1))).rejects.toThrow();
    await expect(q.read(7, 1)).rejects.toThrow();
    expect(failures.map((f) => [f.type, f.offset, f.suppressed])).toEqual([['write', 0, 0]]);
    vi.advanceTimersByTime(1000);
    expect(failures.map((f) => [f.type, f.offset, f.suppressed])).toEqual([
      ['write', 0, 0],
      ['read', 7, 2],
    ]);
    await q.close();
  });

  it('are published on node:diagnostics_channel with the quorum as source', async () => {
    const { q } = brokenQuorum();
    const bad: unknown[] = [];
    const failed: unknown[] = [];
    const onBad = (m: unknown) => bad.push(m);
    const onFailure = (m: unknown) => failed.push(m);
    diagnosticsChannel.subscribe(QUORUM_CHANNELS.reportBad, onBad);
    diagnosticsChannel.subscribe(QUORUM_CHANNELS.failure, onFailure);
    try {
      await q.read(0, 1);
      const mems = q.children;
      (mems[0] as FaultInjector).failAll('EIO');
      await expect(q.write(0, new Uint8Array(1))).rejects.toThrow();
    } finally {
      diagnosticsChannel.unsubscribe(QUORUM_CHANNELS.reportBad, onBad);
      diagnosticsChannel.unsubscribe(QUORUM_CHANNELS.failure, onFailure);
    }
    expect(QUORUM_CHANNELS).toEqual({ reportBad: 'blockgraph:quorum:report-bad', failure: 'blockgraph:quorum:failure' });
    expect(bad).toHaveLength(3);
    expect(bad[0]).toMatchObject({ source: q, child: 'children.2', type: 'read' });
    expect(failed).toEqual([{ source: q, quorum: 'quorum', type: 'write', offset: 0, length: 1, suppressed: 0 }]);
  });

  it('a rewrite that fails is reported as a write error and does not fail the read', async () => {
    const mems = Array.from({ length: 3 }, () => new MemoryDriver({ size: 4096 }));
    const faults = mems.map((m) => new FaultInjector(m));
    const q = new Quorum({ children: faults, threshold: 2, rewriteCorrupted: true });
    await mems[0].write(0, new Uint8Array([5]));
    faults[0].addRule({ ops: ['write'], error: 'ENOSPC' });
    const seen: QuorumReportBad[] = [];
    q.on('report-bad', (e) => seen.push(e));
    expect([...(await q.read(0, 1))]).toEqual([0]);
    expect(seen.map((e) => [e.child, e.type, e.error?.code])).toEqual([
      ['children.0', 'read', undefined],
      ['children.0', 'write', 'ENOSPC'],
    ]);
  });
});
