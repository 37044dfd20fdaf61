// Connections as the API shows them (JSON, one per NDJSON line) and as conntrack -L prints them.
// The line format works on the JSON view, so ferryctl prints what the API streams.
import { CtAlgName, CtEntry, CtEntryFlag, CtExpEntry, CtTcpState, CtTcpStateName, CtTmName, CtDestroyReasonName } from '../gen/proto';
import { formatIpv4, formatIpv6 } from '../flows/ofctl/values';
import { PROTO_NAMES, PROTO_NUMBERS } from './filter';

/** One direction's tuple. */
export interface CtTupleView {
  src: string;
  dst: string;
  sport: number;
  dport: number;
}

export type CtNat = 'snat' | 'dnat' | 'snat+dnat';

/** The nat field of an entry with these ct_entry flags (undefined: not translated). */
export function natOf(flags: number): CtNat | undefined {
  const snat = (flags & CtEntryFlag.SNAT) !== 0;
  const dnat = (flags & CtEntryFlag.DNAT) !== 0;
  return snat && dnat ? 'snat+dnat' : snat ? 'snat' : dnat ? 'dnat' : undefined;
}

/** One connection. 64-bit counters are decimal strings; times are ISO 8601 (UTC, ms). */
export interface CtEntryView {
  zone: number;
  /** tcp, udp, icmp, icmpv6, sctp, or the protocol number as a string */
  proto: string;
  proto_num: number;
  family: 'ipv4' | 'ipv6';
  /** original direction */
  src: string;
  dst: string;
  /** ICMP: both are the echo id */
  sport: number;
  dport: number;
  /**
   * The reply direction's tuple as ferryd tracks it: the original turned round, or translated when the
   * connection is NATed (SNAT: reply.dst is the translated source; DNAT: reply.src is the translated
   * destination). ICMP: sport = dport = the reply's echo id.
   */
  reply: CtTupleView;
  /** the translation the connection carries; absent when it has none ("snat+dnat" should both flags be set) */
  nat?: CtNat;
  icmp_type?: number;
  icmp_code?: number;
  /** TCP only: the higher of the two peers' states, and each peer's */
  state?: string;
  state_orig?: string;
  state_reply?: string;
  seen_reply: boolean;
  /** seen_reply, and for TCP an established (or later) state: conntrack's [ASSURED] */
  assured: boolean;
  be_liberal: boolean;
  mark: number;
  /** 128 bits, 0x + 32 hex digits */
  label: string;
  /** seconds left before the entry expires (rounded down) */
  timeout: number;
  /** the timeout policy attribute in force (tcp_established, udp_single, ...) */
  timeout_attr: string;
  packets_orig: string;
  bytes_orig: string;
  packets_reply: string;
  bytes_reply: string;
  first_seen: string;
  last_seen: string;
}

/** CLOCK_MONOTONIC ns (ferryd's clock, the same as process.hrtime) to wall-clock time. */
export interface Clock {
  monoNs: bigint;
  wallMs: number;
}

export const nowClock = (): Clock => ({ monoNs: process.hrtime.bigint(), wallMs: Date.now() });

export function isoAt(ns: bigint, clock: Clock): string {
  if (ns <= 0n) return new Date(0).toISOString();
  return new Date(Math.round(clock.wallMs - Number(clock.monoNs - ns) / 1e6)).toISOString();
}

export function formatAddress(bytes: readonly number[], version: number): string {
  if (version === 4) return formatIpv4(((bytes[0]! << 24) | (bytes[1]! << 16) | (bytes[2]! << 8) | bytes[3]!) >>> 0);
  let v = 0n;
  for (let i = 0; i < 16; i++) v = (v << 8n) | BigInt(bytes[i] ?? 0);
  return formatIpv6(v);
}

export const protoName = (n: number): string => PROTO_NAMES[n] ?? String(n);

const hex = (b: readonly number[]): string => '0x' + b.map((x) => x.toString(16).padStart(2, '0')).join('');

