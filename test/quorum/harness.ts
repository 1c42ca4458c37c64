/**
 * Builds real quorums for tests: MemoryDrivers behind FaultInjectors, set up from a generated
 * case, and a recorder that turns events into plain comparable records.
 */
import { MemoryDriver } from '../../src/drivers/memory.js';
import { FilterDriver } from '../../src/filter.js';
import type { BlockDriver } from '../../src/driver.js';
import type fc from 'fast-check';
import type { BlockCapabilities, BlockLimits, IoOptions, WriteOptions, WriteZeroesOptions } from '../../src/types.js';
import { FaultInjector } from '../../src/filters/fault-injector.js';
import { Quorum } from '../../src/quorum/quorum.js';
import type { QuorumOptions } from '../../src/quorum/options.js';
import type { QuorumFailure, QuorumReportBad } from '../../src/quorum/events.js';
import { caseBytes, type QuorumCase } from '../../src/testing/quorum.js';
import type { ModelExpectation, ModelOutcome } from './model.js';

/** An event as tests compare it. */
export type Recorded =
  | { kind: 'report-bad'; child: string; type: string; code?: string; offset: number; length: number }
  | { kind: 'failure'; type: string; offset: number; length: number };

export function record(q: Quorum): Recorded[] {
  const out: Recorded[] = [];
  q.on('report-bad', (e: QuorumReportBad) => {
    const r: Recorded = { kind: 'report-bad', child: e.child, type: e.type, offset: e.offset, length: e.length };
    if (e.error !== undefined) r.code = e.error.code;
    out.push(r);
  });
  q.on('failure', (e: QuorumFailure) => out.push({ kind: 'failure', type: e.type, offset: e.offset, length: e.length }));
  return out;
}

/** The events a model expectation predicts for a request, with children named by index. */
export function expectedEvents(
  exp: ModelExpectation,
  type: 'read' | 'write' | 'flush',
  offset: number,
  length: number,
  names: (i: number) => string = (i) => `children.${i}`,
): Recorded[] {
  const out: Recorded[] = exp.reports.map((r) => {
    const e: Recorded = { kind: 'report-bad', child: names(r.child), type, offset, length };
    if (r.code !== undefined) e.code = r.code;
    return e;
  });
  if (exp.failure) out.push({ kind: 'failure', type: type === 'flush' ? 'write' : type, offset, length });
  return out;
}

export interface Rig {
  quorum: Quorum;
  mems: MemoryDriver[];
  faults: FaultInjector[];
  events: Recorded[];
}

export function rig(n: number, size: number, options: Omit<QuorumOptions, 'children'>): Rig {
  const mems = Array.from({ length: n }, () => new MemoryDriver({ size }));
  const faults = mems.map((m, i) => new FaultInjector(m, { name: `fault${i}`, seed: i + 1 }));
  const quorum = new Quorum({ ...options, children: faults });
  return { quorum, mems, faults, events: record(quorum) };
}

/**
 * Prepares each child's storage and faults for a read of `good.length` bytes at `offset`:
 * good → the good bytes, corrupt → its variant stored (persistently), error → good bytes stored
 * and every read failing with the code.
 */
export async function stage(r: Rig, c: QuorumCase, offset: number): Promise<{ outcomes: ModelOutcome[]; stored: Uint8Array[] }> {
  const outcomes: ModelOutcome[] = [];
  const stored: Uint8Array[] = [];
  for (let i = 0; i < c.specs.length; i++) {
    const spec = c.specs[i];
    const bytes = caseBytes(c, i);
    await r.mems[i].write(offset, bytes);
    stored.push(bytes);
    if (spec.kind === 'error') {
      r.faults[i].addRule({ ops: ['read'], error: spec.code });
      outcomes.push({ ok: false, code: spec.code });
    } else {
      outcomes.push({ ok: true, data: bytes });
    }
  }
  return { outcomes, stored };
}

/** A pass-through filter that counts the reads reaching its child. */
export class ReadCounter extends FilterDriver {
  reads = 0;
  protected override _read(offset: number, target: Uint8Array, options: IoOptions): Promise<void> {
    this.reads++;
    return super._read(offset, target, options);
  }
}

/** A pass-through filter advertising other limits, to check how a quorum combines them. */
export class Limited extends FilterDriver {
  constructor(child: BlockDriver, readonly custom: BlockLimits) {
    super(child);
  }
  override get limits(): BlockLimits {
    return this.custom;
  }
}

/** A pass-through filter advertising fewer (or other) capabilities than its child has. */
export class Caps extends FilterDriver {
  readonly #caps: BlockCapabilities;
  constructor(child: BlockDriver, custom: Partial<BlockCapabilities>, options: { name?: string } = {}) {
    super(child, options);
    this.#caps = Object.freeze({ ...child.capabilities, ...custom });
  }
  override get capabilities(): BlockCapabilities {
    return this.#caps;
  }
}

/**
 * Holds every request at its start and at its end until fast-check's scheduler lets it go, so
 * children start and complete in adversarial orders. `log` records each step as it happens.
 */
export class Scheduled extends FilterDriver {
  readonly log: string[] = [];
  constructor(child: BlockDriver, readonly s: fc.Scheduler, name: string) {
    super(child, { name });
  }
  async #gate<T>(label: string, run: () => Promise<T>): Promise<T> {
    await this.s.schedule(Promise.resolve(), `${this.name} ${label} start`);
    this.log.push(`start ${label}`);
    try {
      return await run();
    } finally {
      this.log.push(`done ${label}`);
      await this.s.schedule(Promise.resolve(), `${this.name} ${label} end`);
    }
  }
  protected override _read(offset: number, target: Uint8Array, options: IoOptions): Promise<void> {
    return this.#gate(`read ${offset}+${target.length}`, () => super._read(offset, target, options));
  }
  protected override _write(offset: number, data: Uint8Array, options: WriteOptions): Promise<void> {
    return this.#gate(`write ${offset}+${data.length}`, () => super._write(offset, data, options));
  }
  protected override _writeZeroes(offset: number, length: number, options: WriteZeroesOptions): Promise<void> {
    return this.#gate(`writeZeroes ${offset}+${length}`, () => super._writeZeroes(offset, length, options));
  }
  protected override _flush(options: IoOptions): Promise<void> {
    return this.#gate('flush', () => super._flush(options));
  }
}

/** A quorum over MemoryDrivers behind FaultInjectors behind {@link Scheduled} gates. */
export function scheduledRig(s: fc.Scheduler, n: number, size: number, options: Omit<QuorumOptions, 'children'>): Rig & { gates: Scheduled[] } {
  const mems = Array.from({ length: n }, () => new MemoryDriver({ size }));
  const faults = mems.map((m) => new FaultInjector(m));
  const gates = faults.map((f, i) => new Scheduled(f, s, `sched${i}`));
  const quorum = new Quorum({ ...options, children: gates });
  return { quorum, mems, faults, gates, events: record(quorum) };
}
