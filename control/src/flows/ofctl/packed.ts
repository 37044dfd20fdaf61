// A compiled flow's key and mask, packed: only the runs of bytes where either is not zero. A
// flow_key is 208 bytes and a match sets a few of them, so a bulk load of 10^5 flows kept 42 MB
// of zeros in two full arrays a flow, and paging that memory in (about 11 us a 4 KB page on a VM)
// cost more than compiling. Packed, the same flows take a couple of MB, and the id, the journal
// text and the FLOW_ADD are all made from the runs.
//
// Layout, from off for len bytes of buf: records of [start u8][n u8][n key bytes][n mask bytes],
// in order of start, each a maximal run (a byte outside every run is zero in key and mask).
import { FLOW_KEY } from '../../gen/proto';

const KEY_SIZE = FLOW_KEY.size;
// a run's start and length are one byte each
if (KEY_SIZE > 255) throw new Error(`flow_key is ${KEY_SIZE} bytes: packed runs address at most 255`);

export interface PackedKeyMask {
  readonly buf: Buffer;
  readonly off: number;
  readonly len: number;
}

/** No key and mask: what a row or record that holds no flow points at. */
export const NO_PACKED: PackedKeyMask = { buf: Buffer.alloc(0), off: 0, len: 0 };

// records go into shared slabs (a Buffer each, not one allocation a flow)
const SLAB_BYTES = 64 * 1024;
let slab = Buffer.allocUnsafe(SLAB_BYTES);
let slabUsed = 0;

/** The most a pack can take: runs of one byte with one zero byte between them. */
const MAX_PACKED = 2 * KEY_SIZE + 2 * (KEY_SIZE >> 1);

/**
 * Packs the key at km[0..KEY_SIZE) and the mask at km[KEY_SIZE..2*KEY_SIZE), in one pass. Only
 * bytes from..to are read: the caller knows the rest is zero (buildMatch: the regions it merged).
 */
export function pack(km: Uint8Array, from = 0, to: number = KEY_SIZE): PackedKeyMask {
  if (slabUsed + MAX_PACKED > SLAB_BYTES) {
    slab = Buffer.allocUnsafe(SLAB_BYTES);
    slabUsed = 0;
  }
  const buf = slab;
  const off = slabUsed;
  let w = off;
  for (let i = from; i < to;) {
    if ((km[i]! | km[KEY_SIZE + i]!) === 0) { i++; continue; }
    const start = i;
    while (i < to && (km[i]! | km[KEY_SIZE + i]!) !== 0) i++;
    const n = i - start;
    buf[w] = start;
    buf[w + 1] = n;
    for (let j = 0; j < n; j++) {
      buf[w + 2 + j] = km[start + j]!;
      buf[w + 2 + n + j] = km[KEY_SIZE + start + j]!;
    }
    w += 2 + 2 * n;
  }
  slabUsed = w;
  return { buf, off, len: w - off };
}

/**
 * Calls fn(start, n, at) for each run: its key bytes are buf[at..at+n), its mask bytes
 * buf[at+n..at+2n), and they sit at start.. in the key and in the mask.
 */
export function eachPackedRun(p: PackedKeyMask, fn: (start: number, n: number, at: number) => void): void {
  const { buf } = p;
  for (let r = p.off, end = p.off + p.len; r < end;) {
    const n = buf[r + 1]!;
    fn(buf[r]!, n, r + 2);
    r += 2 + 2 * n;
  }
}

/** Where the runs end: one past the last key (and mask) byte they set (at most KEY_SIZE, when packed here). */
export function packedKeyEnd(p: PackedKeyMask): number {
  let end = 0;
  const { buf } = p;
  for (let r = p.off, last = p.off + p.len; r < last; r += 2 + 2 * buf[r + 1]!) end = Math.max(end, buf[r]! + buf[r + 1]!);
  return end;
}

/** Writes the runs into key (at kOff) and mask (at mOff), whose other bytes the caller has zeroed. */
export function unpackInto(p: PackedKeyMask, key: Uint8Array, kOff: number, mask: Uint8Array, mOff: number): void {
  const { buf } = p;
  for (let r = p.off, end = p.off + p.len; r < end;) {
    const start = buf[r]!;
    const n = buf[r + 1]!;
    for (let j = 0; j < n; j++) {
      key[kOff + start + j] = buf[r + 2 + j]!;
      mask[mOff + start + j] = buf[r + 2 + n + j]!;
    }
    r += 2 + 2 * n;
  }
}

/** One side of the runs (the key, or the mask) as an array of its own. */
function unpackSide(p: PackedKeyMask, mask: boolean): Uint8Array {
  const out = new Uint8Array(KEY_SIZE);
  eachPackedRun(p, (start, n, at) => out.set(p.buf.subarray(mask ? at + n : at, (mask ? at + n : at) + n), start));
  return out;
}

/** The key, as an array of its own. */
export const packedKey = (p: PackedKeyMask): Uint8Array => unpackSide(p, false);

/** The mask, as an array of its own. */
export const packedMask = (p: PackedKeyMask): Uint8Array => unpackSide(p, true);
