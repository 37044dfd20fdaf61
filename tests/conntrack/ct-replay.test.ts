// ferry-ct-replay end to end: this file crafts Ethernet frames (IPv4/IPv6, TCP/UDP/ICMP/
// ICMPv6, every checksum computed, pseudo-headers included, and wrong on purpose only
// where a case wants it), writes them as classic pcaps (microsecond timestamps,
// linktype 1) and checks the ct_state the tool prints for each packet.
//
// Every expected state comes from /work/shared/research/conntrack.md (section 1 for
// ct_state, ICMP-related and the sanity checks, 1a for the timeouts, 5 for TCP, the
// UDP/ICMP rules at the end of 5) plus Ferry's srpl bit ("a reply has been seen on
// this connection", set from the reply packet on): they are written down here, not
// copied from the tool's output.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

const root = path.resolve(__dirname, '../../..');
const REPLAY = path.join(root, 'dataplane/build/ferry-ct-replay');
const dir = mkdtempSync(path.join(tmpdir(), 'ferry-ct-replay-'));
// FERRY_KEEP_PCAPS=1 keeps the crafted captures (for tcpdump -vvv -r ...)
after(() => (process.env.FERRY_KEEP_PCAPS ? console.log(`pcaps kept in ${dir}`) : rmSync(dir, { recursive: true, force: true })));

// ---------------------------------------------------------------- checksums

/** the ones' complement sum of 16-bit big-endian words (an odd last byte padded) */
function sum16(b: Buffer): number {
  let s = 0;
  for (let i = 0; i + 1 < b.length; i += 2) s += b.readUInt16BE(i);
  if (b.length & 1) s += (b[b.length - 1] ?? 0) << 8;
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}

/** RFC 1071 Internet checksum of the concatenated parts */
function inetCsum(...parts: Buffer[]): number {
  return ~sum16(Buffer.concat(parts)) & 0xffff;
}

/** a value that is wrong for sure (never the 0x0000/0xffff twin of the right one) */
const spoil = (c: number): number => c ^ 0x5a5a;

// ---------------------------------------------------------------- addresses

function addr(a: string): Buffer {
  if (!a.includes(':')) {
    const b = Buffer.from(a.split('.').map(Number));
    assert.equal(b.length, 4, a);
    return b;
  }
  const [head = '', tail] = a.split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = [...h, ...Array<string>(a.includes('::') ? 8 - h.length - t.length : 0).fill('0'), ...t];
  assert.equal(groups.length, 8, a);
  const b = Buffer.alloc(16);
  groups.forEach((g, i) => b.writeUInt16BE(parseInt(g, 16), i * 2));
  return b;
}

/** the TCP/UDP/ICMPv6 pseudo-header for an upper-layer length (RFC 793/768, RFC 8200 8.1) */
function pseudo(src: Buffer, dst: Buffer, proto: number, len: number): Buffer {
  if (src.length === 4) {
    const p = Buffer.alloc(12);
    src.copy(p, 0);
    dst.copy(p, 4);
    p[9] = proto;
    p.writeUInt16BE(len, 10);
    return p;
  }
  const p = Buffer.alloc(40);
  src.copy(p, 0);
  dst.copy(p, 16);
  p.writeUInt32BE(len, 32);
  p[39] = proto;
  return p;
}

// ---------------------------------------------------------------- L4

/** an L4 segment, built once its addresses are known (for the pseudo-header) */
interface L4 {
  proto: number;
  build(src: Buffer, dst: Buffer): Buffer;
}

const FIN = 0x01, SYN = 0x02, RST = 0x04, PSH = 0x08, ACK = 0x10;

interface TcpOpts {
  sport: number;
  dport: number;
  seq: number;
  ack?: number;
  flags: number;
  win?: number;
  len?: number; // payload bytes
  wscale?: number; // window-scale option (with MSS 1460), SYNs only
  badCsum?: boolean;
}

function tcp(o: TcpOpts): L4 {
  return {
    proto: 6,
    build(src, dst) {
      const opts = o.wscale === undefined ? Buffer.alloc(0) : Buffer.from([2, 4, 0x05, 0xb4, 1, 3, 3, o.wscale]);
      const hlen = 20 + opts.length;
      const seg = Buffer.alloc(hlen + (o.len ?? 0), 0x61);
      seg.fill(0, 0, hlen);
      seg.writeUInt16BE(o.sport, 0);
      seg.writeUInt16BE(o.dport, 2);
      seg.writeUInt32BE(o.seq >>> 0, 4);
      seg.writeUInt32BE((o.ack ?? 0) >>> 0, 8);
      seg[12] = (hlen / 4) << 4;
      seg[13] = o.flags;
      seg.writeUInt16BE(o.win ?? 65535, 14);
      opts.copy(seg, 20);
      const c = inetCsum(pseudo(src, dst, 6, seg.length), seg);
      seg.writeUInt16BE(o.badCsum ? spoil(c) : c, 16);
      return seg;
    },
  };
}

interface UdpOpts {
  sport: number;
  dport: number;
  len?: number; // payload bytes
  csum?: 'ok' | 'bad' | 'zero';
}

