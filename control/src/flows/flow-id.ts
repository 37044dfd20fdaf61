// Flow identity: FNV-1a 64 of (table, priority, masked key bytes, mask bytes), so the same
// (table, priority, match) always has the same id however it was spelled.
import type { PackedKeyMask } from './ofctl/packed';

/** FNV-1a 64 of the UTF-8 bytes of s (reference implementation, BigInt). */
export function fnv1a64(s: string | Uint8Array): bigint {
  let h = 0xcbf29ce484222325n;
  for (const b of typeof s === 'string' ? Buffer.from(s, 'utf8') : s) {
    h ^= BigInt(b);
    h = (h * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  return h;
}

// FNV prime powers P^k mod 2^64 as 32-bit words, low then high: a run of k zero bytes is one
// multiply by P^k (flow keys are mostly zeros).
const MAX_RUN = 1024;
const POW = new Uint32Array(2 * (MAX_RUN + 1));
{
  let x = 1n;
  for (let k = 0; k <= MAX_RUN; k++) {
    POW[2 * k] = Number(x & 0xffffffffn);
    POW[2 * k + 1] = Number(x >> 32n);
    x = (x * 0x100000001b3n) & 0xffffffffffffffffn;
  }
}

// the hash, as its low and high 32-bit words: in a typed array, not two module variables, which
// would hold a value of 2^31 or more as a heap number made anew at every store
const h32 = new Uint32Array(2);
const LOW = 0, HIGH = 1;

// a 64-bit value to its halves and back, without a BigInt operation each
const u64 = new BigUint64Array(1);
const u32 = new Uint32Array(u64.buffer);
const LO = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1 ? 0 : 1;
const HI = 1 - LO;

/** Sets halves[0] = low 32 bits of v, halves[1] = high 32 bits. */
export function split64(v: bigint, halves: Uint32Array | number[]): void {
  u64[0] = v;
  halves[0] = u32[LO]!;
  halves[1] = u32[HI]!;
}

/** The 64-bit value of halves lo and hi. */
export function join64(lo: number, hi: number): bigint {
  u32[LO] = lo;
  u32[HI] = hi;
  return u64[0]!;
}

/** The high 32 bits of the 64-bit product of two uint32 a and b (in 16-bit halves: exact in doubles). */
function mulHigh32(a: number, b: number): number {
  const a0 = a & 0xffff, a1 = a >>> 16, b0 = b & 0xffff, b1 = b >>> 16;
  const mid = a1 * b0 + a0 * b1 + ((a0 * b0) >>> 16);
  return (a1 * b1 + Math.floor(mid / 65536)) >>> 0;
}

/** h *= P^k (mod 2^64), k <= MAX_RUN */
function mulPow(k: number): void {
  const cLo = POW[2 * k]!, cHi = POW[2 * k + 1]!;
  const lo = h32[LOW]!;
  h32[HIGH] = mulHigh32(lo, cLo) + Math.imul(lo, cHi) + Math.imul(h32[HIGH]!, cLo);
  h32[LOW] = Math.imul(lo, cLo);
}

/** The state back to the offset basis 0xcbf29ce484222325. */
function reset(): void {
  h32[LOW] = 0x84222325;
  h32[HIGH] = 0xcbf29ce4;
}

/** FNV-1a over bytes, zero bytes counted into zeros (hashed in runs); returns the zeros pending. */
function feed(bytes: ArrayLike<number>, zeros0: number): number {
  let zeros = zeros0;
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!;
    if (b === 0) {
      if (++zeros === MAX_RUN) { mulPow(zeros); zeros = 0; }
      continue;
    }
    if (zeros) { mulPow(zeros); zeros = 0; }
    step(b);
  }
  return zeros;
}

/** Ends a hash (the pending zeros hashed); the state then holds it. */
function finish(zeros: number): void {
  if (zeros) mulPow(zeros);
}

/** The hash in the state, and its top 52 bits (flowIdParts' pair). */
const hashParts = (): [bigint, number] => [join64(h32[LOW]!, h32[HIGH]!), idTop52(h32[LOW]!, h32[HIGH]!)];

/** FNV-1a 64 over parts, on two 32-bit words (no BigInt per byte; runs of zeros in one step). */
export function fnv1a64Fast(parts: readonly Uint8Array[]): bigint {
  reset();
  let zeros = 0;
  for (const p of parts) zeros = feed(p, zeros);
  finish(zeros);
  return join64(h32[LOW]!, h32[HIGH]!);
}

/** The id of a flow: FNV-1a 64 of [table u8, priority u16 LE, key, mask]. key must already be masked. */
export function flowId(table: number, priority: number, key: Uint8Array, mask: Uint8Array): bigint {
  return flowIdParts(table, priority, key, mask)[0];
}

/** One byte: h ^= x, h *= P, where P = 2^40 + 0x1b3. */
function step(x: number): void {
  const lo = (h32[LOW]! ^ x) >>> 0;
  const m = lo * 0x1b3; // below 2^41: exact
  const mLo = m >>> 0;
  // h * 2^40 adds lo's low 24 bits to the high word, 8 bits up
  h32[HIGH] = Math.imul(h32[HIGH]!, 0x1b3) + (m - mLo) / 4294967296 + (lo << 8); // the store keeps it mod 2^32
  h32[LOW] = mLo;
}

/** The id's first bytes: table, then priority little-endian (in one array, reused). */
function headBytesOf(table: number, priority: number): Uint8Array {
  headBytes[0] = table;
  headBytes[1] = priority & 0xff;
  headBytes[2] = priority >>> 8;
  return headBytes;
}
const headBytes = new Uint8Array(3);

/** flowId and its top 52 bits as a number (for cheap ordering), from the full key and mask. */
export function flowIdParts(table: number, priority: number, key: Uint8Array, mask: Uint8Array): [bigint, number] {
  fnv1a64Fast([headBytesOf(table, priority), key, mask]);
  return hashParts();
}

/** FNV-1a of the runs' bytes, side 0 (key) or 1 (mask), with the zeros between them: as of len full bytes. */
function hashPackedSide(p: PackedKeyMask, side: number, len: number, zeros0: number): number {
  let zeros = zeros0;
  let pos = 0;
  const { buf } = p;
  for (let r = p.off, end = p.off + p.len; r < end;) {
    const start = buf[r]!;
    const n = buf[r + 1]!;
    zeros += start - pos;
    const from = r + 2 + side * n;
    for (let j = 0; j < n; j++) {
      const x = buf[from + j]!;
      if (x === 0) { zeros++; continue; }
      if (zeros) { mulPow(zeros); zeros = 0; }
      step(x);
    }
    pos = start + n;
    r += 2 + 2 * n;
  }
  return zeros + (len - pos);
}

/** Hashes [table, priority LE, key, mask] of a packed key and mask (flow_key of len bytes) into the hash state (h32). */
function hashPacked(table: number, priority: number, p: PackedKeyMask, len: number): void {
  reset();
  let zeros = feed(headBytesOf(table, priority), 0);
  // at most 3 + len zeros pile up before the flush (len = 208): below MAX_RUN
  zeros = hashPackedSide(p, 0, len, zeros);
  if (zeros) { mulPow(zeros); zeros = 0; }
  finish(hashPackedSide(p, 1, len, zeros));
}

/** flowIdPartsPacked's id as its two 32-bit halves, out[0] the low one: no BigInt (a bulk load's rows). */
export function flowIdWordsPacked(table: number, priority: number, p: PackedKeyMask, len: number, out: Uint32Array): void {
  hashPacked(table, priority, p, len);
  out[0] = h32[LOW]!;
  out[1] = h32[HIGH]!;
}

/** An id's top 52 bits as a number, from its halves: the listing's cheap order (flowIdParts' second part). */
export const idTop52 = (lo: number, hi: number): number => hi * 1048576 + (lo >>> 12);

/** flowIdParts of a packed key and mask (flow_key of len bytes): the same id as of the full arrays. */
export function flowIdPartsPacked(table: number, priority: number, p: PackedKeyMask, len: number): [bigint, number] {
  hashPacked(table, priority, p, len);
  return hashParts();
}

export function formatFlowId(id: bigint): string {
  return id.toString(16).padStart(16, '0');
}

/** Parses a 16-hex-digit flow id (as shown by the API); null if malformed. */
export function parseFlowId(s: string): bigint | null {
  return /^[0-9a-fA-F]{16}$/.test(s) ? BigInt('0x' + s) : null;
}

/** Parses a 64-bit cookie given as "0x..." hex or decimal; null if malformed or out of range. */
export function parseCookie(s: string): bigint | null {
  if (!/^(0[xX][0-9a-fA-F]{1,16}|[0-9]{1,20})$/.test(s)) return null;
  const v = BigInt(s);
  return v <= 0xffffffffffffffffn ? v : null;
}

export function formatCookie(v: bigint): string {
  return '0x' + v.toString(16);
}
