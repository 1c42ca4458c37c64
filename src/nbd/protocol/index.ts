/**
 * The NBD wire protocol without I/O: constants, incremental parsers for both directions of both
 * phases, and serializers. The NBD server and client are built on it; embedders may use it to
 * fuzz or to speak NBD over their own transport. See docs/nbd-protocol.md.
 */
export * from './constants.js';
export { NbdProtocolError, type NbdProtocolErrorReason } from './errors.js';
export { cookieFromBigInt, cookieToBigInt, readU64, writeU64, type CookieParts } from './bytes.js';
export * from './options.js';
export * from './option-parser.js';
export * from './option-replies.js';
export * from './option-reply-parser.js';
export * from './encode-options.js';
export * from './encode-option-replies.js';
export * from './request-parser.js';
export * from './encode-requests.js';
export * from './block-status-filter.js';
export * from './replies.js';
export * from './reply-parser.js';
export * from './encode-replies.js';