function udp(o: UdpOpts): L4 {
  return {
    proto: 17,
    build(src, dst) {
      const seg = Buffer.alloc(8 + (o.len ?? 32), 0x75);
      seg.writeUInt16BE(o.sport, 0);
      seg.writeUInt16BE(o.dport, 2);
      seg.writeUInt16BE(seg.length, 4);
      seg.writeUInt16BE(0, 6);
      let c = inetCsum(pseudo(src, dst, 17, seg.length), seg);
      if (c === 0) c = 0xffff; // RFC 768: a computed 0 is sent as all ones
      seg.writeUInt16BE(o.csum === 'zero' ? 0 : o.csum === 'bad' ? spoil(c) : c, 6);
      return seg;
    },
  };
}

interface IcmpOpts {
  type: number;
  code?: number;
  rest?: Buffer; // the 4 bytes after the checksum (echo: id, seq)
  body?: Buffer; // echo data, or the quoted packet of an error
  csum?: 'ok' | 'bad' | 'no-pseudo'; // no-pseudo: ICMPv6 summed like ICMPv4 (wrong)
}

const echoRest = (id: number, seq: number): Buffer => {
  const r = Buffer.alloc(4);
  r.writeUInt16BE(id, 0);
  r.writeUInt16BE(seq, 2);
  return r;
};

function icmpLike(proto: 1 | 58, o: IcmpOpts): L4 {
  return {
    proto,
    build(src, dst) {
      const seg = Buffer.concat([Buffer.from([o.type, o.code ?? 0, 0, 0]), o.rest ?? Buffer.alloc(4), o.body ?? Buffer.alloc(16, 0x69)]);
      const right = proto === 1 ? inetCsum(seg) : inetCsum(pseudo(src, dst, 58, seg.length), seg);
      let c = right;
      if (o.csum === 'bad') c = spoil(right);
      if (o.csum === 'no-pseudo') {
        c = inetCsum(seg);
        assert.notEqual(c, right, 'the checksum without the pseudo-header happens to be right: pick other bytes');
      }
      seg.writeUInt16BE(c, 2);
      return seg;
    },
  };
}
const icmp4 = (o: IcmpOpts): L4 => icmpLike(1, o);
const icmp6 = (o: IcmpOpts): L4 => icmpLike(58, o);

// ---------------------------------------------------------------- L3, L2

interface Ip4Opts {
  id?: number;
  badCsum?: boolean;
  mf?: boolean;
  fragOff?: number; // bytes, a multiple of 8
}

/** an IPv4 header (20 bytes, DF on whole datagrams) in front of payload */
function ip4Header(src: Buffer, dst: Buffer, proto: number, payloadLen: number, o: Ip4Opts = {}): Buffer {
  const h = Buffer.alloc(20);
  h[0] = 0x45;
  h.writeUInt16BE(20 + payloadLen, 2);
  h.writeUInt16BE(o.id ?? 0x1234, 4);
  const frag = o.mf !== undefined || o.fragOff !== undefined;
  h.writeUInt16BE(frag ? (o.mf ? 0x2000 : 0) | ((o.fragOff ?? 0) / 8) : 0x4000, 6);
  h[8] = 64;
  h[9] = proto;
  src.copy(h, 12);
  dst.copy(h, 16);
  const c = inetCsum(h);
  h.writeUInt16BE(o.badCsum ? spoil(c) : c, 10);
  return h;
}

/** a whole IP packet (v4 or v6 by the addresses' form) */
function ipPacket(src: string, dst: string, l4: L4, o: Ip4Opts = {}): Buffer {
  const s = addr(src), d = addr(dst);
  const seg = l4.build(s, d);
  if (s.length === 4) return Buffer.concat([ip4Header(s, d, l4.proto, seg.length, o), seg]);
  return Buffer.concat([ip6Header(s, d, l4.proto, seg.length), seg]);
}

function ip6Header(src: Buffer, dst: Buffer, nh: number, payloadLen: number): Buffer {
  const h = Buffer.alloc(40);
  h.writeUInt32BE(0x60000000, 0);
  h.writeUInt16BE(payloadLen, 4);
  h[6] = nh;
  h[7] = 64;
  src.copy(h, 8);
  dst.copy(h, 24);
  return h;
}

const MAC_A = Buffer.from('020000000001', 'hex');
const MAC_B = Buffer.from('020000000002', 'hex');

/** Ethernet II around an IP packet, padded to the 60-byte minimum as on the wire */
function eth(ip: Buffer, reverse = false): Buffer {
  const h = Buffer.alloc(14);
  (reverse ? MAC_A : MAC_B).copy(h, 0);
  (reverse ? MAC_B : MAC_A).copy(h, 6);
  h.writeUInt16BE((ip[0] ?? 0) >> 4 === 6 ? 0x86dd : 0x0800, 12);
  const f = Buffer.concat([h, ip]);
  return f.length >= 60 ? f : Buffer.concat([f, Buffer.alloc(60 - f.length)]);
}

const frame = (src: string, dst: string, l4: L4, o: Ip4Opts = {}): Buffer => eth(ipPacket(src, dst, l4, o));

