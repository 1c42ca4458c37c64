/** A Buffer over the same memory as `bytes` (no copy): for Node APIs that want a Buffer, and for `Buffer.compare`/`equals`, which run as one memcmp. */
export function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
