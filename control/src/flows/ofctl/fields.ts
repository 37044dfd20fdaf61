// The match fields ovs-ofctl users type, where each lives in ferryd's flow_key, and how it is encoded.
// Integers go into the key in host (little-endian) order; addresses, MACs and ct_label as bytes in
// network order. Several fields share key bytes (nw_src holds ip_src, ipv6_src or arp_spa); the
// prerequisites keep them apart, and a byte-level conflict check catches the rest.
import { FLOW_KEY, FieldId, CtStateBit } from '../../gen/proto';
import {
  FlagSet, FlowSyntaxError, Val, allOnes, and, cidrLen, isZero, nameTable, parseFlags, parseIpv4, parseIpv6, parseMac, parseUint,
  prefixMask128, prefixMask32,
} from './values';

export type Syntax = 'int' | 'u64' | 'u128' | 'mac' | 'ipv4' | 'ipv6' | 'port' | 'ct_state' | 'tcp_flags' | 'frag';
export type Prereq = 'none' | 'ipv4' | 'ipv6' | 'ip' | 'arp' | 'l4' | 'tcp' | 'udp' | 'sctp' | 'icmp' | 'icmpv6' | 'ct_l4';
export type KeyName = keyof typeof FLOW_KEY.fields;

export interface FieldDef {
  /** canonical (JSON) name */
  readonly name: string;
  readonly aliases: readonly string[];
  readonly syntax: Syntax;
  /** width of the value the user gives */
  readonly bits: number;
  readonly maskable: boolean;
  readonly prereq: Prereq;
  readonly key: KeyName;
  /** byte offset inside the key field (reg[i]) */
  readonly at?: number;
  /** bytes of the key field used (IPv4 in the 16-byte nw_src); default: all */
  readonly bytes?: number;
  /** the value's position inside the key field (ip_dscp in nw_tos, vlan_pcp in vlan_tci) */
  readonly shift?: number;
  /** bits set in both key and mask whenever the field is matched (the VLAN present bit) */
  readonly present?: number;
  /** field_id when set_field may write it */
  readonly setField?: number;
  /** printed in hex */
  readonly hex?: boolean;
}

// OVS's names plus srpl and untracked (what notrack gives: trk|untracked, netfilter's UNTRACKED;
// no short alias: OVS has no such state to borrow one from, and one spelling round-trips)
export const CT_STATE_FLAGS: FlagSet = {
  names: [['new', CtStateBit.NEW], ['est', CtStateBit.EST], ['rel', CtStateBit.REL], ['rpl', CtStateBit.RPL],
    ['inv', CtStateBit.INV], ['trk', CtStateBit.TRK], ['snat', CtStateBit.SNAT], ['dnat', CtStateBit.DNAT],
    ['srpl', CtStateBit.SRPL], ['untracked', CtStateBit.UNTRACKED]],
  full: 0x3ff,
};

export const TCP_FLAGS: FlagSet = {
  names: [['fin', 0x001], ['syn', 0x002], ['rst', 0x004], ['psh', 0x008], ['ack', 0x010], ['urg', 0x020],
    ['ece', 0x040], ['cwr', 0x080], ['ns', 0x100]],
  full: 0x0fff,
};

const L4 = (p: 'tcp' | 'udp' | 'sctp'): FieldDef[] => (['src', 'dst'] as const).map((d) => ({
  name: `${p}_${d}`, aliases: [], syntax: 'int', bits: 16, maskable: true, prereq: p, key: `tp_${d}` as KeyName,
  setField: d === 'src' ? FieldId.TP_SRC : FieldId.TP_DST,
}));

const REGS: FieldDef[] = Array.from({ length: 8 }, (_, i) => ({
  name: `reg${i}`, aliases: [], syntax: 'int', bits: 32, maskable: true, prereq: 'none', key: 'reg', at: i * 4, bytes: 4,
  setField: FieldId.REG0 + i, hex: true,
}) as FieldDef);