/** the fragments of one IPv4 datagram: sizes are the non-last fragments' payloads */
function fragments4(src: string, dst: string, l4: L4, id: number, sizes: number[], badCsumAt = -1): Buffer[] {
  const s = addr(src), d = addr(dst);
  const seg = l4.build(s, d);
  const out: Buffer[] = [];
  let off = 0;
  for (let i = 0; i <= sizes.length; i++) {
    const n = i < sizes.length ? (sizes[i] ?? 0) : seg.length - off;
    assert.ok(i === sizes.length || n % 8 === 0, 'non-last fragments carry multiples of 8 bytes');
    const chunk = seg.subarray(off, off + n);
    const h = ip4Header(s, d, l4.proto, n, { id, mf: i < sizes.length, fragOff: off, badCsum: i === badCsumAt });
    out.push(eth(Buffer.concat([h, chunk])));
    off += n;
  }
  assert.equal(off, seg.length);
  return out;
}

/** the same for IPv6: a fragment header (RFC 8200 4.5) in each piece */
function fragments6(src: string, dst: string, l4: L4, id: number, sizes: number[]): Buffer[] {
  const s = addr(src), d = addr(dst);
  const seg = l4.build(s, d);
  const out: Buffer[] = [];
  let off = 0;
  for (let i = 0; i <= sizes.length; i++) {
    const n = i < sizes.length ? (sizes[i] ?? 0) : seg.length - off;
    const fh = Buffer.alloc(8);
    fh[0] = l4.proto;
    fh.writeUInt16BE(off | (i < sizes.length ? 1 : 0), 2); // offset in 8-byte units << 3 == bytes
    fh.writeUInt32BE(id, 4);
    out.push(eth(Buffer.concat([ip6Header(s, d, 44, 8 + n), fh, seg.subarray(off, off + n)])));
    off += n;
  }
  return out;
}

// ---------------------------------------------------------------- pcap, the tool

const T0 = 1_700_000_000; // the capture's first second

interface Pkt {
  frame: Buffer;
  at: number; // microseconds since T0
}

/** a classic pcap: magic 0xa1b2c3d4 written little-endian, v2.4, microseconds, Ethernet */
function pcap(pkts: Pkt[]): Buffer {
  const h = Buffer.alloc(24);
  h.writeUInt32LE(0xa1b2c3d4, 0);
  h.writeUInt16LE(2, 4);
  h.writeUInt16LE(4, 6);
  h.writeInt32LE(0, 8);
  h.writeUInt32LE(0, 12);
  h.writeUInt32LE(65535, 16);
  h.writeUInt32LE(1, 20); // LINKTYPE_ETHERNET
  const parts: Buffer[] = [h];
  for (const p of pkts) {
    const r = Buffer.alloc(16);
    r.writeUInt32LE(T0 + Math.floor(p.at / 1e6), 0);
    r.writeUInt32LE(p.at % 1e6, 4);
    r.writeUInt32LE(p.frame.length, 8);
    r.writeUInt32LE(p.frame.length, 12);
    parts.push(r, p.frame);
  }
  return Buffer.concat(parts);
}

interface Line {
  n: number;
  state: string;
  what: string;
}

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
  lines: Line[];
}

let files = 0;

function writePcap(pkts: Pkt[]): string {
  const file = path.join(dir, `c${++files}.pcap`);
  writeFileSync(file, pcap(pkts));
  return file;
}

function run(args: string[]): Run {
  assert.ok(existsSync(REPLAY), `${REPLAY} is missing: ninja -C dataplane/build ferry-ct-replay`);
  const r = spawnSync(REPLAY, args, { encoding: 'utf8', timeout: 20000 });
  const lines = r.stdout
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => {
      const [n = '', state = '', ...what] = l.split('\t');
      return { n: Number(n), state, what: what.join('\t') };
    });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, lines };
}

/** One packet and the ct_state it must come out with. at: seconds since the capture's
 * start (default: 1 ms after the previous packet). */
interface Step {
  frame: Buffer;
  expect: string;
  at?: number;
}

/** Replays the steps and checks the run (exit 0, one line a packet in capture order)
 * and every packet's state; returns the run for further checks. */
function replay(steps: Step[], args: string[] = []): Run {
  let prev = -1000;
  const pkts = steps.map((s) => {
    const at = s.at !== undefined ? Math.round(s.at * 1e6) : prev + 1000;
    assert.ok(at >= prev, 'timestamps do not go backwards');
    prev = at;
    return { frame: s.frame, at };
  });
  const file = writePcap(pkts);
  const r = run([file, ...args]);
  const show = `ferry-ct-replay ${[path.basename(file), ...args].join(' ')}\n${r.stdout}${r.stderr}`;
  assert.equal(r.status, 0, show);
  assert.deepEqual(
    r.lines.map((l) => l.n),
    steps.map((_, i) => i + 1),
    `one line a packet, in capture order\n${show}`,
  );
  assert.deepEqual(
    r.lines.map((l) => `${l.n} ${l.state}`),
    steps.map((s, i) => `${i + 1} ${s.expect}`),
    show,
  );
  return r;
}

// ---------------------------------------------------------------- the cases

const A = '10.0.0.1', B = '10.0.0.2', C = '10.0.0.3';
const A6 = 'fd00::1', B6 = 'fd00::2';

