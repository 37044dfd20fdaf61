// Value syntaxes of ovs-ofctl: integers, MACs, IPv4/IPv6 addresses and prefixes, flag sets.
// Values up to 32 bits are numbers; wider ones (MACs, u64, u128, IPv6) are bigints.

/** A parse error at a place in the flow: path is relative (e.g. ['match', 'tcp_dst']), token names it for people. */
export class FlowSyntaxError extends Error {
  override readonly name = 'FlowSyntaxError';
  constructor(readonly path: (string | number)[], readonly token: string, readonly reason: string) {
    super(`${token}: ${reason}`);
  }
}

export type Val = number | bigint;

/**
 * A lookup table by name for names from a request: no prototype, so "constructor" or "toString"
 * find nothing (a plain object literal would hand back Object.prototype's functions).
 */
export function nameTable<T>(entries: Record<string, T>): Readonly<Record<string, T>> {
  return Object.freeze(Object.assign(Object.create(null) as Record<string, T>, entries));
}

const DEC = /^[0-9]+$/;
const HEX = /^0[xX][0-9a-fA-F]+$/;

/** Parses a decimal or 0x-hex unsigned integer of at most bits bits; null if malformed or too wide. */
export function parseUint(s: string, bits: number): Val | null {
  if (!DEC.test(s) && !HEX.test(s)) return null;
  if (bits <= 32) {
    if (s.length > 12) { // leading zeros: fall back to BigInt
      const b = BigInt(s);
      return b < 1n << BigInt(bits) ? Number(b) : null;
    }
    const v = Number(s);
    return v < 2 ** bits ? v : null;
  }
  const v = BigInt(s);
  return v < 1n << BigInt(bits) ? v : null;
}

export function allOnes(bits: number): Val {
  return bits <= 32 ? 2 ** bits - 1 : (1n << BigInt(bits)) - 1n;
}

export function isZero(v: Val): boolean {
  return v === 0 || v === 0n;
}

export function and(a: Val, b: Val): Val {
  if (typeof a === 'number' && typeof b === 'number') return (a & b) >>> 0;
  return BigInt(a) & BigInt(b);
}

export function hexOf(v: Val): string {
  return '0x' + v.toString(16);
}

/** C's %#x: "0" for zero, else 0x... */
export function cHex(v: Val): string {
  return isZero(v) ? '0' : hexOf(v);
}

// ---- IPv4 -------------------------------------------------------------------------------
export function parseIpv4(s: string): number | null {
  let v = 0;
  let octet = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 48 && c <= 57) {
      octet = octet * 10 + (c - 48);
      if (++digits > 3 || octet > 255) return null;
    } else if (c === 46 && digits > 0 && dots < 3) {
      v = v * 256 + octet;
      octet = 0;
      digits = 0;
      dots++;
    } else {
      return null;
    }
  }
  if (dots !== 3 || digits === 0) return null;
  return v * 256 + octet;
}

