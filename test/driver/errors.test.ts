import { promises as fsp } from 'node:fs';
import { createConnection } from 'node:net';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { NbdProtocolError } from '../../src/nbd/protocol/errors.js';
import {
  BLOCK_ERROR_CODES,
  BlockError,
  NBD_ERROR_VALUES,
  codeFromNbdError,
  isBlockError,
  mostCommonCode,
  nbdErrorValue,
  toBlockError,
  type BlockErrorCode,
} from '../../src/errors.js';

/** The eight errors the NBD protocol defines (doc/proto.md, "Error values"). */
const NBD_DEFINED: Record<number, BlockErrorCode> = {
  1: 'EPERM',
  5: 'EIO',
  12: 'ENOMEM',
  22: 'EINVAL',
  28: 'ENOSPC',
  75: 'EOVERFLOW',
  95: 'ENOTSUP',
  108: 'ESHUTDOWN',
};

describe('BlockError', () => {
  it('carries its code, message, frozen details and cause', () => {
    const cause = new Error('disk on fire');
    const err = new BlockError('ENOSPC', 'full', { cause, details: { op: 'write', offset: 4096, length: 512 } });
    expect(err).toBeInstanceOf(Error);
    expect(err.name).toBe('BlockError');
    expect(err.code).toBe('ENOSPC');
    expect(err.message).toBe('full');
    expect(err.cause).toBe(cause);
    expect(err.details).toEqual({ op: 'write', offset: 4096, length: 512 });
    expect(Object.isFrozen(err.details)).toBe(true);
    expect(new BlockError('EIO', 'x').details).toEqual({});
    expect('cause' in new BlockError('EIO', 'x')).toBe(false);
  });

  it('maps every code to a value NBD defines, and every NBD value back to its code', () => {
    fc.assert(
      fc.property(fc.constantFrom(...BLOCK_ERROR_CODES), (code) => {
        const value = nbdErrorValue(code);
        expect(new BlockError(code, 'x').nbdError).toBe(value);
        expect(NBD_ERROR_VALUES[code]).toBe(value);
        expect(NBD_DEFINED[value], `${code} → ${value}`).toBeDefined();
        // Codes NBD lacks travel as EIO; all others survive the round trip.
        const back = codeFromNbdError(value);
        expect(back).toBe(code === 'ECANCELED' || code === 'ETIMEDOUT' ? 'EIO' : code);
      }),
    );
    for (const [value, code] of Object.entries(NBD_DEFINED)) {
      expect(codeFromNbdError(Number(value))).toBe(code);
      expect(nbdErrorValue(code)).toBe(Number(value));
    }
  });

  it('reads an NBD value it does not know as EINVAL, as the protocol tells clients to', () => {
    fc.assert(
      fc.property(fc.integer({ min: -(2 ** 31), max: 2 ** 32 }), (value) => {
        fc.pre(NBD_DEFINED[value] === undefined);
        expect(codeFromNbdError(value)).toBe('EINVAL');
      }),
      { numRuns: 300 },
    );
  });
});

describe('isBlockError', () => {
  it('recognises an error from a duplicate copy of the package by its global brand', () => {
    // What a second install of blockgraph would define: a different class, the same Symbol.for.
    class DuplicateBlockError extends Error {
      readonly code = 'EIO';
      get [Symbol.for('blockgraph.BlockError')](): true {
        return true;
      }
    }
    const foreign = new DuplicateBlockError('from the other copy');
    expect(isBlockError(foreign)).toBe(true);
    expect(foreign instanceof BlockError).toBe(true);
    expect(toBlockError(foreign)).toBe(foreign);
  });

  it('rejects everything without the brand, or with a brand that is not exactly true', () => {
    const lookalike = Object.assign(new Error('x'), { name: 'BlockError', code: 'EIO' });
    for (const value of [lookalike, new Error('x'), { code: 'EIO' }, null, undefined, 'EIO', 5, { [Symbol.for('blockgraph.BlockError')]: 1 }]) {
      expect(isBlockError(value), String(value)).toBe(false);
      expect(value instanceof BlockError).toBe(false);
    }
    expect(isBlockError(new BlockError('EIO', 'x'))).toBe(true);
  });
});

describe('instanceof on subclasses of BlockError', () => {
  it('a plain BlockError is not an instance of a subclass; a subclass instance is an instance of both', () => {
    class SpecialError extends BlockError {}
    const plain = new BlockError('ENOSPC', 'full');
    const special = new SpecialError('EIO', 'special');
    expect(plain instanceof SpecialError).toBe(false);
    expect(special instanceof SpecialError).toBe(true);
    expect(special instanceof BlockError).toBe(true);
    expect(new NbdProtocolError('bad-magic', 'x') instanceof BlockError).toBe(true);
    expect(plain instanceof NbdProtocolError).toBe(false);
  });
});