// the ct_state strings (conntrack.md 1 and 5.5; srpl once the connection saw a reply)
const NEW = 'new|trk';
const EST = 'est|trk|srpl'; // original direction, the reply was seen
const EST_RPL = 'est|rpl|trk|srpl'; // the reply direction (which is the reply seen)
const inv = (why: string): string => `inv|trk  (${why})`;

test('the crafted checksums are right (RFC 1071 example header, folding, odd lengths)', () => {
  // the IPv4 header of the classic worked example: checksum 0xb861
  const h = Buffer.from('450000730000400040110000c0a80001c0a800c7', 'hex');
  assert.equal(inetCsum(h), 0xb861);
  h.writeUInt16BE(0xb861, 10);
  assert.equal(inetCsum(h), 0, 'a header with its checksum sums to all ones');
  assert.equal(inetCsum(Buffer.from([0x01])), 0xfeff, 'an odd byte is the high half of a word');
  // every L4 we craft verifies: sum over the pseudo-header and the segment is all ones
  for (const [s, d, l4] of [
    [A, B, tcp({ sport: 40000, dport: 80, seq: 1, flags: SYN, wscale: 7 })],
    [A, B, udp({ sport: 5000, dport: 53, len: 33 })],
    [A6, B6, udp({ sport: 5000, dport: 53, len: 7 })],
    [A6, B6, icmp6({ type: 128, rest: echoRest(1, 1) })],
  ] as const) {
    const sa = addr(s), da = addr(d);
    const seg = l4.build(sa, da);
    assert.equal(inetCsum(pseudo(sa, da, l4.proto, seg.length), seg), 0, `${s} > ${d} proto ${l4.proto}`);
  }
  assert.equal(inetCsum(icmp4({ type: 8, rest: echoRest(1, 1) }).build(addr(A), addr(B))), 0);
  assert.deepEqual(addr('fd00::1'), Buffer.from('fd000000000000000000000000000001', 'hex'));
});