export const FIELDS: readonly FieldDef[] = [
  { name: 'in_port', aliases: [], syntax: 'port', bits: 32, maskable: false, prereq: 'none', key: 'in_port' },
  { name: 'metadata', aliases: [], syntax: 'u64', bits: 64, maskable: true, prereq: 'none', key: 'metadata', setField: FieldId.METADATA, hex: true },
  ...REGS,
  { name: 'tun_id', aliases: ['tunnel_id'], syntax: 'u64', bits: 64, maskable: true, prereq: 'none', key: 'tun_id', setField: FieldId.TUN_ID, hex: true },
  { name: 'tun_src', aliases: [], syntax: 'ipv4', bits: 32, maskable: true, prereq: 'none', key: 'tun_src', setField: FieldId.TUN_SRC },
  { name: 'tun_dst', aliases: [], syntax: 'ipv4', bits: 32, maskable: true, prereq: 'none', key: 'tun_dst', setField: FieldId.TUN_DST },
  { name: 'ct_state', aliases: [], syntax: 'ct_state', bits: 32, maskable: true, prereq: 'none', key: 'ct_state' },
  { name: 'ct_zone', aliases: [], syntax: 'int', bits: 16, maskable: false, prereq: 'none', key: 'ct_zone' },
  { name: 'ct_mark', aliases: [], syntax: 'int', bits: 32, maskable: true, prereq: 'none', key: 'ct_mark', hex: true },
  { name: 'ct_label', aliases: [], syntax: 'u128', bits: 128, maskable: true, prereq: 'none', key: 'ct_label', hex: true },
  { name: 'ct_nw_src', aliases: [], syntax: 'ipv4', bits: 32, maskable: true, prereq: 'ipv4', key: 'ct_nw_src', bytes: 4 },
  { name: 'ct_nw_dst', aliases: [], syntax: 'ipv4', bits: 32, maskable: true, prereq: 'ipv4', key: 'ct_nw_dst', bytes: 4 },
  { name: 'ct_ipv6_src', aliases: [], syntax: 'ipv6', bits: 128, maskable: true, prereq: 'ipv6', key: 'ct_nw_src' },
  { name: 'ct_ipv6_dst', aliases: [], syntax: 'ipv6', bits: 128, maskable: true, prereq: 'ipv6', key: 'ct_nw_dst' },
  { name: 'ct_nw_proto', aliases: [], syntax: 'int', bits: 8, maskable: false, prereq: 'none', key: 'ct_nw_proto' },
  { name: 'ct_tp_src', aliases: [], syntax: 'int', bits: 16, maskable: true, prereq: 'ct_l4', key: 'ct_tp_src' },
  { name: 'ct_tp_dst', aliases: [], syntax: 'int', bits: 16, maskable: true, prereq: 'ct_l4', key: 'ct_tp_dst' },
  { name: 'eth_src', aliases: ['dl_src'], syntax: 'mac', bits: 48, maskable: true, prereq: 'none', key: 'eth_src', setField: FieldId.ETH_SRC },
  { name: 'eth_dst', aliases: ['dl_dst'], syntax: 'mac', bits: 48, maskable: true, prereq: 'none', key: 'eth_dst', setField: FieldId.ETH_DST },
  { name: 'eth_type', aliases: ['dl_type'], syntax: 'int', bits: 16, maskable: false, prereq: 'none', key: 'eth_type', hex: true },
  { name: 'vlan_tci', aliases: [], syntax: 'int', bits: 16, maskable: true, prereq: 'none', key: 'vlan_tci', hex: true },
  { name: 'vlan_vid', aliases: ['dl_vlan'], syntax: 'int', bits: 12, maskable: true, prereq: 'none', key: 'vlan_tci', present: 0x1000, setField: FieldId.VLAN_VID },
  { name: 'vlan_pcp', aliases: ['dl_vlan_pcp'], syntax: 'int', bits: 3, maskable: false, prereq: 'none', key: 'vlan_tci', shift: 13, present: 0x1000, setField: FieldId.VLAN_PCP },
  { name: 'ip_src', aliases: ['nw_src', 'ipv4_src'], syntax: 'ipv4', bits: 32, maskable: true, prereq: 'ipv4', key: 'nw_src', bytes: 4, setField: FieldId.IPV4_SRC },
  { name: 'ip_dst', aliases: ['nw_dst', 'ipv4_dst'], syntax: 'ipv4', bits: 32, maskable: true, prereq: 'ipv4', key: 'nw_dst', bytes: 4, setField: FieldId.IPV4_DST },
  { name: 'ipv6_src', aliases: [], syntax: 'ipv6', bits: 128, maskable: true, prereq: 'ipv6', key: 'nw_src', setField: FieldId.IPV6_SRC },
  { name: 'ipv6_dst', aliases: [], syntax: 'ipv6', bits: 128, maskable: true, prereq: 'ipv6', key: 'nw_dst', setField: FieldId.IPV6_DST },
  { name: 'ipv6_label', aliases: [], syntax: 'int', bits: 20, maskable: true, prereq: 'ipv6', key: 'ipv6_label', hex: true },
  { name: 'ip_proto', aliases: ['nw_proto'], syntax: 'int', bits: 8, maskable: false, prereq: 'ip', key: 'nw_proto' },
  { name: 'ip_dscp', aliases: [], syntax: 'int', bits: 6, maskable: false, prereq: 'ip', key: 'nw_tos', shift: 2, setField: FieldId.IP_DSCP },
  // nw_tos is OVS's DSCP-in-TOS-position spelling of ip_dscp (value = DSCP << 2)
  { name: 'nw_tos', aliases: [], syntax: 'int', bits: 8, maskable: false, prereq: 'ip', key: 'nw_tos', setField: FieldId.IP_DSCP },
  { name: 'ip_ecn', aliases: ['nw_ecn'], syntax: 'int', bits: 2, maskable: false, prereq: 'ip', key: 'nw_tos', setField: FieldId.IP_ECN },
  { name: 'nw_ttl', aliases: ['ip_ttl'], syntax: 'int', bits: 8, maskable: false, prereq: 'ip', key: 'nw_ttl', setField: FieldId.IP_TTL },
  { name: 'ip_frag', aliases: ['nw_frag'], syntax: 'frag', bits: 8, maskable: true, prereq: 'ip', key: 'nw_frag' },
  { name: 'tp_src', aliases: [], syntax: 'int', bits: 16, maskable: true, prereq: 'l4', key: 'tp_src', setField: FieldId.TP_SRC },
  { name: 'tp_dst', aliases: [], syntax: 'int', bits: 16, maskable: true, prereq: 'l4', key: 'tp_dst', setField: FieldId.TP_DST },
  ...L4('tcp'), ...L4('udp'), ...L4('sctp'),
  { name: 'tcp_flags', aliases: [], syntax: 'tcp_flags', bits: 16, maskable: true, prereq: 'tcp', key: 'tcp_flags' },
  { name: 'icmp_type', aliases: [], syntax: 'int', bits: 8, maskable: false, prereq: 'icmp', key: 'tp_src' },
  { name: 'icmp_code', aliases: [], syntax: 'int', bits: 8, maskable: false, prereq: 'icmp', key: 'tp_dst' },
  { name: 'icmpv6_type', aliases: [], syntax: 'int', bits: 8, maskable: false, prereq: 'icmpv6', key: 'tp_src' },
  { name: 'icmpv6_code', aliases: [], syntax: 'int', bits: 8, maskable: false, prereq: 'icmpv6', key: 'tp_dst' },
  { name: 'arp_op', aliases: [], syntax: 'int', bits: 8, maskable: false, prereq: 'arp', key: 'nw_proto' },
  { name: 'arp_spa', aliases: [], syntax: 'ipv4', bits: 32, maskable: true, prereq: 'arp', key: 'nw_src', bytes: 4 },
  { name: 'arp_tpa', aliases: [], syntax: 'ipv4', bits: 32, maskable: true, prereq: 'arp', key: 'nw_dst', bytes: 4 },
  { name: 'arp_sha', aliases: [], syntax: 'mac', bits: 48, maskable: true, prereq: 'arp', key: 'arp_sha' },
  { name: 'arp_tha', aliases: [], syntax: 'mac', bits: 48, maskable: true, prereq: 'arp', key: 'arp_tha' },
];

