/**
 * FaultInjector: a filter that fails or corrupts chosen requests, for testing what sits above it
 * (quorum voting, mirror error policies, NBD error replies). Rules are tried in the order they
 * were added and the first one that fires decides the call; at most one fault per call.
 */
import type { BlockDriver, BlockDriverEvents } from '../driver.js';
import { BlockError, type BlockErrorCode } from '../errors.js';
import { FilterDriver, type FilterOptions } from '../filter.js';
import type {
  BlockCapabilities, BlockLimits,
  BlockExtent,
  DiscardOptions,
  IoOptions,
  WriteOptions,
  WriteZeroesOptions,
} from '../types.js';
import { checkRule, corruptBytes, ruleMatches, type CheckedRule, type FaultOp, type FaultRule } from './fault-rules.js';
import { wholeRequestCapabilities, wholeRequestLimits } from './ops.js';
import { seededRandom } from './prng.js';

export type { FaultOp, FaultRule } from './fault-rules.js';

/** Options of {@link FaultInjector}. */
export interface FaultInjectorOptions extends FilterOptions {
  /** Rules to start with (ids 1, 2, … in this order). */
  readonly rules?: readonly FaultRule[];
  /**
   * Seed of the generator behind `rate`, an integer whose low 32 bits are used (default: random;
   * read it back from `seed` to reproduce a run).
   */
  readonly seed?: number;
  /** Start with the rules switched on (default true). */
  readonly enabled?: boolean;
}

/** Payload of the `fault` event. */
export interface FaultEvent {
  readonly op: FaultOp;
  readonly offset: number;
  readonly length: number;
  /** The error the request failed with; absent for a corruption. */
  readonly code?: BlockErrorCode;
  /** True when the request succeeded with corrupted data. */
  readonly corrupt: boolean;
  /** Id of the rule that fired. */
  readonly rule: number;
}

/** Events of {@link FaultInjector}. */
export interface FaultInjectorEvents extends BlockDriverEvents {
  /** A rule fired: the request failed or its data was corrupted. */
  fault: [FaultEvent];
}

interface RuleState {
  readonly id: number;
  readonly rule: CheckedRule;
  /** Calls that matched op and range. */
  matched: number;
  /** Faults actually injected. */
  fired: number;
  readonly random: () => number;
}

/** Golden-ratio step: spreads rule ids over the seed space so each rule draws its own sequence. */
const SEED_STEP = 0x9e3779b9;

/** Fails or corrupts requests on its child according to rules changeable at runtime. */
export class FaultInjector extends FilterDriver {
  /** When false, every request passes through and no rule counts calls. */
  enabled: boolean;
  /** Seed of the `rate` generator, for reproducing a run. */
  readonly seed: number;
  readonly #rules = new Map<number, RuleState>();
  #nextId = 1;
  #injected = 0;

  constructor(child: BlockDriver, options: FaultInjectorOptions = {}) {
    super(child, options);
    const seed = options.seed ?? Math.floor(Math.random() * 2 ** 32);
    if (!Number.isSafeInteger(seed)) throw new RangeError(`seed must be a safe integer, got ${seed}`);
    this.seed = seed;
    this.enabled = options.enabled ?? true;
    for (const rule of options.rules ?? []) this.addRule(rule);
  }

  override get capabilities(): BlockCapabilities {
    return wholeRequestCapabilities(this.child.capabilities);
  }
  override get limits(): BlockLimits {
    return wholeRequestLimits(this.child.limits);
  }

  /** Number of faults injected (failures and corruptions) since construction. */
  get injected(): number {
    return this.#injected;
  }

  /**
   * Adds a rule after the existing ones and returns its id. Each rule has its own generator,
   * seeded from the injector's seed and the id, so adding a rule never changes another's draws.
   */
  addRule(rule: FaultRule): number {
    const checked = checkRule(rule);
    const id = this.#nextId++;
    const random = seededRandom(((this.seed >>> 0) + (Math.imul(id, SEED_STEP) >>> 0)) >>> 0);
    this.#rules.set(id, { id, rule: checked, matched: 0, fired: 0, random });
    return id;
  }

  /** Removes a rule; false when no rule has that id. */
  removeRule(id: number): boolean {
    return this.#rules.delete(id);
  }

  /** Removes every rule: the device heals. */
  clearRules(): void {
    this.#rules.clear();
  }