describe('TCP (conntrack.md 5)', () => {
  // client 10.0.0.1:40000 -> server 10.0.0.2:80 (ports may be overridden)
  type Seg = Omit<TcpOpts, 'sport' | 'dport'> & Partial<Pick<TcpOpts, 'sport' | 'dport'>>;
  const cs = (o: Seg) => frame(A, B, tcp({ sport: 40000, dport: 80, ...o }));
  const sc = (o: Seg) => eth(ipPacket(B, A, tcp({ sport: 80, dport: 40000, ...o })), true);

  // client ISN 1000, server ISN 5000, no window scaling
  const handshake: Step[] = [
    { frame: cs({ seq: 1000, flags: SYN }), expect: NEW },
    { frame: sc({ seq: 5000, ack: 1001, flags: SYN | ACK }), expect: EST_RPL },
    { frame: cs({ seq: 1001, ack: 5001, flags: ACK }), expect: EST },
  ];
  const talkAndClose: Step[] = [
    { frame: cs({ seq: 1001, ack: 5001, flags: PSH | ACK, len: 100 }), expect: EST },
    { frame: sc({ seq: 5001, ack: 1101, flags: PSH | ACK, len: 200 }), expect: EST_RPL },
    { frame: cs({ seq: 1101, ack: 5201, flags: ACK }), expect: EST },
    { frame: cs({ seq: 1101, ack: 5201, flags: PSH | ACK, len: 50 }), expect: EST },
    // close: FIN|ACK, ACK, FIN|ACK, ACK (5.6 close sequence; all accepted: est)
    { frame: cs({ seq: 1151, ack: 5201, flags: FIN | ACK }), expect: EST },
    { frame: sc({ seq: 5201, ack: 1152, flags: ACK }), expect: EST_RPL },
    { frame: sc({ seq: 5201, ack: 1152, flags: FIN | ACK }), expect: EST_RPL },
    { frame: cs({ seq: 1152, ack: 5202, flags: ACK }), expect: EST },
  ];

  test('3-way handshake, data both ways, FIN/ACK close; a SYN after the close starts afresh', () => {
    const r = replay([
      ...handshake,
      ...talkAndClose,
      // both peers >= FIN_WAIT_2: a pure SYN replaces the entry (5.4 step 2): new, and
      // the fresh entry has seen no reply yet
      { frame: cs({ seq: 90000, flags: SYN }), expect: NEW },
      { frame: sc({ seq: 70000, ack: 90001, flags: SYN | ACK }), expect: EST_RPL },
      { frame: cs({ seq: 90001, ack: 70001, flags: ACK }), expect: EST },
    ]);
    assert.equal(r.lines[0]?.what, 'tcp 10.0.0.1:40000 > 10.0.0.2:80');
    assert.equal(r.lines[1]?.what, 'tcp 10.0.0.2:80 > 10.0.0.1:40000');
  });

  test('a retransmitted SYN before any reply is still new (5.4 step 2)', () => {
    replay([
      { frame: cs({ seq: 1000, flags: SYN }), expect: NEW },
      { frame: cs({ seq: 1000, flags: SYN }), expect: NEW, at: 1 },
      { frame: sc({ seq: 5000, ack: 1001, flags: SYN | ACK }), expect: EST_RPL },
      { frame: cs({ seq: 1001, ack: 5001, flags: ACK }), expect: EST },
    ]);
  });

  test('a SYN-ACK with no SYN before it is inv (no_conn) and creates nothing; a mid-stream ACK is picked up', () => {
    replay([
      { frame: sc({ seq: 5000, ack: 1001, flags: SYN | ACK }), expect: inv('no_conn') },
      // 5.3: an ACK may open an entry (picked up mid-stream, both scales unknown)
      { frame: cs({ seq: 1001, ack: 5001, flags: ACK }), expect: NEW },
      { frame: sc({ seq: 5001, ack: 1001, flags: PSH | ACK, len: 10 }), expect: EST_RPL },
      { frame: cs({ seq: 1001, ack: 5011, flags: ACK }), expect: EST },
    ]);
  });

  // the server's SYN-ACK advertises 1000 bytes: the client may send up to seq 2001
  const smallWindow: Step[] = [
    { frame: cs({ seq: 1000, flags: SYN }), expect: NEW },
    { frame: sc({ seq: 5000, ack: 1001, flags: SYN | ACK, win: 1000 }), expect: EST_RPL },
    { frame: cs({ seq: 1001, ack: 5001, flags: ACK }), expect: EST },
  ];

  test('data beyond the window is inv (tcp_seq), the entry survives; in-window data is est (5.6)', () => {
    replay([
      ...smallWindow,
      { frame: cs({ seq: 1001, ack: 5001, flags: PSH | ACK, len: 1400 }), expect: inv('tcp_seq') },
      { frame: cs({ seq: 1001, ack: 5001, flags: PSH | ACK, len: 500 }), expect: EST },
      { frame: sc({ seq: 5001, ack: 1501, flags: ACK }), expect: EST_RPL },
    ]);
  });

  test('--no-seq-check accepts the same out-of-window data (est)', () => {
    replay(
      [
        ...smallWindow,
        { frame: cs({ seq: 1001, ack: 5001, flags: PSH | ACK, len: 1400 }), expect: EST },
      ],
      ['--no-seq-check'],
    );
  });

  test('invalid flag combinations are inv with the reason tcp_flags (5.2), with or without an entry', () => {
    replay([
      // no entry: SYN|FIN, and a NULL segment (5.2 a, b)
      { frame: cs({ seq: 1, flags: SYN | FIN, sport: 41000, dport: 80 }), expect: inv('tcp_flags') },
      { frame: cs({ seq: 1, flags: 0, sport: 41001, dport: 80 }), expect: inv('tcp_flags') },
      // an established connection: a FIN without ACK (5.2 c, 5.4 step 1)
      ...handshake,
      { frame: cs({ seq: 1001, ack: 5001, flags: FIN }), expect: inv('tcp_flags') },
      // inv never deletes the entry
      { frame: cs({ seq: 1001, ack: 5001, flags: PSH | ACK, len: 10 }), expect: EST },
    ]);
  });

  test('RST: an inexact sequence number is inv (tcp_seq), the exact one est; a SYN then starts afresh (5.6)', () => {
    replay([
      ...handshake,
      { frame: sc({ seq: 5100, ack: 1001, flags: RST | ACK }), expect: inv('tcp_seq') },
      { frame: sc({ seq: 5001, ack: 1001, flags: RST | ACK }), expect: EST_RPL },
      // both peers TIME_WAIT (>= FIN_WAIT_2): a pure SYN replaces the entry
      { frame: cs({ seq: 30000, flags: SYN }), expect: NEW },
    ]);
  });

  test('--zone 7 tracks the same way', () => {
    replay([...handshake, ...talkAndClose], ['--zone', '7']);
  });

  test('--no-commit: nothing is committed, so the SYN-ACK finds no connection', () => {
    replay(
      [
        { frame: cs({ seq: 1000, flags: SYN }), expect: NEW },
        { frame: cs({ seq: 1000, flags: SYN }), expect: NEW },
        { frame: sc({ seq: 5000, ack: 1001, flags: SYN | ACK }), expect: inv('no_conn') },
        // an ACK could open a connection (5.3), but is never committed either
        { frame: cs({ seq: 1001, ack: 5001, flags: ACK }), expect: NEW },
        { frame: sc({ seq: 5001, ack: 1001, flags: PSH | ACK, len: 20 }), expect: NEW },
        { frame: cs({ seq: 1001, ack: 5021, flags: ACK }), expect: NEW },
      ],
      ['--no-commit'],
    );
  });

  test('a bad TCP checksum is inv (l4_csum)', () => {
    replay([
      { frame: cs({ seq: 1000, flags: SYN, badCsum: true }), expect: inv('l4_csum') },
      // nothing was created: the SYN-ACK finds nothing
      { frame: sc({ seq: 5000, ack: 1001, flags: SYN | ACK }), expect: inv('no_conn') },
    ]);
  });
});