/** The JSON view of a ct_entry. */
export function entryView(e: CtEntry, clock: Clock): CtEntryView {
  const tcp = e.proto === PROTO_NUMBERS.tcp;
  const icmp = e.proto === PROTO_NUMBERS.icmp || e.proto === PROTO_NUMBERS.icmpv6;
  const seenReply = (e.flags & CtEntryFlag.SEEN_REPLY) !== 0;
  const top = Math.max(e.state_orig, e.state_reply);
  const stateName = (s: number): string => CtTcpStateName[s] ?? `STATE_${s}`;
  const nat = natOf(e.flags);
  return {
    zone: e.zone,
    proto: protoName(e.proto),
    proto_num: e.proto,
    family: e.ip_version === 6 ? 'ipv6' : 'ipv4',
    src: formatAddress(e.src, e.ip_version),
    dst: formatAddress(e.dst, e.ip_version),
    sport: e.sport,
    dport: e.dport,
    reply: {
      src: formatAddress(e.reply_src, e.ip_version),
      dst: formatAddress(e.reply_dst, e.ip_version),
      sport: e.reply_sport,
      dport: e.reply_dport,
    },
    ...(nat ? { nat } : {}),
    ...(icmp ? { icmp_type: e.icmp_type, icmp_code: e.icmp_code } : {}),
    ...(tcp ? { state: stateName(top), state_orig: stateName(e.state_orig), state_reply: stateName(e.state_reply) } : {}),
    seen_reply: seenReply,
    assured: seenReply && (!tcp || top >= CtTcpState.ESTABLISHED),
    be_liberal: (e.flags & CtEntryFlag.BE_LIBERAL) !== 0,
    mark: e.mark,
    label: hex(e.label),
    timeout: Math.floor(e.timeout_ms / 1000),
    timeout_attr: (CtTmName[e.tm] ?? `TM_${e.tm}`).toLowerCase(),
    packets_orig: e.packets_orig.toString(),
    bytes_orig: e.bytes_orig.toString(),
    packets_reply: e.packets_reply.toString(),
    bytes_reply: e.bytes_reply.toString(),
    first_seen: isoAt(e.first_seen_ns, clock),
    last_seen: isoAt(e.last_seen_ns, clock),
  };
}

/** CT_DESTROY reasons as the events stream names them. */
export const destroyReason = (r: number): string => (CtDestroyReasonName[r] ?? `REASON_${r}`).toLowerCase();

// protocols whose tuple has ports (tcp, udp, dccp, sctp, udplite); others print addresses only
const PORT_PROTOS = new Set([6, 17, 33, 132, 136]);

// ICMP queries and the type of their answer (what conntrack prints in the reply tuple)
const ICMP_REPLY: Readonly<Record<number, number>> = { 8: 0, 13: 14, 15: 16, 17: 18 };
const ICMPV6_REPLY: Readonly<Record<number, number>> = { 128: 129, 139: 140 };

/**
 * One conntrack -L line:
 * `tcp      6 431999 ESTABLISHED src=A dst=B sport=P dport=Q packets=3 bytes=180 src=B dst=A sport=Q dport=P
 * packets=2 bytes=120 [ASSURED] mark=0 zone=5 use=1` ([UNREPLIED] after the original tuple when no reply
 * was seen; ICMP tuples as type=T code=C id=I; zone= only when not 0, as conntrack does). The second tuple
 * is the entry's reply tuple, so a NATed connection shows its translated address and port there.
 */