export function formatIpv4(v: number): string {
  return `${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
}

export function prefixMask32(n: number): number {
  return n === 0 ? 0 : (0xffffffff << (32 - n)) >>> 0;
}

/** Prefix length if mask is a CIDR mask, else -1. */
export function cidrLen(mask: Val, bits: number): number {
  const b = BigInt(mask);
  const all = (1n << BigInt(bits)) - 1n;
  const inv = all ^ b; // must be 0...01...1
  if ((inv & (inv + 1n)) !== 0n) return -1;
  let n = bits;
  let x = inv;
  while (x) { n--; x >>= 1n; }
  return n;
}

// ---- IPv6 -------------------------------------------------------------------------------
export function parseIpv6(s: string): bigint | null {
  if (s.length < 2 || s.length > 45 || !/^[0-9a-fA-F:.]+$/.test(s)) return null;
  let str = s;
  const tail: number[] = [];
  if (s.includes('.')) { // embedded IPv4 in the last 32 bits
    const i = s.lastIndexOf(':');
    if (i < 0) return null;
    const v4 = parseIpv4(s.slice(i + 1));
    if (v4 === null) return null;
    tail.push(v4 >>> 16, v4 & 0xffff);
    str = s.slice(0, i + 1);
    if (!str.endsWith('::')) str = str.slice(0, -1);
  }
  const dbl = str.indexOf('::');
  if (dbl !== str.lastIndexOf('::')) return null;
  const groupsOf = (x: string): number[] | null => {
    if (x === '') return [];
    const out: number[] = [];
    for (const g of x.split(':')) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return null;
      out.push(parseInt(g, 16));
    }
    return out;
  };
  let groups: number[];
  if (dbl >= 0) {
    const head = groupsOf(str.slice(0, dbl));
    const rest = groupsOf(str.slice(dbl + 2));
    if (!head || !rest) return null;
    const missing = 8 - head.length - rest.length - tail.length;
    if (missing < 1) return null;
    groups = [...head, ...new Array<number>(missing).fill(0), ...rest, ...tail];
  } else {
    const g = groupsOf(str);
    if (!g) return null;
    groups = [...g, ...tail];
    if (groups.length !== 8) return null;
  }
  let v = 0n;
  for (const g of groups) v = (v << 16n) | BigInt(g);
  return v;
}

/** inet_ntop's form: lower case, the longest run (>= 2) of zero groups as "::". */
export function formatIpv6(v: bigint): string {
  const g: number[] = [];
  for (let i = 7; i >= 0; i--) g.push(Number((v >> BigInt(i * 16)) & 0xffffn));
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) { best = i; bestLen = j - i; }
    i = j;
  }
  const hex = (a: number[]): string => a.map((x) => x.toString(16)).join(':');
  if (best < 0) return hex(g);
  return `${hex(g.slice(0, best))}::${hex(g.slice(best + bestLen))}`;
}

export function prefixMask128(n: number): bigint {
  return n === 0 ? 0n : ((1n << BigInt(n)) - 1n) << BigInt(128 - n);
}

// ---- MAC --------------------------------------------------------------------------------
export function parseMac(s: string): bigint | null {
  const p = s.split(':');
  if (p.length !== 6) return null;
  let v = 0n;
  for (const x of p) {
    if (!/^[0-9a-fA-F]{1,2}$/.test(x)) return null;
    v = (v << 8n) | BigInt(parseInt(x, 16));
  }
  return v;
}

export function formatMac(v: bigint): string {
  const out: string[] = [];
  for (let i = 5; i >= 0; i--) out.push(Number((v >> BigInt(i * 8)) & 0xffn).toString(16).padStart(2, '0'));
  return out.join(':');
}

// ---- flag sets (ct_state, tcp_flags) ----------------------------------------------------
export interface FlagSet {
  names: readonly (readonly [string, number])[];
  /** every bit the field can carry; an exact (unmasked) match uses it as the mask */
  full: number;
}

/** "+a-b" (masked), "a|b" or a bare name (exact), or integers "v[/m]". null if malformed. */
export function parseFlags(s: string, fs: FlagSet): { value: number; mask: number } | { error: string } {
  const byName = (n: string): number | undefined => fs.names.find(([k]) => k === n.toLowerCase())?.[1];
  if (/^[+-]/.test(s)) {
    let value = 0;
    let mask = 0;
    const re = /([+-])([a-zA-Z_0-9]+)/gy;
    let m: RegExpExecArray | null;
    let at = 0;
    while ((m = re.exec(s)) !== null) {
      const bit = byName(m[2]!);
      if (bit === undefined) return { error: `unknown flag "${m[2]}"` };
      if (mask & bit) return { error: `flag "${m[2]}" given twice` };
      mask |= bit;
      if (m[1] === '+') value |= bit;
      at = re.lastIndex;
    }
    if (at !== s.length) return { error: `cannot parse "${s}"` };
    return { value, mask };
  }
  const [v, mk] = s.split('/');
  if (mk !== undefined || DEC.test(v!) || HEX.test(v!)) {
    const value = parseUint(v!, 32);
    const mask = mk === undefined ? fs.full : parseUint(mk, 32);
    if (value === null || mask === null) return { error: `cannot parse "${s}"` };
    if ((Number(mask) & ~fs.full) !== 0) return { error: `mask ${hexOf(mask)} has bits outside ${hexOf(fs.full)}` };
    if ((Number(value) & ~fs.full) !== 0) return { error: `value ${hexOf(value)} has bits outside ${hexOf(fs.full)}` };
    return { value: Number(value) & Number(mask), mask: Number(mask) };
  }
  let value = 0;
  for (const n of s.split('|')) {
    const bit = byName(n);
    if (bit === undefined) return { error: `unknown flag "${n}"` };
    value |= bit;
  }
  return { value, mask: fs.full };
}

/** OVS's format_flags_masked: "a|b" (or "0") when the mask is full, else "+a-b". */
export function formatFlags(value: number, mask: number, fs: FlagSet): string {
  const name = (bit: number): string => fs.names.find(([, b]) => b === bit)?.[0] ?? `0x${bit.toString(16)}`;
  const bits = (m: number): number[] => {
    const out: number[] = [];
    for (let b = 0; b < 32; b++) if (m & (1 << b)) out.push((1 << b) >>> 0);
    return out;
  };
  if (mask === fs.full) return value === 0 ? '0' : bits(value).map(name).join('|');
  return bits(mask).map((b) => `${value & b ? '+' : '-'}${name(b)}`).join('');
}

// ---- hex byte strings (note:) -------------------------------------------------------------
export function parseHexBytes(s: string): number[] | null {
  const clean = s.replace(/\./g, '');
  if (clean.length === 0 || clean.length % 2 !== 0 || !/^[0-9a-fA-F]+$/.test(clean)) return null;
  const out: number[] = [];
  for (let i = 0; i < clean.length; i += 2) out.push(parseInt(clean.slice(i, i + 2), 16));
  return out;
}

export function formatHexBytes(b: readonly number[]): string {
  return b.map((x) => x.toString(16).padStart(2, '0')).join('.');
}