describe('UDP (other: FIRST -> MULTIPLE -> BIDIR; 1a timeouts)', () => {
  const ab = (sport: number, dport: number, o: Partial<UdpOpts> = {}, ip: Ip4Opts = {}) =>
    frame(A, B, udp({ sport, dport, ...o }), ip);
  const ba = (sport: number, dport: number, o: Partial<UdpOpts> = {}, ip: Ip4Opts = {}) =>
    eth(ipPacket(B, A, udp({ sport, dport, ...o }), ip), true);

  test('two packets one way are new, the reply est|rpl, then est', () => {
    const r = replay([
      { frame: ab(5000, 53), expect: NEW },
      { frame: ab(5000, 53), expect: NEW },
      { frame: ba(53, 5000), expect: EST_RPL },
      { frame: ab(5000, 53), expect: EST },
      { frame: ba(53, 5000), expect: EST_RPL },
    ]);
    assert.equal(r.lines[0]?.what, 'udp 10.0.0.1:5000 > 10.0.0.2:53');
  });

  test('timeouts: an unreplied flow is gone 60 s after its last packet (+61 s: new again)', () => {
    replay([
      // X: one packet (UDP_FIRST, 60 s); the answer 61 s later finds nothing and opens
      // a connection of its own (new, not est|rpl), whose reply is then A's packet
      { frame: ab(6000, 7000), expect: NEW, at: 0 },
      // Y: answered at +59 s, still there
      { frame: ab(6001, 7001), expect: NEW, at: 0.001 },
      // Z: once seen, then the same direction again at +61 s: new again
      { frame: ab(6002, 7002), expect: NEW, at: 0.002 },
      // W: a second packet at +30 s (UDP_SINGLE, 60 s, refreshed): alive until +90 s
      { frame: ab(6003, 7003), expect: NEW, at: 0.003 },
      { frame: ab(6003, 7003), expect: NEW, at: 30 },
      { frame: ba(7001, 6001), expect: EST_RPL, at: 59 },
      { frame: ba(7000, 6000), expect: NEW, at: 61 },
      { frame: ab(6000, 7000), expect: EST_RPL, at: 61.001 },
      { frame: ab(6002, 7002), expect: NEW, at: 61.002 },
      { frame: ba(7003, 6003), expect: EST_RPL, at: 89 },
    ]);
  });

  test('a bidirectional flow expires 30 s after its last packet (UDP_MULTIPLE)', () => {
    replay([
      { frame: ab(6100, 7100), expect: NEW, at: 0 },
      { frame: ba(7100, 6100), expect: EST_RPL, at: 1 },
      { frame: ab(6100, 7100), expect: EST, at: 30 }, // 29 s after the reply: alive
      { frame: ba(7100, 6100), expect: NEW, at: 61 }, // 31 s after the last packet: gone
    ]);
  });

  test('checksums: a bad IPv4 header checksum is inv (l3_csum), a bad UDP one inv (l4_csum), 0 is allowed on IPv4', () => {
    replay([
      { frame: ab(5100, 53, {}, { badCsum: true }), expect: inv('l3_csum') },
      // nothing was committed by it: the answer is a new connection
      { frame: ba(53, 5100), expect: NEW },
      { frame: ab(5101, 53, { csum: 'bad' }), expect: inv('l4_csum') },
      { frame: ba(53, 5101), expect: NEW },
      { frame: ab(5102, 53, { csum: 'zero' }), expect: NEW },
      { frame: ba(53, 5102, { csum: 'zero' }), expect: EST_RPL },
    ]);
  });
});

describe('ICMP (echo; errors are related, conntrack.md 1 "ICMP-related")', () => {
  const echo = (from: string, to: string, type: number, id: number, seq: number, csum?: IcmpOpts['csum']) =>
    eth(ipPacket(from, to, icmp4({ type, rest: echoRest(id, seq), csum })), from !== A);

  test('echo request new, reply est|rpl, and on; a reply with no request is inv (no_conn)', () => {
    const r = replay([
      { frame: echo(A, B, 8, 0x1234, 1), expect: NEW },
      { frame: echo(B, A, 0, 0x1234, 1), expect: EST_RPL },
      { frame: echo(A, B, 8, 0x1234, 2), expect: EST },
      { frame: echo(B, A, 0, 0x1234, 2), expect: EST_RPL },
      // another id is another connection, which no request opened
      { frame: echo(B, A, 0, 0x4321, 1), expect: inv('no_conn') },
      { frame: echo(A, B, 8, 0x5555, 1, 'bad'), expect: inv('l4_csum') },
    ]);
    assert.equal(r.lines[0]?.what, 'icmp 10.0.0.1 > 10.0.0.2 type 8 code 0');
  });

  // an error quotes the IP header and 8 bytes of what it is about (RFC 792)
  const quote = (ip: Buffer): Buffer => ip.subarray(0, 28);
  const unreach = (from: string, to: string, quoted: Buffer, code = 3) =>
    eth(ipPacket(from, to, icmp4({ type: 3, code, body: quote(quoted) })), from !== A);

  test('destination unreachable about a UDP flow: rel, rpl from the direction it travels', () => {
    const aToB = ipPacket(A, B, udp({ sport: 5300, dport: 53 }));
    const bToA = ipPacket(B, A, udp({ sport: 53, dport: 5300 }));
    replay([
      { frame: eth(aToB), expect: NEW },
      { frame: eth(bToA, true), expect: EST_RPL },
      // B reports on A's packet: the error goes B -> A, the reply direction
      { frame: unreach(B, A, aToB), expect: 'rel|rpl|trk|srpl' },
      // A reports on B's packet: the error goes A -> B, the original direction
      { frame: unreach(A, B, bToA), expect: 'rel|trk|srpl' },
      // the flow itself is untouched
      { frame: eth(aToB), expect: EST },
      // about a flow never seen: no connection, and errors never create one
      { frame: unreach(B, A, ipPacket(A, B, udp({ sport: 5301, dport: 53 }))), expect: inv('no_conn') },
      { frame: eth(ipPacket(A, B, udp({ sport: 5301, dport: 53 }))), expect: NEW },
      // the quoted packet must come from the error's destination (C never sent it)
      { frame: eth(ipPacket(B, C, icmp4({ type: 3, code: 3, body: quote(aToB) }))), expect: inv('icmp_error') },
    ]);
  });

  test('an ICMP error is not the reply of an unreplied flow (no srpl, the flow stays new)', () => {
    const aToB = ipPacket(A, B, udp({ sport: 5400, dport: 9 }));
    replay([
      { frame: eth(aToB), expect: NEW },
      // port unreachable back to A: related, in the reply direction, but no reply was seen
      { frame: unreach(B, A, aToB), expect: 'rel|rpl|trk' },
      // UDP_FIRST -> MULTIPLE: still new, and still unreplied (an error is not a reply)
      { frame: eth(aToB), expect: NEW },
    ]);
  });
});

