/**
 * What the server advertises for an export: transmission flags derived from the driver's
 * capabilities, and block-size constraints derived from its limits — both within the bounds
 * qemu, libnbd and the kernel client accept.
 */
import type { BlockCapabilities, BlockLimits } from '../../types.js';
import { TransmissionFlag } from '../protocol/constants.js';

/** What the flags depend on besides the driver. */
export interface FlagInputs {
  readonly caps: BlockCapabilities;
  readonly readOnly: boolean;
  /** Structured (or extended) replies agreed: DF may be offered. */
  readonly structured: boolean;
}

/** The u16 transmission flags of an export. */
export function transmissionFlags({ caps, readOnly, structured }: FlagInputs): number {
  let flags = TransmissionFlag.HAS_FLAGS;
  // FLUSH is harmless on any export; advertise it whenever the driver has something to flush.
  if (caps.canFlush) flags |= TransmissionFlag.SEND_FLUSH;
  if (readOnly) flags |= TransmissionFlag.READ_ONLY;
  else {
    // The driver base class emulates FUA with a flush, and zeroing with writes.
    if (caps.canFua || caps.canFlush) flags |= TransmissionFlag.SEND_FUA;
    if (caps.canDiscard) flags |= TransmissionFlag.SEND_TRIM;
    flags |= TransmissionFlag.SEND_WRITE_ZEROES;
    // The spec lets a server advertise FAST_ZERO and answer ENOTSUP quickly when it cannot; the
    // driver does exactly that, which lets nbdcopy/qemu-img skip a useless pre-zeroing pass.
    flags |= TransmissionFlag.SEND_FAST_ZERO;
  }
  if (caps.canMultiConn) flags |= TransmissionFlag.CAN_MULTI_CONN;
  if (caps.canCache) flags |= TransmissionFlag.SEND_CACHE;
  if (structured) flags |= TransmissionFlag.SEND_DF;
  return flags;
}

/** Advertised block-size constraints. */
export interface BlockSizes {
  readonly minimum: number;
  readonly preferred: number;
  readonly maximum: number;
}

function isPowerOfTwo(n: number): boolean {
  return Number.isSafeInteger(n) && n > 0 && (n & (n - 1)) === 0;
}

/**
 * Block sizes for INFO_BLOCK_SIZE: minimum a power of two ≤ 64 KiB (the driver's own alignment),
 * preferred a power of two ≥ max(minimum, 512) and ≤ maximum, maximum a multiple of the minimum,
 * no larger than the payload limit nor the driver's own maximum (unless that is below 512).
 */
export function blockSizes(limits: BlockLimits, maxPayload: number): BlockSizes {
  const minimum = isPowerOfTwo(limits.minBlockSize) && limits.minBlockSize <= 65536 ? limits.minBlockSize : 1;
  let preferred = Math.max(limits.preferredBlockSize, minimum, 512);
  if (!isPowerOfTwo(preferred)) preferred = 2 ** Math.ceil(Math.log2(preferred));
  // maxPayload is at least 64 KiB (checked by the options), so this keeps preferred ≥ minimum.
  preferred = Math.min(preferred, 2 ** 25, 2 ** Math.floor(Math.log2(maxPayload)));
  let maximum = Math.min(limits.maxBlockSize, maxPayload, 0xffffffff);
  maximum -= maximum % minimum;
  // The maximum must not be below the preferred size. The driver's maximum is a real limit, so
  // the preference gives way (down to the spec's floor of max(minimum, 512)), not the maximum.
  if (maximum < preferred) preferred = Math.max(minimum, 512, 2 ** Math.floor(Math.log2(Math.max(1, maximum))));
  if (maximum < preferred) maximum = preferred;
  return { minimum, preferred, maximum };
}

/**
 * Whether the constraints differ from the spec's defaults (1, 4096, unlimited) in a way the
 * client must know: such exports always send INFO_BLOCK_SIZE, requested or not.
 */
export function needsBlockSizeInfo(sizes: BlockSizes): boolean {
  return sizes.minimum > 1;
}
