export {};
export * from './server/index.js';
export { NBD, NbdProtocolError, type NbdProtocolErrorReason } from './protocol/index.js';
/** The NBD wire codec (parsers and serializers) for embedders and fuzzers. */
export * as NbdProtocol from './protocol/index.js';
export * from './client/index.js';