  /** Adds a rule failing every operation, flush included, with `code` (default EIO). */
  failAll(code: BlockErrorCode = 'EIO'): number {
    return this.addRule({ error: code });
  }

  protected override async _read(offset: number, target: Uint8Array, options: IoOptions): Promise<void> {
    const hit = this.#decide('read', offset, target.length);
    if (hit === undefined) return this.child.readInto(offset, target, options);
    if (!hit.rule.corrupt) throw this.#fail(hit, 'read', offset, target.length);
    try {
      await this.child.readInto(offset, target, options);
    } catch (err) {
      // Nothing was corrupted, so the firing does not count against `times`.
      hit.fired--;
      throw err;
    }
    corruptBytes(hit.rule, offset, target);
    this.#report({ op: 'read', offset, length: target.length, corrupt: true, rule: hit.id });
  }

  protected override _write(offset: number, data: Uint8Array, options: WriteOptions): Promise<void> {
    const hit = this.#decide('write', offset, data.length);
    if (hit !== undefined) return Promise.reject(this.#fail(hit, 'write', offset, data.length));
    return this.child.write(offset, data, options);
  }

  protected override _flush(options: IoOptions): Promise<void> {
    const hit = this.#decide('flush', 0, 0);
    if (hit !== undefined) return Promise.reject(this.#fail(hit, 'flush', 0, 0));
    return this.child.flush(options);
  }

  protected override _discard(offset: number, length: number, options: DiscardOptions): Promise<void> {
    const hit = this.#decide('discard', offset, length);
    if (hit !== undefined) return Promise.reject(this.#fail(hit, 'discard', offset, length));
    return this.child.discard(offset, length, options);
  }

  protected override _writeZeroes(offset: number, length: number, options: WriteZeroesOptions): Promise<void> {
    const hit = this.#decide('writeZeroes', offset, length);
    if (hit !== undefined) return Promise.reject(this.#fail(hit, 'writeZeroes', offset, length));
    return this.child.writeZeroes(offset, length, options);
  }

  protected override _blockStatus(offset: number, length: number, options: IoOptions): Promise<BlockExtent[]> {
    const hit = this.#decide('blockStatus', offset, length);
    if (hit !== undefined) return Promise.reject(this.#fail(hit, 'blockStatus', offset, length));
    return this.child.blockStatus(offset, length, options);
  }

  protected override _cache(offset: number, length: number, options: IoOptions): Promise<void> {
    const hit = this.#decide('cache', offset, length);
    if (hit !== undefined) return Promise.reject(this.#fail(hit, 'cache', offset, length));
    return this.child.cache(offset, length, options);
  }

  /** The rule that fires for this call, if any. Runs synchronously, so concurrent calls count in order. */
  #decide(op: FaultOp, offset: number, length: number): RuleState | undefined {
    if (!this.enabled) return undefined;
    for (const state of this.#rules.values()) {
      const { rule } = state;
      if (!ruleMatches(rule, op, offset, length)) continue;
      state.matched++;
      if (state.matched <= rule.afterCalls || state.fired >= rule.times) continue;
      // The generator is drawn only for calls that could fire, so afterCalls/times do not shift it.
      if (rule.rate !== undefined && !(state.random() < rule.rate)) continue;
      state.fired++;
      return state;
    }
    return undefined;
  }

  #fail(hit: RuleState, op: FaultOp, offset: number, length: number): BlockError {
    const code = hit.rule.error;
    const error = new BlockError(code, `${this.name}: injected ${code} on ${op} ${offset}+${length} (rule ${hit.id})`, {
      details: { op, offset, length, driver: this.name, injected: true, rule: hit.id },
    });
    this.#report({ op, offset, length, code, corrupt: false, rule: hit.id });
    return error;
  }

  #report(event: FaultEvent): void {
    this.#injected++;
    this.emit('fault', event);
  }
}

// Typed events: overloads merged into the class (see BlockDriverEvents).
export interface FaultInjector {
  on<K extends keyof FaultInjectorEvents>(event: K, listener: (...args: FaultInjectorEvents[K]) => void): this;
  once<K extends keyof FaultInjectorEvents>(event: K, listener: (...args: FaultInjectorEvents[K]) => void): this;
  off<K extends keyof FaultInjectorEvents>(event: K, listener: (...args: FaultInjectorEvents[K]) => void): this;
  emit<K extends keyof FaultInjectorEvents>(event: K, ...args: FaultInjectorEvents[K]): boolean;
}
