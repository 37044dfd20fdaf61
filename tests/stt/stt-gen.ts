// An STT generator written from the wire format in /work/shared/research/stt.md (§1),
// independent of Ferry's encapsulator: the tests use it to feed Ferry's reassembler
// with segments Ferry did not make, in any order and with any field broken.
//
//   outer Eth | outer IPv4 (DF) | TCP-like header (20) | STT frame bytes [offset, offset+len)
//   TCP-like: sport = entropy, dport 7471, seq = frame length << 16 | offset,
//             ack = packet id, data offset 5, flags ACK|PSH (ACK only before the last
//             segment, as TSO leaves it), window 65535, checksum over pseudo-header +
//             header + payload, urgent 0
//   STT frame = version(1) flags(1) l4 offset(1) reserved(1) mss(2) vlan tci(2)
//               context(8) pad(2) | inner Ethernet frame
//
// It also builds the inner frames (IPv4/TCP with correct checksums) and the variants a
// receiver is expected to produce from them (CE applied, VLAN tag inserted).

export const STT_PORT = 7471;
export const STT_HDR_LEN = 18;
export const F_CSUM_VERIFIED = 0x01;
export const F_CSUM_PARTIAL = 0x02;
export const F_IPV4 = 0x04;
export const F_TCP = 0x08;
export const VLAN_PRESENT = 0x1000;
export const TCP_ACK = 0x10;
export const TCP_PSH = 0x08;
export const TCP_SYN = 0x02;

// ---------------------------------------------------------------- checksums and addresses

/** the ones' complement sum of 16-bit big-endian words, folded (an odd last byte padded) */
export function sum16(...parts: Buffer[]): number {
  let s = 0;
  for (const b of parts) {
    // every part but the last has an even length in this file's uses; keep it exact anyway
    for (let i = 0; i + 1 < b.length; i += 2) s += b.readUInt16BE(i);
    if (b.length & 1) s += (b[b.length - 1] ?? 0) << 8;
  }
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}

/** RFC 1071 Internet checksum over the concatenated parts */
export function inetCsum(...parts: Buffer[]): number {
  return ~sum16(Buffer.concat(parts)) & 0xffff;
}

export function ip4(a: string): Buffer {
  const b = Buffer.from(a.split('.').map(Number));
  if (b.length !== 4) throw new Error(`not an IPv4 address: ${a}`);
  return b;
}

export function mac(a: string): Buffer {
  const b = Buffer.from(a.split(':').map((x) => parseInt(x, 16)));
  if (b.length !== 6) throw new Error(`not a MAC address: ${a}`);
  return b;
}

export function pseudo4(src: Buffer, dst: Buffer, proto: number, len: number): Buffer {
  const p = Buffer.alloc(12);
  src.copy(p, 0);
  dst.copy(p, 4);
  p[9] = proto;
  p.writeUInt16BE(len, 10);
  return p;
}

// ---------------------------------------------------------------- inner frames

export interface InnerTcpOpts {
  /** the whole Ethernet frame (no FCS), 54 bytes at least */
  size: number;
  srcMac?: string;
  dstMac?: string;
  src?: string;
  dst?: string;
  sport?: number;
  dport?: number;
  tos?: number;
  ttl?: number;
  id?: number;
  seq?: number;
  ack?: number;
  flags?: number;
  /** varies the payload bytes */
  seed?: number;
}

