/**
 * An independent model of the quorum rules of docs/quorum.md, written from the documentation
 * rather than from src/quorum/vote.ts: copies are compared as hex strings, votes counted in a plain
 * object, and every rule spelled out step by step. Tests hold both Quorum and quorumVote to it.
 */
import type { BlockErrorCode } from '../../src/errors.js';

export type ModelOutcome = { ok: true; data?: Uint8Array } | { ok: false; code: BlockErrorCode };

export interface ModelReport {
  child: number;
  code?: BlockErrorCode;
}

export interface ModelExpectation {
  ok: boolean;
  code?: BlockErrorCode;
  /** Hex of the bytes returned by a successful read. */
  dataHex?: string;
  reports: ModelReport[];
  rewrite: number[];
  failure: boolean;
  /** blkverify: offset of the first differing byte, relative to the request. */
  mismatchAt?: number;
  /** Set when a losing version also had `threshold` votes (then nothing is rewritten). */
  ambiguous?: true;
}

export const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');

/** Most frequent code; among equally frequent codes the one whose first failure comes first. */
export function modelVotedCode(codes: BlockErrorCode[]): BlockErrorCode {
  const counts: Record<string, number> = {};
  const firstSeen: Record<string, number> = {};
  codes.forEach((c, i) => {
    counts[c] = (counts[c] ?? 0) + 1;
    if (firstSeen[c] === undefined) firstSeen[c] = i;
  });
  const ranked = Object.keys(counts).sort((a, b) => counts[b] - counts[a] || firstSeen[a] - firstSeen[b]);
  return (ranked[0] ?? 'EIO') as BlockErrorCode;
}

/** Writes, write-zeroes, discards and flushes. */
export function modelCompletion(outcomes: ModelOutcome[], threshold: number, isWrite: boolean): ModelExpectation {
  const reports: ModelReport[] = [];
  const codes: BlockErrorCode[] = [];
  for (let i = 0; i < outcomes.length; i++) {
    const o = outcomes[i];
    if (!o.ok) {
      reports.push({ child: i, code: o.code });
      codes.push(o.code);
    }
  }
  const successes = outcomes.length - codes.length;
  if (successes >= threshold) return { ok: true, reports, rewrite: [], failure: false };
  return { ok: false, code: modelVotedCode(codes), reports, rewrite: [], failure: isWrite };
}

/** A read with the quorum pattern. */
export function modelQuorumRead(
  outcomes: ModelOutcome[],
  threshold: number,
  opts: { rewriteCorrupted?: boolean; blkverify?: boolean } = {},
): ModelExpectation {
  const errorReports: ModelReport[] = [];
  const codes: BlockErrorCode[] = [];
  const good: { child: number; key: string; data: Uint8Array }[] = [];
  outcomes.forEach((o, child) => {
    if (o.ok) good.push({ child, key: hex(o.data!), data: o.data! });
    else {
      errorReports.push({ child, code: o.code });
      codes.push(o.code);
    }
  });
  if (good.length < threshold) {
    return { ok: false, code: modelVotedCode(codes), reports: errorReports, rewrite: [], failure: true };
  }
  if (opts.blkverify === true) {
    const [a, b] = [good[0].data, good[1].data];
    let at = -1;
    for (let i = 0; i < a.length; i++) {
      if (a[i] !== b[i]) {
        at = i;
        break;
      }
    }
    if (at >= 0) return { ok: false, code: 'EIO', reports: errorReports, rewrite: [], failure: true, mismatchAt: at };
    return { ok: true, dataHex: good[0].key, reports: errorReports, rewrite: [], failure: false };
  }
  const votes: Record<string, number[]> = {};
  for (const g of good) (votes[g.key] ??= []).push(g.child);
  const keys = Object.keys(votes);
  if (keys.length === 1) return { ok: true, dataHex: keys[0], reports: errorReports, rewrite: [], failure: false };
  // Winner: most votes; a tie goes to the version whose lowest child index is smallest.
  keys.sort((a, b) => votes[b].length - votes[a].length || Math.min(...votes[a]) - Math.min(...votes[b]));
  const winner = keys[0];
  if (votes[winner].length < threshold) {
    return { ok: false, code: 'EIO', reports: errorReports, rewrite: [], failure: true };
  }
  const losers = good.filter((g) => g.key !== winner).map((g) => g.child);
  const reports = [...errorReports, ...losers.map((child) => ({ child }))].sort((x, y) => x.child - y.child);
  // A losing version that also reached the threshold makes the majority ambiguous: report, never overwrite.
  const ambiguous = keys.some((k) => k !== winner && votes[k].length >= threshold);
  const out: ModelExpectation = {
    ok: true,
    dataHex: winner,
    reports,
    rewrite: opts.rewriteCorrupted === true && !ambiguous ? losers : [],
    failure: false,
  };
  if (ambiguous) out.ambiguous = true;
  return out;
}

/** A fifo-style read trying children in `order`. */
export function modelFifoRead(outcomes: ModelOutcome[], order: number[]): ModelExpectation {
  const reports: ModelReport[] = [];
  for (const child of order) {
    const o = outcomes[child];
    if (o.ok) return { ok: true, dataHex: hex(o.data!), reports, rewrite: [], failure: false };
    reports.push({ child, code: o.code });
  }
  return { ok: false, code: reports[reports.length - 1].code, reports, rewrite: [], failure: false };
}
