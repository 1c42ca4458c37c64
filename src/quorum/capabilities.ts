/**
 * How a quorum's capabilities and limits follow from its children's. Each rule keeps the quorum
 * honest towards callers (never promise what one child cannot do) without hiding what children
 * emulate on their own behind their public methods.
 */
import type { BlockDriver } from '../driver.js';
import type { BlockCapabilities, BlockLimits } from '../types.js';

/**
 * - canWrite, canMultiConn, canBlockStatus: every child must have it (a write refused by one
 *   replica, or an answer only some replicas can give, would break the vote).
 * - canFastZero: only a quorum of one child that has it. A fast zero must fail "before touching
 *   anything", and a fan-out cannot: one child may refuse (ENOTSUP: an NBD server that cannot zero
 *   that range quickly) after another has zeroed. A fast zero may always be refused, so the flag
 *   changing as children come and go is no manifest change.
 * - canDiscard: the quorum can write and every child zeroes natively (`canZero`). A quorum sends
 *   discards to its children as write-zeroes with `mayUnmap`, so every replica reads back zeros;
 *   a plain advisory discard could leave old bytes on one replica and zeros on another.
 * - canFlush, canCache: any child (the others succeed without effect on their own).
 * - canFua, canZero: whenever the quorum can write. The quorum forwards FUA and write-zeroes to each
 *   child's public method, which honours them natively or emulates them itself (a flush, zero buffers).
 * - canAdoptWrites: every child adopts — a caller's immutable buffer goes to them as it is, so a
 *   quorum inside a quorum shares one copy all the way down. A hint, not a promise to callers, so
 *   it never counts as a manifest change.
 */
export function quorumCapabilities(children: readonly BlockDriver[]): BlockCapabilities {
  const caps = children.map((c) => c.capabilities);
  const all = (k: keyof BlockCapabilities): boolean => caps.every((c) => c[k]);
  const any = (k: keyof BlockCapabilities): boolean => caps.some((c) => c[k]);
  const canWrite = all('canWrite');
  return Object.freeze({
    canWrite,
    canFlush: any('canFlush'),
    canFua: canWrite,
    canDiscard: canWrite && all('canZero'),
    canZero: canWrite,
    canFastZero: canWrite && caps.length === 1 && caps[0]!.canZero && caps[0]!.canFastZero,
    canBlockStatus: all('canBlockStatus'),
    canMultiConn: all('canMultiConn'),
    canCache: any('canCache'),
    canAdoptWrites: canWrite && caps.every((c) => c.canAdoptWrites === true),
  });
}

/**
 * The strictest of the children's limits: the largest alignment and preferred size, the smallest
 * maximum block size and transfer — those two rounded down to a multiple of the alignment — so
 * every request the quorum accepts every child accepts whole. Children whose maximum is below
 * another's alignment cannot serve one block together: see {@link incompatibleLimits}.
 */
export function quorumLimits(children: readonly BlockDriver[]): BlockLimits {
  const limits = children.map((c) => c.limits);
  const minBlockSize = Math.max(...limits.map((l) => l.minBlockSize));
  const aligned = (n: number): number => n - (n % minBlockSize);
  return Object.freeze({
    minBlockSize,
    preferredBlockSize: Math.max(...limits.map((l) => l.preferredBlockSize)),
    maxBlockSize: aligned(Math.min(...limits.map((l) => l.maxBlockSize))),
    maxTransfer: aligned(Math.min(...limits.map((l) => l.maxTransfer))),
  });
}

/** Why these children cannot form one device (a block one of them needs is over another's maximum), or undefined. */
export function incompatibleLimits(children: readonly BlockDriver[]): string | undefined {
  const { minBlockSize, maxBlockSize, maxTransfer } = quorumLimits(children);
  if (maxBlockSize >= minBlockSize && maxTransfer >= minBlockSize) return undefined;
  return `a child needs ${minBlockSize}-byte blocks, but another takes at most ${Math.min(...children.map((c) => Math.min(c.limits.maxBlockSize, c.limits.maxTransfer)))} bytes per request`;
}

/** Limits callers must obey; `preferredBlockSize` is a hint and may change freely. */
const BINDING_LIMITS = ['minBlockSize', 'maxBlockSize', 'maxTransfer'] as const;

/**
 * What would change in a quorum's manifest if its children became `after`, as readable
 * `field before → after` strings (empty when nothing binding changes).
 */
export function manifestChanges(before: readonly BlockDriver[], after: readonly BlockDriver[]): string[] {
  const out: string[] = [];
  const [c0, c1] = [quorumCapabilities(before), quorumCapabilities(after)];
  for (const k of Object.keys(c0) as (keyof BlockCapabilities)[]) {
    if (k !== 'canAdoptWrites' && k !== 'canFastZero' && c0[k] !== c1[k]) out.push(`${k} ${c0[k]} → ${c1[k]}`);
  }
  const [l0, l1] = [quorumLimits(before), quorumLimits(after)];
  for (const k of BINDING_LIMITS) if (l0[k] !== l1[k]) out.push(`${k} ${l0[k]} → ${l1[k]}`);
  return out;
}