/** An untagged Ethernet/IPv4/TCP frame of exactly o.size bytes, every checksum correct. */
export function innerTcp4(o: InnerTcpOpts): Buffer {
  if (o.size < 54 || o.size - 14 > 65535) throw new Error(`inner size ${o.size}`);
  const f = Buffer.alloc(o.size);
  mac(o.dstMac ?? '02:aa:00:00:00:02').copy(f, 0);
  mac(o.srcMac ?? '02:aa:00:00:00:01').copy(f, 6);
  f.writeUInt16BE(0x0800, 12);
  const ipLen = o.size - 14;
  const ip = f.subarray(14, 34);
  ip[0] = 0x45;
  ip[1] = o.tos ?? 0;
  ip.writeUInt16BE(ipLen, 2);
  ip.writeUInt16BE(o.id ?? 0x1234, 4);
  ip.writeUInt16BE(0x4000, 6); // DF
  ip[8] = o.ttl ?? 64;
  ip[9] = 6;
  const src = ip4(o.src ?? '10.1.0.1');
  const dst = ip4(o.dst ?? '10.1.0.2');
  src.copy(ip, 12);
  dst.copy(ip, 16);
  ip.writeUInt16BE(inetCsum(ip), 10);
  const tcp = f.subarray(34);
  tcp.writeUInt16BE(o.sport ?? 40000, 0);
  tcp.writeUInt16BE(o.dport ?? 5201, 2);
  tcp.writeUInt32BE(o.seq ?? 1000, 4);
  tcp.writeUInt32BE(o.ack ?? 2000, 8);
  tcp[12] = 5 << 4;
  tcp[13] = o.flags ?? TCP_ACK | TCP_PSH;
  tcp.writeUInt16BE(64240, 14);
  let x = (o.seed ?? 1) * 2654435761;
  for (let i = 20; i < tcp.length; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    tcp[i] = x >>> 24;
  }
  tcp.writeUInt16BE(inetCsum(pseudo4(src, dst, 6, tcp.length), tcp), 16);
  return f;
}

/** where the IPv4 header of an (untagged or single-tagged) frame starts */
function l3Of(frame: Buffer): number {
  return frame.readUInt16BE(12) === 0x8100 ? 18 : 14;
}

/** The frame as a CHECKSUM_PARTIAL sender hands it over: its TCP checksum field holds the
 * folded pseudo-header sum (length included, as Linux writes it), not a checksum. */
export function partialize(frame: Buffer): Buffer {
  const f = Buffer.from(frame);
  const l3 = l3Of(f);
  const ihl = (f[l3]! & 0xf) * 4;
  const l4len = f.readUInt16BE(l3 + 2) - ihl;
  const ps = sum16(pseudo4(f.subarray(l3 + 12, l3 + 16), f.subarray(l3 + 16, l3 + 20), 6, l4len));
  f.writeUInt16BE(ps, l3 + ihl + 16);
  return f;
}

/** The frame with an 802.1Q tag (TPID 0x8100, the given TCI) after its MAC addresses. */
export function withVlan(frame: Buffer, tci: number): Buffer {
  const tag = Buffer.alloc(4);
  tag.writeUInt16BE(0x8100, 0);
  tag.writeUInt16BE(tci & 0xffff, 2);
  return Buffer.concat([frame.subarray(0, 12), tag, frame.subarray(12)]);
}

/** The frame with CE set in its IPv4 header (and the header checksum fixed). */
export function withCe(frame: Buffer): Buffer {
  const f = Buffer.from(frame);
  const l3 = l3Of(f);
  const ihl = (f[l3]! & 0xf) * 4;
  f[l3 + 1] = f[l3 + 1]! | 0x03;
  f.writeUInt16BE(0, l3 + 10);
  f.writeUInt16BE(inetCsum(f.subarray(l3, l3 + ihl)), l3 + 10);
  return f;
}

// ---------------------------------------------------------------- STT frames and segments

export interface SttHeader {
  version?: number;
  flags?: number;
  l4Offset?: number;
  reserved?: number;
  /** the inner MSS field (for the receiver's re-segmentation) */
  mss?: number;
  /** the raw VLAN TCI field: PCP(3) | V(1) = 0x1000 | VID(12) */
  vlanTci?: number;
  context?: bigint;
  pad?: number;
}

/** The STT frame: the 18-byte header then the inner frame. */
export function sttFrame(inner: Buffer, h: SttHeader = {}): Buffer {
  const b = Buffer.alloc(STT_HDR_LEN + inner.length);
  b[0] = h.version ?? 0;
  b[1] = h.flags ?? 0;
  b[2] = h.l4Offset ?? 0;
  b[3] = h.reserved ?? 0;
  b.writeUInt16BE(h.mss ?? 0, 4);
  b.writeUInt16BE(h.vlanTci ?? 0, 6);
  b.writeBigUInt64BE(h.context ?? 0n, 8);
  b.writeUInt16BE(h.pad ?? 0, 16);
  inner.copy(b, STT_HDR_LEN);
  return b;
}