describe('IPv6', () => {
  test('TCP with window scaling, UDP, ICMPv6 echo and an ICMPv6 error; v6 checksums', () => {
    const c6 = (o: TcpOpts) => frame(A6, B6, tcp(o));
    const s6 = (o: TcpOpts) => eth(ipPacket(B6, A6, tcp(o)), true);
    const q = ipPacket(A6, B6, udp({ sport: 5353, dport: 53 }));
    const r = replay([
      { frame: c6({ sport: 40000, dport: 443, seq: 100, flags: SYN, wscale: 7 }), expect: NEW },
      { frame: s6({ sport: 443, dport: 40000, seq: 300, ack: 101, flags: SYN | ACK, wscale: 7 }), expect: EST_RPL },
      { frame: c6({ sport: 40000, dport: 443, seq: 101, ack: 301, flags: ACK, win: 512 }), expect: EST },
      { frame: c6({ sport: 40000, dport: 443, seq: 101, ack: 301, flags: PSH | ACK, win: 512, len: 1000 }), expect: EST },
      { frame: s6({ sport: 443, dport: 40000, seq: 301, ack: 1101, flags: PSH | ACK, win: 512, len: 500 }), expect: EST_RPL },
      { frame: eth(q), expect: NEW },
      { frame: eth(ipPacket(B6, A6, udp({ sport: 53, dport: 5353 })), true), expect: EST_RPL },
      { frame: eth(ipPacket(A6, B6, icmp6({ type: 128, rest: echoRest(7, 1) }))), expect: NEW },
      { frame: eth(ipPacket(B6, A6, icmp6({ type: 129, rest: echoRest(7, 1) })), true), expect: EST_RPL },
      // port unreachable (type 1 code 4) quoting A's UDP packet: related, reply direction
      { frame: eth(ipPacket(B6, A6, icmp6({ type: 1, code: 4, body: q })), true), expect: 'rel|rpl|trk|srpl' },
      // UDP without a checksum is not allowed on IPv6
      { frame: eth(ipPacket(A6, B6, udp({ sport: 5354, dport: 53, csum: 'zero' }))), expect: inv('l4_csum') },
      // ICMPv6 summed without its pseudo-header
      { frame: eth(ipPacket(A6, B6, icmp6({ type: 128, rest: echoRest(8, 1), csum: 'no-pseudo' }))), expect: inv('l4_csum') },
    ]);
    assert.equal(r.lines[0]?.what, 'tcp fd00::1:40000 > fd00::2:443');
    assert.equal(r.lines[7]?.what, 'icmp6 fd00::1 > fd00::2 type 128 code 0');
  });
});