const BY_NAME = new Map<string, FieldDef>();
for (const f of FIELDS) for (const n of [f.name, ...f.aliases]) BY_NAME.set(n, f);

export function fieldByName(name: string): FieldDef | undefined {
  return BY_NAME.get(name);
}

/** ovs-ofctl shorthands: what they set. A Map: a name from a request never meets Object.prototype's. */
export const SHORTHANDS: ReadonlyMap<string, { ethType: number; proto?: number }> = new Map(Object.entries({
  ip: { ethType: 0x0800 }, ipv6: { ethType: 0x86dd }, arp: { ethType: 0x0806 },
  tcp: { ethType: 0x0800, proto: 6 }, udp: { ethType: 0x0800, proto: 17 }, sctp: { ethType: 0x0800, proto: 132 },
  icmp: { ethType: 0x0800, proto: 1 }, icmp6: { ethType: 0x86dd, proto: 58 },
  tcp6: { ethType: 0x86dd, proto: 6 }, udp6: { ethType: 0x86dd, proto: 17 }, sctp6: { ethType: 0x86dd, proto: 132 },
}));

const BE_SYNTAX = new Set<Syntax>(['mac', 'ipv4', 'ipv6', 'u128']);

const REGIONS = new Map<FieldDef, readonly [number, number]>();