export interface Outer {
  srcMac: string;
  dstMac: string;
  src: string;
  dst: string;
  sport: number;
  dport: number;
  /** DSCP/ECN byte of the outer IPv4 header */
  tos: number;
  ttl: number;
  ipId: number;
  df: boolean;
}

export const defaultOuter: Outer = {
  srcMac: '02:00:00:00:01:01',
  dstMac: '02:00:00:00:01:02',
  src: '192.0.2.11',
  dst: '192.0.2.22',
  sport: 50000,
  dport: STT_PORT,
  tos: 0,
  ttl: 64,
  ipId: 1,
  df: true,
};

/** One outer segment, every wire field explicit so a test can break any of them. */
export interface Segment {
  outer: Outer;
  /** seq[31:16]: the STT frame length */
  frameLen: number;
  /** seq[15:0]: where payload sits in the STT frame */
  offset: number;
  /** the ack field */
  packetId: number;
  /** data offset in 32-bit words (the header written stays 20 bytes) */
  doff: number;
  tcpFlags: number;
  window: number;
  urg: number;
  payload: Buffer;
  /** spoil the TCP checksum (a value that is wrong for sure) */
  badCsum?: boolean;
}

export interface FrameSpec {
  inner: Buffer;
  hdr?: SttHeader;
  packetId: number;
  /** payload bytes per segment */
  mss: number;
  outer?: Partial<Outer>;
}

/** The segments of one STT frame, in order, as a TSO engine cuts them: IP ID +1 each,
 * PSH only on the last. */
export function segmentFrame(s: FrameSpec): Segment[] {
  const frame = sttFrame(s.inner, s.hdr);
  if (frame.length > 65535) throw new Error(`STT frame of ${frame.length} bytes`);
  const outer: Outer = { ...defaultOuter, ...s.outer };
  const segs: Segment[] = [];
  for (let off = 0, i = 0; off < frame.length; off += s.mss, i++) {
    const end = Math.min(off + s.mss, frame.length);
    segs.push({
      outer: { ...outer, ipId: (outer.ipId + i) & 0xffff },
      frameLen: frame.length,
      offset: off,
      packetId: s.packetId,
      doff: 5,
      tcpFlags: end === frame.length ? TCP_ACK | TCP_PSH : TCP_ACK,
      window: 65535,
      urg: 0,
      payload: frame.subarray(off, end),
    });
  }
  return segs;
}

/** A copy of seg with some fields changed (outer fields merged). */
export function alter(seg: Segment, patch: Partial<Omit<Segment, 'outer'>> & { outer?: Partial<Outer> }): Segment {
  const { outer, ...rest } = patch;
  return { ...seg, ...rest, outer: { ...seg.outer, ...outer }, payload: Buffer.from(rest.payload ?? seg.payload) };
}

