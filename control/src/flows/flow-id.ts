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

/** FNV-1a 64 over parts, in four 16-bit limbs (no BigInt per byte; runs of zeros in one step). */
export function fnv1a64Fast(parts: readonly Uint8Array[]): bigint {
  v0 = 0x2325; v1 = 0x8422; v2 = 0x9ce4; v3 = 0xcbf2; // offset basis 0xcbf29ce484222325
  let zeros = 0;
  for (const p of parts) {
    for (let i = 0; i < p.length; i++) {
      const b = p[i]!;
      if (b === 0) {
        if (++zeros === MAX_RUN) { mulPow(zeros); zeros = 0; }
        continue;
      }
      if (zeros) { mulPow(zeros); zeros = 0; }
      step(b);
    }
  }
  if (zeros) mulPow(zeros);
  lastHi = v3 * 68719476736 + v2 * 1048576 + v1 * 16 + (v0 >>> 12); // bits 63..12
  return BigInt(v3 * 65536 + v2) * 4294967296n + BigInt(v1 * 65536 + v0);
}

/** The id of a flow: FNV-1a 64 of [table u8, priority u16 LE, key, mask]. key must already be masked. */
export function flowId(table: number, priority: number, key: Uint8Array, mask: Uint8Array): bigint {
  return flowIdParts(table, priority, key, mask)[0];
}


let cachedBuf: ArrayBufferLike | null = null;
let cachedWords: Uint32Array | null = null;

/** FNV-1a step over len bytes of b from off, skipping zero words 4 bytes at a time where aligned. */
function hashWords(b: Uint8Array, off: number, len: number, zeros0: number): number {
  let zeros = zeros0;
  let words: Uint32Array | null = null;
  const at = b.byteOffset + off;
  if (at % 4 === 0 && len % 4 === 0) {
    if (b.buffer !== cachedBuf) {
      cachedBuf = b.buffer;
      cachedWords = new Uint32Array(b.buffer, 0, b.buffer.byteLength >>> 2);
    }
    words = cachedWords;
  }
  const w0 = at >>> 2;
  for (let i = 0; i < len;) {
    if (words !== null && (i & 3) === 0 && words[w0 + (i >>> 2)] === 0) {
      zeros += 4;
      if (zeros >= MAX_RUN - 4) { mulPow(zeros); zeros = 0; }
      i += 4;
      continue;
    }
    const x = b[off + i++]!;
    if (x === 0) { zeros++; continue; }
    if (zeros) { mulPow(zeros); zeros = 0; }
    step(x);
  }
  return zeros;
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

/** Starts an id: the state is reset and the table and priority bytes hashed; returns the zeros pending. */
function idStart(table: number, priority: number): number {
  v0 = 0x2325; v1 = 0x8422; v2 = 0x9ce4; v3 = 0xcbf2;
  let zeros = 0;
  for (const x of [table, priority & 0xff, priority >>> 8]) {
    if (x === 0) { zeros++; continue; }
    if (zeros) { mulPow(zeros); zeros = 0; }
    step(x);
  }
  return zeros;
}

// the id's two 32-bit halves become one BigInt through this (one allocation, not four)
const idWords = new Uint32Array(2);
const idU64 = new BigUint64Array(idWords.buffer);
const LITTLE_ENDIAN = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1;

/** Ends an id: the pending zeros hashed; the id and its top 52 bits as a number. */
function idEnd(zeros: number): [bigint, number] {
  if (zeros) mulPow(zeros);
  const hi = v3 * 68719476736 + v2 * 1048576 + v1 * 16 + (v0 >>> 12);
  idWords[LITTLE_ENDIAN ? 0 : 1] = v1 * 65536 + v0;
  idWords[LITTLE_ENDIAN ? 1 : 0] = v3 * 65536 + v2;
  return [idU64[0]!, hi];
}

/** flowId and its top 52 bits as a number (for cheap ordering). */
export function flowIdParts(table: number, priority: number, key: Uint8Array, mask: Uint8Array): [bigint, number] {
  let zeros = idStart(table, priority);
  zeros = hashWords(key, 0, key.length, zeros);
  zeros = hashWords(mask, 0, mask.length, zeros);
  return idEnd(zeros);
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

/** flowIdParts of a packed key and mask (flow_key of len bytes): the same id as of the full arrays. */
export function flowIdPartsPacked(table: number, priority: number, p: PackedKeyMask, len: number): [bigint, number] {
  let zeros = idStart(table, priority);
  // at most 3 + len zeros pile up before the flush (len = 208): below MAX_RUN
  zeros = hashPackedSide(p, 0, len, zeros);
  if (zeros) { mulPow(zeros); zeros = 0; }
  return idEnd(hashPackedSide(p, 1, len, zeros));
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
