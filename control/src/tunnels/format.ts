// Tunnels, neighbours and STT options as the API shows them, the text forms they are given in
// (addresses, prefixes, MACs, keys), and the lines ferryctl prints.
import { NeighFlag } from '../gen/proto';
import { badRequest } from '../problem';

/** Per-tunnel counters, summed over workers (decimal strings). */
export interface TunnelCountersView {
  rx_packets: string;
  rx_bytes: string;
  tx_packets: string;
  tx_bytes: string;
  rx_dropped: string;
  tx_dropped: string;
}

export interface TunnelView {
  name: string;
  /** the OpenFlow port number flows output to and match in_port on */
  port: number;
  /** a.b.c.d/plen */
  local_ip: string;
  /** a.b.c.d, or "flow" (tun_dst set by the flow) */
  remote_ip: string;
  /** decimal, or "flow" (tun_id set by the flow) */
  key: string;
  dst_port: number;
  underlay_port: number;
  underlay_mtu: number;
  gateway: string | null;
  tos: number;
  ttl: number;
  /** null while ferryd is down */
  stats: TunnelCountersView | null;
}

export type NeighState = 'reachable' | 'incomplete' | 'failed';

export interface NeighbourView {
  port: number;
  ip: string;
  /** 00:00:00:00:00:00 while incomplete */
  mac: string;
  state: NeighState;
  static: boolean;
  age_ms: number;
}

export interface SttOptionsView {
  reasm_timeout_ms: number;
  reasm_mem_max: number;
  neigh_timeout_s: number;
  neigh_retries: number;
}

// ---- addresses ---------------------------------------------------------------------------
/** "a.b.c.d" to its 4 bytes (network order), or null. */
export function parseIpv4(s: string): number[] | null {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (!m) return null;
  const b = m.slice(1, 5).map(Number);
  return b.every((x) => x <= 255) ? b : null;
}

export const formatIpv4 = (b: readonly number[]): string => b.slice(0, 4).join('.');

export const ipv4Number = (b: readonly number[]): number => ((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0;

const isZero = (b: readonly number[]): boolean => b.every((x) => x === 0);

/** What an IPv4 address may not be for a tunnel endpoint, a next hop or a neighbour ('' = fine). */
function unicastProblem(b: readonly number[]): string {
  if (isZero(b)) return 'must not be 0.0.0.0';
  if (b[0]! >= 224 && b[0]! <= 239) return 'must not be a multicast address';
  if (b.every((x) => x === 255)) return 'must not be the broadcast address';
  return '';
}

/** A unicast IPv4 address of the request, or a 400 naming pointer. */
export function unicastIpv4(s: string, pointer: string): number[] {
  const b = parseIpv4(s);
  if (!b) throw badRequest(pointer, `"${s}" is not an IPv4 address (a.b.c.d)`);
  const why = unicastProblem(b);
  if (why) throw badRequest(pointer, why);
  return b;
}

/** "a.b.c.d/plen" or "a.b.c.d" (/32). */
export function localPrefix(s: string, pointer: string): { ip: number[]; plen: number } {
  const m = /^([^/]*)(?:\/(\d{1,2}))?$/.exec(s);
  const plen = m?.[2] === undefined ? 32 : Number(m[2]);
  if (!m || plen > 32) throw badRequest(pointer, `"${s}" is not an IPv4 address with an optional prefix length 0..32 (a.b.c.d/plen)`);
  return { ip: unicastIpv4(m[1]!, pointer), plen };
}

// ---- MACs and keys -----------------------------------------------------------------------
export function parseMac(s: string): number[] | null {
  const m = /^([0-9a-fA-F]{2})([:-])([0-9a-fA-F]{2})\2([0-9a-fA-F]{2})\2([0-9a-fA-F]{2})\2([0-9a-fA-F]{2})\2([0-9a-fA-F]{2})$/.exec(s);
  if (!m) return null;
  return [m[1], m[3], m[4], m[5], m[6], m[7]].map((x) => parseInt(x!, 16));
}

export const formatMac = (b: readonly number[]): string => b.slice(0, 6).map((x) => x.toString(16).padStart(2, '0')).join(':');

/** A neighbour's MAC: unicast, not zero. */
export function unicastMac(s: string, pointer: string): number[] {
  const b = parseMac(s);
  if (!b) throw badRequest(pointer, `"${s}" is not a MAC address (xx:xx:xx:xx:xx:xx)`);
  if (isZero(b)) throw badRequest(pointer, 'must not be 00:00:00:00:00:00');
  if (b[0]! & 1) throw badRequest(pointer, 'must be a unicast address (the first octet\'s low bit clear)');
  return b;
}

const MAX_U64 = (1n << 64n) - 1n;

/** A tunnel key: "flow", or a u64 in decimal or 0x hex. */
export function parseKey(s: string, pointer: string): bigint | 'flow' {
  if (s === 'flow') return 'flow';
  if (/^(?:\d{1,20}|0[xX][0-9a-fA-F]{1,16})$/.test(s)) {
    const v = BigInt(s);
    if (v <= MAX_U64) return v;
  }
  throw badRequest(pointer, `"${s}" is not "flow" nor a 64-bit key (decimal or 0x hex)`);
}

// ---- neighbours --------------------------------------------------------------------------
export function neighState(flags: number): NeighState {
  if (flags & NeighFlag.FAILED) return 'failed';
  if (flags & NeighFlag.INCOMPLETE) return 'incomplete';
  return 'reachable';
}

// ---- ferryctl ----------------------------------------------------------------------------
/** show-tunnels: one line of configuration and one of counters per tunnel. */
export function tunnelLines(items: readonly TunnelView[]): string {
  if (items.length === 0) return 'no tunnels\n';
  let out = '';
  for (const t of items) {
    out += `${t.name} (port ${t.port}): type=stt local_ip=${t.local_ip} remote_ip=${t.remote_ip} key=${t.key} dst_port=${t.dst_port} ` +
      `underlay_port=${t.underlay_port} underlay_mtu=${t.underlay_mtu}${t.gateway ? ` gateway=${t.gateway}` : ''} tos=${t.tos} ttl=${t.ttl}\n`;
    const s = t.stats;
    out += s
      ? `    rx pkts=${s.rx_packets} bytes=${s.rx_bytes} drop=${s.rx_dropped}  tx pkts=${s.tx_packets} bytes=${s.tx_bytes} drop=${s.tx_dropped}\n`
      : '    counters unavailable (ferryd is not running)\n';
  }
  return out;
}

/** show-neighbours: ip neigh's format, the underlay port as the device. */
export function neighbourLines(items: readonly NeighbourView[]): string {
  let out = '';
  for (const n of items) {
    const mac = n.state === 'incomplete' || n.mac === '00:00:00:00:00:00' ? '' : ` lladdr ${n.mac}`;
    out += `${n.ip} dev port${n.port}${mac} ${n.static ? 'PERMANENT' : n.state.toUpperCase()}${n.static ? '' : ` age ${(n.age_ms / 1000).toFixed(1)}s`}\n`;
  }
  return out;
}
