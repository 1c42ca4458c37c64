/** A plain JSON description of a driver graph, for logs, demos and debugging. */
import type { BlockDriver } from './driver.js';
import type { BlockCapabilities, BlockLimits, DriverState } from './types.js';

/** A plain, JSON-ready description of one driver and, recursively, the drivers under it. */
export interface DriverDescription {
  readonly name: string;
  /** The constructor's name, e.g. `MemoryDriver`. */
  readonly class: string;
  readonly state: DriverState;
  readonly size: number;
  readonly inFlight: number;
  readonly capabilities: BlockCapabilities;
  readonly limits: BlockLimits;
  readonly children: readonly DriverDescription[];
  /** Set when this driver is one of its own ancestors; its children are then not repeated. */
  readonly cycle?: true;
}

/**
 * Describes a graph from `driver` down as plain data (for logs, demos and UIs): name, class,
 * state, size, capabilities, limits and children, recursively. A free function rather than a
 * member, so nothing is added to the drivers' own properties and `JSON.stringify` of the result
 * never reaches event listeners or buffers. A driver reachable along several paths is described
 * on each; a cycle is cut and marked.
 */
export function describeGraph(driver: BlockDriver): DriverDescription {
  return describeNode(driver, new Set());
}

function describeNode(driver: BlockDriver, ancestors: Set<BlockDriver>): DriverDescription {
  const base = {
    name: driver.name,
    class: driver.constructor.name,
    state: driver.state,
    size: driver.size,
    inFlight: driver.inFlight,
    capabilities: { ...driver.capabilities },
    limits: { ...driver.limits },
  };
  if (ancestors.has(driver)) return { ...base, children: [], cycle: true };
  ancestors.add(driver);
  const children = driver.children.map((child) => describeNode(child, ancestors));
  ancestors.delete(driver);
  return { ...base, children };
}