/** Where a field lives in flow_key: [byte offset, length] (made once per field: compiling asks per token). */
export function fieldRegion(f: FieldDef): readonly [number, number] {
  let r = REGIONS.get(f);
  if (!r) {
    const k = FLOW_KEY.fields[f.key];
    REGIONS.set(f, r = [k.offset + (f.at ?? 0), f.bytes ?? k.size]);
  }
  return r;
}

function writeLE(buf: Uint8Array, off: number, len: number, v: Val): void {
  if (typeof v === 'number') {
    for (let i = 0; i < len; i++) buf[off + i] = (i < 4 ? (v >>> (8 * i)) : 0) & 0xff;
    return;
  }
  for (let i = 0; i < len; i++) buf[off + i] = Number((v >> BigInt(8 * i)) & 0xffn);
}

function writeBE(buf: Uint8Array, off: number, len: number, v: Val): void {
  if (typeof v === 'number') {
    for (let i = 0; i < len; i++) buf[off + len - 1 - i] = (i < 4 ? (v >>> (8 * i)) : 0) & 0xff;
    return;
  }
  for (let i = 0; i < len; i++) buf[off + len - 1 - i] = Number((v >> BigInt(8 * i)) & 0xffn);
}

export function readLE(buf: Uint8Array, off: number, len: number): Val {
  if (len <= 4) {
    let v = 0;
    for (let i = len - 1; i >= 0; i--) v = v * 256 + buf[off + i]!;
    return v;
  }
  let v = 0n;
  for (let i = len - 1; i >= 0; i--) v = (v << 8n) | BigInt(buf[off + i]!);
  return v;
}

export function readBE(buf: Uint8Array, off: number, len: number): Val {
  if (len <= 4) {
    let v = 0;
    for (let i = 0; i < len; i++) v = v * 256 + buf[off + i]!;
    return v;
  }
  let v = 0n;
  for (let i = 0; i < len; i++) v = (v << 8n) | BigInt(buf[off + i]!);
  return v;
}

/**
 * Encodes value/mask of f in its flow_key representation into val/msk at off (len bytes of the
 * field's region). withPresent=false leaves the VLAN present bit out (set_field).
 */
export function encodeField(f: FieldDef, value: Val, mask: Val, val: Uint8Array, msk: Uint8Array, off: number, withPresent = true): void {
  const [, len] = fieldRegion(f);
  if (BE_SYNTAX.has(f.syntax)) {
    writeBE(val, off, len, and(value, mask));
    writeBE(msk, off, len, mask);
    return;
  }
  if (typeof value === 'number' && typeof mask === 'number') {
    const sh = f.shift ?? 0;
    const pr = withPresent ? f.present ?? 0 : 0;
    const kv = (((value & mask) << sh) | pr) >>> 0;
    const km = ((mask << sh) | pr) >>> 0;
    writeLE(val, off, len, kv);
    writeLE(msk, off, len, km);
    return;
  }
  writeLE(val, off, len, and(value, mask));
  writeLE(msk, off, len, mask);
}

export interface ParsedValue {
  value: Val;
  mask: Val;
}

/** Port resolution: a number or a port name to ferryd's port number; throws a FlowSyntaxError itself. */
export type PortResolver = (ref: string | number, path: (string | number)[], token: string) => number;

const FRAG = nameTable<readonly [number, number]>({
  no: [0, 1], first: [1, 3], later: [3, 3], yes: [1, 1], not_later: [0, 2],
});

/** Throws the FlowSyntaxError of a value (a function of its own: no closure made a value parsed). */
function fail(path: (string | number)[], token: string, why: string): never {
  throw new FlowSyntaxError(path, token, why);
}

/**
 * Parses "value" or "value/mask" of f (text as typed). Throws FlowSyntaxError at path.
 * The value comes back masked; an unmaskable field gets the all-ones mask.
 */
