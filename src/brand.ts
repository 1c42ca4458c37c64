/**
 * Brands that make `instanceof` hold across copies of this package loaded in one process (the
 * ESM and CommonJS builds side by side, or two installs): each branded class answers a getter
 * keyed by a global symbol, and its `Symbol.hasInstance` checks for it.
 */

/** True when `value` carries `brand`. */
export function hasBrand(value: unknown, brand: symbol): boolean {
  return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[brand] === true;
}

/**
 * `instanceof` for a branded base class: the brand when asked about `base` itself, the ordinary
 * prototype check for a subclass (which inherits `Symbol.hasInstance`; not every branded instance
 * is one of it).
 */
export function brandedInstanceOf(cls: abstract new (...args: never[]) => unknown, base: abstract new (...args: never[]) => unknown, brand: symbol, value: unknown): boolean {
  if (cls === base) return hasBrand(value, brand);
  return Function.prototype[Symbol.hasInstance].call(cls, value);
}