/** The outer packet for a segment: Ethernet, IPv4 (DF unless told), TCP-like header, payload. */
export function encodeSegment(seg: Segment): Buffer {
  const o = seg.outer;
  const p = Buffer.alloc(14 + 20 + 20 + seg.payload.length);
  mac(o.dstMac).copy(p, 0);
  mac(o.srcMac).copy(p, 6);
  p.writeUInt16BE(0x0800, 12);
  const ip = p.subarray(14, 34);
  ip[0] = 0x45;
  ip[1] = o.tos;
  ip.writeUInt16BE(20 + 20 + seg.payload.length, 2);
  ip.writeUInt16BE(o.ipId, 4);
  ip.writeUInt16BE(o.df ? 0x4000 : 0, 6);
  ip[8] = o.ttl;
  ip[9] = 6;
  const src = ip4(o.src);
  const dst = ip4(o.dst);
  src.copy(ip, 12);
  dst.copy(ip, 16);
  ip.writeUInt16BE(inetCsum(ip), 10);
  const tcp = p.subarray(34);
  tcp.writeUInt16BE(o.sport, 0);
  tcp.writeUInt16BE(o.dport, 2);
  tcp.writeUInt16BE(seg.frameLen & 0xffff, 4);
  tcp.writeUInt16BE(seg.offset & 0xffff, 6);
  tcp.writeUInt32BE(seg.packetId >>> 0, 8);
  tcp[12] = (seg.doff & 0xf) << 4;
  tcp[13] = seg.tcpFlags;
  tcp.writeUInt16BE(seg.window, 14);
  tcp.writeUInt16BE(seg.urg, 18);
  seg.payload.copy(tcp, 20);
  let c = inetCsum(pseudo4(src, dst, 6, tcp.length), tcp);
  if (seg.badCsum) c ^= 0x5a5a;
  tcp.writeUInt16BE(c, 16);
  return p;
}

/** Recomputes the outer IPv4 header and TCP checksums of an outer packet (after a test
 * changed some byte on purpose and wants only that change to be wrong). */
export function refreshOuterCsums(pkt: Buffer): Buffer {
  const p = Buffer.from(pkt);
  const ihl = (p[14]! & 0xf) * 4;
  p.writeUInt16BE(0, 24);
  p.writeUInt16BE(inetCsum(p.subarray(14, 14 + ihl)), 24);
  const totLen = p.readUInt16BE(16);
  const tcp = p.subarray(14 + ihl, 14 + totLen);
  tcp.writeUInt16BE(0, 16);
  tcp.writeUInt16BE(inetCsum(pseudo4(p.subarray(26, 30), p.subarray(30, 34), 6, tcp.length), tcp), 16);
  return p;
}

/** The fields of an outer IPv4 STT segment as read off the wire (no checks). */
export interface DecodedSegment {
  srcMac: string;
  dstMac: string;
  src: string;
  dst: string;
  tos: number;
  ipId: number;
  df: boolean;
  ttl: number;
  ihl: number;
  ipTotalLen: number;
  ipCsumOk: boolean;
  sport: number;
  dport: number;
  frameLen: number;
  offset: number;
  packetId: number;
  doff: number;
  tcpFlags: number;
  window: number;
  urg: number;
  tcpCsumOk: boolean;
  payload: Buffer;
}

const macStr = (b: Buffer): string => [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');

export function decodeSegment(p: Buffer): DecodedSegment {
  if (p.readUInt16BE(12) !== 0x0800) throw new Error('not IPv4');
  const ihl = (p[14]! & 0xf) * 4;
  const totLen = p.readUInt16BE(16);
  const t = 14 + ihl;
  const tcp = p.subarray(t, 14 + totLen);
  return {
    dstMac: macStr(p.subarray(0, 6)),
    srcMac: macStr(p.subarray(6, 12)),
    src: [...p.subarray(26, 30)].join('.'),
    dst: [...p.subarray(30, 34)].join('.'),
    tos: p[15]!,
    ipId: p.readUInt16BE(18),
    df: (p.readUInt16BE(20) & 0x4000) !== 0,
    ttl: p[22]!,
    ihl,
    ipTotalLen: totLen,
    ipCsumOk: inetCsum(p.subarray(14, t)) === 0,
    sport: tcp.readUInt16BE(0),
    dport: tcp.readUInt16BE(2),
    frameLen: tcp.readUInt16BE(4),
    offset: tcp.readUInt16BE(6),
    packetId: tcp.readUInt32BE(8),
    doff: tcp[12]! >> 4,
    tcpFlags: tcp[13]!,
    window: tcp.readUInt16BE(14),
    urg: tcp.readUInt16BE(18),
    tcpCsumOk: inetCsum(pseudo4(p.subarray(26, 30), p.subarray(30, 34), 6, tcp.length), tcp) === 0,
    payload: Buffer.from(tcp.subarray(20)),
  };
}