describe('IP fragments (reassembled first; each fragment gets its datagram state)', () => {
  const big = (sport: number) => udp({ sport, dport: 4789, len: 1000 }); // 1008 bytes of UDP

  test('an IPv4 datagram in 3 fragments: three lines with the datagram state, in capture order', () => {
    const [f1, f2, f3] = fragments4(A, B, big(6500), 0x0101, [400, 400]);
    assert.ok(f1 && f2 && f3);
    const r = replay([
      { frame: f1, expect: NEW },
      { frame: f2, expect: NEW },
      { frame: f3, expect: NEW },
      // the datagram was committed with its ports: B's answer is its reply
      { frame: eth(ipPacket(B, A, udp({ sport: 4789, dport: 6500 })), true), expect: EST_RPL },
    ]);
    for (const l of r.lines.slice(0, 3)) assert.match(l.what, /\(fragment\)$/, l.what);
  });

  test('out of order with a packet in between: lines still in capture order, all with the state', () => {
    const [f1, f2, f3] = fragments4(A, B, big(6501), 0x0102, [400, 400]);
    assert.ok(f1 && f2 && f3);
    const r = replay([
      { frame: f3, expect: NEW },
      { frame: frame(A, C, udp({ sport: 6600, dport: 53 })), expect: NEW },
      { frame: f1, expect: NEW },
      { frame: f2, expect: NEW },
      // the same flow again, whole: MULTIPLE, still new
      { frame: frame(A, B, udp({ sport: 6501, dport: 4789 })), expect: NEW },
    ]);
    assert.match(r.lines[1]?.what ?? '', /^udp 10\.0\.0\.1:6600 > 10\.0\.0\.3:53$/);
  });

  test('an IPv6 datagram in 3 fragments, and its reply', () => {
    const [f1, f2, f3] = fragments6(A6, B6, big(6502), 0xabcdef01, [400, 400]);
    assert.ok(f1 && f2 && f3);
    replay([
      { frame: f1, expect: NEW },
      { frame: f2, expect: NEW },
      { frame: f3, expect: NEW },
      { frame: eth(ipPacket(B6, A6, udp({ sport: 4789, dport: 6502 })), true), expect: EST_RPL },
    ]);
  });

  test('a fragment with a bad IPv4 header checksum is inv (l3_csum), not laundered by reassembly', () => {
    // OVS's ipf checks each fragment's header checksum and leaves a bad one to
    // conntrack (inv); the datagram then never completes
    const [f1, f2, f3] = fragments4(A, B, big(6503), 0x0103, [400, 400], 1);
    assert.ok(f1 && f2 && f3);
    const r = run([writePcap([f1, f2, f3].map((frame, i) => ({ frame, at: i * 1000 })))]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.lines[1]?.state, inv('l3_csum'), r.stdout);
    for (const l of r.lines) assert.notEqual(l.state, NEW, `the datagram with a corrupt fragment was tracked:\n${r.stdout}`);
  });
});

describe('command line', () => {
  test('a missing file: non-zero exit, stderr names the file', () => {
    const file = path.join(dir, 'no-such.pcap');
    const r = run([file]);
    assert.notEqual(r.status, 0);
    assert.ok(r.stderr.includes(file), `stderr: ${r.stderr}`);
    assert.equal(r.stdout, '');
  });

  test('a file that is not a pcap: non-zero exit, stderr names the file', () => {
    const file = path.join(dir, 'notes.pcap');
    writeFileSync(file, 'these are not the packets you are looking for\n'.repeat(4));
    const r = run([file]);
    assert.notEqual(r.status, 0);
    assert.ok(r.stderr.includes(file), `stderr: ${r.stderr}`);
    assert.equal(r.stdout, '');
  });

  test('a capture that is not Ethernet: exit 1, stderr names the file', () => {
    const file = path.join(dir, 'raw.pcap');
    const p = pcap([{ frame: ipPacket(A, B, udp({ sport: 1, dport: 2 })), at: 0 }]);
    p.writeUInt32LE(101, 20); // LINKTYPE_RAW
    writeFileSync(file, p);
    const r = run([file]);
    assert.equal(r.status, 1);
    assert.ok(r.stderr.includes(file), `stderr: ${r.stderr}`);
  });

  test('a capture cut short: the whole packets are printed, then exit 1 with an error', () => {
    const p = pcap([
      { frame: frame(A, B, udp({ sport: 7100, dport: 53 })), at: 0 },
      { frame: frame(A, B, udp({ sport: 7100, dport: 53 })), at: 1000 },
    ]);
    const file = path.join(dir, 'cut.pcap');
    writeFileSync(file, p.subarray(0, p.length - 20));
    const r = run([file]);
    assert.equal(r.status, 1);
    assert.deepEqual(r.lines.map((l) => `${l.n} ${l.state}`), ['1 new|trk']);
    assert.notEqual(r.stderr.trim(), '');
  });

  test('an empty capture prints nothing and exits 0', () => {
    const r = run([writePcap([])]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, '');
  });

  test('bad arguments exit 2: --zone 70000, --zone x, no file, two files', () => {
    const file = writePcap([{ frame: frame(A, B, udp({ sport: 7200, dport: 53 })), at: 0 }]);
    for (const args of [[file, '--zone', '70000'], [file, '--zone', 'x'], [file, '--zone', '-1'], [], [file, file], [file, '--bogus']]) {
      const r = run(args);
      assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.notEqual(r.stderr, '', args.join(' '));
      assert.equal(r.stdout, '', args.join(' '));
    }
    assert.match(run([file, '--zone', '70000']).stderr, /70000/);
    // the edges are fine
    assert.equal(run([file, '--zone', '65535']).status, 0);
    assert.equal(run([file, '--zone=0']).status, 0);
  });

  test('an empty --zone is not zone 0', () => {
    const file = writePcap([{ frame: frame(A, B, udp({ sport: 7300, dport: 53 })), at: 0 }]);
    const r = run([file, '--zone=']);
    assert.equal(r.status, 2, `--zone= was accepted: ${r.stdout}${r.stderr}`);
  });

  test('--help prints the usage and exits 0', () => {
    const r = run(['--help']);
    assert.equal(r.status, 0);
    assert.match(r.stdout, /usage: ferry-ct-replay FILE\.pcap/);
  });
});
