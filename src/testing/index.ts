/**
 * `blockgraph/testing`: fast-check arbitraries and helpers for property-testing block graphs.
 * fast-check is an optional peer dependency, needed only by this entry point.
 */
export {};
