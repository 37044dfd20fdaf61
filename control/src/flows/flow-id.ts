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

// FNV prime powers P^k mod 2^64 as 16-bit limbs: a run of k zero bytes is one multiply by P^k
// (flow keys are mostly zeros).
const MAX_RUN = 1024;
const POW = new Float64Array(4 * (MAX_RUN + 1));
{
  let x = 1n;
  for (let k = 0; k <= MAX_RUN; k++) {
    for (let j = 0; j < 4; j++) POW[4 * k + j] = Number((x >> BigInt(16 * j)) & 0xffffn);
    x = (x * 0x100000001b3n) & 0xffffffffffffffffn;
  }
}

let v0 = 0, v1 = 0, v2 = 0, v3 = 0;
let lastHi = 0;

/** h *= P^k (mod 2^64), k <= MAX_RUN */
function mulPow(k: number): void {
  const c0 = POW[4 * k]!, c1 = POW[4 * k + 1]!, c2 = POW[4 * k + 2]!, c3 = POW[4 * k + 3]!;
  const r0 = v0 * c0;
  let r1 = v0 * c1 + v1 * c0;
  let r2 = v0 * c2 + v1 * c1 + v2 * c0;
  let r3 = v0 * c3 + v1 * c2 + v2 * c1 + v3 * c0;
  r1 += Math.floor(r0 / 65536);
  r2 += Math.floor(r1 / 65536);
  r3 += Math.floor(r2 / 65536);
  v0 = r0 % 65536;
  v1 = r1 % 65536;
  v2 = r2 % 65536;
  v3 = r3 % 65536;
}

/** The state back to the offset basis 0xcbf29ce484222325 (low limb first). */
function reset(): void {
  v0 = 0x2325; v1 = 0x8422; v2 = 0x9ce4; v3 = 0xcbf2;
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

// the hash's two 32-bit halves become one BigInt through this (one allocation, not four)
const hashWords32 = new Uint32Array(2);
const hashU64 = new BigUint64Array(hashWords32.buffer);
const LITTLE_ENDIAN = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1;

/** Ends a hash: the pending zeros hashed; sets lastHi (bits 63..12) and returns the hash. */
function finish(zeros: number): bigint {
  if (zeros) mulPow(zeros);
  const lo = v1 * 65536 + v0;
  const hi = v3 * 65536 + v2;
  lastHi = idTop52(lo, hi);
  hashWords32[LITTLE_ENDIAN ? 0 : 1] = lo;
  hashWords32[LITTLE_ENDIAN ? 1 : 0] = hi;
  return hashU64[0]!;
}

/** FNV-1a 64 over parts, in four 16-bit limbs (no BigInt per byte; runs of zeros in one step). */
export function fnv1a64Fast(parts: readonly Uint8Array[]): bigint {
  reset();
  let zeros = 0;
  for (const p of parts) zeros = feed(p, zeros);
  return finish(zeros);
}

/** The id of a flow: FNV-1a 64 of [table u8, priority u16 LE, key, mask]. key must already be masked. */
export function flowId(table: number, priority: number, key: Uint8Array, mask: Uint8Array): bigint {
  return flowIdParts(table, priority, key, mask)[0];
}

function step(x: number): void {
  v0 ^= x;
  const t0 = v0 * 0x1b3;
  let t1 = v1 * 0x1b3;
  let t2 = v2 * 0x1b3;
  const t3 = v3 * 0x1b3 + (v1 << 8);
  t2 += v0 << 8;
  t1 += t0 >>> 16;
  v0 = t0 & 0xffff;
  t2 += t1 >>> 16;
  v1 = t1 & 0xffff;
  v3 = (t3 + (t2 >>> 16)) & 0xffff;
  v2 = t2 & 0xffff;
}

/** The id's first bytes: table, then priority little-endian. */
const head = (table: number, priority: number): number[] => [table, priority & 0xff, priority >>> 8];

/** flowId and its top 52 bits as a number (for cheap ordering), from the full key and mask. */
export function flowIdParts(table: number, priority: number, key: Uint8Array, mask: Uint8Array): [bigint, number] {
  const id = fnv1a64Fast([Uint8Array.from(head(table, priority)), key, mask]);
  return [id, lastHi];
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

/** Hashes [table, priority LE, key, mask] of a packed key and mask (flow_key of len bytes) into the limbs. */
function hashPacked(table: number, priority: number, p: PackedKeyMask, len: number): void {
  reset();
  headBytes[0] = table;
  headBytes[1] = priority & 0xff;
  headBytes[2] = priority >>> 8;
  let zeros = feed(headBytes, 0);
  // at most 3 + len zeros pile up before the flush (len = 208): below MAX_RUN
  zeros = hashPackedSide(p, 0, len, zeros);
  if (zeros) { mulPow(zeros); zeros = 0; }
  zeros = hashPackedSide(p, 1, len, zeros);
  if (zeros) mulPow(zeros);
}
const headBytes = new Uint8Array(3);

/** flowIdPartsPacked's id as its two 32-bit halves, out[0] the low one: no BigInt (a bulk load's rows). */
export function flowIdWordsPacked(table: number, priority: number, p: PackedKeyMask, len: number, out: Uint32Array): void {
  hashPacked(table, priority, p, len);
  out[0] = v1 * 65536 + v0;
  out[1] = v3 * 65536 + v2;
}

/** An id's top 52 bits as a number, from its halves: the listing's cheap order (flowIdParts' second part). */
export const idTop52 = (lo: number, hi: number): number => hi * 1048576 + (lo >>> 12);

/** flowIdParts of a packed key and mask (flow_key of len bytes): the same id as of the full arrays. */
export function flowIdPartsPacked(table: number, priority: number, p: PackedKeyMask, len: number): [bigint, number] {
  hashPacked(table, priority, p, len);
  const id = finish(0);
  return [id, lastHi];
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
