// Conntrack filters: the query parameters of GET/DELETE /v1/conntrack, checked and turned into
// ferryd's ct_filter (every field pushed down: ferryd walks its table once, control never filters).
import { CT_FILTER, CtFilterFlag, CtTcpState, CtTcpStateName } from '../gen/proto';
import { badRequest } from '../problem';
import { parseIpv4, parseIpv6, parseUint } from '../flows/ofctl/values';

/** The filter query parameters (after the schema's checks and conversions). */
export interface CtFilterQuery {
  zone?: number;
  proto?: string;
  src?: string;
  dst?: string;
  sport?: number;
  dport?: number;
  state?: string;
  mark?: string;
  label?: string;
  family?: 'ipv4' | 'ipv6';
  either_dir?: boolean;
}

/** Names a filter parameter in a problem: "?zone" for the query (the default). */
export type FilterPointer = (param: keyof CtFilterQuery) => string;

/** A checked filter: flags say which fields count (as ct_filter.flags). */
export interface CtFilterSpec {
  flags: number;
  zone: number;
  proto: number;
  ipVersion: number;
  src: Uint8Array;
  srcPlen: number;
  dst: Uint8Array;
  dstPlen: number;
  sport: number;
  dport: number;
  tcpState: number;
  mark: number;
  markMask: number;
  label: Uint8Array;
  labelMask: Uint8Array;
}

/** IP protocol names the API and ferryctl accept and print. */
export const PROTO_NUMBERS: Readonly<Record<string, number>> = { tcp: 6, udp: 17, icmp: 1, icmpv6: 58, sctp: 132 };
export const PROTO_NAMES: Readonly<Record<number, string>> = Object.fromEntries(Object.entries(PROTO_NUMBERS).map(([k, v]) => [v, k]));

export const TCP_STATE_NAMES: readonly string[] = Object.keys(CtTcpState);

export function emptyFilter(): CtFilterSpec {
  return {
    flags: 0, zone: 0, proto: 0, ipVersion: 0, src: new Uint8Array(16), srcPlen: 0, dst: new Uint8Array(16), dstPlen: 0,
    sport: 0, dport: 0, tcpState: 0, mark: 0, markMask: 0, label: new Uint8Array(16), labelMask: new Uint8Array(16),
  };
}

/** An address or prefix: "10.0.0.1", "10.0.0.0/8", "fd00::/64"; bytes in network order, v4 in the first 4. */
export function parseAddress(s: string): { version: 4 | 6; bytes: Uint8Array; plen: number } | { error: string } {
  const [addr, len, extra] = s.split('/');
  if (extra !== undefined || !addr) return { error: 'is not an address or a prefix (ADDR or ADDR/LEN)' };
  const bytes = new Uint8Array(16);
  let version: 4 | 6;
  const v4 = parseIpv4(addr);
  if (v4 !== null) {
    version = 4;
    new DataView(bytes.buffer).setUint32(0, v4);
  } else {
    const v6 = parseIpv6(addr);
    if (v6 === null) return { error: `"${addr}" is not an IPv4 or IPv6 address` };
    version = 6;
    for (let i = 15, v = v6; i >= 0; i--, v >>= 8n) bytes[i] = Number(v & 0xffn);
  }
  const max = version === 4 ? 32 : 128;
  let plen = max;
  if (len !== undefined) {
    if (!/^\d{1,3}$/.test(len) || Number(len) > max) return { error: `prefix length "${len}" is not 0..${max}` };
    plen = Number(len);
  }
  for (let bit = plen; bit < max; bit++) bytes[bit >> 3]! &= ~(0x80 >> (bit & 7)); // 10.0.0.1/8 is 10.0.0.0/8, as in OVS
  return { version, bytes, plen };
}

/** "tcp", "udp", "icmp", "icmpv6", "sctp" or a protocol number 0..255. */
export function parseProto(s: string): number | null {
  const named = PROTO_NUMBERS[s.toLowerCase()];
  if (named !== undefined) return named;
  const n = parseUint(s, 8);
  return n === null ? null : Number(n);
}

