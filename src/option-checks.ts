/**
 * Checks shared by the option resolvers. A value of the wrong JavaScript type is a programming
 * mistake (TypeError): the string 'false' would otherwise count as true.
 */

/** An optional boolean option: `fallback` when absent, a TypeError when not a boolean. */
export function optionalBoolean(value: unknown, fallback: boolean, name: string): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') throw new TypeError(`${name} must be a boolean, got ${typeof value}`);
  return value;
}
