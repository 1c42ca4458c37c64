/**
 * Every number the NBD wire protocol defines, in one place.
 *
 * Values come from the NBD project's protocol document (doc/proto.md on master, plus its
 * `extension-ext-header` branch for extended headers). Each group is an `as const` object so a
 * value is usable both as a number and as a literal type; {@link NBD} gathers them all.
 */

/** 64-bit magics of the handshake, as BigInts (they do not fit a double) and as two 32-bit halves. */
export const HandshakeMagic = {
  /** 'NBDMAGIC', first 8 bytes the server sends (also called INIT_PASSWD). */
  NBDMAGIC: 0x4e42444d41474943n,
  /** 'IHAVEOPT', follows NBDMAGIC in newstyle greetings and starts every client option. */
  IHAVEOPT: 0x49484156454f5054n,
  /** Starts every fixed-newstyle option reply. */
  OPTION_REPLY: 0x0003e889045565a9n,
  /** Oldstyle's second magic (cliserv_magic); only recognised to refuse oldstyle servers. */
  OLDSTYLE: 0x00420281861253n,
} as const;

/** 32-bit magics of the transmission phase. */
export const Magic = {
  /** Compact request header (28 bytes). */
  REQUEST: 0x25609513,
  /** Extended request header (32 bytes), once NBD_OPT_EXTENDED_HEADERS is agreed. */
  EXTENDED_REQUEST: 0x21e41c71,
  /** Simple reply header (16 bytes). */
  SIMPLE_REPLY: 0x67446698,
  /** Structured reply chunk header (20 bytes). */
  STRUCTURED_REPLY: 0x668e33ef,
  /** Extended reply chunk header (32 bytes). */
  EXTENDED_REPLY: 0x6e8a278c,
} as const;

/** Handshake flags (u16) the server sends in its greeting. */
export const HandshakeFlag = {
  FIXED_NEWSTYLE: 1 << 0,
  NO_ZEROES: 1 << 1,
} as const;

/** Client flags (u32) the client answers the greeting with; the same bits as the handshake flags. */
export const ClientFlag = {
  FIXED_NEWSTYLE: 1 << 0,
  NO_ZEROES: 1 << 1,
} as const;

/** Transmission flags (u16) describing an export, sent with its size. */
export const TransmissionFlag = {
  /** Must always be set. */
  HAS_FLAGS: 1 << 0,
  READ_ONLY: 1 << 1,
  SEND_FLUSH: 1 << 2,
  SEND_FUA: 1 << 3,
  ROTATIONAL: 1 << 4,
  SEND_TRIM: 1 << 5,
  SEND_WRITE_ZEROES: 1 << 6,
  SEND_DF: 1 << 7,
  CAN_MULTI_CONN: 1 << 8,
  SEND_RESIZE: 1 << 9,
  SEND_CACHE: 1 << 10,
  SEND_FAST_ZERO: 1 << 11,
  /** Only with extended headers: BLOCK_STATUS accepts a payload naming the contexts wanted. */
  BLOCK_STATUS_PAYLOAD: 1 << 12,
} as const;

/** Option codes (u32) the client sends during option haggling. */
export const Opt = {
  EXPORT_NAME: 1,
  ABORT: 2,
  LIST: 3,
  /** Withdrawn; never used. Listed so logs can name it. */
  PEEK_EXPORT: 4,
  STARTTLS: 5,
  INFO: 6,
  GO: 7,
  STRUCTURED_REPLY: 8,
  LIST_META_CONTEXT: 9,
  SET_META_CONTEXT: 10,
  EXTENDED_HEADERS: 11,
} as const;

/** Bit 31 marks an option reply type as an error. */
export const REP_ERROR_BIT = 0x80000000;

/** Option reply types (u32). Errors have bit 31 set and may carry a message. */
export const Rep = {
  ACK: 1,
  SERVER: 2,
  INFO: 3,
  META_CONTEXT: 4,
  ERR_UNSUP: 0x80000001,
  ERR_POLICY: 0x80000002,
  ERR_INVALID: 0x80000003,
  ERR_PLATFORM: 0x80000004,
  ERR_TLS_REQD: 0x80000005,
  ERR_UNKNOWN: 0x80000006,
  ERR_SHUTDOWN: 0x80000007,
  ERR_BLOCK_SIZE_REQD: 0x80000008,
  ERR_TOO_BIG: 0x80000009,
  ERR_EXT_HEADER_REQD: 0x8000000a,
} as const;