/** A TCP state name as conntrack prints it (ESTABLISHED, TIME_WAIT, ...; case and -/_ do not matter). */
export function parseTcpState(s: string): number | null {
  const v = (CtTcpState as Record<string, number>)[s.toUpperCase().replace(/-/g, '_')];
  return v ?? null;
}

/** "V" or "V/M", decimal or 0x hex, 32 bits each. */
export function parseMark(s: string): { value: number; mask: number } | null {
  const [v, m, extra] = s.split('/');
  if (extra !== undefined || v === undefined) return null;
  const value = parseUint(v, 32);
  const mask = m === undefined ? 0xffffffff : parseUint(m, 32);
  if (value === null || mask === null) return null;
  return { value: Number(value), mask: Number(mask) };
}

/** 128-bit "V" or "V/M" in hex (0x optional, leading zeros optional), as 16 network-order bytes. */
export function parseLabel(s: string): { value: Uint8Array; mask: Uint8Array } | null {
  const hex = (x: string | undefined): Uint8Array | null => {
    if (x === undefined) return null;
    const h = x.replace(/^0[xX]/, '');
    if (!/^[0-9a-fA-F]{1,32}$/.test(h)) return null;
    return Uint8Array.from(Buffer.from(h.padStart(32, '0'), 'hex'));
  };
  const [v, m, extra] = s.split('/');
  if (extra !== undefined) return null;
  const value = hex(v);
  const mask = m === undefined ? new Uint8Array(16).fill(0xff) : hex(m);
  if (!value || !mask) return null;
  return { value, mask };
}

const plain: FilterPointer = (p) => `?${p}`;

/**
 * Checks the filter parameters and builds the ct_filter. Every problem is a 400 naming the parameter.
 * An address implies its family (so a v4 prefix never matches the first bytes of a v6 address), and a
 * TCP state implies tcp.
 */
export function compileFilter(q: CtFilterQuery, at: FilterPointer = plain): CtFilterSpec {
  const f = emptyFilter();
  const bad = (p: keyof CtFilterQuery, msg: string): never => {
    throw badRequest(at(p), msg, `${at(p)}: ${msg}`);
  };
  if (q.zone !== undefined) {
    f.flags |= CtFilterFlag.ZONE;
    f.zone = q.zone;
  }
  if (q.proto !== undefined) {
    const p = parseProto(q.proto);
    if (p === null) bad('proto', `"${q.proto}" is not tcp, udp, icmp, icmpv6, sctp or a protocol number 0..255`);
    f.flags |= CtFilterFlag.PROTO;
    f.proto = p!;
  }
  let family: 4 | 6 | undefined;
  let familyFrom: keyof CtFilterQuery | undefined;
  if (q.family !== undefined) {
    family = q.family === 'ipv4' ? 4 : 6;
    familyFrom = 'family';
  }
  for (const side of ['src', 'dst'] as const) {
    const s = q[side];
    if (s === undefined) continue;
    const a = parseAddress(s);
    if ('error' in a) return bad(side, a.error);
    if (family !== undefined && a.version !== family) {
      bad(side, `is IPv${a.version} but ${at(familyFrom!)} is IPv${family}`);
    }
    family = a.version;
    familyFrom ??= side;
    f.flags |= side === 'src' ? CtFilterFlag.SRC : CtFilterFlag.DST;
    if (side === 'src') {
      f.src = a.bytes;
      f.srcPlen = a.plen;
    } else {
      f.dst = a.bytes;
      f.dstPlen = a.plen;
    }
  }
  if (family !== undefined) {
    f.flags |= CtFilterFlag.IP_VERSION;
    f.ipVersion = family;
  }
  if (q.sport !== undefined) {
    f.flags |= CtFilterFlag.SPORT;
    f.sport = q.sport;
  }
  if (q.dport !== undefined) {
    f.flags |= CtFilterFlag.DPORT;
    f.dport = q.dport;
  }
  if (q.state !== undefined) {
    const st = parseTcpState(q.state);
    if (st === null) bad('state', `"${q.state}" is not a TCP state (${TCP_STATE_NAMES.join(', ')})`);
    if ((f.flags & CtFilterFlag.PROTO) && f.proto !== PROTO_NUMBERS.tcp) bad('state', `applies to tcp only, not to ${at('proto')}=${q.proto}`);
    f.flags |= CtFilterFlag.TCP_STATE | CtFilterFlag.PROTO;
    f.proto = PROTO_NUMBERS.tcp!;
    f.tcpState = st!;
  }
  if (q.mark !== undefined) {
    const m = parseMark(q.mark);
    if (!m) bad('mark', `"${q.mark}" is not a 32-bit VALUE or VALUE/MASK (decimal or 0x hex)`);
    f.flags |= CtFilterFlag.MARK;
    f.mark = (m!.value & m!.mask) >>> 0;
    f.markMask = m!.mask;
  }
  if (q.label !== undefined) {
    const l = parseLabel(q.label);
    if (!l) bad('label', `"${q.label}" is not a 128-bit hex VALUE or VALUE/MASK`);
    f.flags |= CtFilterFlag.LABEL;
    f.label = l!.value.map((b, i) => b & l!.mask[i]!);
    f.labelMask = l!.mask;
  }
  if (q.either_dir) {
    if (!(f.flags & (CtFilterFlag.SRC | CtFilterFlag.DST | CtFilterFlag.SPORT | CtFilterFlag.DPORT))) {
      bad('either_dir', 'needs at least one of src, dst, sport, dport');
    }
    f.flags |= CtFilterFlag.EITHER_DIR;
  }
  return f;
}

