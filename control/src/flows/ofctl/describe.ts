// key/mask -> the match as ovs-ofctl prints it (OVS lib/match.c match_format order and spelling)
// and as canonical JSON (canonical field names). Both come from the key, so every spelling of the
// same match prints the same.
import { FLOW_KEY } from '../../gen/proto';
import { CT_STATE_FLAGS, FieldDef, TCP_FLAGS, fieldByName, fieldRegion, readBE, readLE } from './fields';
import { matchContext } from './match';
import {
  Val, allOnes, cHex, cidrLen, formatFlags, formatIpv4, formatIpv6, formatMac, hexOf, isZero,
} from './values';

export type JsonMatch = Record<string, string | number>;

interface FV { value: Val; mask: Val }

const BE = new Set(['mac', 'ipv4', 'ipv6', 'u128']);

/** The value/mask of f in key/mask, in the field's own units; null if f is wildcarded. */
export function decodeField(f: FieldDef, key: Uint8Array, mask: Uint8Array): FV | null {
  const [off, len] = fieldRegion(f);
  const rd = BE.has(f.syntax) ? readBE : readLE;
  let m = rd(mask, off, len);
  let v = rd(key, off, len);
  if (f.shift || f.present || (f.syntax === 'int' && f.bits < len * 8)) {
    const all = allOnes(f.bits) as number;
    const sh = f.shift ?? 0;
    m = (Number(m) >>> sh) & all;
    v = (Number(v) >>> sh) & all;
  }
  return isZero(m) ? null : { value: v, mask: m };
}


const F = (n: string): FieldDef => fieldByName(n)!;

/** "1.2.3.0/24", "1.2.3.4/255.0.255.0" */
function ip4(fv: FV): string {
  const v = formatIpv4(Number(fv.value));
  if (fv.mask === 0xffffffff) return v;
  const n = cidrLen(fv.mask, 32);
  return `${v}/${n >= 0 ? n : formatIpv4(Number(fv.mask))}`;
}
function ip6(fv: FV): string {
  const v = formatIpv6(BigInt(fv.value));
  if (BigInt(fv.mask) === allOnes(128)) return v;
  const n = cidrLen(fv.mask, 128);
  return `${v}/${n >= 0 ? n : formatIpv6(BigInt(fv.mask))}`;
}
function eth(fv: FV): string {
  const v = formatMac(BigInt(fv.value));
  return BigInt(fv.mask) === allOnes(48) ? v : `${v}/${formatMac(BigInt(fv.mask))}`;
}
/** format_be16_masked: decimal when exact, else 0xv/0xm */
function be16(fv: FV, bits = 16): string {
  return fv.mask === allOnes(bits) ? String(fv.value) : `${hexOf(fv.value)}/${hexOf(fv.mask)}`;
}
/** format_uint32_masked / format_be64_masked: %#x, mask when not exact */
function xmask(fv: FV, bits: number): string {
  return fv.mask === allOnes(bits) ? cHex(fv.value) : `${cHex(fv.value)}/${cHex(fv.mask)}`;
}
/** JSON: hex always prefixed, mask when not exact */
function jhex(fv: FV, bits: number, pad = 0): string {
  const h = (v: Val): string => '0x' + v.toString(16).padStart(pad, '0');
  return fv.mask === allOnes(bits) ? h(fv.value) : `${h(fv.value)}/${h(fv.mask)}`;
}
/** JSON integers: a number when exact, else "0xv/0xm" */
function jint(fv: FV, bits: number): string | number {
  return fv.mask === allOnes(bits) ? Number(fv.value) : `${hexOf(fv.value)}/${hexOf(fv.mask)}`;
}

const FRAG_NAMES: Record<string, string> = { '0/1': 'no', '1/1': 'yes', '0/3': 'no', '1/3': 'first', '3/3': 'later', '0/2': 'not_later', '2/2': 'later' };

export interface Described {
  /** ovs-ofctl tokens, in match_format order (without priority) */
  text: string[];
  json: JsonMatch;
}