export function parseFieldValue(f: FieldDef, text: string, path: (string | number)[], token: string, ports?: PortResolver): ParsedValue {
  const slash = text.indexOf('/');
  const vs = slash < 0 ? text : text.slice(0, slash);
  const ms = slash < 0 ? undefined : text.slice(slash + 1);
  if (ms !== undefined && !f.maskable && f.syntax !== 'ct_state' && f.syntax !== 'tcp_flags') fail(path, token, 'cannot be masked');
  switch (f.syntax) {
    case 'port': {
      if (vs === '') fail(path, token, 'needs a port number or name');
      if (!ports) {
        const n = parseUint(vs, 32);
        if (n === null) fail(path, token, `"${vs}" is not a port number`);
        return { value: n!, mask: 0xffffffff };
      }
      return { value: ports(/^[0-9]+$/.test(vs) ? Number(vs) : vs, path, token), mask: 0xffffffff };
    }
    case 'ct_state':
    case 'tcp_flags': {
      const fs = f.syntax === 'ct_state' ? CT_STATE_FLAGS : TCP_FLAGS;
      const r = parseFlags(text, fs);
      if ('error' in r) return fail(path, token, r.error);
      return { value: r.value, mask: r.mask };
    }
    case 'frag': {
      const fr = FRAG[text];
      if (!fr) fail(path, token, `"${text}" is not one of no, first, later, yes, not_later`);
      return { value: fr![0], mask: fr![1] };
    }
    case 'mac': {
      const v = parseMac(vs);
      if (v === null) fail(path, token, `"${vs}" is not a MAC address`);
      let m = allOnes(48);
      if (ms !== undefined) {
        const mm = parseMac(ms);
        if (mm === null) fail(path, token, `"${ms}" is not a MAC mask`);
        m = mm!;
      }
      return { value: and(v!, m), mask: m };
    }
    case 'ipv4': {
      const v = parseIpv4(vs);
      if (v === null) fail(path, token, `"${vs}" is not an IPv4 address`);
      let m = 0xffffffff;
      if (ms !== undefined) {
        if (/^[0-9]{1,2}$/.test(ms)) {
          const n = Number(ms);
          if (n > 32) fail(path, token, `prefix length /${ms} is over 32`);
          m = prefixMask32(n);
        } else {
          const mm = parseIpv4(ms);
          if (mm === null) fail(path, token, `"${ms}" is not an IPv4 mask`);
          m = mm!;
        }
      }
      return { value: (v! & m) >>> 0, mask: m };
    }
    case 'ipv6': {
      const v = parseIpv6(vs);
      if (v === null) fail(path, token, `"${vs}" is not an IPv6 address`);
      let m = allOnes(128) as bigint;
      if (ms !== undefined) {
        if (/^[0-9]{1,3}$/.test(ms)) {
          const n = Number(ms);
          if (n > 128) fail(path, token, `prefix length /${ms} is over 128`);
          m = prefixMask128(n);
        } else {
          const mm = parseIpv6(ms);
          if (mm === null) fail(path, token, `"${ms}" is not an IPv6 mask`);
          m = mm!;
        }
      }
      return { value: v! & m, mask: m };
    }
    default: { // int, u64, u128
      const bits = f.syntax === 'int' ? f.bits : f.syntax === 'u64' ? 64 : 128;
      const v = parseUint(vs, bits);
      if (v === null) fail(path, token, `"${vs}" is not ${/^(0x)?[0-9a-f]+$/i.test(vs) ? `a ${bits}-bit value` : 'a number'}`);
      let m = allOnes(bits);
      if (ms !== undefined) {
        const mm = parseUint(ms, bits);
        if (mm === null) fail(path, token, `mask "${ms}" is not a ${bits}-bit value`);
        m = mm!;
      }
      if (f.name === 'nw_tos') { // DSCP in TOS position: ECN bits must be clear
        if ((Number(v) & 3) !== 0) fail(path, token, `${vs} has ECN bits set (nw_tos takes DSCP << 2; use ip_dscp or nw_ecn)`);
        return { value: Number(v) >>> 2, mask: 0x3f };
      }
      return { value: and(v!, m), mask: m };
    }
  }
}

/** nw_tos writes the ip_dscp bits. */
export function storageDef(f: FieldDef): FieldDef {
  return f.name === 'nw_tos' ? fieldByName('ip_dscp')! : f;
}

export { cidrLen, isZero };