export function conntrackLine(v: CtEntryView): string {
  const name = ['tcp', 'udp', 'icmp', 'icmpv6', 'sctp'].includes(v.proto) ? v.proto : 'unknown';
  const parts: string[] = [`${name.padEnd(8)} ${v.proto_num} ${v.timeout}`];
  if (v.state !== undefined) parts.push(v.state);
  const icmp = v.icmp_type !== undefined;
  const ports = PORT_PROTOS.has(v.proto_num);
  const tuple = (src: string, dst: string, sport: number, dport: number, type?: number): string => icmp
    ? `src=${src} dst=${dst} type=${type} code=${v.icmp_code} id=${sport}`
    : ports ? `src=${src} dst=${dst} sport=${sport} dport=${dport}` : `src=${src} dst=${dst}`;
  const replyType = icmp ? ((v.proto === 'icmpv6' ? ICMPV6_REPLY : ICMP_REPLY)[v.icmp_type!] ?? v.icmp_type) : undefined;
  parts.push(tuple(v.src, v.dst, v.sport, v.dport, v.icmp_type), `packets=${v.packets_orig} bytes=${v.bytes_orig}`);
  if (!v.seen_reply) parts.push('[UNREPLIED]');
  // a ferry-control from before NAT sends no reply tuple: its reply tuple was always the original turned round
  const r = v.reply ?? { src: v.dst, dst: v.src, sport: v.dport, dport: v.sport };
  parts.push(tuple(r.src, r.dst, r.sport, r.dport, replyType), `packets=${v.packets_reply} bytes=${v.bytes_reply}`);
  if (v.assured) parts.push('[ASSURED]');
  parts.push(`mark=${v.mark}`);
  if (v.zone !== 0) parts.push(`zone=${v.zone}`);
  parts.push('use=1');
  return parts.join(' ');
}

/**
 * One ALG expectation: the connection an FTP or TFTP helper (ct(commit,alg=...)) expects, from
 * expected.src with any source port to expected.dst:expected.dport, and the connection that set it up.
 */
export interface CtExpectationView {
  zone: number;
  /** tcp, udp, ... as the connections' proto (the expected connection's) */
  proto: string;
  proto_num: number;
  family: 'ipv4' | 'ipv6';
  /** the ALG that set it up: ftp, tftp */
  alg: string;
  expected: { src: string; dst: string; dport: number };
  /** the parent connection's original tuple */
  parent: CtTupleView;
  /** what the expected connection inherits */
  mark: number;
  /** 128 bits, 0x + 32 hex digits */
  label: string;
  /** left before it is dropped unused: ms, and whole seconds (rounded down, as a connection's timeout) */
  timeout_ms: number;
  timeout: number;
}

/** The JSON view of a ct_exp_entry. */
export function expectationView(e: CtExpEntry): CtExpectationView {
  const addr = (b: readonly number[]): string => formatAddress(b, e.ip_version);
  return {
    zone: e.zone,
    proto: protoName(e.proto),
    proto_num: e.proto,
    family: e.ip_version === 6 ? 'ipv6' : 'ipv4',
    alg: (CtAlgName[e.alg] ?? `ALG_${e.alg}`).toLowerCase(),
    expected: { src: addr(e.src), dst: addr(e.dst), dport: e.dport },
    parent: { src: addr(e.parent_src), dst: addr(e.parent_dst), sport: e.parent_sport, dport: e.parent_dport },
    mark: e.mark,
    label: hex(e.label),
    timeout_ms: e.timeout_ms,
    timeout: Math.floor(e.timeout_ms / 1000),
  };
}

/**
 * One `ovs-appctl dpctl/dump-conntrack-exp` line, OVS's fields in OVS's order, then ferry's two:
 * `tcp,orig=(src=10.0.0.2,dst=10.0.0.1,sport=0,dport=30001),zone=5,parent=(src=10.0.0.1,dst=10.0.0.2,sport=40000,dport=21),timeout=59,alg=ftp`.
 * sport=0 is the wildcard source port (as OVS prints it); zone, mark and labels only when not 0,
 * labels as OVS's hex (no leading zeros).
 */
export function expectationLine(v: CtExpectationView): string {
  const x = v.expected;
  const p = v.parent;
  const parts = [`${v.proto},orig=(src=${x.src},dst=${x.dst},sport=0,dport=${x.dport})`];
  if (v.zone !== 0) parts.push(`zone=${v.zone}`);
  if (v.mark !== 0) parts.push(`mark=${v.mark}`);
  const label = v.label.replace(/^0x0*/, '');
  if (label) parts.push(`labels=0x${label}`);
  parts.push(`parent=(src=${p.src},dst=${p.dst},sport=${p.sport},dport=${p.dport})`, `timeout=${v.timeout}`, `alg=${v.alg}`);
  return parts.join(',');
}