/** The match of key/mask in ovs-ofctl's words and as canonical JSON. */
export function describeMatch(key: Uint8Array, mask: Uint8Array): Described {
  const text: string[] = [];
  const json: JsonMatch = {};
  const ctx = matchContext(key, mask);
  const get = (n: string): FV | null => decodeField(F(n), key, mask);
  const put = (tname: string | null, tv: string, jname: string | null, jv: string | number): void => {
    if (tname !== null) text.push(`${tname}=${tv}`);
    if (jname !== null) json[jname] = jv;
  };
  let fv: FV | null;

  if ((fv = get('ct_state'))) {
    const s = formatFlags(Number(fv.value), Number(fv.mask), CT_STATE_FLAGS);
    put('ct_state', s, 'ct_state', s);
  }
  if ((fv = get('ct_zone'))) put('ct_zone', be16(fv), 'ct_zone', jint(fv, 16));
  if ((fv = get('ct_mark'))) put('ct_mark', xmask(fv, 32), 'ct_mark', jhex(fv, 32));
  if ((fv = get('ct_label'))) put('ct_label', jhex(fv, 128), 'ct_label', jhex(fv, 128));
  const v6 = ctx.ethType === 0x86dd;
  for (const d of ['src', 'dst']) {
    const ct4 = decodeField(F(`ct_nw_${d}`), key, mask);
    if (ctx.ethType === 0x0800 || !v6) {
      if (ct4) put(`ct_nw_${d}`, ip4(ct4), `ct_nw_${d}`, ip4(ct4));
    } else if ((fv = get(`ct_ipv6_${d}`))) {
      put(`ct_ipv6_${d}`, ip6(fv), `ct_ipv6_${d}`, ip6(fv));
    }
  }
  if ((fv = get('ct_nw_proto'))) put('ct_nw_proto', String(fv.value), 'ct_nw_proto', Number(fv.value));
  if ((fv = get('ct_tp_src'))) put('ct_tp_src', be16(fv), 'ct_tp_src', jint(fv, 16));
  if ((fv = get('ct_tp_dst'))) put('ct_tp_dst', be16(fv), 'ct_tp_dst', jint(fv, 16));

  // eth_type / ip_proto as shorthands where OVS uses one
  let skipType = false;
  let skipProto = false;
  const et = ctx.ethType;
  if (et !== undefined) {
    json.eth_type = '0x' + et.toString(16).padStart(4, '0');
    const pr = ctx.ipProto;
    if (pr !== undefined) json.ip_proto = pr;
    skipType = true;
    if (et === 0x0800 || et === 0x86dd) {
      const sfx = et === 0x86dd ? '6' : '';
      const names: Record<number, string> = et === 0x0800 ? { 1: 'icmp', 6: 'tcp', 17: 'udp', 132: 'sctp' } : { 58: 'icmp6', 6: 'tcp6', 17: 'udp6', 132: 'sctp6' };
      if (pr !== undefined && names[pr]) {
        text.push(names[pr]!);
        skipProto = true;
      } else {
        text.push(`ip${sfx === '6' ? 'v6' : ''}`);
      }
    } else if (et === 0x0806) {
      text.push('arp');
    } else {
      skipType = false;
    }
  }
  for (let i = 0; i < 8; i++) if ((fv = get(`reg${i}`))) put(`reg${i}`, xmask(fv, 32), `reg${i}`, jhex(fv, 32));
  if ((fv = get('tun_id'))) put('tun_id', xmask(fv, 64), 'tun_id', jhex(fv, 64));
  if ((fv = get('tun_src'))) put('tun_src', ip4(fv), 'tun_src', ip4(fv));
  if ((fv = get('tun_dst'))) put('tun_dst', ip4(fv), 'tun_dst', ip4(fv));
  if ((fv = get('metadata'))) put('metadata', xmask(fv, 64), 'metadata', jhex(fv, 64));
  if ((fv = get('in_port'))) put('in_port', String(fv.value), 'in_port', Number(fv.value));

  const tci = get('vlan_tci');
  if (tci) {
    const t = Number(tci.value);
    const m = Number(tci.mask);
    const vidM = m & 0x0fff;
    const pcpM = m & 0xe000;
    if ((m & 0x1000) && (t & 0x1000) && (!vidM || vidM === 0x0fff) && (!pcpM || pcpM === 0xe000) && (vidM || pcpM)) {
      if (vidM) put('dl_vlan', String(t & 0xfff), 'vlan_vid', t & 0xfff);
      if (pcpM) put('dl_vlan_pcp', String(t >>> 13), 'vlan_pcp', t >>> 13);
    } else {
      const s = m === 0xffff ? `0x${t.toString(16).padStart(4, '0')}` : `0x${t.toString(16).padStart(4, '0')}/0x${m.toString(16).padStart(4, '0')}`;
      put('vlan_tci', s, 'vlan_tci', s);
    }
  }
  if ((fv = get('eth_src'))) put('dl_src', eth(fv), 'eth_src', eth(fv));
  if ((fv = get('eth_dst'))) put('dl_dst', eth(fv), 'eth_dst', eth(fv));
  if (!skipType && et !== undefined) text.push(`dl_type=0x${et.toString(16).padStart(4, '0')}`);

  const arp = et === 0x0806;
  if (v6) {
    if ((fv = get('ipv6_src'))) put('ipv6_src', ip6(fv), 'ipv6_src', ip6(fv));
    if ((fv = get('ipv6_dst'))) put('ipv6_dst', ip6(fv), 'ipv6_dst', ip6(fv));
    if ((fv = get('ipv6_label'))) put('ipv6_label', jhex(fv, 20, 5), 'ipv6_label', jhex(fv, 20, 5));
  } else if (arp) {
    if ((fv = get('arp_spa'))) put('arp_spa', ip4(fv), 'arp_spa', ip4(fv));
    if ((fv = get('arp_tpa'))) put('arp_tpa', ip4(fv), 'arp_tpa', ip4(fv));
  } else {
    if ((fv = get('ip_src'))) put('nw_src', ip4(fv), 'ip_src', ip4(fv));
    if ((fv = get('ip_dst'))) put('nw_dst', ip4(fv), 'ip_dst', ip4(fv));
  }
  if (!skipProto && (fv = get('ip_proto'))) {
    if (arp) put('arp_op', String(fv.value), 'arp_op', Number(fv.value));
    else put('nw_proto', String(fv.value), et === undefined ? 'ip_proto' : null, Number(fv.value));
  }
  if (arp) {
    if ((fv = get('arp_sha'))) put('arp_sha', eth(fv), 'arp_sha', eth(fv));
    if ((fv = get('arp_tha'))) put('arp_tha', eth(fv), 'arp_tha', eth(fv));
  }
  if ((fv = get('ip_dscp'))) put('nw_tos', String(Number(fv.value) << 2), 'ip_dscp', Number(fv.value));
  if ((fv = get('ip_ecn'))) put('nw_ecn', String(fv.value), 'ip_ecn', Number(fv.value));
  if ((fv = get('nw_ttl'))) put('nw_ttl', String(fv.value), 'nw_ttl', Number(fv.value));
  if ((fv = get('ip_frag'))) {
    const s = FRAG_NAMES[`${fv.value}/${fv.mask}`] ?? `${fv.value}/${fv.mask}`;
    put('nw_frag', s, 'ip_frag', s);
  }
  const pr = ctx.ipProto;
  const icmp = (et === 0x0800 && pr === 1) || (v6 && pr === 58);
  const tp = (n: 'src' | 'dst'): void => {
    const f = decodeField(F(`tp_${n}`), key, mask);
    if (!f) return;
    if (icmp) {
      const jn = `${v6 ? 'icmpv6' : 'icmp'}_${n === 'src' ? 'type' : 'code'}`;
      const fi = decodeField(F(jn), key, mask)!; // 8-bit type/code
      put(`icmp_${n === 'src' ? 'type' : 'code'}`, be16(fi, 8), jn, jint(fi, 8));
    } else {
      const p = pr === 6 ? 'tcp' : pr === 17 ? 'udp' : pr === 132 ? 'sctp' : 'tp';
      put(`tp_${n}`, be16(f), `${p}_${n}`, jint(f, 16));
    }
  };
  tp('src');
  tp('dst');
  if ((fv = get('tcp_flags'))) {
    const s = formatFlags(Number(fv.value) & 0xfff, Number(fv.mask) & 0xfff, TCP_FLAGS);
    put('tcp_flags', s, 'tcp_flags', s);
  }
  // Fields with no place above (inconsistent prerequisites) still show, so nothing is hidden.
  if (!v6 && (fv = get('ipv6_label'))) put('ipv6_label', jhex(fv, 20, 5), 'ipv6_label', jhex(fv, 20, 5));
  return { text, json };
}

export const KEY_FIELDS = FLOW_KEY.fields;

/** A field value as set_field prints it (same spelling as the match). */
export function formatValue(f: FieldDef, value: Val, mask: Val): string {
  const fv: FV = { value, mask };
  switch (f.syntax) {
    case 'ipv4': return ip4(fv);
    case 'ipv6': return ip6(fv);
    case 'mac': return eth(fv);
    case 'u64': return jhex(fv, 64);
    case 'u128': return jhex(fv, 128);
    default: {
      if (f.hex) return jhex(fv, f.bits);
      const j = jint(fv, f.bits);
      return String(j);
    }
  }
}