const CF = CT_FILTER.fields;

/** Writes f as a ct_filter at off (every byte, padding included). */
export function writeFilter(dv: DataView, off: number, f: CtFilterSpec): void {
  const bytes = new Uint8Array(dv.buffer, dv.byteOffset + off, CT_FILTER.size);
  bytes.fill(0);
  dv.setUint32(off + CF.flags.offset, f.flags, true);
  dv.setUint16(off + CF.zone.offset, f.zone, true);
  dv.setUint8(off + CF.proto.offset, f.proto);
  dv.setUint8(off + CF.ip_version.offset, f.ipVersion);
  bytes.set(f.src, CF.src.offset);
  bytes.set(f.dst, CF.dst.offset);
  dv.setUint8(off + CF.src_plen.offset, f.srcPlen);
  dv.setUint8(off + CF.dst_plen.offset, f.dstPlen);
  dv.setUint8(off + CF.tcp_state.offset, f.tcpState);
  dv.setUint16(off + CF.sport.offset, f.sport, true);
  dv.setUint16(off + CF.dport.offset, f.dport, true);
  dv.setUint32(off + CF.mark.offset, f.mark, true);
  dv.setUint32(off + CF.mark_mask.offset, f.markMask, true);
  bytes.set(f.label, CF.label.offset);
  bytes.set(f.labelMask, CF.label_mask.offset);
}

/** A filter as words, for logs ("zone=5 proto=6 ..."); "all" when empty. */
export function describeFilter(f: CtFilterSpec): string {
  const out: string[] = [];
  if (f.flags & CtFilterFlag.ZONE) out.push(`zone=${f.zone}`);
  if (f.flags & CtFilterFlag.PROTO) out.push(`proto=${PROTO_NAMES[f.proto] ?? f.proto}`);
  if (f.flags & CtFilterFlag.TCP_STATE) out.push(`state=${CtTcpStateName[f.tcpState]}`);
  if (f.flags & CtFilterFlag.IP_VERSION) out.push(`ipv${f.ipVersion}`);
  if (f.flags & CtFilterFlag.SRC) out.push(`src/${f.srcPlen}`);
  if (f.flags & CtFilterFlag.DST) out.push(`dst/${f.dstPlen}`);
  if (f.flags & CtFilterFlag.SPORT) out.push(`sport=${f.sport}`);
  if (f.flags & CtFilterFlag.DPORT) out.push(`dport=${f.dport}`);
  if (f.flags & CtFilterFlag.MARK) out.push(`mark=0x${f.mark.toString(16)}/0x${f.markMask.toString(16)}`);
  if (f.flags & CtFilterFlag.LABEL) out.push('label');
  if (f.flags & CtFilterFlag.EITHER_DIR) out.push('either_dir');
  return out.length ? out.join(' ') : 'all';
}