describe('toBlockError', () => {
  const systemError = (code: string): Error => Object.assign(new Error(`${code}: failed`), { code, errno: -1, syscall: 'pwrite' });

  it('keeps the code of Node system errors it knows, or maps them to the nearest', () => {
    const expected: Record<string, BlockErrorCode> = {
      EIO: 'EIO',
      EINVAL: 'EINVAL',
      ENOSPC: 'ENOSPC',
      EDQUOT: 'ENOSPC',
      EFBIG: 'ENOSPC',
      EPERM: 'EPERM',
      EACCES: 'EPERM',
      EROFS: 'EPERM',
      ENOTSUP: 'ENOTSUP',
      EOPNOTSUPP: 'ENOTSUP',
      ESHUTDOWN: 'ESHUTDOWN',
      EOVERFLOW: 'EOVERFLOW',
      ENOMEM: 'ENOMEM',
      ENOBUFS: 'ENOMEM',
      ECANCELED: 'ECANCELED',
      ABORT_ERR: 'ECANCELED',
      ETIMEDOUT: 'ETIMEDOUT',
      ENOENT: 'EIO',
      EBADF: 'EIO',
      ECONNRESET: 'EIO',
    };
    for (const [code, want] of Object.entries(expected)) {
      const cause = systemError(code);
      const err = toBlockError(cause, { op: 'write', driver: 'file' });
      expect(err.code, code).toBe(want);
      expect(err.cause).toBe(cause);
      expect(err.message).toBe(cause.message);
      expect(err.details).toEqual({ op: 'write', driver: 'file' });
    }
  });

  it("reads errno only for system errors libuv could not name; other codes (a library's own, or Object.prototype's names) are EIO", () => {
    expect(toBlockError(Object.assign(new Error('quota'), { code: 'Unknown system error -122', errno: -122 })).code).toBe('ENOSPC');
    // Brotli reports its own status in errno: -13 is not EACCES here.
    expect(toBlockError(Object.assign(new Error('bad stream'), { code: 'ERR__ERROR_FORMAT_WINDOW_BITS', errno: -13 })).code).toBe('EIO');
    for (const code of ['constructor', 'toString', '__proto__', 'hasOwnProperty']) {
      const err = toBlockError(Object.assign(new Error(code), { code }));
      expect(err.code, code).toBe('EIO');
      expect(err.nbdError, code).toBe(5);
    }
  });

  it('maps real errors from the file system and the network', async () => {
    const missing = await fsp.readFile('/nonexistent/blockgraph').catch((e: unknown) => e);
    expect(toBlockError(missing).code).toBe('EIO');
    const isDir = await fsp.readFile('/').catch((e: unknown) => e);
    expect((isDir as { code: string }).code).toBe('EISDIR');
    expect(toBlockError(isDir).code).toBe('EIO');
    const refused = await new Promise<unknown>((resolve) => {
      // Port 1 on loopback: nothing listens there.
      const socket = createConnection({ host: '127.0.0.1', port: 1 });
      socket.on('error', resolve);
      socket.on('connect', () => {
        socket.destroy();
        resolve(undefined);
      });
    });
    if (refused !== undefined) expect(toBlockError(refused).code).toBe('EIO');
  });

  it('turns aborts into ECANCELED and timeouts into ETIMEDOUT', async () => {
    const controller = new AbortController();
    controller.abort();
    expect(toBlockError(controller.signal.reason).code).toBe('ECANCELED');
    const timeout = AbortSignal.timeout(1);
    await new Promise((resolve) => timeout.addEventListener('abort', resolve));
    expect(toBlockError(timeout.reason).code).toBe('ETIMEDOUT');
  });

  it('turns anything else into EIO, keeping what was thrown as the cause', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.integer(), fc.constant(null), fc.constant(undefined), fc.object().filter((o) => !('code' in o) && !('name' in o))), (thrown) => {
        const err = toBlockError(thrown);
        expect(err.code).toBe('EIO');
        expect(err.cause).toBe(thrown);
        expect(typeof err.message).toBe('string');
      }),
      { numRuns: 200 },
    );
    const same = new BlockError('EPERM', 'x');
    expect(toBlockError(same, { op: 'write' })).toBe(same);
    // Never throws itself, even for a value that cannot be turned into a string.
    const hostile = { toString: {} };
    expect(toBlockError(hostile)).toMatchObject({ code: 'EIO', cause: hostile });
  });

  it('maps V8 failing to allocate a buffer to ENOMEM; an impossible length stays EIO', () => {
    // The first is what `new Uint8Array(n)` throws when memory runs out (see enomem.test.ts for
    // the real thing, in a process under ulimit); the second is a bad length, a programming error.
    fc.assert(
      fc.property(fc.constantFrom('Array buffer allocation failed', 'ArrayBuffer allocation failed'), fc.string(), (message, extra) => {
        const err = toBlockError(new RangeError(message), { op: 'write', extra });
        expect(err.code).toBe('ENOMEM');
        expect(err.details).toMatchObject({ op: 'write', extra });
      }),
    );
    let invalid: unknown;
    try {
      new Uint8Array(-1);
    } catch (e) {
      invalid = e;
    }
    expect(invalid).toBeInstanceOf(RangeError);
    expect(toBlockError(invalid).code).toBe('EIO');
  });
});

describe('mostCommonCode', () => {
  it('is EIO for no failures', () => {
    expect(mostCommonCode([])).toBe('EIO');
  });

  it('picks the most frequent code; a tie goes to the tied code that appears first', () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...BLOCK_ERROR_CODES), { minLength: 1, maxLength: 30 }), (codes) => {
        const count = (c: BlockErrorCode): number => codes.filter((x) => x === c).length;
        const best = Math.max(...codes.map(count));
        const firstOfBest = codes.find((c) => count(c) === best);
        expect(mostCommonCode(codes)).toBe(firstOfBest);
      }),
      { numRuns: 300 },
    );
  });

  it('worked examples of the tie rule', () => {
    expect(mostCommonCode(['ENOSPC', 'EIO', 'EIO', 'ENOSPC'])).toBe('ENOSPC');
    expect(mostCommonCode(['EIO', 'ENOSPC', 'ENOSPC', 'EIO'])).toBe('EIO');
    expect(mostCommonCode(['EPERM', 'EIO', 'EIO'])).toBe('EIO');
  });
});
