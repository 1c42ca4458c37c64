import { describe, expect, it } from 'vitest';
import { NBD, nameOf } from '../../../src/nbd/protocol/index.js';

// Values typed in from doc/proto.md (master + extension-ext-header), independently of constants.ts.
describe('NBD constants', () => {
  it('match the protocol document', () => {
    expect(NBD.HandshakeMagic.NBDMAGIC).toBe(BigInt('0x' + Buffer.from('NBDMAGIC').toString('hex')));
    expect(NBD.HandshakeMagic.IHAVEOPT).toBe(BigInt('0x' + Buffer.from('IHAVEOPT').toString('hex')));
    expect(NBD.HandshakeMagic.OPTION_REPLY).toBe(0x3e889045565a9n);
    expect(NBD.Magic).toEqual({
      REQUEST: 0x25609513,
      EXTENDED_REQUEST: 0x21e41c71,
      SIMPLE_REPLY: 0x67446698,
      STRUCTURED_REPLY: 0x668e33ef,
      EXTENDED_REPLY: 0x6e8a278c,
    });
    expect(NBD.Opt).toMatchObject({
      EXPORT_NAME: 1, ABORT: 2, LIST: 3, STARTTLS: 5, INFO: 6, GO: 7,
      STRUCTURED_REPLY: 8, LIST_META_CONTEXT: 9, SET_META_CONTEXT: 10, EXTENDED_HEADERS: 11,
    });
    expect(NBD.Rep).toEqual({
      ACK: 1, SERVER: 2, INFO: 3, META_CONTEXT: 4,
      ERR_UNSUP: 2 ** 31 + 1, ERR_POLICY: 2 ** 31 + 2, ERR_INVALID: 2 ** 31 + 3, ERR_PLATFORM: 2 ** 31 + 4,
      ERR_TLS_REQD: 2 ** 31 + 5, ERR_UNKNOWN: 2 ** 31 + 6, ERR_SHUTDOWN: 2 ** 31 + 7,
      ERR_BLOCK_SIZE_REQD: 2 ** 31 + 8, ERR_TOO_BIG: 2 ** 31 + 9, ERR_EXT_HEADER_REQD: 2 ** 31 + 10,
    });
    expect(NBD.Info).toEqual({ EXPORT: 0, NAME: 1, DESCRIPTION: 2, BLOCK_SIZE: 3 });
    expect(NBD.Cmd).toEqual({ READ: 0, WRITE: 1, DISC: 2, FLUSH: 3, TRIM: 4, CACHE: 5, WRITE_ZEROES: 6, BLOCK_STATUS: 7, RESIZE: 8 });
    expect(NBD.CmdFlag).toEqual({ FUA: 1, NO_HOLE: 2, DF: 4, REQ_ONE: 8, FAST_ZERO: 16, PAYLOAD_LEN: 32 });
    expect(NBD.HandshakeFlag).toEqual({ FIXED_NEWSTYLE: 1, NO_ZEROES: 2 });
    expect(NBD.ClientFlag).toEqual({ FIXED_NEWSTYLE: 1, NO_ZEROES: 2 });
    expect(NBD.TransmissionFlag).toEqual({
      HAS_FLAGS: 0x1, READ_ONLY: 0x2, SEND_FLUSH: 0x4, SEND_FUA: 0x8, ROTATIONAL: 0x10, SEND_TRIM: 0x20,
      SEND_WRITE_ZEROES: 0x40, SEND_DF: 0x80, CAN_MULTI_CONN: 0x100, SEND_RESIZE: 0x200, SEND_CACHE: 0x400,
      SEND_FAST_ZERO: 0x800, BLOCK_STATUS_PAYLOAD: 0x1000,
    });
    expect(NBD.ReplyFlag.DONE).toBe(1);
    expect(NBD.ReplyType).toEqual({
      NONE: 0, OFFSET_DATA: 1, OFFSET_HOLE: 2, BLOCK_STATUS: 5, BLOCK_STATUS_EXT: 6, ERROR: 2 ** 15 + 1, ERROR_OFFSET: 2 ** 15 + 2,
    });
    expect(NBD.Err).toEqual({ EPERM: 1, EIO: 5, ENOMEM: 12, EINVAL: 22, ENOSPC: 28, EOVERFLOW: 75, ENOTSUP: 95, ESHUTDOWN: 108 });
    expect(NBD.BaseAllocation).toEqual({ NAME: 'base:allocation', STATE_HOLE: 1, STATE_ZERO: 2 });
    expect(NBD.Limits.MAX_STRING).toBe(4096);
    expect(NBD.Limits.DEFAULT_MAX_PAYLOAD).toBe(2 ** 25);
  });

  it('names values for logs', () => {
    expect(nameOf(NBD.Cmd, 6)).toBe('WRITE_ZEROES');
    expect(nameOf(NBD.Rep, 2 ** 31 + 1)).toBe('ERR_UNSUP');
    expect(nameOf(NBD.Cmd, 77)).toBe('0x4d');
  });
});