/** Information types (u16) requested by NBD_OPT_INFO / NBD_OPT_GO and sent in NBD_REP_INFO. */
export const Info = {
  /** u64 size + u16 transmission flags; mandatory before a successful ACK. */
  EXPORT: 0,
  NAME: 1,
  DESCRIPTION: 2,
  /** Three u32: minimum, preferred and maximum block size. */
  BLOCK_SIZE: 3,
} as const;

/** Command types (u16) of a request. */
export const Cmd = {
  READ: 0,
  WRITE: 1,
  DISC: 2,
  FLUSH: 3,
  TRIM: 4,
  CACHE: 5,
  WRITE_ZEROES: 6,
  BLOCK_STATUS: 7,
  RESIZE: 8,
} as const;

/** Command flags (u16) of a request. */
export const CmdFlag = {
  FUA: 1 << 0,
  NO_HOLE: 1 << 1,
  DF: 1 << 2,
  REQ_ONE: 1 << 3,
  FAST_ZERO: 1 << 4,
  /** Extended headers only: the length field is a payload length and that many bytes follow. */
  PAYLOAD_LEN: 1 << 5,
} as const;

/** Reply chunk flags (u16) of structured and extended replies. */
export const ReplyFlag = {
  DONE: 1 << 0,
} as const;

/** Bit 15 marks a reply chunk type as an error chunk (which a client can skip even if unknown). */
export const REPLY_TYPE_ERROR_BIT = 0x8000;

/** Reply chunk types (u16). */
export const ReplyType = {
  NONE: 0,
  OFFSET_DATA: 1,
  OFFSET_HOLE: 2,
  BLOCK_STATUS: 5,
  BLOCK_STATUS_EXT: 6,
  ERROR: 0x8001,
  ERROR_OFFSET: 0x8002,
} as const;

/** Error values (u32) of replies. Clients treat unknown values as EINVAL. */
export const Err = {
  EPERM: 1,
  EIO: 5,
  ENOMEM: 12,
  EINVAL: 22,
  ENOSPC: 28,
  EOVERFLOW: 75,
  ENOTSUP: 95,
  ESHUTDOWN: 108,
} as const;

/** The one metadata context the standard defines, and its status flags. */
export const BaseAllocation = {
  NAME: 'base:allocation',
  /** The extent is not allocated (a hole). */
  STATE_HOLE: 1 << 0,
  /** The extent reads as zeroes. */
  STATE_ZERO: 1 << 1,
} as const;

/** Sizes and limits of the wire format, in bytes. */
export const Limits = {
  /** Longest string (export name, query, message) the protocol allows. */
  MAX_STRING: 4096,
  /** Payload size every peer must accept (2^25); the default maximum payload. */
  DEFAULT_MAX_PAYLOAD: 32 * 1024 * 1024,
  /** Longest option payload the option parser accepts by default. */
  DEFAULT_MAX_OPTION_LENGTH: 64 * 1024,
  /** Bytes of zero padding after an NBD_OPT_EXPORT_NAME reply unless NO_ZEROES was agreed. */
  EXPORT_NAME_PADDING: 124,
  /** Header sizes. */
  GREETING_SIZE: 18,
  OPTION_HEADER_SIZE: 16,
  OPTION_REPLY_HEADER_SIZE: 20,
  COMPACT_REQUEST_SIZE: 28,
  EXTENDED_REQUEST_SIZE: 32,
  SIMPLE_REPLY_SIZE: 16,
  STRUCTURED_REPLY_SIZE: 20,
  EXTENDED_REPLY_SIZE: 32,
} as const;

/**
 * Every NBD protocol constant, grouped. This is the object embedders use:
 * `NBD.Cmd.WRITE`, `NBD.TransmissionFlag.SEND_FUA`, `NBD.Rep.ERR_UNSUP`, …
 */
export const NBD = {
  HandshakeMagic,
  Magic,
  HandshakeFlag,
  ClientFlag,
  TransmissionFlag,
  Opt,
  Rep,
  REP_ERROR_BIT,
  Info,
  Cmd,
  CmdFlag,
  ReplyFlag,
  ReplyType,
  REPLY_TYPE_ERROR_BIT,
  Err,
  BaseAllocation,
  Limits,
} as const;

/** Looks up the constant name of `value` in one of the groups above (for logs and error messages). */
export function nameOf(group: Readonly<Record<string, number | bigint | string>>, value: number): string {
  for (const key of Object.keys(group)) if (group[key] === value) return key;
  return `0x${value.toString(16)}`;
}
